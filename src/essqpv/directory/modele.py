"""The socio-economic model of an initiative: declared, or derived from its resources.

The rule is data (``regles_modele.csv`` and ``ressources_modele.csv``): each resource is
converted to euros (volunteer hours at the coefficient of the CSV), summed by group
(``marchand``, ``public``, ``citoyen_prive``); the first rule whose group reaches its
threshold share gives the model; when no group reaches its threshold, the group with the
largest share gives the model of its rule (ties: the rule listed first).
"""
from __future__ import annotations

from essqpv.directory._reference import regles_modele, ressources

__all__ = ["choisir_modele", "deduire_modele", "parts_ressources"]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}".replace(".", ",") + " %"


def parts_ressources(valeurs: dict) -> dict[str, float] | None:
    """Share of each group of resources in the total, in euros.

    Parameters
    ----------
    valeurs : dict
        Resource columns (``ressources_ventes``, ..., ``heures_benevoles``) → number or None.

    Returns
    -------
    dict or None
        group → share in [0, 1]; None when no resource is given or the total is 0.

    Examples
    --------
    >>> parts_ressources({"ressources_ventes": 30, "ressources_financements_publics": 70})
    {'marchand': 0.3, 'public': 0.7, 'citoyen_prive': 0.0}
    """
    totaux: dict[str, float] = {}
    for r in ressources():
        totaux.setdefault(r["groupe"], 0.0)
        v = valeurs.get(r["ressource"])
        if v is not None:
            totaux[r["groupe"]] += float(v) * float(r["coefficient_euros"])
    total = sum(totaux.values())
    if total <= 0:
        return None
    return {g: v / total for g, v in totaux.items()}


def deduire_modele(valeurs: dict) -> tuple[int | None, str]:
    """Model derived from a resources breakdown, with the reason in French.

    Examples
    --------
    >>> deduire_modele({"ressources_ventes": 60, "ressources_financements_publics": 40})
    (3, 'modèle 3 déduit des ressources : les ventes de produits et services = 60,0 % des ressources valorisées (seuil 50,0 %)')
    """
    parts = parts_ressources(valeurs)
    if parts is None:
        return None, "ressources non renseignées : modèle non déduit"
    regles = regles_modele()
    for r in regles:
        seuil = float(r["seuil"])
        if parts.get(r["groupe"], 0.0) >= seuil:
            return int(r["modele"]), (
                f"modèle {r['modele']} déduit des ressources : {r['libelle_groupe']} = "
                f"{_pct(parts[r['groupe']])} des ressources valorisées (seuil {_pct(seuil)})")
    meilleure = max(regles, key=lambda r: (parts.get(r["groupe"], 0.0), -int(r["ordre"])))
    return int(meilleure["modele"]), (
        f"modèle {meilleure['modele']} déduit des ressources : aucun seuil atteint, part la plus "
        f"forte pour {meilleure['libelle_groupe']} ({_pct(parts[meilleure['groupe']])})")


def choisir_modele(declare: int | None, valeurs: dict) -> tuple[int | None, str]:
    """The model kept: the declared one, else the one derived from the resources."""
    deduit, motif = deduire_modele(valeurs)
    if declare is not None:
        if deduit is not None and deduit != declare:
            return declare, f"modèle déclaré (la règle des ressources donnerait le modèle {deduit})"
        return declare, "modèle déclaré"
    return deduit, motif
