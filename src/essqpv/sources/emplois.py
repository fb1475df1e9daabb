"""The employment file: one row per establishment (METHODOLOGY 1 and 6.3).

``siret`` (exactly 14 digits, no padding), ``effectif`` and the four counts ``femmes``,
``cdi``, ``contrats_aides``, ``temps_complet`` (integers >= 0, each <= ``effectif``), optional
``annee``. A row that breaks a rule is rejected whole with its reason (``siret_invalide``,
``effectif_invalide``, ``valeur_hors_bornes``); a second row for the same siret is rejected
(``doublon``). Malformed lines are rejected by the CSV reader like any Sirene file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from essqpv.sources.sirene import Conversion, FichierSource, Rejet

__all__ = ["COMPTES", "valider_emplois", "ValidationEmplois"]

COMPTES = ("femmes", "cdi", "contrats_aides", "temps_complet")
COLONNES = ("siret", "effectif", *COMPTES, "annee")


@dataclass
class ValidationEmplois:
    """Valid rows (typed) and the rows rejected by the rules, with their reasons."""

    valides: pl.DataFrame
    rejets: list[Rejet]


def valider_emplois(source: FichierSource, conversion: Conversion) -> ValidationEmplois:
    """Apply the row rules to the converted employment file.

    Physical line numbers come with the rows (``convertir(..., numeroter=True)``).
    """
    brut = conversion.lire().collect()  # with ``_ligne`` (``numeroter=True``)
    entier = r"^\s*[0-9]+\s*$"
    nombres = {c: pl.col(c).str.strip_chars().cast(pl.Int64, strict=False) for c in
               ("effectif", *COMPTES)}
    motif = (
        pl.when(~pl.col("siret").fill_null("").str.contains(r"^[0-9]{14}$"))
        .then(pl.lit("siret_invalide"))
        .when(~pl.col("effectif").fill_null("").str.contains(entier))
        .then(pl.lit("effectif_invalide"))
        .when(pl.any_horizontal([~pl.col(c).fill_null("").str.contains(entier) for c in COMPTES]))
        .then(pl.lit("valeur_hors_bornes"))
        .when(pl.any_horizontal([nombres[c] > nombres["effectif"] for c in COMPTES]))
        .then(pl.lit("valeur_hors_bornes"))
        .otherwise(pl.lit(None))
    )
    brut = brut.with_columns(motif.alias("_motif"))
    bons = brut.filter(pl.col("_motif").is_null())
    doublon = bons.select(pl.col("siret").is_duplicated() & ~pl.col("siret").is_first_distinct())
    brut = brut.with_columns(
        pl.when(pl.col("_ligne").is_in(bons.filter(doublon.to_series())["_ligne"].implode()))
        .then(pl.lit("doublon")).otherwise(pl.col("_motif")).alias("_motif"))
    valides = brut.filter(pl.col("_motif").is_null()).select(
        "siret", *[nombres[c].alias(c) for c in ("effectif", *COMPTES)],
        pl.col("annee"), pl.col("_ligne").alias("ligne"))
    lignes_rejetees = brut.filter(pl.col("_motif").is_not_null()).select("_ligne", "_motif")
    rejets = []
    if lignes_rejetees.height:
        contenus = _lignes_brutes(source.csv, set(lignes_rejetees["_ligne"].to_list()))
        rejets = [Rejet(int(n), m, contenus.get(int(n), b""))
                  for n, m in lignes_rejetees.iter_rows()]
    return ValidationEmplois(valides=valides, rejets=rejets)


def _lignes_brutes(chemin: Path, numeros: set[int]) -> dict[int, bytes]:
    contenus: dict[int, bytes] = {}
    fin = max(numeros)
    with open(chemin, "rb") as flux:
        for n, ligne in enumerate(flux, start=1):
            if n in numeros:
                contenus[n] = ligne.rstrip(b"\r\n")
            if n >= fin:
                break
    return contenus
