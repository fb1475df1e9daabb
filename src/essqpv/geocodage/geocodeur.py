"""The installed geocoder, opened: essqpv's Redis started on the index, addok connected.

``with Geocodeur() as g: g.geocoder(["12 rue de la Paix 93200 Saint-Denis"])``. Large lists
are spread over worker processes (one addok client each, all against the same Redis).
"""
from __future__ import annotations

import os
import re
import threading
from collections import deque
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
#: lots given to a worker ahead of its progress (one running, one waiting)
_EN_COURS = 2
#: a postcode moves to another worker when its own has been given this many more queries
_ECART = 2 * _LOT
#: the last lots are smaller, down to this many queries (the workers finish together)
_LOT_MIN = 25
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
        self._arreter_travailleurs(attendre=True)
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
            self._arreter_travailleurs(attendre=False)
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
        if travailleurs > 1 and self._pool is not None:  # (the workers already started)
            travailleurs = len(self._pool)
        sortie: list[list[dict] | None] = [None] * n
        files = _Files(travailleurs)          # addok queries not yet given to a worker
        lots = []                              # (indices, AsyncResult) given to the workers
        en_cours: list[list] = [[] for _ in range(travailleurs)]  # not finished, per worker
        signal = threading.Event()             # a lot finished (or failed)
        faits = 0
        plus_haut = [0]
        suivre = avancer

        def avancer(fait: int, total: int) -> None:  # never backwards
            plus_haut[0] = max(plus_haut[0], fait)
            suivre(plus_haut[0], total)

        def fini(_resultat) -> None:
            signal.set()

        def confier(tout: bool) -> None:
            # each worker at most _EN_COURS lots ahead, taken from its own queries; once the
            # list is read (``tout``), in smaller lots, and from another worker's queries when
            # its own are done: the workers finish together
            pools = self._travailleurs(travailleurs)
            for w, pool in enumerate(pools):
                en_cours[w] = [r for r in en_cours[w] if not r.ready()]
                while len(en_cours[w]) < _EN_COURS:
                    lot = files.prendre(w, tout)
                    if not lot:
                        break
                    ix, q = lot
                    r = pool.apply_async(_addok.traiter_lot, ((q, limite),), callback=fini,
                                         error_callback=fini)
                    lots.append((ix, r))
                    en_cours[w].append(r)

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
                        files.ajouter(i, requetes[i])
            # in parallel once there is enough addok work to pay for the workers
            if travailleurs > 1 and (lots or len(files) >= SEUIL_PARALLELE):
                confier(tout=False)
            avancer(faits + sum(len(ix) for ix, r in lots if r.ready()), n)
        if lots or (travailleurs > 1 and len(files) >= SEUIL_PARALLELE):
            while True:
                signal.clear()  # (before looking: a lot that finishes after it sets it)
                confier(tout=True)
                for _ix, r in lots:
                    if r.ready() and not r.successful():
                        r.get()  # a worker's error (Redis gone...) raised here
                if not any(en_cours):
                    break
                signal.wait(1.0)
                avancer(faits + sum(len(ix) for ix, r in lots if r.ready()), n)
        else:  # few addok queries: in this process
            ix, qs = files.tout()
            for k, (i, q) in enumerate(zip(ix, qs)):
                sortie[i] = [{**x, "methode": "addok"} for x in
                             _addok.rechercher(q, limite=limite)]
                if k % 1000 == 999:
                    avancer(faits + k + 1, n)
            faits += len(ix)
        for ix, resultat in lots:
            for i, r in zip(ix, resultat.get()):
                sortie[i] = [{**x, "methode": "addok"} for x in r]
            faits += len(ix)
            avancer(faits, n)
        avancer(n, n)
        return sortie

    def _travailleurs(self, travailleurs: int) -> list:
        if self._pool is None:
            # spawn: the workers hold nothing of this process (no forked Redis/SQLite state);
            # one pool each, so that a worker is given the queries of its postcodes
            contexte = get_context("spawn")
            self._pool = [contexte.Pool(1, initializer=_addok.initialiser_travailleur,
                                        initargs=(self._serveur.socket,
                                                  str(self.index / FICHIER_DOCUMENTS)))
                          for _ in range(travailleurs)]
        return self._pool

    def _arreter_travailleurs(self, attendre: bool) -> None:
        for pool in self._pool or []:
            if attendre:
                pool.close()
            else:
                pool.terminate()
            pool.join()
        self._pool = None


_CP_REQUETE = re.compile(r"(?<!\d)\d{5}(?!\d)")


def _cle(q: str) -> str | None:
    """The postcode written in a query (its first five-digit number), or None."""
    m = _CP_REQUETE.search(q)
    return m.group() if m else None


class _Files:
    """The addok queries waiting for a worker, one queue per worker: the queries of one
    postcode go to the same worker (the first time a postcode is met, to the worker that has
    been given the fewest queries). Queries of the same postcode meet the same streets, the
    same words and the same Redis answers, which a worker keeps (``_addok``): with the
    postcodes shared out, each street is decoded and labelled by one worker instead of
    by all. A query without a postcode goes to the worker given the fewest queries; a
    postcode whose worker has been given :data:`_ECART` more queries than another moves to
    that one (the workers are kept as busy as each other)."""

    def __init__(self, travailleurs: int):
        self.files: list[deque] = [deque() for _ in range(travailleurs)]
        self.donnees = [0] * travailleurs
        self.attribution: dict[str, int] = {}

    def __len__(self) -> int:
        return sum(map(len, self.files))

    def ajouter(self, i: int, q: str) -> None:
        cle = _cle(q)
        w = self.attribution.get(cle) if cle is not None else None
        if w is None or self.donnees[w] - min(self.donnees) > _ECART:
            # a new postcode, or its worker has too many more than another (a file of a few
            # postcodes): the postcode moves to the worker given the fewest
            w = min(range(len(self.files)), key=self.donnees.__getitem__)
            if cle is not None:
                self.attribution[cle] = w
        self.files[w].append((i, q))
        self.donnees[w] += 1

    def prendre(self, w: int, tout: bool) -> tuple[list[int], list[str]] | None:
        """A lot for worker ``w``: ``_LOT`` of its queries; once the list is read
        (``tout``), smaller lots as the end nears, taken from the longest other queue when
        its own is empty."""
        file = self.files[w]
        if len(file) >= _LOT and not tout:
            return _lot(file, _LOT, False)
        if not tout:
            return None
        reste = len(self)
        if not reste:
            return None
        taille = min(_LOT, max(_LOT_MIN, -(-reste // (4 * len(self.files)))))
        if file:
            return _lot(file, taille, False)
        return _lot(max(self.files, key=len), taille, True)

    def tout(self) -> tuple[list[int], list[str]]:
        """All the waiting queries, in the order of the list."""
        tous = sorted(x for f in self.files for x in f)
        for f in self.files:
            f.clear()
        return [i for i, _ in tous], [q for _, q in tous]


def _lot(file: deque, taille: int, fin: bool) -> tuple[list[int], list[str]]:
    """``taille`` queries taken from the front of ``file`` (from its end: ``fin``)."""
    pris = [file.pop() if fin else file.popleft() for _ in range(min(taille, len(file)))]
    return [i for i, _ in pris], [q for _, q in pris]
