"""Indicators of the observatory, read from the protected publication plan.

The plan (:mod:`essqpv.indicators.publication`) protects every publishable cell once per
vintage, at build time, for all the linked tables together; its answers are serialised in the
base (:mod:`essqpv.indicators.reponses`). ``indicateurs()`` is the stored answer behind
``essqpv indicateurs --format json``, the web API, the static site, the report and the exports:
the JSON they give for the same question is the same object.
"""
from essqpv.indicators.reponses import (HorsPlan, indicateurs, indicateurs_qpv,
                                        tableau_regional)

__all__ = ["indicateurs", "indicateurs_qpv", "tableau_regional", "HorsPlan"]

# Linked tables of the publication plan register their cells and answers when imported
# (METHODOLOGY 7): imported here, so that every build and audit of the plan sees them.
import essqpv.transition  # noqa: E402,F401  (the 2015 → 2024 transition)
