"""Settings of essqpv: one frozen object, every default documented once.

Statistical thresholds are data (``reference/confidentialite.csv``); this module only
reads them. Nothing here is mutable at module level.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files

MARQUE_SYNTHETIQUE = "données synthétiques de démonstration — ne pas citer"
LICENCE_DONNEES = "Licence Ouverte / Open Licence 2.0 (Etalab)"


@dataclass(frozen=True)
class Confidentialite:
    """Thresholds of INSEE's primary rule and the protection interval (METHODOLOGY 7).

    ``protection_relative`` and ``protection_minimum``: the interval an attacker can derive
    for a sensitive cell must reach at least ``max(protection_relative * value,
    protection_minimum)`` on each side of its value (down to 0).
    """

    nombre_minimum: int = 3
    dominance_maximum: float = 0.85
    protection_relative: float = 0.15
    protection_minimum: float = 3.0


@dataclass(frozen=True)
class Reglages:
    """Build settings.

    Attributes
    ----------
    tampon_m : int
        Distance of the buffer perimeter in metres (METHODOLOGY 5), default 300.
    elargissement_crs_deg : float
        Widening of a CRS area of use, in degrees, before a point is declared
        ``hors_zone_crs``.
    """

    tampon_m: int = 300
    elargissement_crs_deg: float = 0.5
    confidentialite: Confidentialite = field(default_factory=lambda: confidentialite())


@lru_cache(maxsize=1)
def confidentialite() -> Confidentialite:
    """Read the confidentiality thresholds from ``reference/confidentialite.csv``."""
    text = files("essqpv.reference").joinpath("confidentialite.csv").read_text("utf-8")
    values = {r["parametre"]: r["valeur"] for r in csv.DictReader(text.splitlines())}
    return Confidentialite(
        nombre_minimum=int(values["nombre_minimum"]),
        dominance_maximum=float(values["dominance_maximum"]),
        protection_relative=float(values["protection_relative"]),
        protection_minimum=float(values["protection_minimum"]),
    )
