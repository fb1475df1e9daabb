"""Import BAN addok files into essqpv's Redis (run as ``python -m essqpv.geocodage._import``).

A separate process, so that addok's import workers are forked from a process that holds no
other state. Arguments: a JSON object ``{"socket", "sqlite", "fichiers": [[departement, path],
...], "travailleurs"}`` on the command line. It prints one JSON line per event on standard
output (``{"fichier", "documents"}`` while importing, ``{"fin": {...}}`` at the end) and, on
a bad line, ``{"erreur": "..."}`` then exits with code 2.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import sys
import zlib
from multiprocessing import get_context

from essqpv.geocodage import _addok

TYPES = ("municipality", "street", "locality")
_LOT = 500


def _emettre(objet: dict) -> None:
    sys.__stdout__.write(json.dumps(objet, ensure_ascii=False) + "\n")
    sys.__stdout__.flush()


class LigneInvalide(Exception):
    pass


def _lignes(departement: str, chemin: str, compte: dict):
    """Checked lines of one file (raises LigneInvalide on the first bad one)."""
    nom = chemin.rsplit("/", 1)[-1]
    try:
        with gzip.open(chemin, "rt", encoding="utf-8") as f:
            for i, ligne in enumerate(f, 1):
                if not ligne.strip():
                    continue
                try:
                    d = json.loads(ligne)
                except ValueError:
                    raise LigneInvalide(f"{nom}, ligne {i} : ce n'est pas un objet JSON (format "
                                        "addok de la BAN attendu : un objet par ligne).") from None
                if not isinstance(d, dict):
                    raise LigneInvalide(f"{nom}, ligne {i} : objet JSON attendu.")
                manque = [k for k in ("id", "type", "name", "lon", "lat", "importance")
                          if d.get(k) in (None, "")]
                if manque:
                    raise LigneInvalide(f"{nom}, ligne {i} : champ(s) {', '.join(manque)} "
                                        "absent(s) (format addok de la BAN attendu).")
                if d["type"] not in TYPES:
                    raise LigneInvalide(f"{nom}, ligne {i} : type « {d['type']} » inconnu "
                                        f"({', '.join(TYPES)} attendus).")
                code = d.get("citycode")
                code = code[0] if isinstance(code, list) and code else code
                if isinstance(code, str) and not code.startswith(departement):
                    raise LigneInvalide(f"{nom}, ligne {i} : commune {code} hors du "
                                        f"département {departement}.")
                compte[d["type"]] = compte.get(d["type"], 0) + 1
                compte["numeros"] = compte.get("numeros", 0) + len(d.get("housenumbers") or {})
                yield ligne
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise LigneInvalide(f"{nom} : archive gzip illisible ou tronquée ({exc}).") from None


def _par_lots(iterable):
    lot = []
    for x in iterable:
        lot.append(x)
        if len(lot) >= _LOT:
            yield lot
            lot = []
    if lot:
        yield lot


def _initialiser(socket: str, sqlite: str) -> None:
    # a forked worker: new connections of its own (never the parent's SQLite connection)
    _addok._branche.update(socket=None, sqlite=None)
    _addok.brancher(socket, sqlite)


def _importer_lot(lignes: list[str]) -> int:
    from addok.batch import process_documents
    process_documents(*lignes)
    return len(lignes)


def main(argv: list[str]) -> int:
    p = json.loads(argv[0])
    _addok.brancher(p["socket"], p["sqlite"])
    from addok.config import config
    config.INDEX_EDGE_NGRAMS = False  # edge ngrams once, at the end (as ``addok ngrams``)
    config.BATCH_WORKERS = int(p.get("travailleurs") or 2)
    comptes = {}
    contexte = get_context("fork")
    try:
        with contexte.Pool(config.BATCH_WORKERS, initializer=_initialiser,
                           initargs=(p["socket"], p["sqlite"])) as pool:
            for departement, chemin in p["fichiers"]:
                compte = comptes.setdefault(departement, {})
                fait = 0
                for n in pool.imap(_importer_lot, _par_lots(_lignes(departement, chemin,
                                                                    compte))):
                    fait += n
                    _emettre({"fichier": chemin, "documents": fait})
    except LigneInvalide as exc:
        _emettre({"erreur": str(exc)})
        return 2
    from addok.autocomplete import create_edge_ngrams
    with contextlib.redirect_stdout(io.StringIO()):
        create_edge_ngrams()
    _emettre({"fin": comptes})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
