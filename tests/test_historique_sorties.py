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


@pytest.fixture(scope="module")
def base_historique_publiee(tmp_path_factory) -> Path:
    """A small register across the 2015 → 2024 redrawing (``tests/_transition_fabrique``)
    with its protected publication stored, then its historical files (synthetic, official
    schemas) built by ``essqpv historique``: the series answers are stored with the
    publication. One of them is then altered on purpose (a figure no computation gives), to
    see that every output reads the stored answer by its key."""
    import json

    import duckdb

    from essqpv import base as B
    from essqpv.synthese import generer_historiques
    from tests import _transition_fabrique as TF
    _, publiee = TF.bases(tmp_path_factory)
    d = tmp_path_factory.mktemp("historique-publiee")
    base = d / "publiee.duckdb"
    B.fermer_connexions()
    shutil.copyfile(publiee, base)
    fichiers = {"etablissements": publiee.parent / "etab.csv",
                "unites_legales": publiee.parent / "ul.csv"}
    h = generer_historiques(fichiers, "2024-01", dossier=d / "historiques")["fichiers"]
    HI.construire_historique(
        base=base, etablissements_historique=h["etablissements_historique"],
        unites_legales_historique=h["unites_legales_historique"],
        etablissements=fichiers["etablissements"])
    B.fermer_connexions()
    con = duckdb.connect(str(base))
    try:
        texte = con.execute("SELECT json FROM publication_reponses WHERE genre = 'evolution' "
                            "AND territoire = 'DEP:93' AND perimetre = 'strict'").fetchone()[0]
        r = json.loads(texte)
        r["qpv"]["etablissements"][0] = MARQUE_STOCKEE
        con.execute("UPDATE publication_reponses SET json = ? WHERE genre = 'evolution' AND "
                    "territoire = 'DEP:93'", [json.dumps(r, ensure_ascii=False)])
    finally:
        con.close()
    return base


#: the altered figure of the stored answer of DEP:93 (no series of the demo has it)
MARQUE_STOCKEE = 987_654


def test_sorties_lisent_la_reponse_stockee(base_historique_publiee, tmp_path):
    """With the publication stored, the API (fast path and router), the static site, the
    report and the exports give the stored series answer of the territory, read by its key
    (genre ``evolution`` for the vintage's geography, ``evolution_2015`` for the other), not a
    recomputed one; a territory outside the plan gets the 404 of the plan."""
    import json

    import duckdb
    import openpyxl
    from fastapi.testclient import TestClient

    from essqpv import base as B
    from essqpv.outputs import exporter, rapport
    from essqpv.web import creer_application, publier
    base = base_historique_publiee
    B.fermer_connexions()
    con = duckdb.connect(str(base), read_only=True)
    try:
        stockees = {(g, t): j for g, t, j in con.execute(
            "SELECT genre, territoire, json FROM publication_reponses WHERE genre LIKE "
            "'evolution%' AND territoire IN ('DEP:93', 'FR')").fetchall()}
    finally:
        con.close()
    assert set(stockees) == {("evolution", "DEP:93"), ("evolution", "FR"),
                             ("evolution_2015", "DEP:93"), ("evolution_2015", "FR")}
    assert HI.evolution(base, "DEP:93")["qpv"]["etablissements"][0] == MARQUE_STOCKEE
    with TestClient(creer_application(base)) as c:
        for _ in range(2):  # the router, then the cache / fast path: the stored bytes
            r = c.get("/api/evolution/DEP:93")
            assert r.status_code == 200 and r.content == stockees[("evolution", "DEP:93")] \
                .encode("utf-8")
        r = c.get("/api/evolution/DEP:93?geographie=2015")
        assert r.status_code == 200 and r.json() == json.loads(
            stockees[("evolution_2015", "DEP:93")]) and r.json()["geographie_qpv"] == "2015"
        r = c.get("/api/evolution/DEP:93?millesime=2024-01")
        assert r.json()["qpv"]["etablissements"][0] == MARQUE_STOCKEE
        r = c.get("/api/evolution/DEP:93?millesime=2023-01")
        assert r.status_code == 400 and "2024-01" in r.json()["erreur"]
    sortie = tmp_path / "site"
    publier(base, sortie, territoires=["DEP:93"], fichiers="aucun", rapports=False)
    for genre in ("evolution", "evolution_2015"):
        f = sortie / "donnees" / "2024-01" / "strict" / genre / "DEP_93.json"
        assert f.read_bytes() == stockees[(genre, "DEP:93")].encode("utf-8")
    html = rapport(base, "DEP:93", format="html", sortie=tmp_path).read_text("utf-8")
    assert '<section id="evolution"' in html and "987\u202f654" in html
    xlsx = exporter(base, "DEP:93", format="xlsx", sortie=tmp_path)[0]
    ws = openpyxl.load_workbook(xlsx)["Évolution"]
    assert list(ws.iter_rows(values_only=True))[1][2] == MARQUE_STOCKEE


def test_dernier_point_publie_egal_aux_indicateurs(base_historique):
    """What a user sees: the series' last point (the vintage) gives the same counts as the
    vintage's published indicators — ESS establishments in QPV, and of them the
    non-employers — for France, a département and a commune."""
    from essqpv.indicators import indicateurs
    for t in ("FR", "DEP:93", "COM:93066"):
        s = HI.evolution(base_historique, t)
        i = indicateurs(base_historique, t)
        assert s["points"][-1] == i["millesime"]
        assert s["qpv"]["etablissements"][-1] == i["etablissements_en_qpv"], t
        assert s["qpv"]["non_employeurs"][-1] == i["non_employeurs_en_qpv"], t
