"""addok inside an essqpv process: configuration, connection to essqpv's Redis, search.

addok keeps its configuration and its connections in module globals (one geocoder per
process). :func:`brancher` loads the configuration once (``addok.conf`` of this package:
the BAN's settings, documents in SQLite) and points the connections at a given Redis port
and SQLite file; calling it again with another installation re-points them.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
from pathlib import Path

CONFIGURATION = Path(__file__).with_name("addok.conf")
_branche: dict = {"socket": None, "sqlite": None}

__all__ = ["brancher", "rechercher", "meilleur", "CONFIGURATION"]


_PERMANENTES = ("w|", "n|", "p|", "g|")  # tokens, edge ngrams, pairs, geohashes
#: members of the pair sets kept per process, at most (then forgotten and read again):
#: ≈ 55 bytes each, ≈ 0.3 GB at most; half the benchmark's file keeps ≈ 870,000
MAX_PAIRES = 5_000_000


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

        # addok's fuzzy search asks, for each word to correct, SADD <its process key>
        # <neighbours>, SINTER <pairs of the other words> <process key>, DEL <process key>:
        # three round trips (hundreds of neighbours sent each time) for one answer that
        # depends only on the index. The neighbours are kept here and intersected in this
        # process with the pair sets of the other words, each read once (SMEMBERS of a
        # permanent key, at most MAX_PAIRES members kept): the same set.
        def sadd(self, cle, *valeurs):
            from addok.core import REDIS_UNIQUE_ID
            if cle == REDIS_UNIQUE_ID:
                self._voisins = valeurs
                return len(set(valeurs))
            return redis.Redis.sadd(self, cle, *valeurs)

        def sinter(self, cles, *args):
            from addok.core import REDIS_UNIQUE_ID
            cles = list(cles) + list(args)
            if (self._voisins is None or not cles or cles[-1] != REDIS_UNIQUE_ID
                    or REDIS_UNIQUE_ID in cles[:-1]
                    or not all(str(c).startswith("p|") for c in cles[:-1])):
                return redis.Redis.sinter(self, cles)
            voisins = {str(x).encode() for x in self._voisins}
            return voisins.intersection(*sorted(map(self.paires, cles[:-1]), key=len))

        def paires(self, cle) -> frozenset:
            """The members of the pair set ``cle`` (SMEMBERS, remembered: permanent)."""
            try:
                return self._paires[cle]
            except KeyError:
                pass
            v = frozenset(redis.Redis.smembers(self, cle))
            self._taille_paires += len(v)
            if self._taille_paires > MAX_PAIRES:
                self._paires.clear()
                self._taille_paires = len(v)
            self._paires[cle] = v
            return v

        def delete(self, *cles):
            from addok.core import REDIS_UNIQUE_ID
            if cles == (REDIS_UNIQUE_ID,) and self._voisins is not None:
                self._voisins = None  # never written to Redis outside the pipeline
                return 1
            return redis.Redis.delete(self, *cles)

        def sismembers(self, couples) -> None:
            """Ask the SISMEMBER of all ``couples`` (key, value) not yet known in one
            round trip (remembered for :meth:`sismember`)."""
            manquants = list(dict.fromkeys(
                (str(c), str(v)) for c, v in couples
                if ("sismember", str(c), (v,)) not in self._reponses))
            if not manquants:
                return
            tube = self.pipeline(transaction=False)
            for c, v in manquants:
                tube.sismember(c, v)
            for (c, v), r in zip(manquants, tube.execute()):
                self._reponses[("sismember", c, (v,))] = r

    client = LectureSeule(**parametres)
    client._reponses = {}
    client._voisins = None
    client._paires = {}
    client._taille_paires = 0
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
    if lecture_seule:
        _memoriser_zinter()
    ds.DS.instance = config.DOCUMENT_STORE()
    _DOCUMENTS["par_cle"] = {}
    _DOCUMENTS["fiches"] = {}
    _DOCUMENTS["actif"] = lecture_seule
    _accelerer()
    _branche.update(socket=socket, sqlite=sqlite, lecture_seule=lecture_seule)


# -- the same search, less work -------------------------------------------------------------

_CONVERT_ADDOK = None


def _convert(self) -> None:
    """``addok.core.Search.convert``, the same results with less work:

    - the labels of addok-france's ``make_labels`` depend only on the result's names,
      cities, postcode, type and house number; a house number's labels are its street's,
      each preceded by the number-prefixed one. The street's labels (and their folded
      texts) are computed once per process and reused by every query that meets them;
    - every label of the new candidates is scored in one pass
      (:func:`essqpv.geocodage._scores.scores_du_lot`), after the processors that come
      before the n-gram score, then the processors after it run — the same scores added
      in the same order, results kept in the order of the documents.

    Any other configuration (processors replaced, autocomplete) runs addok's own."""
    from addok.config import config
    from addok.core import Result
    from addok.ds import get_documents
    from addok.helpers.results import match_housenumber
    from addok_france import make_labels

    from essqpv.geocodage import _scores
    processeurs = config.SEARCH_RESULT_PROCESSORS
    try:
        k = processeurs.index(_scores.score_by_ngram_distance)
        e = processeurs.index(make_labels)
    except ValueError:
        return _CONVERT_ADDOK(self)
    if self.autocomplete or e > k:
        return _CONVERT_ADDOK(self)
    ids = [i for i in self.bucket if i not in self.results]
    if not ids:
        return
    avant, milieu, apres = processeurs[:e], processeurs[e + 1:k], processeurs[k + 1:]
    if (_DOCUMENTS["actif"] and avant == [match_housenumber]
            and milieu == _MILIEU_STANDARD()):
        return _convert_fiches(self, ids, apres)
    if _DOCUMENTS["actif"]:
        # decoded documents remembered: each result gets its own copy of the top level
        # (``Result.update`` writes there) and addok's match_housenumber, which pops from
        # the stored house number, is replaced by one that copies it
        documents = _documents(ids)
        avant = [_numero_de(self) if p is match_housenumber else p for p in avant]
    else:
        documents = get_documents(*ids)
    gardes = []
    plies = []
    for _id, doc in documents:
        result = Result(doc)
        for processor in avant:
            if processor(self, result) is False:
                break
        else:
            pliees = _etiquettes(self, result)
            for processor in milieu:
                if processor(self, result) is False:
                    break
            else:
                gardes.append((_id, result))
                plies.append(pliees)
    for (_id, result), score in zip(gardes, _scores.scores_du_lot(self, plies)):
        if score is not None:
            result.add_score("str_distance", score, ceiling=1.0)
        for processor in apres:
            if processor(self, result) is False:
                break
        else:
            self.results[_id] = result


#: decoded documents of a read-only index, by key (``actif`` set by :func:`brancher`), and
#: the :class:`_Fiche` of each street met (``fiches``)
_DOCUMENTS: dict = {"actif": False, "par_cle": {}, "fiches": {}}
#: at most this many documents remembered per process (a street read on demand is its text
#: and its other fields, ≈ 5 kB: ≈ 0.5 GB per process at most)
MAX_DOCUMENTS = 100_000


def _documents(ids):
    """``addok.ds.get_documents(*ids)``, the documents decoded once per process: (key, a
    shallow copy of the document), in the order addok's SQLite store gives them — by key
    (``SELECT … WHERE key IN (…)`` on its unique index: byte order)."""
    from addok.ds import get_documents
    memoire = _DOCUMENTS["par_cle"]
    manquants = [i for i in ids if i not in memoire]
    if manquants and len(memoire) + len(manquants) > MAX_DOCUMENTS:
        memoire.clear()  # (then every document of this search is fetched again)
        manquants = list(ids)
    if manquants:
        for cle, doc in get_documents(*manquants):
            memoire[cle] = doc
    for cle in sorted(ids):
        doc = memoire.get(cle)
        if doc is not None:
            yield cle, dict(doc)


def _MILIEU_STANDARD() -> list:
    from addok.helpers.results import score_by_autocomplete_distance, score_by_importance
    return [score_by_importance, score_by_autocomplete_distance]


#: the fields of a house number in the BAN's addok documents (``raw`` added by addok's
#: import): a matched number that has only these changes the point and the identifier,
#: nothing that the labels or the importance read
_CHAMPS_NUMERO = frozenset({"raw", "id", "x", "y", "lon", "lat"})


class _Fiche:
    """What addok's result processors draw from one document of a read-only index, whatever
    the query: the document, its house numbers, its importance score, and its labels without
    house number (those of its own type and those of a matched house number, each with
    their folded texts, computed when first needed)."""

    __slots__ = ("doc", "numeros", "importance", "sans", "avec")

    def __init__(self, helper, doc: dict):
        from addok.core import Result
        from addok.helpers.results import score_by_importance
        self.doc = doc
        r = Result(dict(doc))
        self.numeros = r.housenumbers  # (addok's attribute: the field, or "")
        score_by_importance(helper, r)
        self.importance = r._scores.get("importance")
        self.sans = self.avec = None

    def etiquettes(self, helper, numero: bool) -> tuple[list[str], list[str]]:
        """(labels, folded labels) of addok-france's make_labels for this document without
        house number: as found (``numero`` false) or typed ``housenumber`` (a number
        matched)."""
        e = self.avec if numero else self.sans
        if e is None:
            from addok.core import Result
            from addok_france import make_labels

            from essqpv.geocodage import _scores
            r = Result(dict(self.doc))
            if numero:
                r.type = "housenumber"
            make_labels(helper, r)
            e = (r.labels, [_scores._pli(x) for x in r.labels])
            if numero:
                self.avec = e
            else:
                self.sans = e
        return e


def _convert_fiches(self, ids, apres) -> None:
    """``_convert`` for addok.conf's processors (addok's match_housenumber, addok-france's
    make_labels, importance, autocomplete distance, then the n-gram score and the rest):
    each candidate's result built from its document's :class:`_Fiche` — the fields,
    type, labels and importance score those processors would give it — then scored
    together. The same results, in the same order: a ``Result`` whose attributes are those
    addok's processors leave (``tests/test_geocodage.py`` compares with addok alone). A
    matched house number with other fields than :data:`_CHAMPS_NUMERO` goes through the
    processors themselves."""
    from addok.core import Result
    from addok.ds import get_documents
    from addok.helpers.results import score_by_autocomplete_distance, score_by_importance
    from addok_france import make_labels  # noqa: F401  (the fiches' labels)

    from essqpv.geocodage import _scores
    fiches = _DOCUMENTS["fiches"]
    trouvees = {}
    manquants = []
    for i in ids:
        f = fiches.get(i)
        if f is None:
            manquants.append(i)
        else:
            trouvees[i] = f
    if manquants:
        if len(fiches) + len(manquants) > MAX_DOCUMENTS:
            fiches.clear()  # (those of this search are kept in ``trouvees``)
        for cle, doc in get_documents(*manquants):
            trouvees[cle] = fiches[cle] = _Fiche(self, doc)
    raw = "".join(sorted(self.housenumbers, key=lambda t: t.position))
    verifier, seulement = self.check_housenumber, self.only_housenumber
    chercher = bool(verifier and raw)
    processeur_numero = _numero_de(self)
    gardes = []
    plies = []
    nouveau = object.__new__
    for cle in sorted(trouvees):
        f = trouvees[cle]
        if chercher and raw in f.numeros:
            data = dict(f.numeros[raw])
            if not data.keys() <= _CHAMPS_NUMERO or "raw" not in data:
                # addok's own processors for this one
                result = Result(dict(f.doc))
                if processeur_numero(self, result) is False:
                    continue
                pliees = _etiquettes(self, result)
                if (score_by_importance(self, result) is False
                        or score_by_autocomplete_distance(self, result) is False):
                    continue
                gardes.append((cle, result))
                plies.append(pliees)
                continue
            numero = data.pop("raw")
            if seulement and not numero:
                continue  # (addok's match_housenumber drops it)
            doc = dict(f.doc)
            doc.update(data)
            base, pliees_base = f.etiquettes(self, True)
            libelles, pliees = [], []
            if numero:
                pli_numero = _scores._pli_texte(str(numero))
                for libelle, pli in zip(base, pliees_base):
                    complet = f"{numero} {libelle}"
                    libelles += (complet, libelle)
                    pliees += (f"{pli_numero} {pli}" if pli_numero and pli
                               else _scores._pli(complet), pli)
            else:
                libelles, pliees = list(base), list(pliees_base)
            result = nouveau(Result)
            result.__dict__.update(housenumber=numero, _scores={}, _cache=dict(data),
                                   _doc=doc, labels=libelles, type="housenumber")
        else:
            if seulement:
                continue  # (addok's match_housenumber drops it)
            base, pliees_base = f.etiquettes(self, False)
            pliees = list(pliees_base)
            result = nouveau(Result)
            result.__dict__.update(housenumber=None, _scores={}, _cache={},
                                   _doc=dict(f.doc), labels=list(base))
        if f.importance is not None:
            result._scores["importance"] = f.importance
        gardes.append((cle, result))
        plies.append(pliees)
    for (_id, result), score in zip(gardes, _scores.scores_du_lot(self, plies)):
        if score is not None:
            result.add_score("str_distance", score, ceiling=1.0)
        for processor in apres:
            if processor(self, result) is False:
                break
        else:
            self.results[_id] = result


def _numero_de(helper):
    """``addok.helpers.results.match_housenumber`` for the results of one search of
    ``helper``, without writing into the document's house numbers (addok pops ``raw`` from
    the matched one): the same fields set on the result, from a copy; the query's house
    number (its tokens joined in order) is computed once for the search, not once per
    candidate."""
    raw = "".join(sorted(helper.housenumbers, key=lambda t: t.position))
    verifier, seulement = helper.check_housenumber, helper.only_housenumber

    def match_housenumber(helper, result):
        if not verifier:
            return
        if raw:
            numeros = result.housenumbers
            if raw in numeros:
                data = dict(numeros[raw])
                result.housenumber = data.pop("raw")
                result.type = "housenumber"
                result.update(data)
        if seulement and not result.housenumber:
            helper.debug(
                "Cannot match housenumber (%s), removing `%s`", result.housenumber, result
            )
            return False
    return match_housenumber


def _memoriser_zinter() -> None:
    """addok's ``zinter`` script (ZINTERSTORE of token keys into a temporary key,
    ZREVRANGE, DEL) remembered per set of keys and limit: on an index that is never
    written, the same intersection gives the same ids (the client's memory, cleared with
    it)."""
    from addok.db import DB
    from addok.helpers import scripts
    script = scripts.zinter
    client = DB.instance

    def zinter(keys, args):
        cle = ("zinter", frozenset(keys), args[1])
        memoire = client._reponses
        try:
            v = memoire[cle]
        except KeyError:
            v = memoire[cle] = script(keys=keys, args=args)
        return list(v)
    scripts.zinter = zinter


def _relations_un_a_plusieurs(tokens):
    """addok's ``_compute_onetomany_relations``, its SISMEMBER asked together first (one
    round trip, the answers remembered by the read-only client), then addok's own code."""
    from addok.db import DB
    from addok.pairs import pair_key
    if hasattr(DB.instance, "sismembers"):
        DB.instance.sismembers((pair_key(t), o) for t in tokens for o in tokens if o != t)
    return _RELATIONS_ADDOK(tokens)


_RELATIONS_ADDOK = None


#: (names, cities, postcode, type) → (labels, folded labels) of addok-france's make_labels
#: without house number
_ETIQUETTES: dict = {}


def _etiquettes(helper, result) -> list[str]:
    """addok-france's ``make_labels`` on ``result`` (its labels set), from the labels of
    the same names, cities, postcode and type without house number (remembered); returns
    the folded labels, in the same order."""
    from addok_france import make_labels

    from essqpv.geocodage import _scores
    if result.labels:  # make_labels leaves them alone
        return [_scores._pli(x) for x in result.labels]
    villes = result._rawattr("city")
    cle = (tuple(result._rawattr("name")), tuple(villes) if isinstance(villes, list)
           else villes, result.postcode, result.type)
    try:
        base, pliees = _ETIQUETTES[cle]
    except KeyError:
        numero = result.housenumber
        result.housenumber = None
        make_labels(helper, result)
        result.housenumber = numero
        base, result.labels = result.labels, []
        pliees = [_scores._pli(x) for x in base]
        if len(_ETIQUETTES) > 400_000:
            _ETIQUETTES.clear()
        _ETIQUETTES[cle] = base, pliees
    numero = result.housenumber
    if not numero:
        result.labels = list(base)
        return list(pliees)
    libelles, sortie = [], []
    pli_numero = _scores._pli_texte(str(numero))
    for libelle, pli in zip(base, pliees):
        complet = f"{numero} {libelle}"
        libelles += (complet, libelle)
        sortie += (f"{pli_numero} {pli}" if pli_numero and pli else _scores._pli(complet),
                   pli)
    result.labels = libelles
    return sortie


@functools.lru_cache(maxsize=65536)
def _voisins(mot: str, maximum) -> tuple[str, ...]:
    return tuple(_MAKE_FUZZY(mot, max=maximum))


def _make_fuzzy(word, max=1):
    """addok's ``make_fuzzy`` (the neighbours of a word, in its order), remembered: the
    same words (communes, street words) come back query after query."""
    return list(_voisins(str(word), max))


_MAKE_FUZZY = None


def _accelerer() -> None:
    global _CONVERT_ADDOK, _MAKE_FUZZY, _RELATIONS_ADDOK
    from addok import core, fuzzy
    from addok.helpers import collectors
    if _CONVERT_ADDOK is None:
        _CONVERT_ADDOK = core.Search.convert
        core.Search.convert = _convert
        _MAKE_FUZZY = fuzzy.make_fuzzy
        fuzzy.make_fuzzy = _make_fuzzy
        _RELATIONS_ADDOK = collectors._compute_onetomany_relations
        collectors._compute_onetomany_relations = _relations_un_a_plusieurs


@contextlib.contextmanager
def addok_seul():
    """Within this block, addok as published, none of essqpv's accelerations: its own
    n-gram score, its own document decoding, its own ``convert``, and a plain Redis client
    (no remembered answers) — to check that essqpv's search gives the same results
    (``tests/test_geocodage.py``, ``benchmarks/adresses.py``). Needs :func:`brancher`."""
    import redis
    from addok.config import config
    from addok.db import DB
    from addok.helpers import results as resultats_addok
    from addok.helpers import scripts
    from addok.helpers.serializers import ZlibSerializer

    from essqpv.geocodage import _scores
    processeurs = config.SEARCH_RESULT_PROCESSORS
    k = processeurs.index(_scores.score_by_ngram_distance)
    serialiseur, client = config.DOCUMENT_SERIALIZER, DB.instance
    from addok import core, fuzzy
    processeurs[k] = resultats_addok.score_by_ngram_distance
    from addok.helpers import collectors
    core.Search.convert, fuzzy.make_fuzzy = _CONVERT_ADDOK, _MAKE_FUZZY
    collectors._compute_onetomany_relations = _RELATIONS_ADDOK
    config.DOCUMENT_SERIALIZER = ZlibSerializer
    DB.instance = redis.Redis(unix_socket_path=_branche["socket"], db=0)
    scripts.load_scripts()
    try:
        yield
    finally:
        DB.instance.close()
        processeurs[k] = _scores.score_by_ngram_distance
        core.Search.convert, fuzzy.make_fuzzy = _convert, _make_fuzzy
        collectors._compute_onetomany_relations = _relations_un_a_plusieurs
        config.DOCUMENT_SERIALIZER, DB.instance = serialiseur, client
        scripts.load_scripts()
        if hasattr(client, "_reponses"):
            _memoriser_zinter()


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
    """The results of a lot of queries in a worker process. After each lot, what the
    process keeps (documents, Redis answers, labels: it only grows) is moved out of the
    cyclic garbage collector's sight (``gc.freeze``, after a collection so that no
    garbage is kept): otherwise every full collection walks all of it again, ≈ 10 % of a
    worker's CPU. Objects frozen are still freed when no longer referenced."""
    import gc
    requetes, limite = travail
    sortie = [rechercher(q, limite=limite) if q else [] for q in requetes]
    gc.collect()
    gc.freeze()
    return sortie
