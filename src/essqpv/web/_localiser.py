"""Routes of the lookup: "is this point / SIRET / file in a QPV?" (``essqpv.lookup``)."""
from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from essqpv.errors import ParametreInvalide
from essqpv.web._donnees import Donnees, json_octets

__all__ = ["ajouter", "LIGNES_FICHIER_MAX"]

LIGNES_FICHIER_MAX = 100_000
EXTENSIONS = (".csv", ".txt", ".tsv", ".xlsx")


def _propre(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def ajouter(app: FastAPI, donnees: Donnees) -> None:
    """Add ``GET /api/localiser`` (point or SIRET) and ``POST /api/localiser`` (a file)."""
    from essqpv import lookup

    def tampon() -> int:
        return int(donnees.metadonnees().get("tampon_m") or 300)

    @app.get("/api/localiser", tags=["localisation"],
             summary="Quartier prioritaire d'un point (lon, lat WGS84) ou d'un SIRET de la base")
    async def api_localiser(
            request: Request,
            lon: float | None = Query(None, ge=-180, le=180, description="Longitude WGS84"),
            lat: float | None = Query(None, ge=-90, le=90, description="Latitude WGS84"),
            siret: str | None = Query(None, min_length=14, max_length=20,
                                      description="SIRET (14 chiffres)")) -> Response:
        if siret is not None and (lon is not None or lat is not None):
            raise ParametreInvalide("Indiquez soit un SIRET, soit lon et lat, pas les deux.")
        if siret is not None:
            reponse = await run_in_threadpool(lookup.localiser_siret, donnees.base, siret)
        elif lon is not None and lat is not None:
            def calcul() -> dict:
                ligne = lookup.localiser_points(lon, lat, tampon_m=tampon()).row(0, named=True)
                ctx = donnees.contexte()
                return {**{k: _propre(v) for k, v in ligne.items()},
                        "provenance": lookup.provenance(),
                        "avertissements": [ctx["marque_synthetique"]]
                        if ctx["synthetique"] else []}
            reponse = await run_in_threadpool(calcul)
        else:
            raise ParametreInvalide("Paramètres manquants : lon et lat (WGS84), ou siret.")
        from essqpv.web.app import _reponse_json
        return _reponse_json(request, json_octets(reponse))

    @app.post("/api/localiser", tags=["localisation"],
              summary="Ajouter le quartier prioritaire de chaque ligne d'un fichier CSV ou XLSX "
                      "(5 Mo et 100 000 lignes au plus)",
              response_class=FileResponse)
    def api_localiser_fichier(fichier: UploadFile = File(...,  # noqa: B008
                                                         description="CSV ou XLSX")
                              ) -> FileResponse:
        nom = Path(fichier.filename or "fichier.csv").name
        ext = Path(nom).suffix.lower()
        if ext not in EXTENSIONS:
            raise ParametreInvalide(f"{nom} : format non pris en charge ; CSV ou XLSX attendu.")
        dossier = Path(tempfile.mkdtemp(prefix="essqpv-localiser-"))
        try:
            entree = dossier / f"entree{ext}"
            with entree.open("wb") as f:
                shutil.copyfileobj(fichier.file, f)
            if ext != ".xlsx":
                with entree.open("rb") as f:
                    lignes = sum(1 for _ in f) - 1
                if lignes > LIGNES_FICHIER_MAX:
                    raise ParametreInvalide(
                        f"{nom} : {lignes} lignes ; {LIGNES_FICHIER_MAX} au plus par requête "
                        "(utilisez la commande essqpv localiser pour les gros fichiers).")
            sortie = dossier / f"{Path(nom).stem}_qpv{'.xlsx' if ext == '.xlsx' else '.csv'}"
            lookup.localiser_fichier(entree, sortie, base=donnees.base, tampon_m=tampon())
        except BaseException:
            shutil.rmtree(dossier, ignore_errors=True)
            raise
        media = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                 if ext == ".xlsx" else "text/csv; charset=utf-8")
        return FileResponse(sortie, media_type=media, filename=sortie.name,
                            background=BackgroundTask(shutil.rmtree, dossier, True))
