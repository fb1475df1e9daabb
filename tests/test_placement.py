"""essqpv.placement on the real national contours (embedded 2015 geography, codes ``QP…``;
the 2024 default is tested in ``test_qpv2024.py``)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pyproj
import pytest
import shapely

from essqpv.placement import MOTIFS_NON_LOCALISE, IndexQPV, localiser_etablissements, vers_wgs84
from essqpv.sources.qpv import lire_qpv


@pytest.fixture(scope="module")
def index():
    return IndexQPV(lire_qpv(geographie="2015"))


@pytest.fixture(scope="module")
def couche(index):
    return index.couche


def _i(couche, code):
    return list(couche.codes).index(code)


def _vers(epsg_source, epsg_cible, x, y):
    tr = pyproj.Transformer.from_crs(epsg_source, epsg_cible, always_xy=True)
    return tr.transform(np.asarray(x, float), np.asarray(y, float))


def _anneau(couche, code, metres, pas=7):
    """Vertices of the polygon grown (or shrunk) by `metres` in its metric CRS, as lon/lat."""
    i = _i(couche, code)
    g = shapely.buffer(couche.geometries_metriques()[i], metres)
    xy = shapely.get_coordinates(shapely.get_exterior_ring(shapely.get_geometry(g, 0)))[::pas]
    return _vers(int(couche.epsg_metriques[i]), 4326, xy[:, 0], xy[:, 1])


def _distance_attendue(couche, code, lon, lat):
    """Reference distance computed directly by GEOS in the QPV's metric CRS."""
    i = _i(couche, code)
    x, y = _vers(4326, int(couche.epsg_metriques[i]), lon, lat)
    return shapely.distance(couche.geometries_metriques()[i], shapely.points(x, y))


# ---------------------------------------------------------------- CRS

def test_vers_wgs84_lambert93_paris():
    lon, lat, ok = vers_wgs84([652_000.0], [6_862_000.0], [2154])
    assert ok.tolist() == [True]
    assert lon[0] == pytest.approx(2.345812, abs=1e-6) and lat[0] == pytest.approx(48.856248,
                                                                                    abs=1e-6)


def test_saint_laurent_du_maroni_reste_dans_la_zone(couche):
    """Saint-Laurent-du-Maroni lies west of EPSG:2972's 54°W limit: the 0.5° widening keeps it."""
    p = shapely.point_on_surface(couche.geometries[_i(couche, "QP973027")])
    assert p.x < -54.0
    x, y = _vers(4326, 2972, [p.x, -55.0], [p.y, 4.0])
    lon, lat, ok = vers_wgs84(x, y, 2972)
    assert ok.tolist() == [True, False]
    assert lon[0] == pytest.approx(p.x, abs=1e-9)


def test_vers_wgs84_epsg_inconnu_et_valeurs_manquantes():
    lon, lat, ok = vers_wgs84([1.0, np.nan, 652_000.0], [2.0, 3.0, 6_862_000.0],
                              [999_999, 2154, 2154])
    assert ok.tolist() == [False, False, True]
    assert np.isnan(lon[:2]).all()


# ---------------------------------------------------------------- strict

def test_chaque_qpv_contient_son_point_interieur(index, couche):
    p = shapely.point_on_surface(couche.geometries)
    codes = index.strict(shapely.get_x(p), shapely.get_y(p))
    assert (codes == couche.codes).all()
    assert index.multiples == 0


def test_sommets_du_contour_sont_dedans(index, couche):
    """Covers semantics: a point on the boundary is inside."""
    g = couche.geometries[_i(couche, "QP035001")]
    xy = shapely.get_coordinates(g)
    assert len(xy) == 257
    assert set(index.strict(xy[:, 0], xy[:, 1])) == {"QP035001"}


def test_a_trois_metres_de_part_et_d_autre_du_contour(index, couche):
    lon, lat = _anneau(couche, "QP035001", -3)
    assert len(lon) > 10 and set(index.strict(lon, lat)) == {"QP035001"}
    lon, lat = _anneau(couche, "QP035001", 3)
    assert set(index.strict(lon, lat)) == {None}
    codes, dist = index.tampon(lon, lat, 300)
    assert set(codes) == {"QP035001"}
    assert np.allclose(dist, 3.0, atol=0.02)


def test_quartiers_en_plusieurs_parties(index, couche):
    multi = [k for k, g in zip(couche.codes, couche.geometries) if shapely.get_type_id(g) == 6]
    assert len(multi) == 27
    # one part of QP987029 (Tahiti) overlaps QP987032, smaller: that part's point goes there
    p = shapely.point_on_surface(shapely.get_parts(couche.geometries[_i(couche, "QP987029")]))
    assert index.strict(shapely.get_x(p), shapely.get_y(p)).tolist() == ["QP987032", "QP987029"]
    for code in multi:
        if code == "QP987029":
            continue
        parties = shapely.get_parts(couche.geometries[_i(couche, code)])
        p = shapely.point_on_surface(parties)
        assert set(index.strict(shapely.get_x(p), shapely.get_y(p))) == {code}, code


def test_point_sur_la_limite_de_deux_qpv_va_au_plus_petit(index):
    """QP093004 (15.3 ha) and QP093028 (593 ha) share this vertex: the smallest wins."""
    codes = index.strict([2.413559123621677], [48.91940514359232])
    assert codes.tolist() == ["QP093004"] and index.multiples == 1
    codes, dist = index.tampon([2.413559123621677], [48.91940514359232], 300)
    assert codes.tolist() == ["QP093004"] and dist.tolist() == [0.0]


def test_chevauchement_mayotte(index, couche):
    """QP976017 and QP976032 overlap slightly in the official file: smallest area wins."""
    inter = shapely.intersection(couche.geometries[_i(couche, "QP976017")],
                                 couche.geometries[_i(couche, "QP976032")])
    p = shapely.point_on_surface(inter)
    s = couche.surfaces_m2()
    assert s[_i(couche, "QP976032")] < s[_i(couche, "QP976017")]
    assert index.strict([p.x], [p.y]).tolist() == ["QP976032"] and index.multiples == 1


@pytest.mark.parametrize("code,epsg", [("QP974001", 2975), ("QP973001", 2972),
                                       ("QP976001", 4471), ("QP971001", 5490),
                                       ("QP972001", 5490), ("QP973027", 2972)])
def test_outre_mer_dans_le_crs_local(index, couche, code, epsg):
    p = shapely.point_on_surface(couche.geometries[_i(couche, code)])
    x, y = _vers(4326, epsg, [p.x], [p.y])
    lon, lat, ok = vers_wgs84(x, y, epsg)
    assert ok.all()
    assert index.strict(lon, lat).tolist() == [code]


def test_valeurs_manquantes_ignorees(index):
    assert index.strict([np.nan, 2.0], [48.0, np.nan]).tolist() == [None, None]


# ---------------------------------------------------------------- buffer, nearest

def test_tampon_et_distance(index, couche):
    lon, lat = _anneau(couche, "QP035001", 400)
    codes, dist = index.tampon(lon, lat, 300)
    assert set(codes) == {None} and np.isnan(dist).all()
    codes, dist = index.tampon(lon, lat, 500)
    attendu = _distance_attendue(couche, "QP035001", lon, lat)
    assert ((attendu > 390) & (attendu < 400.01)).all()
    assert set(codes) == {"QP035001"} and np.allclose(dist, attendu, atol=1e-6)
    codes, dist = index.plus_proche(lon, lat)
    assert set(codes) == {"QP035001"} and np.allclose(dist, attendu, atol=1e-6)


def test_plus_proche_loin(index, couche):
    lon, lat = _anneau(couche, "QP035001", 2000, pas=40)
    codes, dist = index.plus_proche(lon, lat)
    assert set(codes) == {"QP035001"}
    assert np.allclose(dist, _distance_attendue(couche, "QP035001", lon, lat), atol=1e-6)
    assert ((dist > 1980) & (dist < 2000.01)).all()


def test_tampon_outre_mer_en_metres_locaux(index, couche):
    lon, lat = _anneau(couche, "QP974001", 100, pas=20)
    codes, dist = index.tampon(lon, lat, 300)
    assert ((dist > 95) & (dist < 100.01)).all()
    assert set(codes) <= {"QP974001"} | set(couche.codes[couche.departements == "974"])


# ---------------------------------------------------------------- establishments

def _frame(lignes: list[dict]) -> pl.DataFrame:
    colonnes = ["siret", "departement", "geo_present", "geo_x", "geo_y", "geo_epsg",
                "geo_qualite", "etalab_lon", "etalab_lat", "lambert_x", "lambert_y"]
    return pl.DataFrame([{c: d.get(c) for c in colonnes} for d in lignes],
                        schema={c: (pl.Boolean if c == "geo_present" else pl.String)
                                for c in colonnes})


def test_regles_de_localisation(index, couche):
    p = shapely.point_on_surface(couche.geometries[_i(couche, "QP093001")])
    x, y = _vers(4326, 2154, [p.x], [p.y])
    gx, gy = f"{x[0]:.2f}", f"{y[0]:.2f}"
    q = shapely.point_on_surface(couche.geometries[_i(couche, "QP974001")])
    rx, ry = _vers(4326, 2975, [q.x], [q.y])
    lignes = [
        # 1. geolocation row decides, in its EPSG
        dict(siret="1", departement="93", geo_present=True, geo_x=gx, geo_y=gy,
             geo_epsg="2154", geo_qualite="11", lambert_x="0", lambert_y="0"),
        # 2. [ND] in the geolocation row: not placed, no fall-back to Etalab or the stock
        dict(siret="2", departement="93", geo_present=True, geo_x="[ND]", geo_y="[ND]",
             geo_epsg="2154", etalab_lon=str(p.x), etalab_lat=str(p.y), lambert_x=gx,
             lambert_y=gy),
        # 3. quality 33 (random point in the commune)
        dict(siret="3", departement="93", geo_present=True, geo_x=gx, geo_y=gy,
             geo_epsg="2154", geo_qualite="33"),
        # 4. geolocation row without coordinates
        dict(siret="4", departement="93", geo_present=True, geo_epsg="2154"),
        # 5. Etalab WGS84
        dict(siret="5", departement="93", geo_present=False, etalab_lon=str(p.x),
             etalab_lat=str(p.y), lambert_x="1", lambert_y="1"),
        # 6. stock Lambert, CRS of the département (La Réunion: EPSG:2975)
        dict(siret="6", departement="974", lambert_x=f"{rx[0]:.2f}", lambert_y=f"{ry[0]:.2f}"),
        # 7. the same coordinates read as Lambert-93 (wrong département): outside the CRS zone
        dict(siret="7", departement="93", lambert_x=f"{rx[0]:.2f}", lambert_y=f"{ry[0]:.2f}"),
        # 8. text that is not a number
        dict(siret="8", departement="93", lambert_x="abc", lambert_y="6862000"),
        # 9. nothing at all
        dict(siret="9", departement="93"),
        # 10. decimal comma and spaces, "EPSG:" prefix
        dict(siret="10", departement="93", geo_present=True, geo_x=f" {gx.replace('.', ',')} ",
             geo_y=gy, geo_epsg="EPSG:2154"),
        # 11. unknown EPSG code
        dict(siret="11", departement="93", geo_present=True, geo_x=gx, geo_y=gy,
             geo_epsg="123456"),
        # 12. stock of French Polynesia: no Sirene CRS
        dict(siret="12", departement="987", lambert_x="1", lambert_y="2"),
    ]
    r = localiser_etablissements(_frame(lignes), index)
    assert r.columns[:11] == _frame([]).columns
    assert r.columns[11:] == ["lon", "lat", "source_coordonnees", "localise",
                              "motif_non_localise", "qpv", "qpv_tampon", "distance_qpv_m"]
    assert r["motif_non_localise"].to_list() == [
        None, "non_diffusible", "qualite_xy_33", "sans_coordonnees", None, None,
        "hors_zone_crs", "coordonnees_invalides", "sans_coordonnees", None,
        "coordonnees_invalides", "coordonnees_invalides"]
    assert r["source_coordonnees"].to_list() == [
        "geolocalisation", None, None, None, "etalab", "stock", None, None, None,
        "geolocalisation", None, None]
    assert r["qpv"].to_list() == ["QP093001", None, None, None, "QP093001", "QP974001",
                                  None, None, None, "QP093001", None, None]
    assert r["qpv_tampon"].to_list() == r["qpv"].to_list()
    assert r["localise"].to_list() == [m is None for m in r["motif_non_localise"].to_list()]
    assert r["lon"].is_null().to_list() == [not v for v in r["localise"].to_list()]
    assert r["distance_qpv_m"].to_list()[0] == 0.0
    assert set(r["motif_non_localise"].drop_nulls()) <= set(MOTIFS_NON_LOCALISE)


def test_distance_et_tampon_des_etablissements(index, couche):
    lignes = []
    for metres in (3, 250, 400, 1500):
        lon, lat = _anneau(couche, "QP035001", metres, pas=50)
        lignes.append(dict(siret=str(metres), departement="35", etalab_lon=str(float(lon[1])),
                           etalab_lat=str(float(lat[1]))))
    r = localiser_etablissements(_frame(lignes), index, tampon_m=300)
    assert r["qpv"].to_list() == [None] * 4
    assert r["qpv_tampon"].to_list() == ["QP035001", "QP035001", None, None]
    d = r["distance_qpv_m"].to_list()
    assert d[0] == pytest.approx(3, abs=0.05) and d[1] == pytest.approx(250, abs=0.05)
    assert d[2] == pytest.approx(400, abs=0.05)
    assert d[3] is None  # beyond the 500 m search limit


def test_colonnes_absentes_et_frame_vide(index):
    r = localiser_etablissements(pl.DataFrame({"siret": ["1"], "etalab_lon": ["2.35"],
                                               "etalab_lat": ["48.86"]}), index)
    assert r["source_coordonnees"].to_list() == ["etalab"] and r["localise"].to_list() == [True]
    vide = localiser_etablissements(_frame([]), index)
    assert vide.height == 0 and "qpv_tampon" in vide.columns
