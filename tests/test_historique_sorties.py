"""The series since 2008 in the outputs: report and slides (PDF read back), API route,
exports (the dashboard panel: test_historique_navigateur.py). The base: the synthetic
register of profile ``test`` (on the 2024 map, the default) built with its historical
files."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from essqpv import historique as HI


@pytest.fixture(scope="session")
def base_historique(base_demo, dossier_demo, tmp_path_factory) -> Path:
    from essqpv.synthese import generer_historiques
    d = tmp_path_factory.mktemp("sorties-historique")
    base = d / "demo.duckdb"
    shutil.copyfile(base_demo, base)
    registre = dossier_demo / "registre"
    fichiers = {"etablissements": registre / "StockEtablissement_utf8.zip",
                "unites_legales": registre / "StockUniteLegale_utf8.csv"}
    h = generer_historiques(fichiers, "2024-01", dossier=d / "historiques")["fichiers"]
    HI.construire_historique(
        base=base, etablissements_historique=h["etablissements_historique"],
        unites_legales_historique=h["unites_legales_historique"],
        etablissements=fichiers["etablissements"],
        geolocalisation=registre / "GeolocalisationEtablissement_Sirene_pour_etudes_"
                                   "statistiques_utf8.csv")
    return base


def test_rapport_et_diapos_ont_la_section_evolution(base_historique, tmp_path):
    import subprocess

    from essqpv.outputs import rapport
    pdf = rapport(base_historique, "DEP:93", format="pdf", sortie=tmp_path)
    texte = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                           text=True, check=True).stdout
    assert "Évolution depuis 2008" in texte
    assert "géographie QPV 2024, fixe sur toute la série" in texte
    assert "Pas de série des salariés" in texte
    s = HI.evolution(base_historique, "DEP:93", "2024")
    premier = s["qpv"]["etablissements"][0]
    assert premier is not None and f"{premier:,}".replace(",", "\u202f") in texte
    diapos = rapport(base_historique, "FR", format="diapos", sortie=tmp_path)
    texte = " ".join(subprocess.run(["pdftotext", str(diapos), "-"], capture_output=True,
                                    text=True, check=True).stdout.split())
    assert "L'ESS en QPV depuis 2008" in texte and "effectifs ne sont pas historisés" in texte


def test_rapport_sans_series_n_a_pas_de_section(base_demo, tmp_path):
    from essqpv.outputs import rapport
    html = rapport(base_demo, "FR", format="html", sortie=tmp_path).read_text("utf-8")
    assert "Évolution depuis 2008" not in html


def test_api_evolution(base_historique, base_demo):
    from fastapi.testclient import TestClient

    from essqpv.web import creer_application
    with TestClient(creer_application(base_historique)) as c:
        r = c.get("/api/evolution/DEP:93")
        assert r.status_code == 200
        s = r.json()
        assert s["protege"] and s["geographie_qpv"] == "2024"
        assert s["points"][0] == "2008-01-01" and s["points"][-1] == "2024-01"
        assert HI.AVERTISSEMENT_EFFECTIFS in s["avertissements"]
        assert s == HI.evolution(base_historique, "DEP:93", "2024")
        r = c.get("/api/evolution/DEP:93?geographie=2019")
        assert r.status_code in (400, 422) and "erreur" in r.json()
        assert c.get("/api/evolution/DEP:999").status_code == 404
        assert "pas historisés" in c.get("/openapi.json").text
    with TestClient(creer_application(base_demo)) as c:
        r = c.get("/api/evolution/FR")
        assert r.status_code == 400 and "essqpv historique" in r.json()["erreur"]


def test_exports_evolution(base_historique, base_demo, tmp_path):
    import openpyxl
    import polars as pl

    from essqpv.outputs import exporter
    s = HI.evolution(base_historique, "DEP:93", "2024")
    xlsx = exporter(base_historique, "DEP:93", format="xlsx", sortie=tmp_path)[0]
    classeur = openpyxl.load_workbook(xlsx)
    assert "Évolution" in classeur.sheetnames and "Créations et fermetures" in classeur.sheetnames
    ws = classeur["Évolution"]
    lignes = list(ws.iter_rows(values_only=True))
    assert lignes[0][0] == "Au 1er janvier (ou millésime)"
    assert lignes[1][0] == "2008-01-01" and lignes[1][2] == s["qpv"]["etablissements"][0]
    textes = " ".join(str(c) for l in lignes for c in l if c)
    assert "pas historisés" in textes and "ne pas citer" in textes
    csv = [p for p in exporter(base_historique, "DEP:93", format="csv", sortie=tmp_path)
           if p.name.endswith("-evolution.csv")]
    df = pl.read_csv(csv[0])
    assert df.height == len(s["points"])
    # establishment counts are public: every cell is a number, the secret column empty
    assert df["employeurs_qpv"].to_list() == s["qpv"]["employeurs"]
    assert df["secret"].fill_null("").str.len_chars().sum() == 0
    # without series, no such sheet
    xlsx = exporter(base_demo, "FR", format="xlsx", sortie=tmp_path / "sans")[0]
    assert "Évolution" not in openpyxl.load_workbook(xlsx).sheetnames
