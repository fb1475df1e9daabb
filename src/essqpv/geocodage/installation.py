"""Install the address geocoder: BAN addok files per département, imported into addok.

Layout of the geocoder's folder (``dossier_par_defaut()`` unless told otherwise)::

    telechargements/adresses-addok-93.ndjson.gz   the BAN's files, as downloaded
    index/dump.rdb, index/addok.db                the installed index (Redis + SQLite)
    index/exactes.db                              the exact index (:mod:`.exactes`)
    index/installation.json                       what is installed (read by ``etat``)

An installation always builds the *whole* index (the départements already installed plus the
new ones) in ``construction/``, with essqpv's own Redis, and only then renames it over
``index/``: an interrupted or failed installation leaves the previous index untouched.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx

from essqpv import reference
from essqpv.errors import FichierInvalide, GeocodeurIndisponible, ParametreInvalide
from essqpv.geocodage._redis import FICHIER_INDEX, ServeurRedis
from essqpv.geocodage.exactes import FICHIER_EXACTES
from essqpv.geocodage.exactes import construire as construire_exactes
from essqpv.sources.telechargement import telecharger_fichier

__all__ = ["installer", "etat", "dossier_par_defaut", "departements_demandes",
           "source_ban", "FICHIER_ETAT"]

FICHIER_ETAT = "installation.json"
FICHIER_DOCUMENTS = "addok.db"
VERSION_INDEX = 2  # 2: with the exact index (exactes.db)

#: ``progression(etape, fait, total_ou_None)``; etape = "telechargement <fichier>" or
#: "import <departement>" or "index exact"
Progression = Callable[[str, int, "int | None"], None]


def dossier_par_defaut() -> Path:
    """``$ESSQPV_GEOCODEUR``, else ``$XDG_DATA_HOME/essqpv/geocodeur`` (``~/.local/share``)."""
    if os.environ.get("ESSQPV_GEOCODEUR"):
        return Path(os.environ["ESSQPV_GEOCODEUR"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return Path(base) / "essqpv" / "geocodeur"


@lru_cache(maxsize=1)
def source_ban() -> dict:
    """The BAN's addok export (``reference/sources_ban.csv``)."""
    return reference._csv("sources_ban.csv").to_dicts()[0]


@lru_cache(maxsize=1)
def _noms_departements() -> dict[str, str]:
    return {d["code"]: d["nom"] for d in reference.departements()}


def departements_demandes(texte: str | Iterable[str]) -> list[str]:
    """``"93,94"`` → ``["93", "94"]`` (``1`` → ``01``, ``2a`` → ``2A``), checked."""
    morceaux = re.split(r"[,;\s]+", texte) if isinstance(texte, str) else list(texte)
    codes = []
    for m in morceaux:
        m = str(m).strip().upper()
        if not m:
            continue
        if m.isdigit() and len(m) == 1:
            m = "0" + m
        if m not in _noms_departements():
            raise ParametreInvalide(f"Département inconnu : « {m} » (codes attendus, par "
                                    "exemple 93,94, 2A, 974).")
        if m not in codes:
            codes.append(m)
    if not codes:
        raise ParametreInvalide("Indiquez au moins un département (par exemple "
                                "--departements 93,94).")
    return sorted(codes)


def _versions() -> dict[str, str]:
    v = {}
    for paquet in ("addok", "addok-fr", "addok-france", "addok-sqlite-store"):
        try:
            v[paquet] = version(paquet)
        except PackageNotFoundError:
            v[paquet] = "absent"
    return v


def _verifier_addok() -> None:
    manquants = [p for p, v in _versions().items() if v == "absent"]
    if manquants:
        raise GeocodeurIndisponible(
            f"Paquet(s) Python manquant(s) pour le géocodeur : {', '.join(manquants)} ; "
            "installez-les : pip install 'essqpv[adresses]' puis "
            "pip install --no-deps -r requirements-addok.txt (make install fait les deux).")


def etat(dossier: str | Path | None = None) -> dict:
    """What is installed: ``installe``, ``departements`` (code, nom, date_ban, documents...),
    ``taille_octets``, ``installe_le``, ``versions``, ``dossier``."""
    dossier = Path(dossier) if dossier else dossier_par_defaut()
    fichier = dossier / "index" / FICHIER_ETAT
    if not fichier.exists():
        return {"installe": False, "dossier": str(dossier), "departements": [],
                "taille_octets": 0}
    try:
        e = json.loads(fichier.read_text("utf-8"))
    except ValueError:
        raise GeocodeurIndisponible(f"État du géocodeur illisible : {fichier} ; réinstallez-le "
                                    "(essqpv geocodeur installer).") from None
    index = dossier / "index"
    e["taille_octets"] = sum(p.stat().st_size for p in (index / FICHIER_INDEX,
                                                         index / FICHIER_DOCUMENTS,
                                                         index / FICHIER_EXACTES)
                             if p.exists())
    e["recherche_exacte"] = (index / FICHIER_EXACTES).exists()
    e["installe"] = (index / FICHIER_INDEX).exists() and (index / FICHIER_DOCUMENTS).exists()
    e["dossier"] = str(dossier)
    return e


def _date_ban(client: httpx.Client, url: str) -> str | None:
    """Date of the BAN's file: from a dated address (``.../2026-11-30/...``), else the
    server's ``Last-Modified``."""
    m = re.search(r"/(\d{4}-\d{2}-\d{2})/", url)
    if m:
        return m.group(1)
    try:
        r = client.head(url)
        if r.status_code < 400 and r.headers.get("Last-Modified"):
            return parsedate_to_datetime(r.headers["Last-Modified"]).date().isoformat()
    except (httpx.HTTPError, ValueError, TypeError):
        pass
    return None


def installer(departements: str | Iterable[str], dossier: str | Path | None = None, *,
              url: str | None = None, empreintes: Mapping[str, str] | None = None,
              remplacer: bool = False, forcer: bool = False, travailleurs: int = 2,
              progression: Progression | None = None,
              client: httpx.Client | None = None) -> dict:
    """Download the BAN's addok files of ``departements`` and (re)build the index.

    Parameters
    ----------
    departements : str or iterable
        ``"93,94"`` or ``["93", "94"]``.
    dossier : path, optional
        Folder of the geocoder (:func:`dossier_par_defaut`).
    url : str, optional
        Address template with ``{departement}`` (a mirror, or a dated BAN folder); the
        BAN's latest export by default (``reference/sources_ban.csv``).
    empreintes : mapping, optional
        Expected SHA-256 per département.
    remplacer : bool
        Install exactly these départements (default: add them to those installed).
    forcer : bool
        Download the files again even when present.
    travailleurs : int
        Import processes (addok's workers).

    Returns
    -------
    dict
        :func:`etat` after installation, plus ``telechargements`` (one per file) and
        ``duree_s`` (import time).

    Raises
    ------
    ParametreInvalide, ReseauIndisponible, FichierInvalide, GeocodeurIndisponible
    """
    _verifier_addok()
    demandes = departements_demandes(departements)
    dossier = Path(dossier) if dossier else dossier_par_defaut()
    dossier.mkdir(parents=True, exist_ok=True)
    modele = url or source_ban()["url"]
    if "{departement}" not in modele:
        raise ParametreInvalide(f"Adresse des fichiers de la BAN sans {{departement}} : "
                                f"{modele}.")
    empreintes = {departements_demandes([k])[0]: v for k, v in (empreintes or {}).items()}
    avancer = progression or (lambda *_: None)
    with open(dossier / ".installation.verrou", "w") as verrou:
        try:
            fcntl.flock(verrou, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GeocodeurIndisponible(f"Une installation du géocodeur est déjà en cours dans "
                                        f"{dossier}.") from None
        avant = etat(dossier)
        deja = {d["code"]: d for d in avant.get("departements", [])}
        cibles = demandes if remplacer else sorted(set(demandes) | set(deja))
        telechargements, fichiers, infos = [], [], {}
        propre = client is None
        client = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0))
        try:
            for code in cibles:
                nom_fichier = source_ban()["fichier"].format(departement=code)
                adresse = (deja[code]["url"] if code in deja and code not in demandes
                           else modele.format(departement=code))
                cible = dossier / "telechargements" / nom_fichier
                if code in demandes or not cible.exists():
                    date = _date_ban(client, adresse)
                    t = telecharger_fichier(
                        adresse, cible, sha256=empreintes.get(code), forcer=forcer,
                        client=client, nom="ban",
                        progression=lambda f, fait, total: avancer(
                            f"telechargement {f}", fait, total))
                    if t.statut == "deja_present" and code in deja:
                        date = deja[code].get("date_ban") or date
                    telechargements.append(t.en_dict())
                    sha, taille = t.sha256, t.taille
                else:
                    date, sha, taille = (deja[code].get("date_ban"), deja[code]["sha256"],
                                         deja[code]["taille_fichier"])
                infos[code] = {"code": code, "nom": _noms_departements()[code],
                               "fichier": nom_fichier, "url": adresse,
                               "date_ban": date or dt.date.today().isoformat(),
                               "date_ban_source": "serveur" if date else "telechargement",
                               "sha256": sha, "taille_fichier": taille}
                fichiers.append((code, str(cible.resolve())))
        finally:
            if propre:
                client.close()
        debut = time.perf_counter()
        construction = dossier / "construction"
        if construction.exists():
            shutil.rmtree(construction)  # a failed earlier build of ours
        construction.mkdir()
        with ServeurRedis(construction) as serveur:
            comptes = _importer(serveur.socket, construction / FICHIER_DOCUMENTS, fichiers,
                                travailleurs, avancer)
            memoire = serveur.memoire()
            serveur.sauver()
        duree_addok = time.perf_counter() - debut
        avancer("index exact", 0, None)
        exactes = construire_exactes([f for _, f in fichiers], construction / FICHIER_EXACTES)
        duree = time.perf_counter() - debut
        for code, c in comptes.items():
            infos[code]["documents"] = c
        e = {"version_index": VERSION_INDEX, "departements": [infos[c] for c in cibles],
             "installe_le": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "memoire_redis_octets": memoire, "duree_import_s": round(duree, 2),
             "duree_import_addok_s": round(duree_addok, 2),
             "duree_index_exact_s": round(duree - duree_addok, 2), "index_exact": exactes,
             "versions": _versions(),
             "source": "Base Adresse Nationale (BAN), export addok, Licence Ouverte 2.0"}
        (construction / FICHIER_ETAT).write_text(json.dumps(e, ensure_ascii=False, indent=1),
                                                 "utf-8")
        index, ancien = dossier / "index", dossier / "index.ancien"
        if ancien.exists():
            shutil.rmtree(ancien)
        if index.exists():
            index.rename(ancien)
        construction.rename(index)
        if ancien.exists():
            shutil.rmtree(ancien)
    resultat = etat(dossier)
    resultat["telechargements"] = telechargements
    resultat["duree_s"] = round(duree, 2)
    return resultat


def _importer(socket: str, sqlite: Path, fichiers: list[tuple[str, str]], travailleurs: int,
              avancer: Progression) -> dict:
    parametres = json.dumps({"socket": socket, "sqlite": str(sqlite.resolve()),
                             "fichiers": fichiers, "travailleurs": travailleurs})
    proc = subprocess.Popen([sys.executable, "-m", "essqpv.geocodage._import", parametres],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    fin, erreur = None, None
    for ligne in proc.stdout:
        try:
            m = json.loads(ligne)
        except ValueError:
            continue
        if "documents" in m:
            avancer(f"import {Path(m['fichier']).name}", m["documents"], None)
        elif "erreur" in m:
            erreur = m["erreur"]
        elif "fin" in m:
            fin = m["fin"]
    stderr = proc.stderr.read()
    code = proc.wait()
    if erreur:
        raise FichierInvalide(f"Fichier de la BAN invalide : {erreur} L'index précédent est "
                              "conservé.")
    if code != 0 or fin is None:
        raise GeocodeurIndisponible(
            f"L'import dans addok a échoué (code {code}) : "
            f"{(stderr or '').strip().splitlines()[-1:] or ['sans message']} ; l'index "
            "précédent est conservé.")
    return fin
