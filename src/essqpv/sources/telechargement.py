"""Download the official files (Sirene stocks, geolocation, QPV contours, COG).

The addresses are data (``reference/sources_officielles.csv``: name, file, URL, documenting
page, expected size and SHA-256 when known, date checked). A transfer is written to
``<fichier>.partiel`` and renamed only once complete and checked (size announced by the server,
expected size and checksum when known), so an interrupted run never leaves a truncated file
under the final name; a new run resumes the partial file with an HTTP ``Range`` request. A file
whose checksum does not match is deleted and reported.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import httpx
import polars as pl

from essqpv import reference
from essqpv.errors import FichierInvalide, ParametreInvalide, ReseauIndisponible

__all__ = ["SOURCES", "Telechargement", "sources_officielles", "telecharger",
           "telecharger_fichier"]

SOURCES = ("sirene", "geolocalisation", "qpv2024", "qpv2015", "cog")

#: ``progression(fichier, octets_faits, octets_total_ou_None)``
Progression = Callable[[str, int, "int | None"], None]

_BLOC = 1 << 20
_ERREURS_RESEAU = (httpx.TransportError,)


@dataclass
class Telechargement:
    """Outcome of one file: where it is, how it was obtained, what was checked."""

    nom: str
    fichier: str
    chemin: Path
    url: str
    statut: str            # "telecharge", "repris", "deja_present"
    taille: int
    sha256: str
    empreinte_verifiee: bool
    page_documentation: str = ""

    def en_dict(self) -> dict:
        return {"nom": self.nom, "fichier": self.fichier, "chemin": str(self.chemin),
                "url": self.url, "statut": self.statut, "taille": self.taille,
                "sha256": self.sha256, "empreinte_verifiee": self.empreinte_verifiee,
                "page_documentation": self.page_documentation}


@lru_cache(maxsize=1)
def sources_officielles() -> pl.DataFrame:
    """The official addresses (``reference/sources_officielles.csv``)."""
    return reference._csv("sources_officielles.csv")


def _empreinte_fichier(chemin: Path) -> str:
    h = hashlib.sha256()
    with open(chemin, "rb") as f:
        for bloc in iter(lambda: f.read(_BLOC), b""):
            h.update(bloc)
    return h.hexdigest()


def telecharger(dossier: str | Path = ".", sources: Iterable[str] = SOURCES,
                urls: Mapping[str, str] | None = None, *,
                empreintes: Mapping[str, str] | None = None, forcer: bool = False,
                progression: Progression | None = None,
                client: httpx.Client | None = None) -> list[Telechargement]:
    """Download the official files of the chosen sources into ``dossier``.

    Parameters
    ----------
    dossier : path
        Destination folder (created).
    sources : iterable of str
        Among ``sirene``, ``geolocalisation``, ``qpv2024``, ``qpv2015``, ``cog``.
    urls : mapping, optional
        Replacement addresses, keyed by source name (single-file sources) or file name
        (e.g. ``{"StockUniteLegale_utf8.zip": "https://miroir.example/..."}``).
    empreintes : mapping, optional
        Expected SHA-256 by source or file name (overrides the reference file).
    forcer : bool
        Download again files already present.
    progression : callable, optional
        Called with ``(fichier, octets_faits, octets_total)`` during transfers.

    Returns
    -------
    list of Telechargement

    Raises
    ------
    ParametreInvalide
        Unknown source, or a replacement address whose key is ambiguous or unknown.
    ReseauIndisponible
        The network or the server cannot be reached (the partial file is kept).
    FichierInvalide
        Size or checksum mismatch (the partial file is deleted).
    """
    table = sources_officielles()
    sources = [s.strip() for s in sources if s.strip()]
    inconnues = [s for s in sources if s not in SOURCES]
    if inconnues:
        raise ParametreInvalide(
            f"Source inconnue : {', '.join(inconnues)} (valeurs possibles : "
            f"{', '.join(SOURCES)}).")
    urls = dict(urls or {})
    empreintes = dict(empreintes or {})
    lignes = table.filter(pl.col("nom").is_in(sources)).to_dicts()
    for cle in list(urls) + list(empreintes):
        par_nom = [r for r in table.to_dicts() if r["nom"] == cle]
        par_fichier = [r for r in table.to_dicts() if r["fichier"] == cle]
        if not par_nom and not par_fichier:
            raise ParametreInvalide(
                f"--url {cle}=… : ni une source ({', '.join(SOURCES)}) ni un fichier connu.")
        if par_nom and len(par_nom) > 1 and cle in urls:
            noms = ", ".join(r["fichier"] for r in par_nom)
            raise ParametreInvalide(
                f"--url {cle}=… : la source {cle} compte plusieurs fichiers ({noms}) ; "
                "nommez le fichier, par ex. --url {fichier}=URL.".replace(
                    "{fichier}", par_nom[0]["fichier"]))
    dossier = Path(dossier)
    dossier.mkdir(parents=True, exist_ok=True)
    resultats = []
    propre = client is None
    client = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0))
    try:
        for r in lignes:
            url = urls.get(r["fichier"]) or urls.get(r["nom"]) or r["url"]
            sha = empreintes.get(r["fichier"]) or empreintes.get(r["nom"]) or r["sha256"] or None
            taille = int(r["taille_attendue"]) if r["taille_attendue"] else None
            res = telecharger_fichier(url, dossier / r["fichier"], sha256=sha,
                                      taille_attendue=taille, forcer=forcer,
                                      progression=progression, client=client, nom=r["nom"])
            res.page_documentation = r["page_documentation"] or ""
            resultats.append(res)
    finally:
        if propre:
            client.close()
    return resultats


def telecharger_fichier(url: str, destination: str | Path, *, sha256: str | None = None,
                        taille_attendue: int | None = None, forcer: bool = False,
                        progression: Progression | None = None,
                        client: httpx.Client | None = None, essais: int = 5,
                        nom: str = "") -> Telechargement:
    """Download one URL to ``destination`` with resume, size and checksum checks.

    The bytes go to ``destination.partiel``; a dropped connection is resumed (HTTP ``Range``)
    up to ``essais`` times, and a later call resumes a partial file left by an earlier one.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partiel = destination.with_name(destination.name + ".partiel")
    sha256 = sha256.lower() if sha256 else None
    if sha256 and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ParametreInvalide(f"Empreinte SHA-256 invalide pour {destination.name} : {sha256}.")
    if destination.exists() and not forcer:
        empreinte = _empreinte_fichier(destination)
        if sha256 is None or empreinte == sha256:
            return Telechargement(nom, destination.name, destination, url, "deja_present",
                                  destination.stat().st_size, empreinte, sha256 is not None)
    avancer = progression or (lambda *_: None)
    propre = client is None
    client = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0))
    repris = partiel.exists() and partiel.stat().st_size > 0
    try:
        total = None
        derniere_erreur: Exception | None = None
        for _ in range(max(1, essais)):
            try:
                total = _transfert(client, url, partiel, avancer, destination.name)
                derniere_erreur = None
                break
            except _ERREURS_RESEAU as exc:
                derniere_erreur = exc
                repris = repris or (partiel.exists() and partiel.stat().st_size > 0)
                if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                    break
        if derniere_erreur is not None:
            garde = partiel.exists() and partiel.stat().st_size > 0
            raise ReseauIndisponible(
                f"Réseau ou serveur injoignable pour {destination.name} ({url}) : "
                f"{_raison(derniere_erreur)}."
                + (" Le fichier partiel est conservé : relancez la commande pour reprendre."
                   if garde else "")) from None
    finally:
        if propre:
            client.close()
    taille = partiel.stat().st_size
    attendues = [t for t in (total, taille_attendue) if t is not None]
    for t in attendues:
        if taille != t:
            partiel.unlink(missing_ok=True)
            raise FichierInvalide(
                f"Téléchargement incomplet de {destination.name} : {taille} octets reçus, "
                f"{t} attendus ; le fichier partiel a été supprimé, relancez la commande.")
    empreinte = _empreinte_fichier(partiel)
    if sha256 and empreinte != sha256:
        partiel.unlink(missing_ok=True)
        raise FichierInvalide(
            f"Fichier corrompu : {destination.name} (empreinte SHA-256 {empreinte}, "
            f"{sha256} attendue) ; le fichier téléchargé a été supprimé.")
    os.replace(partiel, destination)
    return Telechargement(nom, destination.name, destination, url,
                          "repris" if repris else "telecharge", taille, empreinte,
                          sha256 is not None)


def _raison(exc: Exception) -> str:
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return "connexion impossible"
    if isinstance(exc, httpx.TimeoutException):
        return "délai dépassé"
    return "connexion interrompue"


def _transfert(client: httpx.Client, url: str, partiel: Path, avancer: Progression,
               nom: str) -> int | None:
    """One GET (with ``Range`` when a partial file exists); return the full size if known."""
    deja = partiel.stat().st_size if partiel.exists() else 0
    entetes = {"Range": f"bytes={deja}-"} if deja else {}
    with client.stream("GET", url, headers=entetes) as reponse:
        if reponse.status_code == 416 and deja:
            # Nothing left to send: the partial file is already whole.
            plage = reponse.headers.get("Content-Range", "")
            m = re.search(r"/(\d+)$", plage)
            return int(m.group(1)) if m else deja
        if reponse.status_code == 404:
            raise FichierInvalide(f"Adresse introuvable sur le serveur (HTTP 404) : {url}.")
        if reponse.status_code >= 400:
            raise ReseauIndisponible(
                f"Le serveur a refusé le téléchargement de {nom} (HTTP "
                f"{reponse.status_code}) : {url}.")
        longueur = reponse.headers.get("Content-Length")
        if reponse.status_code == 206:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", reponse.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != deja:
                raise FichierInvalide(
                    f"Reprise impossible pour {nom} : le serveur a renvoyé une plage "
                    "inattendue ; supprimez le fichier .partiel et relancez.")
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode = "ab"
        else:
            # The server ignored the range (or there was none): start again from zero.
            total = int(longueur) if longueur else None
            deja, mode = 0, "wb"
        avancer(nom, deja, total)
        with open(partiel, mode) as f:
            for bloc in reponse.iter_bytes():  # as received: a drop loses nothing written
                f.write(bloc)
                deja += len(bloc)
                avancer(nom, deja, total)
    return total
