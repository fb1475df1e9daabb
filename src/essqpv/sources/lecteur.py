"""Fast and exact reading of the Sirene CSV files.

The national files are read in blocks of whole lines, by two threads. A compiled scanner
(Cython, releasing the GIL) checks every line against the strict form of RFC 4180 (exactly
the header's number of fields, quotes only around a whole field with inner quotes doubled,
valid UTF-8, LF or CRLF line ends) and notes where the fields the pipeline needs start and
end. Lines of that form are the whole of a normal file; their values are then copied into
Arrow columns, and only for the rows a later stage can use (``garder``).

Every other line is *doubtful* and is not judged here: its bytes go, with the header, to
DuckDB's CSV reader in strict mode, which accepts it (it then takes its place in the file's
order) or rejects it with a reason. So the verdicts on malformed lines are DuckDB's, while the
parsing of the millions of normal lines costs a fraction of DuckDB's. A line that leaves a
quote open (a field spanning several lines), or that DuckDB reads as doing so (each doubtful
line is followed by a sentinel line in what DuckDB reads: see ``sirene._juger``), sends the
whole file to DuckDB, which reads such records.

The compiled kernels are in :mod:`essqpv.sources._noyaux` (``_noyaux.pyx``, built when the
package is installed).

Public verbs: :func:`lire` (used by :func:`essqpv.sources.sirene.convertir`),
:class:`Condition`.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

__all__ = ["CLES_NUMERIQUES", "TAILLE_BLOC", "Bloc", "ChampOuvert", "Condition",
           "LigneDouteuse", "avec_cles", "cle_et_reste", "lire", "numpy_de", "tableau",
           "texte_cle"]

TAILLE_BLOC = 16 << 20  # bytes read per block (whole lines)
_COURTS = 4  # columns read for every row that the scanner copies itself (see _Lecteur)

# Identifiers read for every row of a thinned file (``toujours``) are stored as numbers: the
# column ``_cle_siren`` (int64) holds the siren when it is exactly nine ASCII digits, else
# -1, and ``siren`` keeps the text of the others only (NULL for the numbers). Tens of
# millions of sirens then cost 8 bytes each, are compared as numbers, and never parsed
# again; :func:`texte_cle` gives the text back.
CLES_NUMERIQUES = {"siren": 9}


def cle_et_reste(colonne: str, chiffres: int) -> tuple[pl.Expr, pl.Expr]:
    """Polars expressions of the numeric key of a text column (its number when it is exactly
    ``chiffres`` ASCII digits, else -1) and of its rest (the text when there is no number)."""
    nombre = pl.col(colonne).str.contains(f"^[0-9]{{{chiffres}}}$").fill_null(False)
    return (pl.when(nombre).then(pl.col(colonne).cast(pl.Int64)).otherwise(-1)
            .alias(f"_cle_{colonne}"),
            pl.when(~nombre).then(pl.col(colonne)).alias(colonne))


def texte_cle(colonne: str, chiffres: int) -> pl.Expr:
    """The text of a column stored as a numeric key and its rest (:data:`CLES_NUMERIQUES`)."""
    cle = pl.col(f"_cle_{colonne}")
    return (pl.when(cle >= 0).then(cle.cast(pl.String).str.zfill(chiffres))
            .otherwise(pl.col(colonne)).alias(colonne))


def avec_cles(cadre: pl.DataFrame, cles: dict[str, int]) -> pl.DataFrame:
    """``cadre`` (text) with each column of ``cles`` stored as a key and its rest."""
    for colonne, chiffres in cles.items():
        cadre = cadre.with_columns(*cle_et_reste(colonne, chiffres))
    return cadre

# Line statuses written by the scanner.
_NORMALE, _DOUTEUSE, _VIDE, _OUVERTE, _MELANGEE = 0, 1, 2, 3, 4


class ChampOuvert(Exception):
    """A quote is still open at the end of a line, or a line ends otherwise than the header
    (``fins_melangees``): the file needs DuckDB's record-aware reader. ``ligne``: the
    physical line (header = 1) where it was seen."""

    def __init__(self, indice: int = 0, fins_melangees: bool = False) -> None:
        super().__init__()
        self.indice = indice  # in its block, until :func:`lire` knows the block's first line
        self.ligne = 0
        self.fins_melangees = fins_melangees


def tableau(x: np.ndarray, valide: np.ndarray | None = None) -> pa.Array:
    """A NumPy array of int64 or Booleans as an Arrow array (``valide``: False where null).

    Built from its buffers, not by ``pa.array``: that one's first call imports pandas when
    it is installed (0.3 s of a run that never uses it); so does pyarrow's ``to_numpy``
    (see :func:`numpy_de`)."""
    masque = None if valide is None else pa.py_buffer(np.packbits(valide, bitorder="little"))
    nuls = 0 if valide is None else int(len(valide) - valide.sum())
    if x.dtype == np.bool_:
        return pa.Array.from_buffers(pa.bool_(), len(x), [masque, pa.py_buffer(
            np.packbits(x, bitorder="little"))], null_count=nuls)
    return pa.Array.from_buffers(pa.int64(), len(x), [masque, pa.py_buffer(
        np.ascontiguousarray(x, np.int64))], null_count=nuls)


def numpy_de(colonne: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column of numbers or Booleans without nulls as a NumPy array (through polars:
    see :func:`tableau`)."""
    return pl.from_arrow(colonne).to_numpy()


def _colonne_arrow(offsets: np.ndarray, data: np.ndarray, valide: np.ndarray) -> pa.Array:
    n = len(valide)
    masque = pa.py_buffer(np.packbits(valide, bitorder="little"))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data),
                                            masque, null_count=int(n - valide.sum()))


@dataclass
class LigneDouteuse:
    """A line the scanner did not accept as normal: its index in the block and its bytes."""

    indice: int
    contenu: bytes


@dataclass
class Bloc:
    """What a block of lines gives: its number of lines, its normal rows (file order,
    ``_indice`` = line index in the block; when thinned, only the columns of ``toujours``
    and ``_garder``), the kept ones among them with every column (when thinned), and its
    doubtful lines."""

    lignes: int
    normales: pa.Table
    douteuses: list[LigneDouteuse]
    gardees: pa.Table | None = None


class Condition:
    """Which rows a later stage can use (see :func:`essqpv.sources.sirene.convertir`).

    ``expr`` is any polars condition on the file's columns; ``dans = (colonne, valeurs)``
    adds "and ``colonne`` is one of ``valeurs``" for a large set of values (the sirens of
    the ESS legal units, the sirets of their establishments): its lookup table is built
    once, not at every block. For a column of :data:`CLES_NUMERIQUES`, the values that are
    numbers go in a table of numbers (looked up with the column's key, whether the rows come
    with it or as text), the others are compared as text; for any other column, the table
    holds 64-bit hashes and the value itself decides.
    """

    def __init__(self, expr: pl.Expr | None = None,
                 dans: tuple[str, pl.Series] | None = None) -> None:
        self.expr = expr
        self.colonne = None
        self.chiffres: int | None = None
        self.colonnes = list(expr.meta.root_names()) if expr is not None else []
        if dans is not None:
            self.colonne, valeurs = dans
            valeurs = valeurs.cast(pl.String).drop_nulls().unique()
            self.chiffres = CLES_NUMERIQUES.get(self.colonne)
            if self.chiffres:
                cles = pl.DataFrame({self.colonne: valeurs}).select(
                    *cle_et_reste(self.colonne, self.chiffres))
                nombres = cles[f"_cle_{self.colonne}"]
                self._tries = nombres.filter(nombres >= 0).unique().sort().to_numpy()
                self._entiers = _table_entiers(self._tries)
                self._valeurs = cles[self.colonne].drop_nulls()
            else:
                self._valeurs = valeurs
                self._table = _table_hachage(valeurs.hash(seed=_GRAINE).to_numpy())
            if self.colonne not in self.colonnes:
                self.colonnes.append(self.colonne)

    def evaluer(self, cadre: pl.DataFrame) -> np.ndarray:
        """One Boolean per row of ``cadre`` (null counts as false)."""
        from essqpv.sources import _noyaux as K
        n = cadre.height
        if self.expr is not None:
            # (an identifier stored as a key is seen as text by the expression)
            textes = [texte_cle(c, k) for c, k in CLES_NUMERIQUES.items()
                      if f"_cle_{c}" in cadre.columns and c in self.expr.meta.root_names()]
            vue = cadre.with_columns(textes) if textes else cadre
            res = vue.select(self.expr.fill_null(False).alias("_c")).to_series()
            garde = res.to_numpy().astype(np.bool_, copy=True) if res.len() == n else \
                np.full(n, bool(res[0]) if res.len() else False)
        else:
            garde = np.ones(n, np.bool_)
        if self.colonne is not None and n and self.chiffres:
            cle = f"_cle_{self.colonne}"
            if cle not in cadre.columns:  # rows read as text (by DuckDB)
                cadre = avec_cles(cadre.select(self.colonne), {self.colonne: self.chiffres})
            nombres = cadre[cle].to_numpy()
            autres = garde & (nombres < 0)
            # merged with the sorted set when the rows come sorted (the national stocks),
            # else looked up in the hash table
            trie, dedans = K.dans_tries(self._tries, nombres, garde)
            garde = dedans if trie else K.dans_entiers(*self._entiers, nombres, garde)
            if autres.any():  # the rest (not numbers), as text
                texte = (cadre[self.colonne].is_in(self._valeurs.implode())
                         .fill_null(False).to_numpy())
                garde |= autres & texte
        elif self.colonne is not None and n:
            x = cadre[self.colonne]
            i = K.chercher(self._table[0], self._table[1], x.hash(seed=_GRAINE).to_numpy(),
                          garde)
            candidats = i >= 0
            # the hash only proposes: the value itself decides (and nulls are out)
            egal = (self._valeurs.gather(i[candidats]) == x.filter(pl.Series(candidats))) \
                .fill_null(False).to_numpy()
            garde = candidats
            garde[np.flatnonzero(candidats)[~egal]] = False
        return garde


_GRAINE = 20240101


def _table_hachage(empreintes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Open-addressing table of 64-bit hashes -> index of the value (-1: empty slot)."""
    from essqpv.sources import _noyaux as K
    taille = 1 << max(4, int(2 * len(empreintes)).bit_length())
    cles = np.zeros(taille, np.uint64)
    indices = np.full(taille, -1, np.int64)
    K.remplir(cles, indices, empreintes.astype(np.uint64, copy=False))
    return cles, indices


def _table_entiers(valeurs: np.ndarray) -> tuple[np.ndarray, int]:
    """Set of the numbers >= 0 of ``valeurs`` (see :func:`_noyaux.remplir_entiers`)."""
    from essqpv.sources import _noyaux as K
    bits = max(4, int(2 * len(valeurs)).bit_length())
    table = np.full(1 << bits, -1, np.int64)
    K.remplir_entiers(table, valeurs.astype(np.int64, copy=False), 64 - bits)
    return table, 64 - bits


class _Lecteur:
    """Reads the blocks of one file and turns each into a :class:`Bloc`."""

    def __init__(self, colonnes_fichier: list[str], colonnes: list[str], separateur: str,
                 garder: Condition | None, toujours: tuple[str, ...],
                 crlf: bool = False) -> None:
        self.nchamps = len(colonnes_fichier)
        self.crlf = crlf  # the header line ends with CR LF
        self.sep = ord(separateur)
        presentes = [c for c in colonnes if c in colonnes_fichier]
        self.presentes = presentes
        self.voulu = np.full(self.nchamps, -1, np.int64)
        for j, c in enumerate(presentes):
            self.voulu[colonnes_fichier.index(c)] = j
        self.garder = garder
        self._local = threading.local()
        self._capacite = 4096  # lines per block, learnt from the blocks read
        # Columns read for every row: those ``garder`` looks at (``racines``), and
        # ``toujours`` (the only ones written for every row).
        if garder is None:
            self.racines: list[str] = []
            self.toujours = set(presentes)
        else:
            self.racines = [c for c in garder.colonnes if c in presentes]
            self.toujours = set(toujours) & set(presentes)
        # Those of them stored as numeric keys (see :data:`CLES_NUMERIQUES`).
        self.cles = {c: CLES_NUMERIQUES[c] for c in presentes
                     if c in CLES_NUMERIQUES and c in self.toujours and garder is not None}
        # (the scanner reads one of them as a number, line by line)
        assert len(self.cles) <= 1, "une seule clé numérique par fichier"
        self._cle = next(((presentes.index(c), n) for c, n in self.cles.items()), (-1, 0))
        # The other columns read for every row (a state, a legal category...: short values)
        # are copied by the scanner while the line is in cache (up to _COURTS of them).
        self.courts = [c for c in presentes if c not in self.cles
                       and (c in self.toujours or c in self.racines)][:_COURTS]
        self._courts = np.array([presentes.index(c) for c in self.courts], np.int64)
        # Fields located by the scanner on every line (the others, only on kept lines).
        tous = np.flatnonzero(self.voulu >= 0).astype(np.int64)
        a_lire = self.toujours | set(self.racines)
        d_abord = np.array([presentes[self.voulu[c]] in a_lire for c in tous], bool)
        self.champs_voulus, self.colonnes_voulues = tous[d_abord], self.voulu[tous[d_abord]]
        self.champs_ensuite = tous[~d_abord]
        self.colonnes_ensuite = self.voulu[self.champs_ensuite]

    def _brouillons(self, cap: int) -> tuple:
        """This thread's scratch arrays, at least ``cap`` lines long (reused from block to
        block: fresh pages cost as much as the scan)."""
        b = getattr(self._local, "b", None)
        if b is None or b[3].shape[0] < cap:
            w = max(1, len(self.presentes))
            b = (np.zeros((w, cap), np.int32), np.zeros((w, cap), np.int32),
                 np.zeros((w, cap), np.uint8), np.empty(cap, np.int8),
                 np.empty(cap, np.int64), np.empty(cap, np.int64), np.zeros(cap, np.int8),
                 np.empty(cap, np.int64), np.empty((_COURTS, cap), np.uint64),
                 np.empty((_COURTS, cap), np.int8))
            self._local.b = b
        return b

    def _mots(self, n: int) -> tuple:
        """This thread's per-word scratch arrays for a block of ``n`` bytes."""
        m = getattr(self._local, "m", None)
        if m is None or m[0].shape[0] < n // 8 + 2:
            t = n // 8 + 2
            m = (np.empty(t, np.uint64), np.empty(t, np.bool_), np.empty(t, np.int64))
            self._local.m = m
        return m

    def bloc(self, tampon: np.ndarray, n: int) -> Bloc:
        from essqpv.sources import _noyaux as K
        # Room for as many lines as the last block had (plus a margin); the scanner says
        # when that is not enough, and the block is scanned again with twice the room.
        cap = max(self._capacite, n // 128)
        while True:
            (debuts, fins, echappe, statut, ldeb, lfin, prudent, cles, valeurs,
             longueurs) = self._brouillons(cap)
            k = K.scanner(tampon, n, self.sep, self.nchamps, self.crlf, self.champs_voulus,
                          self.colonnes_voulues, self.voulu, debuts, fins, echappe, prudent,
                          statut, ldeb, lfin, *self._mots(n), *self._cle, cles, self._courts,
                          valeurs, longueurs)
            if k >= 0:
                break
            cap = 2 * statut.shape[0]
        self._capacite = max(self._capacite, int(k * 1.25) + 1024)
        st = statut[:k]
        if (st >= _OUVERTE).any():
            i = int(np.flatnonzero(st >= _OUVERTE)[0])
            raise ChampOuvert(i, bool(st[i] == _MELANGEE))
        normales = np.flatnonzero(st == _NORMALE)
        douteuses = [LigneDouteuse(int(i), bytes(tampon[ldeb[i]:lfin[i]]))
                     for i in np.flatnonzero(st == _DOUTEUSE)]
        cols: dict[str, pa.Array] = {}
        for j, c in enumerate(self.presentes):
            if c in self.cles:  # (read as a number by the scanner)
                cle = cles[normales]
                cols[f"_cle_{c}"] = tableau(cle)
                cols[c] = self._reste(tampon, debuts, fins, echappe, prudent, normales, j, cle)
            elif c in self.courts:
                t = self.courts.index(c)
                cols[c] = _colonne_arrow(*K.rassembler(
                    tampon, debuts, fins, echappe, prudent, normales, j, valeurs[t],
                    longueurs[t]))
            elif c in self.toujours or c in self.racines:
                cols[c] = _colonne_arrow(*K.rassembler(tampon, debuts, fins, echappe, prudent,
                                                       normales, j))
        indices = tableau(normales)
        if self.garder is None:
            cols["_indice"] = indices
            return Bloc(k, pa.table(cols), douteuses)
        vus = [x for c in self.racines for x in ((f"_cle_{c}", c) if c in self.cles else (c,))]
        cadre = pl.from_arrow(pa.table({c: cols[c] for c in vus})) \
            if self.racines else pl.DataFrame(height=len(normales))
        garde = self.garder.evaluer(cadre)
        # The kept rows: their other fields are located now, and every column is built
        # for them alone.
        gardees = normales[garde]
        K.completer(tampon, n, gardees, ldeb, lfin, prudent, self.sep, self.nchamps,
                    self.voulu, self.champs_ensuite, self.colonnes_ensuite, debuts, fins,
                    echappe)
        rangs = tableau(np.flatnonzero(garde))
        g = {}
        for j, c in enumerate(self.presentes):
            g[c] = cols[c].take(rangs) if c in cols and c not in self.cles else \
                _colonne_arrow(*K.rassembler(tampon, debuts, fins, echappe, prudent, gardees, j))
        g["_indice"] = tableau(gardees)
        principal = {x: cols[x] for c in self.presentes if c in self.toujours
                     for x in ((f"_cle_{c}", c) if c in self.cles else (c,))}
        principal["_garder"] = tableau(garde)
        principal["_indice"] = indices
        return Bloc(k, pa.table(principal), douteuses, pa.table(g))

    @staticmethod
    def _reste(tampon, debuts, fins, echappe, prudent, normales, j, cle) -> pa.Array:
        """The text of field ``j`` where it is not a number (``cle < 0``), else NULL."""
        from essqpv.sources import _noyaux as K
        autres = np.flatnonzero(cle < 0)
        if not len(autres):
            return pa.nulls(len(cle), pa.large_string())
        textes = _colonne_arrow(*K.rassembler(tampon, debuts, fins, echappe, prudent,
                                              normales[autres], j))
        ou = np.full(len(cle), -1, np.int64)
        ou[autres] = np.arange(len(autres))
        return textes.take(tableau(ou, valide=ou >= 0))


def _blocs(chemin: Path, taille: int, libres: queue.Queue):
    """Yield (numpy buffer, length) of successive blocks of whole lines, header skipped.
    Buffers are taken from ``libres`` (given back there once a block is read)."""
    marge = 1 << 21
    with open(chemin, "rb", buffering=0) as flux:
        entete = b""
        while b"\n" not in entete:
            morceau = flux.read(1 << 16)
            if not morceau:
                return
            entete += morceau
        reste = entete[entete.index(b"\n") + 1:]
        while True:
            if len(reste) <= marge:
                tampon = libres.get()
            else:  # a line longer than a block: a buffer of its own
                tampon = np.empty(taille + len(reste), np.uint8)
            tampon[:len(reste)] = np.frombuffer(reste, np.uint8)
            lu = flux.readinto(memoryview(tampon)[len(reste):len(reste) + taille])
            n = len(reste) + lu
            if n == 0:
                return
            if lu == 0:
                yield tampon, n
                return
            # back to the last newline; the rest starts the next block
            dernier = -1
            fin = n
            while fin > 0:
                debut = max(0, fin - (1 << 16))
                trouves = np.flatnonzero(tampon[debut:fin] == 10)
                if len(trouves):
                    dernier = debut + int(trouves[-1])
                    break
                fin = debut
            if dernier < 0:  # no newline in the whole block: keep reading the line
                reste = bytes(tampon[:n])
                if tampon.shape[0] == taille + marge:
                    libres.put(tampon)
                continue
            reste = bytes(tampon[dernier + 1:n])
            yield tampon, dernier + 1


def _numeros(table: pa.Table, premiere: int) -> pa.Table:
    """``_indice`` (line index in the block) replaced by ``_ligne`` (physical line)."""
    lignes = tableau(numpy_de(table["_indice"]) + premiere)
    return table.drop_columns(["_indice"]).append_column("_ligne", lignes)


def _inserer(table: pa.Table, acceptees: pl.DataFrame) -> pa.Table:
    """``table`` with the rows ``acceptees`` (doubtful lines DuckDB accepted) at their
    place in the file (``_ligne``)."""
    cadre = pl.from_arrow(table)
    return (pl.concat([cadre, acceptees.select(cadre.columns)], how="vertical_relaxed")
            .sort("_ligne").to_arrow())


def lire(csv: Path, colonnes_fichier: list[str], colonnes: list[str], separateur: str,
         garder: Condition | None, toujours: tuple[str, ...], juger, ecrire,
         taille: int = TAILLE_BLOC, fils: int = 2, numeroter: bool = False) -> int:
    """Read ``csv`` block by block; for each block, in file order, call
    ``juger(douteuses, premiere_ligne)`` (DuckDB's verdict on the doubtful lines: returns a
    frame of accepted rows with ``_ligne``, thinned as :func:`sirene._amincir` does) and
    ``ecrire(table, gardees)`` (``gardees``: None, or the kept rows with every column and
    ``_rang``, their row number in ``table``). Physical line numbers
    count the header as line 1; ``numeroter`` keeps each row's in a column ``_ligne``.
    Returns the number of lines read.

    Raises :class:`ChampOuvert` when a quoted field spans lines, or when a line does not end
    as the header does (CR LF or LF).
    """
    with open(csv, "rb") as flux:  # the header's line end is the file's
        crlf = flux.readline(1 << 20).endswith(b"\r\n")
    lecteur = _Lecteur(colonnes_fichier, colonnes, separateur, garder, toujours, crlf)
    libres: queue.Queue = queue.Queue()
    for _ in range(fils + 2):
        libres.put(np.empty(taille + (1 << 21), np.uint8))

    def traiter(tampon: np.ndarray, n: int) -> Bloc:
        try:
            return lecteur.bloc(tampon, n)
        finally:
            if tampon.shape[0] == taille + (1 << 21):
                libres.put(tampon)

    premiere = 2
    en_cours: list = []
    ecritures: list = []
    with ThreadPoolExecutor(max_workers=fils) as pool, \
            ThreadPoolExecutor(max_workers=1) as ecrivain:
        blocs = _blocs(csv, taille, libres)
        try:
            # At most ``fils + 1`` blocks in flight: bounded memory, both cores busy.
            for _ in range(fils + 1):
                b = next(blocs, None)
                if b is None:
                    break
                en_cours.append(pool.submit(traiter, *b))
            while en_cours:
                try:
                    bloc: Bloc = en_cours.pop(0).result()
                except ChampOuvert as exc:
                    exc.ligne = premiere + exc.indice
                    raise
                b = next(blocs, None)
                if b is not None:
                    en_cours.append(pool.submit(traiter, *b))
                table = _numeros(bloc.normales, premiere)
                gardees = _numeros(bloc.gardees, premiere) if bloc.gardees is not None \
                    else None
                if bloc.douteuses:
                    acceptees = juger(bloc.douteuses, premiere)
                    if acceptees is not None and acceptees.height:
                        table = _inserer(table, avec_cles(acceptees, lecteur.cles))
                        if gardees is not None:
                            gardees = _inserer(gardees, acceptees.filter(pl.col("_garder")))
                if gardees is not None:  # row number of each kept row in ``table``
                    rangs = np.searchsorted(numpy_de(table.column("_ligne")),
                                            numpy_de(gardees.column("_ligne")))
                    gardees = gardees.drop_columns(["_ligne"]).append_column(
                        "_rang", tableau(rangs))
                if not numeroter:
                    table = table.drop_columns(["_ligne"])
                # Written by a thread of its own, in order (Arrow releases the GIL).
                ecritures.append(ecrivain.submit(ecrire, table, gardees))
                while ecritures and (ecritures[0].done() or len(ecritures) > fils + 1):
                    ecritures.pop(0).result()
                premiere += bloc.lignes
            for f in ecritures:
                f.result()
        finally:
            for f in en_cours:
                f.cancel()
    return premiere - 2
