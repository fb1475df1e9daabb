"""Readers of INSEE's historical Sirene stocks: ``StockEtablissementHistorique`` and
``StockUniteLegaleHistorique`` (one row per period of an establishment or a legal unit).

Official schemas (``reference/colonnes_sources.csv``, roles ``etablissements_historique``,
18 columns, and ``unites_legales_historique``, 26 columns before 2023 then 28 with
``societeMissionUniteLegale``): ``dateDebut``/``dateFin`` bound the period (both days
included, ``dateFin`` empty for the current one; ``dateDebut`` is empty for the first period
of some old units, read as "since always"); the historised values of the period follow
(state, activity and its nomenclature, employer character; for legal units also the legal
category, the name and the ESS flag).

The files are prepared as the stocks are (:func:`essqpv.sources.sirene.preparer`: zipped or
not, header checked) and read by :func:`lire_filtre`: a line of the expected shape (ASCII,
no quote nor CR, the header's number of fields) is judged on its bytes — the identifier or
codes a series needs, located by the positions of the separators — and only the lines that
pass are parsed; every other line (quoted fields, another number of fields, blank, CR,
non-ASCII bytes) is read by the project's reader (:mod:`essqpv.sources.lecteur`) with the
rules of the stocks: malformed lines rejected with their physical line number, the header
being line 1. Then every period kept is checked; a period is rejected, unchanged and with
its reason, when:

- ``date_invalide``: ``dateDebut`` or ``dateFin`` is not an ``AAAA-MM-JJ`` date;
- ``date_fin_avant_debut``: ``dateFin`` < ``dateDebut``;
- ``periodes_chevauchantes``: it starts on or before the end of the previous period of the
  same siret (siren for legal units), periods taken in order of start (the first one kept);
- ``identifiant_invalide``: the siret is not 14 digits (siren: 9).

Reconciliation, in physical lines: ``lignes_lues = lignes_rejetees + acceptees``, and the
rejects by reason add up to ``lignes_rejetees``.

Rows that no series can use (periods of legal units that are never ESS candidates, periods
of their establishments) are not parsed: they are counted and their lines are checked for
form, not for dates (``non_verifiees`` in the reconciliation). At national scale they are
nine lines in ten: this is what makes the national series affordable
(``benchmarks/historique.md``).

Public verbs: :func:`charger`, :class:`Historique`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from essqpv.sources import sirene
from essqpv.sources.lecteur import numpy_de, tableau

__all__ = ["RENOMMAGE", "Filtre", "Historique", "charger", "lire_filtre", "MOTIFS",
           "sens_des_periodes"]

ETABLISSEMENTS, UNITES_LEGALES = "etablissements_historique", "unites_legales_historique"

RENOMMAGE = {
    ETABLISSEMENTS: {
        "siren": "siren", "siret": "siret", "dateDebut": "debut_brut", "dateFin": "fin_brut",
        "etatAdministratifEtablissement": "etat", "activitePrincipaleEtablissement": "naf",
        "nomenclatureActivitePrincipaleEtablissement": "nomenclature_naf",
        "caractereEmployeurEtablissement": "employeur_brut",
    },
    UNITES_LEGALES: {
        "siren": "siren", "dateDebut": "debut_brut", "dateFin": "fin_brut",
        "etatAdministratifUniteLegale": "etat_ul",
        "categorieJuridiqueUniteLegale": "categorie_juridique",
        "economieSocialeSolidaireUniteLegale": "ess", "denominationUniteLegale": "denomination",
    },
}
CLE = {ETABLISSEMENTS: ("siret", 14), UNITES_LEGALES: ("siren", 9)}

MOTIFS = {
    "date_invalide": "dateDebut ou dateFin n'est pas une date AAAA-MM-JJ",
    "date_fin_avant_debut": "dateFin est antérieure à dateDebut",
    "periodes_chevauchantes": "la période commence avant la fin de la précédente du même "
                              "identifiant",
    "identifiant_invalide": "siret (14 chiffres) ou siren (9 chiffres) invalide",
}

_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@dataclass
class Historique:
    """A historical file, read and checked.

    ``periodes``: the accepted periods that were kept, renamed (``RENOMMAGE``), the siret
    and siren as numbers (``Int64``; ``str.zfill`` gives the text back), with
    ``debut`` and ``fin`` as dates (``debut`` null = since always, ``fin`` null = current
    period) and ``ligne`` (physical line). ``rejets``: every rejected line, form and rules.
    """

    role: str
    source: sirene.FichierSource
    periodes: pl.DataFrame
    lignes_lues: int
    rejets: list[sirene.Rejet] = field(default_factory=list)
    non_verifiees: int = 0
    periodes_utiles: int = -1  # (set at creation: ``periodes`` may be released after use)

    def __post_init__(self) -> None:
        if self.periodes_utiles < 0:
            self.periodes_utiles = self.periodes.height

    @property
    def acceptees(self) -> int:
        return self.lignes_lues - len(self.rejets)

    def reconciliation(self) -> dict:
        """``lignes_lues = lignes_rejetees + acceptees`` (physical lines)."""
        par_motif: dict[str, int] = {}
        for r in self.rejets:
            par_motif[r.motif] = par_motif.get(r.motif, 0) + 1
        return {"fichier": self.source.chemin.name, "schema": self.source.variante,
                "lignes_lues": self.lignes_lues, "lignes_rejetees": len(self.rejets),
                "rejets_par_motif": dict(sorted(par_motif.items())),
                "acceptees": self.acceptees, "periodes_utiles": self.periodes_utiles,
                "non_verifiees": self.non_verifiees}


#: short texts of the establishments' periods kept as categories (4 bytes a row)
_CATEGORIES = {ETABLISSEMENTS: ("etat", "naf", "nomenclature_naf", "employeur_brut"),
               UNITES_LEGALES: ("etat_ul", "ess")}


def _verifier_lignes(cadre: pl.DataFrame, role: str) -> pl.DataFrame:
    """The rules a line is judged on alone: ``_motif`` (null = accepted so far), the typed
    ``debut``/``fin`` in place of their texts, the short texts as categories (applied block
    by block as the file is read: the periods kept cost a few bytes each)."""
    cle, chiffres = CLE[role]
    debut_ok = pl.col("debut_brut").is_null() | pl.col("debut_brut").str.contains(_DATE)
    fin_ok = pl.col("fin_brut").is_null() | pl.col("fin_brut").str.contains(_DATE)
    cadre = cadre.with_columns(
        pl.col("debut_brut").str.to_date("%Y-%m-%d", strict=False).alias("debut"),
        pl.col("fin_brut").str.to_date("%Y-%m-%d", strict=False).alias("fin"),
    )
    # a well-formed text that is no calendar day (2021-02-30) is invalid too
    debut_ok = debut_ok & (pl.col("debut_brut").is_null() | pl.col("debut").is_not_null())
    fin_ok = fin_ok & (pl.col("fin_brut").is_null() | pl.col("fin").is_not_null())
    motif = (pl.when(~pl.col(cle).fill_null("").str.contains(f"^[0-9]{{{chiffres}}}$"))
             .then(pl.lit("identifiant_invalide"))
             .when(~(debut_ok & fin_ok)).then(pl.lit("date_invalide"))
             .when(pl.col("fin") < pl.col("debut")).then(pl.lit("date_fin_avant_debut"))
             .otherwise(pl.lit(None, dtype=pl.String)))
    # the identifiers as numbers (8 bytes a row instead of a text): the key of an accepted
    # row has its 14 (9) digits, checked above; the siren of an establishment's period is
    # a number only when it has its 9 digits (null otherwise: it then matches no legal unit,
    # as its text would not), so the number gives the text back, zero-padded
    autres = [c for c in ("siren", "siret") if c in cadre.columns and c != cle]
    return cadre.with_columns(
        motif.cast(pl.Categorical).alias("_motif"),
        *[pl.col(c).cast(pl.Categorical) for c in _CATEGORIES[role] if c in cadre.columns],
        pl.col(cle).cast(pl.Int64, strict=False),
        *[pl.when(pl.col(c).str.contains(r"^[0-9]{9}$")).then(pl.col(c).cast(pl.Int64,
          strict=False)) for c in autres],
        pl.col("_longueur").cast(pl.Int32)).drop("debut_brut", "fin_brut")


def sens_des_periodes(cle: pl.Series, debut: pl.Series, tranche: int = 1 << 20) -> int:
    """The order the rows already are in: ``1`` when the rows of each identifier are
    consecutive, the identifiers increasing, and their starts strictly increasing (a period
    without start first); ``-1`` the same with starts strictly decreasing (without start
    last: the layout of INSEE's files, most recent period first); ``0`` otherwise (equal
    starts included). Judged by slices of ``tranche`` rows (a few bytes a row at a time)."""
    n = cle.len()
    if n < 2:
        return 1
    jours = debut.cast(pl.Int32).fill_null(np.iinfo(np.int32).min)
    croissant = decroissant = True
    for i in range(0, n - 1, tranche):
        k = cle.slice(i, tranche + 1).to_numpy()
        d = jours.slice(i, tranche + 1).to_numpy()
        if k.dtype == object or not np.all(k[1:] >= k[:-1]):
            return 0
        meme = k[1:] == k[:-1]
        apres, avant = d[1:][meme], d[:-1][meme]
        croissant = croissant and bool(np.all(apres > avant))
        decroissant = decroissant and bool(np.all(apres < avant))
        if not (croissant or decroissant):
            return 0
    return 1 if croissant else -1


def _verifier_chevauchements(cadre: pl.DataFrame, role: str) -> pl.DataFrame:
    """Overlaps, among the periods that passed the rules of a line, in order of start (a
    period without start first): the first period of a chain is kept, each later one that
    starts on or before the end of the last kept one is rejected. The end of the last kept
    period is carried by a cumulative maximum, so a chain is judged in one pass. Rows already
    grouped by identifier in order of start, or in the reverse order within each identifier
    (INSEE's files: :func:`sens_des_periodes`), are judged where they are, without sorting."""
    cle, _ = CLE[role]
    # (the four columns judged, taken alone: no copy when every row passed)
    bons = cadre.select(cle, "debut", "fin", "_ligne", "_motif")
    if bons["_motif"].null_count() != bons.height:
        bons = bons.filter(pl.col("_motif").is_null())
    bons = bons.drop("_motif")
    sens = sens_des_periodes(bons[cle], bons["debut"])
    if sens == 0:
        bons = bons.sort([cle, "debut", "_ligne"], nulls_last=False)
        sens = 1
    # one cumulative maximum over the whole column, without a window per unit: the unit's
    # rank times a stride larger than any span of days is added to each day, so the running
    # maximum never crosses from one unit into the next; with starts decreasing within each
    # unit, the same maximum is taken from the end (the ranks then decrease along the rows)
    jours = 4_000_000  # (days from 1970 of 0001-01-01 and 9999-12-31: within ±3.7 M)
    pas = 10 * jours
    n = pl.len() - 1
    if sens == 1:
        premier = (pl.int_range(pl.len()) == 0) | pl.col(cle).ne_missing(pl.col(cle).shift(1))
    else:  # (the first period of a unit is its last row)
        premier = (pl.int_range(pl.len()) == n) | pl.col(cle).ne_missing(pl.col(cle).shift(-1))
    rang = premier.cum_sum(reverse=sens == -1).cast(pl.Int64) * pas
    fin = pl.col("fin").cast(pl.Int64).fill_null(2_932_896) + jours  # 9999-12-31
    debut = pl.col("debut").cast(pl.Int64).fill_null(-719_162) + jours  # 0001-01-01
    precedents = (rang + fin).cum_max(reverse=sens == -1).shift(sens)
    chevauche = bons.select(pl.col("_ligne").filter(
        ~premier & (rang + debut <= precedents)))["_ligne"]
    del bons
    if chevauche.len():
        cadre = cadre.with_columns(
            pl.when(pl.col("_ligne").is_in(chevauche.implode()))
            .then(pl.lit("periodes_chevauchantes").cast(pl.Categorical))
            .otherwise(pl.col("_motif")).alias("_motif"))
    return cadre


def charger(chemin: str | Path, role: str, travail: str | Path,
            garder: Filtre | None = None) -> Historique:
    """Read and check a historical file (``role``: ``etablissements_historique`` or
    ``unites_legales_historique``).

    ``garder`` thins the rows no series can use, judged on each line's bytes
    (:func:`lire_filtre`): their lines are counted and checked for form (the header's number
    of fields, ASCII, no quote), not parsed nor checked for dates (``non_verifiees``).
    """
    travail = Path(travail)
    source = sirene.preparer(chemin, role, travail / "extraits")
    renommage = RENOMMAGE[role]
    cadre, lignes_lues, rejets, non_verifiees = lire_filtre(
        source, list(renommage), garder,
        transformer=lambda c: _verifier_lignes(c.rename(renommage), role))
    if not cadre.height:  # (no block: the columns the checks give)
        cadre = _verifier_lignes(cadre.rename(renommage), role)
    cadre = _verifier_chevauchements(cadre, role)
    rejetees = cadre.filter(pl.col("_motif").is_not_null())
    if rejetees.height:
        contenus = lignes_brutes(source.csv, rejetees.select("_ligne", "_octet", "_longueur"))
        rejets += [sirene.Rejet(int(n), str(m), contenus.get(int(n), b""))
                   for n, m in rejetees.select("_ligne", "_motif").iter_rows()]
    rejets.sort(key=lambda r: r.ligne)
    # (no reject among the rows kept: the columns dropped without copying the rows)
    cadre = cadre.drop("_octet", "_longueur")
    if rejetees.height:
        cadre = cadre.filter(pl.col("_motif").is_null())
    del rejetees
    periodes = cadre.drop("_motif").rename({"_ligne": "ligne"})
    del cadre
    return Historique(role=role, source=source, periodes=periodes, lignes_lues=lignes_lues,
                      rejets=rejets, non_verifiees=non_verifiees)


# --------------------------------------------------------------------------- fast reading

@dataclass
class Filtre:
    """Which lines a later stage can use, judged on the raw bytes of each line before any
    parsing (the national historical files are mostly periods of units outside the ESS).

    ``identifiant = (colonne, chiffres, valeurs)``: the field is an identifier of exactly
    ``chiffres`` digits whose number is in ``valeurs`` (the sirens of the ESS candidates,
    the sirets of their establishments); ``codes = {colonne: valeurs}``: the field's text is
    one of ``valeurs`` (a legal category, the ESS flag) for at least one of the columns.
    :meth:`garde` is the same condition on parsed columns (for the lines read whole).
    """

    identifiant: tuple[str, int, np.ndarray] | None = None
    codes: dict[str, list[str]] | None = None
    #: widths of the digit fields before the identifier (the siren and nic before a siret
    #: in the stock): the identifier is then found at a fixed place of the lines of that
    #: layout, without locating every separator (the other lines are read whole)
    prefixe: tuple[int, ...] = ()
    #: False for a look-up (positions of a few establishments in the stock): the lines are
    #: judged on the identifier alone, without counting their fields; the lines kept are
    #: still read by the project's reader (rejects and counts are then not those of a full
    #: reading, which the build of the base did)
    forme: bool = True

    def __post_init__(self) -> None:
        if self.identifiant is not None:
            c, k, v = self.identifiant
            self.identifiant = (c, k, np.unique(np.asarray(v, np.int64)))
            self.bits = _bits_de(self.identifiant[2])

    def colonnes(self) -> list[str]:
        return ([self.identifiant[0]] if self.identifiant else []) + list(self.codes or {})

    def garde(self, table: pa.Table) -> np.ndarray:
        """The condition on parsed text columns (one Boolean per row), by Arrow's compute
        functions: the identifier's number when it is exactly its digits
        (:func:`~essqpv.sources.lecteur.cle_numerique`), the codes' texts."""
        import pyarrow.compute as pc

        from essqpv.sources.lecteur import cle_numerique
        garde = np.zeros(table.num_rows, np.bool_)
        if not table.num_rows:
            return garde
        if self.identifiant is not None:
            c, k, valeurs = self.identifiant
            nombres = cle_numerique(table.column(c), k)  # (-1: not exactly k digits)
            garde |= (nombres >= 0) & _parmi(nombres, valeurs, self.bits)
        for c, valeurs in (self.codes or {}).items():
            col = table.column(c)
            dans = pc.is_in(col, value_set=pa.array(valeurs, col.type)).fill_null(False)
            garde |= numpy_de(dans)
        return garde


#: bits of the sieve of :func:`_parmi` (2**27 bits: 16 MiB)
_BITS = 27


def _bits_de(valeurs: np.ndarray) -> np.ndarray:
    """A sieve of ``valeurs``: bit ``v mod 2**27`` set for each value ``v``."""
    reste = np.asarray(valeurs, np.int64) & np.int64((1 << _BITS) - 1)
    bits = np.zeros(1 << (_BITS - 3), np.uint8)
    np.bitwise_or.at(bits, reste >> 3, (np.uint8(1) << (reste & 7).astype(np.uint8)))
    return bits


def _parmi(nombres: np.ndarray, valeurs: np.ndarray,
           bits: np.ndarray | None = None) -> np.ndarray:
    """Whether each number is one of the sorted ``valeurs`` (``bits``: their sieve,
    :func:`_bits_de`: only the numbers whose bit is set are searched for)."""
    if not len(valeurs):
        return np.zeros(len(nombres), np.bool_)
    if bits is not None:
        reste = nombres & np.int64((1 << _BITS) - 1)
        candidats = np.flatnonzero((bits[reste >> 3] >> (reste & 7).astype(np.uint8)) & 1)
        sortie = np.zeros(len(nombres), np.bool_)
        sortie[candidats] = _parmi(nombres[candidats], valeurs)
        return sortie
    i = np.searchsorted(valeurs, nombres)
    i[i >= len(valeurs)] = 0
    return valeurs[i] == nombres


def _octets_des_champs(a: np.ndarray, debut: np.ndarray, fin: np.ndarray,
                       largeur: int, completer: bool = True) -> np.ndarray:
    """The first ``largeur`` bytes of each field [debut, fin), as an (n, largeur) uint8
    array (``completer``: zero beyond the field's end)."""
    pos = debut[:, None] + np.arange(largeur)
    np.minimum(pos, len(a) - 1, out=pos)
    octets = a[pos]
    return np.where(pos < fin[:, None], octets, 0).astype(np.uint8) if completer else octets


def _chiffres_octet_par_octet(a: np.ndarray, debut: np.ndarray,
                              k: int) -> tuple[np.ndarray, np.ndarray]:
    """(are the ``k`` bytes from ``debut`` all digits, their number), byte by byte."""
    o = _octets_des_champs(a, debut, debut, k, completer=False) - np.uint8(48)  # (wraps < 0)
    return np.all(o <= 9, axis=1), o.astype(np.int64) @ (10 ** np.arange(k - 1, -1, -1,
                                                                          dtype=np.int64))


_F0 = np.uint64(0xF0F0F0F0F0F0F0F0)
_TRENTE = np.uint64(0x3030303030303030)
_SIX = np.uint64(0x0606060606060606)


def _huit_chiffres(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(are the 8 bytes of each little-endian word ASCII digits, their number read from the
    first byte): a byte is a digit when its high half is 3 and stays 3 once 6 is added
    (0x30-0x39; no carry leaves a byte whose high half is 3); the digits are then paired,
    the pairs paired, the fours paired, by shifts and multiplications within the word."""
    ok = ((x & _F0) == _TRENTE) & (((x + _SIX) & _F0) == _TRENTE)
    d = x - _TRENTE
    d = (d * np.uint64(10) + (d >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    d = (d * np.uint64(100) + (d >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    d = (d * np.uint64(10000) + (d >> np.uint64(32))) & np.uint64(0x00000000FFFFFFFF)
    return ok, d.astype(np.int64)


def _chiffres(a: np.ndarray, debut: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(are the ``k`` bytes from ``debut`` all digits, their number; where they are not,
    the number means nothing).

    From 8 to 16 digits (a siren, a siret), two unaligned 8-byte words per position are read
    (bytes 0-7 and k-8 to k-1) and judged as eight digits each, a few operations per line
    instead of one per byte; positions less than 16 bytes from the end of ``a``, and other
    widths, byte by byte."""
    if not 8 <= k <= 16 or len(a) < 16:
        return _chiffres_octet_par_octet(a, debut, k)
    loin = debut > len(a) - 16
    d = np.where(loin, 0, debut) if loin.any() else debut
    mots = np.ndarray(shape=(len(a) - 7,), dtype="<u8", buffer=a, strides=(1,))
    ok, haut = _huit_chiffres(mots[d])
    ok_bas, bas = _huit_chiffres(mots[d + (k - 8)])
    ok &= ok_bas
    nombres = haut * np.int64(10 ** (k - 8)) + bas % np.int64(10 ** (k - 8))
    if loin.any():
        i = np.flatnonzero(loin)
        ok[i], nombres[i] = _chiffres_octet_par_octet(a, debut[i], k)
    return ok, nombres


def _garder_lignes(filtre: Filtre, a: np.ndarray, sep: int, debuts: np.ndarray,
                   fins: np.ndarray, virg: np.ndarray, idx0: np.ndarray,
                   index: dict[str, int], nchamps: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, judged) for lines of the expected shape (ASCII, no quote nor CR, ``nchamps``
    fields): ``judged`` is false for a line whose layout differs from ``filtre.prefixe``
    (it is then read whole and judged on its fields). ``virg``: the positions of the
    separators (and line ends), the j-th separator of a line at ``virg[idx0 + j]``."""

    def bornes(colonne: str) -> tuple[np.ndarray, np.ndarray]:
        j = index[colonne]
        d = debuts if j == 0 else virg[idx0 + j - 1] + 1
        f = virg[idx0 + j] if j < nchamps - 1 else fins
        return d, f

    n = len(debuts)
    garde = np.zeros(n, np.bool_)
    jugee = np.ones(n, np.bool_)
    if filtre.identifiant is not None:
        c, k, valeurs = filtre.identifiant
        if filtre.prefixe or index[c] == 0:
            d = debuts.copy()
            for w in filtre.prefixe:  # digit fields of fixed width, each followed by sep
                ok, _ = _chiffres(a, d, w)
                jugee &= ok & (a[np.minimum(d + w, len(a) - 1)] == sep)
                d += w + 1
            ok, nombres = _chiffres(a, d, k)
            apres = a[np.minimum(d + k, len(a) - 1)]
            forme = ok & ((apres == sep) | (d + k == fins)) & (d + k <= fins)
        else:
            d, f = bornes(c)
            ok, nombres = _chiffres(a, d, k)
            forme = ok & ((f - d) == k)
        garde |= forme & _parmi(nombres, valeurs, filtre.bits)
    for c, permis in (filtre.codes or {}).items():
        d, f = bornes(c)
        k = max((len(p.encode()) for p in permis), default=1)
        o = np.ascontiguousarray(_octets_des_champs(a, d, f, k))
        valeurs = np.array([p.encode() for p in permis], dtype=f"S{k}")
        if k in (1, 2, 4, 8):
            # (the field's bytes, zero beyond its end, as one integer: compared as numbers,
            # the same bytes as the texts padded with zeros, without sorting texts)
            mot = f"<u{k}"
            ok = _parmi(o.view(mot).ravel().astype(np.int64),
                        np.unique(valeurs.view(mot).astype(np.int64)))
        else:
            ok = np.isin(o.view(f"S{k}").ravel(), valeurs)
        garde |= ok & ((f - d) <= k)
    return garde & jugee, jugee


@dataclass
class _Partie:
    """What one block gives: parsed rows (physical line ``_ligne``, byte offset ``_octet``
    and length ``_longueur`` of the line), rejects, and the lines not parsed."""

    lignes: int
    table: pa.Table | None
    rejets: list
    non_lues: int
    reste: bytes = b""


class _LecteurFiltre:
    """Reads the blocks of one file: the lines of the expected shape (ASCII, no quote, no
    CR, the header's number of fields) are filtered on their bytes; the others and the kept
    ones are read by the project's reader (:class:`essqpv.sources.lecteur._Lecteur`),
    with every rule of the stocks."""

    def __init__(self, source: sirene.FichierSource, colonnes: list[str],
                 filtre: Filtre | None) -> None:
        from essqpv.sources.lecteur import _Lecteur
        self.lecteur = _Lecteur(source.colonnes, colonnes, source.separateur, None, (), True)
        self.filtre = filtre
        self.nchamps = len(source.colonnes)
        self.sep = ord(source.separateur)
        self.index = {c: source.colonnes.index(c) for c in (filtre.colonnes() if filtre else [])}
        if filtre is not None and filtre.prefixe and \
                self.index[filtre.identifiant[0]] != len(filtre.prefixe):
            # (another column order than the prefix says: separators located instead)
            self.filtre = filtre = Filtre(filtre.identifiant, filtre.codes)

    def _lire(self, tampon: bytes, lignes: np.ndarray, debuts: np.ndarray,
              longueurs: np.ndarray, decalage: int, final: bool) -> tuple:
        """Lines of ``tampon`` (whole lines) read by the project's reader; ``lignes``,
        ``debuts``, ``longueurs``: physical line, byte offset and length of each."""
        b = self.lecteur.bloc(tampon, 0, final)
        for r in b.rejets:
            r.ligne = int(lignes[r.ligne])
        t = b.table
        rel = numpy_de(t.column("_ligne")) if t.num_rows else np.zeros(0, np.int64)
        t = t.drop_columns(["_ligne"])
        t = t.append_column("_ligne", tableau(lignes[rel]))
        t = t.append_column("_octet", tableau(debuts[rel] + decalage))
        t = t.append_column("_longueur", tableau(longueurs[rel]))
        return t, b.rejets, b

    def bloc(self, blk: bytes | bytearray, premiere: int, decalage: int, final: bool,
             longueur: int | None = None) -> _Partie:
        """``blk``: whole lines starting at physical line ``premiere``, byte ``decalage`` of
        the file; ``longueur``: the bytes of ``blk`` that hold them (default: all; a buffer
        read again for the next block: nothing of it is kept)."""
        taille = len(blk) if longueur is None else longueur
        a = np.frombuffer(blk, np.uint8, count=taille)
        cherche = self.filtre is not None and not self.filtre.forme
        if cherche:
            fins = np.flatnonzero(a == 10)  # (a look-up counts no field)
        else:
            # the separators and line ends located together, in one pass over the bytes
            # (half the cost of locating each, then searching one among the other): ``z``
            # their positions, ``nl`` the indices in ``z`` of the line ends
            # (and the quotes, when the block has some: a line with quotes is read by the
            # project's reader; its count of marks is then no count of fields)
            cite = blk.find(b'"', 0, taille) >= 0
            marques = a == self.sep
            marques |= a == 10
            if cite:
                marques |= a == 34
            z = np.flatnonzero(marques)
            del marques
            cz = a[z]
            nl = np.flatnonzero(cz == 10)
            fins = z[nl]
        ouverte = bool(taille) and blk[taille - 1] != 10  # (a last line without its end)
        if ouverte:
            fins = np.append(fins, taille)
        n = len(fins)
        debuts = np.zeros(n, np.int64)
        debuts[1:] = fins[:-1] + 1
        longueurs = fins - debuts
        lignes = premiere + np.arange(n, dtype=np.int64)
        if cherche:
            return self._chercher(blk, a, fins, debuts, longueurs, lignes, decalage, n)
        # the separators of line i: z[idx0[i]:nl[i]] (the j-th one z[idx0[i] + j]; the last
        # line without its end: up to the end of z)
        if ouverte:
            nl = np.append(nl, len(z))
        idx0 = np.zeros(n, np.int64)
        idx0[1:] = nl[:-1] + 1
        nsep = nl - idx0
        virg = z
        sure = (nsep == self.nchamps - 1) & (longueurs > 0)
        impair = False
        if cite:
            # (the quotes of each line: each quote's line found among the marks, counted)
            nq = np.bincount(np.searchsorted(nl, np.flatnonzero(cz == 34)), minlength=n)
            sure &= nq == 0
            impair = bool(np.any(nq % 2))
        if blk.find(b"\r", 0, taille) >= 0:
            sure[np.searchsorted(fins, np.flatnonzero(a == 13))] = False
        ascii_ = blk.isascii() if taille == len(blk) else bool(a.max(initial=0) < 128)
        if not ascii_:  # (decodable or not: the project's reader judges those lines)
            sure[np.searchsorted(fins, np.flatnonzero(a >= 128))] = False
        if impair:
            # a record that may span lines: the whole block is read by the project's
            # reader (rare)
            blk = bytes(memoryview(blk)[:taille])
            t, rejets, b = self._lire(blk, lignes, debuts, longueurs, decalage, final)
            return _Partie(b.lignes, self._filtrer(t), rejets, 0, b.reste)
        if self.filtre is None:
            garde = sure
        else:
            s = np.flatnonzero(sure)
            garde = np.zeros(n, np.bool_)
            g, jugee = _garder_lignes(self.filtre, a, self.sep, debuts[s], fins[s], virg,
                                      idx0[s], self.index, self.nchamps)
            garde[s] = g
            sure[s[~jugee]] = False
        lire = garde | ~sure
        non_lues = int(n - np.count_nonzero(lire))
        k = np.flatnonzero(lire)
        if not len(k):
            return _Partie(n, None, [], non_lues)
        if len(k) == n:
            tampon = bytes(memoryview(blk)[:taille])
        else:
            # (the lines in runs of consecutive ones, a slice per run; a last line without
            # its end stops at the block's end)
            coupe = np.flatnonzero(np.diff(k) != 1) + 1
            de = debuts[k[np.concatenate([[0], coupe])]]
            a_ = np.minimum(fins[k[np.concatenate([coupe - 1, [len(k) - 1]])]] + 1, taille)
            tampon = b"".join([blk[d:f] for d, f in zip(de.tolist(), a_.tolist())])
            if not tampon.endswith(b"\n"):
                tampon += b"\n"
        t, rejets, _ = self._lire(tampon, lignes[k], debuts[k], longueurs[k], decalage, True)
        # the rows of lines kept on their bytes pass; the others are judged on their fields
        a_juger = ~sure[numpy_de(t.column("_ligne")) - premiere] if t.num_rows else None
        return _Partie(n, self._filtrer(t, a_juger), rejets, non_lues)

    def _chercher(self, blk, a, fins, debuts, longueurs, lignes, decalage, n) -> _Partie:
        """A look-up (``Filtre.forme`` false): the lines whose identifier, at its fixed
        place, is wanted, read by the project's reader; the others are not examined."""
        c, k, valeurs = self.filtre.identifiant
        d = debuts + sum(w + 1 for w in self.filtre.prefixe)
        ok, nombres = _chiffres(a, np.minimum(d, max(len(a) - k, 0)), k)
        garde = ok & (d + k <= fins) & _parmi(nombres, valeurs, self.filtre.bits)
        # a line starting with a quote (fields quoted) is read, then judged on its parsed
        # identifier
        garde |= (longueurs > 0) & (a[np.minimum(debuts, max(len(a) - 1, 0))] == ord('"'))
        k_ = np.flatnonzero(garde)
        if not len(k_):
            return _Partie(n, None, [], n)
        tampon = b"".join(blk[x:y] + b"\n" for x, y in zip(debuts[k_].tolist(),
                                                            fins[k_].tolist()))
        t, rejets, _ = self._lire(tampon, lignes[k_], debuts[k_], longueurs[k_], decalage,
                                  True)
        return _Partie(n, self._filtrer(t), rejets, int(n - len(k_)))

    def _filtrer(self, t: pa.Table, a_juger: np.ndarray | None = None) -> pa.Table:
        """The rows of ``t`` that pass the filter (``a_juger``: only those rows are
        judged, the others pass)."""
        if self.filtre is None or not t.num_rows:
            return t
        if a_juger is None:
            return t.filter(pa.array(self.filtre.garde(t.select(self.filtre.colonnes()))))
        if not a_juger.any():
            return t
        # (only the rows to judge: the others pass)
        i = np.flatnonzero(a_juger)
        garde = ~a_juger
        garde[i] = self.filtre.garde(t.select(self.filtre.colonnes()).take(tableau(i)))
        return t.filter(pa.array(garde))


def lire_filtre(source: sirene.FichierSource, colonnes: list[str], filtre: Filtre | None,
                fils: int = 2, taille: int | None = None,
                transformer=None) -> tuple[pl.DataFrame, int, list, int]:
    """Read ``source`` keeping the lines that pass ``filtre`` (all when None).

    Returns (rows with ``colonnes``, ``_ligne``, ``_octet``, ``_longueur``; physical lines
    after the header; rejects sorted by line; lines accepted but not read: of the expected
    shape — ASCII, no quote nor CR, the header's number of fields — and not passing the
    filter). Every line is either read by the project's reader with the rules of the
    stocks, or of that shape and counted in the last number. ``transformer`` (a function of
    a polars frame) is applied to the rows of each block as it is read (typing, checks: the
    rows kept are then held in their compact form).
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor, wait

    from essqpv.sources.lecteur import TAILLE_BLOC
    lecteur = _LecteurFiltre(source, colonnes, filtre)

    def forme(cadre: pl.DataFrame) -> pl.DataFrame:
        """The block's rows in the asked columns (those the file lacks: null), transformed."""
        cadre = cadre.with_columns(pl.lit(None, dtype=pl.String).alias(c)
                                   for c in colonnes if c not in cadre.columns)
        cadre = cadre.select(*colonnes, "_ligne", "_octet", "_longueur")
        return transformer(cadre) if transformer is not None else cadre

    with open(source.csv, "rb") as flux:
        entete = flux.readline()
    tables, rejets = [], []
    lignes = non_lues = 0
    premiere, decalage = 2, len(entete)
    reste = b""
    libres: list[bytearray] = []  # buffers whose block is done with, read into again
    with ThreadPoolExecutor(max_workers=fils) as pool:
        blocs = _blocs_recycles(Path(source.csv), taille or TAILLE_BLOC, libres)
        file: deque = deque()

        def soumettre() -> None:
            b = next(blocs, None)
            if b is not None:
                tampon, longueur, final = b
                file.append((pool.submit(lecteur.bloc, tampon, 0, 0, final, longueur),
                             tampon, longueur, final))

        for _ in range(fils + 1):
            soumettre()
        while file:
            futur, tampon, longueur, final = file.popleft()
            soumettre()
            if reste:  # the previous block ended inside a record: read both together
                futur.cancel()
                wait([futur])  # (its buffer is read into again once it is done with)
                brut = reste + bytes(memoryview(tampon)[:longueur])
                longueur = len(brut)
                partie = lecteur.bloc(brut, premiere, decalage, final)
            else:
                partie = futur.result()
                _decaler(partie, premiere, decalage)
            libres.append(tampon)
            lignes += partie.lignes
            non_lues += partie.non_lues
            rejets.extend(partie.rejets)
            if partie.table is not None and partie.table.num_rows:
                tables.append(forme(pl.from_arrow(partie.table)))
            premiere += partie.lignes
            decalage += longueur - len(partie.reste)
            reste = partie.reste
    if reste:
        raise RuntimeError("lecture : fin de fichier dans un enregistrement")
    rejets.sort(key=lambda r: r.ligne)
    if tables:
        cadre = pl.concat(tables, how="vertical", rechunk=False)
    else:
        cadre = pl.DataFrame(schema={c: pl.String for c in colonnes} | {
            "_ligne": pl.Int64, "_octet": pl.Int64, "_longueur": pl.Int64})
    return cadre, lignes, rejets, non_lues


def _blocs_recycles(chemin: Path, taille: int, libres: list[bytearray]):
    """(buffer, length, is last) of successive blocks of whole lines, the header skipped, as
    :func:`essqpv.sources.lecteur._blocs` gives them, but each read into a buffer of
    ``libres`` (the blocks the caller is done with) when there is one: a new buffer of 16
    MiB costs its allocation, its zeroing and its pages' first touch, three times the read
    itself. The bytes of a block are ``buffer[:length]``."""
    with open(chemin, "rb", buffering=0) as flux:
        entete = b""
        while b"\n" not in entete:
            morceau = flux.read(1 << 16)
            if not morceau:
                return
            entete += morceau
        reste = entete[entete.index(b"\n") + 1:]
        while True:
            besoin = len(reste) + taille
            tampon = libres.pop() if libres else None
            if tampon is None or len(tampon) < besoin:
                tampon = bytearray(besoin + (1 << 16))
            tampon[:len(reste)] = reste
            lu = flux.readinto(memoryview(tampon)[len(reste):besoin])
            n = len(reste) + lu
            if not lu:
                if n:
                    yield tampon, n, True
                return
            coupure = tampon.rfind(b"\n", 0, n)
            if coupure < 0:  # no line end yet: keep reading the line
                reste = bytes(tampon[:n])
                libres.append(tampon)
                continue
            reste = bytes(tampon[coupure + 1:n])
            yield tampon, coupure + 1, False


def _decaler(partie: _Partie, premiere: int, decalage: int) -> None:
    """A block analysed before its first line and byte were known: shift them."""
    for r in partie.rejets:
        r.ligne += premiere
    if partie.table is not None and partie.table.num_rows:
        t = partie.table
        for c, d in (("_ligne", premiere), ("_octet", decalage)):
            v = numpy_de(t.column(c)) + d
            t = t.set_column(t.column_names.index(c), c, tableau(v))
        partie.table = t


def lignes_brutes(chemin: Path, octets: pl.DataFrame) -> dict[int, bytes]:
    """The unchanged bytes of lines (``_ligne``, ``_octet``, ``_longueur``), by seeking."""
    contenus: dict[int, bytes] = {}
    with open(chemin, "rb") as flux:
        for n, o, k in octets.sort("_octet").iter_rows():
            flux.seek(o)
            contenus[int(n)] = flux.read(k).removesuffix(b"\r")
    return contenus
