"""Synthetic Sirene register in the official schemas, calibrated on the seed deck.

:func:`generer` writes, in one folder, the files the base builder reads — with the exact
official column lists and formats (``StockEtablissement_utf8.zip``,
``StockUniteLegale_utf8.csv``, the INSEE geolocation file, an employment file) — filled with
**synthetic** establishments: every name is made up (``ASSOCIATION SYNTHETIQUE 000123``), while
the geography (QPV 2024 polygons, on which the register is drawn, and QPV 2015 ones, whose
codes it keeps for the 2015 → 2024 transition; communes, départements), the nomenclatures (NAF rév. 2, legal
categories, headcount brackets) and the calibration targets (the 2020 ANCT / ESS France / RTES
seed deck, ``reference/synthese_*.csv``) are real.

The generator is deterministic for a given seed (same seed, same bytes), vectorised (numpy,
polars, shapely 2; no Python loop per row) and writes large registers in lots of bounded size,
so it scales from a few thousand rows (unit tests) to the national register (≈ 40 M
establishments) for the benchmarks.

It also plants, on purpose, the defects a real file has and the loaders must reject (wrong field
counts, undecodable bytes, invalid employment rows); their physical line numbers (the header is
line 1) are returned so tests can check that exactly those lines are rejected.
"""
from __future__ import annotations

import datetime as dt
import io
import re
import time
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import shapely
from pyproj import Transformer

from essqpv import reference
from essqpv.config import MARQUE_SYNTHETIQUE
from essqpv.errors import ParametreInvalide

__all__ = [
    "COLONNES_EMPLOIS",
    "COLONNES_ETABLISSEMENTS",
    "COLONNES_GEOLOCALISATION",
    "COLONNES_UNITES_LEGALES",
    "FICHIERS",
    "PROFILS",
    "generer",
]

# --------------------------------------------------------------------------------------------
# Official schemas (SOURCES.md): names and order are part of the contract with the loaders.
# --------------------------------------------------------------------------------------------

COLONNES_ETABLISSEMENTS = (
    "siren", "nic", "siret", "statutDiffusionEtablissement", "dateCreationEtablissement",
    "trancheEffectifsEtablissement", "anneeEffectifsEtablissement",
    "activitePrincipaleRegistreMetiersEtablissement", "dateDernierTraitementEtablissement",
    "etablissementSiege", "nombrePeriodesEtablissement", "complementAdresseEtablissement",
    "numeroVoieEtablissement", "indiceRepetitionEtablissement", "dernierNumeroVoieEtablissement",
    "indiceRepetitionDernierNumeroVoieEtablissement", "typeVoieEtablissement",
    "libelleVoieEtablissement", "codePostalEtablissement", "libelleCommuneEtablissement",
    "libelleCommuneEtrangerEtablissement", "distributionSpecialeEtablissement",
    "codeCommuneEtablissement", "codeCedexEtablissement", "libelleCedexEtablissement",
    "codePaysEtrangerEtablissement", "libellePaysEtrangerEtablissement",
    "identifiantAdresseEtablissement", "coordonneeLambertAbscisseEtablissement",
    "coordonneeLambertOrdonneeEtablissement", "complementAdresse2Etablissement",
    "numeroVoie2Etablissement", "indiceRepetition2Etablissement", "typeVoie2Etablissement",
    "libelleVoie2Etablissement", "codePostal2Etablissement", "libelleCommune2Etablissement",
    "libelleCommuneEtranger2Etablissement", "distributionSpeciale2Etablissement",
    "codeCommune2Etablissement", "codeCedex2Etablissement", "libelleCedex2Etablissement",
    "codePaysEtranger2Etablissement", "libellePaysEtranger2Etablissement", "dateDebut",
    "etatAdministratifEtablissement", "enseigne1Etablissement", "enseigne2Etablissement",
    "enseigne3Etablissement", "denominationUsuelleEtablissement",
    "activitePrincipaleEtablissement", "nomenclatureActivitePrincipaleEtablissement",
    "caractereEmployeurEtablissement",
)

COLONNES_UNITES_LEGALES = (
    "siren", "statutDiffusionUniteLegale", "unitePurgeeUniteLegale", "dateCreationUniteLegale",
    "sigleUniteLegale", "sexeUniteLegale", "prenom1UniteLegale", "prenom2UniteLegale",
    "prenom3UniteLegale", "prenom4UniteLegale", "prenomUsuelUniteLegale",
    "pseudonymeUniteLegale", "identifiantAssociationUniteLegale", "trancheEffectifsUniteLegale",
    "anneeEffectifsUniteLegale", "dateDernierTraitementUniteLegale",
    "nombrePeriodesUniteLegale", "categorieEntreprise", "anneeCategorieEntreprise", "dateDebut",
    "etatAdministratifUniteLegale", "nomUniteLegale", "nomUsageUniteLegale",
    "denominationUniteLegale", "denominationUsuelle1UniteLegale",
    "denominationUsuelle2UniteLegale", "denominationUsuelle3UniteLegale",
    "categorieJuridiqueUniteLegale", "activitePrincipaleUniteLegale",
    "nomenclatureActivitePrincipaleUniteLegale", "nicSiegeUniteLegale",
    "economieSocialeSolidaireUniteLegale", "societeMissionUniteLegale",
    "caractereEmployeurUniteLegale", "activitePrincipaleNAF25UniteLegale",
)

COLONNES_GEOLOCALISATION = (
    "siret", "x", "y", "qualite_xy", "epsg", "plg_qp24", "plg_iris", "plg_zus", "plg_qp15",
    "plg_qva", "plg_code_commune", "distance_precision", "qualite_qp24", "qualite_iris",
    "qualite_zus", "qualite_qp15", "qualite_qva", "y_latitude", "x_longitude",
)

COLONNES_EMPLOIS = ("siret", "effectif", "femmes", "cdi", "contrats_aides", "temps_complet",
                    "annee")

FICHIERS = {
    "etablissements": "StockEtablissement_utf8.zip",
    "unites_legales": "StockUniteLegale_utf8.csv",
    "geolocalisation": "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.csv",
    "emplois": "emplois.csv",
    "lisezmoi": "LISEZMOI.txt",
}
MEMBRE_ZIP = "StockEtablissement_utf8.csv"

#: Scale of each profile relative to the calibration volumes (``demo`` = national ESS figures).
PROFILS = {"demo": 1.0, "test": 0.05}

#: Rows per lot when the register is larger than the demo profile (memory stays bounded).
TAILLE_LOT = 1_000_000

# Brackets in the INSEE order, their bounds (53 has no upper bound: capped for drawing).
_TRANCHES = ("01", "02", "03", "11", "12", "21", "22", "31", "32", "41", "42", "51", "52", "53")
_BORNE_53 = 12_000

# Edge-case rates (share of the rows of a group) and minimum counts in any profile.
_TAUX = {"nd": 0.005, "q33": 0.005, "stock_seul": 0.03, "sans_coord": 0.005}
_NAF_REV1 = ("85.3K", "91.3E", "92.6C", "80.4D", "85.3H")   # real NAF rév. 1 codes
_ACTIVITES_EXCLUES = ("84.11Z", "84.12Z", "94.11Z", "94.20Z", "94.91Z", "94.92Z")
_TERRITOIRES_FORCES = ("02A", "02B", "971", "972", "973", "974", "976", "978")

# Synthetic address vocabulary (made-up or generic street names, no person is implied).
_TYPES_VOIE = ("RUE", "AV", "BD", "PL", "CHE", "ALL", "IMP", "RTE", "QUAI", "CRS", "SQ", "RES")
_VOIES = ("DES ECOLES", "DE LA GARE", "DU MARCHE", "DES TILLEULS", "DU STADE", "DES LILAS",
          "DE LA MAIRIE", "DU PARC", "DES ACACIAS", "DE L EGLISE", "DU MOULIN", "DES PEUPLIERS",
          "DES ROSIERS", "DU CENTRE", "DES JARDINS", "DE LA FONTAINE", "DES CEDRES",
          "DU PONT", "DES ERABLES", "DES CHENES", "DE LA LIBERTE", "DE LA PAIX",
          "DU MARCHE, RESIDENCE LES PINS", "DES SYNTHESES")


@dataclass(frozen=True)
class _Cible:
    """Calibration targets at the scale of a run."""

    n_qpv: int
    e_qpv: int
    n_france: int
    e_france: int


# --------------------------------------------------------------------------------------------
# Reference tables (calibration data of reference/synthese_*.csv)
# --------------------------------------------------------------------------------------------

@cache
def _calibration() -> dict[tuple[str, str], float]:
    t = reference._csv("synthese_calibration.csv")
    return {(c, p): float(v) for c, p, v in t.select("cle", "perimetre", "valeur").iter_rows()}


def _cal(cle: str, perimetre: str = "france") -> float:
    return _calibration()[(cle, perimetre)]


@cache
def _secteurs() -> pl.DataFrame:
    return reference._csv("synthese_secteurs.csv").with_columns(
        pl.col("part_salaries_qpv").cast(pl.Float64), pl.col("part_salaries_france").cast(pl.Float64))


@cache
def _naf_par_secteur() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    t = reference._csv("synthese_naf.csv").with_columns(pl.col("poids").cast(pl.Float64))
    out = {}
    for (secteur,), g in t.group_by("secteur", maintain_order=True):
        p = g["poids"].to_numpy()
        out[secteur] = (g["sous_classe"].to_numpy(), p / p.sum())
    return out


@cache
def _categories() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    t = reference._csv("synthese_categories.csv").with_columns(pl.col("poids").cast(pl.Float64))
    out = {}
    for (famille,), g in t.group_by("famille", maintain_order=True):
        p = g["poids"].to_numpy()
        out[famille] = (g["categorie_juridique"].to_numpy(), p / p.sum())
    return out


@cache
def _affinites() -> tuple[list[str], np.ndarray]:
    t = reference._csv("synthese_familles_secteurs.csv")
    familles = list(reference.FAMILLES)
    return t["secteur"].to_list(), t.select(familles).cast(pl.Float64).to_numpy()


@cache
def _tranches() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t = reference._csv("synthese_tranches.csv")
    ref = reference.tranches()
    bornes = {r["code"]: (r["effectif_min"], r["effectif_max"]) for r in ref.iter_rows(named=True)}
    codes = t["tranche"].to_list()
    if tuple(codes) != _TRANCHES:
        raise ValueError("synthese_tranches.csv: tranches inattendues")
    lo = np.array([int(bornes[c][0]) for c in codes])
    hi = np.array([int(bornes[c][1]) if bornes[c][1] else _BORNE_53 for c in codes])
    ess = t["poids_employeurs_ess"].cast(pl.Float64).to_numpy()
    hors = t["poids_employeurs_hors_ess"].cast(pl.Float64).to_numpy()
    return lo, hi, ess / ess.sum(), hors / hors.sum()


# --------------------------------------------------------------------------------------------
# Geography: QPV polygons, départements, communes
# --------------------------------------------------------------------------------------------

def _normaliser(texte: str) -> str:
    t = unicodedata.normalize("NFKD", texte).encode("ascii", "ignore").decode().upper()
    return re.sub(r"[^A-Z0-9]+", " ", t).strip()


def _dep_de_code_qp(code: str) -> str:
    d = code[2:5]
    return d.removeprefix("0")


_PLM = {"PARIS": 75100, "LYON": 69380, "MARSEILLE": 13200}
_PLM_COMMUNES = ("75056", "69123", "13055")
_PLM_PREMIER = {"75056": "75101", "69123": "69381", "13055": "13201"}


@cache
def _communes_sirene() -> pl.DataFrame:
    """Commune codes Sirene uses (arrondissements instead of Paris, Lyon, Marseille)."""
    c = reference.communes()
    c = c.filter(
        ((pl.col("type") == "commune-actuelle") & ~pl.col("code_commune").is_in(_PLM_COMMUNES))
        | (pl.col("type") == "arrondissement-municipal"))
    return c.with_columns(
        pl.col("population").cast(pl.Int64, strict=False).fill_null(0),
        pl.col("nom_commune").map_elements(_normaliser, return_dtype=pl.String)
        .str.replace_all(" ", "-").alias("libelle"),
    ).select("code_commune", "code_departement", "population", "libelle", "nom_commune",
             "anciens_codes", "type")


@cache
def _qpv15() -> dict:
    """QPV 2015 (Sirene territories only): geometry, département, commune, population."""
    q = reference.qpv2015()
    pop = reference._csv("synthese_qpv_population.csv").with_columns(
        pl.col("population_municipale_2013").cast(pl.Int64))
    q = q.join(pop, on="code_qp", how="left").with_columns(
        pl.col("code_qp").map_elements(_dep_de_code_qp, return_dtype=pl.String).alias("dep"))
    q = q.filter(~pl.col("dep").str.starts_with("98")).sort("code_qp")
    communes = _communes_sirene()
    par_dep: dict[str, dict[str, str]] = {}
    plus_peuple: dict[str, str] = {}
    for dep, code, nom, popu in communes.select(
            "code_departement", "code_commune", "nom_commune", "population").iter_rows():
        par_dep.setdefault(dep, {})[_normaliser(nom)] = code
    for (dep,), g in communes.group_by("code_departement"):
        plus_peuple[dep] = g.sort("population", descending=True)["code_commune"][0]
    codes_communes = []
    for dep, texte in q.select("dep", "commune_qp").iter_rows():
        codes_communes.append(_commune_du_qpv(dep, texte or "", par_dep.get(dep, {}),
                                              plus_peuple.get(dep)))
    geoms = shapely.make_valid(shapely.from_wkb(q["geometrie"].to_numpy()))
    shapely.prepare(geoms)
    return {"code": q["code_qp"].to_numpy(), "dep": q["dep"].to_numpy(),
            "commune": np.array(codes_communes, dtype="<U5"), "geom": geoms,
            "bornes": shapely.bounds(geoms),
            "population": q["population_municipale_2013"].fill_null(1000).to_numpy()
            .astype(float)}


@cache
def _qpv() -> dict:
    """QPV 2024 (the geography the register is drawn on; Sirene territories only): geometry,
    département, commune, weight.

    The weight is the 2013 population of the QPV 2015 it overlaps, shared by area (a QPV 2024
    without a 2015 predecessor weighs 1,000 inhabitants). A QPV of Paris, Lyon or Marseille
    takes the arrondissement of the QPV 2015 it overlaps most (Sirene codes arrondissements).
    """
    q = reference.qpv2024().filter(~pl.col("departement").str.starts_with("98")).sort("code_qp")
    geoms = shapely.from_wkb(q["geometrie"].to_numpy())
    shapely.prepare(geoms)
    q15 = _qpv15()
    arbre = shapely.STRtree(q15["geom"])
    i24, i15 = arbre.query(geoms, predicate="intersects")
    part = shapely.area(shapely.intersection(geoms[i24], q15["geom"][i15])) \
        / shapely.area(q15["geom"][i15])
    poids = np.zeros(len(q))
    np.add.at(poids, i24, part * q15["population"][i15])
    poids[poids < 1000] = np.maximum(poids[poids < 1000], 1000)
    commune = np.array([c.split(";")[0].strip() for c in q["communes"].to_list()], dtype="<U5")
    plm = np.flatnonzero(np.isin(commune, list(_PLM_COMMUNES)))
    for i in plm:
        j = i15[i24 == i]
        if j.size:
            commune[i] = q15["commune"][j[np.argmax(part[i24 == i] * q15["population"][j])]]
        else:
            commune[i] = _PLM_PREMIER[commune[i]]
    return {"code": q["code_qp"].to_numpy(), "dep": q["departement"].to_numpy(),
            "commune": commune, "geom": geoms, "bornes": shapely.bounds(geoms),
            "poids": poids / poids.sum()}


def _commune_du_qpv(dep: str, texte: str, noms: dict[str, str], defaut: str | None) -> str:
    """The commune code of a QPV from its ``COMMUNE_QP`` names (first name that matches)."""
    for morceau in re.split(r",|\bet\b", texte):
        n = _normaliser(morceau)
        m = re.match(r"^(PARIS|LYON|MARSEILLE) (\d+)", n)
        if m:
            return str(_PLM[m.group(1)] + int(m.group(2)))
        if n in noms:
            return noms[n]
        n2 = re.sub(r"^ST ", "SAINT ", n)
        if n2 in noms:
            return noms[n2]
    return defaut or ""


@cache
def _departements() -> dict[str, object]:
    c = reference.contours("departements")
    geoms = shapely.make_valid(shapely.from_wkb(c["geometrie"].to_numpy()))
    shapely.prepare(geoms)
    return dict(zip(c["code"].to_list(), geoms))


@cache
def _communes_tirage() -> dict:
    """Communes drawn for establishments outside QPV (weighted by population)."""
    deps = set(_departements())
    c = _communes_sirene().filter(pl.col("code_departement").is_in(list(deps))
                                  & (pl.col("population") > 0))
    p = c["population"].to_numpy().astype(float)
    deps, idep = np.unique(c["code_departement"].to_numpy().astype(str), return_inverse=True)
    return {"code": c["code_commune"].to_numpy().astype("<U5"), "dep": deps[idep],
            "idep": idep.ravel(), "deps": deps, "poids": p / p.sum()}


@cache
def _communes_avec_qpv(geographie: str = "2024") -> np.ndarray:
    return np.unique((_qpv() if geographie == "2024" else _qpv15())["commune"])


@cache
def _qpv15_seuls() -> dict:
    """The parts of QPV 2015 outside every QPV 2024 (areas that left the priority map),
    weighted by the population of the QPV 2015 they belong to, by area."""
    q15, q24 = _qpv15(), _qpv()
    arbre = shapely.STRtree(q24["geom"])
    restes = []
    for i, g in enumerate(q15["geom"]):
        voisins = arbre.query(g, predicate="intersects")
        r = shapely.difference(g, shapely.union_all(q24["geom"][voisins])) if voisins.size \
            else g
        restes.append(r)
    restes = np.array(restes, dtype=object)
    part = shapely.area(restes) / shapely.area(q15["geom"])
    garder = np.flatnonzero(part > 0.05)  # slivers of the boundary redrawing are not areas
    poids = q15["population"][garder] * part[garder]
    shapely.prepare(restes[garder])
    return {"i15": garder, "geom": restes[garder], "poids": poids / poids.sum()}


@cache
def _transformateur(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


def _epsg_du_dep(dep: np.ndarray) -> np.ndarray:
    t = reference.crs_departements()
    out = np.full(dep.shape, 2154, dtype=np.int32)
    for d, e in t.select("departement", "epsg_lambert_sirene").iter_rows():
        if d != "*" and e:
            out[dep == d] = int(e)
    return out


def _points_dans(rng: np.random.Generator, geom, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points drawn uniformly inside a polygon (vectorised rejection sampling)."""
    x0, y0, x1, y1 = shapely.bounds(geom)
    remplissage = max(shapely.area(geom) / max((x1 - x0) * (y1 - y0), 1e-18), 0.01)
    xs, ys, reste = [], [], n
    while reste > 0:
        m = int(reste / remplissage * 1.3) + 16
        x = rng.uniform(x0, x1, m)
        y = rng.uniform(y0, y1, m)
        ok = shapely.contains_xy(geom, x, y)
        x, y = x[ok][:reste], y[ok][:reste]
        xs.append(x)
        ys.append(y)
        reste -= len(x)
    return np.concatenate(xs), np.concatenate(ys)


def _dans_un_qpv(lon: np.ndarray, lat: np.ndarray, q: dict | None = None) -> np.ndarray:
    """Index of the QPV 2024 (or of layer ``q``) of each point, -1 outside (sorted x + bbox
    prefilter)."""
    q = _qpv() if q is None else q
    out = np.full(lon.shape, -1, dtype=np.int64)
    if lon.size == 0:
        return out
    ordre = np.argsort(lon, kind="stable")
    xs = lon[ordre]
    for i, (x0, y0, x1, y1) in enumerate(q["bornes"]):
        a, b = np.searchsorted(xs, x0, "left"), np.searchsorted(xs, x1, "right")
        if a == b:
            continue
        cand = ordre[a:b]
        cand = cand[(lat[cand] >= y0) & (lat[cand] <= y1)]
        if cand.size:
            dedans = shapely.intersects_xy(q["geom"][i], lon[cand], lat[cand])
            out[cand[dedans]] = i
    return out


# --------------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------------

def _repartir(total: int, parts: np.ndarray) -> np.ndarray:
    """Integers proportional to ``parts`` summing exactly to ``total`` (largest remainder)."""
    parts = np.asarray(parts, dtype=float)
    brut = total * parts / parts.sum()
    base = np.floor(brut).astype(np.int64)
    reste = int(total - base.sum())
    if reste > 0:
        base[np.argsort(-(brut - base), kind="stable")[:reste]] += 1
    return base


def _effectifs_calibres(rng: np.random.Generator, n: int, total: int,
                        poids: np.ndarray) -> np.ndarray:
    """Headcounts of ``n`` employers summing exactly to ``total``, drawn by bracket.

    The bracket distribution ``poids`` is tilted (``p_k ∝ poids_k · milieu_k^θ``) so that its
    mean is ``total / n``; headcounts are uniform within the bracket, then shifted inside
    their brackets until the sum is exact, so every headcount stays consistent with its
    bracket.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if total < n:
        raise ValueError(f"{total} salariés pour {n} employeurs")
    lo, hi = _tranches()[0], _tranches()[1]
    milieu = (lo + hi) / 2
    cible = total / n

    def moyenne(theta: float) -> float:
        p = poids * milieu ** theta
        return float((p / p.sum()) @ milieu)

    a, b = -6.0, 6.0
    for _ in range(60):
        m = (a + b) / 2
        a, b = (m, b) if moyenne(m) < cible else (a, m)
    p = poids * milieu ** a
    p /= p.sum()
    for _ in range(200):
        k = rng.choice(len(p), size=n, p=p)
        eff = rng.integers(lo[k], hi[k] + 1)
        ecart = int(total - eff.sum())
        cap = (hi[k] - eff) if ecart > 0 else (eff - lo[k])
        if cap.sum() < abs(ecart):
            continue
        signe = 1 if ecart > 0 else -1
        reste = abs(ecart)
        while reste > 0:
            libre = cap > 0
            part = np.floor(cap * (reste / cap.sum())).astype(np.int64)
            if part.sum() == 0:
                idx = np.flatnonzero(libre)[:reste]
                part = np.zeros_like(cap)
                part[idx] = 1
            eff += signe * part
            cap -= part
            reste -= int(part.sum())
        return eff
    raise ValueError(f"calibrage impossible : {n} employeurs, {total} salariés")


def _tranche_de(effectif: np.ndarray) -> np.ndarray:
    lo = _tranches()[0]
    k = np.searchsorted(lo, effectif, side="right") - 1
    return np.array(_TRANCHES)[np.clip(k, 0, len(_TRANCHES) - 1)]


def _tirer(rng: np.random.Generator, valeurs, proba, n: int) -> np.ndarray:
    return np.asarray(valeurs, dtype=str)[rng.choice(len(valeurs), size=n, p=proba)]


def _luhn_cle(chiffres: np.ndarray) -> np.ndarray:
    """Luhn check digit to append to each row of a digit matrix."""
    d = chiffres[:, ::-1].astype(np.int64)
    double = d.copy()
    double[:, 0::2] *= 2
    double[double > 9] -= 9
    return (10 - double.sum(axis=1) % 10) % 10


def _chiffres(valeurs: np.ndarray, largeur: int) -> np.ndarray:
    puissances = 10 ** np.arange(largeur - 1, -1, -1, dtype=np.int64)
    return (valeurs[:, None] // puissances) % 10


def _sirens(debut: int, n: int) -> np.ndarray:
    """Luhn-valid SIREN numbers as integers, 2 apart from ``debut`` (8-digit bases)."""
    base = debut + 2 * np.arange(n, dtype=np.int64)
    return base * 10 + _luhn_cle(_chiffres(base, 8))


def _nics(siren: np.ndarray, rang: np.ndarray) -> np.ndarray:
    """Luhn-valid NIC (4-digit rank + check digit over the 14-digit SIRET)."""
    base13 = np.concatenate([_chiffres(siren, 9), _chiffres(rang, 4)], axis=1)
    return rang * 10 + _luhn_cle(base13)


def _ipf(lignes: np.ndarray, colonnes: np.ndarray, graine: np.ndarray) -> np.ndarray:
    """Iterative proportional fitting of a seed matrix to row and column totals."""
    m = graine.astype(float) + 1e-9
    for _ in range(200):
        m *= (lignes / np.maximum(m.sum(axis=1), 1e-12))[:, None]
        m *= (colonnes / np.maximum(m.sum(axis=0), 1e-12))[None, :]
    return m


# --------------------------------------------------------------------------------------------
# The truth frame of one lot: one row per establishment, with what the files will say
# --------------------------------------------------------------------------------------------

_FAMILLES = list(reference.FAMILLES)


def _bloc(n: int, **cols) -> dict[str, np.ndarray]:
    out = {}
    for k, v in cols.items():
        if isinstance(v, np.ndarray):
            out[k] = v
        else:
            out[k] = np.full(n, v)
    return out


def _concat(blocs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    cles = blocs[0].keys()
    return {k: np.concatenate([b[k] for b in blocs]) for k in cles}


def _familles_calibrees(rng, n_s: np.ndarray, parts_f: np.ndarray) -> list[np.ndarray]:
    """Family of each establishment, sector by sector, matching the family shares."""
    secteurs, aff = _affinites()
    ordre = [secteurs.index(s) for s in _secteurs()["secteur"].to_list()]
    joint = _ipf(n_s.astype(float), parts_f * n_s.sum(), aff[ordre])
    out = []
    for i, n in enumerate(n_s):
        q = _repartir(int(n), joint[i]) if n else np.zeros(len(_FAMILLES), dtype=np.int64)
        f = np.repeat(np.array(_FAMILLES), q)
        out.append(f[rng.permutation(len(f))])
    return out


def _naf_du_secteur(rng, secteur: str, n: int) -> np.ndarray:
    codes, p = _naf_par_secteur()[secteur]
    return _tirer(rng, codes, p, n)


def _employeurs_calibres(rng, cible: _Cible) -> dict[str, np.ndarray]:
    """The employer ESS establishments of the calibration, in and out of QPV."""
    s = _secteurs()
    noms = s["secteur"].to_list()
    sq, sf = s["part_salaries_qpv"].to_numpy(), s["part_salaries_france"].to_numpy()
    nq, eq = _repartir(cible.n_qpv, sq), _repartir(cible.e_qpv, sq)
    nf, ef = _repartir(cible.n_france, sf), _repartir(cible.e_france, sf)
    nh, eh = nf - nq, ef - eq
    if (nh < 0).any() or (eh < nh).any():
        raise ValueError("calibration incohérente (France < QPV)")
    pfq = np.array([_cal(f"part_{f}", "qpv") for f in _FAMILLES])
    pff = np.array([_cal(f"part_{f}", "france") for f in _FAMILLES])
    # Out of QPV the family counts are France minus QPV, so France matches its shares.
    pfh = np.maximum(pff * cible.n_france - pfq * cible.n_qpv, 0)
    poids = _tranches()[2]
    blocs = []
    for zone, n_s, e_s, pf in (("qpv", nq, eq, pfq), ("hors", nh, eh, pfh)):
        familles = _familles_calibrees(rng, n_s, pf / pf.sum())
        for i, secteur in enumerate(noms):
            n = int(n_s[i])
            if n == 0:
                continue
            eff = _effectifs_calibres(rng, n, int(e_s[i]), poids)
            blocs.append(_bloc(
                n, groupe="emp_" + zone, famille=familles[i], secteur=secteur,
                naf=_naf_du_secteur(rng, secteur, n), nomenclature="NAFRev2",
                employeur=np.ones(n, bool), effectif=eff, zone=zone, etat="A", ess=np.ones(n, bool),
                calibre=np.ones(n, bool)))
    return _concat(blocs)


def _autres_ess(rng, e: float, n_min) -> dict[str, np.ndarray]:
    """Non-employer, excluded-activity, closed and edge-case ESS establishments."""
    s = _secteurs()
    noms = s["secteur"].to_list()
    pf = s["part_salaries_france"].to_numpy()
    parts_f = np.array([_cal(f"part_{f}", "france") for f in _FAMILLES])
    blocs = []

    def familles(n, forcer_assoc=0.9):
        p = parts_f * 0 + (1 - forcer_assoc) * parts_f / parts_f.sum()
        p[_FAMILLES.index("association")] += forcer_assoc
        return _tirer(rng, _FAMILLES, p / p.sum(), n)

    def secteurs_naf(n):
        sect = _tirer(rng, noms, pf / pf.sum(), n)
        naf = np.full(n, "", dtype="<U6")
        for nom in noms:
            m = sect == nom
            if m.any():
                naf[m] = _naf_du_secteur(rng, nom, int(m.sum()))
        return sect, naf

    # Non-employers in scope.
    n = max(int(round(_cal("etablissements_non_employeurs_ess") * e)), 50)
    sect, naf = secteurs_naf(n)
    zone = np.where(rng.random(n) < _cal("part_qpv_non_employeurs_ess"), "qpv", "hors")
    nomen = np.full(n, "NAFRev2")
    k = n_min(0.01 * n, 3)
    idx = rng.choice(n, size=k, replace=False)
    nomen[idx] = "NAFRev1"
    naf[idx] = _tirer(rng, _NAF_REV1, None, k)
    sect[idx] = "Non classé"
    zone[idx[: max(1, k // 2)]] = "qpv"
    blocs.append(_bloc(n, groupe="nonemp", famille=familles(n, 0.95), secteur=sect, naf=naf,
                       nomenclature=nomen, employeur=np.zeros(n, bool),
                       effectif=np.zeros(n, np.int64), zone=zone, etat="A",
                       ess=np.ones(n, bool), calibre=np.zeros(n, bool)))
    # Employers outside NAF rév. 2 (sector "Non classé"), out of QPV: a few.
    k = n_min(0.0005 * _cal("etablissements_employeurs") * e, 2)
    blocs.append(_bloc(k, groupe="emp_nafrev1", famille=familles(k), secteur="Non classé",
                       naf=_tirer(rng, _NAF_REV1, None, k), nomenclature="NAFRev1",
                       employeur=np.ones(k, bool),
                       effectif=rng.integers(1, 20, k), zone="hors", etat="A",
                       ess=np.ones(k, bool), calibre=np.zeros(k, bool)))
    # Excluded activities.
    n = max(int(round(_cal("etablissements_ess_activite_exclue") * e)), 20)
    emp = rng.random(n) < _cal("part_employeurs_activite_exclue")
    eff = np.where(emp, _effectifs_libres(rng, n, _tranches()[2]), 0)
    zone = np.where(rng.random(n) < 0.08, "qpv", "hors")
    naf = _tirer(rng, _ACTIVITES_EXCLUES, None, n)
    naf[: len(_ACTIVITES_EXCLUES)] = _ACTIVITES_EXCLUES
    emp[: len(_ACTIVITES_EXCLUES)] = True
    eff[: len(_ACTIVITES_EXCLUES)] = np.maximum(eff[: len(_ACTIVITES_EXCLUES)], 3)
    zone[: 2] = "qpv"
    blocs.append(_bloc(n, groupe="exclu", famille=familles(n, 0.95), secteur="Exclu", naf=naf,
                       nomenclature="NAFRev2", employeur=emp, effectif=eff, zone=zone, etat="A",
                       ess=np.ones(n, bool), calibre=np.zeros(n, bool)))
    # Employers really in a QPV but that cannot be placed ([ND], qualite_xy 33).
    k = n_min(0.004 * _cal("etablissements_employeurs", "qpv") * e, 2)
    sect, naf = secteurs_naf(2 * k)
    blocs.append(_bloc(2 * k, groupe="emp_qpv_non_place", famille=familles(2 * k), secteur=sect,
                       naf=naf, nomenclature="NAFRev2", employeur=np.ones(2 * k, bool),
                       effectif=_effectifs_libres(rng, 2 * k, _tranches()[2]), zone="qpv",
                       etat="A", ess=np.ones(2 * k, bool), calibre=np.zeros(2 * k, bool)))
    # Closed ESS establishments.
    n = max(int(round(_cal("etablissements_ess_fermes") * e)), 20)
    sect, naf = secteurs_naf(n)
    blocs.append(_bloc(n, groupe="ferme", famille=familles(n, 0.8), secteur=sect, naf=naf,
                       nomenclature=np.where(rng.random(n) < 0.2, "NAFRev1", "NAFRev2"),
                       employeur=np.zeros(n, bool), effectif=np.zeros(n, np.int64),
                       zone=np.where(rng.random(n) < 0.06, "qpv", "hors"), etat="F",
                       ess=np.ones(n, bool), calibre=np.zeros(n, bool)))
    out = _concat(blocs)
    rev1 = (out["nomenclature"] == "NAFRev1") & (out["groupe"] == "ferme")
    out["naf"][rev1] = _tirer(rng, _NAF_REV1, None, int(rev1.sum()))
    return out


def _effectifs_libres(rng, n: int, poids: np.ndarray) -> np.ndarray:
    lo, hi = _tranches()[0], _tranches()[1]
    k = rng.choice(len(poids), size=n, p=poids)
    return rng.integers(lo[k], hi[k] + 1)


def _hors_ess(rng, n_actifs: int, n_fermes: int, part_qpv: float) -> dict[str, np.ndarray]:
    """Establishments of legal units outside the ESS (active and closed)."""
    naf_tous = reference.naf()["sous_classe"].to_numpy()
    n = n_actifs + n_fermes
    emp = np.zeros(n, bool)
    emp[:n_actifs] = rng.random(n_actifs) < _cal("part_employeurs_hors_ess")
    eff = np.where(emp, _effectifs_libres(rng, n, _tranches()[3]), 0)
    zone = np.where(rng.random(n) < part_qpv, "qpv", "hors")
    etat = np.where(np.arange(n) < n_actifs, "A", "F")
    return _bloc(n, groupe=np.where(etat == "A", "hors_ess", "hors_ess_ferme"),
                 famille="hors_ess", secteur="", naf=naf_tous[rng.integers(0, len(naf_tous), n)],
                 nomenclature="NAFRev2", employeur=emp, effectif=eff, zone=zone, etat=etat,
                 ess=np.zeros(n, bool), calibre=np.zeros(n, bool))


# --------------------------------------------------------------------------------------------
# Places: QPV, near a QPV, elsewhere in the département; commune; coordinates
# --------------------------------------------------------------------------------------------

def _placer(rng, t: dict[str, np.ndarray], forcer: bool) -> None:
    """Give every establishment a commune, a WGS84 point and its true QPV (in place)."""
    q = _qpv()
    n = len(t["zone"])
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    iq = np.full(n, -1, dtype=np.int64)
    commune = np.full(n, "", dtype="<U5")
    dep = np.full(n, "", dtype="<U3")
    # Near-QPV points (buffer perimeter) among active establishments outside QPV.
    pres = (t["zone"] == "hors") & (t["etat"] == "A") & (rng.random(n) < _cal("part_proches_qpv"))
    t["zone"] = np.where(pres, "pres", t["zone"])
    en_qpv = np.flatnonzero(t["zone"] == "qpv")
    choix = rng.choice(len(q["code"]), size=en_qpv.size, p=q["poids"])
    if forcer:
        # Every special territory gets at least one calibrated employer in a QPV.
        cal = en_qpv[t["calibre"][en_qpv]]
        for j, terr in enumerate(_TERRITOIRES_FORCES):
            cands = np.flatnonzero(q["dep"] == terr.lstrip("0"))
            if cands.size and j < cal.size:
                choix[np.searchsorted(en_qpv, cal[j])] = cands[np.argmax(q["poids"][cands])]
    iq[en_qpv] = choix
    proches = np.flatnonzero(t["zone"] == "pres")
    iq_pres = rng.choice(len(q["code"]), size=proches.size, p=q["poids"])
    iproche = np.full(n, -1, dtype=np.int64)
    iproche[proches] = iq_pres
    for i, j in _groupes(iq[en_qpv]):
        rangs = en_qpv[j]
        x, y = _points_interieurs(rng, q["geom"][i], rangs.size)
        lon[rangs], lat[rangs] = x, y
    for i, j in _groupes(iq_pres):
        rangs = proches[j]
        x, y = _points_proches(rng, q["geom"][i], rangs.size)
        lon[rangs], lat[rangs] = x, y
    commune[en_qpv] = q["commune"][iq[en_qpv]]
    dep[en_qpv] = q["dep"][iq[en_qpv]]
    commune[proches] = q["commune"][iq_pres]
    dep[proches] = q["dep"][iq_pres]
    # Elsewhere: a commune drawn by population, a point in its département.
    ailleurs = np.flatnonzero(t["zone"] == "hors")
    c = _communes_tirage()
    k = rng.choice(len(c["code"]), size=ailleurs.size, p=c["poids"])
    commune[ailleurs] = c["code"][k]
    dep[ailleurs] = c["dep"][k]
    geoms = _departements()
    for idep, j in _groupes(c["idep"][k]):
        rangs = ailleurs[j]
        x, y = _points_dans(rng, geoms[c["deps"][idep]], rangs.size)
        lon[rangs], lat[rangs] = x, y
    # Points outside QPV must really be outside (and near ones outside too) for ESS rows.
    a_verifier = np.flatnonzero(np.isin(t["zone"], ("hors", "pres")) & t["ess"])
    for _ in range(50):
        dedans = _dans_un_qpv(lon[a_verifier], lat[a_verifier]) >= 0
        if not dedans.any():
            break
        rangs = a_verifier[dedans]
        for d in np.unique(dep[rangs]):
            r = rangs[dep[rangs] == d]
            if d in geoms:
                x, y = _points_dans(rng, geoms[d], r.size)
            else:
                x, y = lon[r] + 0.02, lat[r] + 0.02
            lon[r], lat[r] = x, y
        t["zone"][rangs] = "hors"
        iproche[rangs] = -1
        a_verifier = rangs
    # Some ESS establishments outside QPV 2024 lie where a QPV 2015 was and no QPV 2024 is
    # (the neighbourhoods that left the map), so that the 2015 → 2024 transition shows.
    _placer_sortants(rng, t, lon, lat, commune, dep, iproche, en_qpv.size)
    # The true QPV of every row (what a covers test on the point says), in both geographies.
    iq = _dans_un_qpv(lon, lat)
    iq15 = _dans_un_qpv(lon, lat, _qpv15())
    t.update(lon=lon, lat=lat, iqpv=iq, iqpv15=iq15, commune=commune, dep=dep,
             iproche=iproche)


def _placer_sortants(rng, t, lon, lat, commune, dep, iproche, n_qpv: int) -> None:
    """Move a share (``part_qpv2015_seule`` × establishments in QPV) of the active ESS rows
    placed elsewhere into the parts of QPV 2015 outside every QPV 2024 (in place)."""
    hors = np.flatnonzero((t["zone"] == "hors") & t["ess"] & (t["etat"] == "A"))
    k = min(hors.size, int(round(_cal("part_qpv2015_seule") * n_qpv)))
    if k == 0:
        return
    rangs = np.sort(rng.choice(hors, size=k, replace=False))
    s, q15 = _qpv15_seuls(), _qpv15()
    choix = rng.choice(len(s["i15"]), size=k, p=s["poids"])
    for i, j in _groupes(choix):
        r = rangs[j]
        lon[r], lat[r] = _points_interieurs(rng, s["geom"][i], r.size)
        commune[r] = q15["commune"][s["i15"][i]]
        dep[r] = q15["dep"][s["i15"][i]]
    iproche[rangs] = -1
    t["zone"][rangs] = "qpv2015"


def _points_interieurs(rng, geom, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points inside a polygon, at least ~2 m from its boundary (robust to rounding)."""
    x, y = _points_dans(rng, geom, n)
    limite = shapely.boundary(geom)
    for _ in range(20):
        pres = shapely.distance(limite, shapely.points(x, y)) < 2e-5
        if not pres.any():
            break
        x2, y2 = _points_dans(rng, geom, int(pres.sum()))
        x[pres], y[pres] = x2, y2
    return x, y


def _points_proches(rng, geom, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points outside a polygon, between ~10 and ~250 m from it."""
    x0, y0, x1, y1 = shapely.bounds(geom)
    m = 0.003
    xs, ys, reste = [], [], n
    for _ in range(200):
        if reste <= 0:
            break
        k = reste * 8 + 16
        x = rng.uniform(x0 - m, x1 + m, k)
        y = rng.uniform(y0 - m, y1 + m, k)
        d = shapely.distance(geom, shapely.points(x, y))
        ok = (d > 1e-4) & (d < 2.2e-3)
        xs.append(x[ok][:reste])
        ys.append(y[ok][:reste])
        reste -= len(xs[-1])
    return np.concatenate(xs), np.concatenate(ys)


# --------------------------------------------------------------------------------------------
# Legal units
# --------------------------------------------------------------------------------------------

_TAILLE_UNITE = {"association": 1.25, "fondation": 3.0, "mutuelle": 6.0, "cooperative": 4.0,
                 "societe_commerciale_ess": 1.5, "hors_ess": 1.4}


def _unites(rng, t: dict[str, np.ndarray], siren_debut: int) -> tuple[dict, int]:
    """Group establishments into legal units; give sirens, nics, categories, names."""
    n = len(t["famille"])
    # Closed ESS establishments: half in closed legal units, half in active ones.
    unite_fermee = (t["etat"] == "F") & (rng.random(n) < 0.5)
    noms = list(_TAILLE_UNITE)
    ifam = np.zeros(n, dtype=np.int64)
    for j, f in enumerate(noms):
        ifam[t["famille"] == f] = j
    cle = 2 * ifam + unite_fermee
    ordre = np.lexsort((rng.random(n), cle))
    cle_o = cle[ordre]
    debuts = np.flatnonzero(np.r_[True, cle_o[1:] != cle_o[:-1]])
    fins = np.r_[debuts[1:], n]
    unite = np.empty(n, dtype=np.int64)
    prochain = 0
    for a, b in zip(debuts, fins):
        moyenne = _TAILLE_UNITE[noms[cle_o[a] // 2]]
        tailles = rng.geometric(1 / moyenne, size=(b - a))
        bornes = np.cumsum(tailles)
        k = np.searchsorted(bornes, np.arange(b - a), side="right")
        unite[ordre[a:b]] = prochain + k
        prochain += int(k.max()) + 1
    # Random unit order -> siren order; establishments sorted by siren, active first.
    permut = rng.permutation(prochain)
    unite = permut[unite]
    nb_unites = prochain
    sirens = _sirens(siren_debut, nb_unites)
    ordre = np.lexsort((rng.random(n), t["etat"] == "F", unite))
    for k in list(t):
        t[k] = t[k][ordre]
    unite = unite[ordre]
    unite_fermee = unite_fermee[ordre]
    premier = np.r_[True, unite[1:] != unite[:-1]]
    rang = np.arange(n) - np.maximum.accumulate(np.where(premier, np.arange(n), 0)) + 1
    t["siren"] = sirens[unite]
    t["nic"] = _nics(t["siren"], rang)
    t["siege"] = premier
    t["unite"] = unite
    # Unit attributes, from the siege row (first establishment of the unit).
    sieges = np.flatnonzero(premier)
    famille_u = t["famille"][sieges]
    categorie = np.full(sieges.size, "", dtype="<U4")
    for f in np.unique(famille_u):
        m = famille_u == f
        codes, p = _categories()[f]
        categorie[m] = _tirer(rng, codes, p, int(m.sum()))
    etat_u = np.where(unite_fermee[sieges], "C", "A")
    t["etat"][unite_fermee] = "F"
    u = {"siren": t["siren"][sieges], "famille": famille_u, "categorie": categorie,
         "etat": etat_u, "naf": t["naf"][sieges], "nomenclature": t["nomenclature"][sieges],
         "nic_siege": t["nic"][sieges], "unite": t["unite"][sieges]}
    eff = np.zeros(nb_unites, dtype=np.int64)
    np.add.at(eff, t["unite"], np.where(t["etat"] == "A", t["effectif"], 0))
    emp = np.zeros(nb_unites, dtype=bool)
    np.logical_or.at(emp, t["unite"], t["employeur"] & (t["etat"] == "A"))
    u["effectif"] = eff[u["unite"]]
    u["employeur"] = emp[u["unite"]]
    return u, siren_debut + 2 * nb_unites


# --------------------------------------------------------------------------------------------
# Rendering the official rows
# --------------------------------------------------------------------------------------------

def _s(a) -> pl.Series:
    """A text column from a numpy string array; ``""`` becomes null (an empty field).

    Built through the distinct values (few in every column this is used for): rows are
    hashed on their raw UTF-32 code units, so no Python string is made per row.
    """
    a = np.asarray(a)
    if a.dtype.kind != "U":
        a = a.astype(str)
    if a.size == 0:
        return pl.Series([], dtype=pl.String)
    largeur = max(a.dtype.itemsize // 4, 1)
    a = np.ascontiguousarray(a.astype(f"<U{largeur}"))
    unites = pl.DataFrame(a.view(np.uint32).reshape(-1, largeur))
    cles = unites.hash_rows(seed=0).to_numpy()
    _, premier, inverse = np.unique(cles, return_index=True, return_inverse=True)
    vocab = a[premier]
    v = pl.Series(vocab.tolist(), dtype=pl.String)
    if (vocab == "").any():
        v = v.scatter(np.flatnonzero(vocab == ""), None)
    return v.gather(inverse.astype(np.int64).ravel())


def _groupes(cles: np.ndarray):
    """(key, row indices) for each distinct integer key, via one stable sort."""
    ordre = np.argsort(cles, kind="stable")
    triees = cles[ordre]
    coupures = np.flatnonzero(triees[1:] != triees[:-1]) + 1
    for morceau in np.split(ordre, coupures):
        if morceau.size:
            yield cles[morceau[0]], morceau


def _dates(rng, n: int, debut: str, fin: str) -> np.ndarray:
    a = np.datetime64(debut, "D").astype(np.int64)
    b = np.datetime64(fin, "D").astype(np.int64)
    return rng.integers(a, b, n)


def _texte_dates(jours: np.ndarray) -> pl.Series:
    return pl.Series(jours.astype(np.int32)).cast(pl.Date).cast(pl.String)


def _texte_horodatage(rng, n: int, fin_jour: int) -> pl.Series:
    debut = np.datetime64("2015-01-01", "D").astype(np.int64)
    sec = rng.integers(debut * 86400, fin_jour * 86400, n)
    return pl.Series(sec * 1000).cast(pl.Datetime("ms")).dt.strftime("%Y-%m-%dT%H:%M:%S")


def _nombre(x: np.ndarray, decimales: int) -> pl.Series:
    return pl.Series(np.round(x, decimales)).cast(pl.String)


def _vide(n: int) -> pl.Series:
    return pl.Series([None] * n, dtype=pl.String) if n < 1 else pl.repeat(
        None, n, dtype=pl.String, eager=True)


def _rendre(rng, t: dict[str, np.ndarray], u: dict[str, np.ndarray], millesime: str,
            premier_numero: int, discordances: int = 0
            ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Establishment, legal-unit, geolocation and employment rows of one lot.

    Missing values are ``""`` in the numpy arrays and null (an empty field) in the frames.
    """
    n = len(t["siren"])
    fin = int(np.datetime64(millesime + "-01", "D").astype(np.int64))
    annee = str(int(millesime[:4]) - 1)
    actif = t["etat"] == "A"
    # ---- statuses of the coordinates --------------------------------------------------
    statut = np.full(n, "normal", dtype="<U10")
    u01 = rng.random(n)
    libre = actif & ~t["calibre"] & (t["groupe"] != "emp_qpv_non_place")
    c = np.cumsum([_TAUX["nd"], _TAUX["q33"], _TAUX["stock_seul"], _TAUX["sans_coord"]])
    statut[libre & (u01 < c[0])] = "nd"
    statut[libre & (u01 >= c[0]) & (u01 < c[1])] = "q33"
    statut[libre & (u01 >= c[1]) & (u01 < c[2])] = "stock_seul"
    statut[libre & (u01 >= c[2]) & (u01 < c[3])] = "sans_coord"
    statut[t["calibre"] & (u01 < _TAUX["stock_seul"])] = "stock_seul"
    npl = np.flatnonzero(t["groupe"] == "emp_qpv_non_place")
    statut[npl[: npl.size // 2]] = "nd"
    statut[npl[npl.size // 2:]] = "q33"
    statut[~actif] = np.where(rng.random(int((~actif).sum())) < 0.5, "stock_seul", "sans_coord")
    statut[(t["commune"] == "") | np.isnan(t["lon"])] = "sans_coord"
    t["statut_coord"] = statut
    nd = statut == "nd"
    abroad = t["commune"] == ""
    # ---- projected coordinates --------------------------------------------------------
    epsg = _epsg_du_dep(t["dep"])
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    for e in np.unique(epsg):
        m = (epsg == e) & ~np.isnan(t["lon"])
        if m.any():
            x[m], y[m] = _transformateur(int(e)).transform(t["lon"][m], t["lat"][m])
    t["epsg"] = epsg
    # ---- establishment rows -----------------------------------------------------------
    siren = pl.Series(t["siren"]).cast(pl.String).str.zfill(9)
    nic = pl.Series(t["nic"]).cast(pl.String).str.zfill(5)
    siret = siren + nic
    t["siret"] = siret.to_numpy().astype("<U14")
    creation = _dates(rng, n, "1960-01-01", "2023-01-01")
    recent = actif & (rng.random(n) < 0.04)
    creation[recent] = rng.integers(fin - 365, fin, int(recent.sum()))
    debut = np.minimum(creation + rng.integers(0, 3000, n), fin - 1)
    tranche = np.where(t["employeur"], _tranche_de(np.maximum(t["effectif"], 1)), "")
    v = rng.random(n)
    tranche = np.where(~t["employeur"], np.where(v < 0.45, "NN", np.where(v < 0.9, "", "00")),
                       tranche).astype("<U2")
    caractere = np.where(t["employeur"], "O", "N").astype("<U1")
    w = rng.random(n)
    caractere[(w < 0.03) & t["employeur"]] = ""                 # empty: employer by bracket
    tranche[t["employeur"] & (w >= 0.03) & (w < 0.04)] = ""      # employer, unknown bracket
    caractere[~actif] = np.where(rng.random(int((~actif).sum())) < 0.5, "N", "")
    tranche[~actif] = ""
    t["tranche"], t["caractere"] = tranche, caractere
    annee_eff = np.where(np.isin(tranche, list(_TRANCHES) + ["00"]), "2021", "")
    com = _communes_sirene()
    uniques, inverse = np.unique(t["commune"], return_inverse=True)
    lib = dict(zip(com["code_commune"].to_list(), com["libelle"].to_list()))
    lib_commune = pl.Series([lib.get(c, "") for c in uniques.tolist()],
                            dtype=pl.String).gather(inverse)
    cp = _codes_postaux(rng, t["dep"])
    numero = rng.integers(1, 180, n).astype("<U3")
    numero[rng.random(n) < 0.2] = ""
    coord_stock = np.isin(statut, ["normal", "q33", "stock_seul"])
    numeros = pl.Series(np.arange(premier_numero, premier_numero + n)).cast(pl.String)
    r = rng.random(n)
    enseigne = (pl.when(pl.Series(r < 0.01))
                .then(pl.lit("ANTENNE ") + numeros + pl.lit(", QUARTIER NORD"))
                .when(pl.Series(r < 0.1))
                .then(pl.lit("ENSEIGNE SYNTHETIQUE ") + numeros.str.zfill(6)))
    ident = (pl.when(pl.Series((rng.random(n) < 0.6) & ~abroad))
             .then(pl.Series(t["commune"]) + pl.lit("_")
                   + pl.Series(rng.integers(1, 9999, n)).cast(pl.String).str.zfill(4)))
    etab = pl.DataFrame({
        "siren": siren, "nic": nic, "siret": siret,
        "statutDiffusionEtablissement": _s(np.where(nd, "P", "O")),
        "dateCreationEtablissement": _texte_dates(creation),
        "trancheEffectifsEtablissement": _s(tranche),
        "anneeEffectifsEtablissement": _s(annee_eff),
        "dateDernierTraitementEtablissement": _texte_horodatage(rng, n, fin),
        "etablissementSiege": _s(np.where(t["siege"], "true", "false")),
        "nombrePeriodesEtablissement": _s(rng.integers(1, 5, n).astype("<U1")),
        "complementAdresseEtablissement": _s(np.where(rng.random(n) < 0.05, "BATIMENT A", "")),
        "numeroVoieEtablissement": _s(np.where(nd, "[ND]", numero)),
        "indiceRepetitionEtablissement": _s(np.where(rng.random(n) < 0.03, "B", "")),
        "typeVoieEtablissement": _s(np.where(nd, "[ND]", _tirer(rng, _TYPES_VOIE, None, n))),
        "libelleVoieEtablissement": _s(np.where(nd, "[ND]", _tirer(rng, _VOIES, None, n))),
        "codePostalEtablissement": _s(np.where(abroad, "", cp)),
        "libelleCommuneEtablissement": lib_commune,
        "libelleCommuneEtrangerEtablissement": _s(np.where(abroad, "BERLIN", "")),
        "codeCommuneEtablissement": _s(t["commune"]),
        "codePaysEtrangerEtablissement": _s(np.where(abroad, "99109", "")),
        "libellePaysEtrangerEtablissement": _s(np.where(abroad, "ALLEMAGNE", "")),
        "dateDebut": _texte_dates(debut),
        "etatAdministratifEtablissement": _s(t["etat"]),
        "denominationUsuelleEtablissement": _s(np.where(rng.random(n) < 0.02,
                                                        'LE "RELAIS" SYNTHETIQUE', "")),
        "activitePrincipaleEtablissement": _s(t["naf"]),
        "nomenclatureActivitePrincipaleEtablissement": _s(t["nomenclature"]),
        "caractereEmployeurEtablissement": _s(caractere),
    }).with_columns(
        enseigne.alias("enseigne1Etablissement"),
        ident.alias("identifiantAdresseEtablissement"),
        _coordonnee(x, 1, coord_stock, nd).alias("coordonneeLambertAbscisseEtablissement"),
        _coordonnee(y, 1, coord_stock, nd).alias("coordonneeLambertOrdonneeEtablissement"),
        pl.col("libelleCommuneEtablissement").replace("", None),
        *[pl.lit(None, dtype=pl.String).alias(c) for c in COLONNES_ETABLISSEMENTS
          if c in _TOUJOURS_VIDES],
    ).select(COLONNES_ETABLISSEMENTS)
    # ---- geolocation rows -------------------------------------------------------------
    g = np.flatnonzero(actif & np.isin(statut, ["normal", "nd", "q33"]))
    qcode, qcode15 = _qpv()["code"], _qpv15()["code"]
    vraie, vraie15 = t["iqpv"][g], t["iqpv15"][g]
    hz = np.where(np.isin(t["commune"][g], _communes_avec_qpv()), "HZ", "CSZ")
    hz15 = np.where(np.isin(t["commune"][g], _communes_avec_qpv("2015")), "HZ", "CSZ")
    t["plg_qp24"] = np.full(n, "", dtype="<U8")
    t["plg_qp24"][g] = np.where(vraie >= 0, qcode[np.maximum(vraie, 0)], hz)
    plg_qp15 = np.where(vraie15 >= 0, qcode15[np.maximum(vraie15, 0)], hz15)
    t["geoloc"] = np.zeros(n, bool)
    t["geoloc"][g] = True
    t["discordances"] = _discordances(rng, t, discordances) if discordances else 0
    qualite = _tirer(rng, ["11", "12", "21", "22"], [0.7, 0.15, 0.08, 0.07], g.size)
    qualite[statut[g] == "q33"] = "33"
    qpv_oui = vraie >= 0
    tout = np.ones(g.size, bool)
    geo = pl.DataFrame({
        "siret": siret.gather(g),
        "x": _coordonnee(x[g], 1, tout, nd[g]), "y": _coordonnee(y[g], 1, tout, nd[g]),
        "qualite_xy": _s(qualite),
        "epsg": _s(epsg[g].astype("<U4")),
        "plg_qp24": _s(t["plg_qp24"][g]),
        "plg_iris": pl.Series(t["commune"][g]) + "0000",
        "plg_zus": _vide(g.size),
        "plg_qp15": _s(plg_qp15),
        "plg_qva": _s(np.where(qpv_oui, "", "HZ")),
        "plg_code_commune": _s(t["commune"][g]),
        "distance_precision": _nombre(rng.exponential(15.0, g.size), 1),
        "qualite_qp24": _s(np.where(qpv_oui, "", "1")),
        "qualite_iris": _s(np.full(g.size, "1")),
        "qualite_zus": _vide(g.size),
        "qualite_qp15": _s(np.full(g.size, "1")),
        "qualite_qva": _s(np.full(g.size, "1")),
        "y_latitude": _coordonnee(t["lat"][g], 7, tout, nd[g]),
        "x_longitude": _coordonnee(t["lon"][g], 7, tout, nd[g]),
    }).select(COLONNES_GEOLOCALISATION)
    # ---- employment rows --------------------------------------------------------------
    e = np.flatnonzero(actif & t["employeur"] & (t["ess"] | (rng.random(n) < 0.1)))
    eff = np.maximum(t["effectif"][e], 1)
    emplois = pl.DataFrame({
        "siret": siret.gather(e),
        "effectif": eff,
        "femmes": rng.binomial(eff, _cal("part_femmes", "qpv")),
        "cdi": rng.binomial(eff, _cal("part_cdi", "qpv")),
        "contrats_aides": rng.binomial(eff, _cal("part_contrats_aides", "qpv")),
        "temps_complet": rng.binomial(eff, _cal("part_temps_complet", "qpv")),
    }).with_columns(pl.lit(annee).alias("annee"))
    t["effectif"][e] = eff
    t["emploi"] = np.zeros(n, bool)
    t["emploi"][e] = True
    t["emploi_valide"] = t["emploi"].copy()
    # ---- legal units ------------------------------------------------------------------
    ul, denom, sigle, ess_flag = _rendre_unites(rng, u, premier_numero, fin)
    cle = np.searchsorted(u["siren"], t["siren"])
    t["categorie"] = u["categorie"][cle]
    t["denomination"] = denom.gather(cle)
    t["sigle"] = sigle[cle]
    t["ess_flag"] = ess_flag[cle]
    return etab, ul, geo, emplois


_TOUJOURS_VIDES = frozenset(
    ["activitePrincipaleRegistreMetiersEtablissement", "dernierNumeroVoieEtablissement",
     "indiceRepetitionDernierNumeroVoieEtablissement", "distributionSpecialeEtablissement",
     "codeCedexEtablissement", "libelleCedexEtablissement", "enseigne2Etablissement",
     "enseigne3Etablissement", *COLONNES_ETABLISSEMENTS[30:44]])


def _coordonnee(v: np.ndarray, decimales: int, garder: np.ndarray, nd: np.ndarray) -> pl.Expr:
    """A coordinate column: rounded text, ``[ND]`` when not public, null when absent."""
    texte = pl.Series(np.round(v, decimales)).cast(pl.String)
    return pl.select(pl.when(pl.Series(nd)).then(pl.lit("[ND]"))
                     .when(pl.Series(garder) & pl.Series(~np.isnan(v))).then(texte)
                     .alias("c")).to_series()


def _rendre_unites(rng, u: dict[str, np.ndarray], premier_numero: int, fin: int):
    """Legal-unit rows, and the name fields the family rule reads."""
    m = len(u["siren"])
    numero_u = np.arange(premier_numero, premier_numero + m)
    fam, cat = u["famille"], u["categorie"]
    prefixe = np.select(
        [fam == "association", fam == "fondation", fam == "mutuelle",
         (fam == "cooperative") & (cat != "5710"), (fam == "cooperative") & (cat == "5710"),
         fam == "societe_commerciale_ess", cat == "1000"],
        ["ASSOCIATION SYNTHETIQUE", "FONDATION SYNTHETIQUE", "MUTUELLE SYNTHETIQUE",
         "COOPERATIVE SYNTHETIQUE", "SCOP SYNTHETIQUE", "ENTREPRISE SOLIDAIRE SYNTHETIQUE", ""],
        "SOCIETE SYNTHETIQUE").astype("<U40")
    # Cooperatives set up as SAS: the token that makes them cooperatives varies.
    sas_coop = np.flatnonzero((fam == "cooperative") & (cat == "5710"))
    jetons = np.array(["SCOP", "SCIC", "CAE", "SCOP-BTP", "COOPERATIVE"])
    prefixe[sas_coop] = np.char.add(jetons[np.arange(sas_coop.size) % 5], " SYNTHETIQUE")
    # ESS commercial companies whose name holds a near-miss token (not a cooperative).
    sce = np.flatnonzero(fam == "societe_commerciale_ess")
    leurres = np.array(["SCOPE", "CAEN", "COOP", "COOPERATIVES"])
    k = sce[: min(sce.size, 8)]
    prefixe[k] = np.char.add(leurres[np.arange(k.size) % 4], " SYNTHETIQUE")
    ei = cat == "1000"
    num = pl.Series(numero_u).cast(pl.String).str.zfill(6)
    assoc = fam == "association"
    virgule = assoc & (numero_u % 97 == 5)
    guillemets = assoc & (numero_u % 89 == 7)
    denom = pl.select(
        pl.when(pl.Series(ei)).then(None)
        .when(pl.Series(guillemets)).then(pl.lit('LE "FOYER" ') + _s(prefixe) + " " + num)
        .when(pl.Series(virgule)).then(_s(prefixe) + " " + num + pl.lit(", SECTION LOCALE"))
        .otherwise(_s(prefixe) + " " + num).alias("d")).to_series()
    sigle = np.full(m, "", dtype="<U4")
    sigle[assoc & (numero_u % 7 == 0)] = "ASYN"
    sigle[sce[8:9]] = "SCIC"   # ESS flag + cooperative token only in the acronym
    ess_flag = np.where(fam == "hors_ess", np.where(rng.random(m) < 0.5, "N", ""), "O")
    ess_flag[assoc & (rng.random(m) < 0.1)] = ""
    creation_u = _dates(rng, m, "1950-01-01", "2023-01-01")
    tranche_u = np.where(u["employeur"] & (u["effectif"] > 0),
                         _tranche_de(np.maximum(u["effectif"], 1)), "NN")
    tranche_u[u["etat"] == "C"] = ""
    actif = u["etat"] == "A"
    ul = pl.DataFrame({
        "siren": pl.Series(u["siren"]).cast(pl.String).str.zfill(9),
        "statutDiffusionUniteLegale": _s(np.full(m, "O")),
        "unitePurgeeUniteLegale": _s(np.where(~actif & (rng.random(m) < 0.3), "true", "")),
        "dateCreationUniteLegale": _texte_dates(creation_u),
        "sigleUniteLegale": _s(sigle),
        "sexeUniteLegale": _s(np.where(ei, np.where(rng.random(m) < 0.5, "M", "F"), "")),
        "prenom1UniteLegale": _s(np.where(ei, "DEMO", "")),
        "prenomUsuelUniteLegale": _s(np.where(ei, "DEMO", "")),
        "identifiantAssociationUniteLegale": pl.select(
            pl.when(pl.Series(assoc)).then(pl.lit("W") + num.str.zfill(9)).alias("r")
        ).to_series(),
        "trancheEffectifsUniteLegale": _s(tranche_u),
        "anneeEffectifsUniteLegale": _s(np.where(np.isin(tranche_u, list(_TRANCHES)), "2021",
                                                 "")),
        "dateDernierTraitementUniteLegale": _texte_horodatage(rng, m, fin),
        "nombrePeriodesUniteLegale": _s(rng.integers(1, 6, m).astype("<U1")),
        "categorieEntreprise": _s(np.where(u["effectif"] >= 250, "ETI",
                                           np.where(actif, "PME", ""))),
        "anneeCategorieEntreprise": _s(np.where(actif, "2021", "")),
        "dateDebut": _texte_dates(np.minimum(creation_u + rng.integers(0, 4000, m), fin - 1)),
        "etatAdministratifUniteLegale": _s(u["etat"]),
        "nomUniteLegale": pl.select(pl.when(pl.Series(ei)).then(pl.lit("SYNTHETIQUE ") + num)
                                    .alias("n")).to_series(),
        "denominationUniteLegale": denom,
        "categorieJuridiqueUniteLegale": _s(cat),
        "activitePrincipaleUniteLegale": _s(u["naf"]),
        "nomenclatureActivitePrincipaleUniteLegale": _s(u["nomenclature"]),
        "nicSiegeUniteLegale": pl.Series(u["nic_siege"]).cast(pl.String).str.zfill(5),
        "economieSocialeSolidaireUniteLegale": _s(ess_flag),
        "societeMissionUniteLegale": _s(np.where(rng.random(m) < 0.01, "O", "")),
        "caractereEmployeurUniteLegale": _s(np.where(actif, np.where(u["employeur"], "O", "N"),
                                                     "")),
    }).with_columns(
        pl.lit(None, dtype=pl.String).alias(c) for c in
        ("prenom2UniteLegale", "prenom3UniteLegale", "prenom4UniteLegale",
         "pseudonymeUniteLegale", "nomUsageUniteLegale", "denominationUsuelle1UniteLegale",
         "denominationUsuelle2UniteLegale", "denominationUsuelle3UniteLegale",
         "activitePrincipaleNAF25UniteLegale")
    ).select(COLONNES_UNITES_LEGALES)
    return ul, denom, sigle, ess_flag


def _codes_postaux(rng, dep: np.ndarray) -> np.ndarray:
    """Plausible postal codes (synthetic): département prefix + digits, 5 characters."""
    n = dep.size
    court = np.char.str_len(dep) <= 2
    prefixe = np.where(np.isin(dep, ["2A", "2B"]), "20", dep)
    suite3 = np.char.zfill((rng.integers(0, 100, n) * 10).astype(str), 3)
    suite2 = np.char.zfill((rng.integers(0, 10, n) * 10).astype(str), 2)
    return np.where(court, np.char.add(prefixe, suite3), np.char.add(prefixe, suite2))


# --------------------------------------------------------------------------------------------
# Edge cases that touch a few rows
# --------------------------------------------------------------------------------------------

def _cas_speciaux_communes(rng, t: dict[str, np.ndarray], n_min) -> dict[str, int]:
    """Former codes, communes déléguées, overseas collectivities without contours, abroad."""
    com = reference.communes()
    anciens = com.filter(pl.col("anciens_codes").fill_null("") != "").select(
        "code_commune", "code_departement", pl.col("anciens_codes").str.split("|").list.first())
    deleguees = com.filter(pl.col("type") == "commune-deleguee").select(
        "code_commune", "code_departement")
    cands = np.flatnonzero((t["zone"] == "hors") & np.isin(t["groupe"], ["nonemp", "hors_ess"]))
    k = n_min(0, 3)
    choix = rng.choice(cands, size=5 * k, replace=False)
    a = anciens.sample(k, seed=int(rng.integers(1 << 31)))
    d = deleguees.sample(k, seed=int(rng.integers(1 << 31)))
    i = 0
    for code, dep in zip(a["anciens_codes"].to_list(), a["code_departement"].to_list()):
        t["commune"][choix[i]], t["dep"][choix[i]] = code, dep
        i += 1
    for code, dep in zip(d["code_commune"].to_list(), d["code_departement"].to_list()):
        t["commune"][choix[i]], t["dep"][choix[i]] = code, dep
        i += 1
    for code, dep in (("97502", "975"), ("97701", "977")):
        t["commune"][choix[i]], t["dep"][choix[i]] = code, dep
        t["lon"][choix[i]] = t["lat"][choix[i]] = np.nan
        t["iqpv"][choix[i]] = t["iqpv15"][choix[i]] = -1
        i += 1
    etranger = choix[i: i + k]
    t["commune"][etranger] = ""
    t["dep"][etranger] = ""
    t["lon"][etranger] = np.nan
    t["lat"][etranger] = np.nan
    t["iqpv"][etranger] = t["iqpv15"][etranger] = -1
    return {"anciens_codes_commune": k, "communes_deleguees": k, "collectivites_sans_contour": 2,
            "etablissements_a_l_etranger": k}


def _orphelins(rng, t: dict[str, np.ndarray], ul: pl.DataFrame, k: int) -> pl.DataFrame:
    """Drop the legal unit of ``k`` single-establishment units (siren without legal unit)."""
    n = len(t["siren"])
    seul = np.ones(n, bool)
    meme = t["unite"][1:] == t["unite"][:-1]
    seul[1:] &= ~meme
    seul[:-1] &= ~meme
    cands = np.flatnonzero(seul & (t["etat"] == "A") & np.isin(t["groupe"], ["nonemp", "hors_ess"]))
    en_qpv = cands[t["iqpv"][cands] >= 0]
    choix = np.unique(np.r_[rng.choice(cands, size=k, replace=False), en_qpv[:1]])
    t["orphelin"] = np.zeros(n, bool)
    t["orphelin"][choix] = True
    sirens = pl.Series(t["siren"][choix]).cast(pl.String).str.zfill(9)
    return ul.filter(~pl.col("siren").is_in(sirens.implode()))


def _discordances(rng, t: dict[str, np.ndarray], k: int) -> int:
    """INSEE's ``plg_qp24`` disagreeing with the geometry, near boundaries (2 × ``k`` rows)."""
    q = _qpv()["code"]
    dedans = np.flatnonzero(t["calibre"] & t["geoloc"] & (t["iqpv"] >= 0))
    pres = np.flatnonzero(t["geoloc"] & (t["iproche"] >= 0) & (t["iqpv"] < 0) & t["ess"]
                          & (t["statut_coord"] == "normal"))
    a = rng.choice(dedans, size=min(k, dedans.size), replace=False)
    b = rng.choice(pres, size=min(k, pres.size), replace=False)
    t["plg_qp24"][a] = "HZ"
    t["plg_qp24"][b] = q[t["iproche"][b]]
    return int(a.size + b.size)


# --------------------------------------------------------------------------------------------
# Planted malformed lines
# --------------------------------------------------------------------------------------------

def _csv(df: pl.DataFrame, sep: str = ",", entete: bool = False) -> bytes:
    b = io.BytesIO()
    df.write_csv(b, separator=sep, include_header=entete, quote_style="necessary",
                 null_value="", line_terminator="\n")
    return b.getvalue()


def _ligne_sans_guillemets(rng, df: pl.DataFrame, sep: str) -> list[str]:
    for _ in range(1000):
        i = int(rng.integers(0, df.height))
        ligne = _csv(df.slice(i, 1), sep).decode().rstrip("\n")
        if '"' not in ligne:
            return ligne.split(sep)
    raise RuntimeError("aucune ligne sans guillemets")


def _malformees(rng, df: pl.DataFrame, role: str, sirens_libres: list[int]) -> list[tuple]:
    """(bytes, reason) of the malformed lines planted in one file."""
    sep = ";" if role == "geolocalisation" else ","
    nb = len(df.columns)
    out = []

    def champs():
        c = _ligne_sans_guillemets(rng, df, sep)
        siren = f"{sirens_libres.pop():09d}"
        if role == "etablissements":
            c[0], c[2] = siren, siren + c[1]
        elif role == "unites_legales":
            c[0] = siren
        else:
            c[0] = siren + "00019"
        return c

    c = champs()
    out.append((sep.join(c[: nb - 3]).encode(), "champs_manquants"))
    c = champs()
    out.append((sep.join(c + ["SYNTHETIQUE"]).encode(), "champs_en_trop"))
    if role == "etablissements":
        c = champs()
        out.append((sep.join(c[: nb - 1]).encode(), "champs_manquants"))
        c = champs()
        i = COLONNES_ETABLISSEMENTS.index("libelleVoieEtablissement")
        c[i] = "\x00"
        brut = sep.join(c).encode().replace(b"\x00", b"DE L'\xc9GLISE")  # Latin-1 byte
        out.append((brut, "octets_non_decodables"))
    return out


def _ecrire_avec_plantees(flux, df: pl.DataFrame, plantees: list[tuple], rng, sep: str,
                          entete: bool, ligne_depart: int) -> list[dict]:
    """Write ``df`` with the planted lines inserted at random places; return their lines."""
    if entete:
        flux.write(_csv(df.head(0), sep, entete=True))
    positions = np.sort(rng.choice(np.arange(1, max(df.height, 2)), size=len(plantees),
                                   replace=df.height - 1 < len(plantees)))
    faites, debut = [], 0
    for j, (p, (brut, motif)) in enumerate(zip(positions, plantees)):
        flux.write(_csv(df.slice(debut, int(p) - debut), sep))
        flux.write(brut + b"\n")
        faites.append({"ligne": ligne_depart + int(p) + j, "motif": motif})
        debut = int(p)
    for a in range(debut, df.height, 200_000):
        flux.write(_csv(df.slice(a, min(200_000, df.height - a)), sep))
    return faites


def _emplois_invalides(rng, t: dict[str, np.ndarray], emplois: pl.DataFrame):
    """Invalid employment rows (METHODOLOGY 6.3): (row index to insert before, bytes, reason).

    Three employers out of QPV get an invalid row instead of their valid one (two counts
    above ``effectif``, one negative ``effectif``); two get a second identical row (a
    duplicate) and two a row whose siret has lost its last digit.
    """
    siret = emplois["siret"].to_numpy().astype("<U14")
    rang = np.searchsorted(t["siret"], siret)
    cands = rng.permutation(np.flatnonzero(t["groupe"][rang] == "emp_hors"))
    a_retirer, copies, tronques = cands[:3], cands[3:5], cands[5:7]
    lignes = []

    def valeurs(i):
        return emplois.row(int(i), named=True)

    for j, i in enumerate(a_retirer):
        r = valeurs(i)
        if j < 2:
            brut = (f"{r['siret']},{r['effectif']},{r['effectif'] + 3},{r['cdi']},"
                    f"{r['contrats_aides']},{r['temps_complet']},{r['annee']}")
            lignes.append((int(i), brut.encode(), "valeur_hors_bornes"))
        else:
            lignes.append((int(i), f"{r['siret']},-4,0,0,0,0,{r['annee']}".encode(),
                           "effectif_invalide"))
    for i in tronques:
        r = valeurs(i)
        brut = ",".join([r["siret"][:13]] + [str(r[c]) for c in COLONNES_EMPLOIS[1:]])
        lignes.append((int(i), brut.encode(), "siret_invalide"))
    for i in copies:
        r = valeurs(i)
        brut = ",".join(str(r[c]) for c in COLONNES_EMPLOIS)
        lignes.append((int(i) + 1 + int(rng.integers(0, 50)), brut.encode(), "doublon"))
    t["emploi_valide"][rang[a_retirer]] = False
    garde = np.ones(emplois.height, bool)
    garde[a_retirer] = False
    return emplois, lignes, garde


def _ecrire_emplois(flux, emplois: pl.DataFrame, lignes, garde: np.ndarray) -> list[dict]:
    """Write the employment file with invalid rows at given row indices."""
    flux.write(_csv(emplois.head(0), entete=True))
    par_position: dict[int, list[tuple[bytes, str]]] = {}
    for p, brut, motif in lignes:
        par_position.setdefault(min(p, emplois.height), []).append((brut, motif))
    faites, ligne, debut = [], 2, 0
    for p in sorted(par_position):
        bloc = emplois.slice(debut, p - debut).filter(pl.Series(garde[debut:p]))
        flux.write(_csv(bloc))
        ligne += bloc.height
        for brut, motif in par_position[p]:
            flux.write(brut + b"\n")
            faites.append({"ligne": ligne, "motif": motif})
            ligne += 1
        debut = p
    bloc = emplois.slice(debut).filter(pl.Series(garde[debut:]))
    flux.write(_csv(bloc))
    return faites


# --------------------------------------------------------------------------------------------
# Ground truth (what the pipeline must find, by the METHODOLOGY rules)
# --------------------------------------------------------------------------------------------

def _famille_expr() -> pl.Expr:
    """METHODOLOGY 3 as a polars expression on (categorie, ess, denomination, sigle)."""
    regles = reference.regles_familles().sort("ordre")
    par_cj = regles.filter(pl.col("regle") == "categorie_juridique").unique(
        "valeur", keep="first", maintain_order=True)
    jetons = regles.filter(pl.col("regle") == "ess_et_nom")["valeur"].to_list()

    def a_jeton(col: str) -> pl.Expr:
        return (pl.col(col).fill_null("").str.to_uppercase().str.extract_all(r"[A-Z0-9]+")
                .list.eval(pl.element().is_in(jetons)).list.any())

    par_categorie = pl.col("categorie").replace_strict(
        par_cj["valeur"], par_cj["famille"], default=None, return_dtype=pl.String)
    return (pl.when(par_categorie.is_not_null()).then(par_categorie)
            .when((pl.col("ess_flag") == "O") & (a_jeton("denomination") | a_jeton("sigle")))
            .then(pl.lit("cooperative"))
            .when(pl.col("ess_flag") == "O").then(pl.lit("societe_commerciale_ess"))
            .otherwise(pl.lit("hors_ess")))


def _secteur_expr() -> pl.Expr:
    """METHODOLOGY 4 as a polars expression on (naf, nomenclature)."""
    regles = reference.regles_secteurs().sort("ordre")
    division = pl.col("naf").str.slice(0, 2)
    rev2 = pl.col("nomenclature") == "NAFRev2"
    expr = pl.when(~rev2).then(pl.lit("Non classé"))
    for secteur, niveau, codes in regles.select("secteur", "niveau", "codes").iter_rows():
        if niveau == "division":
            expr = expr.when(division.is_in(codes.split("|"))).then(pl.lit(secteur))
        elif niveau == "sous_classe":
            expr = expr.when(pl.col("naf").is_in(codes.split("|"))).then(pl.lit(secteur))
        elif niveau == "naf_rev2":
            expr = expr.when(rev2).then(pl.lit(secteur))
    return expr.otherwise(pl.lit("Non classé"))


def _verite(t: dict[str, np.ndarray], emplois: pl.DataFrame) -> dict:
    """Key figures of the files by the METHODOLOGY rules (the pipeline must find them)."""
    exclus = reference.exclusions_activite()
    div = exclus.filter(pl.col("niveau") == "division")["code"].to_list()
    sc = exclus.filter(pl.col("niveau") == "sous_classe")["code"].to_list()
    valides = emplois.filter(pl.col("siret").is_in(
        pl.Series(t["siret"][t["emploi_valide"]]).implode())).unique("siret", keep="first")
    f = pl.DataFrame({
        "siret": _s(t["siret"]), "categorie": _s(t["categorie"]), "ess_flag": _s(t["ess_flag"]),
        "denomination": t["denomination"], "sigle": _s(t["sigle"]), "naf": _s(t["naf"]),
        "nomenclature": _s(t["nomenclature"]), "actif": t["etat"] == "A",
        "caractere": _s(t["caractere"]), "tranche": _s(t["tranche"]),
        "localise": np.isin(t["statut_coord"], ["normal", "stock_seul"]),
        "dans_qpv": t["iqpv"] >= 0, "orphelin": t["orphelin"], "statut": _s(t["statut_coord"]),
    }).with_columns(
        pl.when(pl.col("orphelin")).then(pl.lit("hors_ess")).otherwise(_famille_expr())
        .alias("famille"),
        _secteur_expr().alias("secteur"),
        ((pl.col("nomenclature") == "NAFRev2") & (pl.col("naf").str.slice(0, 2).is_in(div)
                                                  | pl.col("naf").is_in(sc))).alias("exclu"),
        ((pl.col("caractere") == "O") | (pl.col("caractere").is_null()
                                         & pl.col("tranche").is_in(list(_TRANCHES))))
        .alias("employeur"),
    ).with_columns(
        (pl.col("actif") & (pl.col("famille") != "hors_ess") & ~pl.col("exclu"))
        .alias("perimetre"),
    ).join(valides, on="siret", how="left")
    emp = f.filter(pl.col("perimetre") & pl.col("employeur"))
    qpv = emp.filter(pl.col("localise") & pl.col("dans_qpv"))
    sal_q, sal_f = int(qpv["effectif"].sum()), int(emp["effectif"].sum())

    def parts(df: pl.DataFrame, total: int) -> dict[str, float]:
        g = df.group_by("secteur").agg(pl.col("effectif").sum()).filter(pl.col("effectif") > 0)
        d = dict(g.iter_rows())
        return {s: round(d[s] / max(total, 1), 4) for s in reference.SECTEURS if s in d}

    def part(col: str) -> float:
        return round(int(qpv[col].sum()) / max(sal_q, 1), 4)

    actifs = f.filter(pl.col("actif"))
    return {
        "etablissements_employeurs_qpv": qpv.height,
        "etablissements_employeurs_france": emp.height,
        "salaries_qpv": sal_q, "salaries_france": sal_f,
        "parts_familles_qpv": {fa: round(qpv.filter(pl.col("famille") == fa).height
                                         / max(qpv.height, 1), 4) for fa in _FAMILLES},
        "part_femmes_qpv": part("femmes"), "part_cdi_qpv": part("cdi"),
        "part_contrats_aides_qpv": part("contrats_aides"),
        "part_temps_complet_qpv": part("temps_complet"),
        "parts_secteurs_qpv": parts(qpv, sal_q), "parts_secteurs_france": parts(emp, sal_f),
        "employeurs_qpv_sans_donnee_emploi": qpv.filter(pl.col("effectif").is_null()).height,
        "non_employeurs_ess_qpv": f.filter(pl.col("perimetre") & ~pl.col("employeur")
                                           & pl.col("localise") & pl.col("dans_qpv")).height,
        "etablissements_sans_unite_legale": actifs.filter(pl.col("orphelin")).height,
        "exclues_activite": actifs.filter((pl.col("famille") != "hors_ess")
                                          & pl.col("exclu")).height,
        "non_diffusibles": f.filter(pl.col("statut") == "nd").height,
        "qualite_xy_33": f.filter(pl.col("statut") == "q33").height,
        "coordonnees_stock_seules": actifs.filter(pl.col("statut") == "stock_seul").height,
    }


# --------------------------------------------------------------------------------------------
# The public verb
# --------------------------------------------------------------------------------------------

Progression = Callable[[str, int, int], None]


def _n_min(valeur: float, minimum: int) -> int:
    return max(int(minimum), int(round(valeur)))


def _coeur(rng, echelle: float) -> dict[str, np.ndarray]:
    e = echelle
    cible = _Cible(
        n_qpv=int(round(_cal("etablissements_employeurs", "qpv") * e)),
        e_qpv=int(round(_cal("salaries", "qpv") * e)),
        n_france=int(round(_cal("etablissements_employeurs") * e)),
        e_france=int(round(_cal("salaries") * e)))
    return _concat([
        _employeurs_calibres(rng, cible),
        _autres_ess(rng, e, _n_min),
        _hors_ess(rng, int(round(_cal("etablissements_hors_ess_actifs") * e)),
                  int(round(_cal("etablissements_hors_ess_fermes") * e)),
                  _cal("part_qpv_hors_ess")),
    ])


#: Rows of the core lot at the demo scale (measured; used to scale ``etablissements=N``).
_TAILLE_DEMO = 454_000
#: Scale of the ESS core added per row of the complement of a large register: the core of
#: the demo profile (scale 1) holds ≈ 304,000 active ESS establishments; with this, a
#: register of 40 M rows holds ≈ 1.9 M (the national register's order of magnitude).
_ECHELLE_ESS_PAR_LIGNE = 5.25 / 39_550_000


def generer(dossier: str | Path, *, profil: str = "demo", etablissements: int | None = None,
            graine: int = 2024, millesime: str = "2024-01",
            progression: Progression | None = None) -> dict:
    """Write a synthetic Sirene register in the official schemas.

    Parameters
    ----------
    dossier : path
        Output folder (created). Existing files of the same names are replaced.
    profil : {"demo", "test"}
        ``demo``: the national ESS volumes of the seed deck (≈ 450,000 establishment rows);
        ``test``: 1/20 of it, every edge case still present.
    etablissements : int, optional
        Target number of establishment rows. Below the demo size, every volume is scaled
        down (approximately ``N`` rows); above it, the demo register is completed with
        establishments outside the ESS (62 % closed), written in lots of
        :data:`TAILLE_LOT` rows, up to the national register (≈ 40 M); each lot holds its
        share of ESS establishments (≈ 4 %: ≈ 1.9 M of them at 40 M). ``attendu`` then
        describes the first core only.
    graine : int
        Seed of the numpy generator: the same seed gives the same bytes.
    millesime : str
        Vintage ``AAAA-MM`` (dates, the 12-month creation window, ``annee`` of the
        employment file).
    progression : callable, optional
        ``progression(etape, fait, total)`` called as rows are written (for progress bars).

    Returns
    -------
    dict
        ``fichiers`` (paths), ``lignes`` (data lines per file, malformed ones included),
        ``lignes_malformees`` (count per file), ``malformees`` (per file: the physical line
        numbers — header = 1 — and reasons), ``attendu`` (the key figures the pipeline must
        find in these files by the METHODOLOGY rules), ``cas_particuliers``, ``synthetique``
        (True) and ``marque`` (:data:`essqpv.config.MARQUE_SYNTHETIQUE`).

    Raises
    ------
    ParametreInvalide
        Unknown profile, badly formed vintage, non-positive ``etablissements``.
    """
    if profil not in PROFILS:
        raise ParametreInvalide(
            f"Profil inconnu : {profil!r} (valeurs possibles : {', '.join(PROFILS)}).")
    if not re.fullmatch(r"(19|20)\d\d-(0[1-9]|1[0-2])", str(millesime)):
        raise ParametreInvalide(
            f"Millésime invalide : {millesime!r} (format attendu : AAAA-MM, par ex. 2024-01).")
    if etablissements is not None and int(etablissements) < 2_000:
        raise ParametreInvalide(
            f"Nombre d'établissements trop petit : {etablissements} (au moins 2 000).")
    debut_chrono = time.perf_counter()
    dossier = Path(dossier)
    dossier.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(graine)
    echelle = PROFILS[profil]
    if etablissements is not None:
        echelle = min(1.0, int(etablissements) / _TAILLE_DEMO)
    avancer = progression or (lambda *_: None)

    # ---- core lot: every ESS establishment and the edge cases ------------------------
    avancer("tirage", 0, 1)
    t = _coeur(rng, echelle)
    _placer(rng, t, forcer=True)
    speciaux = _cas_speciaux_communes(rng, t, _n_min)
    u, siren_suivant = _unites(rng, t, 10_000_000)
    etab, ul, geo, emplois = _rendre(rng, t, u, millesime, 1,
                                     discordances=_n_min(20 * echelle, 3))
    ul = _orphelins(rng, t, ul, _n_min(8 * echelle, 3))
    numero_suivant = 1 + len(u["siren"])
    total = etab.height if etablissements is None else max(int(etablissements), etab.height)
    reste = total - etab.height
    sirens_libres = [int(s) for s in _sirens(10_000_001, 16)]

    chemins = {k: dossier / v for k, v in FICHIERS.items()}
    lignes = {"etablissements": 0, "unites_legales": 0, "geolocalisation": 0, "emplois": 0}
    malformees: dict[str, list[dict]] = {}
    temporaires = {k: p.with_name(p.name + ".partiel") for k, p in chemins.items()}
    an, mois = int(millesime[:4]), int(millesime[5:7])
    info = zipfile.ZipInfo(MEMBRE_ZIP, date_time=(an, mois, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = 1  # fast deflate: the national file is ~8 GB of text
    with zipfile.ZipFile(temporaires["etablissements"], "w", allowZip64=True) as archive, \
            archive.open(info, "w", force_zip64=True) as f_etab, \
            open(temporaires["unites_legales"], "wb") as f_ul, \
            open(temporaires["geolocalisation"], "wb") as f_geo, \
            open(temporaires["emplois"], "wb") as f_emp:
        for role, flux, df, sep in (("etablissements", f_etab, etab, ","),
                                    ("unites_legales", f_ul, ul, ","),
                                    ("geolocalisation", f_geo, geo, ";")):
            plantees = _malformees(rng, df, role, sirens_libres)
            malformees[role] = _ecrire_avec_plantees(flux, df, plantees, rng, sep, True, 2)
            lignes[role] += df.height + len(plantees)
        emplois, invalides, garde = _emplois_invalides(rng, t, emplois)
        malformees["emplois"] = _ecrire_emplois(f_emp, emplois, invalides, garde)
        lignes["emplois"] += int(garde.sum()) + len(invalides)
        attendu = _verite(t, emplois)
        fait = etab.height
        avancer("ecriture", fait, total)
        # ---- complement: establishments outside the ESS, in lots, each with its share
        # of ESS establishments (a core of the scale of the lot: the ESS grows with the
        # register, ≈ 1.9 M ESS rows at 40 M as in the national register)
        while reste > 0:
            n = min(TAILLE_LOT, reste)
            sous_lots = []
            if n * _ECHELLE_ESS_PAR_LIGNE * _TAILLE_DEMO >= 2_000:
                ess = _coeur(rng, n * _ECHELLE_ESS_PAR_LIGNE)
                _placer(rng, ess, forcer=True)
                sous_lots.append(ess)
            n_hors = max(0, n - sum(len(x["famille"]) for x in sous_lots))
            n_fermes = int(round(n_hors * _cal("part_fermes_remplissage")))
            lot = _hors_ess(rng, n_hors - n_fermes, n_fermes, _cal("part_qpv_hors_ess"))
            _placer(rng, lot, forcer=False)
            sous_lots.append(lot)
            for lot in sous_lots:
                u2, siren_suivant = _unites(rng, lot, siren_suivant)
                e2, ul2, g2, emp2 = _rendre(rng, lot, u2, millesime, numero_suivant)
                numero_suivant += len(u2["siren"])
                for role, flux, df, sep in (("etablissements", f_etab, e2, ","),
                                            ("unites_legales", f_ul, ul2, ","),
                                            ("geolocalisation", f_geo, g2, ";"),
                                            ("emplois", f_emp, emp2, ",")):
                    flux.write(_csv(df, sep))
                    lignes[role] += df.height
                reste -= e2.height
                fait += e2.height
            avancer("ecriture", fait, total)
    resultat = {
        "synthetique": True,
        "marque": MARQUE_SYNTHETIQUE,
        "profil": profil, "graine": graine, "millesime": millesime,
        "echelle": echelle,
        "fichiers": {k: str(v) for k, v in chemins.items()},
        "lignes": lignes,
        "lignes_malformees": {k: len(v) for k, v in malformees.items()},
        "malformees": malformees,
        "attendu": attendu,
        "cas_particuliers": {
            **speciaux,
            "discordances_plg_qp24": int(t["discordances"]),
            "etablissements_sans_unite_legale": attendu["etablissements_sans_unite_legale"],
            "non_diffusibles": attendu["non_diffusibles"],
            "qualite_xy_33": attendu["qualite_xy_33"],
            "coordonnees_stock_seules": attendu["coordonnees_stock_seules"],
            "naf_rev1": int((t["nomenclature"] == "NAFRev1").sum()),
            "activites_exclues": attendu["exclues_activite"],
        },
    }
    temporaires["lisezmoi"].write_text(_lisezmoi(resultat), encoding="utf-8")
    for k, p in temporaires.items():
        p.replace(chemins[k])
    resultat["duree_s"] = round(time.perf_counter() - debut_chrono, 2)
    return resultat


def _lisezmoi(r: dict) -> str:
    lignes = [
        f"ATTENTION : {r['marque']}.",
        "",
        "Ces fichiers reproduisent exactement les schémas officiels de l'Insee (stock Sirene des",
        "établissements et des unités légales, fichier de géolocalisation) et un fichier des",
        "emplois par établissement, mais leur contenu est SYNTHÉTIQUE : aucune structure n'y est",
        "réelle (les noms sont de la forme « ASSOCIATION SYNTHETIQUE 000123 »). Seuls sont réels",
        "les contours des QPV 2024 et 2015 (ANCT ; le registre est tiré sur la géographie 2024,",
        "ses codes 2015 gardés), les communes (COG 2026) et les nomenclatures (NAF rév. 2,",
        "catégories juridiques, tranches d'effectifs). Les volumes sont calés sur les ordres de",
        "grandeur du webinaire ANCT / ESS France / RTES de 2020 (lectures approximatives).",
        "",
        f"Profil : {r['profil']} — graine : {r['graine']} — millésime : {r['millesime']}.",
        "",
        "Lignes de données par fichier (lignes mal formées comprises) :",
    ]
    for role, n in r["lignes"].items():
        lignes.append(f"  {role} : {n} ({r['lignes_malformees'].get(role, 0)} mal formées "
                      "à dessein)")
    lignes.append("")
    lignes.append("Lignes plantées à dessein (numéro de ligne physique, l'en-tête étant la "
                  "ligne 1) :")
    for role, liste in r["malformees"].items():
        for m in liste:
            lignes.append(f"  {FICHIERS[role]} ligne {m['ligne']} : {m['motif']}")
    lignes.append("")
    lignes.append("Généré par essqpv (essqpv synthese). Ne pas citer.")
    return "\n".join(lignes) + "\n"


# --------------------------------------------------------------------------- historical files

#: Names of the synthetic historical files (official names of INSEE's historical stocks).
FICHIERS_HISTORIQUES = {
    "etablissements_historique": "StockEtablissementHistorique_utf8.csv",
    "unites_legales_historique": "StockUniteLegaleHistorique_utf8.csv",
}


_AUCUNE = np.iinfo(np.int64).min  # no change drawn (day numbers may be negative: < 1970)


def _lire_stock(chemin: Path, role: str, colonnes: list[str], travail: Path):
    """A file of the synthetic register read back by the project's reader (its planted
    malformed lines are rejected there, as in a build): an Arrow file, read in lots."""
    from essqpv.sources import sirene
    source = sirene.preparer(chemin, role, travail / "extraits")
    return sirene.convertir(source, colonnes, travail / f"{role}.arrow")


def _bascule(rng, n: int, proba: float, debut: pl.Series, fin_jour, plancher: int
             ) -> np.ndarray:
    """Dates (days since 1970) of a change drawn with probability ``proba`` between
    ``max(debut + 30, plancher)`` and ``fin_jour``, else :data:`_AUCUNE`."""
    d = debut.to_numpy().astype("datetime64[D]").astype(np.int64)
    bas = np.maximum(d + 30, plancher)
    oui = (rng.random(n) < proba) & (bas < fin_jour)
    jours = bas + (rng.random(n) * np.maximum(fin_jour - bas, 1)).astype(np.int64)
    return np.where(oui, jours, _AUCUNE)


def _periodes(debut: pl.Series, coupures: dict[str, np.ndarray],
              base: pl.DataFrame) -> pl.DataFrame:
    """One row per period: the establishment (or unit) is cut at each change date."""
    cadre = base.with_columns(debut.alias("_debut"), *[
        pl.Series(f"_{k}", v, pl.Int64).replace(_AUCUNE, None).cast(pl.Int32).cast(pl.Date)
        for k, v in coupures.items()])
    cols = [f"_{k}" for k in coupures]
    cadre = cadre.with_columns(pl.concat_list(
        pl.col("_debut"), *[pl.when(pl.col(c) > pl.col("_debut")).then(pl.col(c)) for c in cols])
        .list.drop_nulls().list.unique().list.sort().alias("_starts")).with_row_index("_i")
    p = cadre.explode("_starts").rename({"_starts": "dateDebut"})
    # (the periods of one identifier are contiguous rows: shifts need no window)
    meme_suivant = pl.col("_i").shift(-1) == pl.col("_i")
    rang = pl.int_range(pl.len(), dtype=pl.Int64)
    return p.with_columns(
        pl.when(meme_suivant).then(pl.col("dateDebut").shift(-1) - pl.duration(days=1))
        .alias("dateFin"),
        (rang - pl.when(pl.col("_i") != pl.col("_i").shift(1).fill_null(-1)).then(rang)
         .forward_fill()).alias("_rang"))


def _changement(col: str, ident: str) -> pl.Expr:
    """``true``/``false``: the value differs from the previous period's (INSEE's
    ``changement…`` indicators; the first period of an identifier is ``false``)."""
    avant = pl.col(col).shift(1)  # (contiguous periods; the first one is ``_rang`` 0)
    return (pl.when(pl.col("_rang") == 0).then(pl.lit("false"))
            .when(pl.col(col).fill_null("") != avant.fill_null("")).then(pl.lit("true"))
            .otherwise(pl.lit("false")))


_NAF_ANCIENS = np.array(["88.99B", "94.99Z", "85.59A", "93.12Z", "56.10A", "47.11F"])
_J2008 = int(np.datetime64("2008-01-01", "D").astype(np.int64))
_J2015 = int(np.datetime64("2015-01-01", "D").astype(np.int64))


def _periodes_etablissements(rng, e: pl.DataFrame, fin_jour: int) -> pl.DataFrame:
    """The periods of a lot of establishments of the stock (official columns)."""
    n = e.height
    tirage = pl.Series(np.datetime64("1990-01-01") + rng.integers(0, 6570, n), dtype=pl.Date)
    debut = e["dateCreationEtablissement"].str.to_date("%Y-%m-%d", strict=False)
    debut = debut.zip_with(debut.is_not_null(), tirage)
    ferme = (e["etatAdministratifEtablissement"] == "F").to_numpy()
    d0 = debut.to_numpy().astype("datetime64[D]").astype(np.int64)
    fermeture = np.where(ferme, d0 + 30 + (rng.random(n) * np.maximum(
        fin_jour - d0 - 30, 1)).astype(np.int64), _AUCUNE)
    fermeture = np.where(ferme & (fermeture <= d0), d0 + 1, fermeture)
    dernier = np.where(ferme, fermeture - 1, fin_jour)
    activite = _bascule(rng, n, 0.08, debut, dernier, _J2008)
    employeur = _bascule(rng, n, 0.12, debut, dernier, _J2008)
    recodage = np.where(d0 < _J2008, _J2008, _AUCUNE)
    p = _periodes(debut, {"ferme": fermeture, "act": activite, "emp": employeur,
                          "rev2": recodage}, e)
    p = p.with_columns(pl.Series("_autre", _NAF_ANCIENS.tolist()).gather(
        rng.integers(0, len(_NAF_ANCIENS), p.height)))
    avant_act = pl.col("_act").is_not_null() & (pl.col("dateDebut") < pl.col("_act"))
    avant_emp = pl.col("_emp").is_not_null() & (pl.col("dateDebut") < pl.col("_emp"))
    avant_2008 = pl.col("dateDebut") < pl.date(2008, 1, 1)
    naf2 = pl.when(avant_act & (pl.col("_autre") != pl.col("activitePrincipaleEtablissement"))
                   ).then(pl.col("_autre")).otherwise(pl.col("activitePrincipaleEtablissement"))
    p = p.with_columns(
        pl.when(pl.col("_ferme").is_not_null() & (pl.col("dateDebut") >= pl.col("_ferme")))
        .then(pl.lit("F")).otherwise(pl.lit("A")).alias("etatAdministratifEtablissement"),
        # before 2008, NAF rév. 1 (a real code of it: 91.3E, associative organisations)
        pl.when(avant_2008).then(pl.lit("91.3E")).otherwise(naf2)
        .alias("activitePrincipaleEtablissement"),
        pl.when(avant_2008).then(pl.lit("NAFRev1"))
        .otherwise(pl.col("nomenclatureActivitePrincipaleEtablissement"))
        .alias("nomenclatureActivitePrincipaleEtablissement"),
        pl.when(avant_emp).then(pl.col("caractereEmployeurEtablissement").replace(
            {"O": "N", "N": "O"})).otherwise(pl.col("caractereEmployeurEtablissement"))
        .alias("caractereEmployeurEtablissement"),
    )
    p = p.with_columns(
        _changement("etatAdministratifEtablissement", "_i")
        .alias("changementEtatAdministratifEtablissement"),
        _changement("activitePrincipaleEtablissement", "_i")
        .alias("changementActivitePrincipaleEtablissement"),
        _changement("caractereEmployeurEtablissement", "_i")
        .alias("changementCaractereEmployeurEtablissement"),
        pl.lit("false").alias("changementEnseigneEtablissement"),
        pl.lit("false").alias("changementDenominationUsuelleEtablissement"),
    )
    # INSEE writes the periods of a siret from the newest to the oldest
    return p.sort(["_i", "dateDebut"], descending=[False, True])


def _periodes_unites(rng, u: pl.DataFrame, fin_jour: int, cj_ess: list[str]) -> pl.DataFrame:
    """The periods of a lot of legal units (``_premier``: their first establishment's start)."""
    m = u.height
    loin = dt.date(2100, 1, 1)
    d_ul = u["dateCreationUniteLegale"].str.to_date("%Y-%m-%d", strict=False)
    d_ul = pl.Series(np.minimum(
        d_ul.fill_null(loin).to_numpy().astype("datetime64[D]"),
        u["_premier"].fill_null(loin).to_numpy().astype("datetime64[D]")), dtype=pl.Date)
    d_ul = d_ul.zip_with(d_ul < loin, pl.Series(
        np.datetime64("1995-01-01") + rng.integers(0, 4000, m), dtype=pl.Date))
    societe_ess = ((u["economieSocialeSolidaireUniteLegale"] == "O")
                   & ~u["categorieJuridiqueUniteLegale"].is_in(cj_ess)).to_numpy()
    # the ESS flag of a commercial company appears after the 2014 law
    drapeau = np.where(societe_ess, _bascule(rng, m, 0.5, d_ul, fin_jour, _J2015), _AUCUNE)
    categorie = _bascule(rng, m, 0.04, d_ul, fin_jour, _J2008)
    q = _periodes(d_ul, {"ess": drapeau, "cj": categorie}, u)
    avant_ess = pl.col("_ess").is_not_null() & (pl.col("dateDebut") < pl.col("_ess"))
    avant_cj = pl.col("_cj").is_not_null() & (pl.col("dateDebut") < pl.col("_cj"))
    q = q.with_columns(
        pl.when(avant_ess).then(pl.lit("N")).otherwise(
            pl.col("economieSocialeSolidaireUniteLegale"))
        .alias("economieSocialeSolidaireUniteLegale"),
        pl.when(avant_cj & (pl.col("categorieJuridiqueUniteLegale") != "5499"))
        .then(pl.lit("5499")).otherwise(pl.col("categorieJuridiqueUniteLegale"))
        .alias("categorieJuridiqueUniteLegale"),
        pl.lit("A").alias("etatAdministratifUniteLegale"),
    )
    q = q.with_columns(*[
        _changement(c, "_i").alias("changement" + c[0].upper() + c[1:])
        for c in ("economieSocialeSolidaireUniteLegale", "categorieJuridiqueUniteLegale",
                  "etatAdministratifUniteLegale")],
        *[pl.lit("false").alias(c) for c in (
            "changementNomUniteLegale", "changementNomUsageUniteLegale",
            "changementDenominationUniteLegale", "changementDenominationUsuelleUniteLegale",
            "changementActivitePrincipaleUniteLegale", "changementNicSiegeUniteLegale",
            "changementSocieteMissionUniteLegale", "changementCaractereEmployeurUniteLegale")])
    return q.sort(["_i", "dateDebut"], descending=[False, True])


def _ecrire_lot(flux, df: pl.DataFrame, colonnes: list[str]) -> None:
    df.with_columns(pl.col("dateDebut").cast(pl.String), pl.col("dateFin").cast(pl.String)) \
        .select([pl.col(c) if c in df.columns else pl.lit(None, dtype=pl.String).alias(c)
                 for c in colonnes]).write_csv(flux, include_header=False)


def generer_historiques(fichiers: dict, millesime: str, graine: int = 2024,
                        dossier: str | Path | None = None, lot: int = 2_000_000) -> dict:
    """Write ``StockEtablissementHistorique`` and ``StockUniteLegaleHistorique`` in the
    official schemas, consistent with the synthetic stock of ``fichiers`` (from
    :func:`generer`): each current period is the stock's row; a closed establishment's
    active period ends the day before its closure; some establishments changed activity or
    employer character, some legal units their legal category, and some commercial
    companies got the ESS flag (from 2015, after the 2014 law) — every change on a drawn
    date. Periods before 2008 are coded in NAF rév. 1 (Sirene recoded the active
    establishments in NAF rév. 2 on 1 January 2008).

    ``dossier``: where to write (default: beside the stock). The stock is read in lots of
    ``lot`` rows, so the national register fits in memory. Returns the paths
    (``fichiers``) and the number of periods of each file.
    """
    import shutil

    from essqpv.sources.historique import ETABLISSEMENTS, UNITES_LEGALES
    from essqpv.sources.sirene import colonnes_officielles
    rng = np.random.default_rng(graine + 20)
    dossier = Path(dossier) if dossier is not None else Path(fichiers["etablissements"]).parent
    dossier.mkdir(parents=True, exist_ok=True)
    travail = dossier / ".lecture_historique"
    an, mois = int(millesime[:4]), int(millesime[5:7])
    fin_jour = int(np.datetime64(f"{an:04d}-{mois:02d}-01", "D").astype(np.int64)) - 15
    chemins = {r: dossier / FICHIERS_HISTORIQUES[r] for r in (ETABLISSEMENTS, UNITES_LEGALES)}
    temporaires = {r: c.with_name(c.name + ".partiel") for r, c in chemins.items()}
    colonnes = {r: colonnes_officielles(r)["colonne"].to_list() for r in chemins}
    regles = reference.regles_familles()
    cj_ess = regles.filter(pl.col("regle") == "categorie_juridique")["valeur"].to_list()
    periodes = {ETABLISSEMENTS: 0, UNITES_LEGALES: 0}
    try:
        ce = _lire_stock(Path(fichiers["etablissements"]), "etablissements",
                         ["siren", "nic", "siret", "dateCreationEtablissement",
                          "etatAdministratifEtablissement", "activitePrincipaleEtablissement",
                          "nomenclatureActivitePrincipaleEtablissement",
                          "caractereEmployeurEtablissement", "enseigne1Etablissement",
                          "denominationUsuelleEtablissement"], travail)
        premiers = []
        vus = pl.DataFrame(schema={"siret": pl.String})
        with open(temporaires[ETABLISSEMENTS], "wb") as f:
            f.write((",".join(colonnes[ETABLISSEMENTS]) + "\n").encode())
            total = ce.lignes_acceptees
            for debut in range(0, total, lot):
                e = (ce.lire().slice(debut, lot).collect()
                     .filter(pl.col("siret").str.contains(r"^[0-9]{14}$"))
                     .unique("siret", keep="first", maintain_order=True)
                     .join(vus, on="siret", how="anti"))  # a planted duplicate row
                vus = pl.concat([vus, e.select("siret")])
                p = _periodes_etablissements(rng, e, fin_jour)
                premiers.append(p.group_by("siren").agg(pl.col("dateDebut").min()
                                                        .alias("_premier")))
                _ecrire_lot(f, p, colonnes[ETABLISSEMENTS])
                periodes[ETABLISSEMENTS] += p.height
        del vus
        ce.chemin.unlink()
        premier = pl.concat(premiers).group_by("siren").agg(pl.col("_premier").min())
        cu = _lire_stock(Path(fichiers["unites_legales"]), "unites_legales",
                         ["siren", "dateCreationUniteLegale", "etatAdministratifUniteLegale",
                          "categorieJuridiqueUniteLegale",
                          "economieSocialeSolidaireUniteLegale", "denominationUniteLegale",
                          "nomUniteLegale", "nicSiegeUniteLegale",
                          "activitePrincipaleUniteLegale",
                          "nomenclatureActivitePrincipaleUniteLegale",
                          "caractereEmployeurUniteLegale"], travail)
        vus = pl.DataFrame(schema={"siren": pl.String})
        with open(temporaires[UNITES_LEGALES], "wb") as f:
            f.write((",".join(colonnes[UNITES_LEGALES]) + "\n").encode())
            for debut in range(0, cu.lignes_acceptees, lot):
                u = (cu.lire().slice(debut, lot).collect()
                     .filter(pl.col("siren").str.contains(r"^[0-9]{9}$"))
                     .unique("siren", keep="first", maintain_order=True)
                     .join(vus, on="siren", how="anti"))
                vus = pl.concat([vus, u.select("siren")])
                u = u.join(premier, on="siren", how="left", maintain_order="left")
                q = _periodes_unites(rng, u, fin_jour, cj_ess)
                _ecrire_lot(f, q, colonnes[UNITES_LEGALES])
                periodes[UNITES_LEGALES] += q.height
        for r, c in chemins.items():
            temporaires[r].replace(c)
    finally:
        shutil.rmtree(travail, ignore_errors=True)
        for t in temporaires.values():
            if t.exists():
                t.unlink()
    return {"fichiers": {r: str(c) for r, c in chemins.items()}, "periodes": periodes}
