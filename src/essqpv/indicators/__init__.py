"""Indicators of the observatory: compute first (compute.py), suppress second (confidentiality.py).

``indicateurs()`` is the one function behind ``essqpv indicateurs --format json``, the web API
and the report: the JSON they give for the same question is the same object.
"""
from essqpv.indicators.compute import indicateurs, indicateurs_qpv, tableau_regional

__all__ = ["indicateurs", "indicateurs_qpv", "tableau_regional"]
