"""essqpv.sources.qpv: reading QPV contours in every official format, CRS and schema."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyogrio
import pytest
import shapely

from essqpv.errors import ColonneManquante, FichierIntrouvable, FichierInvalide
from essqpv.sources.qpv import departement_du_code, lire_qpv

DONNEES = Path(__file__).resolve().parent / "data" / "qpv"


@pytest.fixture(scope="module")
def qpv2015(partage):
    return partage / "qpv" / "2015"


@pytest.fixture(scope="module")
def nationale(qpv2015):
    return lire_qpv(qpv2015 / "QP_METROPOLEOUTREMER_WGS84_EPSG4326.shp")


def test_contours_integres_2015():
    c = lire_qpv(geographie="2015")
    assert len(c) == 1514 and c.reparees == 34 and int(c.repares.sum()) == 34
    assert c.geographie == "2015"
    assert shapely.is_valid(c.geometries).all()
    assert len(set(c.codes)) == 1514
    # French Polynesia (987): QPV without Sirene coverage
    assert int(c.hors_champ_sirene.sum()) == 76
    assert set(c.departements[c.hors_champ_sirene]) == {"987"}
    assert lire_qpv(geographie="2015") is c  # read once


def test_shapefile_national(nationale):
    c = nationale
    assert len(c) == 1514 and c.reparees == 34
    assert shapely.is_valid(c.geometries).all()
    assert c.fichier.endswith("QP_METROPOLEOUTREMER_WGS84_EPSG4326.shp")
    i = list(c.codes).index("QP093001")
    assert c.noms[i] == "Secteur Gare - Aviatic" and c.communes[i] == "Le Bourget"
    assert c.departements[i] == "93"
    # accents of the Windows-1252 DBF are decoded
    assert "Les Abymes, Pointe-à-Pitre" in set(c.communes)
    # identical to the embedded copy
    integre = lire_qpv(geographie="2015")
    assert (integre.codes == c.codes).all()
    assert all(shapely.equals_exact(a, b, 0) for a, b in zip(integre.geometries, c.geometries))


def test_reparation_make_valid_garde_qp084012(nationale):
    """buffer(0) would drop a 2.4 ha part of QP084012; make_valid keeps it (METHODOLOGY 5)."""
    c = nationale
    i = list(c.codes).index("QP084012")
    assert c.repares[i]
    assert shapely.get_type_id(c.geometries[i]) == 6  # MultiPolygon kept
    assert c.surfaces_m2()[i] == pytest.approx(447_161.2, abs=1)


def test_departements_et_crs(nationale):
    c = nationale
    dep = dict(zip(c.codes, c.departements))
    assert dep["QP02A001"] == "2A" and dep["QP971001"] == "971" and dep["QP075001"] == "75"
    epsg = dict(zip(c.codes, c.epsg_metriques))
    assert epsg["QP093001"] == 2154 and epsg["QP971001"] == 5490 and epsg["QP972001"] == 5490
    assert epsg["QP973001"] == 2972 and epsg["QP974001"] == 2975 and epsg["QP976001"] == 4471
    assert epsg["QP987001"] == 3297


@pytest.mark.parametrize("code,dep", [("QP093001", "93"), ("QP02A001", "2A"),
                                      ("QP971001", "971"), ("QN07511M", "75")])
def test_departement_du_code(code, dep):
    assert departement_du_code(code) == dep


def test_surfaces(nationale):
    s = nationale.surfaces_m2()
    assert s.shape == (1514,) and (s > 0).all()
    # total area of the 1,514 QPV, each measured in its territory's metric CRS
    assert s.sum() / 1e6 == pytest.approx(597.586, abs=0.001)


def test_shapefile_lambert93_reprojete(qpv2015, nationale):
    c = lire_qpv(qpv2015 / "QP_METROPOLE_LB93.shp")
    assert len(c) == 1296 and c.reparees == 25 and c.geographie == "2015"
    assert shapely.is_valid(c.geometries).all()
    b = shapely.bounds(c.geometries)
    assert b[:, 0].min() > -5 and b[:, 2].max() < 10 and b[:, 1].min() > 41  # degrees now
    ref = dict(zip(nationale.codes, nationale.geometries))
    autre = np.array([ref[k] for k in c.codes])
    # the two official files describe the same polygons (reprojection error < 1e-9°)
    assert shapely.hausdorff_distance(autre, c.geometries).max() < 1e-8


def test_geojson(qpv2015):
    c = lire_qpv(qpv2015 / "qpv2015_wgs84.geojson")
    # rounding to 6 decimals makes 32 (not 34) polygons invalid in this derived file
    assert len(c) == 1514 and c.reparees == 32
    assert shapely.is_valid(c.geometries).all()


def test_variante_hackaviz_minuscules(partage):
    c = lire_qpv(partage / "qpv" / "samples" / "occitanie_qp2015_hackaviz2021.geojson")
    assert len(c) == 105 and c.geographie == "2015" and c.reparees == 32
    assert c.noms[0] == "Bas-Vernet Nouveau QPV" and c.communes[0] == "Perpignan"


def _table_wkb(c, colonnes: dict, geoms) -> pa.Table:
    return pa.table({**colonnes, "geom": pa.array(shapely.to_wkb(geoms).tolist(), pa.binary())})


def test_geopackage_ecrit_avec_pyogrio(tmp_path, qpv2015, nationale):
    """A GeoPackage in Lambert-93 written here from the real LB93 file."""
    meta, t = pyogrio.read_arrow(qpv2015 / "QP_METROPOLE_LB93.shp")
    gpkg = tmp_path / "qpv.gpkg"
    pyogrio.write_arrow(t, gpkg, layer="qpv", driver="GPKG", geometry_name="wkb_geometry",
                        geometry_type="Unknown", crs=meta["crs"])
    c = lire_qpv(gpkg)
    assert len(c) == 1296 and c.reparees == 25
    ref = dict(zip(nationale.codes, nationale.geometries))
    assert shapely.hausdorff_distance(np.array([ref[k] for k in c.codes]),
                                      c.geometries).max() < 1e-8


def test_schema_2024_derive(tmp_path, nationale):
    """No 2024 file is available: this one is DERIVED here from the real 2015 geometries
    of Seine-Saint-Denis, with the 2024 column names and made-up QN codes."""
    m = nationale.departements == "93"
    geoms = nationale.geometries[m]
    n = int(m.sum())
    codes = [f"QN093{i:02d}M" for i in range(1, n + 1)]
    communes = ["93066; 93070"] + ["93066"] * (n - 1)
    t = _table_wkb(nationale, {
        "code_qp": codes, "lib_qp": list(nationale.noms[m]), "insee_reg": ["11"] * n,
        "lib_reg": ["Île-de-France"] * n, "insee_dep": ["93"] * n,
        "lib_dep": ["Seine-Saint-Denis"] * n, "insee_com": communes,
        "lib_com": ["Saint-Denis"] * n, "siren_epci": ["200054781"] * n}, geoms)
    chemin = tmp_path / "qp2024.geojson"
    pyogrio.write_arrow(t, chemin, driver="GeoJSON", geometry_name="geom",
                        geometry_type="Unknown", crs="EPSG:4326")
    c = lire_qpv(chemin)
    assert c.geographie == "2024" and len(c) == n == 63
    assert c.codes[0] == "QN09301M" and c.communes[0] == "93066; 93070"
    assert set(c.departements) == {"93"} and set(c.epsg_metriques) == {2154}
    assert not c.hors_champ_sirene.any()


def test_lignes_du_meme_code_fusionnees(tmp_path, nationale):
    i = list(nationale.codes).index("QP093001")
    g = nationale.geometries[i]
    moities = [shapely.clip_by_rect(g, *shapely.bounds(g)[:2], shapely.centroid(g).x, 90),
               shapely.clip_by_rect(g, shapely.centroid(g).x, -90, 180, 90)]
    t = _table_wkb(nationale, {"CODE_QP": ["QP093001"] * 2, "NOM_QP": ["Le Bourget"] * 2,
                               "COMMUNE_QP": ["Le Bourget", "Drancy"]}, np.array(moities))
    chemin = tmp_path / "double.geojson"
    pyogrio.write_arrow(t, chemin, driver="GeoJSON", geometry_name="geom",
                        geometry_type="Unknown", crs="EPSG:4326")
    c = lire_qpv(chemin)
    assert len(c) == 1 and c.communes[0] == "Le Bourget; Drancy"
    assert shapely.area(c.geometries[0]) == pytest.approx(shapely.area(g), rel=1e-9)


def test_fichier_introuvable(tmp_path):
    with pytest.raises(FichierIntrouvable, match="absent.shp"):
        lire_qpv(tmp_path / "absent.shp")


def test_sans_crs():
    with pytest.raises(FichierInvalide, match="qp_sans_crs.shp n'a pas de système de coord"):
        lire_qpv(DONNEES / "qp_sans_crs.shp")


def test_pas_un_fichier_vectoriel():
    with pytest.raises(FichierInvalide, match="pas_un_vecteur.geojson n'est pas un fichier "
                                              "vectoriel"):
        lire_qpv(DONNEES / "pas_un_vecteur.geojson")


def test_sans_colonne_code():
    with pytest.raises(ColonneManquante, match=r"qp_sans_code.geojson : colonne du code QPV "
                                               r"absente .*identifiant, nom"):
        lire_qpv(DONNEES / "qp_sans_code.geojson")


def test_messages_sur_une_ligne():
    for f in ("qp_sans_crs.shp", "pas_un_vecteur.geojson", "qp_sans_code.geojson"):
        with pytest.raises(FichierInvalide) as e:
            lire_qpv(DONNEES / f)
        assert "\n" not in str(e.value)
