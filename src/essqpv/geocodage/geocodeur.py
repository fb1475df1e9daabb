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
#: queries looked up in the exact index at a time, while the workers run addok
_BLOC = 4000


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
        for large lists.

        The two paths overlap: the list is read block by block; a block's exact answers
        are looked up in this process while the worker processes already run addok on the
        previous blocks' other queries (both cores busy from the start)."""
        import redis
        self._pret()
        requetes = list(requetes)
        try:
            return self._geocoder(requetes, limite, travailleurs or self.travailleurs,
                                  progression or (lambda *_: None), exacte)
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

    def _geocoder(self, requetes: list[str | None], limite: int, travailleurs: int,
                  avancer: Callable[[int, int], None], exacte: bool) -> list[list[dict]]:
        n = len(requetes)
        sortie: list[list[dict] | None] = [None] * n
        en_attente: list[str | None] = []   # addok queries not yet given to a worker
        indices_attente: list[int] = []
        lots = []                            # (indices, AsyncResult) given to the workers
        faits = 0
        plus_haut = [0]
        suivre = avancer

        def avancer(fait: int, total: int) -> None:  # never backwards
            plus_haut[0] = max(plus_haut[0], fait)
            suivre(plus_haut[0], total)

        def confier(tout: bool) -> None:
            # full lots to the workers (all that is left when ``tout``)
            while len(en_attente) >= _LOT or (tout and en_attente):
                q, ix = en_attente[:_LOT], indices_attente[:_LOT]
                del en_attente[:_LOT], indices_attente[:_LOT]
                lots.append((ix, self._travailleurs(travailleurs).apply_async(
                    _addok.traiter_lot, ((q, limite),))))

        for debut in range(0, n, _BLOC):
            bloc = range(debut, min(n, debut + _BLOC))
            if exacte and self.exactes is not None:
                for i, r in zip(bloc, self.exactes.chercher([requetes[i] for i in bloc])):
                    if r is not None:
                        sortie[i] = [r]
                        faits += 1
            for i in bloc:
                if sortie[i] is None:
                    if not requetes[i]:
                        sortie[i] = []
                        faits += 1
                    else:
                        en_attente.append(requetes[i])
                        indices_attente.append(i)
            # in parallel once there is enough addok work to pay for the workers
            if travailleurs > 1 and (lots or len(en_attente) >= SEUIL_PARALLELE):
                confier(tout=False)
            avancer(faits + sum(len(ix) for ix, r in lots if r.ready()), n)
        if lots or (travailleurs > 1 and len(en_attente) >= SEUIL_PARALLELE):
            confier(tout=True)
        else:  # few addok queries: in this process
            for k, (i, q) in enumerate(zip(indices_attente, en_attente)):
                sortie[i] = [{**x, "methode": "addok"} for x in
                             _addok.rechercher(q, limite=limite)]
                if k % 1000 == 999:
                    avancer(faits + k + 1, n)
            faits += len(en_attente)
        for ix, resultat in lots:
            for i, r in zip(ix, resultat.get()):
                sortie[i] = [{**x, "methode": "addok"} for x in r]
            faits += len(ix)
            avancer(faits, n)
        avancer(n, n)
        return sortie

    def _travailleurs(self, travailleurs: int):
        if self._pool is None:
            # spawn: the workers hold nothing of this process (no forked Redis/SQLite state)
            self._pool = get_context("spawn").Pool(
                travailleurs, initializer=_addok.initialiser_travailleur,
                initargs=(self._serveur.socket, str(self.index / FICHIER_DOCUMENTS)))
        return self._pool
