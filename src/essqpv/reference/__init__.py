"""Reference data shipped with essqpv: nomenclatures, COG, rules and contours.

Every table is a file of this folder (see ``README.md`` for source, licence and date);
the functions below only read them, once, and return polars frames or plain objects.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files

import polars as pl

__all__ = [
    "chemin", "naf", "categories_juridiques", "tranches", "communes", "epci",
    "departements", "regions", "regles_familles", "exclusions_activite", "regles_secteurs",
    "crs_departements", "qpv2015", "qpv2024", "contours", "SECTEURS", "FAMILLES",
]

FAMILLES = ("association", "fondation", "mutuelle", "cooperative", "societe_commerciale_ess")


def chemin(nom: str):
    """Path (a Traversable) of a reference file of the package."""
    return files("essqpv.reference").joinpath(nom)


def _csv(nom: str) -> pl.DataFrame:
    with chemin(nom).open("rb") as f:
        return pl.read_csv(f, infer_schema=False)


@lru_cache(maxsize=None)
def naf() -> pl.DataFrame:
    """NAF rév. 2, one row per sous-classe, the five levels with their labels."""
    return _csv("naf_rev2.csv")


@lru_cache(maxsize=None)
def categories_juridiques() -> pl.DataFrame:
    """INSEE legal categories (niveau III with niveaux II and I)."""
    return _csv("categories_juridiques.csv")


@lru_cache(maxsize=None)
def tranches() -> pl.DataFrame:
    """INSEE headcount brackets with the midpoint estimate and the size group."""
    return _csv("tranches_effectifs.csv").with_columns(
        pl.col("effectif_estime").cast(pl.Float64))


@lru_cache(maxsize=None)
def communes() -> pl.DataFrame:
    """COG 2026 communes (actuelles, déléguées, associées, arrondissements municipaux)."""
    return _csv("communes.csv")


@lru_cache(maxsize=None)
def epci() -> pl.DataFrame:
    """Commune → EPCI à fiscalité propre (COG 2026)."""
    return _csv("epci.csv")


@lru_cache(maxsize=None)
def departements() -> list[dict]:
    """Départements (and overseas collectivities) of the COG 2026."""
    return json.loads(chemin("departements.json").read_text("utf-8"))


@lru_cache(maxsize=None)
def regions() -> list[dict]:
    """Régions (and overseas collectivities) of the COG 2026."""
    return json.loads(chemin("regions.json").read_text("utf-8"))


@lru_cache(maxsize=None)
def regles_familles() -> pl.DataFrame:
    """ESS family rules of METHODOLOGY 3, in order (first match wins)."""
    return _csv("familles.csv").with_columns(pl.col("ordre").cast(pl.Int32))


@lru_cache(maxsize=None)
def exclusions_activite() -> pl.DataFrame:
    """Activities excluded from the ESS perimeter (METHODOLOGY 3.2)."""
    return _csv("exclusions_activite.csv")


@lru_cache(maxsize=None)
def regles_secteurs() -> pl.DataFrame:
    """Sector rules of METHODOLOGY 4, in order (first match wins)."""
    return _csv("secteurs.csv").with_columns(pl.col("ordre").cast(pl.Int32))


SECTEURS: tuple[str, ...] = tuple(
    pl.read_csv(chemin("secteurs.csv").read_bytes(), infer_schema=False)
    .sort(pl.col("ordre").cast(pl.Int32))["secteur"].to_list())


@lru_cache(maxsize=None)
def crs_departements() -> pl.DataFrame:
    """CRS of Sirene's Lambert coordinates and metric CRS per overseas département."""
    return _csv("crs_departements.csv")


@lru_cache(maxsize=None)
def qpv2015() -> pl.DataFrame:
    """The 1,514 QPV of the 2015 geography (WKB geometry in EPSG:4326, repaired)."""
    with chemin("qpv2015.parquet").open("rb") as f:
        return pl.read_parquet(f)


@lru_cache(maxsize=None)
def qpv2024() -> pl.DataFrame:
    """The 1,584 QPV of the 2024 geography (ANCT copy rounded to 4 decimals, ≈ 11 m; WKB
    geometry in EPSG:4326, made valid), with communes (INSEE codes), département, région and
    EPCI derived from the COG."""
    with chemin("qpv2024.parquet").open("rb") as f:
        return pl.read_parquet(f)


@lru_cache(maxsize=None)
def contours(niveau: str) -> pl.DataFrame:
    """Simplified contours for maps: ``niveau`` is ``"regions"`` or ``"departements"``."""
    if niveau not in ("regions", "departements"):
        raise ValueError(niveau)
    with chemin(f"{niveau}_contours.parquet").open("rb") as f:
        return pl.read_parquet(f)
