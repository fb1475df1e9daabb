"""API route of the series since 2008 (``/api/evolution/{territoire}``), registered on the
dashboard's application by :func:`enregistrer`.

The answer is the stored answer of the vintage's publication (genre ``evolution`` for the
vintage's QPV geography, ``evolution_<géographie>`` for the other:
:func:`essqpv.historique.reponses_evolution`), served as stored: by the API's fast path
(:func:`essqpv.web._donnees.servir_genre`) and written by the static site like every linked
table. Headcounts are not in INSEE's historical files, so there is no employment series.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Query, Request

from essqpv.web._donnees import json_octets, servir_genre

__all__ = ["enregistrer", "avec_evolution", "publier_evolution"]

# ``GET /api/evolution/<code>`` (the vintage's geography) is a key lookup in the stored answers
servir_genre("/api/evolution/", "evolution")


def avec_evolution(donnees) -> bool:
    """Whether the base holds series (the dashboard shows its panel only then)."""
    from essqpv.historique import disponible
    return donnees.memo(("evolution_disponible",), lambda: disponible(donnees.base) is not None)


def _sans_series(base) -> Exception:
    from essqpv.errors import ParametreInvalide
    return ParametreInvalide(
        f"La base {Path(base).name} n'a pas de séries historiques : lancez « essqpv "
        "historique » avec les fichiers StockEtablissementHistorique et "
        "StockUniteLegaleHistorique.")


def enregistrer(app: FastAPI, repondre: Callable[..., Any]) -> None:
    """Add the route; ``repondre(request, cle, calcul)`` is the application's cached JSON
    answer (the same cache and headers as every other route)."""
    donnees = app.state.donnees

    @app.get("/api/evolution/{territoire}", tags=["indicateurs"],
             summary="Évolution depuis 2008 : établissements de l'ESS au 1er janvier de chaque "
                     "année (QPV et territoire, employeurs, familles, secteurs, créations, "
                     "fermetures), réponse enregistrée avec la publication protégée. Pas de "
                     "série des salariés : les effectifs ne sont pas historisés par l'Insee.")
    async def api_evolution(request: Request, territoire: str,
                            geographie: str | None = Query(
                                None, pattern="^(2015|2024)$",
                                description="Géographie des QPV (2015 ou 2024), fixe sur "
                                            "toute la série ; par défaut celle du millésime"),
                            millesime: str | None = Query(
                                None, max_length=7,
                                description="Millésime des séries (AAAA-MM) ; par défaut le "
                                            "plus récent")) -> Any:
        from essqpv.errors import ParametreInvalide
        from essqpv.historique import (disponible, evolution, genre_de, geographie_par_defaut,
                                        verifier_qpv)

        def calcul() -> bytes:
            info = disponible(donnees.base)
            if info is None:
                raise _sans_series(donnees.base)
            m = donnees.millesime(millesime)
            if m != info["millesime"]:
                raise ParametreInvalide(
                    f"Les séries de cette base sont celles du millésime {info['millesime']} "
                    f"(pas de séries pour {m}).")
            geo = geographie_par_defaut(info, geographie)
            verifier_qpv(donnees.territoire(territoire)["niveau"], geo, info)
            if len(donnees.publication()):
                return donnees.reponse_octets(genre_de(geo, info), territoire, "strict", m)[0]
            # a base without publication (built before the build wrote the plan)
            return json_octets(evolution(donnees.base, donnees.territoire(territoire)["code"],
                                         geo))
        return await repondre(request, ("evolution", territoire, geographie, millesime),
                              calcul)


def publier_evolution(donnees, dossier: Path, territoires: list[dict],
                      millesimes: list[str]) -> bool:
    """(static site, :func:`essqpv.web.publier.publier`) Whether the page shows the series
    panel. The stored answers are written with the other linked tables
    (``donnees/<millesime>/strict/evolution/<code>.json``); a base without publication
    (built before the build wrote the plan) gets the same files, computed."""
    from essqpv.historique import disponible, evolution
    from essqpv.web._donnees import nom_fichier
    info = disponible(donnees.base)
    if info is None or info["millesime"] not in millesimes:
        return False
    if not len(donnees.publication()):
        for t in territoires:
            chemin = (dossier / info["millesime"] / "strict" / "evolution" /
                      f"{nom_fichier(t['code'])}.json")
            chemin.parent.mkdir(parents=True, exist_ok=True)
            chemin.write_bytes(json_octets(evolution(donnees.base, t["code"])))
    return True
