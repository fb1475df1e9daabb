"""The exact path: addresses written as the BAN writes them, found without addok.

Most addresses of a file are spelled as in the BAN (give or take case, accents, hyphens,
commas and the usual abbreviations: « av. », « bd », « St »). For those, addok's search —
about 2.4 ms of CPU and a dozen Redis round trips each — gives nothing a table lookup does
not. At installation an index of every BAN house number and street of the installed
départements is built in SQLite (``index/exactes.db``), keyed on the **normalised text**
"numéro voie commune"; a query whose normalised text (postcode set aside) is exactly one
of them, and whose postcode, when given, is that address's, is answered from it:

- ``methode = "exacte"``, ``score = 1`` (the text is the address's), the BAN's label, type,
  point, identifiers — the very fields addok gives for that address;
- anything else (a typo, a word more or less, no commune, a street or a commune written
  twice in the installed départements, a postcode that is not the address's) goes to addok
  (``methode = "addok"``) and keeps its rules (score, type, ambiguity).

The normalisation is applied the same way to the BAN and to the queries, so it can only
merge texts, never split them: two BAN addresses that normalise to the same key are both
found, and such a query goes to addok. The keys are 64-bit hashes; a hit is confirmed by
rebuilding the address's normalised text from the row, so a hash collision cannot give a
wrong answer.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["FICHIER_EXACTES", "jetons", "construire", "IndexExact"]

FICHIER_EXACTES = "exactes.db"
VERSION = 1

#: the words that are written several ways, folded to one (both sides: BAN and queries)
_EQUIVALENTS = {
    "r": "rue", "av": "avenue", "ave": "avenue", "bd": "boulevard", "bld": "boulevard",
    "boul": "boulevard", "pl": "place", "all": "allee", "imp": "impasse", "ch": "chemin",
    "che": "chemin", "chem": "chemin", "crs": "cours", "sq": "square", "rte": "route",
    "pass": "passage", "res": "residence", "ham": "hameau", "lot": "lotissement",
    "fg": "faubourg", "rpt": "rond", "st": "saint", "ste": "sainte", "gal": "general",
    "gen": "general", "mal": "marechal", "pdt": "president", "pres": "president",
    "dr": "docteur", "prof": "professeur", "cdt": "commandant", "lt": "lieutenant",
}
_NON_MOTS = re.compile(r"[^a-z0-9]+")
_NUMERO_COLLE = re.compile(r"^(\d+)([a-z]+)$")
_CP = re.compile(r"^\d{5}$")
_ANNEXES = {"cedex", "france"}


def jetons(texte: str) -> list[str]:
    """Normalised words: ASCII, lower case, punctuation out, ``3bis`` → ``3 bis``, leading
    zeros of numbers out (postcodes kept), usual abbreviations folded."""
    # word by word (split at the ASCII space, which every step keeps as a separator: the
    # same words as the whole text), each word's remembered: they come back row after row
    sortie: list[str] = []
    for morceau in (texte or "").split(" "):
        if morceau:
            sortie += _jetons_morceau(morceau)
    return sortie


@functools.lru_cache(maxsize=262_144)
def _jetons_morceau(texte: str) -> tuple[str, ...]:
    from unidecode import unidecode
    sortie = []
    for m in _NON_MOTS.split(unidecode(texte).lower()):
        if not m:
            continue
        colle = _NUMERO_COLLE.match(m)
        if colle:
            sortie += [str(int(colle.group(1))), _EQUIVALENTS.get(colle.group(2),
                                                                  colle.group(2))]
        elif m.isdigit() and len(m) != 5:
            sortie.append(str(int(m)))
        else:
            sortie.append(_EQUIVALENTS.get(m, m))
    return tuple(sortie)


def _h(texte: str) -> int:
    return int.from_bytes(hashlib.blake2b(texte.encode(), digest_size=8).digest(), "big",
                          signed=True)


def _liste(v) -> list:
    if v is None or v == "":
        return []
    return [x for x in v if x] if isinstance(v, list) else [v]


def _cles(noms: list[str], villes: list[str]) -> list[str]:
    """The normalised "voie commune" texts of a street (every name × every city name)."""
    return list(dict.fromkeys(" ".join(jetons(n) + jetons(v)) for n in noms for v in villes))


@functools.lru_cache(maxsize=65_536)
def _cles_json(noms: str, villes: str) -> tuple[str, ...]:
    """:func:`_cles` of a street row of the index (its names and cities in JSON),
    remembered: the streets of a file come back row after row."""
    return tuple(_cles(json.loads(noms), json.loads(villes)))


def construire(fichiers: Iterable[str | Path], chemin: str | Path) -> dict:
    """Write the exact index of the BAN addok ``fichiers`` (already checked by the import)
    to ``chemin``; returns the counts (``voies``, ``numeros``, ``cles``)."""
    chemin = Path(chemin)
    if chemin.exists():
        chemin.unlink()
    con = sqlite3.connect(chemin)
    con.executescript("""
        PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;
        PRAGMA temp_store = MEMORY;
        CREATE TABLE meta (cle TEXT PRIMARY KEY, valeur TEXT);
        CREATE TABLE voies (id INTEGER PRIMARY KEY, type TEXT, nom TEXT, noms TEXT,
                            code_postal TEXT, ville TEXT, villes TEXT, code_commune TEXT,
                            ident TEXT, lon REAL, lat REAL);
        CREATE TABLE numeros (id INTEGER PRIMARY KEY, voie INTEGER, numero TEXT,
                              ident TEXT, lon REAL, lat REAL);
        CREATE TABLE cles (h INTEGER, voie INTEGER, numero INTEGER);
    """)
    comptes = {"voies": 0, "numeros": 0, "cles": 0}
    voies, numeros, cles = [], [], []
    id_voie = id_numero = 0

    def vider():
        con.executemany("INSERT INTO voies VALUES (?,?,?,?,?,?,?,?,?,?,?)", voies)
        con.executemany("INSERT INTO numeros VALUES (?,?,?,?,?,?)", numeros)
        con.executemany("INSERT INTO cles VALUES (?,?,?)", cles)
        voies.clear(), numeros.clear(), cles.clear()

    for fichier in fichiers:
        with gzip.open(fichier, "rt", encoding="utf-8") as f:
            for ligne in f:
                if not ligne.strip():
                    continue
                d = json.loads(ligne)
                if d.get("type") not in ("street", "locality"):
                    continue  # a commune's label is its name alone: addok's business
                noms, villes = _liste(d.get("name")), _liste(d.get("city"))
                cp = (_liste(d.get("postcode")) or [None])[0]
                if not noms or not villes or not cp:
                    continue
                id_voie += 1
                code = (_liste(d.get("citycode")) or [None])[0]
                voies.append((id_voie, d["type"], noms[0], json.dumps(noms, ensure_ascii=False),
                              cp, villes[0], json.dumps(villes, ensure_ascii=False), code,
                              (_liste(d.get("id")) or [None])[0], float(d["lon"]),
                              float(d["lat"])))
                textes = _cles(noms, villes)
                cles.extend((_h(t), id_voie, None) for t in textes)
                for numero, p in (d.get("housenumbers") or {}).items():
                    id_numero += 1
                    numeros.append((id_numero, id_voie, numero, p.get("id"), float(p["lon"]),
                                    float(p["lat"])))
                    prefixe = " ".join(jetons(numero))
                    cles.extend((_h(f"{prefixe} {t}"), id_voie, id_numero) for t in textes)
                comptes["numeros"] += len(d.get("housenumbers") or {})
                comptes["voies"] += 1
                comptes["cles"] += len(textes) * (1 + len(d.get("housenumbers") or {}))
                if len(cles) > 200_000:
                    vider()
    vider()
    con.execute("CREATE INDEX cles_h ON cles (h)")
    con.executemany("INSERT INTO meta VALUES (?, ?)", [("version", str(VERSION))])
    con.commit()
    con.close()
    return comptes


class IndexExact:
    """The exact index of an installation, read only; :meth:`chercher` answers a list of
    queries (``None`` where addok must answer)."""

    def __init__(self, chemin: str | Path):
        self.chemin = Path(chemin)
        self._con: sqlite3.Connection | None = None

    def _connexion(self) -> sqlite3.Connection:
        if self._con is None:
            self._con = sqlite3.connect(f"file:{self.chemin.resolve()}?mode=ro", uri=True,
                                        check_same_thread=False)
        return self._con

    def fermer(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    @staticmethod
    def _demande(q: str) -> tuple[str, str | None] | None:
        """(normalised text without postcode, postcode) of a query, or None when it cannot
        be an exact address (no number nor street first, several postcodes)."""
        mots = [m for m in jetons(q) if m not in _ANNEXES]
        cps = {m for m in mots if _CP.match(m)}
        if len(cps) > 1:
            return None
        reste = [m for m in mots if not _CP.match(m)]
        if len(reste) < 2:
            return None
        return " ".join(reste), (cps.pop() if cps else None)

    def chercher(self, requetes: Sequence[str]) -> list[dict | None]:
        """The exact result of each query (the fields of addok's results, ``score`` 1 and
        ``methode`` ``"exacte"``), or ``None``."""
        demandes = [self._demande(q) if q else None for q in requetes]
        par_h: dict[int, list[int]] = {}
        for i, d in enumerate(demandes):
            if d is not None:
                par_h.setdefault(_h(d[0]), []).append(i)
        lignes: dict[int, list[tuple]] = {}
        con = self._connexion()
        hs = list(par_h)
        for k in range(0, len(hs), 900):
            lot = hs[k:k + 900]
            marques = ",".join("?" * len(lot))
            for row in con.execute(
                    "SELECT c.h, v.type, v.nom, v.noms, v.code_postal, v.ville, v.villes, "
                    "v.code_commune, v.ident, v.lon, v.lat, n.numero, n.ident, n.lon, n.lat, "
                    f"v.id, n.id FROM cles c JOIN voies v ON v.id = c.voie LEFT JOIN numeros n "
                    f"ON n.id = c.numero WHERE c.h IN ({marques})", lot):
                lignes.setdefault(row[0], []).append(row[1:])
        sortie: list[dict | None] = [None] * len(requetes)
        for h, indices in par_h.items():
            candidats = lignes.get(h)
            if not candidats:
                continue
            texte = demandes[indices[0]][0]
            # the row's own texts: a hash collision never answers
            vrais = [c for c in candidats if texte in {
                " ".join(jetons(c[10]) + [t]) if c[10] is not None else t
                for t in _cles_json(c[2], c[5])}]
            for i in indices:
                cp = demandes[i][1]
                bons = {(c[14], c[15]): c for c in vrais if cp is None or c[3] == cp}
                if len(bons) == 1:
                    sortie[i] = _resultat(next(iter(bons.values())))
        return sortie


def _resultat(c: tuple) -> dict:
    (type_, nom, _noms, cp, ville, _villes, code, ident, lon, lat, numero, ident_n, lon_n,
     lat_n, _iv, _in) = c
    base = f"{nom} {cp} {ville}" if ville != nom else nom
    if numero is not None:
        return {"label": f"{numero} {base}", "score": 1.0, "type": "housenumber",
                "lon": lon_n, "lat": lat_n, "id": ident_n, "citycode": code, "postcode": cp,
                "city": ville, "housenumber": numero, "name": nom, "methode": "exacte"}
    return {"label": base, "score": 1.0, "type": type_, "lon": lon, "lat": lat, "id": ident,
            "citycode": code, "postcode": cp, "city": ville, "housenumber": None, "name": nom,
            "methode": "exacte"}
