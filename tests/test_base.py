"""The base builder on hand-built registers, with exact expected numbers.

The registers below use the 2015 geography (codes ``QP…``, INSEE's ``plg_qp15``): the builds
ask for it; the 2024 default is exercised by the demo base (tests/conftest.py)."""
from __future__ import annotations


import duckdb
import pyproj
import pytest

from essqpv import base as B
from essqpv.errors import BaseInvalide, ParametreInvalide
from tests import _fabrique as F


@pytest.fixture(scope="module")
def registre(tmp_path_factory):
    d = tmp_path_factory.mktemp("registre")
    (lon_in, lat_in), (lon_out, lat_out), xy_in, xy_out = F.points_bord("QP093001", 4.0)
    lon_c, lat_c = F.point_interieur("QP013001")
    lon_r, lat_r = F.point_interieur("QP974001")
    x_r, y_r = pyproj.Transformer.from_crs(4326, 2975, always_xy=True).transform(lon_r, lat_r)
    lon_2a, lat_2a = 8.7369, 41.9192  # Ajaccio centre, not in a QPV
    x_2a, y_2a = pyproj.Transformer.from_crs(4326, 2154, always_xy=True).transform(lon_2a, lat_2a)
    e = [
        F.etab("10000000100011", "93013", tranche="12"),                      # 1 asso in QPV (geo)
        F.etab("10000000100029", "93013", tranche="03"),                      # 2 asso outside (geo, 4 m)
        F.etab("10000000100037", "93013", tranche="01", etat="F"),            # 3 closed
        F.etab("20000000200018", "93013", naf="84.11Z"),                      # 4 excluded activity
        F.etab("30000000300015", "93013", naf="47.11A"),                      # 5 not ESS
        F.etab("40000000400012", "13201", tranche="11"),                      # 6 coop, Marseille arr., etalab
        F.etab("50000000500019", "97411", tranche="02",                       # 7 mutuelle Réunion, stock Lambert 2975
               coordonneeLambertAbscisseEtablissement=f"{x_r:.1f}",
               coordonneeLambertOrdonneeEtablissement=f"{y_r:.1f}"),
        F.etab("60000000600016", "2A004", tranche="NN", employeur="N",        # 8 fondation Corsica, Lambert 93
               coordonneeLambertAbscisseEtablissement=f"{x_2a:.1f}",
               coordonneeLambertOrdonneeEtablissement=f"{y_2a:.1f}"),
        F.etab("70000000700013", "93013", tranche=""),                        # 9 ESS company, [ND]
        F.etab("70000000700021", "93013", tranche="21"),                      # 10 ESS company, qualite 33
        F.etab("80000000800010", "93013"),                                    # 11 siren without legal unit
        F.etab("10000000100045", "93013", naf="85.3K", nomenclature="NAFRev1",  # 12 asso, no coords
               tranche="01"),
    ]
    e[5]["longitude"], e[5]["latitude"] = f"{lon_c:.7f}", f"{lat_c:.7f}"
    etab = F.ecrire(d / "StockEtablissement_utf8.csv", "etablissements", e,
                    extra=["longitude", "latitude"])
    u = [F.ul("100000001", "9220", nom="ASSO"), F.ul("200000002", "9220"),
         F.ul("300000003", "5710", "N"), F.ul("400000004", "5710", "O", "SCOP DU SUD"),
         F.ul("500000005", "8210"), F.ul("600000006", "9300"),
         F.ul("700000007", "5710", "O", "SOLIDAIRE SAS")]
    ul = F.ecrire(d / "StockUniteLegale_utf8.csv", "unites_legales", u)
    g = [
        {"siret": "10000000100011", "x": f"{xy_in[0]:.2f}", "y": f"{xy_in[1]:.2f}",
         "qualite_xy": "11", "epsg": "2154", "plg_qp15": "QP093001"},
        {"siret": "10000000100029", "x": f"{xy_out[0]:.2f}", "y": f"{xy_out[1]:.2f}",
         "qualite_xy": "11", "epsg": "2154", "plg_qp15": "QP093001"},   # INSEE disagrees
        {"siret": "70000000700013", "x": "[ND]", "y": "[ND]", "qualite_xy": "[ND]",
         "epsg": "[ND]", "plg_qp15": "[ND]"},
        {"siret": "70000000700021", "x": f"{xy_in[0]:.2f}", "y": f"{xy_in[1]:.2f}",
         "qualite_xy": "33", "epsg": "2154", "plg_qp15": "HZ"},
    ]
    geo = F.ecrire(d / "geo.csv", "geolocalisation", g, sep=";")
    emplois = d / "emplois.csv"
    emplois.write_text(
        "siret,effectif,femmes,cdi,contrats_aides,temps_complet,annee\n"
        "10000000100011,30,20,18,5,15,2024\n"
        "10000000100029,8,9,1,1,1,2024\n"          # femmes > effectif: rejected
        "4000000040001,12,6,6,0,6,2024\n"          # 13 digits: rejected
        "40000000400012,12,6,6,0,6,2024\n"
        "40000000400012,13,6,6,0,6,2024\n"          # duplicate: rejected
        "50000000500019,4,x,1,0,1,2024\n", "utf-8")  # text: rejected
    return {"etab": etab, "ul": ul, "geo": geo, "emplois": emplois, "dossier": d}


@pytest.fixture(scope="module")
def construite(registre):
    b = registre["dossier"] / "obs.duckdb"
    rapport = B.construire(etablissements=registre["etab"], unites_legales=registre["ul"],
                           geolocalisation=registre["geo"], emplois=registre["emplois"],
                           millesime="2024-01", base=b, geographie="2015")
    return b, rapport


def test_reconciliation_exacte(construite):
    _, r = construite
    assert r["lignes_lues"] == 12 and r["lignes_rejetees"] == 0
    assert (r["acceptees"], r["actives"], r["fermees"]) == (12, 11, 1)
    assert (r["ess"], r["non_ess"], r["etablissements_sans_unite_legale"]) == (9, 2, 1)
    assert (r["exclues_activite"], r["dans_perimetre"]) == (1, 8)
    assert (r["localisees"], r["non_localisees"]) == (5, 3)
    assert r["non_localisees_par_motif"] == {"non_diffusible": 1, "qualite_xy_33": 1,
                                             "sans_coordonnees": 1}
    assert (r["en_qpv"], r["hors_qpv"]) == (3, 2)
    assert r["en_qpv_300m"] == 4
    assert r["accord_qpv_insee"] == {"colonne": "plg_qp15", "comparees": 2, "concordantes": 1,
                                     "discordantes": 1}
    assert r["emplois"]["lignes_lues"] == 6 and r["emplois"]["lignes_rejetees"] == 4
    assert r["emplois"]["rejets_par_motif"] == {"doublon": 1, "siret_invalide": 1,
                                                "valeur_hors_bornes": 2}
    assert r["unites_legales"]["lignes_lues"] == 7


def test_etablissements_classes_et_places(construite):
    b, _ = construite
    con = duckdb.connect(str(b), read_only=True)
    lignes = {s: rest for s, *rest in con.execute(
        "SELECT siret, famille, motif_famille, secteur, qpv, source_coordonnees, "
        "motif_non_localise, commune, departement, region, effectif, qpv_insee "
        "FROM etablissements ORDER BY siret").fetchall()}
    con.close()
    assert lignes["10000000100011"] == ["association", "cj=9220", "Action sociale", "QP093001",
                                        "geolocalisation", None, "93013", "93", "11", 30,
                                        "QP093001"]
    assert lignes["10000000100029"][3] is None                      # 4 m outside
    assert lignes["10000000100029"][9] is None                     # its employment row rejected
    assert lignes["40000000400012"][:6] == ["cooperative", "ess=O+nom", "Action sociale", "QP013001",
                                            "etalab", None]
    assert lignes["40000000400012"][6:9] == ["13055", "13", "93"]  # arrondissement → Marseille
    assert lignes["50000000500019"][3:5] == ["QP974001", "stock"]  # Réunion, EPSG:2975
    assert lignes["60000000600016"][:5] == ["fondation", "cj=9300", "Action sociale", None,
                                            "stock"]
    assert lignes["60000000600016"][7:9] == ["2A", "94"]
    assert lignes["70000000700013"][4:6] == [None, "non_diffusible"]
    assert lignes["70000000700021"][5] == "qualite_xy_33"
    assert lignes["10000000100045"][2] == "Non classé"
    assert lignes["10000000100045"][5] == "sans_coordonnees"
    assert "20000000200018" not in lignes and "80000000800010" not in lignes


def test_metadonnees_et_rejets(construite):
    b, _ = construite
    m = B.metadonnees(b)
    assert m["millesime"] == "2024-01" and m["geographie_qpv"] == "2015"
    assert m["avec_emplois"] and not m["synthetique"]
    roles = {s["role"]: s for s in m["sources"]}
    assert set(roles) == {"etablissements", "unites_legales", "geolocalisation", "emplois", "qpv"}
    assert len(roles["etablissements"]["empreinte"]) == 64
    assert roles["qpv"]["polygones_repares"] == 34
    fichier = B.dossier_rejets(b, "2024-01") / "emplois.txt"
    lignes = fichier.read_bytes().splitlines()[1:]
    assert lignes[0] == b"3\tvaleur_hors_bornes\t10000000100029,8,9,1,1,1,2024"
    assert [x.split(b"\t")[:2] for x in lignes] == [
        [b"3", b"valeur_hors_bornes"], [b"4", b"siret_invalide"], [b"6", b"doublon"],
        [b"7", b"valeur_hors_bornes"]]


def test_plusieurs_millesimes_et_echange_atomique(registre, tmp_path):
    b = tmp_path / "obs.duckdb"
    for m in ("2023-01", "2024-01"):
        B.construire(etablissements=registre["etab"], unites_legales=registre["ul"],
                     millesime=m, base=b)
    assert [x["millesime"] for x in B.millesimes(b)] == ["2024-01", "2023-01"]
    avant = b.read_bytes()
    with pytest.raises(ParametreInvalide):
        B.construire(etablissements=registre["etab"], unites_legales=registre["ul"],
                     millesime="2024-13", base=b)
    from essqpv.errors import FichierIntrouvable
    with pytest.raises(FichierIntrouvable):
        B.construire(etablissements=registre["etab"], unites_legales=tmp_path / "absent.csv",
                     millesime="2025-01", base=b)
    assert b.read_bytes() == avant
    assert not list(tmp_path.glob("obs.duckdb.tmp-*"))
    con = duckdb.connect(str(b), read_only=True)
    assert con.execute("SELECT millesime, count(*) FROM etablissements GROUP BY 1 ORDER BY 1"
                       ).fetchall() == [("2023-01", 8), ("2024-01", 8)]
    con.close()


def test_base_absente(tmp_path):
    with pytest.raises(BaseInvalide, match="introuvable"):
        B.millesimes(tmp_path / "rien.duckdb")


def test_reconstruction_depuis_le_cache(registre, tmp_path):
    """A second build of the same files reuses the caches (reading, perimeter, placement)
    and gives the same base; another buffer or other contours redo the placement only."""
    import pyarrow as pa
    import pyogrio
    import shapely

    from essqpv.config import Reglages
    from essqpv.sources.qpv import lire_qpv

    fichiers = {"etablissements": registre["etab"], "unites_legales": registre["ul"],
                "geolocalisation": registre["geo"], "millesime": "2024-01", "geographie": "2015"}

    def lignes(b):
        con = duckdb.connect(str(b), read_only=True)
        try:
            return con.execute("SELECT siret, qpv, qpv_tampon, distance_qpv_m FROM "
                               "etablissements ORDER BY siret").fetchall()
        finally:
            con.close()

    b = tmp_path / "obs.duckdb"
    premier = B.construire(base=b, **fichiers)
    travail = tmp_path / "obs.duckdb.travail"
    def fichiers_caches():
        return sorted(p.name for p in travail.iterdir() if p.suffix in (".arrow", ".parquet"))
    caches = fichiers_caches()
    # (each thinned stock: its rows, and its kept rows with every column)
    assert [c.split("-")[0] for c in caches] == [
        "etablissements", "etablissements", "geolocalisation", "geolocalisation", "perimetre",
        "placement", "unites_legales", "unites_legales"]
    avant = lignes(b)
    assert B.construire(base=b, **fichiers) == premier
    assert fichiers_caches() == caches
    assert lignes(b) == avant

    # Another buffer: the placement is redone (same as a build without any cache).
    r100 = B.construire(base=b, reglages=Reglages(tampon_m=100), **fichiers)
    assert "en_qpv_100m" in r100 and "en_qpv_300m" not in r100
    neuf = tmp_path / "neuf" / "obs.duckdb"
    neuf.parent.mkdir()
    assert B.construire(base=neuf, reglages=Reglages(tampon_m=100), **fichiers) == r100

    # Other contours (without the QPV the establishments are in): placed again.
    c = lire_qpv(geographie="2015")
    garde = c.codes != "QP093001"
    t = pa.table({"code_qp": c.codes[garde].tolist(), "nom_qp": c.noms[garde].tolist(),
                  "commune_qp": c.communes[garde].tolist(),
                  "geom": pa.array(shapely.to_wkb(c.geometries[garde]).tolist(), pa.binary())})
    gpkg = tmp_path / "qpv_sans_QP093001.gpkg"
    pyogrio.write_arrow(t, gpkg, layer="qpv", driver="GPKG", geometry_name="geom",
                        geometry_type="Unknown", crs="EPSG:4326")
    sans = B.construire(base=b, qpv=gpkg, **fichiers)
    assert sans["en_qpv"] == premier["en_qpv"] - 1  # the association in QP093001
    assert {r[0]: r[1] for r in lignes(b)}["10000000100011"] is None


def test_reconstruction_repart_de_l_image_de_la_base(registre, tmp_path):
    """(build pipeline) A new base keeps an image of its establishments table in the cache;
    a rebuild writing the same rows starts from it and gives the same base, table for table;
    other rows (without the geolocation file) are written anew, never from a stale image."""
    fichiers = {"etablissements": registre["etab"], "unites_legales": registre["ul"],
                "geolocalisation": registre["geo"], "millesime": "2024-01", "geographie": "2015"}

    def contenu(b):
        con = duckdb.connect(str(b), read_only=True)
        try:
            return {t: con.execute(f"SELECT * EXCLUDE (millesime) FROM {t} ORDER BY ALL"
                                   ).fetchall()
                    for t in ("etablissements", "qpv", "rejets", "transition")}
        finally:
            con.close()

    b = tmp_path / "obs.duckdb"
    travail = tmp_path / "obs.duckdb.travail"
    etapes_premier, etapes_reprise = [], []
    premier = B.construire(base=b, progression=etapes_premier.append, **fichiers)
    images = list(travail.glob("image-*.duckdb"))
    assert len(images) == 1
    avant, date_image = contenu(b), images[0].stat().st_mtime_ns

    def sans_resultat():  # (the finished result is not taken: the image is)
        for f in travail.glob("resultat-*"):
            f.unlink()

    sans_resultat()
    assert B.construire(base=b, progression=etapes_reprise.append, **fichiers) == premier
    # the transition 2015 -> 2024 is in the image too: not computed again
    assert "Transition 2015 → 2024" in etapes_premier
    assert "Transition 2015 → 2024" not in etapes_reprise
    assert list(travail.glob("image-*.duckdb")) == images
    assert images[0].stat().st_mtime_ns == date_image  # reused, not written again
    assert contenu(b) == avant
    images[0].write_bytes(b"pas une base")  # a damaged image: the rows are written anew
    sans_resultat()
    assert B.construire(base=b, **fichiers) == premier
    assert contenu(b) == avant
    images = list(travail.glob("image-*.duckdb"))
    sans_geo = {k: v for k, v in fichiers.items() if k != "geolocalisation"}
    r = B.construire(base=b, **sans_geo)
    assert list(travail.glob("image-*.duckdb")) != images  # other rows: a new image
    neuf = tmp_path / "neuf" / "obs.duckdb"
    neuf.parent.mkdir()
    assert B.construire(base=neuf, **sans_geo)["localisees"] == r["localisees"]
    assert contenu(b) == contenu(neuf) != avant
    # A base holding another vintage too is written in place (no image of two vintages).
    B.construire(base=b, **{**fichiers, "millesime": "2023-01"})
    con = duckdb.connect(str(b), read_only=True)
    assert con.execute("SELECT millesime, count(*) FROM etablissements GROUP BY 1 ORDER BY 1"
                       ).fetchall() == [("2023-01", len(avant["etablissements"])),
                                        ("2024-01", len(avant["etablissements"]))]
    con.close()


def _tables(b) -> dict:
    con = duckdb.connect(str(b), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for (t,) in
                con.execute("SELECT table_name FROM information_schema.tables "
                            "ORDER BY 1").fetchall()}
    finally:
        con.close()


def _memes_tables(a, b) -> None:
    """Same tables and same rows (EXCEPT ALL both ways), the build's date aside."""
    assert _tables(a) == _tables(b)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
        for t in _tables(a):
            sauf = " EXCLUDE (date_construction)" if t == "millesimes" else ""
            for x, y in (("a", "b"), ("b", "a")):
                assert con.execute(f"SELECT count(*) FROM (SELECT *{sauf} FROM {x}.{t} "
                                   f"EXCEPT ALL SELECT *{sauf} FROM {y}.{t})"
                                   ).fetchone()[0] == 0, t
    finally:
        con.close()


def test_reconstruction_reprend_le_resultat_des_memes_entrees(registre, tmp_path):
    """(issue 21) A build of the same files and settings takes the finished result the
    previous build stored, recognised by the inputs' key: the same tables, report and
    rejects files as the normal build; one changed byte of an input, another buffer or
    other contours miss; a damaged entry falls back to the normal build."""
    import os
    import shutil

    from essqpv.config import Reglages
    entrees = tmp_path / "entrees"
    entrees.mkdir()
    for cle in ("etab", "ul", "geo", "emplois"):
        shutil.copy2(registre[cle], entrees / registre[cle].name)
    fichiers = {"etablissements": entrees / registre["etab"].name,
                "unites_legales": entrees / registre["ul"].name,
                "geolocalisation": entrees / registre["geo"].name,
                "emplois": entrees / registre["emplois"].name,
                "millesime": "2024-01", "geographie": "2015"}
    b = tmp_path / "obs.duckdb"
    travail = tmp_path / "obs.duckdb.travail"
    reprise = "Résultat déjà construit avec les mêmes fichiers et réglages"

    def construire(**autres):
        etapes = []
        r = B.construire(base=b, progression=etapes.append, **{**fichiers, **autres})
        return r, reprise in etapes

    def rejets_ecrits():
        d = B.dossier_rejets(b, "2024-01")
        return {p.name: p.read_bytes() for p in sorted(d.iterdir())}

    premier, repris = construire()
    assert not repris and len(list(travail.glob("resultat-*.duckdb"))) == 1
    second, repris = construire()
    assert repris and second == premier
    assert rejets_ecrits() and "emplois.txt" in rejets_ecrits()
    de_la_reprise, rejets_reprise = tmp_path / "reprise.duckdb", rejets_ecrits()
    shutil.copyfile(b, de_la_reprise)
    for f in travail.glob("resultat-*"):
        f.unlink()
    normal, repris = construire()  # the normal build, from the other caches
    assert not repris and normal == second
    _memes_tables(de_la_reprise, b)
    assert rejets_ecrits() == rejets_reprise
    # a damaged entry (truncated base, then truncated JSON): the normal build, same result
    copie = next(travail.glob("resultat-*.duckdb"))
    copie.write_bytes(copie.read_bytes()[:copie.stat().st_size // 2])
    r, repris = construire()
    assert not repris and r == normal
    _memes_tables(de_la_reprise, b)
    meta = next(travail.glob("resultat-*.json"))
    meta.write_text(meta.read_text("utf-8")[:100], "utf-8")
    r, repris = construire()
    assert not repris and r == normal
    assert construire() == (normal, True)
    # another buffer, other contours (the other geography): missed, then taken again
    r, repris = construire(reglages=Reglages(tampon_m=100))
    assert not repris and "en_qpv_100m" in r
    assert construire(reglages=Reglages(tampon_m=100)) == (r, True)
    r, repris = construire(geographie="2024")
    assert not repris and r["millesime"] == "2024-01"
    # one byte of an input changed (same size, same modification time): missed
    ul = fichiers["unites_legales"]
    st = ul.stat()
    contenu = ul.read_bytes()
    assert contenu.count(b"SCOP DU SUD") == 1
    ul.write_bytes(contenu.replace(b"SCOP DU SUD", b"SCOP DU SUE"))
    os.utime(ul, ns=(st.st_atime_ns, st.st_mtime_ns))
    r, repris = construire()
    assert not repris
    con = duckdb.connect(str(b), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM etablissements WHERE denomination = "
                           "'SCOP DU SUE'").fetchone()[0] == 1
    finally:
        con.close()
    # a base holding another vintage too: never taken from an entry of one vintage
    B.construire(base=b, **{**fichiers, "millesime": "2023-01"})
    r, repris = construire()
    assert not repris and {m["millesime"] for m in B.millesimes(b)} == {"2023-01", "2024-01"}


@pytest.mark.parametrize("variante", ["triee", "non_triee", "siren_mal_forme"])
def test_unite_legale_en_double_la_premiere_ligne_decide(tmp_path, variante):
    """A siren given twice in the legal units: its first row decides (METHODOLOGY 3), even
    when only the second row could make it an ESS unit. Sorted by siren (as INSEE publishes
    the stock: found on numbers), or not, or with a malformed siren among the candidates
    (found by a join on the text): the same result."""
    e = [F.etab("90000000900015", "93013", tranche="03"),
         F.etab("91000000100010", "93013", tranche="03")]
    etab = F.ecrire(tmp_path / "StockEtablissement_utf8.csv", "etablissements", e)
    u = [F.ul("900000009", "5710", "N"), F.ul("900000009", "9220"),
         F.ul("910000001", "9220"), F.ul("910000001", "5710", "N")]
    if variante == "non_triee":
        u = u[2:] + u[:2]
    elif variante == "siren_mal_forme":
        u.append(F.ul("12", "9220"))
    ul = F.ecrire(tmp_path / "StockUniteLegale_utf8.csv", "unites_legales", u)
    r = B.construire(etablissements=etab, unites_legales=ul, millesime="2024-01",
                     base=tmp_path / "obs.duckdb")
    assert (r["actives"], r["ess"], r["dans_perimetre"]) == (2, 1, 1)
    con = duckdb.connect(str(tmp_path / "obs.duckdb"), read_only=True)
    assert con.execute("SELECT siret, famille FROM etablissements").fetchall() == [
        ("91000000100010", "association")]
    con.close()


def test_sans_unite_legale_comme_une_anti_jointure():
    """The count of establishments without a legal unit (merge or bitmap) equals a plain
    anti-join on the text of the sirens, malformed sirens included."""
    import random

    import polars as pl

    r = random.Random(7)
    bizarres = ["+12345678", "-12345678", "012345678", "12345678", "1234567890", "abcdefghi",
                "", " 12345678", "000000000", "999999999", "12345678 ", "1_2345678"]

    def siren():
        return r.choice(bizarres) if r.random() < 0.2 else f"{r.randrange(10**9):09d}"
    ul = [siren() for _ in range(3000)]
    etab = [r.choice(ul) if r.random() < 0.6 else siren() for _ in range(4000)]
    # In any order (bitmap), and sorted by siren as INSEE publishes the stocks (merge; the
    # malformed sirens, not numbers, anywhere).
    for trier in (False, True):
        if trier:
            ul, etab = sorted(ul), sorted(etab)
        u = pl.LazyFrame({"siren": ul + [None]}, schema={"siren": pl.String})
        a = pl.LazyFrame({"siren": etab + [None]}, schema={"siren": pl.String})
        # (an establishment without a siren has no legal unit: kept by the anti-join)
        attendu = a.join(u.drop_nulls(), on="siren", how="anti").select(pl.len())
        assert B._sans_unite_legale(a, u) == attendu.collect().item() > 100


def test_cles_siren_absentes_et_premieres_lignes_comme_le_calcul_naif():
    """(build pipeline) The sorted-keys shortcuts of the reconciliation (siren of an active
    establishment with no legal unit; first row of each siren of the legal units) give what
    sets and a loop give, keys across the pieces' boundaries, invalid keys (-1) included."""
    import numpy as np
    rng = np.random.default_rng(21)
    for _ in range(30):
        cu = np.sort(rng.choice(5_000, rng.integers(0, 300), replace=False)).astype(np.int64)
        ca = np.sort(rng.integers(0, 5_000, rng.integers(0, 400))).astype(np.int64)
        for morceau in (1, 7, 1 << 16):
            assert B._absents_tries(cu, ca, morceau) == sum(1 for x in ca if x not in set(cu))
        cles = np.sort(rng.integers(0, 60, rng.integers(1, 200))).astype(np.int64)
        if rng.random() < 0.3:
            cles[rng.integers(0, len(cles))] = -1
        garder = rng.random(len(cles)) < 0.4
        trie, rangs = B._premieres_lignes(cles, garder)
        valides = cles >= 0
        if (garder & ~valides).any() or not B._trie(cles[valides]):
            assert not trie
            continue
        vus, attendus = set(), []
        for i, (k, g) in enumerate(zip(cles.tolist(), garder.tolist())):
            if k >= 0 and k not in vus:
                vus.add(k)
                if g:
                    attendus.append(i)
        assert trie and rangs.tolist() == attendus


def test_colonnes_a_peu_de_valeurs_en_texte_dans_la_base(registre, tmp_path):
    """The few-valued text columns travel as Enums up to the base, where they are VARCHAR
    with the values of the files (no DuckDB ENUM type leaks into the base); a rebuild from
    the cache (perimeter read without the placement's inputs) gives the same rows."""
    fichiers = {"etablissements": registre["etab"], "unites_legales": registre["ul"],
                "geolocalisation": registre["geo"], "millesime": "2024-01", "geographie": "2015"}
    b = tmp_path / "obs.duckdb"
    B.construire(base=b, **fichiers)

    def lire():
        con = duckdb.connect(str(b), read_only=True)
        try:
            types = dict(con.execute("SELECT column_name, data_type FROM "
                                     "information_schema.columns WHERE table_name = "
                                     "'etablissements' ORDER BY ordinal_position").fetchall())
            return types, con.execute("SELECT * FROM etablissements ORDER BY siret").fetchall()
        finally:
            con.close()

    types, lignes = lire()
    for c in B.COLONNES_ENUM + B.COLONNES_ENUM_PLACEMENT:
        if c in types:
            assert types[c] == "VARCHAR", c
    assert types["naf"] == types["qpv"] == types["famille"] == "VARCHAR"
    assert {r[0] for r in lignes} and any(r[list(types).index("qpv")] for r in lignes)
    B.construire(base=b, **fichiers)
    assert lire() == (types, lignes)


@pytest.mark.parametrize("dedans_d_abord", [True, False])
def test_siret_en_double_dans_la_geolocalisation_la_premiere_ligne_decide(tmp_path,
                                                                         dedans_d_abord):
    """A siret given twice in the geolocation file, once inside QP093001 and once 4 m
    outside: its first physical line gives its coordinates, in either order (never whichever
    row a join happens to return first)."""
    _, _, xy_in, xy_out = F.points_bord("QP093001", 4.0)
    etab = F.ecrire(tmp_path / "StockEtablissement_utf8.csv", "etablissements",
                    [F.etab("10000000100011", "93013", tranche="12")])
    ul = F.ecrire(tmp_path / "StockUniteLegale_utf8.csv", "unites_legales",
                  [F.ul("100000001", "9220", nom="ASSO")])
    lignes = [{"siret": "10000000100011", "x": f"{x:.2f}", "y": f"{y:.2f}", "qualite_xy": "11",
               "epsg": "2154", "plg_qp15": "QP093001"} for x, y in (xy_in, xy_out)]
    if not dedans_d_abord:
        lignes.reverse()
    geo = F.ecrire(tmp_path / "geo.csv", "geolocalisation", lignes, sep=";")
    B.construire(etablissements=etab, unites_legales=ul, geolocalisation=geo,
                 millesime="2024-01", base=tmp_path / "obs.duckdb", geographie="2015")
    con = duckdb.connect(str(tmp_path / "obs.duckdb"), read_only=True)
    assert con.execute("SELECT qpv FROM etablissements").fetchall() == [
        ("QP093001" if dedans_d_abord else None,)]
    con.close()
