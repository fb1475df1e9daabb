"""Routes of the address lookup: suggestions while typing, then "is this address in a QPV?".

The geocoder is the one of ``essqpv geocodeur installer`` (``$ESSQPV_GEOCODEUR`` or the
default folder). It is opened at the first request (essqpv starts its Redis then) and closed
when the application stops. addok keeps module-level connections and SQLite objects belong to
the thread that made them: every geocoder call runs in **one** dedicated thread.
"""
from __future__ import annotations

import atexit
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from essqpv.errors import GeocodeurIndisponible
from essqpv.web._donnees import Donnees, json_octets

__all__ = ["ajouter"]


class _Service:
    """The geocoder of the application, in its own thread."""

    def __init__(self):
        self._fil = ThreadPoolExecutor(max_workers=1, thread_name_prefix="essqpv-geocodeur")
        self._geocodeur = None
        self._verrou = threading.Lock()

    def _ouvert(self):
        from essqpv.geocodage import Geocodeur
        if self._geocodeur is None:
            self._geocodeur = Geocodeur().ouvrir()
        return self._geocodeur

    def appeler(self, fonction, *args):
        return self._fil.submit(lambda: self._appel(fonction, *args)).result()

    def _appel(self, fonction, *args):
        """In the geocoder's thread. If its Redis went away (killed, machine short of
        memory), the geocoder is reopened once — essqpv starts a new server — and otherwise
        the request fails with :class:`GeocodeurIndisponible` (HTTP 503)."""
        import redis
        for essai in (1, 2):
            try:
                return fonction(self._ouvert(), *args)
            except (redis.ConnectionError, redis.TimeoutError, GeocodeurIndisponible) as exc:
                self.fermer()
                if isinstance(exc, GeocodeurIndisponible) and "cessé de répondre" not in str(
                        exc):
                    raise  # not installed, or cannot start: no second try
                if essai == 2:
                    raise GeocodeurIndisponible(
                        "Le géocodeur d'adresses ne répond pas (son serveur Redis s'est "
                        "arrêté et n'a pas pu être relancé) ; réessayez plus tard ou vérifiez "
                        "l'installation avec « essqpv geocodeur etat ».") from None

    def etat(self) -> dict:
        from essqpv.geocodage import etat
        try:
            e = etat()
        except GeocodeurIndisponible:
            return {"installe": False, "departements": []}
        return {"installe": e["installe"],
                "departements": [{k: d.get(k) for k in ("code", "nom", "date_ban")}
                                 for d in e["departements"]]}

    def fermer(self) -> None:
        # stopping touches no addok or SQLite object: any thread may do it
        with self._verrou:
            if self._geocodeur is not None:
                self._geocodeur.fermer()
                self._geocodeur = None


def ajouter(app: FastAPI, donnees: Donnees) -> None:
    """Add ``GET /api/adresses/etat``, ``/api/adresses/suggestions`` and
    ``/api/adresses/localiser``."""
    from starlette.concurrency import run_in_threadpool

    from essqpv.geocodage.localisation import SCORE_MIN, localiser_adresse
    service = _Service()
    precedent = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def cycle(application):
        async with precedent(application) as etat:
            try:
                yield etat
            finally:
                service.fermer()  # the application stops: so does its Redis

    app.router.lifespan_context = cycle
    atexit.register(service.fermer)

    def tampon() -> int:
        return int(donnees.metadonnees().get("tampon_m") or 300)

    def repondre(request: Request, objet) -> Response:
        from essqpv.web.app import _reponse_json
        return _reponse_json(request, json_octets(objet))

    @app.get("/api/adresses/etat", tags=["localisation"],
             summary="Géocodeur d'adresses installé : départements et date de la BAN")
    async def api_adresses_etat(request: Request) -> Response:
        return repondre(request, await run_in_threadpool(service.etat))

    @app.get("/api/adresses/suggestions", tags=["localisation"],
             summary="Adresses de la BAN qui complètent le texte saisi (autocomplétion addok)")
    async def api_adresses_suggestions(
            request: Request,
            q: str = Query(..., min_length=3, max_length=200, description="Début d'adresse"),
            limite: int = Query(5, ge=1, le=10)) -> Response:
        def calcul(g):
            return [{k: r[k] for k in ("label", "type", "score", "lon", "lat", "citycode")}
                    for r in g.rechercher(q, limite=limite, autocomplete=True)]
        return repondre(request, {"q": q, "suggestions": await run_in_threadpool(
            service.appeler, calcul)})

    @app.get("/api/adresses/localiser", tags=["localisation"],
             summary="Quartier prioritaire d'une adresse (géocodée hors ligne avec la BAN)")
    async def api_adresses_localiser(
            request: Request,
            adresse: str = Query(..., min_length=1, max_length=200,
                                 description="Adresse postale")) -> Response:
        def calcul(g):
            r = localiser_adresse(adresse, geocodeur=g, tampon_m=tampon(),
                                  score_min=SCORE_MIN)
            return {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        r = await run_in_threadpool(service.appeler, calcul)
        ctx = donnees.contexte()
        r["avertissements"] = [ctx["marque_synthetique"]] if ctx["synthetique"] else []
        return repondre(request, r)
