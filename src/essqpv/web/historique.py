"""API route of the series since 2008 (``/api/evolution/{territoire}``), registered on the
dashboard's application by :func:`enregistrer`.

The answer is :func:`essqpv.historique.evolution` (protected series); headcounts are not in
INSEE's historical files, so there is no employment series.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Query, Request

from essqpv.web._donnees import json_octets

__all__ = ["enregistrer", "avec_evolution", "publier_evolution"]


def avec_evolution(donnees) -> bool:
    """Whether the base holds series (the dashboard shows its panel only then)."""
    from essqpv.historique import disponible
    return donnees.memo(("evolution_disponible",), lambda: disponible(donnees.base) is not None)


def enregistrer(app: FastAPI, repondre: Callable[..., Any]) -> None:
    """Add the route; ``repondre(request, cle, calcul)`` is the application's cached JSON
    answer (the same cache and headers as every other route)."""
    donnees = app.state.donnees

    @app.get("/api/evolution/{territoire}", tags=["indicateurs"],
             summary="Évolution depuis 2008 : établissements de l'ESS au 1er janvier de chaque "
                     "année (QPV et territoire, employeurs, familles, secteurs, créations, "
                     "fermetures), protégée par le secret statistique. Pas de série des "
                     "salariés : les effectifs ne sont pas historisés par l'Insee.")
    async def api_evolution(request: Request, territoire: str,
                            geographie: str | None = Query(
                                None, pattern="^(2015|2024)$",
                                description="Géographie des QPV (2015 ou 2024), fixe sur "
                                            "toute la série")) -> Any:
        from essqpv.historique import evolution

        def calcul() -> bytes:
            t = donnees.territoire(territoire)
            return json_octets(evolution(donnees.base, t["code"], geographie))
        return await repondre(request, ("evolution", territoire, geographie), calcul)


def publier_evolution(donnees, dossier: Path, territoires: list[dict]) -> bool:
    """(static site, :func:`essqpv.web.publier.publier`) Write the series of each published
    territory into ``dossier/evolution/<code>.json`` (the file the dashboard's panel reads in
    static mode: the published answer, as ``/api/evolution/{territoire}`` gives it). Returns
    whether the base holds series (the page shows the panel only then)."""
    from essqpv.historique import disponible, evolution
    from essqpv.web._donnees import nom_fichier
    if disponible(donnees.base) is None:
        return False
    for t in territoires:
        chemin = dossier / "evolution" / f"{nom_fichier(t['code'])}.json"
        chemin.parent.mkdir(parents=True, exist_ok=True)
        chemin.write_bytes(json_octets(evolution(donnees.base, t["code"])))
    return True
