"""addok's text-similarity score and document decoding, the same but faster (addok.conf
uses them).

``addok.helpers.results.score_by_ngram_distance`` compares the query with every label of
every candidate through ``ngram.NGram.compare(label, query, N=2, pad_len=0)``, which
builds an n-gram index object per comparison and folds the query to ASCII again each time:
about two thirds of addok's CPU on a query with a typo. :func:`score_by_ngram_distance`
gives the **same number** (``tests/test_geocodage.py`` checks it against ``ngram`` on
random texts and on the BAN extract's labels): bigrams of the folded texts without
padding, shared bigrams counted with their multiplicity, similarity = shared / (bigrams of
the label + bigrams of the query − shared), 0 when nothing is shared, and addok's rule for
two one-letter texts. Folded texts and their bigrams are remembered (labels come back).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache

from addok.config import config
from addok.helpers.text import ascii
from unidecode import unidecode

__all__ = ["similarite", "score_by_ngram_distance", "Documents"]


@lru_cache(maxsize=65536)
def _bigrammes(texte: str) -> tuple[frozenset[str], int]:
    """The bigrams of ``texte`` as a set where a bigram seen before is marked with its rank
    (the second « e␣ » is ``"e 1"``; bigrams have two characters, so no mark is ambiguous):
    the size of the intersection of two such sets is the number of bigrams shared counting
    multiplicity — computed by the set, in C."""
    n = len(texte) - 1
    tous = [texte[i:i + 2] for i in range(n)]
    ensemble = frozenset(tous)
    if len(ensemble) == len(tous):
        return ensemble, n
    marques = set(ensemble)
    for b, k in Counter(tous).items():
        if k > 1:
            marques.update(b + str(j) for j in range(1, k))
    return frozenset(marques), n


def _pli(texte) -> str:
    """The ASCII-folded text addok compares (``ascii(texte)`` as a plain str); labels come
    back query after query: folded once."""
    if isinstance(texte, ascii):
        return texte._cache
    return _pli_texte(str(texte))


@lru_cache(maxsize=262144)
def _pli_texte(texte: str) -> str:
    """``ascii(texte)``: ``alphanumerize(unidecode(texte.lower()))``, folded word by word
    (words between spaces, each folded once: street and city names come back in many
    labels). Lower case and unidecode work character by character and alphanumerize turns
    every non-word character into a space, collapses the spaces and strips: the folded
    text is the folded words that are not empty, joined by one space."""
    return " ".join([m for m in map(_pli_mot, texte.split(" ")) if m])


_NON_MOT = re.compile(r"[^\w]")
_ESPACES = re.compile(r" {2,}")


@lru_cache(maxsize=131072)
def _pli_mot(mot: str) -> str:
    """One word folded (``alphanumerize(unidecode(mot.lower()))``)."""
    bas = mot.lower()
    if not bas.isascii():
        bas = unidecode(bas)
    return _ESPACES.sub(" ", _NON_MOT.sub(" ", bas)).strip()


def _similarite_pliee(gauche: str, droite: str) -> float:
    if len(gauche) == 1 and len(droite) == 1:
        return 1.0 if gauche == droite else 0.0
    a, na = _bigrammes(gauche)
    b, nb = _bigrammes(droite)
    communs = len(a & b)
    if not communs:
        return 0.0
    return float(communs) / (na + nb - communs)


def _nombre(marques: frozenset[str], b: str) -> int:
    """How many times bigram ``b`` is in a marked set of :func:`_bigrammes`."""
    k = 0
    while (b if k == 0 else b + str(k)) in marques:
        k += 1
    return k


def _prefixee(prefixe: str, base: str, requete: str) -> tuple[float, int] | None:
    """(similarity, bigrams) of the folded ``prefixe + " " + base`` with the folded
    ``requete``, from those of ``base`` — a house-number label is its street's label with
    the number in front: the street's bigrams are known (cached), only the few of the number
    and of the junction are counted. The same number as :func:`_similarite_pliee` on the
    whole text (``tests/test_geocodage.py`` checks it). None when a part folds to nothing
    (the whole text is then folded as usual)."""
    if not prefixe or not base or len(requete) < 2:
        return None
    b, nb = _bigrammes(base)
    q, _ = _bigrammes(requete)
    communs = len(b & q)
    tete = prefixe + " " + base[0]
    ajoutes: dict[str, int] = {}
    for i in range(len(tete) - 1):
        g = tete[i:i + 2]
        deja = ajoutes.get(g, 0)
        # one more occurrence of g in the label: shared once more if the label had fewer
        # than the query
        if _nombre(b, g) + deja < _nombre(q, g):
            communs += 1
        ajoutes[g] = deja + 1
    n = nb + len(tete) - 1
    if not communs:
        return 0.0, n
    return float(communs) / (n + len(requete) - 1 - communs), n


def similarite_prefixee(prefixe, base, droite) -> float:
    """``similarite(prefixe + " " + base, droite)`` computed by :func:`_prefixee`."""
    r = _prefixee(_pli(prefixe), _pli(base), _pli(droite))
    return r[0] if r is not None else similarite(f"{prefixe} {base}", droite)


def similarite(gauche, droite) -> float:
    """``addok.helpers.text.compare_ngrams(gauche, droite)``, the same value."""
    return _similarite_pliee(_pli(gauche), _pli(droite))


def score_by_ngram_distance(helper, result) -> None:
    """Drop-in for ``addok.helpers.results.score_by_ngram_distance``: the same scores.

    addok keeps the best ``str_distance`` of the labels and stops at the first label that
    reaches ``MATCH_THRESHOLD``. A label whose similarity cannot reach the best one already
    found — similarity ≤ min(bigrams) / max(bigrams), known from the lengths alone — can
    change neither, so it is not computed.
    """
    if helper.autocomplete:
        return
    requete = _pli(helper.query)
    nq = len(requete) - 1
    meilleur = -1.0
    numero = result.housenumber
    tete = f"{numero} " if numero else None
    pli_numero = _pli_texte(str(numero)) if numero else ""
    for label in result.labels:
        connu = None
        if tete is not None and label.startswith(tete):
            # « 12 Rue X 93200 Ville »: from the bigrams of « Rue X 93200 Ville »
            connu = _prefixee(pli_numero, _pli(label[len(tete):]), requete)
        if connu is not None:
            score, nl = connu
        else:
            pli = _pli(label)
            nl = len(pli) - 1
        if meilleur > 0 and nl > 0 and nq > 0 and min(nl, nq) / max(nl, nq) < meilleur:
            continue
        if connu is None:
            score = _similarite_pliee(pli, requete)
        result.add_score("str_distance", score, ceiling=1.0)
        meilleur = max(meilleur, score)
        if score >= config.MATCH_THRESHOLD:
            break


class Documents:
    """addok's document serializer (zlib-compressed JSON, ``DOCUMENT_SERIALIZER_PYPATH``),
    the same bytes, read with orjson: a street comes back with all its house numbers, and
    decoding them was a seventh of a difficult query's CPU."""

    @classmethod
    def dumps(cls, data) -> bytes:
        import json
        import zlib
        return zlib.compress(json.dumps(data).encode())

    @classmethod
    def loads(cls, data: bytes):
        import zlib
        try:
            import orjson
        except ImportError:  # pragma: no cover - orjson is in essqpv[adresses]
            import json
            return json.loads(zlib.decompress(data).decode())
        texte = zlib.decompress(data)
        return _document_paresseux(texte, orjson) or orjson.loads(texte)


_NUMEROS = b'"housenumbers": {'
_HORS_FORME = bytes(c for c in range(256) if c not in b'{}"')
_FORME_NUMEROS = re.compile(rb'\{(?:""\{(?:"")*\})+\}')
_CLE_SURE = re.compile(r"[a-z0-9]+")


def _document_paresseux(texte: bytes, orjson):
    """A street's document with its house numbers read only when asked, or None (then the
    whole text is read as usual).

    A street of the BAN comes back with all its house numbers (most of its text), and addok
    only asks whether the query's number is among them, and that number's fields. The
    text is addok's ``json.dumps`` (``", "`` and ``": "``); in the BAN's schema the
    ``housenumbers`` object holds flat objects, so it ends at the first ``}}`` after it.
    That is checked, not assumed: ``"housenumbers": {`` is in the text once; up to that
    ``}}`` there is no backslash (so every quote opens or closes a string), no string holds
    a brace, and the quotes and braces alone read « ``{``, then for each number a key
    string, ``{``, strings, ``}``, then ``}`` » (an object of flat objects, closed there). Then the rest of the document is read at once
    and the house numbers replaced by :class:`_Numeros`; any other text is read whole."""
    debut = texte.find(_NUMEROS)
    if debut < 0 or texte.find(_NUMEROS, debut + 1) >= 0:
        return None
    ouverture = debut + len(_NUMEROS) - 1
    fin = texte.find(b"}}", ouverture)
    if fin < 0:
        return None
    objet = texte[ouverture:fin + 2]
    if b"\\" in objet:
        return None
    # its quotes and braces only: with no backslash every quote opens or closes a string,
    # so ``"…"`` strings without braces are ``""`` here, and the object of flat objects
    # is « { then, for each number, a key string, { and its strings, } ... then } »
    # (a brace inside any string: read whole)
    if _FORME_NUMEROS.fullmatch(objet.translate(None, _HORS_FORME)) is None:
        return None
    try:
        doc = orjson.loads(texte[:ouverture] + b"0" + texte[fin + 2:])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("housenumbers") != 0:
        return None
    doc["housenumbers"] = _Numeros(texte, ouverture, fin + 2)
    return doc


class _Numeros(Mapping):
    """The ``housenumbers`` of a document, read on demand from its text: whether a number
    is there (its key ``"<clé>": {`` between the object's braces) and its fields (that
    flat object alone) without reading the others; anything else (iteration, length, a
    key that is not plain ASCII letters and digits, a field text that does not read)
    reads the whole document, which is then the answer. A key of that form can only be
    found where it is a key: inside a JSON string a quote is escaped."""

    __slots__ = ("_texte", "_debut", "_fin", "_tout", "_dernier")

    def __init__(self, texte: bytes, debut: int, fin: int):
        self._texte, self._debut, self._fin, self._tout = texte, debut, fin, None
        self._dernier = (None, None)  # (key, position): « in » then [] ask the same key

    def _lire(self) -> dict:
        if self._tout is None:
            import orjson
            self._tout = orjson.loads(self._texte)["housenumbers"]
        return self._tout

    def _position(self, cle) -> int | None:
        """Where the object of ``cle`` starts, -1 if absent, None if not decidable here."""
        if self._tout is not None or not isinstance(cle, str):
            return None
        if self._dernier[0] == cle:
            return self._dernier[1]
        if not _CLE_SURE.fullmatch(cle):
            return None
        k = self._texte.find(b'"' + cle.encode() + b'": {', self._debut, self._fin)
        k = k + len(cle) + 4 if k >= 0 else -1
        self._dernier = (cle, k)
        return k

    def __contains__(self, cle) -> bool:
        k = self._position(cle)
        return cle in self._lire() if k is None else k >= 0

    def __getitem__(self, cle):
        k = self._position(cle)
        if k is not None:
            if k < 0:
                raise KeyError(cle)
            import orjson
            try:
                valeur = orjson.loads(self._texte[k:self._texte.index(b"}", k) + 1])
            except (orjson.JSONDecodeError, ValueError):
                pass  # a brace inside a string: read everything
            else:
                if isinstance(valeur, dict):
                    return valeur
        return self._lire()[cle]

    def __iter__(self):
        return iter(self._lire())

    def __len__(self) -> int:
        return len(self._lire())

    def __eq__(self, autre):
        return self._lire() == autre

    def __repr__(self) -> str:
        return repr(self._lire())


def similarites_pliees(requete: str, textes: list[str]) -> list[float]:
    """``[_similarite_pliee(t, requete) for t in textes]``, the same numbers, computed
    together with numpy: the bigrams of all the folded ``textes`` (ASCII), counted per text
    and bigram, the shared count capped by the query's count of that bigram, then the same
    division as :func:`_similarite_pliee` (an integer count over an integer, in float64)."""
    import numpy as np
    if len(requete) < 2 or len(textes) < 4:
        return [_similarite_pliee(t, requete) for t in textes]
    try:
        donnees = "\x00".join(textes).encode("ascii")
        q = np.frombuffer(requete.encode("ascii"), dtype=np.uint8).astype(np.int64)
    except UnicodeEncodeError:  # pragma: no cover - folded texts are ASCII
        return [_similarite_pliee(t, requete) for t in textes]
    a = np.frombuffer(donnees, dtype=np.uint8).astype(np.int64)
    # \x00 separates the texts (folding turns any \x00 of a label into a space): a bigram
    # that holds it is no bigram
    gauche, droite = a[:-1], a[1:]
    valides = (gauche != 0) & (droite != 0)
    numero_texte = np.cumsum(a == 0)[:-1]
    cles = (numero_texte[valides] << 14) | (gauche[valides] << 7) | droite[valides]
    uniques, nombres = np.unique(cles, return_counts=True)
    par_requete = np.bincount((q[:-1] << 7) | q[1:], minlength=1 << 14)
    communs = np.bincount(uniques >> 14, weights=np.minimum(nombres,
                                                            par_requete[uniques & 16383]),
                          minlength=len(textes))
    longueurs = np.fromiter(map(len, textes), dtype=np.int64, count=len(textes))
    nq = len(requete) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        sims = np.where(communs > 0, communs / (longueurs - 1 + nq - communs), 0.0)
    sortie = sims.tolist()
    if len(requete) == 1:  # pragma: no cover - excluded above, kept for the rule
        for i, t in enumerate(textes):
            if len(t) == 1:
                sortie[i] = 1.0 if t == requete else 0.0
    return sortie


def scores_du_lot(helper, libelles: list[list[str]]) -> list[float | None]:
    """The ``str_distance`` :func:`score_by_ngram_distance` gives each result (``None``
    when it gives none: no label), from the **folded** labels of each result, all scored
    in one pass (:func:`similarites_pliees`). addok keeps the best similarity of the labels
    up to the first that reaches ``MATCH_THRESHOLD`` and stops there: that label's
    similarity when one reaches it, else the best of all."""
    requete = _pli(helper.query)
    textes: list[str] = []
    bornes = []
    for pliees in libelles:
        textes += pliees
        bornes.append(len(textes))
    sims = similarites_pliees(requete, textes)
    seuil = config.MATCH_THRESHOLD
    sortie: list[float | None] = []
    debut = 0
    for fin in bornes:
        if fin == debut:
            sortie.append(None)
            continue
        part = sims[debut:fin]
        debut = fin
        for s in part:
            if s >= seuil:
                sortie.append(s)
                break
        else:
            sortie.append(max(part))
    return sortie
