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


@nb.njit(nogil=True, cache=True, boundscheck=False)
def scanner(buf, n, sep, nchamps, champs_voulus, colonnes_voulues, voulu, debuts, fins,
             echappe, statut, lignes_deb, lignes_fin):  # pragma: no cover - compiled
    """Scan ``buf[:n]`` (whole lines). For line ``k``: its status, its bytes
    ``[lignes_deb[k], lignes_fin[k])`` (line end excluded), and for every wanted field
    (``champs_voulus[i]``, stored in row ``colonnes_voulues[i]``) its content
    ``[debuts[j, k], fins[j, k])`` (quotes excluded; ``echappe`` when doubled quotes are
    inside). Returns the number of lines, or -1 when the arrays are too small.

    Most lines have no quote and no CR: one branch-free pass notes where their separators
    are; only lines with quotes or CR are scanned field by field."""
    cap = statut.shape[0]
    seps = np.empty(nchamps + 1, np.int64)
    dernier = nchamps
    pos = 0
    k = 0
    while pos < n:
        if k >= cap:
            return -1
        lignes_deb[k] = pos
        p = pos
        cnt = 0
        special = 0
        haut = 0
        while p < n:
            c = buf[p]
            if c == 10:
                break
            seps[min(cnt, dernier)] = p
            cnt += c == sep
            special |= (c == 34) | (c == 13)
            haut |= c >= 0x80
            p += 1
        fin = p
        st = 0
        if special:
            st, p = ligne_prudente(buf, pos, n, sep, nchamps, voulu, debuts, fins, echappe,
                                    k)
            fin = p
            if fin > pos and buf[fin - 1] == 13:
                fin -= 1
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
                    echappe[j, k] = 0
        if fin == pos and st != 3:
            # DuckDB skips a blank line, except in a one-column file (an empty value)
            st = 2 if nchamps > 1 else 1
        lignes_fin[k] = fin
        statut[k] = st
        k += 1
        pos = p + 1
    return k


@nb.njit(nogil=True, cache=True, boundscheck=False)
def rassembler(buf, debuts, fins, echappe, lignes, garde, j):  # pragma: no cover - compiled
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
                if echappe[j, k]:
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
