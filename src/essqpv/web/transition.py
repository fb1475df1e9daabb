"""API route of what the 2024 map changes (``/api/transition/{territoire}``), registered on
the dashboard's application by :func:`enregistrer`.

The answer is the stored, protected answer of the publication (genre ``transition``,
:func:`essqpv.transition.tableau`): establishments (public counts) and employees of the ESS
in a QPV 2024 and not 2015, in 2015 and not 2024, in both, by family and by sector, with the
QPV 2024 that are new and the QPV 2015 that left. ``null`` + ``secret`` where a cell is
suppressed. A territory's stored answer asked by its code is served as stored (the API's fast
path, :func:`essqpv.web._donnees.servir_genre`: a key lookup); the route answers names,
errors, and the territories of the register with nothing to show in either map (zeros).
"""
from __future__ import annotations

from typing import Any, Callable

from fastapi import FastAPI, Query, Request

from essqpv.web._donnees import json_octets, servir_genre

__all__ = ["enregistrer", "avec_transition", "publier"]

# ``GET /api/transition/<code>``: a key lookup in the stored answers of the publication
servir_genre("/api/transition/", "transition")


def avec_transition(donnees) -> bool:
    """Whether the base has a published transition (the dashboard shows its panel only
    then)."""
    from essqpv.errors import EssqpvError
    from essqpv.transition import tableau

    def calcul() -> bool:
        try:
            tableau(donnees.base, "FR")
        except EssqpvError:
            return False
        return True
    return donnees.memo(("transition_disponible",), calcul)


def enregistrer(app: FastAPI, repondre: Callable[..., Any]) -> None:
    """Add the route; ``repondre(request, cle, calcul)`` is the application's cached JSON
    answer (the same cache and headers as every other route)."""
    donnees = app.state.donnees

    @app.get("/api/transition/{territoire}", tags=["indicateurs"],
             summary="Ce que change la nouvelle carte (2015 → 2024) : établissements et "
                     "salariés de l'ESS en QPV 2024 et pas en 2015, en 2015 et plus en 2024, "
                     "dans les deux, par famille et par secteur, protégés par le secret "
                     "statistique avec toutes les autres tables ; QPV nouveaux et sortis.")
    async def api_transition(request: Request, territoire: str,
                             millesime: str | None = Query(None, max_length=7)) -> Any:
        from essqpv.transition import tableau

        def calcul() -> bytes:
            t = donnees.territoire(territoire)
            m = donnees.millesime(millesime)
            return json_octets(tableau(donnees.base, t["code"], m))
        return await repondre(request, ("transition", territoire, millesime), calcul)


def publier(donnees, dossier, territoire: dict, millesime: str, ecrire: Callable) -> None:
    """Write the answer of one territory for a static site (``essqpv publier``):
    ``<dossier>/<code>.json``, the bytes of ``GET /api/transition/<code>``; nothing for a
    QPV or a vintage without a published transition."""
    from essqpv.errors import ParametreInvalide
    from essqpv.transition import NIVEAUX_REPONSES, tableau
    from essqpv.web._donnees import nom_fichier
    if territoire["niveau"] not in NIVEAUX_REPONSES:
        return
    try:
        corps = json_octets(tableau(donnees.base, territoire["code"], millesime))
    except ParametreInvalide:  # (a vintage built before the transition was published)
        return
    ecrire(dossier / f"{nom_fichier(territoire['code'])}.json", corps)
