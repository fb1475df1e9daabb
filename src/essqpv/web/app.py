"""The dashboard and its JSON API (FastAPI), read-only over one base.

Every figure is a stored answer of the protected publication plan (through
:class:`essqpv.web._donnees.Donnees`): the indicators, QPV listings and the answers of the
linked tables are sent as the bytes stored at build time, by a key lookup, never computed or
serialised per request; a territory outside the plan gets a 404 naming the list of the
territories published. The HTML page is a shell that the same JavaScript fills from the API
here, or from the same JSON files in a published site.

Extra sections register their routes in :func:`creer_application`, in the block "routes of
the linked tables" (one line each): a module's ``enregistrer(app, repondre)`` adds its routes,
``repondre(request, cle, calcul)`` being the cached-JSON helper. The answers a linked table
stored with :func:`essqpv.indicators.reponses.genre_de_reponses` are read with
``app.state.donnees.reponse_octets(genre, territoire, perimetre, millesime)``, and
:func:`essqpv.web._donnees.servir_genre` puts them on the fast path (a key lookup, the stored
bytes) and in the static site.
"""
from __future__ import annotations

import gzip
import re
import shutil
import tempfile
import threading
import weakref
import zipfile
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from essqpv import __version__
from essqpv.errors import BaseInvalide, EssqpvError, ParametreInvalide, TerritoireInconnu
from essqpv.web._donnees import (TAILLE_PAGE_MAX, Donnees, json_compact, json_octets,
                                 nom_fichier)

__all__ = ["creer_application", "ENTETES_SECURITE", "TAILLE_CORPS_MAX"]

ICI = Path(__file__).resolve().parent
STATIQUE = ICI / "static"

TAILLE_CORPS_MAX = 5 * 1024 * 1024  # bytes of any request body (CSV file of the lookup)
MOTIF_QPV = re.compile(r"^Q[PN][0-9A-Z]{4,8}$")
MOTIF_SIRET = re.compile(r"^[0-9]{14}$")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")
ENTETES_SECURITE = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "geolocation=(), camera=(), microphone=()",
}


def environnement_gabarits() -> Environment:
    """Jinja2 environment of the dashboard's templates (shared with the publication)."""
    env = Environment(loader=PackageLoader("essqpv.web", "templates"),
                      autoescape=select_autoescape(["html"]))
    return env


class _Securite:
    """Pure ASGI middleware: security headers on every answer, bounded request bodies, and
    the fast path of the API: a GET already answered is sent from the cache without going
    through the router (the base is read-only, so the same URL gets the same bytes).
    """

    def __init__(self, app: Any, donnees: Donnees) -> None:
        self.app = app
        self.donnees = donnees
        self.entetes = [(k.encode(), v.encode()) for k, v in ENTETES_SECURITE.items()]

    async def _envoyer(self, entetes_requete: dict, send: Callable, corps: bytes,
                       gz: bytes | None) -> None:
        entetes = [(b"content-type", b"application/json"), (b"vary", b"Accept-Encoding")]
        if gz is not None and b"gzip" in entetes_requete.get(b"accept-encoding", b""):
            corps = gz
            entetes.append((b"content-encoding", b"gzip"))
        entetes.append((b"content-length", str(len(corps)).encode()))
        await send({"type": "http.response.start", "status": 200,
                    "headers": entetes + self.entetes})
        await send({"type": "http.response.body", "body": corps})

    async def _depuis_cache(self, scope: dict, entetes_requete: dict, send: Callable) -> bool:
        self.donnees.verifier_fraicheur()
        # a stored answer asked by its code: one dictionary lookup, the stored bytes
        cle = self.donnees.cle_rapide(scope["path"], scope["query_string"])
        if cle is not None:
            pub = self.donnees.publication()
            corps = pub.octets(*cle)
            if corps is not None:
                await self._envoyer(entetes_requete, send, corps, pub.octets_gzip(*cle))
                return True
            return False
        cle = (scope["path"], scope["query_string"])
        corps = self.donnees.en_cache(("brut",) + cle)
        if corps is None:
            return False
        gz = None
        if len(corps) > 1400:
            brut = corps
            gz = self.donnees.memo(("brut_gz",) + cle,
                                   lambda: gzip.compress(brut, compresslevel=5))
        await self._envoyer(entetes_requete, send, corps, gz)
        return True

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entetes_requete = dict(scope.get("headers") or [])
        if (scope["method"] == "GET" and scope["path"].startswith("/api/")
                and await self._depuis_cache(scope, entetes_requete, send)):
            return
        longueur = entetes_requete.get(b"content-length")
        if longueur is not None and (not longueur.isdigit()
                                     or int(longueur) > TAILLE_CORPS_MAX):
            await _erreur_brute(send, 413, "Corps de requête trop volumineux : "
                                f"{TAILLE_CORPS_MAX // (1024 * 1024)} Mo au plus.")
            return
        recu = 0

        async def recevoir() -> dict:
            nonlocal recu
            message = await receive()
            if message["type"] == "http.request":
                recu += len(message.get("body", b""))
                if recu > TAILLE_CORPS_MAX:
                    raise _CorpsTropGros()
            return message

        statique = scope["path"].startswith("/static/")

        async def envoyer(message: dict) -> None:
            if message["type"] == "http.response.start":
                entetes = [(k, v) for k, v in message.get("headers", [])
                           if k.decode("latin-1").lower() not in ENTETES_SECURITE]
                entetes += self.entetes
                if statique:
                    entetes.append((b"cache-control", b"public, max-age=3600"))
                message = {**message, "headers": entetes}
            await send(message)

        try:
            await self.app(scope, recevoir, envoyer)
        except _CorpsTropGros:
            await _erreur_brute(send, 413, "Corps de requête trop volumineux : "
                                f"{TAILLE_CORPS_MAX // (1024 * 1024)} Mo au plus.")


class _CorpsTropGros(Exception):
    pass


async def _erreur_brute(send: Callable, statut: int, message: str) -> None:
    corps = json_octets({"erreur": message})
    entetes = [(b"content-type", b"application/json; charset=utf-8"),
               (b"content-length", str(len(corps)).encode())]
    entetes += [(k.encode(), v.encode()) for k, v in ENTETES_SECURITE.items()]
    await send({"type": "http.response.start", "status": statut, "headers": entetes})
    await send({"type": "http.response.body", "body": corps})


def _statut(exc: EssqpvError) -> int:
    if getattr(exc, "statut_http", None):  # (ContenuTropVolumineux: 413)
        return exc.statut_http
    if isinstance(exc, TerritoireInconnu):
        return 404
    if isinstance(exc, ParametreInvalide):
        return 400
    if isinstance(exc, BaseInvalide):
        return 503
    return 400


def _reponse_json(request: Request, corps: bytes, statut: int = 200,
                  gz: bytes | None = None) -> Response:
    """JSON bytes, gzipped when the client accepts it and the body is worth it (``gz``: the
    gzipped copy stored with a published answer)."""
    entetes = {"vary": "Accept-Encoding"}
    if len(corps) > 1400 and "gzip" in request.headers.get("accept-encoding", ""):
        corps = gz if gz is not None else gzip.compress(corps, compresslevel=5)
        entetes["content-encoding"] = "gzip"
    return Response(content=corps, status_code=statut, headers=entetes,
                    media_type="application/json")


def _traduire_validation(exc: RequestValidationError) -> str:
    morceaux = []
    for err in exc.errors()[:3]:
        champ = ".".join(str(x) for x in err.get("loc", ())[1:]) or "requête"
        type_ = err.get("type", "")
        if type_ == "missing":
            morceaux.append(f"paramètre « {champ} » manquant")
        elif type_ in ("int_parsing", "int_type"):
            morceaux.append(f"paramètre « {champ} » : nombre entier attendu")
        elif type_ in ("float_parsing", "float_type"):
            morceaux.append(f"paramètre « {champ} » : nombre attendu")
        elif type_ in ("bool_parsing", "bool_type"):
            morceaux.append(f"paramètre « {champ} » : true ou false attendu")
        elif type_.startswith(("greater_than", "less_than")):
            borne = err.get("ctx", {})
            morceaux.append(f"paramètre « {champ} » hors bornes ({_bornes(borne)})")
        elif type_.startswith("string_too"):
            morceaux.append(f"paramètre « {champ} » de longueur invalide")
        else:
            morceaux.append(f"paramètre « {champ} » invalide")
    return "Requête invalide : " + " ; ".join(morceaux) + "."


def _bornes(ctx: dict) -> str:
    parts = []
    for cle, mot in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        if cle in ctx:
            parts.append(f"{mot} {ctx[cle]}")
    return ", ".join(parts) or "voir la documentation"


def _openapi_400(app: FastAPI) -> None:
    """The OpenAPI description says what the API answers: 400 ``{"erreur": ...}`` for an
    invalid parameter (FastAPI's default documents 422, which the API never sends)."""
    from fastapi.openapi.utils import get_openapi

    def schema() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        s = get_openapi(title=app.title, version=app.version, description=app.description,
                        routes=app.routes, tags=app.openapi_tags)
        erreur = {"type": "object", "required": ["erreur"],
                  "properties": {"erreur": {"type": "string",
                                            "description": "Message en français."}}}
        composants = s.setdefault("components", {}).setdefault("schemas", {})
        composants.pop("HTTPValidationError", None)
        composants.pop("ValidationError", None)
        composants["Erreur"] = erreur
        for chemin in s.get("paths", {}).values():
            for operation in chemin.values():
                reponses = operation.get("responses", {})
                if reponses.pop("422", None) is not None or operation.get("parameters") \
                        or operation.get("requestBody"):
                    reponses["400"] = {
                        "description": "Paramètre invalide",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Erreur"}}}}
        app.openapi_schema = s
        return s

    app.openapi = schema


def creer_application(base: Path | str) -> FastAPI:
    """The FastAPI application of the dashboard over ``base`` (read-only).

    Parameters
    ----------
    base : Path
        The DuckDB base built by ``essqpv construire`` (or ``essqpv demo``).

    Returns
    -------
    FastAPI
        Serve it with uvicorn (``essqpv servir``). The OpenAPI description is at
        ``/openapi.json``.

    Raises
    ------
    BaseInvalide
        When the base file does not exist or holds no vintage.
    """
    donnees = Donnees(base)
    donnees.contexte()  # fail now, not at the first request, when the base is unusable
    donnees.publication()  # every stored answer in memory before the first request
    gabarits = environnement_gabarits()
    dossier_fichiers = Path(tempfile.mkdtemp(prefix="essqpv-web-"))
    verrous: dict[tuple, threading.Lock] = {}
    verrou_global = threading.Lock()

    app = FastAPI(
        title="essqpv — API de l'observatoire ESS × QPV",
        version=__version__,
        description=(
            "Indicateurs de l'économie sociale et solidaire dans les quartiers prioritaires "
            "de la politique de la ville, lus dans la publication protégée par le secret "
            "statistique (calculée une fois par millésime, à la construction de la base : "
            "aucune combinaison de réponses ne révèle une case masquée). Les réponses sont "
            "le JSON de `essqpv indicateurs --format json`. Seuls les territoires du plan de "
            "publication sont servis (liste : `/api/territoires/publies`). "
            "Erreurs : `{\"erreur\": \"...\"}` en français (400 paramètre invalide, "
            "404 territoire inconnu ou hors du plan, 413 corps trop volumineux)."),
        docs_url=None, redoc_url=None,
        openapi_tags=[
            {"name": "indicateurs", "description": "Chiffres clés, secteurs, familles."},
            {"name": "territoires", "description": "Recherche de territoires."},
            {"name": "carte", "description": "Contours simplifiés (GeoJSON, EPSG:4326)."},
            {"name": "fichiers", "description": "Rapport PDF et exports."},
        ],
    )
    app.state.donnees = donnees
    app.state.dossier_fichiers = dossier_fichiers
    # the files made for downloads go with the application (or with the process at the
    # latest): no folder of this run is left behind in the temporary directory
    weakref.finalize(app, shutil.rmtree, dossier_fichiers, True)
    app.add_middleware(_Securite, donnees=donnees)
    app.mount("/static", StaticFiles(directory=STATIQUE), name="static")

    # -- errors ------------------------------------------------------------------------
    def _est_api(request: Request) -> bool:
        return request.url.path.startswith(("/api/", "/telecharger/"))

    def _page_erreur(request: Request, statut: int, message: str) -> Response:
        if _est_api(request):
            return _reponse_json(request, json_octets({"erreur": message}), statut)
        try:
            contexte = donnees.contexte()
        except EssqpvError:
            contexte = {}
        html = gabarits.get_template("erreur.html").render(
            statut=statut, message=message, ctx=contexte, racine="/")
        return HTMLResponse(html, status_code=statut)

    @app.exception_handler(EssqpvError)
    async def _erreur_essqpv(request: Request, exc: EssqpvError) -> Response:
        return _page_erreur(request, _statut(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _erreur_validation(request: Request, exc: RequestValidationError) -> Response:
        return _page_erreur(request, 400, _traduire_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _erreur_http(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "Page introuvable.", 405: "Méthode non autorisée.",
                    413: "Corps de requête trop volumineux."}
        message = messages.get(exc.status_code, "Requête refusée.")
        if isinstance(exc.detail, str) and exc.detail and exc.status_code not in messages:
            message = exc.detail
        if exc.status_code == 400 and "multipart" in str(exc.detail).lower():  # (starlette)
            message = ("Corps de requête multipart mal formé : envoyez le fichier dans le "
                       "champ « fichier ».")
        reponse = _page_erreur(request, exc.status_code, message)
        for cle, valeur in (exc.headers or {}).items():
            reponse.headers[cle] = valeur
        if exc.status_code == 405:  # Allow: every method of the routes of this path
            from starlette.routing import Match
            methodes = {m for r in app.routes if getattr(r, "methods", None)
                        and r.matches(request.scope)[0] != Match.NONE for m in r.methods}
            if methodes:
                reponse.headers["allow"] = ", ".join(sorted(methodes))
        return reponse

    _openapi_400(app)

    @app.exception_handler(Exception)
    async def _erreur_interne(request: Request, exc: Exception) -> Response:
        return _page_erreur(request, 500, "Erreur interne du serveur : la requête n'a pas "
                            "pu aboutir ; merci de la signaler.")

    # -- cached JSON helper ------------------------------------------------------------------
    async def _json(request: Request, cle: tuple, calcul: Callable[[], bytes]) -> Response:
        donnees.verifier_fraicheur()
        corps = donnees.en_cache(("requete",) + cle)
        if corps is None:
            corps = await run_in_threadpool(calcul)
            donnees.memo(("requete",) + cle, lambda: corps)
        # the same URL will be answered by the middleware's fast path
        donnees.memo(("brut", request.url.path, request.scope["query_string"]), lambda: corps)
        return _reponse_json(request, corps)

    # -- routes of the linked tables (one line each) -----------------------------------------
    from essqpv.web.historique import avec_evolution as _avec_evolution
    from essqpv.web.historique import enregistrer as enregistrer_historique
    enregistrer_historique(app, _json)  # /api/evolution/{territoire}
    from essqpv.web import transition as _transition
    _transition.enregistrer(app, _json)  # /api/transition/{territoire} (2015 → 2024)

    # -- pages ---------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(territoire: str = Query("FR", max_length=120),
             perimetre: str = Query("strict", max_length=12),
             millesime: str | None = Query(None, max_length=7)) -> HTMLResponse:
        ctx = donnees.contexte(millesime)
        t = donnees.territoire_publie(territoire, ctx["millesime"])
        if perimetre not in ctx["perimetres"]:
            raise ParametreInvalide(
                f"Périmètre invalide : « {perimetre[:40]} » ; disponibles : "
                f"{', '.join(ctx['perimetres'])}.")
        html = gabarits.get_template("index.html").render(
            ctx=ctx, territoire=t, perimetre=perimetre, mode="api", racine="/",
            lien_json=f"/api/indicateurs/{t['code']}?perimetre={perimetre}"
                      f"&millesime={ctx['millesime']}",
            avec_initiatives=donnees.initiatives_disponibles(),
            avec_evolution=_avec_evolution(donnees),
            avec_transition=_transition.avec_transition(donnees))
        return HTMLResponse(html)

    # -- API ----------------------------------------------------------------------------
    @app.get("/api/contexte", tags=["indicateurs"],
             summary="Millésimes, périmètres, sources, licence, marque des données synthétiques")
    async def api_contexte(request: Request,
                           millesime: str | None = Query(None, max_length=7)) -> Response:
        return await _json(request, ("contexte", millesime),
                           lambda: json_octets(donnees.contexte(millesime)))

    @app.get("/api/territoires", tags=["territoires"],
             summary="Recherche d'un territoire par nom ou par code (autocomplétion)")
    async def api_territoires(request: Request,
                              q: str = Query(..., min_length=1, max_length=80,
                                             description="Début d'un nom ou d'un code"),
                              limite: int = Query(10, ge=1, le=50)) -> Response:
        return await _json(request, ("territoires", q.casefold(), limite),
                           lambda: json_octets(donnees.rechercher(q, limite)))

    def _stockee(request: Request, genre: str, territoire: str, perimetre: str,
                 millesime: str | None) -> Response:
        """A stored answer asked by a name, or one the fast path did not find (errors)."""
        donnees.verifier_fraicheur()
        corps, gz = donnees.reponse_octets(genre, territoire, perimetre, millesime)
        return _reponse_json(request, corps, gz=gz)

    @app.get("/api/indicateurs/{territoire}", tags=["indicateurs"],
             summary="Indicateurs d'un territoire (JSON de `essqpv indicateurs`)")
    def api_indicateurs(request: Request, territoire: str,
                        perimetre: str = Query("strict", max_length=12),
                        millesime: str | None = Query(None, max_length=7)) -> Response:
        return _stockee(request, "indicateurs", territoire, perimetre, millesime)

    @app.get("/api/qpv/{code}", tags=["indicateurs"],
             summary="Indicateurs d'un quartier prioritaire (code QP… ou QN…)")
    def api_qpv(request: Request, code: str,
                perimetre: str = Query("strict", max_length=12),
                millesime: str | None = Query(None, max_length=7)) -> Response:
        code_qp = code.upper().removeprefix("QPV:")
        if not MOTIF_QPV.match(code_qp):
            raise ParametreInvalide(
                f"Code de quartier invalide : « {code[:40]} » ; attendu un code comme "
                "« QP093001 » ou « QN00101M ».")
        return _stockee(request, "indicateurs", f"QPV:{code_qp}", perimetre, millesime)

    @app.get("/api/quartiers", tags=["indicateurs"],
             summary="Les quartiers prioritaires d'un territoire et leurs chiffres")
    def api_quartiers(request: Request,
                      territoire: str = Query("FR", max_length=120),
                      perimetre: str = Query("strict", max_length=12),
                      millesime: str | None = Query(None, max_length=7)) -> Response:
        return _stockee(request, "quartiers", territoire, perimetre, millesime)

    @app.get("/api/territoires/publies", tags=["territoires"],
             summary="Les territoires du plan de publication (les seuls servis)")
    async def api_territoires_publies(request: Request,
                                      millesime: str | None = Query(None, max_length=7)
                                      ) -> Response:
        m = donnees.millesime(millesime)
        return await _json(request, ("territoires_publies", m),
                           lambda: json_octets(donnees.territoires_publies(m)))

    @app.get("/api/etablissements", tags=["indicateurs"],
             summary="Établissements de l'ESS d'un territoire (attributs publics Sirene, paginé)")
    async def api_etablissements(
            request: Request,
            territoire: str = Query(..., max_length=120),
            perimetre: str = Query("strict", max_length=12),
            millesime: str | None = Query(None, max_length=7),
            en_qpv: bool | None = Query(None, description="true : en QPV seulement"),
            page: int = Query(1, ge=1, le=1_000_000),
            taille: int = Query(50, ge=1, le=TAILLE_PAGE_MAX)) -> Response:
        return await _json(
            request, ("etablissements", territoire, perimetre, millesime, en_qpv, page, taille),
            lambda: json_octets(donnees.etablissements(territoire, perimetre, millesime,
                                                       en_qpv, page, taille)))

    @app.get("/api/initiatives", tags=["indicateurs"],
             summary="Initiatives de l'annuaire pour un territoire")
    async def api_initiatives(request: Request,
                              territoire: str = Query("FR", max_length=120)) -> Response:
        def calcul() -> bytes:
            liste = donnees.initiatives(territoire)
            if liste is None:
                raise StarletteHTTPException(404)
            return json_octets(liste)
        return await _json(request, ("initiatives", territoire), calcul)

    @app.get("/api/carte/qpv", tags=["carte"],
             summary="Contours simplifiés des quartiers prioritaires (GeoJSON)")
    async def api_carte_qpv(request: Request,
                            millesime: str | None = Query(None, max_length=7)) -> Response:
        return await _json(request, ("carte_qpv", millesime),
                           lambda: json_compact(donnees.contours_qpv(millesime)))

    @app.get("/api/carte/{niveau}", tags=["carte"],
             summary="Contours simplifiés des régions ou des départements (GeoJSON)")
    async def api_carte(request: Request, niveau: str) -> Response:
        return await _json(request, ("carte", niveau),
                           lambda: json_compact(donnees.contours(niveau)))

    # -- downloads -------------------------------------------------------------------------
    def _fichier(cle: tuple, produire: Callable[[Path], Path]) -> Path:
        with verrou_global:
            verrou = verrous.setdefault(cle, threading.Lock())
        with verrou:
            dossier = dossier_fichiers / "_".join(nom_fichier(str(c)) for c in cle)
            prets = [p for p in dossier.glob("*") if p.is_file()] if dossier.exists() else []
            if prets:
                return prets[0]
            travail = Path(tempfile.mkdtemp(dir=dossier_fichiers))
            try:
                chemin = produire(travail)
                dossier.mkdir(parents=True, exist_ok=True)
                final = dossier / chemin.name
                shutil.move(str(chemin), final)
            finally:
                shutil.rmtree(travail, ignore_errors=True)
            return final

    @app.get("/telecharger/rapport/{territoire}", tags=["fichiers"],
             summary="Rapport PDF du territoire", response_class=FileResponse)
    def telecharger_rapport(territoire: str,
                            perimetre: str = Query("strict", max_length=12),
                            millesime: str | None = Query(None, max_length=7)) -> FileResponse:
        m = donnees.millesime(millesime)
        t = donnees.territoire_publie(territoire, m)
        donnees.indicateurs_octets(t["code"], perimetre, m)  # validates the perimeter first
        chemin = _fichier(("rapport", t["code"], perimetre, m),
                          lambda d: produire_rapport(donnees.base, t["code"], perimetre, m, d))
        return FileResponse(chemin, media_type="application/pdf",
                            filename=f"essqpv-{nom_fichier(t['code'])}-{perimetre}-{m}.pdf")

    @app.get("/telecharger/{format}/{territoire}", tags=["fichiers"],
             summary="Export Excel (xlsx) ou CSV (zip) du territoire",
             response_class=FileResponse)
    def telecharger_export(format: str, territoire: str) -> FileResponse:
        if format not in ("xlsx", "csv"):
            raise ParametreInvalide(
                f"Format d'export inconnu : « {format[:20]} » ; attendu « xlsx » ou « csv ».")
        m = donnees.millesime(None)
        t = donnees.territoire_publie(territoire, m)
        chemin = _fichier(("export", format, t["code"], m),
                          lambda d: produire_export(donnees.base, t["code"], format, d))
        types = {".xlsx": "application/vnd.openxmlformats-officedocument."
                          "spreadsheetml.sheet",
                 ".zip": "application/zip", ".csv": "text/csv; charset=utf-8"}
        return FileResponse(chemin, media_type=types.get(chemin.suffix,
                                                         "application/octet-stream"),
                            filename=f"essqpv-{nom_fichier(t['code'])}-{m}{chemin.suffix}")

    _ajouter_localisation(app, donnees)
    __import__("essqpv.web._adresses", fromlist=["ajouter"]).ajouter(app, donnees)  # adresses
    return app


def application_servie() -> FastAPI:
    """The application over the base named by ``ESSQPV_BASE`` (``essqpv servir --processus N``
    starts N uvicorn workers with this factory, each holding the stored answers)."""
    import os
    base = os.environ.get("ESSQPV_BASE")
    if not base:
        raise BaseInvalide("Variable ESSQPV_BASE absente : indiquez la base à servir.")
    return creer_application(base)


def produire_rapport(base: Path, code: str, perimetre: str, millesime: str,
                     dossier: Path) -> Path:
    """The PDF report of a territory, written in ``dossier``."""
    from essqpv.outputs import rapport
    return Path(rapport(base, code, perimetre, millesime, format="pdf", sortie=dossier))


def produire_export(base: Path, code: str, format: str, dossier: Path) -> Path:
    """The export of a territory: one xlsx, or the CSV files (zipped when several)."""
    from essqpv.outputs import exporter
    chemins = [Path(p) for p in exporter(base, code, format=format, sortie=dossier)]
    if format == "xlsx" or len(chemins) == 1:
        return next(p for p in chemins if p.suffix == f".{format}") if format == "xlsx" \
            else chemins[0]
    archive = dossier / f"{nom_fichier(code)}-csv.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for p in chemins:
            z.write(p, p.name)
    return archive


def _ajouter_localisation(app: FastAPI, donnees: Donnees) -> None:
    """Routes of the lookup (``/api/localiser``) when ``essqpv.lookup`` exists."""
    try:
        import essqpv.lookup  # noqa: F401
    except ImportError:
        return
    from essqpv.web._localiser import ajouter
    ajouter(app, donnees)
