"""Routes of the lookup: "is this point / SIRET / file in a QPV?" (``essqpv.lookup``)."""
from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from essqpv.errors import ContenuTropVolumineux, FichierInvalide, ParametreInvalide
from essqpv.web._donnees import Donnees, json_octets

__all__ = ["ajouter", "LIGNES_FICHIER_MAX", "verifier_xlsx"]

LIGNES_FICHIER_MAX = 100_000
EXTENSIONS = (".csv", ".txt", ".tsv", ".xlsx")

# Bounds of an XLSX sent to the API, uncompressed: what the server reads stays small
# whatever the archive claims (a 377 KB file can hold a 400 MB cell).
XLSX_DECOMPRESSE_MAX = 48 << 20   # bytes of all the members, decompressed
XLSX_MEMBRES_MAX = 500            # members of the archive
XLSX_RATIO_MAX = 150              # decompressed / compressed, for a member above 1 MiB
TEXTE_MAX = 256 << 10             # bytes of XML text between two tags (a cell: 32,767
                                  # characters at most in Excel)


def _mo(n: int) -> str:
    return f"{n / (1 << 20):,.1f}".replace(",", "\u202f").replace(".", ",") + " Mo"


def verifier_xlsx(entree: Path, nom: str) -> Path:
    """An XLSX the lookup may read: checked, then copied with a bounded decompression.

    The declared sizes of the members (and their compression ratio) are checked first, so
    a zip bomb is refused at once; the members are then decompressed chunk by chunk into a
    fresh archive, stopping as soon as a member exceeds its declared size or the limits, a
    text run between two XML tags (a cell) exceeds :data:`TEXTE_MAX`, or a sheet holds more
    than :data:`LIGNES_FICHIER_MAX` rows. Returns the fresh archive.

    Raises
    ------
    ContenuTropVolumineux
        (HTTP 413) naming the member, its size and the limit.
    FichierInvalide
        Not a readable zip archive.
    """
    import zipfile
    try:
        archive = zipfile.ZipFile(entree)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise FichierInvalide(f"{nom} n'est pas un classeur Excel lisible (archive XLSX "
                              "attendue).") from None
    with archive:
        membres = archive.infolist()
        if len(membres) > XLSX_MEMBRES_MAX:
            raise ContenuTropVolumineux(f"{nom} : {len(membres)} fichiers dans l'archive ; "
                                        f"{XLSX_MEMBRES_MAX} au plus.")
        total = sum(m.file_size for m in membres)
        for m in membres:
            if m.file_size > XLSX_DECOMPRESSE_MAX or (
                    m.file_size > 1 << 20
                    and m.file_size > XLSX_RATIO_MAX * max(m.compress_size, 1)):
                raise ContenuTropVolumineux(
                    f"{nom} : {m.filename} occupe {_mo(m.file_size)} une fois décompressé "
                    f"({_mo(m.compress_size)} compressé) ; {_mo(XLSX_DECOMPRESSE_MAX)} au plus "
                    f"par requête, taux de compression {XLSX_RATIO_MAX} au plus (utilisez la "
                    "commande essqpv localiser pour les gros fichiers).")
        if total > XLSX_DECOMPRESSE_MAX:
            raise ContenuTropVolumineux(
                f"{nom} : {_mo(total)} une fois décompressé ; "
                f"{_mo(XLSX_DECOMPRESSE_MAX)} au plus par requête.")
        propre = entree.parent / "verifie" / entree.name
        propre.parent.mkdir(exist_ok=True)
        try:
            with zipfile.ZipFile(propre, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as sortie:
                for m in membres:
                    _copier_membre(archive, m, sortie, nom)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise FichierInvalide(f"{nom} n'est pas un classeur Excel lisible (archive "
                                  f"endommagée : {exc}).") from None
    return propre


def _copier_membre(archive, m, sortie, nom: str) -> None:
    """Copy one member, decompressing 1 MiB at a time within its bounds."""
    xml = m.filename.lower().endswith(".xml")
    feuille = xml and m.filename.lower().startswith("xl/worksheets/")
    lu = texte = lignes = 0
    fin = b""
    with archive.open(m) as source, sortie.open(m.filename, "w") as cible:
        while True:
            bloc = source.read(1 << 20)
            if not bloc:
                break
            lu += len(bloc)
            if lu > m.file_size or lu > XLSX_DECOMPRESSE_MAX:
                raise ContenuTropVolumineux(
                    f"{nom} : {m.filename} dépasse sa taille déclarée ({_mo(m.file_size)}) "
                    "une fois décompressé : archive refusée.")
            if xml:
                morceaux = bloc.split(b"<")
                plus_long = max(texte + len(morceaux[0]), *(len(x) for x in morceaux[1:]))
                texte = len(morceaux[-1]) if len(morceaux) > 1 else texte + len(bloc)
                if plus_long > TEXTE_MAX:
                    raise ContenuTropVolumineux(
                        f"{nom} : {m.filename} contient une cellule (ou un texte) de plus de "
                        f"{TEXTE_MAX // 1024} Kio ; une cellule Excel tient en 32 767 "
                        "caractères.")
            if feuille:
                lignes += (fin + bloc).count(b"<row") - fin.count(b"<row")
                fin = bloc[-4:]
                if lignes > LIGNES_FICHIER_MAX + 1:
                    raise ContenuTropVolumineux(
                        f"{nom} : plus de {LIGNES_FICHIER_MAX} lignes ; "
                        f"{LIGNES_FICHIER_MAX} au plus par requête (utilisez la commande "
                        "essqpv localiser pour les gros fichiers).")
            cible.write(bloc)


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
        # the user's name, made safe for a file name (no control character, bounded)
        tige = re.sub(r"[\x00-\x1f\x7f/\\]", "_", Path(nom).stem)
        tige = tige.encode()[:120].decode("utf-8", "ignore") or "fichier"
        nom = tige + ext
        if ext not in EXTENSIONS:
            raise ParametreInvalide(f"{nom} : format non pris en charge ; CSV ou XLSX attendu.")
        dossier = Path(tempfile.mkdtemp(prefix="essqpv-localiser-"))
        try:
            entree = dossier / nom  # (messages name the user's file)
            with entree.open("wb") as f:
                shutil.copyfileobj(fichier.file, f)
            if ext == ".xlsx":  # bounded by its uncompressed size, not only the upload's
                entree = verifier_xlsx(entree, nom)
            else:
                with entree.open("rb") as f:
                    lignes = sum(1 for _ in f) - 1
                if lignes > LIGNES_FICHIER_MAX:
                    raise ParametreInvalide(
                        f"{nom} : {lignes} lignes ; {LIGNES_FICHIER_MAX} au plus par requête "
                        "(utilisez la commande essqpv localiser pour les gros fichiers).")
            sortie = dossier / "resultat" / f"{tige}_qpv{'.xlsx' if ext == '.xlsx' else '.csv'}"
            sortie.parent.mkdir()
            resume = lookup.localiser_fichier(entree, sortie, base=donnees.base,
                                              tampon_m=tampon())
            sources = _entete_sources(resume)
        except BaseException:
            shutil.rmtree(dossier, ignore_errors=True)
            raise
        media = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                 if ext == ".xlsx" else "text/csv; charset=utf-8")
        # an XLSX holds its sources in a sheet; a CSV's are in this header (one file sent)
        return FileResponse(sortie, media_type=media, filename=sortie.name,
                            headers={"X-Essqpv-Sources": sources},
                            background=BackgroundTask(shutil.rmtree, dossier, True))


def _entete_sources(resume: dict) -> str:
    """The sources of a result, one line, UTF-8 percent-encoded (RFC 8187's ``UTF-8''…``):
    « clé : valeur » joined by `` | ``."""
    from urllib.parse import quote
    texte = " | ".join(f"{c} : {v}" for c, v in resume["lignes_sources"])
    return "UTF-8''" + quote(texte, safe="")
