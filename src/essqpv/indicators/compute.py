"""Shared helpers of the indicators (METHODOLOGY 6): perimeter columns, territory filters,
rounding, the sector-table row.

No output computes a published figure here: the figures are the stored answers of the
publication plan (:mod:`essqpv.indicators.publication` protects every cell once, for every
table together; :mod:`essqpv.indicators.reponses` serialises and reads the answers). These
helpers are what the plan's answers and the public listings of establishments share.
"""
from __future__ import annotations

import duckdb

from essqpv.errors import ParametreInvalide
from essqpv.territoires import DROM, Territoire

__all__ = ["condition_territoire", "verifier_perimetre", "ligne_secteur", "part_publiee",
           "ARRONDI_PART"]

ARRONDI_PART = 4


def verifier_perimetre(con: duckdb.DuckDBPyConnection, millesime: str, perimetre: str) -> str:
    """Column of the base that holds the QPV of a perimeter (``strict`` or ``<N>m``)."""
    tampon = con.execute("SELECT tampon_m FROM millesimes WHERE millesime = ?",
                         [millesime]).fetchone()[0]
    if perimetre == "strict":
        return "qpv"
    if perimetre == f"{tampon}m":
        return "qpv_tampon"
    raise ParametreInvalide(
        f"Périmètre inconnu : « {perimetre} » (attendu : strict ou {tampon}m pour ce millésime).")


def condition_territoire(t: Territoire, colonne_qpv: str) -> tuple[str, list]:
    """SQL condition (with parameters) selecting the establishments of a territory.

    Column names come from a fixed list; values are always parameters.
    """
    v = t.valeur
    if t.niveau == "france":
        return "TRUE", []
    if t.niveau == "metropole":
        return ("departement IS NOT NULL AND departement NOT LIKE '97%' "
                "AND departement NOT LIKE '98%'", [])
    if t.niveau == "drom":
        return "departement IN (" + ", ".join("?" for _ in DROM) + ")", list(DROM)
    colonne = {"region": "region", "departement": "departement", "epci": "epci",
               "commune": "commune", "qpv": colonne_qpv}[t.niveau]
    return f"{colonne} = ?", [v]


def _arrondi(x: float | None, chiffres: int = ARRONDI_PART) -> float | None:
    return None if x is None else round(x, chiffres)


def _salaries(valeur: float | None) -> float | int | None:
    if valeur is None:
        return None
    return int(round(valeur))


def part_publiee(sortie: dict, secret: dict, cle: str, valeur: float, total: float,
                 statut: str | None) -> None:
    """``sortie[cle]``: the share ``valeur / total``, rounded (None for a zero total); or
    None, with the reason in ``secret[cle]``, when ``statut`` says that its numerator or the
    total it divides by is suppressed (a share would give the hidden cell back)."""
    if statut:
        sortie[cle] = None
        secret[cle] = statut
    else:
        sortie[cle] = _arrondi(valeur / total) if total else None


def ligne_secteur(secteur: str, sq: float, st_sq: str | None, tot_q: float,
                  st_ens_q: str | None, sf: float, st_sf: str | None, tot_f: float,
                  st_ens_f: str | None) -> dict:
    """One row of the sector table QPV vs France: employees in QPV, both shares and their gap,
    each withheld (with its reason in ``secret``) when its cell or the total it divides by is
    secret."""
    secret: dict[str, str] = {}
    ligne = {"secteur": secteur, "salaries_qpv": None if st_sq else _salaries(sq)}
    if st_sq:
        secret["salaries_qpv"] = st_sq
    part_publiee(ligne, secret, "part_qpv", sq, tot_q, st_sq or st_ens_q)
    part_publiee(ligne, secret, "part_france", sf, tot_f, st_sf or st_ens_f)
    if ligne["part_qpv"] is None or ligne["part_france"] is None:
        ligne["ecart_points"] = None
        if "part_qpv" in secret or "part_france" in secret:
            secret["ecart_points"] = secret.get("part_qpv") or secret.get("part_france")
    else:
        ligne["ecart_points"] = round(100 * (ligne["part_qpv"] - ligne["part_france"]), 2) + 0.0
    ligne["secret"] = secret
    return ligne
