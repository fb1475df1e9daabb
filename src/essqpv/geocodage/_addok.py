"""addok inside an essqpv process: configuration, connection to essqpv's Redis, search.

addok keeps its configuration and its connections in module globals (one geocoder per
process). :func:`brancher` loads the configuration once (``addok.conf`` of this package:
the BAN's settings, documents in SQLite) and points the connections at a given Redis port
and SQLite file; calling it again with another installation re-points them.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

CONFIGURATION = Path(__file__).with_name("addok.conf")
_branche: dict = {"socket": None, "sqlite": None}

__all__ = ["brancher", "rechercher", "meilleur", "CONFIGURATION"]


_PERMANENTES = ("w|", "n|", "p|", "g|")  # tokens, edge ngrams, pairs, geohashes


def _client_lecture_seule(**parametres):
    """A Redis client that remembers the answers about the index's permanent keys.

    An installed index is never written (an installation builds a new one with its own
    server): what a token key holds cannot change while the geocoder is open. addok asks the
    same questions (does this token exist, how frequent is it, its pairs...) for every query
    that shares a word — a round trip each — so they are answered from memory after the
    first time. Temporary keys (geohash unions, intersections) are always asked.
    """
    import redis

    class LectureSeule(redis.Redis):
        def _memo(self, nom, cle, *args):
            texte = cle.decode() if isinstance(cle, bytes) else str(cle)
            fonction = getattr(redis.Redis, nom)
            if not texte.startswith(_PERMANENTES):
                return fonction(self, cle, *args)
            k = (nom, texte, args)
            try:
                v = self._reponses[k]
            except KeyError:
                if len(self._reponses) > 1_000_000:
                    self._reponses.clear()
                v = self._reponses[k] = fonction(self, cle, *args)
            return set(v) if isinstance(v, set) else list(v) if isinstance(v, list) else v

        def exists(self, *cles):
            if len(cles) != 1:
                return redis.Redis.exists(self, *cles)
            return self._memo("exists", cles[0])

        def zcard(self, cle):
            return self._memo("zcard", cle)

        def scard(self, cle):
            return self._memo("scard", cle)

        def smembers(self, cle):
            return self._memo("smembers", cle)

        def sismember(self, cle, valeur):
            return self._memo("sismember", cle, valeur)

        def zrevrange(self, cle, debut, fin, *args, **kw):
            if kw:
                return redis.Redis.zrevrange(self, cle, debut, fin, *args, **kw)
            return self._memo("zrevrange", cle, debut, fin, *args)

    client = LectureSeule(**parametres)
    client._reponses = {}
    return client


def brancher(socket: str, sqlite: str | Path, lecture_seule: bool = False) -> None:
    """Configure addok (once) and connect it to the Redis of Unix ``socket`` and to
    ``sqlite`` (``lecture_seule``: an installed index, see :func:`_client_lecture_seule`)."""
    sqlite = str(Path(sqlite).resolve())
    if (_branche["socket"] == socket and _branche["sqlite"] == sqlite
            and _branche.get("lecture_seule") == lecture_seule):
        return
    os.environ["ADDOK_CONFIG_MODULE"] = str(CONFIGURATION)
    os.environ["ADDOK_SQLITE_DB_PATH"] = sqlite
    os.environ.setdefault("ADDOK_LOG_DIR", str(Path(sqlite).parent))
    from addok.config import config
    if not config.loaded:
        # addok prints which plugins and which file it loaded: not for our users
        with contextlib.redirect_stdout(io.StringIO()):
            config.load()
    config.REDIS = {"unix_socket_path": socket, "indexes": {"db": 0}, "documents": {"db": 1}}
    config.SQLITE_DB_PATH = sqlite
    from addok import ds
    from addok.db import DB
    from addok.helpers import scripts
    DB.connect(unix_socket_path=socket, db=0)
    if lecture_seule:
        DB.instance = _client_lecture_seule(unix_socket_path=socket, db=0)
    scripts.load_scripts()  # the Lua scripts are bound to the connection
    ds.DS.instance = config.DOCUMENT_STORE()
    _branche.update(socket=socket, sqlite=sqlite, lecture_seule=lecture_seule)


def _en_dict(r) -> dict:
    def premier(v):
        return v[0] if isinstance(v, (list, tuple)) and v else v
    return {"label": str(r), "score": round(float(r.score), 4), "type": r.type,
            "lon": float(r.lon), "lat": float(r.lat), "id": premier(r._doc.get("id")),
            "citycode": premier(r._doc.get("citycode")) or None,
            "postcode": premier(r._doc.get("postcode")) or None,
            "city": premier(r._doc.get("city")) or None,
            "housenumber": r.housenumber or None, "name": premier(r._doc.get("name"))}


def rechercher(q: str, limite: int = 5, autocomplete: bool = False, **filtres) -> list[dict]:
    """addok's results for ``q`` (already connected by :func:`brancher`)."""
    from addok.core import search
    from addok.helpers.text import EntityTooLarge
    q = " ".join((q or "").split())
    if not q:
        return []
    try:
        resultats = search(q, limit=limite, autocomplete=autocomplete, **filtres)
    except EntityTooLarge:
        return []
    return [_en_dict(r) for r in resultats]


def meilleur(q: str) -> dict | None:
    """The best result for ``q``, or ``None``."""
    r = rechercher(q, limite=1)
    return r[0] if r else None


# -- worker processes of a batch ---------------------------------------------------------

def initialiser_travailleur(socket: str, sqlite: str) -> None:
    brancher(socket, sqlite, lecture_seule=True)


def traiter_lot(travail: tuple[list[str], int]) -> list[list[dict]]:
    requetes, limite = travail
    return [rechercher(q, limite=limite) if q else [] for q in requetes]
