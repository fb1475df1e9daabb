# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True, nonecheck=False
"""Compiled kernels of the fast CSV reader (Cython, compiled when the package is installed).

Each kernel releases the GIL while it runs, so the reader's threads scan blocks side by
side. See :mod:`essqpv.sources.lecteur` for what they are for. Array arguments are NumPy
arrays of the dtypes given in each docstring (Boolean arrays are read as bytes).
"""
import numpy as np

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

ctypedef const uint8_t[::1] Octets

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil

cdef uint64_t _UNS = 0x0101010101010101ULL
cdef uint64_t _BAS7 = 0x7F7F7F7F7F7F7F7FULL
cdef uint64_t _HAUTS = 0x8080808080808080ULL
cdef uint64_t _MELANGE = 0x9E3779B97F4A7C15ULL  # Fibonacci hashing: slot = top bits of v * this
cdef int64_t _SEIZE = 0xFFFF

# A line this long or longer is scanned field by field: the per-word counts below are
# kept modulo 2^16 (four 16-bit lanes in one 64-bit word).
LIGNE_LONGUE = 65535
cdef int64_t _LONGUE = 65535


cdef inline uint64_t _octets(const uint8_t* b) noexcept nogil:
    """Bytes of ``b[0:8]`` as a little-endian word."""
    cdef uint64_t x
    memcpy(&x, b, 8)
    return x


cdef inline int64_t _utf8(const uint8_t* buf, int64_t p, int64_t n) noexcept nogil:
    """Length of the valid UTF-8 sequence starting with a byte >= 0x80 at ``p``, else 0."""
    cdef uint8_t c = buf[p], c1
    cdef int64_t m, t
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


cdef struct Champs:
    # where the fields of a line are recorded (``debuts[j, k]`` = ``debuts[j * pas + k]``)
    int32_t* debuts
    int32_t* fins
    uint8_t* echappe
    int64_t pas


cdef int64_t _ligne_prudente(const uint8_t* buf, int64_t pos, int64_t n, uint8_t sep,
                             int64_t nchamps, const int64_t* voulu, Champs c, int64_t k,
                             int64_t* fin) noexcept nogil:
    """Field by field scan of the line starting at ``pos`` (one with quotes or CR).
    Returns its status; ``fin``: the position of its newline (or ``n``)."""
    cdef int64_t st = 0, champ = 0, p = pos, d, f = 0, m, j
    cdef uint8_t esc, ch
    while True:
        d = p
        esc = 0
        if p < n and buf[p] == 34:
            p += 1
            while True:
                while p < n:
                    ch = buf[p]
                    if ch == 34 or ch == 10 or ch >= 0x80:
                        break
                    p += 1
                if p >= n or buf[p] == 10:
                    st = 3
                    break
                if buf[p] >= 0x80:
                    m = _utf8(buf, p, n)
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
                    ch = buf[p]
                    if ch == sep or ch == 10 or ch == 34 or ch == 13 or ch >= 0x80:
                        break
                    p += 1
                if p < n and buf[p] >= 0x80:
                    m = _utf8(buf, p, n)
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
                c.debuts[j * c.pas + k] = <int32_t>d
                c.fins[j * c.pas + k] = <int32_t>f
                c.echappe[j * c.pas + k] = esc
        champ += 1
        if p >= n:
            break
        ch = buf[p]
        if ch == sep:
            p += 1
            continue
        if ch == 10:
            break
        if ch == 13 and (p + 1 >= n or buf[p + 1] == 10):
            p += 1
            break
        st = 1
        break
    if st == 0 and champ != nchamps:
        st = 1
    while p < n and buf[p] != 10:
        p += 1
    fin[0] = p
    return st


cdef inline Champs _champs_de(int32_t[:, ::1] debuts, int32_t[:, ::1] fins,
                              uint8_t[:, ::1] echappe) noexcept:
    cdef Champs c
    c.debuts = &debuts[0, 0]
    c.fins = &fins[0, 0]
    c.echappe = &echappe[0, 0]
    c.pas = debuts.shape[1]
    return c


cdef inline uint64_t _egaux(uint64_t x, uint64_t motif) noexcept nogil:
    """High bit of every byte of the word ``x`` equal to its byte in ``motif``."""
    cdef uint64_t y = x ^ motif
    return ~((((y & _BAS7) + _BAS7) | y) | _BAS7)


cdef inline uint64_t _pop(uint64_t m) noexcept nogil:
    """Number of bytes flagged in a mask of high bits (0 to 8)."""
    return ((m >> 7) * _UNS) >> 56


cdef inline uint64_t _comptes(uint64_t x, uint64_t p_sep, uint64_t p_q,
                              uint64_t p_cr) noexcept nogil:
    """The counts of separators, quotes, CR and bytes >= 0x80 of the word ``x``, one per
    16-bit lane."""
    return (_pop(_egaux(x, p_sep)) | (_pop(_egaux(x, p_q)) << 16)
            | (_pop(_egaux(x, p_cr)) << 32) | (_pop(x & _HAUTS) << 48))


cdef inline uint64_t _dessous(int64_t o) noexcept nogil:
    """Mask of the bytes below byte ``o`` (0 to 7) of a word."""
    return (<uint64_t>1 << (8 * o)) - 1


cdef inline int64_t _bit_bas(uint64_t m) noexcept nogil:
    """Byte index (0 to 7) of the lowest flagged byte of a non-zero mask."""
    return __builtin_ctzll(m) >> 3


cdef inline uint64_t _mot_final(const uint8_t* buf, int64_t n) noexcept nogil:
    """The last, partial word of ``buf[:n]``, padded with zero bytes."""
    cdef uint64_t x = 0
    cdef int64_t debut = (n // 8) * 8, p
    for p in range(debut, n):
        x |= (<uint64_t>buf[p]) << (8 * (p - debut))
    return x


cdef bint _utf8_valide(const uint8_t* buf, int64_t d, int64_t f, int64_t n) noexcept nogil:
    """Whether ``buf[d:f]`` is valid UTF-8."""
    cdef int64_t i = d, m
    while i < f:
        if buf[i] < 0x80:
            i += 1
            continue
        m = _utf8(buf, i, n)
        if m == 0:
            return False
        i += m
    return True


cdef struct Mots:
    # the words of a block: ``mot(w)`` is the ``w``-th 8 bytes (the last one padded)
    const uint8_t* buf
    int64_t nmots
    uint64_t dernier
    uint64_t* acc  # running counts at the start of each word (see ``_comptes``)


cdef inline uint64_t _mot(Mots* m, int64_t w) noexcept nogil:
    return _octets(m.buf + 8 * w) if w < m.nmots else m.dernier


cdef inline int64_t _separateur(Mots* m, int64_t wd, uint64_t md, int64_t we, int64_t sd,
                                int64_t s, uint64_t p_sep) noexcept nogil:
    """Position of the separator number ``s`` (from 0) of the line starting in word ``wd``
    (bytes below ``md`` excluded) and ending in word ``we``; ``sd``: the running count
    of separators at the line's start. The line must have more than ``s`` separators."""
    cdef int64_t lo = wd, hi = we, mid, reste, r
    cdef uint64_t msk
    while lo < hi:  # the last word before which the line has at most s separators
        mid = (lo + hi + 1) >> 1
        if ((<int64_t>(m.acc[mid] & _SEIZE)) - sd) & _SEIZE <= s:
            lo = mid
        else:
            hi = mid - 1
    msk = _egaux(_mot(m, lo), p_sep)
    if lo == wd:
        msk &= ~md
        reste = s
    else:
        reste = s - (((<int64_t>(m.acc[lo] & _SEIZE)) - sd) & _SEIZE)
    for r in range(reste):
        msk &= msk - 1
    return lo * 8 + _bit_bas(msk)


cdef inline int64_t _seps_avant(Mots* m, int64_t p, int64_t sd,
                                uint64_t p_sep) noexcept nogil:
    """Number of separators between the line's start (running count ``sd``) and ``p``."""
    cdef int64_t w = p >> 3
    return ((<int64_t>(m.acc[w] & _SEIZE))
            + <int64_t>_pop(_egaux(_mot(m, w), p_sep) & _dessous(p & 7)) - sd) & _SEIZE


cdef int64_t _ligne_guillemets(Mots* m, int64_t d, int64_t e, int64_t sd, int64_t nseps,
                               uint8_t sep, int64_t nchamps,
                               int64_t[:, ::1] zones) noexcept nogil:
    """Check the line ``buf[d:e]`` that has quotes (but no CR) from quote to quote: every
    quoted field opens at a field's start, doubles its inner quotes and closes before a
    separator or the line's end, and the separators outside quoted fields make ``nchamps``
    fields. Returns the number of quoted fields, written to ``zones`` (opening quote,
    closing quote, doubled quotes inside, separators of the line before it, separators
    inside it); -1 when anything is unusual: :func:`_ligne_prudente` then gives the verdict."""
    cdef uint64_t p_q = _UNS * 34, p_sep = _UNS * sep, ev
    cdef const uint8_t* buf = m.buf
    cdef bint dedans = False
    cdef int64_t nz = 0, ouverture = 0, esc = 0, saute = -1, interieurs = 0
    cdef int64_t wd = d >> 3, we = e >> 3, w, q, avant, n_in
    for w in range(wd, we + 1):
        ev = _egaux(_mot(m, w), p_q)
        if w == wd:
            ev &= ~_dessous(d & 7)
        if w == we:
            ev &= _dessous(e & 7)
        while ev != 0:
            q = w * 8 + _bit_bas(ev)
            ev &= ev - 1
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
            avant = _seps_avant(m, ouverture, sd, p_sep)
            n_in = _seps_avant(m, q, sd, p_sep) - avant
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


cdef void _champs(Mots* m, int64_t d, int64_t e, int64_t wd, uint64_t md, int64_t we,
                  int64_t sd, uint8_t sep, int64_t nchamps, int64_t[:, ::1] zones,
                  int64_t nz, const int64_t[::1] champs_voulus,
                  const int64_t[::1] colonnes_voulues, Champs c,
                  int64_t k) noexcept nogil:
    """Record the fields ``champs_voulus`` of the valid line ``buf[d:e]`` (its ``nz``
    quoted fields in ``zones``: see :func:`_ligne_guillemets`)."""
    cdef uint64_t p_sep = _UNS * sep
    cdef int64_t t, ch, jj, bord, s, pos, g, cumul, z, esc, dd, i
    for t in range(champs_voulus.shape[0]):
        ch = champs_voulus[t]
        jj = colonnes_voulues[t]
        i = jj * c.pas + k
        for bord in range(2):
            s = ch - 1 + bord  # the field lies between separators ch - 1 and ch
            if s < 0:
                pos = d
            elif s >= nchamps - 1:
                pos = e
            else:
                cumul = 0  # separator s outside quotes: its number among all of the line's
                for z in range(nz):
                    if s < zones[z, 3] - cumul:
                        break
                    cumul += zones[z, 4]
                g = s + cumul
                pos = _separateur(m, wd, md, we, sd, g, p_sep)
                if bord == 0:
                    pos += 1
            if bord == 0:
                c.debuts[i] = <int32_t>pos
            else:
                c.fins[i] = <int32_t>pos
        esc = 0
        dd = c.debuts[i]
        if nz and dd < c.fins[i] and m.buf[dd] == 34:  # a quoted field
            for z in range(nz):
                if zones[z, 0] == dd:
                    esc = zones[z, 2]
            c.debuts[i] = <int32_t>(dd + 1)
            c.fins[i] = c.fins[i] - 1
        c.echappe[i] = <uint8_t>esc


cdef void _comptes_mots(const uint8_t* buf, int64_t nmots, uint64_t* acc, uint8_t* drap,
                        uint64_t p_nl, uint64_t p_sep, uint64_t p_q,
                        uint64_t p_cr) noexcept nogil:
    """Counts of every whole word (no branch: the compiler vectorises this loop)."""
    cdef int64_t w
    cdef uint64_t x
    for w in range(nmots):
        x = _octets(buf + 8 * w)
        acc[w] = _comptes(x, p_sep, p_q, p_cr)
        drap[w] = _egaux(x, p_nl) != 0


def scanner(Octets buf, int64_t n, uint8_t sep, int64_t nchamps, bint crlf,
            const int64_t[::1] champs_voulus, const int64_t[::1] colonnes_voulues,
            const int64_t[::1] voulu, int32_t[:, ::1] debuts, int32_t[:, ::1] fins,
            uint8_t[:, ::1] echappe, prudent, statut, int64_t[::1] lignes_deb,
            int64_t[::1] lignes_fin, uint64_t[::1] acc, drap, int64_t[::1] mots_nl,
            int64_t cle=-1, int64_t chiffres=0, cles=None, courts=None, valeurs=None,
            longueurs=None):
    """Scan ``buf[:n]`` (whole lines). For line ``k``: its status (``statut``, int8), its
    bytes ``[lignes_deb[k], lignes_fin[k])`` (line end excluded), and for every wanted
    field (``champs_voulus[i]``, stored in row ``colonnes_voulues[i]``) its content
    ``[debuts[j, k], fins[j, k])`` (quotes excluded; ``echappe`` when doubled quotes are
    inside). Returns the number of lines, or -1 when the arrays are too small. Lines without
    quotes get only the fields ``champs_voulus`` (the others: :func:`completer`); so do lines
    with quotes (``prudent[k] = 1``, int8: their fields may need unescaping), but those read
    byte by byte (CR, too long, unusual) get every wanted field. When ``cle >= 0``, the
    field stored in row ``cle`` of a normal line is also read as a number into ``cles[k]``
    (int64): the number it writes when it is exactly ``chiffres`` ASCII digits, else -1.
    For the fields stored in the rows ``courts[t]`` (int64, at most 4; short values such as
    a state or a legal category), a normal line's value is copied, while the line is in
    cache, into ``valeurs[t, k]`` (uint64, its bytes in order) with its length in
    ``longueurs[t, k]`` (int8) when it is at most 8 bytes without doubled quotes, else
    ``longueurs[t, k] = -1`` (see :func:`rassembler`).

    Statuses: 0 normal, 1 doubtful, 2 blank (skipped), 3 a quote left open at the line's end,
    4 a line ending otherwise than the header (``crlf``: the header ends with CR LF; LF alone
    in a CR LF file, CR LF in an LF file). For 3 and 4, DuckDB reads the whole file and
    decides (it reads such files its own way, or not at all).

    ``acc`` (uint64), ``drap`` (bool), ``mots_nl`` (int64) are scratch arrays of at least
    ``n // 8 + 2`` items. The bytes are read eight at a time. A first pass, without
    branches, counts the separators, quotes, CR and bytes >= 0x80 of every word (SWAR masks)
    and flags the words holding a newline; running sums of these counts then give each
    line's counts from the two words at its ends, and the position of a wanted separator by
    bisection. Lines with quotes are checked from quote to quote (:func:`_ligne_guillemets`),
    and only lines with CR or anything unusual byte by byte (:func:`_ligne_prudente`)."""
    cdef int8_t[::1] st_ = statut
    cdef int8_t[::1] prudent_ = prudent
    cdef uint8_t[::1] drap_ = drap.view(np.uint8)
    cdef int64_t[:, ::1] zones = np.empty((64, 5), np.int64)  # the quoted fields of a line
    cdef Champs c = _champs_de(debuts, fins, echappe)
    cdef int64_t k
    cdef int64_t[::1] cles_
    cdef const int64_t[::1] courts_
    cdef uint64_t[:, ::1] valeurs_
    cdef int8_t[:, ::1] longueurs_
    cdef Extraits x
    x.cle = cle
    x.chiffres = chiffres
    x.cles = NULL
    x.ncourts = 0
    x.courts = NULL
    x.valeurs = NULL
    x.longueurs = NULL
    x.pas = st_.shape[0]
    if cle >= 0:
        cles_ = cles
        if cles_.shape[0] < st_.shape[0]:
            raise ValueError("cles: as many items as statut")
        x.cles = &cles_[0]
    if courts is not None and len(courts):
        courts_ = courts
        valeurs_ = valeurs
        longueurs_ = longueurs
        if (courts_.shape[0] > valeurs_.shape[0] or courts_.shape[0] > longueurs_.shape[0]
                or valeurs_.shape[1] != st_.shape[0] or longueurs_.shape[1] != st_.shape[0]):
            raise ValueError("valeurs, longueurs: a row of len(statut) items per short field")
        x.ncourts = courts_.shape[0]
        x.courts = &courts_[0]
        x.valeurs = &valeurs_[0, 0]
        x.longueurs = &longueurs_[0, 0]
    with nogil:
        k = _scanner(&buf[0], n, sep, nchamps, crlf, champs_voulus, colonnes_voulues,
                     &voulu[0], c, &prudent_[0], &st_[0], st_.shape[0], &lignes_deb[0],
                     &lignes_fin[0], &acc[0], &drap_[0], &mots_nl[0], zones, &x)
    return k


cdef struct Extraits:
    # values read from a normal line while it is in cache (see ``scanner``)
    int64_t cle
    int64_t chiffres
    int64_t* cles
    int64_t ncourts
    const int64_t* courts
    uint64_t* valeurs
    int8_t* longueurs
    int64_t pas


cdef inline void _extraire(const uint8_t* buf, int64_t n, Champs c, int8_t* prudent,
                           Extraits* x, int64_t k) noexcept nogil:
    """The numeric key and the short fields of the normal line ``k``."""
    cdef int64_t t, i, d, f, longueur, p
    cdef uint64_t v
    if x.cle >= 0:
        x.cles[k] = _nombre(buf, c.debuts[x.cle * c.pas + k], c.fins[x.cle * c.pas + k],
                            x.chiffres)
    for t in range(x.ncourts):
        i = x.courts[t] * c.pas + k
        d = c.debuts[i]
        f = c.fins[i]
        longueur = f - d
        if longueur > 8 or (prudent[k] and c.echappe[i]):
            x.longueurs[t * x.pas + k] = -1
            continue
        if d + 8 <= n:
            v = _octets(buf + d)
            if longueur < 8:
                v &= _dessous(longueur)
        else:
            v = 0
            for p in range(d, f):
                v |= (<uint64_t>buf[p]) << (8 * (p - d))
        x.valeurs[t * x.pas + k] = v
        x.longueurs[t * x.pas + k] = <int8_t>longueur


cdef inline int64_t _nombre(const uint8_t* buf, int64_t d, int64_t f,
                            int64_t chiffres) noexcept nogil:
    """The number written by ``buf[d:f]`` when it is exactly ``chiffres`` ASCII digits,
    else -1."""
    cdef int64_t v = 0, i, ch
    if f - d != chiffres:
        return -1
    for i in range(d, f):
        ch = <int64_t>buf[i] - 48
        if ch < 0 or ch > 9:
            return -1
        v = v * 10 + ch
    return v


cdef int64_t _scanner(const uint8_t* buf, int64_t n, uint8_t sep, int64_t nchamps, bint crlf,
                      const int64_t[::1] champs_voulus, const int64_t[::1] colonnes_voulues,
                      const int64_t* voulu, Champs c, int8_t* prudent, int8_t* statut,
                      int64_t cap, int64_t* lignes_deb, int64_t* lignes_fin, uint64_t* acc,
                      uint8_t* drap, int64_t* mots_nl, int64_t[:, ::1] zones,
                      Extraits* x) noexcept nogil:
    cdef int64_t nmots = n // 8, nw = (n + 7) // 8
    cdef uint64_t p_nl = _UNS * 10, p_sep = _UNS * sep, p_q = _UNS * 34, p_cr = _UNS * 13
    cdef uint64_t a, v, m_nl, md, xd, xe, cc, nq, ncr, nhi
    cdef int64_t j, w, i, k, debut, e, fin_ligne, wd, we, nseps, st, f, nz, sd, t, ch, jj, p
    cdef bint sans_fin, termine_cr, melangee, special
    cdef Mots m
    m.buf = buf
    m.nmots = nmots
    m.dernier = _mot_final(buf, n)
    m.acc = acc
    # Pass 1: per-word counts, then running sums (each of the 4 lanes modulo 2^16) and
    # the list of the words holding a newline.
    _comptes_mots(buf, nmots, acc, drap, p_nl, p_sep, p_q, p_cr)
    if nw > nmots:
        acc[nmots] = _comptes(m.dernier, p_sep, p_q, p_cr)
        drap[nmots] = _egaux(m.dernier, p_nl) != 0
    a = 0
    j = 0
    for w in range(nw):
        v = acc[w]
        acc[w] = a
        a += v
        mots_nl[j] = w
        j += drap[w]
    acc[nw] = a
    # Pass 2: the lines, newline by newline (and a last line without one).
    k = 0
    debut = 0
    w = 0
    sans_fin = n > 0 and buf[n - 1] != 10
    for i in range(j + 1):
        if i < j:
            w = mots_nl[i]
            m_nl = _egaux(_mot(&m, w), p_nl)
        elif sans_fin and debut < n:
            m_nl = 0
        else:
            break
        while True:
            if i < j:
                if m_nl == 0:
                    break
                e = w * 8 + _bit_bas(m_nl)
                m_nl &= m_nl - 1
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
            xd = _mot(&m, wd)
            xe = _mot(&m, we) if we < nw else 0
            cc = (acc[we] + _comptes(xe & _dessous(e & 7), p_sep, p_q, p_cr)
                  - acc[wd] - _comptes(xd & md, p_sep, p_q, p_cr))
            nseps = <int64_t>(cc & _SEIZE)
            nq = (cc >> 16) & _SEIZE
            ncr = (cc >> 32) & _SEIZE
            nhi = cc >> 48
            st = 0
            f = e
            special = ncr != 0 or nq != 0 or e - debut >= _LONGUE
            prudent[k] = special
            if melangee:
                st = 4
            elif special:
                nz = -1
                if (ncr == 0 and e - debut < _LONGUE
                        and (nhi == 0 or _utf8_valide(buf, debut, e, n))):
                    sd = <int64_t>(acc[wd] & _SEIZE) + <int64_t>_pop(_egaux(xd & md, p_sep))
                    nz = _ligne_guillemets(&m, debut, e, sd, nseps, sep, nchamps, zones)
                    if nz >= 0:
                        _champs(&m, debut, e, wd, md, we, sd, sep, nchamps, zones, nz,
                                champs_voulus, colonnes_voulues, c, k)
                if nz < 0:
                    st = _ligne_prudente(buf, debut, n, sep, nchamps, voulu, c, k, &p)
                    f = p
                    if f > debut and buf[f - 1] == 13:
                        f -= 1
            elif e == debut:
                st = 2 if nchamps > 1 else 1
            elif nseps != nchamps - 1 or (nhi != 0 and not _utf8_valide(buf, debut, e, n)):
                st = 1
            else:
                sd = <int64_t>(acc[wd] & _SEIZE) + <int64_t>_pop(_egaux(xd & md, p_sep))
                for t in range(champs_voulus.shape[0]):
                    ch = champs_voulus[t]
                    jj = colonnes_voulues[t] * c.pas + k
                    if ch == 0:
                        c.debuts[jj] = <int32_t>debut
                    else:
                        c.debuts[jj] = <int32_t>(
                            _separateur(&m, wd, md, we, sd, ch - 1, p_sep) + 1)
                    if ch == nchamps - 1:
                        c.fins[jj] = <int32_t>e
                    else:
                        c.fins[jj] = <int32_t>_separateur(&m, wd, md, we, sd, ch, p_sep)
            if f == debut and st < 3:
                # DuckDB skips a blank line, except in a one-column file (an empty value)
                st = 2 if nchamps > 1 else 1
            statut[k] = <int8_t>st
            if st == 0:
                _extraire(buf, n, c, prudent, x, k)
            lignes_deb[k] = debut
            lignes_fin[k] = f
            k += 1
            debut = fin_ligne + 1
            if i == j:
                break
    return k


def rassembler(Octets buf, const int32_t[:, ::1] debuts, const int32_t[:, ::1] fins,
               const uint8_t[:, ::1] echappe, const int8_t[::1] prudent,
               const int64_t[::1] lignes, int64_t j, valeurs=None, longueurs=None):
    """Arrow buffers (offsets int64, data uint8, validity bool) of field ``j`` for the rows
    ``lignes``; a row whose field is empty is null. For a short field the scanner copied
    (``valeurs``, ``longueurs``: its rows for that field, see :func:`scanner`), the bytes
    come from those arrays, read in order, and from the block only for the values it could
    not copy (longer than 8 bytes, doubled quotes)."""
    cdef int64_t n = lignes.shape[0], total = 0, r, k, d, f, w = 0, i, longueur
    cdef const uint64_t[::1] vals
    cdef const int8_t[::1] lons
    cdef const uint64_t* vc = NULL
    cdef const int8_t* lg = NULL
    if longueurs is not None:
        vals = valeurs
        lons = longueurs
        vc = &vals[0]
        lg = &lons[0]
    for r in range(n):
        k = lignes[r]
        total += lg[k] if lg != NULL and lg[k] >= 0 else fins[j, k] - debuts[j, k]
    offsets_ = np.empty(n + 1, np.int64)
    data_ = np.empty(total + 8, np.uint8)  # (room to write a whole copied word at the end)
    valide_ = np.zeros(n, np.bool_)
    cdef int64_t[::1] offsets = offsets_
    cdef uint8_t[::1] data = data_
    cdef uint8_t[::1] valide = valide_.view(np.uint8)
    with nogil:
        offsets[0] = 0
        for r in range(n):
            k = lignes[r]
            longueur = lg[k] if lg != NULL else -1
            if longueur >= 0:  # copied by the scanner
                if longueur:
                    valide[r] = 1
                    memcpy(&data[w], &vc[k], 8)
                    w += longueur
            else:
                d = debuts[j, k]
                f = fins[j, k]
                if f > d:
                    valide[r] = 1
                    if prudent[k] and echappe[j, k]:
                        i = d
                        while i < f:
                            data[w] = buf[i]
                            w += 1
                            i += 2 if buf[i] == 34 else 1
                    else:
                        memcpy(&data[w], &buf[d], f - d)
                        w += f - d
            offsets[r + 1] = w
    return offsets_, data_[:w], valide_


def completer(Octets buf, int64_t n, const int64_t[::1] lignes,
              const int64_t[::1] lignes_deb, const int64_t[::1] lignes_fin,
              const int8_t[::1] prudent, uint8_t sep, int64_t nchamps,
              const int64_t[::1] voulu, const int64_t[::1] champs,
              const int64_t[::1] colonnes, int32_t[:, ::1] debuts, int32_t[:, ::1] fins,
              uint8_t[:, ::1] echappe):
    """Record the fields ``champs`` (ascending; stored in rows ``colonnes``) of the lines
    ``lignes`` that :func:`scanner` left without them: separators only for lines without
    quotes; every wanted field (``voulu``) for the lines with quotes (:func:`_ligne_prudente`)."""
    cdef int64_t nc = champs.shape[0], r, k, p, fin, champ, t, debut, bidon
    cdef Champs c = _champs_de(debuts, fins, echappe)
    if nc == 0:
        return
    with nogil:
        for r in range(lignes.shape[0]):
            k = lignes[r]
            if prudent[k]:
                _ligne_prudente(&buf[0], lignes_deb[k], n, sep, nchamps, &voulu[0], c, k,
                                &bidon)
                continue
            p = lignes_deb[k]
            fin = lignes_fin[k]
            champ = 0
            t = 0
            debut = p
            while t < nc:
                if p == fin or buf[p] == sep:
                    if champ == champs[t]:
                        debuts[colonnes[t], k] = <int32_t>debut
                        fins[colonnes[t], k] = <int32_t>p
                        t += 1
                    champ += 1
                    debut = p + 1
                p += 1


def remplir(uint64_t[::1] cles, int64_t[::1] indices, const uint64_t[::1] empreintes):
    """Open-addressing table of 64-bit hashes -> index of the value (-1: empty slot)."""
    cdef uint64_t masque = cles.shape[0] - 1, h, s
    cdef int64_t i
    with nogil:
        for i in range(empreintes.shape[0]):
            h = empreintes[i]
            s = h & masque
            while indices[s] >= 0:
                s = (s + 1) & masque
            cles[s] = h
            indices[s] = i


def chercher(const uint64_t[::1] cles, const int64_t[::1] indices,
             const uint64_t[::1] empreintes, garde):
    """Index of the value whose hash is ``empreintes[r]`` (first found), -1 if none or if
    ``garde[r]`` (bool) is false. Equal hashes of different values are told apart afterwards."""
    cdef const uint8_t[::1] g = np.ascontiguousarray(garde).view(np.uint8)
    res_ = np.full(empreintes.shape[0], -1, np.int64)
    cdef int64_t[::1] res = res_
    cdef uint64_t masque = cles.shape[0] - 1, h, s
    cdef int64_t r
    with nogil:
        for r in range(empreintes.shape[0]):
            if not g[r]:
                continue
            h = empreintes[r]
            s = h & masque
            while indices[s] >= 0:
                if cles[s] == h:
                    res[r] = indices[s]
                    break
                s = (s + 1) & masque
    return res_


def remplir_entiers(int64_t[::1] table, const int64_t[::1] valeurs, int64_t decalage):
    """Open-addressing set of the values >= 0 (``table``: a power of two of slots, -1 when
    empty; the slot of ``v`` is the top bits of ``v * _MELANGE``, ``decalage`` = 64 - bits)."""
    cdef int64_t masque = table.shape[0] - 1, i, v, s
    with nogil:
        for i in range(valeurs.shape[0]):
            v = valeurs[i]
            if v < 0:
                continue
            s = <int64_t>((<uint64_t>v * _MELANGE) >> decalage)
            while table[s] >= 0 and table[s] != v:
                s = (s + 1) & masque
            table[s] = v


def dans_entiers(const int64_t[::1] table, int64_t decalage, const int64_t[::1] valeurs,
                 garde):
    """For each row: ``garde`` (bool) and its value (>= 0) is in the set
    :func:`remplir_entiers` filled (bool)."""
    cdef const uint8_t[::1] g = np.ascontiguousarray(garde).view(np.uint8)
    res_ = np.zeros(valeurs.shape[0], np.bool_)
    cdef uint8_t[::1] res = res_.view(np.uint8)
    cdef int64_t masque = table.shape[0] - 1, r, v, s
    with nogil:
        for r in range(valeurs.shape[0]):
            v = valeurs[r]
            if not g[r] or v < 0:
                continue
            s = <int64_t>((<uint64_t>v * _MELANGE) >> decalage)
            while table[s] >= 0:
                if table[s] == v:
                    res[r] = 1
                    break
                s = (s + 1) & masque
    return res_


def dans_tries(const int64_t[::1] tries, const int64_t[::1] valeurs, garde):
    """(True, for each row: ``garde`` (bool) and its value (>= 0) is in ``tries``) when the
    values >= 0 are in ascending order, as in the national stocks (sorted by siren): a
    merge with the sorted set, without the random accesses of a hash table; else
    (False, None)."""
    cdef const uint8_t[::1] g = np.ascontiguousarray(garde).view(np.uint8)
    res_ = np.zeros(valeurs.shape[0], np.bool_)
    cdef uint8_t[::1] res = res_.view(np.uint8)
    cdef int64_t n = valeurs.shape[0], nt = tries.shape[0], r, v, prec = -1, lo, hi, mid
    cdef int64_t j = -1
    cdef bint ordonne = True
    with nogil:
        for r in range(n):
            v = valeurs[r]
            if v < 0:
                continue
            if v < prec:
                ordonne = False
                break
            prec = v
            if j < 0:  # the first value: its place in ``tries`` by bisection
                lo = 0
                hi = nt
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if tries[mid] < v:
                        lo = mid + 1
                    else:
                        hi = mid
                j = lo
            while j < nt and tries[j] < v:
                j += 1
            if g[r] and j < nt and tries[j] == v:
                res[r] = 1
    if not ordonne:
        return False, None
    return True, res_


def marquer(uint8_t[::1] bits, const int64_t[::1] valeurs):
    """Set the bit of every value >= 0 (a bitmap of 10^9 bits: one per 9-digit siren)."""
    cdef int64_t i, v
    with nogil:
        for i in range(valeurs.shape[0]):
            v = valeurs[i]
            if v >= 0:
                bits[v >> 3] |= <uint8_t>(1 << (v & 7))


def absents(const uint8_t[::1] bits, const int64_t[::1] valeurs):
    """Number of values >= 0 whose bit is not set."""
    cdef int64_t n = 0, i, v
    with nogil:
        for i in range(valeurs.shape[0]):
            v = valeurs[i]
            if v >= 0 and not (bits[v >> 3] >> (v & 7)) & 1:
                n += 1
    return n


def absents_tries(const int64_t[::1] u, const int64_t[::1] a):
    """Number of values of ``a`` not in ``u``, by merging, when both are sorted (as the
    national stocks are, by siren); -1 when one of them is not sorted."""
    cdef int64_t i, j = 0, n = 0, v
    with nogil:
        for i in range(1, u.shape[0]):
            if u[i] < u[i - 1]:
                n = -1
        for i in range(1, a.shape[0]):
            if a[i] < a[i - 1]:
                n = -1
    if n < 0:
        return -1
    with nogil:
        for i in range(a.shape[0]):
            v = a[i]
            while j < u.shape[0] and u[j] < v:
                j += 1
            if j == u.shape[0] or u[j] != v:
                n += 1
    return n


def premieres_lignes(const int64_t[::1] cles, garder):
    """(True, the rows where ``garder`` (bool) is true and that are the first of their key),
    when the keys >= 0 are sorted and every kept row has one; else (False, nothing)."""
    cdef const uint8_t[::1] g = np.ascontiguousarray(garder).view(np.uint8)
    rangs_ = np.empty(cles.shape[0], np.int64)
    cdef int64_t[::1] rangs = rangs_
    cdef int64_t m = 0, precedente = -1, i, c
    cdef bint trie = True
    with nogil:
        for i in range(cles.shape[0]):
            c = cles[i]
            if c < 0:
                if g[i]:
                    trie = False
                    break
                continue
            if c < precedente:
                trie = False
                break
            if c != precedente and g[i]:
                rangs[m] = i
                m += 1
            precedente = c
    if not trie:
        return False, rangs_[:0]
    return True, rangs_[:m]
