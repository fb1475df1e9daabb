"""Outputs of the observatory: the territorial report (HTML, PDF, slides), charts, maps and
exports (Excel, CSV, Parquet, GeoPackage, GeoJSON).

Everything here reads the confidentiality-protected indicators of :mod:`essqpv.indicators`
and the public attributes of :func:`essqpv.base.lister_etablissements`; nothing is computed
from raw tables.
"""
from __future__ import annotations

from essqpv.outputs.report import FORMATS_RAPPORT, rapport

# the linked tables' sections of the report and sheets of the exports
from essqpv.outputs import historique as _historique  # noqa: E402,F401  (series since 2008)

__all__ = ["FORMATS_EXPORT", "FORMATS_RAPPORT", "exporter", "rapport"]


def __getattr__(nom: str):
    # exports pull pyogrio/xlsxwriter: import them only when asked
    if nom in ("exporter", "FORMATS_EXPORT"):
        from essqpv.outputs import exports
        return getattr(exports, nom)
    raise AttributeError(nom)
