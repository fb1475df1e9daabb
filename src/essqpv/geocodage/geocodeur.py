"""The installed geocoder, opened: essqpv's Redis started on the index, addok connected.

``with Geocodeur() as g: g.geocoder(["12 rue de la Paix 93200 Saint-Denis"])``. Large lists
are spread over worker processes (one addok client each, all against the same Redis).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from multiprocessing import get_context
from pathlib import Path

from essqpv.errors import GeocodeurIndisponible
from essqpv.geocodage import _addok
from essqpv.geocodage._redis import ServeurRedis
from essqpv.geocodage.exactes import FICHIER_EXACTES, IndexExact
from essqpv.geocodage.installation import FICHIER_DOCUMENTS, dossier_par_defaut, etat

__all__ = ["Geocodeur", "geocodeur_installe"]

#: below this many addok queries, one process (starting workers costs ~1 s)
SEUIL_PARALLELE = 500
_LOT = 400


def geocodeur_installe(dossier: str | Path | None = None) -> bool:
    """Whether a geocoder is installed in ``dossier`` (default folder otherwise)."""
    try:
        return bool(etat(dossier)["installe"])
    except GeocodeurIndisponible:
        return False


class Geocodeur:
    """An installed geocoder; a context manager that starts and stops its Redis.

    Parameters
    ----------
    dossier : path, optional
        Folder of the geocoder (:func:`~essqpv.geocodage.installation.dossier_par_defaut`).
    travailleurs : int, optional
        Worker processes for large batches (default: ``$ESSQPV_GEOCODEUR_PROCESSUS``, else the
        number of cores, at most 8).
    """

    def __init__(self, dossier: str | Path | None = None, travailleurs: int | None = None):
        from essqpv.geocodage.installation import _verifier_addok
        self.dossier = Path(dossier) if dossier else dossier_par_defaut()
        self.etat = etat(self.dossier)
        if not self.etat["installe"]:
            raise GeocodeurIndisponible(
                f"Aucun géocodeur d'adresses installé (dossier {self.dossier}) : installez les "
                "départements utiles, par exemple « essqpv geocodeur installer "
                "--departements 93,94 ».")
        _verifier_addok()
        self.departements = [d["code"] for d in self.etat["departements"]]
        self.travailleurs = (travailleurs or int(os.environ.get("ESSQPV_GEOCODEUR_PROCESSUS")
                                                 or 0) or min(os.cpu_count() or 1, 8))
        self._serveur: ServeurRedis | None = None
        self._pool = None
        exactes = self.index / FICHIER_EXACTES
        #: the exact path (:mod:`.exactes`); ``None`` for an index installed without it
        self.exactes = IndexExact(exactes) if exactes.exists() else None

    @property
    def index(self) -> Path:
        return self.dossier / "index"

    def ouvrir(self) -> "Geocodeur":
        if self._serveur is None:
            self._serveur = ServeurRedis(self.index).demarrer()
            _addok.brancher(self._serveur.socket, self.index / FICHIER_DOCUMENTS,
                            lecture_seule=True)
        return self

    def fermer(self) -> None:
        if self.exactes is not None:
            self.exactes.fermer()
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
        if self._serveur is not None:
            self._serveur.arreter()
            self._serveur = None

    def __enter__(self) -> "Geocodeur":
        return self.ouvrir()

    def __exit__(self, *exc) -> None:
        self.fermer()

    def _pret(self) -> None:
        if self._serveur is None:
            self.ouvrir()
        else:
            _addok.brancher(self._serveur.socket, self.index / FICHIER_DOCUMENTS,
                            lecture_seule=True)

    def memoire(self) -> int:
        self._pret()
        return self._serveur.memoire()

    # -- search -----------------------------------------------------------------------------
    def rechercher(self, q: str, limite: int = 5, autocomplete: bool = False) -> list[dict]:
        """addok's results for one text (``autocomplete`` for suggestions while typing)."""
        self._pret()
        return [{**r, "methode": "addok"} for r in
                _addok.rechercher(q, limite=limite, autocomplete=autocomplete)]

    def geocoder(self, requetes: Sequence[str | None], limite: int = 1,
                 travailleurs: int | None = None,
                 progression: Callable[[int, int], None] | None = None,
                 exacte: bool = True) -> list[list[dict]]:
        """The ``limite`` best results of every query (``[]``: empty query or nothing
        found), in order. Queries written as a BAN address are answered by the exact index
        (one result, ``methode = "exacte"``, see :mod:`.exactes`) unless ``exacte`` is
        false; the others by addok (``methode = "addok"``), spread over worker processes
        for large lists."""
        self._pret()
        requetes = list(requetes)
        sortie: list[list[dict] | None] = [None] * len(requetes)
        if exacte and self.exactes is not None:
            for i, r in enumerate(self.exactes.chercher(requetes)):
                if r is not None:
                    sortie[i] = [r]
        reste = [i for i, r in enumerate(sortie) if r is None]
        faits = len(requetes) - len(reste)
        avancer = progression or (lambda *_: None)
        resultats = self._addok([requetes[i] for i in reste], limite, travailleurs,
                                lambda fait, _total: avancer(faits + fait, len(requetes)))
        for i, r in zip(reste, resultats):
            sortie[i] = [{**x, "methode": "addok"} for x in r]
        return sortie

    def _addok(self, requetes: list[str | None], limite: int, travailleurs: int | None,
               progression: Callable[[int, int], None] | None) -> list[list[dict]]:
        import redis
        try:
            return self._addok_(requetes, limite, travailleurs, progression)
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError) as exc:
            # our Redis died (killed, out of memory...): nothing half-done is returned
            if self._pool is not None:
                self._pool.terminate()
                self._pool.join()
                self._pool = None
            if self._serveur is not None:
                self._serveur.arreter()
                self._serveur = None
            raise GeocodeurIndisponible(
                f"Le serveur Redis du géocodeur a cessé de répondre pendant la recherche "
                f"(dossier {self.dossier}) : {str(exc).rstrip('.')}. Aucun résultat partiel "
                "n'est rendu ; "
                "relancez la commande (essqpv redémarre son serveur).") from None

    def _addok_(self, requetes: list[str | None], limite: int, travailleurs: int | None,
                progression: Callable[[int, int], None] | None) -> list[list[dict]]:
        n = len(requetes)
        travailleurs = travailleurs or self.travailleurs
        avancer = progression or (lambda *_: None)
        if n < SEUIL_PARALLELE or travailleurs <= 1:
            sortie = []
            for i, q in enumerate(requetes):
                sortie.append(_addok.rechercher(q, limite=limite) if q else [])
                if i % 1000 == 999:
                    avancer(i + 1, n)
            avancer(n, n)
            return sortie
        if self._pool is None:
            # spawn: the workers hold nothing of this process (no forked Redis/SQLite state)
            self._pool = get_context("spawn").Pool(
                travailleurs, initializer=_addok.initialiser_travailleur,
                initargs=(self._serveur.socket, str(self.index / FICHIER_DOCUMENTS)))
        lots = [(list(requetes[i:i + _LOT]), limite) for i in range(0, n, _LOT)]
        sortie = []
        for lot in self._pool.imap(_addok.traiter_lot, lots):
            sortie.extend(lot)
            avancer(len(sortie), n)
        return sortie
