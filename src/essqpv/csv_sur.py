"""Formula neutralisation for every CSV the project writes (CSV injection, OWASP).

A spreadsheet opening a CSV runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a
formula (``=HYPERLINK(…)``, ``=cmd|' /C calc'!A0``), and a leading tab or carriage return
can hide such a start. Following OWASP's rule, such a text cell is written with a leading
apostrophe (``'=HYPERLINK(…)``): the spreadsheet shows it as text, and the original value
is the cell minus that first apostrophe. Numbers are left alone: a numeric column is not
text, and a text cell that is a plain number (``-12``, ``+3.5``, ``-1,55``) is not a formula.

Names and addresses in Sirene, initiatives typed by hand and the columns of a file given to
``essqpv localiser`` all reach our CSV files: they all go through :func:`neutraliser` or
:func:`neutraliser_frame`.
"""
from __future__ import annotations

import csv
import re

import polars as pl

__all__ = ["neutraliser", "neutraliser_frame", "ecrivain", "DEBUTS_DANGEREUX"]

DEBUTS_DANGEREUX = ("=", "+", "-", "@", "\t", "\r")
_DEBUT = r"^[=+\-@\t\r]"
_NOMBRE = r"^[+-]?[0-9]+([.,][0-9]+)?([eE][+-]?[0-9]+)?$"
_NOMBRE_RE = re.compile(_NOMBRE)


def neutraliser(valeur):
    """The value as it may go into a CSV cell: a text starting like a formula gets ``'``."""
    if isinstance(valeur, str) and valeur.startswith(DEBUTS_DANGEREUX) \
            and not _NOMBRE_RE.match(valeur):
        return "'" + valeur
    return valeur


def neutraliser_frame(df: pl.DataFrame) -> pl.DataFrame:
    """:func:`neutraliser` on every text column of a frame (other columns unchanged)."""
    textes = [c for c, t in df.schema.items() if t == pl.String]
    if not textes:
        return df
    return df.with_columns(
        pl.when(pl.col(c).str.contains(_DEBUT) & ~pl.col(c).str.contains(_NOMBRE))
        .then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c) for c in textes)


class _Ecrivain:
    def __init__(self, flux, **options):
        self._w = csv.writer(flux, **options)

    def writerow(self, ligne) -> None:
        self._w.writerow([neutraliser(v) for v in ligne])

    def writerows(self, lignes) -> None:
        for ligne in lignes:
            self.writerow(ligne)


def ecrivain(flux, **options) -> _Ecrivain:
    """A :func:`csv.writer` whose every cell goes through :func:`neutraliser`."""
    return _Ecrivain(flux, **options)
