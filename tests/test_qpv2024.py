"""The 2024 priority geography, embedded and used by default (codes ``QN…``).

Points inside, outside and a few metres on either side of a boundary, in metropolitan
France and overseas, are checked against the real 2024 contours shipped in the package
(ANCT, 4-decimal copy); one test compares the embedded copy with the GeoJSON it was built
from (shipped in tests/data/partage).
"""
from __future__ import annotations

import json

import numpy as np
import pyproj
import pytest
import shapely
from typer.testing import CliRunner

from essqpv import lookup, reference
from essqpv.cli import app
from essqpv.errors import FichierInvalide, ParametreInvalide
from essqpv.sources.qpv import AVERTISSEMENT_2024, lire_qpv

runner = CliRunner()


@pytest.fixture(scope="module")
def couche():
    return lire_qpv()


def _i(couche, code):
    return list(couche.codes).index(code)


def _interieur(couche, code):
    p = shapely.point_on_surface(couche.geometries[_i(couche, code)])
    return p.x, p.y


def _a_distance(couche, code, metres):
    """A lon/lat point ``metres`` from the QPV boundary (negative = inside), measured in
    the metric CRS of its territory."""
    i = _i(couche, code)
    epsg = int(couche.epsg_metriques[i])
    metriques = couche.geometries_metriques()
    g = shapely.buffer(metriques[i], metres)
    g = max(shapely.get_parts(g), key=shapely.area)
    sommets = shapely.points(shapely.get_coordinates(shapely.get_exterior_ring(g)))
    # a vertex away from the neighbouring QPV (some share a boundary)
    voisins = shapely.union_all([m for j, m in enumerate(metriques) if j != i
                                 and couche.epsg_metriques[j] == epsg
                                 and shapely.distance(m, metriques[i]) < 100])
    libre = next(p for p in sommets if voisins.is_empty or shapely.distance(p, voisins) > 50)
    return pyproj.Transformer.from_crs(epsg, 4326, always_xy=True).transform(libre.x, libre.y)


def _cli(*args):
    r = runner.invoke(app, ["localiser", *args])
    assert r.exit_code == 0, r.output
    return r.output.replace("\n", " ")


# ---------------------------------------------------------------- the embedded layer

def test_contours_2024_integres_par_defaut(couche):
    assert couche.geographie == "2024" and len(couche) == 1584
    assert len(set(couche.codes)) == 1584 and all(c.startswith("QN") for c in couche.codes)
    assert shapely.is_valid(couche.geometries).all()
    assert couche.reparees == 586  # self-intersections left by the 4-decimal rounding
    assert couche.avertissement == AVERTISSEMENT_2024 and "≈ 11 m" in couche.avertissement
    par_dep = {d: int((couche.departements == d).sum())
               for d in ("971", "972", "973", "974", "976", "978", "987")}
    assert par_dep == {"971": 19, "972": 9, "973": 29, "974": 57, "976": 17, "978": 3,
                       "987": 88}
    assert int(np.isin(couche.departements, list(par_dep), invert=True).sum()) == 1362
    # French Polynesia: outside the Sirene register
    assert set(couche.departements[couche.hors_champ_sirene]) == {"987"}
    assert int(couche.hors_champ_sirene.sum()) == 88
    assert lire_qpv(geographie="2024") is couche and lire_qpv(geographie="2015") is not couche


def test_attributs_derives_du_cog():
    t = reference.qpv2024()
    assert t.columns == ["code_qp", "nom_qp", "communes", "noms_communes", "departement",
                         "region", "epci", "repare", "geometrie"]
    r = t.filter(t["code_qp"] == "QN00101M").row(0, named=True)
    assert (r["communes"], r["noms_communes"], r["departement"], r["region"], r["epci"]) == (
        "01053", "Bourg-en-Bresse", "01", "84", "200071751")
    multi = t.filter(t["communes"].str.contains(";"))
    assert multi.height == 149  # QPV spanning several communes (SOURCES.md)
    r = t.filter(t["code_qp"] == "QN97102I").row(0, named=True)
    assert r["communes"] == "97120; 97101" and r["region"] == "01"
    assert set(t.filter(t["departement"] == "987")["region"]) == {"COM"} or \
        t.filter(t["departement"] == "987")["region"].null_count() == 0


def test_geographie_inconnue_refusee():
    with pytest.raises(ParametreInvalide, match="Géographie prioritaire inconnue : « 2020 »"):
        lire_qpv(geographie="2020")


def test_fichier_d_une_autre_geographie_refuse(tmp_path):
    f = tmp_path / "qp.geojson"
    g = shapely.box(2.0, 48.0, 2.001, 48.001)
    f.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code_qp": "QN09399M", "lib_qp": "Essai",
                                          "insee_com": "93066"},
        "geometry": json.loads(shapely.to_geojson(g))}]}), "utf-8")
    assert lire_qpv(f).geographie == "2024"
    with pytest.raises(FichierInvalide, match="géographie 2024 .*pas de la géographie 2015"):
        lire_qpv(f, geographie="2015")


def test_copie_integree_identique_au_geojson_partage(partage, couche):
    """The embedded copy is ANCT's 4-decimal GeoJSON, made valid."""
    src = lire_qpv(partage / "qpv" / "2024" /
                   "QP2024_France_Hexagonale_Outre_Mer_WGS84_arrondi4.geojson")
    assert src.geographie == "2024" and (src.codes == couche.codes).all()
    assert (src.noms == couche.noms).all()
    assert src.reparees == couche.reparees
    assert all(shapely.equals_exact(a, b, 0) for a, b in zip(src.geometries, couche.geometries))


# ---------------------------------------------------------------- localiser, by default 2024

@pytest.mark.parametrize("code,epsg", [
    ("QN09301I", 2154),   # Le Bourget (métropole)
    ("QN97401I", 2975),   # Le Gol, Saint-Louis (La Réunion)
    ("QN97651C", 4471),   # Acoua (Mayotte)
    ("QN97301M", 2972),   # Anatole, Cayenne (Guyane)
    ("QN97801M", 5490),   # Quartier d'Orléans (Saint-Martin)
])
def test_dedans_dehors_et_a_trois_metres_de_la_limite(couche, code, epsg):
    i = _i(couche, code)
    assert int(couche.epsg_metriques[i]) == epsg
    dedans = _interieur(couche, code)
    juste_dedans = _a_distance(couche, code, -3)
    juste_dehors = _a_distance(couche, code, 3)
    loin = _a_distance(couche, code, 1500)
    lon, lat = zip(dedans, juste_dedans, juste_dehors, loin)
    r = lookup.localiser_points(list(lon), list(lat))
    assert r["qpv_code"].to_list()[:3] == [code, code, None]
    assert r["qpv_code"].to_list()[3] != code
    assert r["qpv_code_300m"].to_list()[:3] == [code] * 3
    assert r["distance_qpv_m"].to_list()[2] == pytest.approx(3.0, abs=0.05)
    # the command line: the QN code and "géographie 2024", with the rounding caveat
    texte = _cli("--lon", repr(juste_dedans[0]), "--lat", repr(juste_dedans[1]))
    assert f"Dans le QPV {code} « {couche.noms[i]} »" in texte
    assert "Géographie 2024 des quartiers prioritaires" in texte and "≈ 11 m" in texte
    texte = _cli("--lon", repr(juste_dehors[0]), "--lat", repr(juste_dehors[1]))
    assert "Hors QPV (périmètre strict)." in texte and f"Périmètre 300 m : {code}" in texte
    assert "Géographie 2024" in texte


def test_point_en_plein_paris_hors_qpv():
    texte = _cli("--lon", "2.3522", "--lat", "48.8566")
    assert "Hors QPV (périmètre strict)." in texte and "Géographie 2024" in texte


def test_json_dit_la_geographie_et_la_precision(couche):
    lon, lat = _interieur(couche, "QN09301I")
    d = json.loads(runner.invoke(app, ["localiser", "--lon", str(lon), "--lat", str(lat),
                                       "--format", "json"]).output)
    assert d["qpv_code"] == "QN09301I" and d["geographie_qpv"] == "2024"
    assert d["avertissement_contours"] == AVERTISSEMENT_2024


def test_geographie_2015_garde_l_historique(couche):
    lon, lat = _interieur(couche, "QN09301I")
    texte = _cli("--geographie", "2015", "--lon", str(lon), "--lat", str(lat))
    assert "Dans le QPV QP093001 « Secteur Gare - Aviatic »" in texte
    assert "Géographie 2015" in texte and "≈ 11 m" not in texte
    r = runner.invoke(app, ["localiser", "--geographie", "2020", "--lon", "2", "--lat", "48"])
    assert isinstance(r.exception, ParametreInvalide)
    assert "Géographie prioritaire inconnue : « 2020 »" in str(r.exception)


def test_polynesie_a_son_code_qn(couche):
    """French Polynesia is outside Sirene, but its QPV 2024 are in the contours."""
    i = _i(couche, "QN98701M")
    assert couche.hors_champ_sirene[i] and int(couche.epsg_metriques[i]) == 3297
    lon, lat = _a_distance(couche, "QN98701M", -3)
    assert lookup.localiser_points(lon, lat)["qpv_code"].to_list() == ["QN98701M"]
    texte = _cli("--lon", repr(lon), "--lat", repr(lat))
    assert "Dans le QPV QN98701M « Ahititera - Arahiri »" in texte
    assert "Géographie 2024" in texte
