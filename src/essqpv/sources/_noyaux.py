"""Compiled kernels of the fast CSV reader (numba, ``nogil``: they run in threads).

Imported only when a file is read: the rest of the package starts without numba. See
:mod:`essqpv.sources.lecteur` for what they are for.
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(nogil=True, cache=True, boundscheck=False)
def utf8(buf, p, n):  # pragma: no cover - compiled
    """Length of the valid UTF-8 sequence starting with a byte >= 0x80 at ``p``, else 0."""
    c = buf[p]
    if 0xC2 <= c <= 0xDF:
        m = 1
    elif 0xE0 <= c <= 0xEF:
        m = 2
    elif 0xF0 <= c <= 0xF4:
        m = 3
    else:
        return 0
    if p + m >= n:
        return 0
    for t in range(1, m + 1):
        if buf[p + t] & 0xC0 != 0x80:
            return 0
    c1 = buf[p + 1]
    if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 > 0x9F):
        return 0
    if (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 > 0x8F):
        return 0
    return m + 1


@nb.njit(nogil=True, cache=True, boundscheck=False)
def ligne_prudente(buf, pos, n, sep, nchamps, voulu, debuts, fins, echappe,
                    k):  # pragma: no cover - compiled
    """Field by field scan of the line starting at ``pos`` (one with quotes or CR).
    Returns its status and the position of its newline (or ``n``)."""
    st = 0
    champ = 0
    p = pos
    while True:
        d = p
        esc = 0
        if p < n and buf[p] == 34:
            p += 1
            while True:
                while p < n:
                    c = buf[p]
                    if c == 34 or c == 10 or c >= 0x80:
                        break
                    p += 1
                if p >= n or buf[p] == 10:
                    st = 3
                    break
                if buf[p] >= 0x80:
                    m = utf8(buf, p, n)
                    if m == 0:
                        st = 1
                        break
                    p += m
                    continue
                if p + 1 < n and buf[p + 1] == 34:
                    esc = 1
                    p += 2
                    continue
                break
            if st != 0:
                break
            f = p
            p += 1
            d += 1
        else:
            while True:
                while p < n:
                    c = buf[p]
                    if c == sep or c == 10 or c == 34 or c == 13 or c >= 0x80:
                        break
                    p += 1
                if p < n and buf[p] >= 0x80:
                    m = utf8(buf, p, n)
                    if m == 0:
                        st = 1
                        break
                    p += m
                    continue
                break
            if st != 0:
                break
            f = p
        if champ < nchamps:
            j = voulu[champ]
            if j >= 0:
                debuts[j, k] = d
                fins[j, k] = f
                echappe[j, k] = esc
        champ += 1
        if p >= n:
            break
        c = buf[p]
        if c == sep:
            p += 1
            continue
        if c == 10:
            break
        if c == 13 and (p + 1 >= n or buf[p + 1] == 10):
            p += 1
            break
        st = 1
        break
    if st == 0 and champ != nchamps:
        st = 1
    while p < n and buf[p] != 10:
        p += 1
    return st, p


# Index of the lowest set bit of a 64-bit word, by de Bruijn multiplication.
_DE_BRUIJN = 0x03F79D71B4CB0A89
_BIT = np.zeros(64, np.int64)
for _i in range(64):
    _BIT[((1 << _i) * _DE_BRUIJN & 0xFFFFFFFFFFFFFFFF) >> 58] = _i


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def fin_de_ligne(buf, n, pos, fin, cnt, special, haut, seps, sep, nchamps, champs_voulus,
                 colonnes_voulues, voulu, debuts, fins, echappe, prudent, statut, lignes_deb,
                 lignes_fin, k):  # pragma: no cover - compiled
    """Status of line ``k`` = ``buf[pos:fin]`` (``fin``: its newline, or ``n``), given its
    separators ``seps[:cnt]`` and whether it has a quote or CR (``special``) or a byte
    >= 0x80 (``haut``). Records the fields ``champs_voulus`` (all the wanted fields of a
    line with quotes, ``prudent[k] = 1``; ``echappe`` is only written for such lines).
    Writes its status and its bytes' bounds (end without CR) at ``k``."""
    st = 0
    f = fin
    prudent[k] = special
    if special:
        st, p = ligne_prudente(buf, pos, n, sep, nchamps, voulu, debuts, fins, echappe, k)
        f = p
        if f > pos and buf[f - 1] == 13:
            f -= 1
    elif fin == pos:
        st = 2 if nchamps > 1 else 1
    elif cnt != nchamps - 1:
        st = 1
    else:
        if haut:
            i = pos
            while i < fin:
                if buf[i] < 0x80:
                    i += 1
                    continue
                m = utf8(buf, i, n)
                if m == 0:
                    st = 1
                    break
                i += m
        if st == 0:
            for t in range(champs_voulus.shape[0]):
                ch = champs_voulus[t]
                j = colonnes_voulues[t]
                debuts[j, k] = pos if ch == 0 else seps[ch - 1] + 1
                fins[j, k] = fin if ch == nchamps - 1 else seps[ch]
    if f == pos and st != 3:
        # DuckDB skips a blank line, except in a one-column file (an empty value)
        st = 2 if nchamps > 1 else 1
    statut[k] = st
    lignes_deb[k] = pos
    lignes_fin[k] = f


@nb.njit(nogil=True, cache=True, boundscheck=False)
def scanner(buf, n, sep, nchamps, champs_voulus, colonnes_voulues, voulu, debuts, fins,
            echappe, prudent, statut, lignes_deb, lignes_fin):  # pragma: no cover - compiled
    """Scan ``buf[:n]`` (whole lines; ``buf`` 8-byte aligned). For line ``k``: its status,
    its bytes ``[lignes_deb[k], lignes_fin[k])`` (line end excluded), and for every wanted
    field (``champs_voulus[i]``, stored in row ``colonnes_voulues[i]``) its content
    ``[debuts[j, k], fins[j, k])`` (quotes excluded; ``echappe`` when doubled quotes are
    inside). Returns the number of lines, or -1 when the arrays are too small. Lines without
    quotes get only the fields ``champs_voulus`` (the others: :func:`completer`).

    The bytes are read eight at a time (SWAR: a 64-bit word gives masks of its newline,
    separator, quote, CR and high bytes without a branch per byte); only separators and
    newlines cost a step each. Lines with quotes or CR are then scanned field by field
    (:func:`ligne_prudente`), lines with bytes >= 0x80 checked as UTF-8."""
    cap = statut.shape[0]
    seps = np.empty(nchamps + 1, np.int64)
    dernier = nchamps
    uns = np.uint64(0x0101010101010101)
    hauts = np.uint64(0x8080808080808080)
    bas7 = np.uint64(0x7F7F7F7F7F7F7F7F)
    mul = np.uint64(_DE_BRUIJN)
    s58 = np.uint64(58)
    zero = np.uint64(0)
    un = np.uint64(1)
    p_nl = uns * np.uint64(10)
    p_sep = uns * np.uint64(sep)
    p_q = uns * np.uint64(34)
    p_cr = uns * np.uint64(13)
    nmots = n // 8
    mots = buf[:nmots * 8].view(np.uint64)
    k = 0
    debut = 0
    cnt = 0
    a_sp = zero
    a_hi = zero
    for wi in range(nmots):
        x = mots[wi]
        y = x ^ p_nl
        m_nl = ~((((y & bas7) + bas7) | y) | bas7)
        y = x ^ p_sep
        m_sep = ~((((y & bas7) + bas7) | y) | bas7)
        y = x ^ p_q
        m_sp = ~((((y & bas7) + bas7) | y) | bas7)
        y = x ^ p_cr
        m_sp |= ~((((y & bas7) + bas7) | y) | bas7)
        m_hi = x & hauts
        ev = m_nl | m_sep
        base = wi * 8
        while ev != zero:
            bas = ev & (~ev + un)
            e = base + (_BIT[(bas * mul) >> s58] >> 3)
            if m_nl & bas:
                if k >= cap:
                    return -1
                dessous = bas - un
                a_sp |= m_sp & dessous
                a_hi |= m_hi & dessous
                m_sp &= ~(dessous | bas)
                m_hi &= ~(dessous | bas)
                fin_de_ligne(buf, n, debut, e, cnt, a_sp != zero, a_hi != zero, seps, sep,
                             nchamps, champs_voulus, colonnes_voulues, voulu, debuts, fins,
                             echappe, prudent, statut, lignes_deb, lignes_fin, k)
                k += 1
                debut = e + 1
                cnt = 0
                a_sp = zero
                a_hi = zero
            else:
                seps[min(cnt, dernier)] = e
                cnt += 1
            ev &= ev - un
        a_sp |= m_sp
        a_hi |= m_hi
    # The last bytes (fewer than eight), one by one; then a last line without newline.
    sp = a_sp != zero
    hi = a_hi != zero
    p = nmots * 8
    while p <= n:
        if p == n and debut >= n:
            break
        c = buf[p] if p < n else 10
        if c == 10:
            if k >= cap:
                return -1
            fin_de_ligne(buf, n, debut, p, cnt, sp, hi, seps, sep, nchamps, champs_voulus,
                         colonnes_voulues, voulu, debuts, fins, echappe, prudent, statut,
                         lignes_deb, lignes_fin, k)
            k += 1
            debut = p + 1
            cnt = 0
            sp = False
            hi = False
        else:
            if c == sep:
                seps[min(cnt, dernier)] = p
                cnt += 1
            sp |= (c == 34) | (c == 13)
            hi |= c >= 0x80
        p += 1
    return k


@nb.njit(nogil=True, cache=True, boundscheck=False)
def rassembler(buf, debuts, fins, echappe, prudent, lignes, garde,
               j):  # pragma: no cover - compiled
    """Arrow buffers (offsets, data, validity bytes) of field ``j`` for the rows ``lignes``;
    a row whose ``garde`` is false, or whose field is empty, is null."""
    n = lignes.shape[0]
    total = 0
    for r in range(n):
        if garde[r]:
            k = lignes[r]
            total += fins[j, k] - debuts[j, k]
    offsets = np.empty(n + 1, np.int64)
    data = np.empty(total, np.uint8)
    valide = np.zeros(n, np.bool_)
    w = 0
    offsets[0] = 0
    for r in range(n):
        if garde[r]:
            k = lignes[r]
            d = debuts[j, k]
            f = fins[j, k]
            if f > d:
                valide[r] = True
                if prudent[k] and echappe[j, k]:
                    i = d
                    while i < f:
                        data[w] = buf[i]
                        w += 1
                        i += 2 if buf[i] == 34 else 1
                else:
                    for i in range(d, f):
                        data[w] = buf[i]
                        w += 1
        offsets[r + 1] = w
    return offsets, data[:w], valide


@nb.njit(nogil=True, cache=True, boundscheck=False)
def completer(buf, lignes, lignes_deb, lignes_fin, prudent, sep, champs, colonnes, debuts,
              fins):  # pragma: no cover - compiled
    """Record the fields ``champs`` (ascending; stored in rows ``colonnes``) of the lines
    ``lignes`` that :func:`scanner` left without them (lines without quotes: separators only)."""
    nc = champs.shape[0]
    for r in range(lignes.shape[0]):
        k = lignes[r]
        if prudent[k] or nc == 0:
            continue
        p = lignes_deb[k]
        fin = lignes_fin[k]
        champ = 0
        t = 0
        debut = p
        while t < nc:
            if p == fin or buf[p] == sep:
                if champ == champs[t]:
                    debuts[colonnes[t], k] = debut
                    fins[colonnes[t], k] = p
                    t += 1
                champ += 1
                debut = p + 1
            p += 1


@nb.njit(nogil=True, cache=True)
def remplir(cles, indices, empreintes):  # pragma: no cover - compiled
    masque = cles.shape[0] - 1
    for i in range(empreintes.shape[0]):
        h = empreintes[i]
        s = h & masque
        while indices[s] >= 0:
            s = (s + 1) & masque
        cles[s] = h
        indices[s] = i


@nb.njit(nogil=True, cache=True)
def chercher(cles, indices, empreintes, garde):  # pragma: no cover - compiled
    """Index of the value whose hash is ``empreintes[r]`` (first found), -1 if none or if
    ``garde[r]`` is false. Equal hashes of different values are told apart afterwards."""
    masque = cles.shape[0] - 1
    res = np.full(empreintes.shape[0], -1, np.int64)
    for r in range(empreintes.shape[0]):
        if not garde[r]:
            continue
        h = empreintes[r]
        s = h & masque
        while indices[s] >= 0:
            if cles[s] == h:
                res[r] = indices[s]
                break
            s = (s + 1) & masque
    return res


@nb.njit(nogil=True, cache=True)
def marquer(bits, valeurs):  # pragma: no cover - compiled
    """Set the bit of every value >= 0 (a bitmap of 10^9 bits: one per 9-digit siren)."""
    for i in range(valeurs.shape[0]):
        v = valeurs[i]
        if v >= 0:
            bits[v >> 3] |= np.uint8(1 << (v & 7))


@nb.njit(nogil=True, cache=True)
def absents(bits, valeurs):  # pragma: no cover - compiled
    """Number of values >= 0 whose bit is not set."""
    n = 0
    for i in range(valeurs.shape[0]):
        v = valeurs[i]
        if v >= 0 and not (bits[v >> 3] >> (v & 7)) & 1:
            n += 1
    return n
