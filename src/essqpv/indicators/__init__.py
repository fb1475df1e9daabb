"""Indicators of the observatory: compute first (compute.py), suppress second (confidentiality.py).

``indicateurs()`` is the one function behind ``essqpv indicateurs --format json``, the web API
and the report: the JSON they give for the same question is the same object.
"""
from essqpv.indicators.compute import indicateurs, indicateurs_qpv, tableau_regional

__all__ = ["indicateurs", "indicateurs_qpv", "tableau_regional"]

# Linked tables of the publication plan register their cells and answers when imported
# (METHODOLOGY 7): imported here, so that every build and audit of the plan sees them.
import essqpv.transition  # noqa: E402,F401  (the 2015 → 2024 transition)
