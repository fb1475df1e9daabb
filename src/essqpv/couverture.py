"""Territories the Sirene register does not cover (French Polynesia, METHODOLOGY 5).

French Polynesia (collectivité d'outre-mer 987) has 88 QPV in the 2024 geography (76 in
2015) but its companies are registered by its own statistical institute (ISPF), not in
Sirene: its QPV are shown "non couvert par Sirene", never as zero, and national totals say
that they exclude them. The list of uncovered territories is the one of
``reference/crs_departements.csv`` (a territory without a CRS for Sirene's coordinates).
"""
from __future__ import annotations

import duckdb

__all__ = ["NON_COUVERT", "departements_hors_sirene", "territoire_hors_sirene",
           "qpv_hors_sirene", "note_totaux", "marquer", "appliquer", "marquer_quartier"]

NON_COUVERT = "non couvert par Sirene"


def departements_hors_sirene() -> frozenset[str]:
    """Département-level codes of the territories outside Sirene (``{"987"}``)."""
    from essqpv.sources.qpv import _table_crs
    return _table_crs()[2]


def _departement_du_territoire(t) -> str | None:
    from essqpv.sources.qpv import departement_du_code
    v = t.valeur
    if t.niveau == "qpv":
        return departement_du_code(v)
    if t.niveau in ("departement", "region"):
        return v
    if t.niveau == "commune":
        return v[:3] if v.startswith(("97", "98")) else v[:2]
    return None


def territoire_hors_sirene(t) -> bool:
    """Whether a :class:`~essqpv.territoires.Territoire` lies wholly outside Sirene."""
    d = _departement_du_territoire(t)
    return d is not None and d in departements_hors_sirene()


def qpv_hors_sirene(con: duckdb.DuckDBPyConnection, millesime: str) -> int:
    """Number of QPV of the vintage's geography outside Sirene (table ``qpv``)."""
    r = con.execute("SELECT count(*) FILTER (WHERE hors_champ_sirene) FROM qpv "
                    "WHERE millesime = ?", [millesime]).fetchone()
    return int(r[0] or 0)


def note_totaux(n: int, geographie: str | None) -> str | None:
    """The sentence national totals carry, or None when no QPV is excluded."""
    if not n:
        return None
    return (f"Totaux hors des {n} QPV de Polynésie française (géographie {geographie}), "
            f"{NON_COUVERT} : la Polynésie a son propre répertoire des entreprises (ISPF) ; "
            "ces quartiers ne sont pas comptés comme zéro, ils sont exclus.")


def marquer(resultat: dict) -> dict:
    """Blank the figures of an indicator answer for an uncovered territory (in place):
    every key figure becomes None and the answer says ``non couvert par Sirene``."""
    resultat["couverture"] = NON_COUVERT
    cles = resultat.get("chiffres_cles") or {}
    for k, v in list(cles.items()):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            cles[k] = None
        elif isinstance(v, dict) and k != "secret":
            cles[k] = {x: None for x in v}
    for ligne in resultat.get("tableau_secteurs") or []:
        for k in ("salaries_qpv", "part_qpv", "ecart_points"):
            ligne[k] = None
    for k in ("etablissements_en_qpv", "non_employeurs_en_qpv"):
        if k in resultat:
            resultat[k] = None
    for k in ("familles_en_qpv", "taille_employeurs_en_qpv"):
        v = resultat.get(k)
        if isinstance(v, dict):
            resultat[k] = {x: (None if not isinstance(y, dict) else {z: None for z in y})
                           for x, y in v.items()}
    c = resultat.get("creations_en_qpv")
    if isinstance(c, dict):
        c["total"] = None
        c["par_famille"] = {x: None for x in c.get("par_famille", {})}
    av = resultat.setdefault("avertissements", [])
    av.insert(0, f"Territoire {NON_COUVERT} : la Polynésie française a son propre répertoire "
                 "des entreprises (ISPF) ; aucun chiffre n'est calculé (ce n'est pas zéro).")
    return resultat


def appliquer(resultat: dict, con: duckdb.DuckDBPyConnection, millesime: str) -> dict:
    """What every indicator answer of an uncovered territory, or of France, must say (the
    stored answers of the publication as the per-answer ones): blanked figures and
    ``non couvert par Sirene``, or the national note of what the totals exclude."""
    from types import SimpleNamespace
    code, niveau = resultat["territoire"]["code"], resultat["territoire"]["niveau"]
    t = SimpleNamespace(niveau=niveau, valeur=code.split(":", 1)[-1])
    if territoire_hors_sirene(t):
        marquer(resultat)
    elif t.niveau == "france":
        note = note_totaux(qpv_hors_sirene(con, millesime), resultat.get("geographie_qpv"))
        if note and note not in resultat.setdefault("avertissements", []):
            resultat["avertissements"].append(note)
    return resultat


def marquer_quartier(ligne: dict) -> dict:
    """A QPV row of an uncovered territory: its figures are None, never zero."""
    ligne.update({"couverture": NON_COUVERT, "etablissements_employeurs": None,
                  "non_employeurs": None, "salaries": None, "secret": {}})
    return ligne
