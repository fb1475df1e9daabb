"""essqpv.lookup and ``essqpv localiser`` on the real contours (embedded 2015 geography, codes
``QP…``, asked for explicitly; the 2024 default is tested in ``test_qpv2024.py``).

The tiny DuckDB base below is built by hand with the columns of docs/architecture.md
(table ``etablissements``), so that the lookup is tested independently of the builder.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import openpyxl
import polars as pl
import pyproj
import pytest
import shapely
from typer.testing import CliRunner

from essqpv.cli import app
from essqpv.config import MARQUE_SYNTHETIQUE
from essqpv.errors import BaseInvalide, ColonneManquante, FichierInvalide, ParametreInvalide
from functools import partial

from essqpv import lookup
from essqpv.lookup import index_qpv, localiser_siret
from essqpv.sources.qpv import lire_qpv

# Every lookup below asks for the 2015 geography (a test may still pass another layer).
localiser_points = partial(lookup.localiser_points, couche="2015")
localiser_xy = partial(lookup.localiser_xy, couche="2015")
localiser_fichier = partial(lookup.localiser_fichier, couche="2015")

DONNEES = Path(__file__).resolve().parent / "data" / "qpv"
COLONNES = ["qpv_code", "qpv_nom", "qpv_communes", "dans_qpv", "qpv_code_300m",
            "distance_qpv_m", "statut"]


@pytest.fixture(scope="module")
def couche():
    return lire_qpv(geographie="2015")


def _interieur(couche, code):
    p = shapely.point_on_surface(couche.geometries[list(couche.codes).index(code)])
    return p.x, p.y


def _a_distance(couche, code, metres):
    """A lon/lat point `metres` away from the QPV boundary (negative = inside)."""
    i = list(couche.codes).index(code)
    epsg = int(couche.epsg_metriques[i])
    ring = shapely.get_exterior_ring(shapely.get_geometry(
        shapely.buffer(couche.geometries_metriques()[i], metres), 0))
    x, y = shapely.get_coordinates(ring)[0]
    return pyproj.Transformer.from_crs(epsg, 4326, always_xy=True).transform(x, y)


# ---------------------------------------------------------------- points

def test_points_dedans_dehors(couche):
    lon1, lat1 = _interieur(couche, "QP093001")
    r = localiser_points([lon1, 2.3522], [lat1, 48.8566])
    assert r.columns == ["lon", "lat"] + COLONNES
    assert r["qpv_code"].to_list() == ["QP093001", None]
    assert r["qpv_nom"].to_list() == ["Secteur Gare - Aviatic", None]
    assert r["qpv_communes"].to_list() == ["Le Bourget", None]
    assert r["dans_qpv"].to_list() == [True, False]
    assert r["statut"].to_list() == ["localise", "localise"]
    assert r["distance_qpv_m"].to_list()[0] == 0.0


def test_quelques_metres_de_part_et_d_autre(couche):
    dedans = _a_distance(couche, "QP035001", -2)
    dehors = _a_distance(couche, "QP035001", 2)
    r = localiser_points([dedans[0], dehors[0]], [dedans[1], dehors[1]])
    assert r["qpv_code"].to_list() == ["QP035001", None]
    assert r["qpv_code_300m"].to_list() == ["QP035001", "QP035001"]
    assert r["distance_qpv_m"].to_list() == [0.0, 2.0]


def test_sommet_du_contour_compte_dedans(couche):
    g = couche.geometries[list(couche.codes).index("QP013001")]
    x, y = shapely.get_coordinates(g)[5]
    assert localiser_points(x, y)["qpv_code"].to_list() == ["QP013001"]


def test_quartier_en_plusieurs_parties(couche):
    parties = shapely.get_parts(couche.geometries[list(couche.codes).index("QP976005")])
    assert len(parties) == 4
    p = shapely.point_on_surface(parties)
    r = localiser_points(shapely.get_x(p), shapely.get_y(p))
    assert r["qpv_code"].to_list() == ["QP976005"] * 4


@pytest.mark.parametrize("code,epsg", [("QP974001", 2975), ("QP973001", 2972),
                                       ("QP976001", 4471), ("QP971001", 5490)])
def test_outre_mer_en_crs_local(couche, code, epsg):
    lon, lat = _interieur(couche, code)
    x, y = pyproj.Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    r = localiser_xy(x, y, epsg)
    assert r.columns == ["x", "y", "epsg", "lon", "lat"] + COLONNES
    assert r["qpv_code"].to_list() == [code] and r["statut"].to_list() == ["localise"]


def test_point_dans_l_ocean_a_un_statut():
    r = localiser_points(-30.0, 40.0)
    assert r["statut"].to_list() == ["hors_zone"] and r["dans_qpv"].to_list() == [None]
    r = localiser_xy(652_000, 6_862_000, 2975)  # Paris read in the Réunion CRS
    assert r["statut"].to_list() == ["hors_zone"] and r["lon"].to_list() == [None]


def test_point_manquant():
    r = localiser_points([None], [48.0])
    assert r["statut"].to_list() == ["sans_coordonnees"] and r["lon"].to_list() == [None]


@pytest.mark.parametrize("lon,lat,message", [
    ("abc", 48.9, "Coordonnée invalide \\(longitude\\) : 'abc' n'est pas un nombre"),
    (2.35, 95, "Latitude hors de \\[-90, 90\\] : 95"),
    (200, 45, "Longitude hors de \\[-180, 180\\] : 200"),
])
def test_coordonnees_invalides(lon, lat, message):
    with pytest.raises(ParametreInvalide, match=message):
        localiser_points(lon, lat)


def test_epsg_et_perimetre_invalides():
    with pytest.raises(ParametreInvalide, match="Code EPSG inconnu : 999999"):
        localiser_xy(1, 2, 999999)
    with pytest.raises(ParametreInvalide, match="Code EPSG invalide"):
        localiser_xy(1, 2, "lambert")
    with pytest.raises(ParametreInvalide, match="Périmètre invalide"):
        localiser_points(2.35, 48.86, tampon_m=-5)


def test_autre_couche_lambert93(partage, couche):
    lon, lat = _interieur(couche, "QP093001")
    chemin = partage / "qpv" / "2015" / "QP_METROPOLE_LB93.shp"
    r = localiser_points(lon, lat, couche=chemin, tampon_m=100)
    assert r["qpv_code"].to_list() == ["QP093001"] and "qpv_code_100m" in r.columns
    assert index_qpv(chemin) is index_qpv(chemin)  # read and indexed once


# ---------------------------------------------------------------- SIRET (hand-built base)

@pytest.fixture(scope="module")
def base(tmp_path_factory, couche):
    chemin = tmp_path_factory.mktemp("base") / "essqpv.duckdb"
    lon, lat = _interieur(couche, "QP093001")
    con = duckdb.connect(str(chemin))
    con.execute("""CREATE TABLE millesimes (millesime VARCHAR, geographie_qpv VARCHAR,
        tampon_m INTEGER, date_construction TIMESTAMP, version VARCHAR, synthetique BOOLEAN,
        avec_emplois BOOLEAN, sources JSON, controle JSON, accord_qpv_insee JSON,
        avertissements JSON)""")
    con.execute("INSERT INTO millesimes VALUES ('2025-01', '2015', 300, now(), '0.1.0', true, "
                "false, '[]', '{}', NULL, '[]')")
    con.execute("""CREATE TABLE etablissements (millesime VARCHAR, siret VARCHAR,
        denomination VARCHAR, enseigne VARCHAR, famille VARCHAR, adresse VARCHAR,
        code_commune VARCHAR, commune VARCHAR, lon DOUBLE, lat DOUBLE,
        source_coordonnees VARCHAR, localise BOOLEAN, motif_non_localise VARCHAR, qpv VARCHAR,
        qpv_tampon VARCHAR, distance_qpv_m DOUBLE)""")
    con.execute("INSERT INTO etablissements VALUES "
                "('2025-01', '12345678900011', 'ASSOCIATION DU BOURGET', NULL, 'association', "
                "'1 RUE X 93350 LE BOURGET', '93013', '93013', ?, ?, 'geolocalisation', true, "
                "NULL, 'QP093001', 'QP093001', 0.0), "
                "('2025-01', '98765432100022', 'SCOP Y', NULL, 'cooperative', NULL, '75056', "
                "'75056', NULL, NULL, NULL, false, 'non_diffusible', NULL, NULL, NULL)",
                [lon, lat])
    con.execute("CREATE TABLE qpv (millesime VARCHAR, code_qp VARCHAR, nom_qp VARCHAR, "
                "communes VARCHAR)")
    con.execute("INSERT INTO qpv VALUES ('2025-01', 'QP093001', 'Secteur Gare - Aviatic', "
                "'Le Bourget')")
    con.close()
    return chemin


def test_siret_dans_un_qpv(base):
    r = localiser_siret(base, "123 456 789 00011")
    assert r["trouve"] and r["statut"] == "localise" and r["millesime"] == "2025-01"
    assert r["qpv_code"] == "QP093001" and r["qpv_nom"] == "Secteur Gare - Aviatic"
    assert r["dans_qpv"] is True and r["qpv_code_300m"] == "QP093001"
    assert r["etablissement"]["denomination"] == "ASSOCIATION DU BOURGET"
    assert r["avertissements"] == [MARQUE_SYNTHETIQUE]
    json.dumps(r)  # plain data


def test_siret_non_localise_absent_et_recalcul(base, partage):
    r = localiser_siret(base, "98765432100022")
    assert r["trouve"] and r["statut"] == "non_diffusible" and r["dans_qpv"] is None
    r = localiser_siret(base, "11111111111111")
    assert not r["trouve"] and r["statut"] == "siret_absent"
    r = localiser_siret(base, "12345678900011",
                        couche=partage / "qpv" / "2015" / "QP_METROPOLE_LB93.shp")
    assert r["qpv_code"] == "QP093001" and r["geographie_qpv"] == "2015"


@pytest.mark.parametrize("siret", ["1234", "1234567890001A", "123456789000111", ""])
def test_siret_de_mauvaise_longueur(base, siret):
    with pytest.raises(ParametreInvalide, match="SIRET invalide"):
        localiser_siret(base, siret)


def test_base_absente(tmp_path):
    with pytest.raises(BaseInvalide):
        localiser_siret(tmp_path / "absente.duckdb", "12345678900011")


# ---------------------------------------------------------------- files

def test_fichier_csv_exemple(tmp_path):
    sortie = tmp_path / "sortie.csv"
    resume = localiser_fichier(DONNEES / "points_exemple.csv", sortie)
    assert resume["mode"] == "lonlat" and resume["lignes"] == 8
    assert resume["colonnes"] == {"lon": "longitude", "lat": "latitude"}
    assert resume["par_statut"] == {"localise": 4, "sans_coordonnees": 1,
                                    "coordonnees_invalides": 2, "hors_zone": 1}
    assert resume["dans_qpv"] == 3 and resume["geographie_qpv"] == "2015"
    r = pl.read_csv(sortie, separator=";", infer_schema=False)
    entree = pl.read_csv(DONNEES / "points_exemple.csv", separator=";", infer_schema=False)
    assert r.columns == entree.columns + COLONNES
    assert r.select(entree.columns).equals(entree)  # every input row and column, in order
    assert r["qpv_code"].to_list() == ["QP093001", "QP035001", None, None, None, None,
                                       "QP974001", None]
    assert r["dans_qpv"].to_list() == ["oui", "oui", "non", None, None, None, "oui", None]
    assert r["statut"].to_list() == ["localise", "localise", "localise", "sans_coordonnees",
                                     "coordonnees_invalides", "hors_zone", "localise",
                                     "coordonnees_invalides"]
    # source and licence beside the CSV (a comment line would break CSV readers)
    assert resume["sources"] == str(tmp_path / "sortie_sources.csv")
    src = pl.read_csv(resume["sources"], separator=";", infer_schema=False)
    assert src.columns == ["cle", "valeur"]  # (the BOM is read as such by polars)
    valeurs = dict(src.iter_rows())
    assert "Licence Ouverte" in valeurs["Contours des QPV"]
    assert "ANCT" in valeurs["Contours des QPV"] and "2015" in valeurs["Contours des QPV"]
    assert valeurs["Données synthétiques"] == "non" and not resume["synthetique"]
    assert "pas une attestation" in valeurs["Portée"]
    assert valeurs["Fichier complété"] == "points_exemple.csv"
    assert (tmp_path / "sortie_sources.csv").read_bytes().startswith("\ufeff".encode())


def test_fichier_xy_epsg_vers_xlsx(tmp_path, couche):
    lon, lat = _interieur(couche, "QP974001")
    x, y = pyproj.Transformer.from_crs(4326, 2975, always_xy=True).transform(lon, lat)
    entree = tmp_path / "xy.csv"
    entree.write_text(f"ref,X,Y,EPSG\na,{x:.2f},{y:.2f},2975\nb,652000,6862000,2154\n"
                      "c,1,2,999999\nd,12,,2154\n", encoding="utf-8")
    resume = localiser_fichier(entree, tmp_path / "xy.xlsx")
    assert resume["mode"] == "xy" and resume["colonnes"] == {"x": "X", "y": "Y",
                                                            "epsg": "EPSG"}
    feuille = openpyxl.load_workbook(tmp_path / "xy.xlsx").active
    lignes = [list(r) for r in feuille.iter_rows(values_only=True)]
    assert lignes[0] == ["ref", "X", "Y", "EPSG"] + COLONNES
    assert [ligne[4] for ligne in lignes[1:]] == ["QP974001", None, None, None]
    assert [ligne[-1] for ligne in lignes[1:]] == ["localise", "localise", "coordonnees_invalides",
                                           "sans_coordonnees"]
    classeur = openpyxl.load_workbook(tmp_path / "xy.xlsx")
    assert classeur.sheetnames == ["qpv", "sources"]
    assert resume["sources"] == f"{tmp_path / 'xy.xlsx'} (feuille sources)"
    sources = dict(r for r in classeur["sources"].iter_rows(values_only=True))
    assert sources.pop("cle") == "valeur" and "Licence Ouverte" in sources["Contours des QPV"]
    assert sources["Données synthétiques"] == "non" and not (tmp_path / "xy_sources.csv").exists()


def test_fichier_xlsx_garde_les_valeurs(tmp_path, couche):
    lon, lat = _interieur(couche, "QP093001")
    classeur = openpyxl.Workbook()
    f = classeur.active
    f.append(["Nom", "Code postal", "Lat", "Lon"])
    f.append(["A", "01000", lat, lon])
    f.append(["B", 93350, "texte", lon])
    classeur.save(tmp_path / "e.xlsx")
    resume = localiser_fichier(tmp_path / "e.xlsx")
    assert resume["sortie"] == str(tmp_path / "e_qpv.xlsx")
    lignes = list(openpyxl.load_workbook(tmp_path / "e_qpv.xlsx").active.iter_rows(
        values_only=True))
    assert lignes[1][:4] == ("A", "01000", lat, lon) and lignes[1][4] == "QP093001"
    assert lignes[2][:4] == ("B", 93350, "texte", lon) and lignes[2][-1] == (
        "coordonnees_invalides")


def test_fichier_de_siret(tmp_path, base):
    entree = tmp_path / "sirets.csv"
    entree.write_text("siret;nom\n12345678900011;A\n98765432100022;B\n123;C\n;D\n"
                      "11111111111111;E\n", encoding="utf-8")
    resume = lookup.localiser_fichier(entree, tmp_path / "s.csv", base=base)  # the base's QPV
    assert resume["mode"] == "siret" and resume["avertissements"] == [MARQUE_SYNTHETIQUE]
    r = pl.read_csv(tmp_path / "s.csv", separator=";", infer_schema=False)
    assert r["siret"].to_list() == ["12345678900011", "98765432100022", "123", None,
                                    "11111111111111"]
    assert r["statut"].to_list() == ["localise", "non_diffusible", "siret_invalide",
                                     "sans_siret", "siret_absent"]
    assert r["qpv_code"].to_list() == ["QP093001", None, None, None, None]
    # a synthetic base: said on every row and in the sources, which name the base
    assert resume["synthetique"]
    assert r["avertissement"].to_list() == [MARQUE_SYNTHETIQUE] * 5
    src = dict(pl.read_csv(tmp_path / "s_sources.csv", separator=";",
                           infer_schema=False).iter_rows())
    assert src["Données synthétiques"] == MARQUE_SYNTHETIQUE
    assert "essqpv.duckdb, millésime 2025-01" in src["Établissements"]
    with pytest.raises(ParametreInvalide, match="--base"):
        localiser_fichier(entree, tmp_path / "t.csv")
    # the sources file beside the output never overwrites the input
    with pytest.raises(ParametreInvalide, match="sources de s.csv serait l'entrée"):
        lookup.localiser_fichier(tmp_path / "s_sources.csv", tmp_path / "s.csv", base=base)


def test_colonnes_imposees_et_erreurs(tmp_path):
    entree = tmp_path / "p.csv"
    entree.write_text("a;b\n2.35;48.86\n", encoding="utf-8")
    with pytest.raises(ColonneManquante, match="aucune colonne reconnue"):
        localiser_fichier(entree, tmp_path / "o.csv")
    resume = localiser_fichier(entree, tmp_path / "o.csv", colonnes={"lon": "a", "lat": "b"})
    assert resume["par_statut"] == {"localise": 1}
    with pytest.raises(ColonneManquante, match="« zz » absente"):
        localiser_fichier(entree, tmp_path / "o.csv", colonnes={"lon": "zz", "lat": "b"})
    (tmp_path / "p.json").write_text("{}")
    with pytest.raises(FichierInvalide, match="format non pris en charge"):
        localiser_fichier(tmp_path / "p.json")


def test_fichier_windows_1252_virgule(tmp_path, couche):
    lon, lat = _interieur(couche, "QP093001")
    entree = tmp_path / "w.csv"
    entree.write_bytes(f"libellé,longitude,latitude\nQuartier été,{lon},{lat}\n"
                       .encode("cp1252"))
    localiser_fichier(entree, tmp_path / "w_out.csv")
    r = pl.read_csv(tmp_path / "w_out.csv", infer_schema=False)
    assert r["libellé"].to_list() == ["Quartier été"] and r["qpv_code"].to_list() == ["QP093001"]


# ---------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_aide_en_francais():
    r = runner.invoke(app, ["localiser", "--help"])
    assert r.exit_code == 0
    assert "Dire si un SIRET, un point ou chaque ligne d'un fichier est dans un QPV" in r.output
    for option in ("--siret", "--lon", "--epsg", "--fichier", "--qpv", "--perimetre",
                   "--format", "--colonne-siret"):
        assert option in r.output


def test_cli_point_json(couche):
    lon, lat = _interieur(couche, "QP093001")
    r = runner.invoke(app, ["localiser", "--geographie", "2015", "--lon", str(lon), "--lat", str(lat),
                            "--perimetre", "200m", "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["qpv_code"] == "QP093001" and d["qpv_code_200m"] == "QP093001"
    assert d["geographie_qpv"] == "2015" and d["perimetre"] == "200m"


def test_cli_point_texte_et_xy(couche):
    r = runner.invoke(app, ["localiser", "--geographie", "2015", "--lon", "2.3522", "--lat", "48.8566"])
    assert r.exit_code == 0 and "Hors QPV (périmètre strict)." in r.output
    assert "pas une attestation officielle" in r.output.replace("\n", " ")
    lon, lat = _interieur(couche, "QP974001")
    x, y = pyproj.Transformer.from_crs(4326, 2975, always_xy=True).transform(lon, lat)
    r = runner.invoke(app, ["localiser", "--geographie", "2015", "--x", str(x), "--y", str(y), "--epsg", "2975"])
    assert r.exit_code == 0 and "Dans le QPV QP974001 « Le Gol » (Saint-Louis)." in r.output


def test_cli_fichier_et_siret(tmp_path, base):
    r = runner.invoke(app, ["localiser", "--geographie", "2015", "--fichier", str(DONNEES / "points_exemple.csv"),
                            "--sortie", str(tmp_path / "o.csv")])
    assert r.exit_code == 0, r.output
    assert "8 lignes lues dans points_exemple.csv" in r.output
    assert (tmp_path / "o.csv").exists()
    assert "sources et licences :" in " ".join(r.output.split())
    assert (tmp_path / "o_sources.csv").exists()
    r = runner.invoke(app, ["localiser", "--siret", "12345678900011", "--base", str(base)])
    assert r.exit_code == 0 and "ASSOCIATION DU BOURGET" in r.output
    assert "Dans le QPV QP093001" in r.output and MARQUE_SYNTHETIQUE in r.output


@pytest.mark.parametrize("lot", [50_000, 2])
def test_xlsx_ecrit_en_bloc_relu(tmp_path, lot):
    """The bulk XLSX writer, read back by openpyxl: header bold and frozen, texts exact
    (XML characters, spaces, a leading ``=`` stays text: never a formula), numbers as
    numbers, empty cells empty (cells carry no reference: each follows the previous),
    control characters XML forbids dropped; in lots of 2 rows, a lot without any character
    to escape is written as it is."""
    from essqpv.lookup import ecrire_xlsx
    textes = pl.Series(["a & b <c>", "  espaces  ", "=HYPERLINK(\"x\")", None, "é\x01€"])
    nombres = pl.Series([1.5, None, 93350.0, float("nan"), -2.0])
    ecrire_xlsx(tmp_path / "t.xlsx", "qpv", ["texte", "nombre", "mixte"],
                [(None, textes), (nombres, None), (nombres, textes)], lot=lot)
    classeur = openpyxl.load_workbook(tmp_path / "t.xlsx")
    f = classeur.active
    assert f.title == "qpv" and f.freeze_panes == "A2" and f["A1"].font.b
    lignes = [list(r) for r in f.iter_rows(values_only=True)]
    assert lignes == [["texte", "nombre", "mixte"],
                      ["a & b <c>", 1.5, 1.5], ["  espaces  ", None, "  espaces  "],
                      ['=HYPERLINK("x")', 93350, 93350], [None, None, None],
                      ["é€", -2, -2]]
    assert f["A4"].data_type == "s" and isinstance(f["B4"].value, int)
