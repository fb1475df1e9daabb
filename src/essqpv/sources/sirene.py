"""Readers of INSEE's Sirene files: establishments, legal units, geolocation.

Every file is read as published (zipped or not, every column as text), its header checked
against the official column lists of ``reference/colonnes_sources.csv``, and its rows streamed
into an Arrow IPC file by the reader of :mod:`essqpv.sources.lecteur` (pyarrow's CSV reader,
each physical line accounted for). Malformed lines (wrong field count, undecodable bytes,
broken quoting, a repeated identifier) never stop a run: they are collected with their
physical line number (the header is line 1) and the reason, and their bytes are kept
unchanged.

Public verbs: :func:`preparer` (open and check a file) and :func:`convertir` (rows to an Arrow
file, rejects out).
"""
from __future__ import annotations

import io
import os
import shutil
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

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
    Rejet,
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
    "etablissements_historique": "historique des établissements (StockEtablissementHistorique)",
    "unites_legales_historique": "historique des unités légales (StockUniteLegaleHistorique)",
}

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
    lignes_vides: int = 0
    lignes_suites: int = 0

    @property
    def equilibree(self) -> bool:
        """Physical lines after the header = kept + rejected + blank + continuation lines."""
        return self.lignes_lues == (self.lignes_acceptees + len(self.rejets) + self.lignes_vides
                                    + self.lignes_suites)

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


# The column whose value may not repeat, per role (issue: duplicate identifiers).
UNIQUES = {"etablissements": "siret", "unites_legales": "siren"}


def convertir(source: FichierSource, colonnes: list[str], chemin: str | Path,
              garder: Condition | None = None, toujours: tuple[str, ...] = (),
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
    stage can use cost little to write (the national stock is mostly closed or non-ESS
    establishments). Among the kept rows, a siret (establishments) or siren (legal units)
    seen before is rejected (``siret_en_double``, ``siren_en_double``), the first kept.

    Lines are read by :func:`essqpv.sources.lecteur.lire` (pyarrow). ``numeroter`` adds the
    physical line number of each row (``_ligne``).

    Returns
    -------
    Conversion
        ``lignes_lues`` (physical lines after the header) = ``lignes_acceptees`` + rejects +
        ``lignes_vides`` + ``lignes_suites`` (continuation lines of multi-line records).
    """
    chemin = Path(chemin)
    chemin.parent.mkdir(parents=True, exist_ok=True)
    temporaire = chemin.with_name(chemin.name + f".partiel-{os.getpid()}")
    gardees = chemin_gardees(chemin) if garder is not None else None
    temp_gardees = gardees.with_name(gardees.name + f".partiel-{os.getpid()}") \
        if gardees is not None else None
    uniques = UNIQUES.get(source.role) if garder is not None else None
    if uniques is not None and uniques not in colonnes:
        uniques = None
    try:
        ecrire = _Ecrivain(temporaire, colonnes, garder is not None, numeroter, toujours,
                           temp_gardees)
        try:
            lecture = lecteur.lire(source.csv, source.colonnes, colonnes, source.separateur,
                                   garder, toujours, ecrire, numeroter=numeroter,
                                   uniques=uniques)
        finally:
            ecrire.fermer()
        if gardees is not None:
            os.replace(temp_gardees, gardees)
        os.replace(temporaire, chemin)
        return Conversion(chemin=chemin, lignes_lues=lecture.lignes - 1,
                          lignes_acceptees=lecture.acceptees, rejets=lecture.rejets,
                          gardees=gardees, lignes_vides=lecture.vides,
                          lignes_suites=lecture.suites)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, pa.ArrowException):
            raise
        raise FichierInvalide(f"{source.chemin.name} : lecture impossible "
                              f"({str(exc).splitlines()[0]}).") from None
    finally:
        for t in (temporaire, temp_gardees):
            if t is not None and t.exists():
                t.unlink()
