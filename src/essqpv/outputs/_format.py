"""French number formatting for human-facing outputs (reports, slides, Excel labels).

Thousands are separated by U+202F (narrow no-break space), decimals by a comma;
percentages carry one decimal and a no-break space before ``%`` (METHODOLOGY 9:
shares are fractions in JSON, percentages with one decimal in human-facing tables).
"""
from __future__ import annotations

import math

ESPACE_FINE = "\u202f"
ESPACE_INSECABLE = "\u00a0"
MARQUE_SECRET = "s"
TIRET = "–"

__all__ = ["ESPACE_FINE", "MARQUE_SECRET", "nombre", "points", "pourcentage", "valeur"]


def _vide(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def nombre(x, decimales: int = 0) -> str:
    """Format a number the French way.

    Examples
    --------
    >>> nombre(1234567)
    '1\u202f234\u202f567'
    >>> nombre(1234.56, 1)
    '1\u202f234,6'
    >>> nombre(None)
    '–'
    """
    if _vide(x):
        return TIRET
    texte = f"{x:,.{decimales}f}"
    return texte.replace(",", ESPACE_FINE).replace(".", ",")


def pourcentage(part, decimales: int = 1) -> str:
    """Format a fraction in [0, 1] as a French percentage with one decimal.

    >>> pourcentage(0.1234)
    '12,3\u00a0%'
    """
    if _vide(part):
        return TIRET
    return f"{nombre(100 * part, decimales)}{ESPACE_INSECABLE}%"


def points(ecart, decimales: int = 1) -> str:
    """Format a gap in percentage points with its sign.

    >>> points(3.25)
    '+3,2\u00a0pts'
    >>> points(-0.04)
    '0,0\u00a0pt'
    """
    if _vide(ecart):
        return TIRET
    arrondi = round(ecart, decimales)
    if arrondi == 0:
        arrondi = 0.0
    signe = "+" if arrondi > 0 else ("−" if arrondi < 0 else "")
    unite = "pts" if abs(arrondi) >= 2 else "pt"
    return f"{signe}{nombre(abs(arrondi), decimales)}{ESPACE_INSECABLE}{unite}"


def valeur(ligne: dict, colonne: str, genre: str = "nombre", decimales: int = 0) -> str:
    """Format one cell of an indicators row: the ``s`` mark when it is suppressed.

    ``genre`` is ``"nombre"``, ``"part"`` or ``"points"``.
    """
    secret = (ligne.get("secret") or {}) if isinstance(ligne, dict) else {}
    if colonne in secret:
        return MARQUE_SECRET
    x = ligne.get(colonne)
    if genre == "part":
        return pourcentage(x)
    if genre == "points":
        return points(x)
    return nombre(x, decimales)
