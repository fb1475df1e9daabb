"""Compiled kernels of the fast CSV reader (numba, ``nogil``: they run in threads).

Imported only when a file is read: the rest of the package starts without numba. See
:mod:`essqpv.sources.lecteur` for what they are for.
"""
from __future__ import annotations

import gc
import sys

import numba as nb
import numpy as np


def _registres_sans_blas() -> None:
    """Load numba's typing registries now, without letting them import SciPy's BLAS.

    On the first compilation or cache load, numba imports ``numba.np.arraymath``, which
    imports ``scipy.linalg`` only to know whether ``np.dot`` and the like can call BLAS:
    0.3-0.4 s of every run that reads a file. These kernels use no linear algebra, so the
    import is made to fail for that one check (numba then reports BLAS as absent), and
    undone at once: the rest of the process imports SciPy as usual.
    """
    if "scipy.linalg.cython_blas" in sys.modules:  # already imported: nothing to save
        import numba.np.arraymath
        return
    sys.modules["scipy.linalg.cython_blas"] = None  # type: ignore[assignment]
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules["scipy.linalg.cython_blas"]


_registres_sans_blas()
# numba's own objects (its typing registries: hundreds of thousands of them) live as long as
# the process: moved out of the garbage collector's sight, they no longer slow down each of
# its full passes, nor the exit (by 0.2 s).
gc.freeze()


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

_UNS = np.uint64(0x0101010101010101)
_BAS7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HAUTS = np.uint64(0x8080808080808080)
_SEIZE = 0xFFFF
# A line this long or longer is scanned field by field: the per-word counts below are
# kept modulo 2^16 (four 16-bit lanes in one 64-bit word).
LIGNE_LONGUE = 65535


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _egaux(x, motif):  # pragma: no cover - compiled
    """High bit of every byte of the word ``x`` equal to its byte in ``motif``."""
    y = x ^ motif
    return ~((((y & _BAS7) + _BAS7) | y) | _BAS7)


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _pop(m):  # pragma: no cover - compiled
    """Number of bytes flagged in a mask of high bits (0 to 8)."""
    return ((m >> np.uint64(7)) * _UNS) >> np.uint64(56)


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _comptes(x, p_sep, p_q, p_cr):  # pragma: no cover - compiled
    """The counts of separators, quotes, CR and bytes >= 0x80 of the word ``x``, one per
    16-bit lane."""
    return (_pop(_egaux(x, p_sep)) | (_pop(_egaux(x, p_q)) << np.uint64(16))
            | (_pop(_egaux(x, p_cr)) << np.uint64(32))
            | (_pop(x & _HAUTS) << np.uint64(48)))


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _dessous(o):  # pragma: no cover - compiled
    """Mask of the bytes below byte ``o`` (0 to 7) of a word."""
    return (np.uint64(1) << np.uint64(8 * o)) - np.uint64(1)


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _bit_bas(m):  # pragma: no cover - compiled
    """Byte index (0 to 7) of the lowest flagged byte of a non-zero mask."""
    b = m & (~m + np.uint64(1))
    return _BIT[(b * np.uint64(_DE_BRUIJN)) >> np.uint64(58)] >> 3


@nb.njit(nogil=True, cache=True, boundscheck=False)
def _mot_final(buf, n):  # pragma: no cover - compiled
    """The last, partial word of ``buf[:n]``, padded with zero bytes."""
    x = np.uint64(0)
    debut = (n // 8) * 8
    for p in range(debut, n):
        x |= np.uint64(buf[p]) << np.uint64(8 * (p - debut))
    return x


@nb.njit(nogil=True, cache=True, boundscheck=False)
def _utf8_valide(buf, d, f, n):  # pragma: no cover - compiled
    """Whether ``buf[d:f]`` is valid UTF-8."""
    i = d
    while i < f:
        if buf[i] < 0x80:
            i += 1
            continue
        m = utf8(buf, i, n)
        if m == 0:
            return False
        i += m
    return True


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _separateur(mots, dernier, nmots, acc, wd, md, we, sd, s, p_sep):  # pragma: no cover
    """Position of the separator number ``s`` (from 0) of the line starting in word ``wd``
    (bytes below ``md`` excluded) and ending in word ``we``; ``sd``: the running count
    of separators at the line's start. The line must have more than ``s`` separators."""
    lo = wd
    hi = we
    while lo < hi:  # the last word before which the line has at most s separators
        mid = (lo + hi + 1) >> 1
        if (np.int64(acc[mid] & np.uint64(_SEIZE)) - sd) & _SEIZE <= s:
            lo = mid
        else:
            hi = mid - 1
    x = mots[lo] if lo < nmots else dernier
    m = _egaux(x, p_sep)
    if lo == wd:
        m &= ~md
        reste = s
    else:
        reste = s - ((np.int64(acc[lo] & np.uint64(_SEIZE)) - sd) & _SEIZE)
    for _ in range(reste):
        m &= m - np.uint64(1)
    return lo * 8 + _bit_bas(m)


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _seps_avant(mots, dernier, nmots, acc, p, sd, p_sep):  # pragma: no cover - compiled
    """Number of separators between the line's start (running count ``sd``) and ``p``."""
    w = p >> 3
    x = mots[w] if w < nmots else dernier
    return (np.int64(acc[w] & np.uint64(_SEIZE)) + np.int64(_pop(_egaux(x, p_sep)
                                                                 & _dessous(p & 7))) - sd) & _SEIZE


@nb.njit(nogil=True, cache=True, boundscheck=False)
def _ligne_guillemets(buf, mots, dernier, nmots, acc, d, e, sd, nseps, sep, nchamps,
                      zones):  # pragma: no cover - compiled
    """Check the line ``buf[d:e]`` that has quotes (but no CR) from quote to quote: every
    quoted field opens at a field's start, doubles its inner quotes and closes before a
    separator or the line's end, and the separators outside quoted fields make ``nchamps``
    fields. Returns the number of quoted fields, written to ``zones`` (opening quote,
    closing quote, doubled quotes inside, separators of the line before it, separators
    inside it); -1 when anything is unusual: :func:`ligne_prudente` then gives the verdict."""
    p_q = _UNS * np.uint64(34)
    p_sep = _UNS * np.uint64(sep)
    un = np.uint64(1)
    dedans = False
    nz = 0
    ouverture = 0
    esc = 0
    saute = -1  # the second quote of a doubled one
    interieurs = 0
    wd = d >> 3
    we = e >> 3
    for w in range(wd, we + 1):
        x = mots[w] if w < nmots else dernier
        ev = _egaux(x, p_q)
        if w == wd:
            ev &= ~_dessous(d & 7)
        if w == we:
            ev &= _dessous(e & 7)
        while ev != np.uint64(0):
            q = w * 8 + _bit_bas(ev)
            ev &= ev - un
            if q == saute:
                continue
            if not dedans:
                if q != d and buf[q - 1] != sep:  # a quote inside an unquoted field
                    return -1
                dedans = True
                ouverture = q
                esc = 0
                continue
            if q + 1 < e and buf[q + 1] == 34:
                saute = q + 1
                esc = 1
                continue
            if q + 1 != e and buf[q + 1] != sep:  # only a separator may follow
                return -1
            if nz == zones.shape[0]:
                return -1
            avant = _seps_avant(mots, dernier, nmots, acc, ouverture, sd, p_sep)
            n_in = _seps_avant(mots, dernier, nmots, acc, q, sd, p_sep) - avant
            zones[nz, 0] = ouverture
            zones[nz, 1] = q
            zones[nz, 2] = esc
            zones[nz, 3] = avant
            zones[nz, 4] = n_in
            interieurs += n_in
            nz += 1
            dedans = False
    if dedans or nseps - interieurs != nchamps - 1:
        return -1
    return nz


@nb.njit(nogil=True, cache=True, boundscheck=False)
def _champs(buf, mots, dernier, nmots, acc, d, e, wd, md, we, sd, sep, nchamps, zones, nz,
            champs_voulus, colonnes_voulues, debuts, fins, echappe,
            k):  # pragma: no cover - compiled
    """Record the fields ``champs_voulus`` of the valid line ``buf[d:e]`` (its ``nz``
    quoted fields in ``zones``: see :func:`_ligne_guillemets`)."""
    p_sep = _UNS * np.uint64(sep)
    for t in range(champs_voulus.shape[0]):
        ch = champs_voulus[t]
        jj = colonnes_voulues[t]
        for bord in range(2):
            s = ch - 1 + bord  # the field lies between separators ch - 1 and ch
            if s < 0:
                pos = d
            elif s >= nchamps - 1:
                pos = e
            else:
                g = s  # separator s outside quotes: its number among all of the line's
                cumul = 0
                for z in range(nz):
                    if s < zones[z, 3] - cumul:
                        break
                    cumul += zones[z, 4]
                g = s + cumul
                pos = _separateur(mots, dernier, nmots, acc, wd, md, we, sd, g, p_sep)
                if bord == 0:
                    pos += 1
            if bord == 0:
                debuts[jj, k] = pos
            else:
                fins[jj, k] = pos
        esc = 0
        dd = debuts[jj, k]
        if nz and dd < fins[jj, k] and buf[dd] == 34:  # a quoted field
            for z in range(nz):
                if zones[z, 0] == dd:
                    esc = zones[z, 2]
            debuts[jj, k] = dd + 1
            fins[jj, k] = fins[jj, k] - 1
        echappe[jj, k] = esc


@nb.njit(nogil=True, cache=True, boundscheck=False)
def _comptes_mots(mots, acc, drap, p_nl, p_sep, p_q, p_cr):  # pragma: no cover - compiled
    """Counts of every whole word (no branch: the compiler vectorises this loop)."""
    for w in range(mots.shape[0]):
        x = mots[w]
        acc[w] = _comptes(x, p_sep, p_q, p_cr)
        drap[w] = _egaux(x, p_nl) != np.uint64(0)


@nb.njit(nogil=True, cache=True, boundscheck=False)
def scanner(buf, n, sep, nchamps, crlf, champs_voulus, colonnes_voulues, voulu, debuts, fins,
            echappe, prudent, statut, lignes_deb, lignes_fin, acc, drap,
            mots_nl):  # pragma: no cover - compiled
    """Scan ``buf[:n]`` (whole lines; ``buf`` 8-byte aligned). For line ``k``: its status,
    its bytes ``[lignes_deb[k], lignes_fin[k])`` (line end excluded), and for every wanted
    field (``champs_voulus[i]``, stored in row ``colonnes_voulues[i]``) its content
    ``[debuts[j, k], fins[j, k])`` (quotes excluded; ``echappe`` when doubled quotes are
    inside). Returns the number of lines, or -1 when the arrays are too small. Lines without
    quotes get only the fields ``champs_voulus`` (the others: :func:`completer`); so do lines
    with quotes (``prudent[k] = 1``: their fields may need unescaping), but those read byte by
    byte (CR, too long, unusual) get every wanted field.

    Statuses: 0 normal, 1 doubtful, 2 blank (skipped), 3 a quote left open at the line's end,
    4 a line ending otherwise than the header (``crlf``: the header ends with CR LF; LF alone
    in a CR LF file, CR LF in an LF file). For 3 and 4, DuckDB reads the whole file and
    decides (it reads such files its own way, or not at all).

    ``acc``, ``drap``, ``mots_nl`` are scratch arrays of at least ``n // 8 + 2`` items.
    The bytes are read eight at a time. A first pass, without branches, counts the
    separators, quotes, CR and bytes >= 0x80 of every word (SWAR masks) and flags the words
    holding a newline; running sums of these counts then give each line's counts from the
    two words at its ends, and the position of a wanted separator by bisection. Lines with
    quotes are checked from quote to quote (:func:`_ligne_guillemets`), and only lines with
    CR or anything unusual byte by byte (:func:`ligne_prudente`)."""
    cap = statut.shape[0]
    nmots = n // 8
    nw = (n + 7) // 8
    mots = buf[:nmots * 8].view(np.uint64)
    p_nl = _UNS * np.uint64(10)
    p_sep = _UNS * np.uint64(sep)
    p_q = _UNS * np.uint64(34)
    p_cr = _UNS * np.uint64(13)
    zero = np.uint64(0)
    un = np.uint64(1)
    seize = np.uint64(_SEIZE)
    # Pass 1: per-word counts, then running sums (each of the 4 lanes modulo 2^16) and
    # the list of the words holding a newline.
    _comptes_mots(mots, acc, drap, p_nl, p_sep, p_q, p_cr)
    dernier = _mot_final(buf, n)
    if nw > nmots:
        acc[nmots] = _comptes(dernier, p_sep, p_q, p_cr)
        drap[nmots] = _egaux(dernier, p_nl) != zero
    a = zero
    j = 0
    for w in range(nw):
        v = acc[w]
        acc[w] = a
        a += v
        if drap[w]:
            mots_nl[j] = w
            j += 1
    acc[nw] = a
    # Pass 2: the lines, newline by newline (and a last line without one).
    zones = np.empty((64, 5), np.int64)  # the quoted fields of a line
    k = 0
    debut = 0
    w = 0
    sans_fin = n > 0 and buf[n - 1] != 10
    for i in range(j + 1):
        if i < j:
            w = mots_nl[i]
            m_nl = _egaux(mots[w] if w < nmots else dernier, p_nl)
        elif sans_fin and debut < n:
            m_nl = zero
        else:
            break
        while True:
            if i < j:
                if m_nl == zero:
                    break
                e = w * 8 + _bit_bas(m_nl)
                m_nl &= m_nl - un
            else:
                e = n
            if k >= cap:
                return -1
            fin_ligne = e  # its newline (or n)
            melangee = False
            if i < j:
                termine_cr = e > debut and buf[e - 1] == 13
                if termine_cr and crlf:
                    e -= 1  # CR LF: the line's bytes end before the CR
                elif termine_cr or crlf:
                    melangee = True
            # the counts of the line [debut, e), from the running sums at its two ends
            wd = debut >> 3
            we = e >> 3
            md = _dessous(debut & 7)
            xd = mots[wd] if wd < nmots else dernier
            xe = (mots[we] if we < nmots else dernier) if we < nw else zero
            c = (acc[we] + _comptes(xe & _dessous(e & 7), p_sep, p_q, p_cr)
                 - acc[wd] - _comptes(xd & md, p_sep, p_q, p_cr))
            nseps = np.int64(c & seize)
            nq = (c >> np.uint64(16)) & seize
            ncr = (c >> np.uint64(32)) & seize
            nhi = c >> np.uint64(48)
            st = 0
            f = e
            special = ncr != zero or nq != zero or e - debut >= LIGNE_LONGUE
            prudent[k] = special
            if melangee:
                st = 4
            elif special:
                nz = -1
                if (ncr == zero and e - debut < LIGNE_LONGUE
                        and (nhi == zero or _utf8_valide(buf, debut, e, n))):
                    sd = np.int64(acc[wd] & seize) + np.int64(_pop(_egaux(xd & md, p_sep)))
                    nz = _ligne_guillemets(buf, mots, dernier, nmots, acc, debut, e, sd,
                                           nseps, sep, nchamps, zones)
                    if nz >= 0:
                        _champs(buf, mots, dernier, nmots, acc, debut, e, wd, md, we, sd, sep,
                                nchamps, zones, nz, champs_voulus, colonnes_voulues, debuts,
                                fins, echappe, k)
                if nz < 0:
                    st, p = ligne_prudente(buf, debut, n, sep, nchamps, voulu, debuts, fins,
                                           echappe, k)
                    f = p
                    if f > debut and buf[f - 1] == 13:
                        f -= 1
            elif e == debut:
                st = 2 if nchamps > 1 else 1
            elif nseps != nchamps - 1 or (nhi != zero and not _utf8_valide(buf, debut, e, n)):
                st = 1
            else:
                sd = np.int64(acc[wd] & seize) + np.int64(_pop(_egaux(xd & md, p_sep)))
                for t in range(champs_voulus.shape[0]):
                    ch = champs_voulus[t]
                    jj = colonnes_voulues[t]
                    if ch == 0:
                        debuts[jj, k] = debut
                    else:
                        debuts[jj, k] = _separateur(mots, dernier, nmots, acc, wd, md, we,
                                                    sd, ch - 1, p_sep) + 1
                    if ch == nchamps - 1:
                        fins[jj, k] = e
                    else:
                        fins[jj, k] = _separateur(mots, dernier, nmots, acc, wd, md, we,
                                                  sd, ch, p_sep)
            if f == debut and st < 3:
                # DuckDB skips a blank line, except in a one-column file (an empty value)
                st = 2 if nchamps > 1 else 1
            statut[k] = st
            lignes_deb[k] = debut
            lignes_fin[k] = f
            k += 1
            debut = fin_ligne + 1
            if i == j:
                break
    return k


@nb.njit(nogil=True, cache=True, boundscheck=False)
def rassembler(buf, debuts, fins, echappe, prudent, lignes, j):  # pragma: no cover - compiled
    """Arrow buffers (offsets, data, validity bytes) of field ``j`` for the rows ``lignes``;
    a row whose field is empty is null."""
    n = lignes.shape[0]
    total = 0
    for r in range(n):
        k = lignes[r]
        total += fins[j, k] - debuts[j, k]
    offsets = np.empty(n + 1, np.int64)
    data = np.empty(total, np.uint8)
    valide = np.zeros(n, np.bool_)
    w = 0
    offsets[0] = 0
    for r in range(n):
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
def completer(buf, n, lignes, lignes_deb, lignes_fin, prudent, sep, nchamps, voulu, champs,
              colonnes, debuts, fins, echappe):  # pragma: no cover - compiled
    """Record the fields ``champs`` (ascending; stored in rows ``colonnes``) of the lines
    ``lignes`` that :func:`scanner` left without them: separators only for lines without
    quotes; every wanted field (``voulu``) for the lines with quotes (:func:`ligne_prudente`)."""
    nc = champs.shape[0]
    for r in range(lignes.shape[0]):
        k = lignes[r]
        if nc == 0:
            continue
        if prudent[k]:
            ligne_prudente(buf, lignes_deb[k], n, sep, nchamps, voulu, debuts, fins, echappe, k)
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


@nb.njit(nogil=True, cache=True)
def absents_tries(u, a):  # pragma: no cover - compiled
    """Number of values of ``a`` not in ``u``, by merging, when both are sorted (as the
    national stocks are, by siren); -1 when one of them is not sorted."""
    for i in range(1, u.shape[0]):
        if u[i] < u[i - 1]:
            return -1
    for i in range(1, a.shape[0]):
        if a[i] < a[i - 1]:
            return -1
    n = 0
    j = 0
    for i in range(a.shape[0]):
        v = a[i]
        while j < u.shape[0] and u[j] < v:
            j += 1
        if j == u.shape[0] or u[j] != v:
            n += 1
    return n


@nb.njit(nogil=True, cache=True)
def premieres_lignes(cles, garder):  # pragma: no cover - compiled
    """(True, the rows where ``garder`` is true and that are the first of their key), when
    the keys >= 0 are sorted and every kept row has one; else (False, nothing)."""
    rangs = np.empty(cles.shape[0], np.int64)
    m = 0
    precedente = -1
    for i in range(cles.shape[0]):
        c = cles[i]
        if c < 0:
            if garder[i]:
                return False, rangs[:0]
            continue
        if c < precedente:
            return False, rangs[:0]
        if c != precedente and garder[i]:
            rangs[m] = i
            m += 1
        precedente = c
    return True, rangs[:m]
