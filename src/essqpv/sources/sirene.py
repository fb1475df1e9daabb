"""Readers of INSEE's Sirene files: establishments, legal units, geolocation.

Every file is read as published (zipped or not, every column as text), its header checked
against the official column lists of ``reference/colonnes_sources.csv``, and its rows streamed
into an Arrow IPC file by the fast reader of :mod:`essqpv.sources.lecteur` (DuckDB's strict CSV
reader judging the doubtful lines). Malformed lines (wrong field count, undecodable bytes,
broken quoting) never stop a run: they are collected with their physical line number (the
header is line 1) and the reason, and their bytes are kept unchanged.

Public verbs: :func:`preparer` (open and check a file) and :func:`convertir` (rows to an Arrow
file, rejects out).
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
import tempfile
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
from pyarrow import ipc

from essqpv import reference
from essqpv.errors import ColonneManquante, FichierIntrouvable, FichierInvalide
from essqpv.sources import lecteur
from essqpv.sources.lecteur import (
    CLES_NUMERIQUES,
    Condition,
    avec_cles,
    numpy_de,
    tableau,
    texte_cle,
)

__all__ = ["FichierSource", "Rejet", "Conversion", "preparer", "convertir", "colonnes_officielles",
           "ROLES"]

ROLES = {
    "etablissements": "stock des établissements (StockEtablissement)",
    "unites_legales": "stock des unités légales (StockUniteLegale)",
    "geolocalisation": "fichier de géolocalisation des établissements",
    "emplois": "fichier des emplois par établissement",
}

# DuckDB's error types -> our reject reasons (French slugs, stable: they are public).
MOTIFS_DUCKDB = {
    "MISSING COLUMNS": "champs_manquants",
    "TOO MANY COLUMNS": "champs_en_trop",
    "INVALID ENCODING": "octets_non_decodables",
    "INVALID UNICODE": "octets_non_decodables",
    "UNQUOTED VALUE": "guillemets_invalides",
    "LINE SIZE OVER MAXIMUM": "ligne_trop_longue",
    "CAST ERROR": "ligne_illisible",
}


# When DuckDB reports several errors for one line, the reason kept is the first of this
# order (the cause before its consequences: a stray quote also shifts the field count).
PRIORITE_DUCKDB = ("INVALID ENCODING", "INVALID UNICODE", "UNQUOTED VALUE",
                   "LINE SIZE OVER MAXIMUM", "TOO MANY COLUMNS", "MISSING COLUMNS",
                   "CAST ERROR")


def _motif(types: str) -> str:
    """Our reason for a line, from DuckDB's error types for it (joined by ``|``)."""
    presents = set(types.split("|"))
    for t in PRIORITE_DUCKDB:
        if t in presents:
            return MOTIFS_DUCKDB[t]
    return "ligne_illisible"


@lru_cache(maxsize=None)
def colonnes_officielles(role: str) -> pl.DataFrame:
    """Official columns of a file role, with their status (obligatoire, utilisee...)."""
    table = reference._csv("colonnes_sources.csv")
    return table.filter(pl.col("fichier") == role)


@dataclass
class FichierSource:
    """An input file, opened and checked.

    Attributes
    ----------
    role : str
        ``etablissements``, ``unites_legales`` or ``geolocalisation``.
    chemin : Path
        The file as given by the user (CSV or ZIP).
    csv : Path
        The plain CSV read (the file itself, or its member extracted from the ZIP).
    colonnes : list of str
        The header, as written in the file.
    separateur : str
        ``,`` (stock files) or ``;`` (geolocation file).
    variante : str
        Which published schema the header matches (e.g. ``insee-53``, ``etalab``).
    avertissements : list of str
        Non-fatal problems (missing optional columns), in French.
    """

    role: str
    chemin: Path
    csv: Path
    colonnes: list[str]
    separateur: str
    variante: str
    taille: int
    avertissements: list[str] = field(default_factory=list)

    def a(self, colonne: str) -> bool:
        """Whether the file has this column."""
        return colonne in self.colonnes


@dataclass
class Rejet:
    """A malformed line: physical line number (header = 1), reason, bytes unchanged."""

    ligne: int
    motif: str
    contenu: bytes


def chemin_gardees(chemin: Path) -> Path:
    """The file of the kept rows of a thinned conversion written to ``chemin``."""
    return chemin.with_name(chemin.stem + ".gardees" + chemin.suffix)


def lire_arrow(chemin: Path) -> pl.LazyFrame:
    """A file written by a conversion (Arrow IPC)."""
    return pl.scan_ipc(chemin)


@dataclass
class Conversion:
    """Result of :func:`convertir`: the file(s) written, the counts, the rejects.

    The files are Arrow IPC files (uncompressed: a short-lived cache, written at the speed
    of a copy; read with :meth:`lire`). A thinned conversion (``garder``) is two
    files: ``chemin``, one row per accepted line in file order, with the columns of
    ``toujours`` and ``_garder``; and ``gardees``, the kept rows only, with every column and
    their row number ``_rang`` in ``chemin``; in ``chemin``, an identifier of
    :data:`~essqpv.sources.lecteur.CLES_NUMERIQUES` (the siren) is a number ``_cle_siren``
    and the text of the rows where it is not one. Otherwise ``chemin`` holds every column and
    ``gardees`` is None.
    """

    chemin: Path
    lignes_lues: int
    lignes_acceptees: int
    rejets: list[Rejet]
    gardees: Path | None = None

    def cadre(self) -> pl.LazyFrame:
        """Every row with every column (those of the rows not kept: NULL), ``_garder``
        included: the two files of a thinned conversion joined back (identifiers stored as
        numeric keys given back as text)."""
        principal = self.lire()
        if self.gardees is None:
            return principal
        noms = principal.collect_schema().names()
        principal = principal.with_columns(
            texte_cle(c, n) for c, n in CLES_NUMERIQUES.items() if f"_cle_{c}" in noms
        ).drop(f"_cle_{c}" for c in CLES_NUMERIQUES if f"_cle_{c}" in noms)
        communes = principal.collect_schema().names()  # ``toujours``, ``_garder``...
        gardees = self.lire_gardees()
        colonnes = [c for c in gardees.collect_schema().names() if c != "_rang"]
        return (principal.with_row_index("_rang")
                .join(gardees.drop([c for c in colonnes if c in communes]), on="_rang",
                      how="left", maintain_order="left")
                .select(*colonnes, *(c for c in communes if c not in colonnes)))

    def lire(self) -> pl.LazyFrame:
        """The rows of ``chemin`` (every accepted line; thinned: see above)."""
        return lire_arrow(self.chemin)

    def lire_gardees(self) -> pl.LazyFrame:
        """The kept rows of a thinned conversion, with every column and ``_rang``."""
        if self.gardees is None:
            raise ValueError("conversion non amincie : pas de fichier des lignes gardées")
        return lire_arrow(self.gardees)

    @property
    def rejets_par_motif(self) -> dict[str, int]:
        compte: dict[str, int] = {}
        for r in self.rejets:
            compte[r.motif] = compte.get(r.motif, 0) + 1
        return dict(sorted(compte.items()))


def _premiere_ligne(flux: io.BufferedIOBase, nom: str) -> str:
    brut = flux.readline(1 << 20)
    if not brut:
        raise FichierInvalide(f"Fichier vide : {nom} (une ligne d'en-tête était attendue).")
    try:
        texte = brut.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FichierInvalide(
            f"{nom} : l'en-tête n'est pas en UTF-8 (octet {exc.start + 1}) ; "
            "les fichiers Sirene sont publiés en UTF-8.") from None
    return texte.rstrip("\r\n")


def _extraire(chemin: Path, dossier: Path) -> tuple[Path, str]:
    """Extract the CSV member of a ZIP into ``dossier``; return its path and header."""
    try:
        with zipfile.ZipFile(chemin) as archive:
            membres = [m for m in archive.infolist()
                       if not m.is_dir() and m.filename.lower().endswith((".csv", ".txt"))]
            if len(membres) != 1:
                noms = ", ".join(m.filename for m in archive.infolist()) or "aucun fichier"
                raise FichierInvalide(
                    f"{chemin} : l'archive doit contenir exactement un fichier CSV "
                    f"(trouvé : {noms}).")
            membre = membres[0]
            cible = dossier / Path(membre.filename).name
            dossier.mkdir(parents=True, exist_ok=True)
            with archive.open(membre) as src:
                entete = _premiere_ligne(src, f"{chemin}!{membre.filename}")
            if not (cible.exists() and cible.stat().st_size == membre.file_size):
                temporaire = cible.with_name(cible.name + f".partiel-{os.getpid()}")
                with archive.open(membre) as src, open(temporaire, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
                os.replace(temporaire, cible)
            return cible, entete
    except zipfile.BadZipFile:
        raise FichierInvalide(f"{chemin} : archive ZIP corrompue ou illisible.") from None
    except (zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise FichierInvalide(f"{chemin} : archive ZIP corrompue ({exc}).") from None


def _separer(entete: str, separateur: str) -> list[str]:
    return [c.strip().strip('"') for c in entete.split(separateur)]


def preparer(chemin: str | Path, role: str, dossier_travail: str | Path) -> FichierSource:
    """Open an official file, check its header, and make it readable as plain CSV.

    Parameters
    ----------
    chemin : path
        The file as downloaded (``.csv`` or ``.zip``).
    role : str
        ``etablissements``, ``unites_legales`` or ``geolocalisation``.
    dossier_travail : path
        Where a zipped CSV is extracted (reused when already extracted).

    Raises
    ------
    FichierIntrouvable, FichierInvalide, ColonneManquante
        With a one-line French message naming the file and the column.
    """
    if role not in ROLES:
        raise ValueError(role)
    chemin = Path(chemin)
    if not chemin.exists():
        raise FichierIntrouvable(f"Fichier introuvable : {chemin} ({ROLES[role]}).")
    if chemin.is_dir():
        raise FichierInvalide(f"{chemin} est un dossier ; un fichier CSV ou ZIP était attendu.")
    if zipfile.is_zipfile(chemin):
        csv, entete = _extraire(chemin, Path(dossier_travail))
    else:
        with open(chemin, "rb") as flux:
            debut = flux.read(4)
            if debut[:2] == b"PK":
                raise FichierInvalide(f"{chemin} : archive ZIP corrompue ou illisible.")
            flux.seek(0)
            entete = _premiere_ligne(flux, str(chemin))
        csv = chemin
    separateur = ";" if role == "geolocalisation" else ","
    if role != "geolocalisation" and entete.count(";") > entete.count(","):
        separateur = ";"
    if role == "geolocalisation" and entete.count(",") > entete.count(";"):
        separateur = ","
    colonnes = _separer(entete, separateur)
    source = FichierSource(role=role, chemin=chemin, csv=csv, colonnes=colonnes,
                           separateur=separateur, variante="", taille=chemin.stat().st_size)
    _verifier_colonnes(source)
    return source


def _verifier_colonnes(source: FichierSource) -> None:
    role, nom, presentes = source.role, source.chemin.name, set(source.colonnes)
    # A file that is plainly another official file.
    if role == "etablissements" and "siret" not in presentes:
        if "categorieJuridiqueUniteLegale" in presentes:
            raise FichierInvalide(
                f"{nom} : ce fichier est le stock des unités légales (colonne "
                "categorieJuridiqueUniteLegale), pas celui des établissements attendu ici.")
        if "plg_qp15" in presentes or "qualite_xy" in presentes:
            raise FichierInvalide(
                f"{nom} : ce fichier est le fichier de géolocalisation, pas le stock des "
                "établissements attendu ici.")
    if role == "unites_legales" and "siret" in presentes:
        raise FichierInvalide(
            f"{nom} : ce fichier contient une colonne siret : c'est un fichier "
            "d'établissements, pas le stock des unités légales attendu ici.")
    if role == "geolocalisation" and "siret" in presentes and "x" not in presentes \
            and "activitePrincipaleEtablissement" in presentes:
        raise FichierInvalide(
            f"{nom} : ce fichier est le stock des établissements, pas le fichier de "
            "géolocalisation attendu ici.")
    officielles = colonnes_officielles(role)
    for ligne in officielles.filter(pl.col("statut") == "obligatoire").iter_rows(named=True):
        if ligne["colonne"] not in presentes:
            raise ColonneManquante(
                f"{nom} : colonne obligatoire absente : {ligne['colonne']} "
                f"({ROLES[role]}).")
    if role == "geolocalisation":
        if not ({"plg_qp15", "plg_qp24", "plg_qp"} & presentes):
            source.avertissements.append(
                f"{nom} : aucune colonne plg_qp15, plg_qp24 ou plg_qp : l'accord avec le "
                "code QPV de l'Insee ne sera pas mesuré.")
    for ligne in officielles.filter(pl.col("statut") == "utilisee").iter_rows(named=True):
        c = ligne["colonne"]
        if c in presentes or ligne["depuis"] in ("etalab",) or c.startswith("plg_qp"):
            continue
        if c.startswith("coordonneeLambert"):
            source.avertissements.append(
                f"{nom} : colonne {c} absente (schéma antérieur à 2021) : les établissements "
                "sans ligne de géolocalisation ne pourront pas être localisés.")
        else:
            source.avertissements.append(f"{nom} : colonne facultative absente : {c}.")
    n = len(source.colonnes)
    if role == "etablissements":
        if "longitude" in presentes and "latitude" in presentes:
            source.variante = "etalab"
        else:
            source.variante = f"insee-{n}"
    elif role == "unites_legales":
        source.variante = f"insee-{n}"
    else:
        source.variante = "insee-plg_qp" if "plg_qp" in presentes else f"insee-{n}"


def _lire_brut(chemin: Path, position: int) -> bytes:
    """The line around DuckDB's reported byte position, unchanged.

    DuckDB reports a position at (or just after) the start of the line: go back to the
    previous newline so the bytes returned are exactly the physical line.
    """
    with open(chemin, "rb") as flux:
        debut = max(0, position - (1 << 16))
        flux.seek(debut)
        avant = flux.read(position - debut)
        coupure = avant.rfind(b"\n", 0, max(0, len(avant) - 1)) if avant.endswith(b"\n") \
            else avant.rfind(b"\n")
        flux.seek(debut + coupure + 1 if coupure >= 0 else debut)
        return flux.readline().rstrip(b"\r\n")


def _amincir(cadre: pl.DataFrame, garder, toujours: tuple[str, ...]) -> pl.DataFrame:
    """Apply ``garder`` to rows read with all their values (see :func:`convertir`)."""
    if garder is None:
        return cadre
    cadre = cadre.with_columns(pl.Series("_garder", garder.evaluer(cadre), pl.Boolean))
    return cadre.with_columns([pl.when(pl.col("_garder")).then(pl.col(c)).alias(c)
                               for c in cadre.columns
                               if c not in toujours and c not in ("_garder", "_ligne")])


class _Ecrivain:
    """Writes the rows of a conversion, in the conversion's schema: one Arrow IPC file, or
    the two of a thinned conversion (:class:`Conversion`)."""

    def __init__(self, chemin: Path, colonnes: list[str], garder: bool,
                 numeroter: bool = False, toujours: tuple[str, ...] = (),
                 chemin_gardees: Path | None = None) -> None:
        self.garder = garder
        principales = [c for c in colonnes if c in toujours] if garder else colonnes
        # identifiers read for every row: a numeric key and the rest (lecteur.CLES_NUMERIQUES)
        self.cles = {c: CLES_NUMERIQUES[c] for c in principales
                     if c in CLES_NUMERIQUES} if garder else {}
        champs = [f for c in principales for f in (
            (pa.field(f"_cle_{c}", pa.int64()), pa.field(c, pa.large_string()))
            if c in self.cles else (pa.field(c, pa.large_string()),))]
        if garder:
            champs.append(pa.field("_garder", pa.bool_()))
        if numeroter:
            champs.append(pa.field("_ligne", pa.int64()))
        self.schema = pa.schema(champs)
        # Arrow IPC, uncompressed: the files are a short-lived cache, written at the speed of
        # a copy (Parquet's encoding cost 2 to 3 times more).
        self.flux = [pa.OSFile(str(chemin), "wb")]
        self.ecrivain = ipc.new_file(self.flux[0], self.schema)
        self.ecrivain_gardees = None
        if garder:
            self.schema_gardees = pa.schema([*(pa.field(c, pa.large_string()) for c in colonnes),
                                             pa.field("_rang", pa.int64())])
            self.flux.append(pa.OSFile(str(chemin_gardees), "wb"))
            self.ecrivain_gardees = ipc.new_file(self.flux[1], self.schema_gardees)
        self.lignes = 0

    @staticmethod
    def _conforme(table: pa.Table, schema: pa.Schema) -> pa.Table:
        colonnes = [table.column(c) if c in table.column_names
                    else pa.nulls(table.num_rows, f.type)
                    for c, f in zip(schema.names, schema)]
        return pa.Table.from_arrays(colonnes, names=schema.names).cast(schema)

    def __call__(self, cadre: pl.DataFrame | pa.Table,
                 gardees: pa.Table | None = None) -> None:
        """Write ``cadre`` (every row; when thinned and ``gardees`` is None, with every
        column and ``_garder``, split here), and ``gardees`` (the kept rows, with every
        column and ``_rang``: their row number in ``cadre``)."""
        table = cadre.to_arrow() if isinstance(cadre, pl.DataFrame) else cadre
        if self.garder and gardees is None:
            garde = table.column("_garder")
            gardees = table.filter(garde).append_column(
                "_rang", tableau(np.flatnonzero(numpy_de(garde))))
        if any(f"_cle_{c}" not in table.column_names for c in self.cles):  # read as text
            table = avec_cles(pl.from_arrow(table), self.cles).to_arrow()
        if self.ecrivain_gardees is not None and gardees is not None:
            rangs = tableau(numpy_de(gardees.column("_rang")) + self.lignes)
            gardees = gardees.drop_columns(["_rang"]).append_column("_rang", rangs)
            self.ecrivain_gardees.write_table(self._conforme(gardees, self.schema_gardees))
        self.ecrivain.write_table(self._conforme(table, self.schema))
        self.lignes += table.num_rows

    def fermer(self) -> None:
        self.ecrivain.close()
        if self.ecrivain_gardees is not None:
            self.ecrivain_gardees.close()
        for f in self.flux:
            f.close()


def _options_csv(source: FichierSource, table_rejets: str, table_scans: str) -> str:
    types = "{" + ", ".join(f"'{_sql_str(c)}': 'VARCHAR'" for c in source.colonnes) + "}"
    return f"""header=true, auto_detect=false, columns={types}, delim=?, quote='"',
               escape='"', strict_mode=true, null_padding=false, store_rejects=true,
               rejects_table='{table_rejets}', rejects_scan='{table_scans}',
               max_line_size=1048576, parallel=true"""


class _Repli(Exception):
    """The fast reader hands the whole file over to DuckDB."""


def _juger(source: FichierSource, colonnes: list[str], con: duckdb.DuckDBPyConnection,
           garder: Condition | None, toujours: tuple[str, ...], rejets: list[Rejet],
           dossier: Path):
    """DuckDB's verdict on the doubtful lines of a block: rejects appended to ``rejets``,
    accepted rows returned (thinned like the others) with their physical line ``_ligne``."""
    presentes = [c for c in colonnes if c in source.colonnes]

    def juger(douteuses: list, premiere: int) -> pl.DataFrame:
        # Each doubtful line is followed by a sentinel line (a marker, then empty fields). A
        # line that DuckDB would read as leaving a quote open swallows its sentinel: its
        # verdict would then depend on the lines after it in the file, and the whole file
        # goes to DuckDB instead.
        marque = f"essqpv-sentinelle-{uuid.uuid4().hex}"
        sentinelle = (marque + source.separateur * (len(source.colonnes) - 1)).encode()
        entete = source.separateur.join(
            '"' + c.replace('"', '""') + '"' for c in source.colonnes).encode()
        corps = b"".join(d.contenu + b"\n" + sentinelle + b"\n" for d in douteuses)
        with tempfile.NamedTemporaryFile("wb", suffix=".csv", dir=dossier,
                                         delete=False) as f:
            f.write(entete + b"\n" + corps)
        try:
            con.execute("DROP TABLE IF EXISTS rejets_lignes; DROP TABLE IF EXISTS scans_lignes")
            choix = ", ".join([f'"{_sql_str(source.colonnes[0])}" AS _sentinelle',
                               *(f'"{c}"' for c in presentes)])
            table = con.sql(
                f"SELECT {choix} FROM read_csv(?, "
                f"{_options_csv(source, 'rejets_lignes', 'scans_lignes')})",
                params=[f.name, source.separateur]).to_arrow_table()
            erreurs = con.execute(
                """SELECT line, string_agg(DISTINCT CAST(error_type AS VARCHAR), '|')
                   FROM rejets_lignes GROUP BY line ORDER BY line""").fetchall()
        except duckdb.Error:
            raise _Repli() from None
        finally:
            os.unlink(f.name)
        # Doubtful line i is line 2 + 2i of that file, its sentinel line 3 + 2i.
        rejetees: dict[int, str] = {}
        for ligne, typ in erreurs:
            i, reste = divmod(int(ligne) - 2, 2)
            if reste or not 0 <= i < len(douteuses):
                raise _Repli()
            rejetees[i] = str(typ)
        marques = table.column("_sentinelle").to_pylist()
        rangs: list[int] = []  # for each accepted row, the index of its doubtful line
        groupe, dans_groupe = 0, 0
        for r, m in enumerate(marques):
            if m == marque:
                groupe, dans_groupe = groupe + 1, 0
                continue
            dans_groupe += 1
            if dans_groupe > 1 or groupe >= len(douteuses) or groupe in rejetees:
                raise _Repli()
            rangs.append(r)
        if groupe != len(douteuses) or len(rangs) + len(rejetees) != len(douteuses):
            raise _Repli()
        for i, typ in sorted(rejetees.items()):
            d = douteuses[i]
            rejets.append(Rejet(premiere + d.indice, _motif(typ), d.contenu))
        lignes = [premiere + d.indice for i, d in enumerate(douteuses) if i not in rejetees]
        table = table.take(tableau(np.array(rangs, np.int64)))
        cadre = pl.from_arrow(table).select(presentes) if presentes else \
            pl.DataFrame(height=table.num_rows)
        cadre = cadre.with_columns(pl.Series("_ligne", lignes, pl.Int64))
        return _amincir(cadre, garder, toujours)
    return juger


def _convertir_duckdb(source: FichierSource, colonnes: list[str], con: duckdb.DuckDBPyConnection,
                      garder: Condition | None, toujours: tuple[str, ...],
                      ecrire: _Ecrivain) -> list[Rejet]:
    """The whole file through DuckDB's reader (files whose quoted fields span lines)."""
    suffixe = hashlib.sha1(str(source.csv).encode()).hexdigest()[:8]
    table_rejets, table_scans = f"rejets_{suffixe}", f"scans_{suffixe}"
    presentes = [c for c in colonnes if c in source.colonnes]
    choix = ", ".join(f'"{c}"' for c in presentes) or "1 AS _vide"
    con.execute(f"DROP TABLE IF EXISTS {table_rejets}; DROP TABLE IF EXISTS {table_scans}")
    lecteur = con.sql(
        f"SELECT {choix} FROM read_csv(?, {_options_csv(source, table_rejets, table_scans)})",
        params=[str(source.csv), source.separateur]).to_arrow_reader(1 << 17)
    try:
        for lot in lecteur:
            cadre = pl.from_arrow(pa.Table.from_batches([lot]))
            if not presentes:
                cadre = pl.DataFrame(height=lot.num_rows)
            ecrire(_amincir(cadre, garder, toujours))
    except OSError as exc:  # DuckDB's errors, once they went through the Arrow stream
        raise FichierInvalide(f"{source.chemin.name} : lecture impossible "
                              f"({str(exc).splitlines()[0]}).") from None
    erreurs = con.execute(
        f"""SELECT line, min(line_byte_position),
                   string_agg(DISTINCT CAST(error_type AS VARCHAR), '|')
            FROM {table_rejets} GROUP BY line ORDER BY line""").fetchall()
    return [Rejet(int(ligne), _motif(str(typ)), _lire_brut(source.csv, int(pos)))
            for ligne, pos, typ in erreurs]


def _numeroter(chemin: Path, acceptees: int, rejets: list[Rejet]) -> None:
    """Add ``_ligne`` to a conversion read by DuckDB alone: lines 2, 3... but the rejected."""
    rejetees = np.array(sorted(r.ligne for r in rejets), np.int64)
    numeros = np.setdiff1d(np.arange(2, 2 + acceptees + len(rejetees), dtype=np.int64),
                           rejetees, assume_unique=True)[:acceptees]
    with pa.OSFile(str(chemin), "rb") as f:  # read into memory: the file is rewritten
        table = ipc.open_file(f).read_all().append_column("_ligne", tableau(numeros))
    with pa.OSFile(str(chemin), "wb") as f, ipc.new_file(f, table.schema) as ecrivain:
        ecrivain.write_table(table)


def convertir(source: FichierSource, colonnes: list[str], chemin: str | Path,
              con: duckdb.DuckDBPyConnection | None = None, garder: Condition | None = None,
              toujours: tuple[str, ...] = (), moteur: str = "rapide",
              numeroter: bool = False) -> Conversion:
    """Stream the rows of ``source`` into an Arrow IPC file (``chemin``), keeping only
    ``colonnes``.

    Columns of ``colonnes`` that the file lacks are written as NULL text, so later stages
    see one schema whatever the vintage. Every value stays text; an empty field is NULL.

    ``garder`` (a :class:`~essqpv.sources.lecteur.Condition` on the file's columns) thins
    the file without losing a row: every row keeps the columns of ``toujours`` (and the
    Boolean ``_garder``), and only the rows where ``garder`` is true keep the others, in a
    second file (:class:`Conversion`; ``Conversion.cadre()`` joins the two back). The row
    count, the rejects and the row order stay those of the file, while the rows no later
    stage can use cost almost nothing to read and write (the national stock is mostly closed
    or non-ESS establishments).

    Lines are read by :mod:`essqpv.sources.lecteur` (normal lines) and DuckDB (the doubtful
    ones, which it accepts or rejects with a reason); ``moteur="duckdb"`` gives the whole
    file to DuckDB (the reference the fast reader is tested against). ``numeroter`` adds the
    physical line number of each row (``_ligne``; through DuckDB, blank lines are assumed
    absent: they would shift it).

    Returns
    -------
    Conversion
        ``lignes_lues`` (data lines, malformed included) = ``lignes_acceptees`` + rejects.
    """
    chemin = Path(chemin)
    chemin.parent.mkdir(parents=True, exist_ok=True)
    propre = con is None
    con = con or duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    temporaire = chemin.with_name(chemin.name + f".partiel-{os.getpid()}")
    gardees = chemin_gardees(chemin) if garder is not None else None
    temp_gardees = gardees.with_name(gardees.name + f".partiel-{os.getpid()}") \
        if gardees is not None else None
    try:
        rejets: list[Rejet] = []
        ecrire = _Ecrivain(temporaire, colonnes, garder is not None, numeroter, toujours,
                           temp_gardees)
        try:
            if moteur != "rapide" or sys.byteorder != "little":  # the scanner reads words
                raise _Repli()
            lecteur.lire(source.csv, source.colonnes, colonnes, source.separateur, garder,
                         toujours, _juger(source, colonnes, con, garder, toujours, rejets,
                                          chemin.parent), ecrire, taille=lecteur.TAILLE_BLOC,
                         numeroter=numeroter)
        except (lecteur.ChampOuvert, _Repli) as repli:
            ecrire.fermer()
            ecrire = _Ecrivain(temporaire, colonnes, garder is not None, False, toujours,
                               temp_gardees)
            try:
                rejets = _convertir_duckdb(source, colonnes, con, garder, toujours, ecrire)
            except (duckdb.Error, FichierInvalide):
                if isinstance(repli, lecteur.ChampOuvert) and repli.fins_melangees:
                    raise FichierInvalide(
                        f"{source.chemin.name} : lecture impossible : la ligne {repli.ligne} "
                        "ne se termine pas comme l'en-tête (fins de ligne CR LF et LF "
                        "mélangées) ; réenregistrez le fichier avec des fins de ligne "
                        "uniformes.") from None
                raise
            ecrire.fermer()
            if numeroter:
                _numeroter(temporaire, ecrire.lignes, rejets)
        else:
            ecrire.fermer()
        lignes = ecrire.lignes
        if gardees is not None:
            os.replace(temp_gardees, gardees)
        os.replace(temporaire, chemin)
        return Conversion(chemin=chemin, lignes_lues=lignes + len(rejets),
                          lignes_acceptees=lignes, rejets=rejets, gardees=gardees)
    except duckdb.Error as exc:
        raise FichierInvalide(f"{source.chemin.name} : lecture impossible "
                              f"({str(exc).splitlines()[0]}).") from None
    finally:
        for t in (temporaire, temp_gardees):
            if t is not None and t.exists():
                t.unlink()
        if propre:
            con.close()


def _sql_str(texte: str) -> str:
    return texte.replace("'", "''")
