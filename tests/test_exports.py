"""Tests of the exports: each file is opened again and compared with the JSON indicators."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from essqpv import reference
from essqpv.config import LICENCE_DONNEES, MARQUE_SYNTHETIQUE
from essqpv.errors import ParametreInvalide
from essqpv.outputs import exporter
from essqpv.outputs.exports import ENTETES, FEUILLES
from essqpv.outputs.transition import FEUILLES_TRANSITION


@pytest.fixture(scope="module")
def indicateurs_fr(base_demo) -> dict:
    from essqpv.indicators import indicateurs
    return indicateurs(base_demo, "FR")


@pytest.fixture(scope="module")
def classeur(base_demo, tmp_path_factory):
    openpyxl = pytest.importorskip("openpyxl")
    d = tmp_path_factory.mktemp("xlsx")
    chemins = exporter(base_demo, territoire="DEP:93", format="xlsx", sortie=d)
    assert [p.name for p in chemins] == ["ess-qpv-dep-93-2024-01-strict.xlsx"]
    return openpyxl.load_workbook(chemins[0])


def _lignes(ws) -> list[dict]:
    entetes = [c.value for c in ws[1]]
    out = []
    for row in ws.iter_rows(min_row=2, values_only=True):
        if all(v is None for v in row):
            break
        out.append(dict(zip(entetes, row)))
    return out


def test_xlsx_feuilles_entetes_formats(classeur):
    # the 2015 → 2024 transition of the publication after the standard tables
    assert classeur.sheetnames == [*FEUILLES.values(), *FEUILLES_TRANSITION.values(), "Sources"]
    assert "Nouvelle carte 2024" in classeur.sheetnames
    ws = classeur["Secteurs"]
    assert [c.value for c in ws[1]] == ["Secteur", "Salariés en QPV", "Part en QPV",
                                        "Part en France", "Écart (points)", "Secret statistique"]
    assert ws.freeze_panes == "A2"
    formats = {"B": "#,##0", "C": "0.0%", "D": "0.0%", "E": "+0.0;-0.0;0.0"}
    vus = set()
    for ligne in range(2, ws.max_row + 1):
        for col, fmt in formats.items():
            cellule = ws[f"{col}{ligne}"]
            if isinstance(cellule.value, (int, float)):
                assert cellule.number_format == fmt, cellule.coordinate
                vus.add(col)
            elif cellule.value == "s":
                assert cellule.font.i  # the secret mark, in italics
    assert "B" in vus  # (published figures: a sector without employer in QPV is 0)
    assert classeur["Établissements"]["A1"].value == ENTETES["siret"]


def test_xlsx_valeurs_egales_au_json(base_demo, classeur):
    from essqpv.indicators import indicateurs, indicateurs_qpv
    ind = indicateurs(base_demo, "DEP:93")
    fr = indicateurs(base_demo, "FR")
    # key figures: territory and France columns equal the JSON
    cles = {r["Indicateur"]: r for r in _lignes(classeur["Chiffres clés"])}
    for cle in ("etablissements_employeurs", "salaries", "part_associations", "part_femmes",
                "part_cdi", "part_contrats_aides", "part_temps_complet",
                "part_emploi_ess_en_qpv", "salaries_ess_territoire"):
        for colonne, r in (("Territoire", ind), ("France entière", fr)):
            c = r["chiffres_cles"]
            assert cles[cle][colonne] == ("s" if cle in c["secret"] else c[cle]), (cle, colonne)
    assert cles["etablissements_en_qpv"]["Territoire"] == ind["etablissements_en_qpv"]
    for f, v in ind["chiffres_cles"]["parts_familles"].items():
        if f != "association":
            assert cles[f"part_{f}"]["Territoire"] == v
    # sector table: numbers equal, "s" where the JSON suppresses, rows in the same order
    secteurs = _lignes(classeur["Secteurs"])
    assert [r["Secteur"] for r in secteurs] == [x["secteur"] for x in ind["tableau_secteurs"]]
    for r, x in zip(secteurs, ind["tableau_secteurs"]):
        for col, cle in (("Salariés en QPV", "salaries_qpv"), ("Part en QPV", "part_qpv"),
                         ("Part en France", "part_france"), ("Écart (points)", "ecart_points")):
            attendu = "s" if cle in x["secret"] else x[cle]
            assert r[col] == attendu, (x["secteur"], cle)
    marques = sum(v == "s" for r in secteurs for v in r.values())
    assert marques == sum(len(x["secret"]) for x in ind["tableau_secteurs"]) and marques > 0
    # QPV: one row per QPV, figures of indicateurs_qpv
    qpv = {r["code_qp"]: r for r in indicateurs_qpv(base_demo, territoire="DEP:93")}
    lignes_qpv = _lignes(classeur["QPV"])
    assert len(lignes_qpv) == len(qpv) == 75  # QPV 2024 of Seine-Saint-Denis
    for r in lignes_qpv:
        x = qpv[r["Code QPV"]]
        assert r["Employeurs ESS en QPV"] == x["etablissements_employeurs"]
        assert r["Salariés ESS en QPV"] == ("s" if x["secret"] else x["salaries"])
    # regions come from the FR answer
    regions = _lignes(classeur["Régions"])
    assert len(regions) == len(fr["regions"])
    # the list of suppressed cells
    assert len(_lignes(classeur["Secret"])) == len(ind["secret"]) + len(fr["secret"])


def test_xlsx_sources(classeur):
    ws = classeur["Sources"]
    valeurs = [c for row in ws.iter_rows(values_only=True) for c in row if c is not None]
    assert ws["A1"].value == MARQUE_SYNTHETIQUE
    assert "Seine-Saint-Denis (DEP:93)" in valeurs
    assert "2024-01" in valeurs and "2024" in valeurs
    assert LICENCE_DONNEES in valeurs
    assert "StockEtablissement_utf8.zip" in valeurs
    assert "Empreinte SHA-256" in valeurs
    # the synthetic mark under every table sheet as well
    for nom in FEUILLES.values():
        marques = [c for row in classeur[nom].iter_rows(values_only=True) for c in row
                   if c == MARQUE_SYNTHETIQUE]
        assert marques, nom


def test_gpkg_couches_comptes_crs(base_demo, tmp_path):
    pyogrio = pytest.importorskip("pyogrio")
    from essqpv.base import lister_etablissements
    from essqpv.indicators import indicateurs_qpv
    (chemin,) = exporter(base_demo, "DEP:93", format="gpkg", sortie=tmp_path)
    assert chemin.name == "ess-qpv-dep-93-2024-01-strict.gpkg"
    couches = {nom: type_g for nom, type_g in pyogrio.list_layers(chemin)}
    assert couches == {"qpv": "MultiPolygon", "etablissements": "Point"}
    qpv = indicateurs_qpv(base_demo, territoire="DEP:93")
    info = pyogrio.read_info(chemin, layer="qpv")
    assert info["features"] == len(qpv) == 75  # QPV 2024 of Seine-Saint-Denis
    assert info["crs"] == "EPSG:4326"
    # every QPV polygon is there and carries the protected figures
    _, _, geoms, champs = pyogrio.raw.read(chemin, layer="qpv")
    noms = list(pyogrio.read_info(chemin, layer="qpv")["fields"])
    lignes = [dict(zip(noms, v)) for v in zip(*champs)]
    assert all(g is not None for g in geoms)
    par_code = {r["code_qp"]: r for r in qpv}
    for r in lignes:
        x = par_code[r["code_qp"]]
        assert r["etablissements_employeurs"] == x["etablissements_employeurs"]
        if x["secret"]:
            assert r["secret"] == "salaries:" + x["secret"]["salaries"]
        else:
            assert r["salaries"] == x["salaries"]
    # establishments: the placed ones of the public list, public attributes only
    total, places, page = 0, 0, 1
    while True:
        p = lister_etablissements(base_demo, "DEP:93", page=page, taille=1000)
        places += sum(1 for e in p["etablissements"] if e["lon"] is not None)
        total = p["total"]
        if page * 1000 >= total:
            break
        page += 1
    info = pyogrio.read_info(chemin, layer="etablissements")
    assert info["features"] == places
    assert not {"effectif", "effectif_estime", "femmes", "cdi"} & set(info["fields"])


def test_gpkg_lambert93(base_demo, tmp_path):
    pyogrio = pytest.importorskip("pyogrio")
    (chemin,) = exporter(base_demo, "DEP:93", format="gpkg", sortie=tmp_path, crs=2154)
    info = pyogrio.read_info(chemin, layer="qpv")
    assert info["crs"] == "EPSG:2154"
    xmin, ymin, xmax, ymax = info["total_bounds"]
    assert 640_000 < xmin < xmax < 680_000 and 6_850_000 < ymin < ymax < 6_880_000


def test_geojson_france(base_demo, tmp_path):
    pyogrio = pytest.importorskip("pyogrio")
    chemins = exporter(base_demo, format="geojson", sortie=tmp_path)
    assert [p.name for p in chemins] == ["ess-qpv-fr-2024-01-strict-qpv.geojson",
                                         "ess-qpv-fr-2024-01-strict-etablissements.geojson"]
    assert pyogrio.read_info(chemins[0])["features"] == reference.qpv2024().height
    with pytest.raises(ParametreInvalide, match="RFC 7946"):
        exporter(base_demo, format="geojson", sortie=tmp_path, crs=2154)


def test_csv_et_parquet_de_chaque_tableau(base_demo, indicateurs_fr, tmp_path):
    csv = exporter(base_demo, format="csv", sortie=tmp_path / "csv")
    pq = exporter(base_demo, format="parquet", sortie=tmp_path / "pq")
    attendus = [*FEUILLES, *FEUILLES_TRANSITION, "sources"]
    assert [p.stem.removeprefix("ess-qpv-fr-2024-01-strict-") for p in csv] == attendus
    assert [p.stem.removeprefix("ess-qpv-fr-2024-01-strict-") for p in pq] == attendus
    assert csv[0].read_bytes()[:3] == b"\xef\xbb\xbf"  # UTF-8 BOM for spreadsheets
    secteurs = pl.read_parquet(pq[1])
    assert secteurs["secteur"].to_list() == [x["secteur"] for x in
                                             indicateurs_fr["tableau_secteurs"]]
    for r, x in zip(secteurs.to_dicts(), indicateurs_fr["tableau_secteurs"]):
        assert r["salaries_qpv"] == x["salaries_qpv"]
        assert r["part_qpv"] == x["part_qpv"]
        assert r["ecart_points"] == x["ecart_points"]
    regions = pl.read_csv(csv[4], schema_overrides={"region": pl.String})
    assert regions.height == len(indicateurs_fr["regions"])
    secret = regions.filter(pl.col("secret").is_not_null())
    assert secret.height == sum(1 for r in indicateurs_fr["regions"] if r["secret"])
    assert secret["salaries"].null_count() == sum(
        1 for r in indicateurs_fr["regions"] if "salaries" in r["secret"])
    sources = dict(pl.read_parquet(pq[-1]).iter_rows())
    assert sources["Données synthétiques"] == MARQUE_SYNTHETIQUE
    assert sources["Licence des données"] == LICENCE_DONNEES


def test_parametres_invalides(base_demo, tmp_path):
    with pytest.raises(ParametreInvalide, match="Format d'export inconnu"):
        exporter(base_demo, format="shp", sortie=tmp_path)
    with pytest.raises(ParametreInvalide, match="EPSG:3857"):
        exporter(base_demo, format="gpkg", sortie=tmp_path, crs=3857)


def test_cli_exporter(base_demo, tmp_path):
    from typer.testing import CliRunner

    from essqpv.cli import app
    r = CliRunner().invoke(app, ["exporter", "--base", str(base_demo), "--territoire",
                                 "DEP:93", "--format", "parquet", "--sortie", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert len(list(Path(tmp_path).glob("*.parquet"))) == (len(FEUILLES) + len(FEUILLES_TRANSITION)
                                                           + 1)
    aide = CliRunner().invoke(app, ["exporter", "--help"])
    assert "Exporter les tableaux protégés" in aide.output


def test_chaque_csv_porte_la_marque_synthetique(base_demo, tmp_path):
    import csv as module_csv

    from essqpv.config import MARQUE_SYNTHETIQUE
    from essqpv.outputs import exporter
    for chemin in exporter(base_demo, "DEP:93", format="csv", sortie=tmp_path):
        with open(chemin, encoding="utf-8-sig", newline="") as f:
            lignes = list(module_csv.reader(f))
        assert any(MARQUE_SYNTHETIQUE in cellule for ligne in lignes for cellule in ligne), chemin


def test_table_liee_exportee(base_demo, tmp_path):
    """A linked table registered with table_liee is a sheet of the workbook and a CSV file,
    its suppressed cells marked "s" like the others."""
    openpyxl = pytest.importorskip("openpyxl")
    from essqpv.indicators import indicateurs_qpv
    from essqpv.outputs.exports import _TABLES_LIEES, FEUILLES_LIEES, table_liee

    @table_liee({"essai_liee": "Essai lié"})
    def essai(base, code, ind):
        lignes = indicateurs_qpv(base, territoire=code)[:5]
        return {"essai_liee": pl.DataFrame(
            [{"code_qp": q["code_qp"], "salaries": q["salaries"],
              "secret": "; ".join(f"{c}:{s}" for c, s in q["secret"].items()) or None}
             for q in lignes], schema={"code_qp": pl.String, "salaries": pl.Float64,
                                       "secret": pl.String})}
    try:
        (xlsx,) = exporter(base_demo, "DEP:93", format="xlsx", sortie=tmp_path)
        ws = openpyxl.load_workbook(xlsx)["Essai lié"]
        attendu = {q["code_qp"]: ("s" if q["secret"] else q["salaries"])
                   for q in indicateurs_qpv(base_demo, territoire="DEP:93")[:5]}
        assert {r["Code QPV"]: r["Salariés ESS en QPV"] for r in _lignes(ws)} == attendu
        csv = [p for p in exporter(base_demo, "DEP:93", format="csv", sortie=tmp_path / "c")
               if p.name.endswith("-essai_liee.csv")]
        assert len(csv) == 1 and MARQUE_SYNTHETIQUE in csv[0].read_text("utf-8-sig")
    finally:
        _TABLES_LIEES.remove(essai)
        FEUILLES_LIEES.pop("essai_liee")
