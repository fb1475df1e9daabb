"""The synthetic register: official schemas, quoting, determinism, planted defects, calibration.

Every figure is recomputed here from the written files with the METHODOLOGY rules (families,
exclusions, employer, placement by geometry), independently of the generator's own count.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import shapely
from pyproj import Transformer

from essqpv import reference
from essqpv.config import MARQUE_SYNTHETIQUE
from essqpv.errors import ParametreInvalide
from essqpv.synthese import (
    COLONNES_EMPLOIS,
    COLONNES_ETABLISSEMENTS,
    COLONNES_GEOLOCALISATION,
    COLONNES_UNITES_LEGALES,
    generer,
)

TRANCHES_EMPLOYEUR = ["01", "02", "03", "11", "12", "21", "22", "31", "32", "41", "42", "51",
                      "52", "53"]


@pytest.fixture(scope="session")
def registre(tmp_path_factory):
    dossier = tmp_path_factory.mktemp("synthese")
    return generer(dossier, profil="test", graine=7)


def _lire_etablissements_brut(r) -> bytes:
    with zipfile.ZipFile(r["fichiers"]["etablissements"]) as z:
        assert z.namelist() == ["StockEtablissement_utf8.csv"]
        return z.read("StockEtablissement_utf8.csv")


def _sans_malformees(brut: bytes, lignes: list[int]) -> bytes:
    a_retirer = set(lignes)
    return b"".join(ligne for i, ligne in enumerate(brut.splitlines(keepends=True), start=1)
                    if i not in a_retirer)


def _frame(r, role: str) -> pl.DataFrame:
    if role == "etablissements":
        brut = _lire_etablissements_brut(r)
    else:
        brut = Path(r["fichiers"][role]).read_bytes()
    propre = _sans_malformees(brut, [m["ligne"] for m in r["malformees"][role]])
    sep = ";" if role == "geolocalisation" else ","
    return pl.read_csv(io.BytesIO(propre), separator=sep, infer_schema=False)


# ---------------------------------------------------------------------------------------------
# Schemas: exactly the official lists of SOURCES.md
# ---------------------------------------------------------------------------------------------

def _liste_sources(texte: str, marque: str) -> list[str]:
    """The backticked comma-separated column list that follows ``marque`` in SOURCES.md."""
    debut = texte.index(marque) + len(marque)
    liste = re.search(r"`([a-zA-Z0-9_, \n]+)`", texte[debut:]).group(1)
    return [c.strip() for c in liste.split(",")]


def test_colonnes_officielles_de_sources_md(partage):
    texte = (partage / "SOURCES.md").read_text("utf-8")
    etab = _liste_sources(texte, "`StockEtablissement_utf8.csv` (2024, 53 columns, in this order):")
    ul = _liste_sources(texte, "`StockUniteLegale_utf8.csv` (2022, 33 columns, in this order):")
    geo = _liste_sources(texte, "all giving the same **19 columns in this order**:")
    assert len(etab) == 53 and len(ul) == 33 and len(geo) == 19
    assert list(COLONNES_ETABLISSEMENTS) == etab
    i = ul.index("economieSocialeSolidaireUniteLegale") + 1
    attendu_ul = ul[:i] + ["societeMissionUniteLegale"] + ul[i:] + [
        "activitePrincipaleNAF25UniteLegale"]
    assert list(COLONNES_UNITES_LEGALES) == attendu_ul and len(attendu_ul) == 35
    assert list(COLONNES_GEOLOCALISATION) == geo


def test_entetes_des_fichiers(registre):
    brut = _lire_etablissements_brut(registre)
    assert brut.split(b"\n", 1)[0].decode() == ",".join(COLONNES_ETABLISSEMENTS)
    f = registre["fichiers"]
    assert Path(f["unites_legales"]).read_bytes().split(b"\n", 1)[0].decode() == \
        ",".join(COLONNES_UNITES_LEGALES)
    assert Path(f["geolocalisation"]).read_bytes().split(b"\n", 1)[0].decode() == \
        ";".join(COLONNES_GEOLOCALISATION)
    assert Path(f["emplois"]).read_bytes().split(b"\n", 1)[0].decode() == \
        ",".join(COLONNES_EMPLOIS)
    assert not brut.startswith(b"\xef\xbb\xbf")  # UTF-8 without BOM, like INSEE's files


# ---------------------------------------------------------------------------------------------
# Planted malformed lines: exactly the reported ones
# ---------------------------------------------------------------------------------------------

def _lignes_defectueuses(brut: bytes, sep: str, nb: int) -> dict[int, str]:
    """Physical lines with a wrong field count or undecodable bytes (Python's csv module)."""
    out = {}
    for i, ligne in enumerate(brut.split(b"\n")[1:-1], start=2):
        try:
            texte = ligne.decode("utf-8")
        except UnicodeDecodeError:
            out[i] = "octets_non_decodables"
            continue
        champs = next(csv.reader([texte], delimiter=sep))
        if len(champs) < nb:
            out[i] = "champs_manquants"
        elif len(champs) > nb:
            out[i] = "champs_en_trop"
    return out


def test_lignes_malformees_exactement_celles_annoncees(registre):
    fichiers = {"etablissements": (_lire_etablissements_brut(registre), ",", 53),
                "unites_legales": (Path(registre["fichiers"]["unites_legales"]).read_bytes(),
                                   ",", 35),
                "geolocalisation": (Path(registre["fichiers"]["geolocalisation"]).read_bytes(),
                                    ";", 19)}
    for role, (brut, sep, nb) in fichiers.items():
        trouve = _lignes_defectueuses(brut, sep, nb)
        annonce = {m["ligne"]: m["motif"] for m in registre["malformees"][role]}
        assert trouve == annonce, role
        assert registre["lignes"][role] == brut.count(b"\n") - 1
    assert registre["lignes_malformees"] == {"etablissements": 4, "unites_legales": 2,
                                             "geolocalisation": 2, "emplois": 7}
    motifs = sorted(m["motif"] for m in registre["malformees"]["etablissements"])
    assert motifs == ["champs_en_trop", "champs_manquants", "champs_manquants",
                      "octets_non_decodables"]


def _rejets_emplois(chemin: Path) -> dict[int, str]:
    """METHODOLOGY 6.3 applied line by line (siret, integers, bounds, duplicates)."""
    out, vus = {}, set()
    with open(chemin, newline="", encoding="utf-8") as f:
        lecteur = csv.DictReader(f)
        for i, ligne in enumerate(lecteur, start=2):
            if not re.fullmatch(r"[0-9]{14}", ligne["siret"]):
                out[i] = "siret_invalide"
            elif not re.fullmatch(r"[0-9]+", ligne["effectif"]):
                out[i] = "effectif_invalide"
            elif any(not re.fullmatch(r"[0-9]+", ligne[c]) or int(ligne[c]) > int(
                    ligne["effectif"]) for c in COLONNES_EMPLOIS[2:6]):
                out[i] = "valeur_hors_bornes"
            elif ligne["siret"] in vus:
                out[i] = "doublon"
            else:
                vus.add(ligne["siret"])
    return out


def test_lignes_emplois_invalides_exactement_celles_annoncees(registre):
    trouve = _rejets_emplois(Path(registre["fichiers"]["emplois"]))
    annonce = {m["ligne"]: m["motif"] for m in registre["malformees"]["emplois"]}
    assert trouve == annonce
    assert sorted(annonce.values()) == ["doublon", "doublon", "effectif_invalide",
                                        "siret_invalide", "siret_invalide",
                                        "valeur_hors_bornes", "valeur_hors_bornes"]


# ---------------------------------------------------------------------------------------------
# Quoting: Python's csv module and polars read the same values
# ---------------------------------------------------------------------------------------------

def test_guillemets_aller_retour(registre):
    for role in ("etablissements", "unites_legales"):
        brut = _lire_etablissements_brut(registre) if role == "etablissements" else \
            Path(registre["fichiers"][role]).read_bytes()
        propre = _sans_malformees(brut, [m["ligne"] for m in registre["malformees"][role]])
        lignes = list(csv.reader(io.StringIO(propre.decode("utf-8"), newline="")))
        entete, corps = lignes[0], lignes[1:]
        assert all(len(r) == len(entete) for r in corps)
        df = pl.read_csv(io.BytesIO(propre), infer_schema=False)
        assert df.height == len(corps)
        for j, c in enumerate(entete):
            attendu = [r[j] or None for r in corps]
            assert df[c].to_list() == attendu, c
    etab = _frame(registre, "etablissements")
    assert etab.filter(pl.col("enseigne1Etablissement").str.contains(",")).height > 0
    assert etab.filter(pl.col("libelleVoieEtablissement").str.contains(",")).height > 0
    assert etab.filter(pl.col("denominationUsuelleEtablissement").str.contains('"')).height > 0
    ul = _frame(registre, "unites_legales")
    assert ul.filter(pl.col("denominationUniteLegale").str.contains('"')).height > 0
    assert ul.filter(pl.col("denominationUniteLegale").str.contains(",")).height > 0


def test_codes_texte_et_cles_de_luhn(registre):
    etab = _frame(registre, "etablissements")
    assert etab["siren"].str.len_chars().unique().to_list() == [9]
    assert etab["nic"].str.len_chars().unique().to_list() == [5]
    assert (etab["siren"] + etab["nic"] == etab["siret"]).all()
    assert etab["siret"].is_unique().all()

    def luhn(s: str) -> bool:
        total = 0
        for i, ch in enumerate(reversed(s)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        return total % 10 == 0

    assert all(luhn(s) for s in etab["siret"].to_list()[:3000])
    assert all(luhn(s) for s in etab["siren"].unique().to_list()[:3000])
    communes = etab["codeCommuneEtablissement"].drop_nulls()
    assert communes.str.len_chars().unique().to_list() == [5]


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------

def _empreintes(r) -> dict[str, str]:
    return {k: hashlib.sha256(Path(p).read_bytes()).hexdigest()
            for k, p in r["fichiers"].items()}


def test_meme_graine_memes_octets(tmp_path):
    a = generer(tmp_path / "a", etablissements=3000, graine=11)
    b = generer(tmp_path / "b", etablissements=3000, graine=11)
    c = generer(tmp_path / "c", etablissements=3000, graine=12)
    assert _empreintes(a) == _empreintes(b)
    assert _empreintes(a)["etablissements"] != _empreintes(c)["etablissements"]
    assert a["malformees"] == b["malformees"]


def test_parametres_invalides(tmp_path):
    with pytest.raises(ParametreInvalide, match="Profil inconnu"):
        generer(tmp_path, profil="enorme")
    with pytest.raises(ParametreInvalide, match="Millésime invalide"):
        generer(tmp_path, millesime="2024-13")
    with pytest.raises(ParametreInvalide, match="trop petit"):
        generer(tmp_path, etablissements=10)


def test_marque_synthetique(registre):
    assert registre["synthetique"] is True
    assert registre["marque"] == MARQUE_SYNTHETIQUE
    texte = Path(registre["fichiers"]["lisezmoi"]).read_text("utf-8")
    assert MARQUE_SYNTHETIQUE in texte
    for m in registre["malformees"]["etablissements"]:
        assert f"ligne {m['ligne']} : {m['motif']}" in texte


# ---------------------------------------------------------------------------------------------
# The METHODOLOGY rules applied to the files, then the calibration
# ---------------------------------------------------------------------------------------------

def _famille(ul: pl.DataFrame) -> pl.DataFrame:
    regles = reference.regles_familles().sort("ordre")
    cj = regles.filter(pl.col("regle") == "categorie_juridique")
    par_cj = dict(zip(cj["valeur"].to_list(), cj["famille"].to_list()))
    jetons = set(regles.filter(pl.col("regle") == "ess_et_nom")["valeur"].to_list())

    def famille(cat, ess, denom, sigle):
        if cat in par_cj:
            return par_cj[cat]
        if ess == "O":
            mots = set(re.split(r"[^A-Z0-9]+", (denom or "").upper())) | set(
                re.split(r"[^A-Z0-9]+", (sigle or "").upper()))
            return "cooperative" if mots & jetons else "societe_commerciale_ess"
        return "hors_ess"

    return ul.select("siren", pl.Series("famille", [
        famille(*r) for r in ul.select("categorieJuridiqueUniteLegale",
                                       "economieSocialeSolidaireUniteLegale",
                                       "denominationUniteLegale", "sigleUniteLegale").iter_rows()]))


def _secteur(naf: str, nomenclature: str) -> str:
    if nomenclature != "NAFRev2":
        return "Non classé"
    for secteur, niveau, codes in reference.regles_secteurs().sort("ordre").select(
            "secteur", "niveau", "codes").iter_rows():
        if niveau == "division" and naf[:2] in codes.split("|"):
            return secteur
        if niveau == "sous_classe" and naf in codes.split("|"):
            return secteur
        if niveau == "naf_rev2":
            return secteur
    return "Non classé"


@pytest.fixture(scope="session")
def base_test(registre):
    """In-scope establishments with their placement by geometry and their employment row."""
    etab = _frame(registre, "etablissements")
    ul = _frame(registre, "unites_legales")
    geo = _frame(registre, "geolocalisation")
    emplois = _frame(registre, "emplois")
    valides = _rejets_emplois(Path(registre["fichiers"]["emplois"]))
    assert len(valides) == 7
    emplois = pl.read_csv(registre["fichiers"]["emplois"], infer_schema=False).with_row_index(
        "ligne", offset=2).filter(~pl.col("ligne").is_in(list(valides))).drop("ligne")
    exclus = reference.exclusions_activite()
    div = exclus.filter(pl.col("niveau") == "division")["code"].to_list()
    sc = exclus.filter(pl.col("niveau") == "sous_classe")["code"].to_list()
    f = (etab.join(_famille(ul), on="siren", how="left")
         .with_columns(pl.col("famille").fill_null("hors_ess"))
         .filter((pl.col("etatAdministratifEtablissement") == "A")
                 & (pl.col("famille") != "hors_ess")
                 & ~((pl.col("nomenclatureActivitePrincipaleEtablissement") == "NAFRev2")
                     & (pl.col("activitePrincipaleEtablissement").str.slice(0, 2).is_in(div)
                        | pl.col("activitePrincipaleEtablissement").is_in(sc))))
         .with_columns(
             ((pl.col("caractereEmployeurEtablissement") == "O")
              | (pl.col("caractereEmployeurEtablissement").is_null()
                 & pl.col("trancheEffectifsEtablissement").is_in(TRANCHES_EMPLOYEUR)))
             .alias("employeur"))
         .join(geo, on="siret", how="left")
         .join(emplois.with_columns(pl.col("effectif", "femmes", "cdi", "contrats_aides",
                                           "temps_complet").cast(pl.Int64)),
               on="siret", how="left"))
    # Coordinates: the geolocation row decides; else the stock's Lambert coordinates.
    crs = {r["departement"]: int(r["epsg_lambert_sirene"]) for r in
           reference.crs_departements().iter_rows(named=True) if r["epsg_lambert_sirene"]}
    lon = np.full(f.height, np.nan)
    lat = np.full(f.height, np.nan)
    a_geo = f["qualite_xy"].is_not_null().to_numpy()
    ok_geo = a_geo & (f["qualite_xy"] != "33").fill_null(False).to_numpy() & \
        (f["x"] != "[ND]").fill_null(False).to_numpy()
    x = f["x"].cast(pl.Float64, strict=False).to_numpy()
    y = f["y"].cast(pl.Float64, strict=False).to_numpy()
    epsg = f["epsg"].cast(pl.Int64, strict=False).fill_null(0).to_numpy()
    stock = ~a_geo & f["coordonneeLambertAbscisseEtablissement"].is_not_null().to_numpy()
    dep = f["codeCommuneEtablissement"].fill_null("").str.slice(0, 3).to_numpy()
    dep = np.where(np.char.startswith(dep.astype(str), "97"), dep, "*")
    epsg_stock = np.array([crs.get(d, crs["*"]) for d in dep])
    xs = f["coordonneeLambertAbscisseEtablissement"].cast(pl.Float64, strict=False).to_numpy()
    ys = f["coordonneeLambertOrdonneeEtablissement"].cast(pl.Float64, strict=False).to_numpy()
    for e in np.unique(np.r_[epsg[ok_geo], epsg_stock[stock]]):
        tr = Transformer.from_crs(int(e), 4326, always_xy=True)
        m = ok_geo & (epsg == e)
        lon[m], lat[m] = tr.transform(x[m], y[m])
        m = stock & (epsg_stock == e)
        lon[m], lat[m] = tr.transform(xs[m], ys[m])
    place = ~np.isnan(lon)
    pts = shapely.points(lon[place], lat[place])
    qpv = {}
    for geographie, q in (("2024", reference.qpv2024()), ("2015", reference.qpv2015())):
        polys = shapely.make_valid(shapely.from_wkb(q["geometrie"].to_numpy()))
        i_pt, i_poly = shapely.STRtree(polys).query(pts, predicate="covered_by")
        code = np.full(place.sum(), None, dtype=object)
        code[i_pt] = q["code_qp"].to_numpy()[i_poly]
        qpv[geographie] = np.full(f.height, None, dtype=object)
        qpv[geographie][place] = code
    secteurs = [_secteur(a, n) for a, n in f.select(
        "activitePrincipaleEtablissement", "nomenclatureActivitePrincipaleEtablissement"
    ).iter_rows()]
    return f.with_columns(pl.Series("qpv", qpv["2024"].tolist(), dtype=pl.String),
                          pl.Series("qpv2015", qpv["2015"].tolist(), dtype=pl.String),
                          pl.Series("localise", place), pl.Series("secteur", secteurs))


def _proche(valeur: float, cible: float, tolerance: float = 0.10) -> bool:
    return abs(valeur - cible) <= tolerance * abs(cible)


def test_calibration_dans_les_fichiers(registre, base_test):
    cal = {(r["cle"], r["perimetre"]): float(r["valeur"]) for r in
           reference._csv("synthese_calibration.csv").iter_rows(named=True)}
    e = registre["echelle"]
    emp = base_test.filter(pl.col("employeur"))
    qpv = emp.filter(pl.col("qpv").is_not_null())
    assert _proche(qpv.height, cal[("etablissements_employeurs", "qpv")] * e)
    assert _proche(emp.height, cal[("etablissements_employeurs", "france")] * e)
    salaries = qpv["effectif"].sum()
    assert _proche(salaries, cal[("salaries", "qpv")] * e)
    assert _proche(emp["effectif"].sum(), cal[("salaries", "france")] * e)
    assert _proche(qpv.filter(pl.col("famille") == "association").height / qpv.height,
                   cal[("part_association", "qpv")])
    for part in ("femmes", "cdi", "contrats_aides", "temps_complet"):
        assert _proche(qpv[part].sum() / salaries, cal[(f"part_{part}", "qpv")]), part
    parts = reference._csv("synthese_secteurs.csv")
    par_secteur_q = dict(qpv.group_by("secteur").agg(pl.col("effectif").sum()).iter_rows())
    par_secteur_f = dict(emp.group_by("secteur").agg(pl.col("effectif").sum()).iter_rows())
    total_f = emp["effectif"].sum()
    for secteur, pq, pf, _ in parts.iter_rows():
        # a sector of a few dozen employers in QPV at this scale: 15 % (seeds 1-7 measured
        # on the 2024 drawing: 0.067-0.077 for a target of 0.070)
        assert _proche(par_secteur_q[secteur] / salaries, float(pq), 0.15), secteur
        assert _proche(par_secteur_f[secteur] / total_f, float(pf)), secteur
    # The generator's own ground truth says the same thing.
    a = registre["attendu"]
    assert a["etablissements_employeurs_qpv"] == qpv.height
    assert a["salaries_qpv"] == salaries
    assert a["etablissements_employeurs_france"] == emp.height
    assert a["salaries_france"] == total_f
    assert a["employeurs_qpv_sans_donnee_emploi"] == qpv.filter(
        pl.col("effectif").is_null()).height


def test_effectif_dans_la_tranche(registre):
    etab = _frame(registre, "etablissements").select(
        "siret", "trancheEffectifsEtablissement")
    emplois = pl.read_csv(registre["fichiers"]["emplois"], infer_schema=False)
    emplois = emplois.filter(pl.col("siret").str.contains(r"^[0-9]{14}$")
                             & pl.col("effectif").str.contains(r"^[0-9]+$"))
    t = reference.tranches().select("code", "effectif_min", "effectif_max")
    j = emplois.join(etab, on="siret").join(
        t, left_on="trancheEffectifsEtablissement", right_on="code").with_columns(
        pl.col("effectif").cast(pl.Int64), pl.col("effectif_min").cast(pl.Int64),
        pl.col("effectif_max").cast(pl.Int64, strict=False))
    assert j.height > 5000
    hors = j.filter((pl.col("effectif") < pl.col("effectif_min"))
                    | (pl.col("effectif") > pl.col("effectif_max").fill_null(10**9)))
    assert hors.height == 0


def test_cas_particuliers_presents(registre, base_test):
    etab = _frame(registre, "etablissements")
    ul = _frame(registre, "unites_legales")
    geo = _frame(registre, "geolocalisation")
    communes = etab["codeCommuneEtablissement"]
    # Corsica and overseas, in QPV too.
    qpv_deps = {c[2:5] for c in base_test["qpv"].drop_nulls().to_list()}
    assert {"02A", "02B", "971", "972", "973", "974", "976"} <= qpv_deps
    assert communes.str.starts_with("2A").any() and communes.str.starts_with("2B").any()
    tranche = etab["trancheEffectifsEtablissement"]
    assert tranche.is_null().any() and (tranche == "NN").any()
    assert (etab["etatAdministratifEtablissement"] == "F").any()
    assert (ul["etatAdministratifUniteLegale"] == "C").any()
    assert (etab["nomenclatureActivitePrincipaleEtablissement"] == "NAFRev1").any()
    assert etab["activitePrincipaleEtablissement"].is_in(["85.3K", "91.3E"]).any()
    for code in ("84.11Z", "94.91Z", "94.20Z"):
        assert (etab["activitePrincipaleEtablissement"] == code).any()
    assert (geo["x"] == "[ND]").any() and (geo["qualite_xy"] == "33").any()
    assert set(geo["qualite_xy"].unique()) == {"11", "12", "21", "22", "33"}
    assert set(geo["epsg"].unique()) == {"2154", "5490", "2972", "2975", "4471"}
    assert {"HZ", "CSZ"} <= set(geo["plg_qp15"].unique())
    sans_ul = etab.filter(~pl.col("siren").is_in(ul["siren"].implode())
                          & (pl.col("etatAdministratifEtablissement") == "A"))
    assert sans_ul.height == registre["attendu"]["etablissements_sans_unite_legale"] >= 3
    scop_sas = ul.filter((pl.col("categorieJuridiqueUniteLegale") == "5710")
                         & (pl.col("economieSocialeSolidaireUniteLegale") == "O")
                         & pl.col("denominationUniteLegale").str.contains(r"\bSCOP\b"))
    assert scop_sas.height > 0
    # Only stock coordinates: active, Lambert filled, no geolocation row.
    actifs = etab.filter(pl.col("etatAdministratifEtablissement") == "A")
    stock_seul = actifs.filter(pl.col("coordonneeLambertAbscisseEtablissement").is_not_null()
                               & ~pl.col("siret").is_in(geo["siret"].implode()))
    assert stock_seul.height > 0
    # INSEE's plg_qp24 (the geography the base uses by default) disagrees with the geometry
    # on a few in-scope rows.
    g = base_test.filter(pl.col("localise") & pl.col("plg_qp24").is_not_null()
                         & (pl.col("qualite_xy") != "33"))
    insee = g["plg_qp24"].replace({"HZ": None, "CSZ": None})
    desaccords = (insee.fill_null("-") != g["qpv"].fill_null("-")).sum()
    assert 1 <= desaccords <= registre["cas_particuliers"]["discordances_plg_qp24"]
    assert registre["cas_particuliers"]["discordances_plg_qp24"] >= 6


def test_points_dans_leur_systeme(registre):
    """x/y are in the row's EPSG: back to WGS84 they give the row's latitude/longitude."""
    geo = _frame(registre, "geolocalisation").filter(pl.col("x") != "[ND]")
    for epsg in ("2154", "5490", "2972", "2975", "4471"):
        g = geo.filter(pl.col("epsg") == epsg).head(200)
        tr = Transformer.from_crs(int(epsg), 4326, always_xy=True)
        lon, lat = tr.transform(g["x"].cast(pl.Float64).to_numpy(),
                                g["y"].cast(pl.Float64).to_numpy())
        assert np.allclose(lon, g["x_longitude"].cast(pl.Float64).to_numpy(), atol=1e-5)
        assert np.allclose(lat, g["y_latitude"].cast(pl.Float64).to_numpy(), atol=1e-5)


def test_commande_synthese(tmp_path):
    import json

    from typer.testing import CliRunner

    from essqpv.cli import app
    res = CliRunner().invoke(app, ["synthese", "--dossier", str(tmp_path), "--etablissements",
                                   "3000", "--graine", "5", "--format", "json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["marque"] == MARQUE_SYNTHETIQUE and r["graine"] == 5
    assert Path(r["fichiers"]["etablissements"]).exists()
    aide = CliRunner().invoke(app, ["synthese", "--help"])
    assert "SYNTHÉTIQUE" in aide.stdout and "--etablissements" in aide.stdout
