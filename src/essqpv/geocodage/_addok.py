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


def brancher(socket: str, sqlite: str | Path) -> None:
    """Configure addok (once) and connect it to the Redis of Unix ``socket`` and to
    ``sqlite``."""
    sqlite = str(Path(sqlite).resolve())
    if _branche["socket"] == socket and _branche["sqlite"] == sqlite:
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
    scripts.load_scripts()  # the Lua scripts are bound to the connection
    ds.DS.instance = config.DOCUMENT_STORE()
    _branche.update(socket=socket, sqlite=sqlite)


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
    brancher(socket, sqlite)


def traiter_lot(travail: tuple[list[str], int]) -> list[list[dict]]:
    requetes, limite = travail
    return [rechercher(q, limite=limite) if q else [] for q in requetes]
