"""Reading the Sirene CSV files, every physical line accounted for.

The files are read in blocks of whole lines (:data:`TAILLE_BLOC` bytes) by a pool of threads;
each block is parsed by **pyarrow's CSV reader** (``pyarrow.csv``, C++, releasing the GIL),
every column as text, only the columns asked for. Before pyarrow sees a block, a short
examination finds the few lines it could misread, with byte searches that cost little on a
normal file (``bytes.find``/``count``, Arrow's UTF-8 validation):

- **undecodable bytes** (not UTF-8): the line is rejected (``octets_non_decodables``);
- **quotes**: each line holding a ``"`` is checked against the strict form of RFC 4180 by
  Python's :mod:`csv` module (``strict=True``; a quote inside an unquoted field is a literal
  quote, as DuckDB and Python read it). A line that leaves a quoted field open may be the
  start of a legitimate multi-line record: it is joined with the next lines while the record
  stays within :data:`SUITE_MAX_LIGNES` lines and :data:`SUITE_MAX_OCTETS` bytes; if it then
  closes with the header's number of fields, the record is kept and its extra lines counted
  as *continuation lines*; otherwise **only that line** is rejected
  (``guillemets_invalides``) and reading resumes at the next line start, so one stray quote
  never swallows the rest of a file and later line numbers stay true;
- **a carriage return not followed by a line feed** (pyarrow would end a row there): the line
  is rejected (``retour_chariot_isole``);
- **blank lines**: skipped and counted.

Those lines are taken out of the block; pyarrow then rejects, through its invalid-row
handler, each record without the header's number of fields (``champs_manquants``,
``champs_en_trop``). Every reject carries its **physical line number** (the header is line
1) and its bytes unchanged, and each block's lines add up exactly::

    lines = kept rows + rejected + blank + continuation lines   (checked for every block)

Public API (also for other loaders of the project):

- :func:`lire`: the streaming reader (thinning with :class:`Condition`, callbacks per block);
- :func:`lire_cadre`: a whole small file as a polars frame, with its :class:`Lecture`;
- :class:`Rejet`, :class:`Lecture`, :class:`Condition`, :data:`MOTIFS`.
"""
from __future__ import annotations

import csv
import io
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = ["CHIFFRES_RECHERCHE", "CLES_NUMERIQUES", "MOTIFS", "SUITE_MAX_LIGNES",
           "SUITE_MAX_OCTETS", "TAILLE_BLOC", "Condition", "Lecture", "Rejet", "avec_cles",
           "cle_et_reste", "cle_numerique", "indice_encodage", "lire", "lire_cadre",
           "numpy_de", "tableau", "texte_cle"]

TAILLE_BLOC = 16 << 20  # bytes read per block (whole lines)
SUITE_MAX_LIGNES = 8  # lines a quoted field may span
SUITE_MAX_OCTETS = 64 << 10  # bytes a multi-line record may hold
PART_LECTURE_LARGE = 0.3  # kept share above which a thinned block is parsed whole at once

# Reject reasons (French slugs, stable: they are public).
MOTIFS = {
    "champs_manquants": "moins de champs que l'en-tête",
    "champs_en_trop": "plus de champs que l'en-tête",
    "octets_non_decodables": "octets qui ne sont pas de l'UTF-8",
    "guillemets_invalides": "guillemet ouvert jamais refermé, ou mal placé (RFC 4180)",
    "retour_chariot_isole": "retour chariot (CR) non suivi d'un saut de ligne",
    "siret_en_double": "siret déjà vu plus haut dans le fichier (la première ligne est gardée)",
    "siren_en_double": "siren déjà vu plus haut dans le fichier (la première ligne est gardée)",
}

# Identifiers read for every row of a thinned file (``toujours``) are stored as numbers: the
# column ``_cle_siren`` (int64) holds the siren when it is exactly nine ASCII digits, else
# -1, and ``siren`` keeps the text of the others only (NULL for the numbers). Tens of
# millions of sirens then cost 8 bytes each, are compared as numbers, and never parsed
# again; :func:`texte_cle` gives the text back.
CLES_NUMERIQUES = {"siren": 9}


@dataclass
class Rejet:
    """A malformed line: physical line number (header = 1), reason, bytes unchanged."""

    ligne: int
    motif: str
    contenu: bytes


@dataclass
class Lecture:
    """What reading a file gave, in physical lines (the header is line 1).

    ``lignes`` = 1 (header) + ``acceptees`` + ``len(rejets)`` + ``vides`` + ``suites``
    (continuation lines of the multi-line records kept), checked as the file is read.
    """

    lignes: int = 1
    acceptees: int = 0
    rejets: list[Rejet] = field(default_factory=list)
    vides: int = 0
    suites: int = 0

    @property
    def equilibree(self) -> bool:
        return self.lignes == 1 + self.acceptees + len(self.rejets) + self.vides + self.suites


def indice_encodage(rejets: list[Rejet]) -> str | None:
    """A French hint when the undecodable lines look like Latin-1 / Windows-1252 text (the
    file was re-saved by a spreadsheet or an old tool), else None."""
    octets = [r.contenu for r in rejets if r.motif == "octets_non_decodables"]
    if not octets:
        return None
    accents = re.compile(rb"[\xc0-\xff]")
    latins = sum(1 for b in octets if accents.search(b) and _decode_cp1252(b))
    if latins >= max(1, len(octets) // 2):
        return (f"{latins} ligne(s) sur {len(octets)} rejetées pour l'encodage se lisent en "
                "Latin-1 / Windows-1252 : le fichier a sans doute été réenregistré par un "
                "tableur ; les fichiers Sirene sont publiés en UTF-8 (réencodez-le, par "
                "exemple : iconv -f WINDOWS-1252 -t UTF-8).")
    return None


def _decode_cp1252(b: bytes) -> bool:
    try:
        b.decode("cp1252")
        return True
    except UnicodeDecodeError:
        return False


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


def tableau(x: np.ndarray, valide: np.ndarray | None = None) -> pa.Array:
    """A NumPy array of int64 or Booleans as an Arrow array (``valide``: False where null).

    Built from its buffers, not by ``pa.array``: that one's first call imports pandas when
    it is installed (0.3 s of a run that never uses it)."""
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


# Identifiers a large set of values is looked up in (``Condition(dans=...)``) as numbers
# when they are exactly this many ASCII digits: a sorted NumPy array and a binary search per
# block instead of a hash set of texts (the rest, if any, is looked up as text).
CHIFFRES_RECHERCHE = {"siren": 9, "siret": 14}


def _un_morceau(colonne: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An Arrow column as one array (a chunked one combined)."""
    if isinstance(colonne, pa.ChunkedArray):
        return colonne.combine_chunks() if colonne.num_chunks != 1 else colonne.chunk(0)
    return colonne


_TEXTES = (pa.large_string(), pa.string(), pa.large_binary(), pa.binary())


def _scalaire(valeur: int | bool) -> pa.Scalar:
    """An Arrow scalar (int64 or Boolean) built from an array, not by ``pa.scalar``: Arrow
    compute calls given a Python value convert it by ``pa.scalar``, whose first call imports
    pandas when it is installed (≈ 0.2 s of CPU in a build that never uses it)."""
    return tableau(np.array([valeur], np.bool_ if isinstance(valeur, bool) else np.int64))[0]


def cle_numerique(colonne: pa.Array | pa.ChunkedArray, chiffres: int) -> np.ndarray:
    """The numeric key of each value of an Arrow text column: its number when it is exactly
    ``chiffres`` ASCII digits, else -1 (null too): the same keys as :func:`cle_et_reste`,
    by Arrow's compute functions (no regular expression per value; every value given to
    them an Arrow scalar, see :func:`_scalaire`)."""
    import pyarrow.compute as pc
    colonne = _un_morceau(colonne)
    if not len(colonne):
        return np.zeros(0, np.int64)
    if colonne.type not in _TEXTES:  # (string views of polars...)
        colonne = colonne.cast(pa.large_string())
    nombre = pc.and_kleene(pc.equal(pc.binary_length(colonne), _scalaire(chiffres)),
                           pc.ascii_is_decimal(colonne)).fill_null(_scalaire(False))
    cles = pc.if_else(nombre, colonne, pa.nulls(1, colonne.type)[0]).cast(pa.int64())
    return numpy_de(cles.fill_null(_scalaire(-1)))


def reste_de_cle(colonne: pa.Array | pa.ChunkedArray, cle: np.ndarray) -> pa.Array:
    """The text of ``colonne`` where ``cle`` (:func:`cle_numerique`) is -1, else null."""
    import pyarrow.compute as pc
    colonne = _un_morceau(colonne)
    if (cle >= 0).all():
        return pa.nulls(len(colonne), colonne.type)
    return pc.if_else(tableau(cle < 0), colonne, pa.nulls(len(colonne), colonne.type))


def _uniques_tries(x: np.ndarray) -> np.ndarray:
    """The distinct values of an integer array, sorted (``np.unique`` is far slower here)."""
    x = np.sort(x)
    if len(x) < 2:
        return x
    return x[np.append(True, x[1:] != x[:-1])]


class Condition:
    """Which rows a later stage can use (see :func:`essqpv.sources.sirene.convertir`).

    ``expr`` is any polars condition on the file's columns; ``dans = (colonne, valeurs)``
    adds "and ``colonne`` is one of ``valeurs``" for a large set of values (the sirens of
    the ESS legal units, the sirets of their establishments). For a column of
    :data:`CHIFFRES_RECHERCHE` (siren, siret), the values that are numbers are looked up as
    numbers (a binary search in their sorted array), the others as text.
    """

    def __init__(self, expr: pl.Expr | None = None,
                 dans: tuple[str, pl.Series] | None = None) -> None:
        self.expr = expr
        self.colonne = None
        self.chiffres: int | None = None
        self.colonnes = list(expr.meta.root_names()) if expr is not None else []
        self._expr_colonnes = list(self.colonnes)
        if dans is not None:
            self.colonne, valeurs = dans
            valeurs = valeurs.cast(pl.String).drop_nulls().unique()
            self.chiffres = CHIFFRES_RECHERCHE.get(self.colonne)
            if self.chiffres:
                cles = cle_numerique(valeurs.to_arrow(), self.chiffres)
                self._triees = _uniques_tries(cles[cles >= 0])
                self._valeurs = valeurs.filter(pl.Series(cles < 0)).implode()
                self._textes = int(valeurs.len() - int((cles >= 0).sum()))
            else:
                self._valeurs = valeurs.implode()
            if self.colonne not in self.colonnes:
                self.colonnes.append(self.colonne)

    def _dans_cles(self, cle: np.ndarray) -> np.ndarray:
        """Whether each numeric key (-1: none) is one of the values."""
        t = self._triees
        if not len(t):
            return np.zeros(len(cle), np.bool_)
        pos = np.minimum(np.searchsorted(t, cle), len(t) - 1)
        return t[pos] == cle

    def evaluer_table(self, table: pa.Table,
                      cles: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """One Boolean per row of an Arrow table of text columns (null counts as false);
        ``cles``: numeric keys already computed (:func:`cle_numerique`), by column."""
        n = table.num_rows
        if self.expr is None and self.colonne is None:
            return np.ones(n, np.bool_)
        if not n:
            return np.zeros(0, np.bool_)
        res = np.ones(n, np.bool_)
        if self.expr is not None:
            vue = pl.from_arrow(table.select(self._expr_colonnes)) if self._expr_colonnes \
                else pl.DataFrame(height=n)
            e = vue.select(self.expr.fill_null(False).alias("_c")).to_series()
            res &= (np.full(n, bool(e[0])) if e.len() != n
                    else e.to_numpy().astype(np.bool_, copy=False))
        if self.colonne is not None and self.chiffres:
            cle = (cles or {}).get(self.colonne)
            if cle is None:
                cle = cle_numerique(table.column(self.colonne), self.chiffres)
            dans = self._dans_cles(cle)
            if self._textes and (cle < 0).any():
                autres = np.flatnonzero(cle < 0)
                textes = pl.from_arrow(table.column(self.colonne).take(tableau(autres)))
                dans[autres] = textes.is_in(self._valeurs).fill_null(False).to_numpy()
            res &= dans
        elif self.colonne is not None:
            s = pl.from_arrow(table.column(self.colonne))
            res &= s.is_in(self._valeurs).fill_null(False).to_numpy()
        return res

    def evaluer(self, cadre: pl.DataFrame) -> np.ndarray:
        """One Boolean per row of ``cadre`` (text columns; an identifier of
        :data:`CLES_NUMERIQUES` may be stored as a key and a rest)."""
        textes = [texte_cle(c, k) for c, k in CLES_NUMERIQUES.items()
                  if f"_cle_{c}" in cadre.columns]
        if textes:
            cadre = cadre.with_columns(textes)
        return self.evaluer_table(cadre.select([c for c in self.colonnes
                                                if c in cadre.columns]).to_arrow())


# --------------------------------------------------------------------------- examination


@dataclass
class _Examen:
    """A block after examination: the bytes pyarrow reads, what was taken out, and how its
    records map to physical lines."""

    tampon: bytes
    lignes: int  # physical lines of the block (its unresolved tail excluded)
    rejets: list[Rejet]
    vides: int
    suites: int
    multiligne: bool
    # record index -> offset: physical line of record r = premiere + r + decalage
    rangs: np.ndarray
    decalages: np.ndarray
    reste: bytes = b""  # a record still open at the end of the block (read with the next)
    fins: np.ndarray | None = None  # the line ends of ``brut``
    brut: bytes = b""  # the block as given

    def ligne(self, premiere: int, records: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self.rangs, records, side="right") - 1
        return premiere + records + self.decalages[i]


def _lignes_a_guillemets(blk: bytes, octets: np.ndarray, fins: np.ndarray, sep: str,
                         douteuses: dict[int, int]) -> None:
    """Note in ``douteuses`` the lines holding a quote that are not of the strict form
    (``octets``: the block as an array; ``fins``: its line ends).

    Vectorised first: in most lines every quoted field is simple (an opening quote at a
    field's start, the closing one before a separator or the line's end, none inside), and
    then the quotes of a line alternate between those two kinds. The other lines (doubled
    quotes, literal quotes, quotes left open) are checked by :func:`_forme_stricte`.
    """
    n = len(blk)
    q = np.flatnonzero(octets == 34)
    c = ord(sep)
    # Doubled quotes after a character that is not a separator (``a""b``: an escaped quote
    # in a quoted field, or two literal quotes in an unquoted one) do not change the form:
    # they are set aside. A line with three quotes in a row goes to the regular expression.
    suivi = np.zeros(len(q), np.bool_)  # followed by a quote
    suivi[:-1] = q[1:] == q[:-1] + 1
    precede = np.zeros(len(q), np.bool_)
    precede[1:] = suivi[:-1]
    triple = suivi & precede
    paire = suivi & ~precede
    avant_paire = np.where(q > 0, octets[np.maximum(q - 1, 0)], 10)
    ecart = paire & (avant_paire != c) & (avant_paire != 10)
    ecart[1:] |= ecart[:-1] & suivi[:-1]
    mauvaises = np.searchsorted(fins, q[triple])
    q = q[~ecart]
    ligne = np.searchsorted(fins, q)
    nouveau = np.ones(len(q), np.bool_)
    nouveau[1:] = ligne[1:] != ligne[:-1]
    premier = np.maximum.accumulate(np.where(nouveau, np.arange(len(q)), 0))
    rang = np.arange(len(q)) - premier
    avant = np.where(q > 0, octets[np.maximum(q - 1, 0)], 10)
    apres = np.where(q < n - 1, octets[np.minimum(q + 1, n - 1)], 10)
    ouvrante = (avant == c) | (avant == 10)
    fermante = (apres == c) | (apres == 13) | (apres == 10)
    bon = np.where(rang % 2 == 0, ouvrante, fermante)
    # a line ending with an opening quote: its last quote has an even rank
    dernier = np.ones(len(q), np.bool_)
    dernier[:-1] = nouveau[1:]
    bon &= ~(dernier & (rang % 2 == 0))
    stricte = _forme_stricte(sep).fullmatch
    for numero in np.union1d(ligne[~bon], mauvaises):
        d = int(fins[numero - 1]) + 1 if numero > 0 else 0
        f = int(fins[numero]) if numero < len(fins) else n
        if not stricte(blk, d, f):
            douteuses[d] = f


@lru_cache(maxsize=None)
def _forme_stricte(sep: str) -> re.Pattern:
    """A line of the strict form of RFC 4180: fields quoted whole (inner quotes doubled, no
    line end inside) or unquoted (not starting with a quote; a later quote is literal),
    ending with an optional CR."""
    s = re.escape(sep.encode())
    champ = rb'(?:"(?:[^"\r\n]|"")*"|[^' + s + rb'"\r\n][^' + s + rb'\r\n]*|)'
    return re.compile(champ + rb"(?:" + s + champ + rb")*\r?")


def _verdict(texte: str, sep: str, nchamps: int) -> str:
    """``ok`` (strict RFC 4180, any field count), ``ouvert`` (a quoted field left open at
    the end), ``invalide``; ``compte`` when closed but not ``nchamps`` fields (multi-line)."""
    try:
        champs = next(csv.reader((texte,), delimiter=sep, quotechar='"', doublequote=True,
                                 strict=True), [])
    except csv.Error as exc:
        return "ouvert" if "unexpected end of data" in str(exc) else "invalide"
    return "ok" if len(champs) == nchamps or "\n" not in texte else "compte"


def _examiner(blk: bytes, premiere: int, sep: str, nchamps: int, final: bool) -> _Examen:
    """Find and take out of ``blk`` (whole lines, starting at physical line ``premiere``) the
    lines pyarrow could misread (see the module's docstring)."""
    n = len(blk)
    octets = np.frombuffer(blk, np.uint8)
    fins = np.flatnonzero(octets == 10)  # line ends
    lignes = len(fins) + (1 if n and not blk.endswith(b"\n") else 0)
    douteuses: dict[int, int] = {}  # line start -> line end (position of its LF, or n)

    def noter(p: int) -> None:
        d = blk.rfind(b"\n", 0, p) + 1
        if d not in douteuses:
            f = blk.find(b"\n", p)
            douteuses[d] = n if f < 0 else f

    if b'"' in blk:
        _lignes_a_guillemets(blk, octets, fins, sep, douteuses)
    if len(fins):  # blank lines: an LF (or CR LF) right after a line end
        debuts = np.empty(len(fins), np.int64)
        debuts[0] = 0
        debuts[1:] = fins[:-1] + 1
        longueurs = fins - debuts
        blanches = longueurs == 0
        un = np.flatnonzero(longueurs == 1)
        blanches[un] = octets[debuts[un]] == 13
        for i in np.flatnonzero(blanches):
            douteuses.setdefault(int(debuts[i]), int(fins[i]))
    if b"\r" in blk:  # a CR not followed by LF (but at the very end)
        cr = np.flatnonzero(octets == 13)
        cr = cr[cr < n - 1]
        for p in cr[octets[cr + 1] != 10]:
            noter(int(p))
    mal_codees: set[int] = set()
    if not blk.isascii() and not _utf8_valide(blk):
        d = 0
        for brut in blk.split(b"\n"):
            try:
                brut.decode("utf-8")
            except UnicodeDecodeError:
                mal_codees.add(d)
                douteuses.setdefault(d, d + len(brut))
            d += len(brut) + 1
    if not douteuses:
        return _Examen(blk, lignes, [], 0, 0, False, np.zeros(1, np.int64),
                       np.zeros(1, np.int64), b"", fins, blk)

    rejets: list[Rejet] = []
    retirees: list[tuple[int, int]] = []  # byte ranges taken out
    rangs, decalages = [0], [0]
    vides = suites = 0
    multiligne = False
    consomme = 0  # bytes up to here belong to a record already judged
    reste = b""
    for d in sorted(douteuses):
        if d < consomme:
            continue
        f = douteuses[d]
        indice = int(np.searchsorted(fins, d))
        ligne = premiere + indice
        contenu = blk[d:f].removesuffix(b"\r")
        # record index of this line (lines before it taken out or continuing a record)
        rang = indice - len(retirees) - suites  # (blank lines are among those taken out)
        motif = None
        if not contenu:
            vides += 1
            retirees.append((d, f + 1))
            rangs.append(rang)
            decalages.append(decalages[-1] + 1)
            consomme = f + 1
            continue
        if d in mal_codees:
            motif = "octets_non_decodables"
        elif b"\r" in contenu:
            motif = "retour_chariot_isole"
        else:
            verdict = _verdict(contenu.decode("utf-8"), sep, nchamps)
            if verdict == "ouvert":
                fin, k = f, 0
                while verdict == "ouvert":
                    if fin >= n:
                        if not final:  # the record may go on in the next block
                            reste = blk[d:]
                        break
                    suivante = blk.find(b"\n", fin + 1)
                    fin = n if suivante < 0 else suivante
                    k += 1
                    morceau = blk[d:fin].removesuffix(b"\r")
                    if k > SUITE_MAX_LIGNES - 1 or len(morceau) > SUITE_MAX_OCTETS:
                        break
                    try:
                        verdict = _verdict(morceau.decode("utf-8"), sep, nchamps)
                    except UnicodeDecodeError:
                        break
                if reste:
                    lignes = indice
                    break
                if verdict == "ok":  # a legitimate multi-line record
                    multiligne = True
                    suites += k
                    rangs.append(rang + 1)
                    decalages.append(decalages[-1] + k)
                    consomme = fin + 1
                    continue
                motif = "guillemets_invalides"
            elif verdict != "ok":
                motif = "guillemets_invalides"
        if motif is not None:
            rejets.append(Rejet(ligne, motif, contenu))
            retirees.append((d, f + 1))
            rangs.append(rang)
            decalages.append(decalages[-1] + 1)
            consomme = f + 1
    if retirees or reste:
        morceaux, debut = [], 0
        for a, b in retirees:
            morceaux.append(blk[debut:a])
            debut = b
        fin_utile = n - len(reste)
        if debut < fin_utile:
            morceaux.append(blk[debut:fin_utile])
        tampon = b"".join(morceaux)
    else:
        tampon = blk
    # (several entries for one record index: the last one holds)
    r = np.array(rangs, np.int64)
    dec = np.array(decalages, np.int64)
    garder = np.append(r[1:] != r[:-1], True)
    return _Examen(tampon, lignes, rejets, vides, suites, multiligne, r[garder], dec[garder],
                   reste, fins, blk)


def _utf8_valide(blk: bytes) -> bool:
    """Whether ``blk`` is valid UTF-8 (Arrow's validation, vectorised)."""
    try:
        pa.StringArray.from_buffers(1, pa.py_buffer(np.array([0, len(blk)], np.int32)),
                                    pa.py_buffer(blk)).validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


# --------------------------------------------------------------------------- parsing

@dataclass
class _Bloc:
    """What one block gives, in file order."""

    lignes: int
    rejets: list[Rejet]
    vides: int
    suites: int
    table: pa.Table  # accepted rows (thinned: the columns of ``toujours``, ``_garder``)
    gardees: pa.Table | None  # thinned: the kept rows with every column, ``_rang``
    lignes_gardees: np.ndarray | None  # physical lines of the kept rows (thinned)
    reste: bytes = b""
    brut: bytes = b""  # the block as read (to read it again with an unresolved tail)
    premiere: int = 0  # its first physical line


class _Lecteur:
    """Parses the blocks of one file (thread-safe: nothing shared is written)."""

    def __init__(self, colonnes_fichier: list[str], colonnes: list[str], separateur: str,
                 garder: Condition | None, toujours: tuple[str, ...],
                 numeroter: bool) -> None:
        self.colonnes_fichier = colonnes_fichier
        self.nchamps = len(colonnes_fichier)
        self.sep = separateur
        self.presentes = [c for c in colonnes if c in colonnes_fichier]
        self.garder = garder
        self.numeroter = numeroter
        if garder is None:
            self.toujours = list(self.presentes)
        else:
            self.toujours = [c for c in self.presentes if c in toujours]
        self.cles = {c: CLES_NUMERIQUES[c] for c in self.toujours
                     if c in CLES_NUMERIQUES and garder is not None}
        # (the columns read for every row of a thinned file)
        self.part_gardee = 0.0  # share of rows the last block parsed kept
        self.etroites = [c for c in self.presentes
                         if garder is not None and (c in self.toujours or c in garder.colonnes)]

    def _parser(self, tampon: bytes, multiligne: bool,
                colonnes: list[str] | None = None) -> tuple[pa.Table, list]:
        """The records of ``tampon`` (``colonnes``: default, every column wanted), and the
        invalid ones (record number from 1, field count, text)."""
        colonnes = self.presentes if colonnes is None else colonnes
        invalides: list = []

        def rejeter(ligne) -> str:
            invalides.append((ligne.number, ligne.actual_columns, ligne.text))
            return "skip"

        if not tampon:
            return pa.table({c: pa.nulls(0, pa.large_string()) for c in colonnes}), []
        quote = '"' if b'"' in tampon else False
        table = pacsv.read_csv(
            pa.BufferReader(tampon),
            read_options=pacsv.ReadOptions(column_names=self.colonnes_fichier,
                                           use_threads=False,
                                           block_size=max(1 << 20, len(tampon) + 1)),
            parse_options=pacsv.ParseOptions(delimiter=self.sep, quote_char=quote,
                                             double_quote=True, escape_char=False,
                                             newlines_in_values=multiligne,
                                             ignore_empty_lines=True,
                                             invalid_row_handler=rejeter),
            convert_options=pacsv.ConvertOptions(
                include_columns=colonnes or self.colonnes_fichier[:1],
                column_types={c: pa.large_string() for c in self.colonnes_fichier},
                strings_can_be_null=True, quoted_strings_can_be_null=True))
        if not colonnes:
            table = table.drop_columns(table.column_names)
        return table, invalides

    def bloc(self, blk: bytes, premiere: int, final: bool) -> _Bloc:
        ex = _examiner(blk, premiere, self.sep, self.nchamps, final)
        # Thinned, and one record per line: every row is parsed with the columns the
        # condition and ``toujours`` need, then the kept lines alone with every column;
        # unless the previous block kept many rows (the files are sorted: kept rows come in
        # runs): then every row with every column at once, the kept ones taken (the same
        # values; tokenizing the block costs more than building its columns).
        en_deux = self.garder is not None and not ex.multiligne and \
            len(self.etroites) < len(self.presentes) and self.part_gardee < PART_LECTURE_LARGE
        table, invalides = self._parser(ex.tampon, ex.multiligne,
                                        self.etroites if en_deux else None)
        rejets = list(ex.rejets)
        enregistrements = table.num_rows + len(invalides)
        attendus = ex.lignes - len(ex.rejets) - ex.vides - ex.suites
        if enregistrements != attendus:
            raise RuntimeError(
                f"lecteur : bloc à la ligne {premiere} : {enregistrements} enregistrements lus "
                f"pour {attendus} attendus (erreur interne, merci de la signaler)")
        hors = np.array([i - 1 for i, _, _ in invalides], np.int64)
        if invalides:
            numeros = ex.ligne(premiere, hors)
            for (_, champs, texte), ligne in zip(invalides, numeros):
                motif = "champs_manquants" if champs < self.nchamps else "champs_en_trop"
                rejets.append(Rejet(int(ligne), motif, texte.encode("utf-8").removesuffix(b"\r")))
            rejets.sort(key=lambda r: r.ligne)
        records = np.delete(np.arange(enregistrements, dtype=np.int64), hors)
        lignes = ex.ligne(premiere, records) if (self.numeroter or self.garder is not None) \
            else None
        if self.garder is None:
            if self.numeroter:
                table = table.append_column("_ligne", tableau(lignes))
            return _Bloc(ex.lignes, rejets, ex.vides, ex.suites, table, None, None, ex.reste,
                         blk)
        # (identifiers as numbers, read from the Arrow buffers: the key stored for a column of
        # CLES_NUMERIQUES, the key the condition looks up for one of CHIFFRES_RECHERCHE)
        cles = {c: cle_numerique(table.column(c), k) for c, k in self.cles.items()}
        dans = self.garder.colonne
        if dans in CHIFFRES_RECHERCHE and dans not in cles and dans in table.column_names:
            cles[dans] = cle_numerique(table.column(dans), CHIFFRES_RECHERCHE[dans])
        garde = self.garder.evaluer_table(table, cles)
        rangs = np.flatnonzero(garde)
        self.part_gardee = len(rangs) / max(1, len(garde))  # (a hint for the next block)
        if en_deux:
            gardees = self._relire(ex, records[rangs])
        else:
            gardees = table.take(tableau(rangs))
        gardees = gardees.append_column("_rang", tableau(rangs))
        colonnes, noms = [], []
        for c in self.toujours:
            texte = _un_morceau(table.column(c))
            if c in self.cles:
                colonnes += [tableau(cles[c]), reste_de_cle(texte, cles[c])]
                noms += [f"_cle_{c}", c]
            else:
                colonnes.append(texte)
                noms.append(c)
        principal = pa.Table.from_arrays([*colonnes, tableau(garde)], names=[*noms, "_garder"])
        if self.numeroter:  # thinned and numbered: every row keeps its physical line
            principal = principal.append_column("_ligne", tableau(lignes))
        return _Bloc(ex.lignes, rejets, ex.vides, ex.suites, principal, gardees,
                     lignes[rangs], ex.reste, blk)


    def _relire(self, ex: _Examen, numeros: np.ndarray) -> pa.Table:
        """Lines ``numeros`` of ``ex.tampon`` (one record per line) with every column."""
        tampon = ex.tampon
        fins = ex.fins if tampon is ex.brut else \
            np.flatnonzero(np.frombuffer(tampon, np.uint8) == 10)
        debuts = np.zeros(len(numeros), np.int64)
        debuts[numeros > 0] = fins[numeros[numeros > 0] - 1] + 1
        arrets = np.where(numeros < len(fins), fins[np.minimum(numeros, len(fins) - 1)]
                          if len(fins) else len(tampon), len(tampon))
        morceaux = [tampon[d:f] for d, f in zip(debuts.tolist(), arrets.tolist())]
        table, invalides = self._parser(b"\n".join(morceaux) + b"\n" if morceaux else b"",
                                        False)
        if invalides or table.num_rows != len(numeros):
            raise RuntimeError("lecteur : lignes gardées relues autrement (erreur interne)")
        return table


class _Tampons:
    """Buffers of blocks, reused once nobody holds them any more (no page of a new 16 MiB
    buffer to fault in and zero for every block: that cost about as much as reading the
    file). A buffer is reused only when this pool holds the last reference to it: a block
    still queued, parsed or viewed (a NumPy or Arrow view holds its buffer) is never
    written over."""

    def __init__(self) -> None:
        self.tampons: list[bytearray] = []
        self._seul = [bytearray()]  # held by this list alone: the count of a free buffer

    def prendre(self, taille: int) -> bytearray:
        """A buffer of ``taille`` bytes (its content is not defined)."""
        for i in range(len(self.tampons)):
            # (free: as many references as a buffer this pool alone holds, counted the same
            # way, whatever the interpreter counts for the argument itself)
            if sys.getrefcount(self.tampons[i]) == sys.getrefcount(self._seul[0]):
                tampon = self.tampons[i]
                if len(tampon) > taille:
                    del tampon[taille:]
                elif len(tampon) < taille:
                    tampon.extend(bytes(taille - len(tampon)))
                return tampon
        tampon = bytearray(taille)
        self.tampons.append(tampon)
        return tampon


def _blocs(chemin: Path, taille: int):
    """(bytes of whole lines, is last) of successive blocks, the header skipped.

    Each block is the end of the previous block's last line and the next bytes of the file
    up to the last line end, read into a buffer of :class:`_Tampons`. The block holding the
    end of the file (its size when it is read) is the one said last, so that a record left
    open on the last line is judged, not carried past the end."""
    tampons = _Tampons()
    with open(chemin, "rb", buffering=0) as flux:
        entete = b""
        while b"\n" not in entete:
            morceau = flux.read(1 << 16)
            if not morceau:
                return
            entete += morceau
        reste = entete[entete.index(b"\n") + 1:]
        position = len(entete)
        while True:
            fin_fichier = os.fstat(flux.fileno()).st_size
            tampon = tampons.prendre(len(reste) + taille)
            tampon[:len(reste)] = reste
            with memoryview(tampon) as vue:
                lu = flux.readinto(vue[len(reste):])
            position += lu
            n = len(reste) + lu
            if not lu or position >= fin_fichier:  # the end of the file: the last block
                if n:
                    del tampon[n:]
                    yield tampon, True
                return
            coupure = tampon.rfind(b"\n", 0, n)
            if coupure < 0:  # no line end yet: keep reading the line
                reste = bytes(tampon[:n])
                continue
            reste = bytes(tampon[coupure + 1:n])
            del tampon[coupure + 1:]
            yield tampon, False
            del tampon


def lire(csv_: Path, colonnes_fichier: list[str], colonnes: list[str], separateur: str,
         garder: Condition | None, toujours: tuple[str, ...], ecrire,
         taille: int | None = None, fils: int = 2, numeroter: bool = False,
         uniques: str | None = None) -> Lecture:
    """Read ``csv_`` block by block, every physical line accounted for.

    Parameters
    ----------
    csv_ : path
        A plain CSV file whose first line is the header (``colonnes_fichier``, as parsed
        by the caller; a byte order mark before it is fine).
    colonnes : list of str
        The columns wanted (those the file lacks are left to the caller).
    separateur : str
        ``,`` or ``;``.
    garder, toujours :
        Thinning: when ``garder`` (a :class:`Condition`) is given, each block gives the
        columns of ``toujours`` (an identifier of :data:`CLES_NUMERIQUES` as a key and a
        rest) and ``_garder`` for every row, and every column for the kept rows only.
    ecrire : callable
        ``ecrire(table, gardees)`` for each block, in file order, from one thread:
        ``table`` the accepted rows (``_ligne``, their physical line, when ``numeroter``);
        ``gardees`` None, or the kept rows with every column and ``_rang`` (row number in
        ``table``).
    uniques : str, optional
        A column whose value must not repeat among the kept rows (the siret of the
        establishments, the siren of the legal units): a second row is rejected
        (``<colonne>_en_double``), the first kept.

    Returns
    -------
    Lecture
        Physical lines, accepted rows, rejects (sorted by line), blank and continuation
        lines; ``Lecture.equilibree`` holds.
    """
    taille = taille or TAILLE_BLOC
    lecteur = _Lecteur(colonnes_fichier, colonnes, separateur, garder, toujours, numeroter)
    lecture = Lecture()
    vus = _Vus()
    premiere = 2
    with ThreadPoolExecutor(max_workers=fils) as pool, \
            ThreadPoolExecutor(max_workers=1) as ecrivain:
        blocs = _blocs(Path(csv_), taille)
        en_cours: list = []
        ecritures: list = []
        reste = b""

        def soumettre() -> None:
            b = next(blocs, None)
            if b is not None:
                en_cours.append((pool.submit(lecteur.bloc, b[0], 0, b[1]), b))

        try:
            for _ in range(fils + 1):
                soumettre()
            while en_cours:
                futur, (brut, final) = en_cours.pop(0)
                soumettre()
                if reste:  # the previous block ended inside a record: read both together
                    brut = reste + brut
                    bloc = lecteur.bloc(brut, premiere, final)
                else:
                    bloc = futur.result()
                    if bloc.rejets or bloc.lignes_gardees is not None or lecteur.numeroter:
                        bloc = _renumeroter(bloc, lecteur, brut, premiere, final)
                reste = bloc.reste
                bloc.premiere = premiere
                if uniques is not None and bloc.gardees is not None:
                    bloc = _sans_doublons(bloc, uniques, vus, brut)
                lecture.rejets.extend(bloc.rejets)
                lecture.vides += bloc.vides
                lecture.suites += bloc.suites
                lecture.acceptees += bloc.table.num_rows
                lecture.lignes += bloc.lignes
                premiere += bloc.lignes
                ecritures.append(ecrivain.submit(ecrire, bloc.table, bloc.gardees))
                while ecritures and (ecritures[0].done() or len(ecritures) > fils + 1):
                    ecritures.pop(0).result()
            if reste:  # (cannot happen: the last block is read as final)
                raise RuntimeError("lecteur : fin de fichier dans un enregistrement")
            for f in ecritures:
                f.result()
        finally:
            for f, _ in en_cours:
                f.cancel()
    lecture.rejets.sort(key=lambda r: r.ligne)
    if not lecture.equilibree:
        raise RuntimeError(f"lecteur : {csv_} : les lignes ne s'additionnent pas ({lecture})")
    return lecture


def _renumeroter(bloc: _Bloc, lecteur: _Lecteur, brut: bytes, premiere: int,
                 final: bool) -> _Bloc:
    """A block parsed (in a worker) before its first line was known: its line numbers
    shifted to ``premiere`` (the worker numbered from 0)."""
    for r in bloc.rejets:
        r.ligne += premiere
    if bloc.lignes_gardees is not None:
        bloc.lignes_gardees = bloc.lignes_gardees + premiere
    if lecteur.numeroter and "_ligne" in bloc.table.column_names:
        i = bloc.table.column_names.index("_ligne")
        bloc.table = bloc.table.set_column(i, "_ligne",
                                           tableau(numpy_de(bloc.table["_ligne"]) + premiere))
    return bloc


class _Vus:
    """The identifiers of the kept rows seen so far (:func:`_sans_doublons`): those of
    digits as numbers (the largest one, and a sorted array merged only when a block does not
    come after it: never for a file sorted as INSEE publishes it), the others as text."""

    def __init__(self) -> None:
        self.plus_grand = -1
        self.triees = np.zeros(0, np.int64)
        self.a_fusionner: list[np.ndarray] = []
        self.textes: set[str] = set()

    def deja(self, cles: np.ndarray) -> np.ndarray:
        """Whether each key (>= 0) was seen in an earlier block."""
        if not len(cles) or int(cles.min()) > self.plus_grand:
            return np.zeros(len(cles), np.bool_)
        if self.a_fusionner:
            self.triees = _uniques_tries(np.concatenate([self.triees, *self.a_fusionner]))
            self.a_fusionner = []
        pos = np.minimum(np.searchsorted(self.triees, cles), len(self.triees) - 1)
        return self.triees[pos] == cles

    def ajouter(self, cles: np.ndarray) -> None:
        if len(cles):
            self.a_fusionner.append(cles)
            self.plus_grand = max(self.plus_grand, int(cles.max()))


def _sans_doublons(bloc: _Bloc, colonne: str, vus: _Vus, brut: bytes) -> _Bloc:
    """The kept rows whose ``colonne`` was seen before (in this block or an earlier one)
    rejected (``<colonne>_en_double``), out of both tables; ``vus`` updated (identifiers of
    :data:`CHIFFRES_RECHERCHE` digits as numbers, the others as text; a null is never a
    repeat)."""
    g = bloc.gardees
    if g is None or not g.num_rows or colonne not in g.column_names:
        return bloc
    valeurs = g.column(colonne)
    chiffres = CHIFFRES_RECHERCHE.get(colonne)
    cle = cle_numerique(valeurs, chiffres) if chiffres else np.full(g.num_rows, -1, np.int64)
    double = np.zeros(g.num_rows, np.bool_)
    nombres = np.flatnonzero(cle >= 0)
    k = cle[nombres]
    if len(k) > 1 and not (k[1:] > k[:-1]).all():  # (sorted: no repeat within the block)
        ordre = np.argsort(k, kind="stable")
        premiers = ordre[np.append(True, k[ordre][1:] != k[ordre][:-1])]
        repetes = np.ones(len(k), np.bool_)
        repetes[premiers] = False
        double[nombres[repetes]] = True
    double[nombres] |= vus.deja(k)
    vus.ajouter(k)
    valides = numpy_de(valeurs.is_valid()) if valeurs.null_count else True
    autres = np.flatnonzero((cle < 0) & valides)
    if len(autres):  # (rare: identifiers that are not of digits)
        textes = pl.from_arrow(valeurs.take(tableau(autres)))
        for i, (texte, premier) in enumerate(zip(textes.to_list(),
                                                 textes.is_first_distinct().to_list())):
            if not premier or texte in vus.textes:
                double[autres[i]] = True
        vus.textes.update(textes.to_list())
    doubles_a = np.flatnonzero(double)
    if not len(doubles_a):
        return bloc
    doubles_a = doubles_a.astype(np.int64)
    lignes = bloc.lignes_gardees[doubles_a]
    contenus = _lignes_du_bloc(brut, bloc.premiere, lignes)
    for ligne in lignes:
        bloc.rejets.append(Rejet(int(ligne), f"{colonne}_en_double",
                                 contenus.get(int(ligne), b"")))
    bloc.rejets.sort(key=lambda r: r.ligne)
    rangs = numpy_de(g.column("_rang"))
    retires = np.sort(rangs[doubles_a])
    garde_g = np.ones(g.num_rows, np.bool_)
    garde_g[doubles_a] = False
    garde_t = np.ones(bloc.table.num_rows, np.bool_)
    garde_t[retires] = False
    nouveaux = rangs[garde_g] - np.searchsorted(retires, rangs[garde_g])
    g = g.filter(tableau(garde_g)).drop_columns(["_rang"]).append_column(
        "_rang", tableau(nouveaux))
    bloc.table = bloc.table.filter(tableau(garde_t))
    bloc.gardees = g
    bloc.lignes_gardees = bloc.lignes_gardees[garde_g]
    return bloc


def _lignes_du_bloc(brut: bytes, premiere: int, lignes: np.ndarray) -> dict[int, bytes]:
    """The bytes of some physical lines of a block whose first line is ``premiere``."""
    fins = np.flatnonzero(np.frombuffer(brut, np.uint8) == 10)
    out = {}
    for ligne in lignes:
        i = int(ligne) - premiere
        d = 0 if i == 0 else int(fins[i - 1]) + 1
        f = int(fins[i]) if i < len(fins) else len(brut)
        out[int(ligne)] = brut[d:f].removesuffix(b"\r")
    return out


def lire_cadre(chemin: str | Path, separateur: str = ",",
               colonnes: list[str] | None = None) -> tuple[pl.DataFrame, Lecture]:
    """A whole CSV file (small enough for memory) as a polars frame of text columns, with
    what reading it gave (:class:`Lecture`: physical lines, rejects with their line numbers).

    The header is the first line (a byte order mark is dropped); ``colonnes`` (default:
    all) are the columns kept, those the file lacks being NULL; an empty field is NULL.
    Each row gets its physical line in ``_ligne``.

    Raises
    ------
    ValueError
        When the file is empty or its header is not UTF-8.
    """
    chemin = Path(chemin)
    with open(chemin, "rb") as flux:
        brut = flux.readline(1 << 20)
    if not brut:
        raise ValueError(f"{chemin} : fichier vide")
    entete = brut.decode("utf-8-sig").rstrip("\r\n")
    noms = [c.strip().strip('"') for c in next(csv.reader(io.StringIO(entete),
                                                            delimiter=separateur))]
    voulues = colonnes or noms
    morceaux: list[pa.Table] = []
    lecture = lire(chemin, noms, voulues, separateur, None, (),
                   lambda table, _g: morceaux.append(table), numeroter=True)
    if morceaux:
        cadre = pl.from_arrow(pa.concat_tables(morceaux))
    else:
        cadre = pl.DataFrame({c: pl.Series([], dtype=pl.String) for c in voulues
                              if c in noms} | {"_ligne": pl.Series([], dtype=pl.Int64)})
    manquantes = [pl.lit(None, dtype=pl.String).alias(c) for c in voulues if c not in noms]
    return cadre.with_columns(manquantes).select(*voulues, "_ligne"), lecture
