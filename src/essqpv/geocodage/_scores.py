"""addok's text-similarity score, computed the same but faster (addok.conf uses it).

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

from functools import lru_cache

from addok.config import config
from addok.helpers.text import ascii

__all__ = ["similarite", "score_by_ngram_distance"]


@lru_cache(maxsize=65536)
def _bigrammes(texte: str) -> tuple[dict[str, int], int]:
    compte: dict[str, int] = {}
    for i in range(len(texte) - 1):
        b = texte[i:i + 2]
        compte[b] = compte.get(b, 0) + 1
    return compte, len(texte) - 1


def _pli(texte) -> str:
    """The ASCII-folded text addok compares (``ascii(texte)`` as a plain str); labels come
    back query after query: folded once."""
    if isinstance(texte, ascii):
        return texte._cache
    return _pli_texte(str(texte))


@lru_cache(maxsize=262144)
def _pli_texte(texte: str) -> str:
    return ascii(texte)._cache


def _similarite_pliee(gauche: str, droite: str) -> float:
    if len(gauche) == 1 and len(droite) == 1:
        return 1.0 if gauche == droite else 0.0
    a, na = _bigrammes(gauche)
    b, nb = _bigrammes(droite)
    if len(a) > len(b):
        a, b = b, a
    communs = 0
    for k, c in a.items():
        d = b.get(k)
        if d:
            communs += c if c < d else d
    if not communs:
        return 0.0
    return float(communs) / (na + nb - communs)


def similarite(gauche, droite) -> float:
    """``addok.helpers.text.compare_ngrams(gauche, droite)``, the same value."""
    return _similarite_pliee(_pli(gauche), _pli(droite))


def score_by_ngram_distance(helper, result) -> None:
    """Drop-in for ``addok.helpers.results.score_by_ngram_distance``."""
    if helper.autocomplete:
        return
    requete = _pli(helper.query)
    for label in result.labels:
        score = _similarite_pliee(_pli(label), requete)
        result.add_score("str_distance", score, ceiling=1.0)
        if score >= config.MATCH_THRESHOLD:
            break
