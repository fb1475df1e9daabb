"""Reference data of the directory: schema, axes and categories, models, model rule.

Every table is a CSV file of this package (provenance in ``README.md``); these functions
only read them, once.
"""
from __future__ import annotations

import csv
import re
import unicodedata
from functools import cache
from importlib.resources import files

__all__ = [
    "axes",
    "categories",
    "cle_colonne",
    "emprises",
    "lire_csv",
    "modeles",
    "normaliser",
    "regles_modele",
    "ressources",
    "schema",
]


def lire_csv(nom: str) -> list[dict]:
    """Rows of a CSV file of the package, as dicts of strings."""
    texte = files("essqpv.directory").joinpath(nom).read_text("utf-8")
    return list(csv.DictReader(texte.splitlines()))


def normaliser(texte: str | None) -> str:
    """Upper-case, accents removed, every non-alphanumeric run becomes one space.

    >>> normaliser("  Régie de quartier -- de Laxou ")
    'REGIE DE QUARTIER DE LAXOU'
    """
    if texte is None:
        return ""
    t = unicodedata.normalize("NFKD", str(texte))
    t = "".join(c for c in t if not unicodedata.combining(c))
    t = t.replace("œ", "oe").replace("Œ", "OE").replace("·", "")
    return re.sub(r"[^A-Z0-9]+", " ", t.upper()).strip()


def cle_colonne(texte: str) -> str:
    """Key of a column header for alias matching: ``"Site Web"`` → ``"site_web"``."""
    return normaliser(texte).lower().replace(" ", "_")


@cache
def schema() -> tuple[dict, ...]:
    """The fields of an initiative (``schema.csv``), in order."""
    return tuple(lire_csv("schema.csv"))


@cache
def categories() -> tuple[dict, ...]:
    """The categories of the seed deck with their axis (``categories.csv``)."""
    return tuple(lire_csv("categories.csv"))


@cache
def axes() -> dict[str, str]:
    """Axis code → label, in the deck's order."""
    return {r["axe"]: r["libelle_axe"] for r in categories()}


@cache
def modeles() -> tuple[dict, ...]:
    """The seed deck's table of the three socio-economic models (``modeles.csv``)."""
    return tuple(lire_csv("modeles.csv"))


@cache
def ressources() -> tuple[dict, ...]:
    """Resource columns, their group and their conversion to euros (``ressources_modele.csv``)."""
    return tuple(lire_csv("ressources_modele.csv"))


@cache
def regles_modele() -> tuple[dict, ...]:
    """Threshold rules of the model, in order (``regles_modele.csv``)."""
    return tuple(sorted(lire_csv("regles_modele.csv"), key=lambda r: int(r["ordre"])))


@cache
def emprises() -> tuple[dict, ...]:
    """Bounding boxes of France and its overseas territories (``emprises_france.csv``)."""
    return tuple(lire_csv("emprises_france.csv"))
