"""The observatory base: one DuckDB file, several vintages (docs/architecture.md).

:func:`construire` reads the official files, classifies, places and writes one vintage;
it builds in a temporary file and swaps it in at the end, so an interrupted or failed build
leaves the previous base intact. The other functions read a base (read-only).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from essqpv import __version__, garde_fous, perimeter, reference
from essqpv.config import LICENCE_DONNEES, Reglages
from essqpv.errors import (BaseInvalide, EssqpvError, FichierIntrouvable, ParametreInvalide,
                           cause_os)
from essqpv.sources import lecteur, sirene
from essqpv.sources.lecteur import CLES_NUMERIQUES, Condition, cle_et_reste, texte_cle
from essqpv.sources.emplois import COMPTES, ValidationEmplois, valider_emplois

__all__ = ["construire", "ouvrir", "millesimes", "metadonnees", "controle", "lister_etablissements",
           "millesime_par_defaut", "qpv_de_la_base", "COLONNES_PUBLIQUES", "fermer_connexions",
           "etablissements_publics"]

Progression = Callable[[str], None]

RENOMMAGE_ETABLISSEMENTS = {
    "siren": "siren", "nic": "nic", "siret": "siret",
    "dateCreationEtablissement": "date_creation", "trancheEffectifsEtablissement": "tranche",
    "codeCommuneEtablissement": "code_commune", "etatAdministratifEtablissement": "etat",
    "activitePrincipaleEtablissement": "naf",
    "nomenclatureActivitePrincipaleEtablissement": "nomenclature_naf",
    "caractereEmployeurEtablissement": "employeur_brut",
    "coordonneeLambertAbscisseEtablissement": "lambert_x",
    "coordonneeLambertOrdonneeEtablissement": "lambert_y",
    "enseigne1Etablissement": "enseigne", "denominationUsuelleEtablissement": "denomination_usuelle",
    "numeroVoieEtablissement": "numero_voie", "indiceRepetitionEtablissement": "indice_repetition",
    "typeVoieEtablissement": "type_voie", "libelleVoieEtablissement": "libelle_voie",
    "codePostalEtablissement": "code_postal", "libelleCommuneEtablissement": "libelle_commune",
    "codePaysEtrangerEtablissement": "pays", "longitude": "etalab_lon", "latitude": "etalab_lat",
}
RENOMMAGE_UNITES_LEGALES = {
    "siren": "siren", "categorieJuridiqueUniteLegale": "categorie_juridique",
    "economieSocialeSolidaireUniteLegale": "ess", "denominationUniteLegale": "denomination",
    "sigleUniteLegale": "sigle",
}
RENOMMAGE_GEOLOCALISATION = {
    "siret": "siret", "x": "geo_x", "y": "geo_y", "qualite_xy": "geo_qualite",
    "epsg": "geo_epsg", "plg_qp15": "plg_qp15", "plg_qp24": "plg_qp24", "plg_qp": "plg_qp",
}
COLONNES_EMPLOIS = ["siret", "effectif", *COMPTES, "annee"]

COLONNES_ETABLISSEMENTS = [
    "siret", "siren", "nic", "denomination", "enseigne", "famille", "motif_famille",
    "categorie_juridique", "naf", "nomenclature_naf", "secteur", "employeur", "tranche",
    "effectif_estime", "date_creation", "code_commune", "commune", "departement", "region",
    "epci", "adresse", "lon", "lat", "source_coordonnees", "localise", "motif_non_localise",
    "qpv", "qpv_tampon", "distance_qpv_m", "qpv_insee", "effectif", "femmes", "cdi",
    "contrats_aides", "temps_complet", "score_ban",
]
COLONNES_PUBLIQUES = ["siret", "denomination", "enseigne", "famille", "secteur", "naf",
                      "tranche", "employeur", "commune", "departement", "region", "adresse",
                      "qpv", "qpv_tampon", "lon", "lat"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS millesimes (
    millesime VARCHAR PRIMARY KEY, geographie_qpv VARCHAR, tampon_m INTEGER,
    date_construction TIMESTAMP, version VARCHAR, synthetique BOOLEAN, avec_emplois BOOLEAN,
    sources JSON, controle JSON, accord_qpv_insee JSON, avertissements JSON);
CREATE TABLE IF NOT EXISTS qpv (
    millesime VARCHAR, code_qp VARCHAR, nom_qp VARCHAR, communes VARCHAR,
    departement VARCHAR, region VARCHAR, surface_m2 DOUBLE, repare BOOLEAN,
    hors_champ_sirene BOOLEAN, geometrie BLOB);
CREATE TABLE IF NOT EXISTS rejets (
    millesime VARCHAR, fichier VARCHAR, ligne BIGINT, motif VARCHAR, contenu VARCHAR);
CREATE TABLE IF NOT EXISTS discordances_qpv_insee (
    millesime VARCHAR, siret VARCHAR, qpv_essqpv VARCHAR, qpv_insee VARCHAR);
"""


@dataclass
class _Fichiers:
    etablissements: sirene.FichierSource
    unites_legales: sirene.FichierSource
    geolocalisation: sirene.FichierSource | None
    emplois: sirene.FichierSource | None


def _verifier_millesime(millesime: str) -> str:
    if not re.fullmatch(r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])", millesime or ""):
        raise ParametreInvalide(
            f"Millésime invalide : « {millesime} » (attendu : AAAA-MM, par exemple 2024-01).")
    return millesime


def _empreinte_rapide(chemin: Path) -> str:
    """Fingerprint for the cache: size, mtime, and SHA-256 of the first and last 8 MiB."""
    st = chemin.stat()
    h = hashlib.sha256(f"{chemin.resolve()}|{st.st_size}|{st.st_mtime_ns}|{__version__}".encode())
    with open(chemin, "rb") as f:
        h.update(f.read(8 << 20))
        if st.st_size > 8 << 20:  # (the last 8 MiB, or what follows the first 8 MiB)
            f.seek(max(8 << 20, st.st_size - (8 << 20)))
            h.update(f.read())
    return h.hexdigest()[:20]


def _sha256(chemin: Path, limite: int = 1 << 30) -> tuple[str, str]:
    """SHA-256 of a file (``methode='sha256'``), or of its first and last 64 MiB above ``limite``."""
    h = hashlib.sha256()
    taille = chemin.stat().st_size
    with open(chemin, "rb") as f:
        if taille <= limite:
            for bloc in iter(lambda: f.read(1 << 22), b""):
                h.update(bloc)
            return h.hexdigest(), "sha256"
        h.update(f.read(64 << 20))
        f.seek(-(64 << 20), os.SEEK_END)
        h.update(f.read())
    return h.hexdigest(), "sha256-debut-fin-64Mio"


def _sha256_memorise(chemin: Path, travail: Path) -> tuple[str, str]:
    """:func:`_sha256`, remembered in ``travail`` for the same file (fast fingerprint)."""
    memoire = travail / "empreintes.json"
    connues = json.loads(memoire.read_text("utf-8")) if memoire.exists() else {}
    cle = _empreinte_rapide(chemin)
    if cle not in connues:
        connues[cle] = list(_sha256(chemin))
        connues = dict(list(connues.items())[-32:])
        memoire.write_text(json.dumps(connues), "utf-8")
    return connues[cle][0], connues[cle][1]


def _convertir_cache(source: sirene.FichierSource, colonnes: list[str], travail: Path,
                     garder: Condition | Callable[[], Condition] | None = None,
                     toujours: tuple[str, ...] = (), depend: str = "",
                     numeroter: bool = False) -> sirene.Conversion:
    """Convert to Arrow files, reusing the cached conversion of the same file when present.

    ``garder``/``toujours`` thin the rows no later stage uses (:func:`sirene.convertir`);
    ``depend`` is the key of what ``garder`` depends on (another file's cache, the rules),
    so that the cache is rebuilt when that changes.
    """
    # The reader's version is part of the key: a cache written by another reader is redone.
    cle = hashlib.sha256(f"{_empreinte_rapide(source.chemin)}|lecteur-pyarrow-1|{numeroter}|"
                         f"{depend}".encode()).hexdigest()[:20]
    chemin = travail / f"{source.role}-{cle}.arrow"
    meta = travail / f"{source.role}-{cle}.json"
    gardees = sirene.chemin_gardees(chemin) if garder is not None else None
    if chemin.exists() and meta.exists() and (gardees is None or gardees.exists()):
        m = json.loads(meta.read_text("utf-8"))
        rejets = [sirene.Rejet(r["ligne"], r["motif"], bytes.fromhex(r["contenu"]))
                  for r in m["rejets"]]
        return sirene.Conversion(chemin, m["lignes_lues"], m["lignes_acceptees"], rejets,
                                 gardees, m["lignes_vides"], m["lignes_suites"])
    for ancien in travail.glob(f"{source.role}-*"):
        ancien.unlink()
    if callable(garder):  # built only when the file is read (it may read another cache)
        garder = garder()
    conv = sirene.convertir(source, colonnes, chemin, garder, toujours, numeroter=numeroter)
    meta.write_text(json.dumps({
        "lignes_lues": conv.lignes_lues, "lignes_acceptees": conv.lignes_acceptees,
        "lignes_vides": conv.lignes_vides, "lignes_suites": conv.lignes_suites,
        "rejets": [{"ligne": r.ligne, "motif": r.motif, "contenu": r.contenu.hex()}
                   for r in conv.rejets]}), "utf-8")
    return conv


def _gardees(conversion: sirene.Conversion, colonne: str) -> pl.Series:
    """The distinct values of ``colonne`` on the rows a thinned conversion kept."""
    return conversion.lire_gardees().select(colonne).unique().collect().to_series()


def _garder_etablissements(c_ul: sirene.Conversion) -> tuple[Callable[[], Condition],
                                                               tuple[str, ...], str]:
    """(condition, columns always kept, cache dependency) thinning the establishments: the
    active ones of the legal units kept by :func:`_candidats_ess`."""
    def condition() -> Condition:
        return Condition(pl.col("etatAdministratifEtablissement") == "A",
                         dans=("siren", _gardees(c_ul, "siren")))
    return condition, ("siren", "etatAdministratifEtablissement"), c_ul.chemin.name


def _garder_geolocalisation(c_etab: sirene.Conversion) -> Callable[[], Condition]:
    """The geolocation rows of the establishments kept by :func:`_garder_etablissements`."""
    return lambda: Condition(dans=("siret", _gardees(c_etab, "siret")))


def _candidats_ess(source: sirene.FichierSource) -> tuple[Condition, str]:
    """Condition true for the legal units an ESS family rule can match, and a key of the
    rules (METHODOLOGY 3: a family needs a listed legal category or the ESS flag)."""
    from essqpv import reference
    regles = reference.regles_familles()
    cle = "amincie-2|" + hashlib.sha256(regles.write_csv().encode()).hexdigest()[:16]
    condition = pl.lit(False)
    for colonne, regle in (("categorieJuridiqueUniteLegale", ["categorie_juridique"]),
                           ("economieSocialeSolidaireUniteLegale", ["ess", "ess_et_nom"])):
        if not source.a(colonne):
            continue
        if colonne == "economieSocialeSolidaireUniteLegale":
            valeurs = regles.filter(pl.col("regle") == "ess")["valeur"].to_list()
        else:
            valeurs = regles.filter(pl.col("regle").is_in(regle))["valeur"].to_list()
        if valeurs:
            condition = condition | pl.col(colonne).is_in(pl.Series(valeurs, dtype=pl.String)
                                                          .implode())
    return Condition(condition), cle


def _perimetre_ess(c_etab: sirene.Conversion,
                   c_ul: sirene.Conversion) -> tuple[pl.DataFrame, dict]:
    """In-scope establishments (METHODOLOGY 2-4) and the counts of the reconciliation,
    from the thinned conversions of the two stocks (every row: siren, state; the kept
    rows: every column)."""
    etab = c_etab.lire().rename(RENOMMAGE_ETABLISSEMENTS, strict=False)
    ul = c_ul.lire().rename(RENOMMAGE_UNITES_LEGALES, strict=False)
    actives = etab.filter(pl.col("etat") == "A")
    # Only the legal units an ESS rule can match were kept with their attributes: classify
    # those, after keeping the first row of each of their sirens among *all* rows (the
    # first row of a siren may be one that was not kept: it then has no family).
    ul_gardees = c_ul.lire_gardees().rename(RENOMMAGE_UNITES_LEGALES, strict=False)
    # (keys of every row; the few sirens that are not numbers, apart)
    (cu, tu), (ca, ta) = _cles_siren(ul, "_garder"), _cles_siren(actives)
    cles_ul, cles_actives, textes_ul, textes_actives = pl.collect_all([cu, ca, tu, ta])
    # The sirens as numbers, sorted as INSEE publishes them: a kept row is the first of its
    # siren when the previous one differs. Otherwise (a file not sorted, a kept row with a
    # malformed siren): by a join on the text.
    trie, rangs = _premieres_lignes(cles_ul["_cle"].to_numpy(),
                                    cles_ul["_garder"].to_numpy())
    if trie:
        premiers = pl.LazyFrame({"_rang": rangs})
    else:
        premiers = (ul.select(texte_cle("siren", CLES_NUMERIQUES["siren"]), "_garder")
                    .with_row_index("_rang")
                    .join(ul_gardees.select("siren").unique(), on="siren", how="semi")
                    .sort("_rang").unique("siren", keep="first", maintain_order=True)
                    .filter(pl.col("_garder")).select(pl.col("_rang").cast(pl.Int64)))
    ul_ess = perimeter.familles_unites_legales(
        ul_gardees.join(premiers, on="_rang", how="semi").drop("_rang"))
    # The legal-unit join and the classification on the key columns only (a few hundred
    # bytes a row less through the join, the classification and the filter); the other
    # columns are then read for the rows in the perimeter alone.
    gardees = c_etab.lire_gardees().rename(RENOMMAGE_ETABLISSEMENTS)
    jointes = gardees.select(_CLES_CLASSEMENT).filter(pl.col("etat") == "A").join(
        ul_ess.select("siren", "famille", "motif_famille", "categorie_juridique",
                      "denomination"), on="siren", how="left", maintain_order="left")
    classees = perimeter.classer_etablissements(jointes)
    comptes = classees.select(
        pl.col("famille").is_not_null().sum().alias("ess"),
        (pl.col("famille").is_not_null() & pl.col("motif_exclusion").is_not_null()).sum()
        .alias("exclues"),
    )
    dans = (classees.filter(pl.col("famille").is_not_null()
                            & pl.col("motif_exclusion").is_null())
            .drop([c for c in _INUTILES if c != "_rang"], strict=False))
    # (the keys of every row, hundreds of MB at the national scale, freed before the
    # kept rows are joined)
    actives_n = cles_actives.height
    sans_ul = _compter_sans_unite_legale(cles_ul, cles_actives, textes_ul, textes_actives)
    del cles_ul, cles_actives, textes_ul, textes_actives
    dans_cles, comptes_df, acceptees_df = pl.collect_all([dans, comptes, etab.select(pl.len())])
    autres = [c for c in gardees.collect_schema().names()
              if c not in dans_cles.columns and c not in _INUTILES]
    rangs = dans_cles["_rang"]
    reste = (gardees.select("_rang", *autres)
             .filter(pl.col("_rang").is_in(rangs.implode())).collect())
    if not reste["_rang"].equals(rangs):  # (same rows in the same order, by construction)
        reste = rangs.to_frame().join(reste, on="_rang", how="left", maintain_order="left")
    dans_df = dans_cles.drop("_rang").hstack(reste.drop("_rang").get_columns())
    return dans_df, {**comptes_df.row(0, named=True), "actives": actives_n,
                     "sans_ul": sans_ul, "acceptees": acceptees_df.item()}


# The columns the classification reads (and ``_rang``, to fetch the others afterwards).
_CLES_CLASSEMENT = ("_rang", "siren", "etat", "naf", "nomenclature_naf", "tranche",
                    "employeur_brut")
# Columns no stage after the perimeter reads (the state is "A", the exclusion NULL there;
# the address parts are read once, into ``adresse``).
_INUTILES = ("_rang", "etat", "employeur_brut", "nafrev2", "motif_exclusion", "pays")
_PARTIES_ADRESSE = ("numero_voie", "indice_repetition", "type_voie", "libelle_voie",
                    "code_postal", "libelle_commune")
# The columns only the placement reads: stored in the perimeter's cache, read from it only
# when the placement is not cached, dropped once placed.
ENTREES_PLACEMENT = ("departement_crs", "geo_x", "geo_y", "geo_epsg", "geo_qualite",
                     "etalab_lon", "etalab_lat", "lambert_x", "lambert_y")
# Text columns with few distinct values, kept as ``pl.Enum`` (one to four bytes a row
# instead of a 16-byte string view) from the perimeter to the base, where they are VARCHAR.
# Their categories are their values in byte order: sorted, they sort as the text.
COLONNES_ENUM = ("nic", "famille", "motif_famille", "categorie_juridique", "naf",
                 "nomenclature_naf", "secteur", "tranche", "code_commune", "commune",
                 "departement", "region", "epci", "departement_crs", "geo_epsg", "geo_qualite")
COLONNES_ENUM_PLACEMENT = ("source_coordonnees", "motif_non_localise", "qpv", "qpv_tampon",
                           "qpv_insee")


def _en_enum(df: pl.DataFrame, colonnes: tuple[str, ...]) -> pl.DataFrame:
    """``df`` with its text columns ``colonnes`` cast to an ``Enum`` of their values."""
    return df.with_columns(
        pl.col(c).cast(pl.Enum(df[c].drop_nulls().unique().sort()))
        for c in colonnes if df.schema.get(c) == pl.String)


def _ajouter(df: pl.DataFrame, droite: pl.DataFrame, on: str) -> pl.DataFrame:
    """``df`` left-joined with ``droite`` (at most one row per key), without copying ``df``:
    the columns of ``droite`` are gathered in the order of ``df`` and added beside its own."""
    cote = (df.select(on).join(droite, on=on, how="left", maintain_order="left",
                               validate="m:1").drop(on))
    return df.hstack(cote.get_columns())


def _cle_derivee(*parties: str) -> str:
    """Key of a derived cache: its inputs' cache files, the rules it applies, the version."""
    from essqpv import reference
    h = hashlib.sha256("|".join((__version__, *parties)).encode())
    for nom in ("familles.csv", "exclusions_activite.csv", "secteurs.csv",
                "tranches_effectifs.csv", "communes.csv", "epci.csv"):
        h.update(reference.chemin(nom).read_bytes())
    return h.hexdigest()[:20]


def _empreinte_reference(nom: str) -> str:
    """Fingerprint of an embedded reference file (its bytes)."""
    from essqpv import reference
    return hashlib.sha256(reference.chemin(nom).read_bytes()).hexdigest()[:20]


def _empreinte_couche(couche) -> str:
    """Fingerprint of QPV contours as placed (codes, repaired geometries, metric CRSs)."""
    import shapely

    from essqpv import reference
    h = hashlib.sha256(couche.geographie.encode())
    h.update("|".join(map(str, couche.codes)).encode())
    for wkb in shapely.to_wkb(couche.geometries):
        h.update(wkb)
    h.update(np.asarray(couche.epsg_metriques, np.int64).tobytes())
    h.update(reference.chemin("crs_departements.csv").read_bytes())
    return h.hexdigest()[:20]


@lru_cache(maxsize=1)
def _empreinte_code() -> str:
    """Fingerprint of the package's own files (code, schemas, reference files): a stored
    result (:func:`_cle_resultat`) is not reused by other code."""
    racine = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(racine.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(f.relative_to(racine).as_posix().encode() + b"\x00" + f.read_bytes())
    return h.hexdigest()[:20]


def _versions() -> str:
    """Versions of the libraries a build's output depends on."""
    from importlib.metadata import PackageNotFoundError, version
    parties = []
    for paquet in ("duckdb", "polars", "pyarrow", "numpy", "shapely", "pyproj", "scipy",
                   "pyogrio"):
        try:
            parties.append(f"{paquet}={version(paquet)}")
        except PackageNotFoundError:
            parties.append(f"{paquet}=-")
    return "|".join(parties)


def _en_cache(travail: Path, prefixe: str, cle: str) -> bool:
    """Whether :func:`_cache_derive` holds a result under ``cle``."""
    return (travail / f"{prefixe}-{cle}.arrow").exists() and \
        (travail / f"{prefixe}-{cle}.json").exists()


def _cache_derive(travail: Path, prefixe: str, cle: str,
                  calcul: Callable[[], tuple[pl.DataFrame, dict]],
                  sans: tuple[str, ...] = ()) -> tuple[pl.DataFrame, dict]:
    """``calcul()`` (a frame and a dict), or its result stored under ``cle`` in ``travail``
    (then without the columns ``sans``, which are not read).

    Stored as Arrow IPC, uncompressed (like the conversions: written and read back at the
    speed of a copy; a rebuild from the cache then costs little more than writing the
    base)."""
    arrow = travail / f"{prefixe}-{cle}.arrow"
    meta = travail / f"{prefixe}-{cle}.json"
    if _en_cache(travail, prefixe, cle):
        colonnes = None
        if sans:
            colonnes = [c for c in pl.read_ipc_schema(arrow) if c not in sans]
        return pl.read_ipc(arrow, columns=colonnes), json.loads(meta.read_text("utf-8"))
    for ancien in travail.glob(f"{prefixe}-*"):
        ancien.unlink()
    df, info = calcul()
    temporaire = arrow.with_name(arrow.name + f".partiel-{os.getpid()}")
    df.write_ipc(temporaire, compression="uncompressed")
    os.replace(temporaire, arrow)
    meta.write_text(json.dumps(info), "utf-8")
    return df, info


def _valider_emplois_cache(source: sirene.FichierSource, conv: sirene.Conversion,
                           travail: Path) -> ValidationEmplois:
    """:func:`valider_emplois`, its result cached with the conversion it depends on."""
    def calcul() -> tuple[pl.DataFrame, dict]:
        v = valider_emplois(source, conv)
        return v.valides, {"rejets": [{"ligne": r.ligne, "motif": r.motif,
                                       "contenu": r.contenu.hex()} for r in v.rejets]}
    valides, info = _cache_derive(travail, "emplois_valides",
                                  _cle_derivee("emplois", conv.chemin.name), calcul)
    return ValidationEmplois(valides, [sirene.Rejet(r["ligne"], r["motif"],
                                                    bytes.fromhex(r["contenu"]))
                                       for r in info["rejets"]])


def _sans_unite_legale(actives: pl.LazyFrame, ul: pl.LazyFrame) -> int:
    """Number of active establishments whose siren has no legal unit in the file."""
    (cu, tu), (ca, ta) = _cles_siren(ul), _cles_siren(actives)
    return _compter_sans_unite_legale(*pl.collect_all([cu, ca, tu, ta]))


def _cles_siren(lignes: pl.LazyFrame, *autres: str) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The sirens of ``lignes`` as keys: (``_cle``, the number of a siren of exactly nine
    digits, else -1, then the columns ``autres``, for every row; ``_texte``, the other
    sirens as text, for the rows that have one). A thinned conversion already stores them
    so (``_cle_siren``). The texts apart: a column of tens of millions of NULL strings
    would cost 16 bytes a row in memory."""
    if "_cle_siren" in lignes.collect_schema().names():
        cle, reste = pl.col("_cle_siren"), pl.col("siren")
    else:
        cle, reste = cle_et_reste("siren", CLES_NUMERIQUES["siren"])
    return (lignes.select(cle.alias("_cle"), *autres),
            lignes.select(reste.alias("_texte")).drop_nulls())


def _compter_sans_unite_legale(u: pl.DataFrame, a: pl.DataFrame, tu: pl.DataFrame,
                               ta: pl.DataFrame) -> int:
    """Number of rows of ``a`` whose siren is not one of ``u`` (their keys and texts:
    :func:`_cles_siren`; ``tu``, ``ta``: the texts).

    Tens of millions of sirens on each side. A siren of exactly nine digits is a number:
    the two lists, sorted by siren as INSEE publishes them, are merged; otherwise each siren
    is one bit of a bitmap of 10⁹ bits (125 MB), set for the legal units, tested for the
    establishments. The few other sirens (malformed) are compared as text (one never equals
    a nine-digit one); an establishment without a siren has no legal unit.
    """
    cu, ca = u["_cle"].to_numpy(), a["_cle"].to_numpy()
    cu = cu if not len(cu) or cu.min() >= 0 else cu[cu >= 0]
    ca = ca if not len(ca) or ca.min() >= 0 else ca[ca >= 0]
    if _trie(cu) and _trie(ca):
        manquants = _absents_tries(cu, ca)
    else:
        manquants = int((~pl.Series(ca).is_in(pl.Series(cu).implode())).sum())
    textes = ta.join(tu, on="_texte", how="anti").height
    sans_siren = int((a["_cle"] < 0).sum()) - ta.height  # neither a number nor a text
    return int(manquants + textes + sans_siren)


def _absents_tries(cu: np.ndarray, ca: np.ndarray, morceau: int = 1 << 16) -> int:
    """Number of values of ``ca`` not in ``cu`` (both sorted): by pieces of ``ca``, each
    searched in the slice of ``cu`` its range covers (a binary search over tens of millions
    of keys misses the processor's caches at every step: 2.4 times slower at 40 M)."""
    manquants = 0
    for d in range(0, len(ca), morceau):
        m = ca[d:d + morceau]
        s = cu[np.searchsorted(cu, m[0]):np.searchsorted(cu, m[-1], "right")]
        if not len(s):
            manquants += len(m)
            continue
        pos = np.minimum(np.searchsorted(s, m), len(s) - 1)
        manquants += int(len(m) - (s[pos] == m).sum())
    return manquants


def _trie(x: np.ndarray) -> bool:
    return bool(len(x) < 2 or (x[1:] >= x[:-1]).all())


def _premieres_lignes(cles: np.ndarray, garder: np.ndarray) -> tuple[bool, np.ndarray]:
    """(True, the rows where ``garder`` is true and that are the first of their key), when
    the keys >= 0 are sorted and every kept row has one; else (False, nothing)."""
    if len(cles) and cles.min() >= 0:  # (every key valid: no copy of tens of millions)
        rangs, v = None, cles
    else:
        valides = cles >= 0
        if (garder & ~valides).any():
            return False, np.zeros(0, np.int64)
        rangs = np.flatnonzero(valides)
        v = cles[rangs]
    if not _trie(v):
        return False, np.zeros(0, np.int64)
    premiere = np.ones(len(v), np.bool_)
    premiere[1:] = v[1:] != v[:-1]
    if rangs is None:
        return True, np.flatnonzero(premiere & garder).astype(np.int64)
    return True, rangs[premiere & garder[rangs]].astype(np.int64)


def _adresse() -> pl.Expr:
    parties = [pl.col(c).fill_null("") for c in
               ("numero_voie", "indice_repetition", "type_voie", "libelle_voie")]
    rue = pl.concat_str(parties, separator=" ").str.replace_all(r"\s+", " ").str.strip_chars()
    ville = pl.concat_str([pl.col("code_postal").fill_null(""),
                           pl.col("libelle_commune").fill_null("")], separator=" ").str.strip_chars()
    return (pl.when(rue != "").then(rue + pl.lit(", ") + ville).otherwise(ville)
            .str.strip_chars(", ").alias("adresse"))


def _departement_du_code(col: str = "code_commune") -> pl.Expr:
    code = pl.col(col).fill_null("")
    return (pl.when(code.str.len_chars() < 5).then(None)
            .when(code.str.starts_with("97") | code.str.starts_with("98")).then(code.str.slice(0, 3))
            .otherwise(code.str.slice(0, 2)))


# --- fiabilite: lock, leftovers, gates (essqpv.garde_fous) -------------------------------
def construire(*, base: str | Path, forcer: bool = False, **parametres) -> dict:
    """Build (or replace) one vintage of the base: :func:`_construire` under the base's
    lock (one build per base), after removing what dead builds left.

    ``forcer`` turns the refusals of the gates (implausible vintage) into stored warnings.

    Raises
    ------
    BaseOccupee
        Another process is building this base.
    ConstructionRefusee
        The new vintage failed a gate (the base is left as it was).
    """
    base = Path(base)
    if base.is_symlink():  # the base is the file the link points to; the link stays
        base = base.resolve()
    if base.exists() and base.is_dir():
        raise BaseInvalide(f"{base} est un dossier ; un fichier .duckdb était attendu.")
    if base.exists() and not garde_fous.est_duckdb(base):
        raise BaseInvalide(f"{base} existe et n'est pas une base DuckDB : il ne sera pas "
                           "remplacé (choisissez un autre --base).")
    base.parent.mkdir(parents=True, exist_ok=True)
    with garde_fous.Verrou(base) as verrou:
        restes = garde_fous.nettoyer_restes(base)
        try:
            rapport = _construire(base=base, forcer=forcer, **parametres)
        except (OSError, duckdb.Error) as exc:
            if cause_os(exc) != "disque plein":
                raise
            raise EssqpvError(
                f"Disque plein pendant la construction de {base.name} : la base et ses rejets "
                f"sont restés tels qu'ils étaient. Libérez de la place (le cache "
                f"{base.name}.travail/ peut être supprimé sans perte) et relancez.") from None
    avertissements = garde_fous.avertissements_du_verrou(verrou, restes)
    if avertissements:
        rapport.setdefault("avertissements", []).extend(avertissements)
    return rapport
# --- end fiabilite -------------------------------------------------------------------------


def _construire(*, etablissements: str | Path, unites_legales: str | Path,
                millesime: str, base: str | Path, qpv: str | Path | None = None,
                geolocalisation: str | Path | None = None, emplois: str | Path | None = None,
                reglages: Reglages | None = None, synthetique: bool | None = None,
                progression: Progression | None = None, forcer: bool = False,
                geographie: str | None = None) -> dict:
    """Build (or replace) one vintage of the base from the official files.

    Parameters
    ----------
    etablissements, unites_legales : path
        ``StockEtablissement`` and ``StockUniteLegale`` (CSV or ZIP, any published schema).
    millesime : str
        ``AAAA-MM``.
    base : path
        The DuckDB file; other vintages in it are kept.
    qpv : path, optional
        QPV contours (2015 or 2024 geography); the embedded contours of ``geographie`` by
        default.
    geographie : ``"2024"`` or ``"2015"``, optional
        Priority geography: 2024 (in force, the default) or 2015 (history).
    geolocalisation, emplois : path, optional
        INSEE's geolocation file; the establishment-level employment file.
    synthetique : bool, optional
        Mark the vintage as synthetic demo data; by default, detected from the
        ``LISEZMOI.txt`` the generator writes beside its files.

    Returns
    -------
    dict
        The reconciliation of METHODOLOGY 8 (the object ``essqpv controle`` prints).
    """
    from essqpv.placement import IndexQPV, localiser_etablissements
    from essqpv.sources.qpv import lire_qpv

    reglages = reglages or Reglages()
    etape = progression or (lambda _texte: None)
    millesime = _verifier_millesime(millesime)
    base = Path(base)
    if base.exists() and base.is_dir():
        raise BaseInvalide(f"{base} est un dossier ; un fichier .duckdb était attendu.")
    travail = base.with_name(base.name + ".travail")
    travail.mkdir(parents=True, exist_ok=True)

    etape("Vérification des fichiers")
    fichiers = _Fichiers(
        sirene.preparer(etablissements, "etablissements", travail / "extraits"),
        sirene.preparer(unites_legales, "unites_legales", travail / "extraits"),
        sirene.preparer(geolocalisation, "geolocalisation", travail / "extraits")
        if geolocalisation else None,
        sirene.preparer(emplois, "emplois", travail / "extraits") if emplois else None,
    )
    if qpv is not None and not Path(qpv).exists():
        raise FichierIntrouvable(f"Fichier introuvable : {qpv} (contours des QPV).")
    avertissements = [a for f in (fichiers.etablissements, fichiers.unites_legales,
                                  fichiers.geolocalisation, fichiers.emplois) if f
                      for a in f.avertissements]
    if synthetique is None:
        lisez = Path(etablissements).with_name("LISEZMOI.txt")
        synthetique = lisez.exists() and "synthétiques" in lisez.read_text("utf-8", "replace")

    # (reader) the inputs' SHA-256 in a thread of their own, while the files are read
    # (hashlib releases the GIL): off the critical path, remembered for a rebuild.
    empreintes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="empreintes")
    futurs_empreintes = {
        role: empreintes.submit(_sha256_memorise, f.chemin, travail)
        for role, f in (("etablissements", fichiers.etablissements),
                        ("unites_legales", fichiers.unites_legales),
                        ("geolocalisation", fichiers.geolocalisation),
                        ("emplois", fichiers.emplois)) if f is not None}
    empreintes.shutdown(wait=False)

    etape("Contours des QPV")
    couche = lire_qpv(qpv, geographie)
    avertissements += garde_fous.verifier_contours(couche, forcer)  # fiabilite: gate
    if couche.avertissement:  # 2024 contours rounded to ≈ 11 m: said in every output
        avertissements.append(couche.avertissement)

    # The finished result of the same inputs and settings (issue 21): recognised by the
    # inputs' key before anything large is read, and taken as it was written (a base that
    # holds nothing but this vintage; no address geocoder, whose data the key cannot see).
    from essqpv.geocodage.geocodeur import geocodeur_installe
    cle_resultat = None
    if not geocodeur_installe():
        cle_resultat = _cle_resultat(fichiers, couche, base, millesime, reglages,
                                     bool(synthetique), avertissements)
        if not base.exists() or _remplacable(base, millesime):
            repris = _reprendre_resultat(base, travail, millesime, cle_resultat, forcer, etape)
            if repris is not None:
                return _echanger_resultat(base, millesime, *repris)

    # Legal units first: only those an ESS rule can match keep their attributes, then
    # only the active establishments of those legal units keep theirs, then only the
    # geolocation rows of those establishments (every row is still counted and checked).
    etape("Lecture du stock des unités légales")
    garder_ul, regles = _candidats_ess(fichiers.unites_legales)
    c_ul = _convertir_cache(fichiers.unites_legales, list(RENOMMAGE_UNITES_LEGALES),
                            travail, garder_ul, ("siren",), regles)
    etape("Lecture du stock des établissements")
    c_etab = _convertir_cache(fichiers.etablissements, list(RENOMMAGE_ETABLISSEMENTS),
                              travail, *_garder_etablissements(c_ul))
    c_geo = None
    if fichiers.geolocalisation:
        etape("Lecture du fichier de géolocalisation")
        c_geo = _convertir_cache(
            fichiers.geolocalisation, list(RENOMMAGE_GEOLOCALISATION), travail,
            _garder_geolocalisation(c_etab), (), c_etab.chemin.name)
    c_emp = v_emp = None
    if fichiers.emplois:
        etape("Lecture du fichier des emplois")
        c_emp = _convertir_cache(fichiers.emplois, COLONNES_EMPLOIS, travail,
                                 numeroter=True)
        v_emp = _valider_emplois_cache(fichiers.emplois, c_emp, travail)
    # (reader) a hint when the undecodable lines read as Latin-1 / Windows-1252
    for f, c in ((fichiers.etablissements, c_etab), (fichiers.unites_legales, c_ul),
                 (fichiers.geolocalisation, c_geo), (fichiers.emplois, c_emp)):
        indice = lecteur.indice_encodage(c.rejets) if c is not None else None
        if indice:
            avertissements.append(f"{f.chemin.name} : {indice}")

    etape("Périmètre de l'ESS")

    def amont() -> tuple[pl.DataFrame, dict]:
        dans_df, comptes = _perimetre_ess(c_etab, c_ul)
        etape("Communes et territoires")
        from essqpv.territoires import table_communes
        dans_df = _ajouter(dans_df, table_communes().rename({"code": "code_commune"}),
                           "code_commune")
        dans_df = dans_df.with_columns(
            pl.coalesce(pl.col("departement"), _departement_du_code()).alias("departement_crs"),
            _adresse()).drop(_PARTIES_ADRESSE)
        comptes["communes_inconnues"] = dans_df.filter(
            pl.col("commune").is_null() & pl.col("code_commune").is_not_null()).height
        if c_geo is not None:
            etape("Coordonnées de géolocalisation")
            # (a siret given twice: its first physical line decides, whatever order the
            # join returns its rows in)
            geo = (c_geo.lire_gardees()
                   .rename(RENOMMAGE_GEOLOCALISATION)
                   .join(dans_df.lazy().select("siret"), on="siret", how="semi")
                   .sort("_rang").unique("siret", keep="first", maintain_order=True)
                   .drop("_rang")
                   .with_columns(pl.lit(True).alias("geo_present")).collect())
            dans_df = _ajouter(dans_df, geo, "siret").with_columns(
                pl.col("geo_present").fill_null(False))
        else:
            dans_df = dans_df.with_columns(
                pl.lit(False).alias("geo_present"),
                *[pl.lit(None, dtype=pl.String).alias(c) for c in
                  ("geo_x", "geo_y", "geo_qualite", "geo_epsg", "plg_qp15", "plg_qp24",
                   "plg_qp")])
        return _en_enum(dans_df, COLONNES_ENUM), comptes

    # Everything up to placement is cached too (a few hundred thousand rows): a rebuild
    # from the cache (other QPV contours or buffer, new employment file) then reads no
    # large file at all.
    cle_amont = _cle_derivee("amont-4", c_etab.chemin.name, c_ul.chemin.name,
                             c_geo.chemin.name if c_geo is not None else "-")
    # The placement is cached by the establishments placed, the contours and the buffer (a
    # rebuild with the same files only writes the base), with each establishment's strict
    # QPV on the other map (the embedded contours of the other geography), which the
    # transition 2015 -> 2024 reads.
    autre_geographie = "2015" if couche.geographie == "2024" else "2024"
    cle_placement = _cle_derivee(
        "placement-2", cle_amont, str(reglages.tampon_m), _empreinte_couche(couche),
        autre_geographie, _empreinte_reference(f"qpv{autre_geographie}.parquet"))
    place = _en_cache(travail, "placement", cle_placement)
    dans_df, comptes_d = _cache_derive(travail, "perimetre", cle_amont, amont,
                                       sans=ENTREES_PLACEMENT if place else ())
    acceptees = comptes_d["acceptees"]
    communes_inconnues = comptes_d["communes_inconnues"]

    etape("Localisation dans les QPV")

    def placer() -> tuple[pl.DataFrame, dict]:
        entree = dans_df.select(
            "siret", pl.col("departement_crs").alias("departement"), "geo_present", "geo_x",
            "geo_y", "geo_epsg", "geo_qualite", "etalab_lon", "etalab_lat", "lambert_x",
            "lambert_y")
        index = IndexQPV(couche)
        places = localiser_etablissements(entree, index, reglages.tampon_m)
        autre = IndexQPV(lire_qpv(geographie=autre_geographie))
        qpv_autre = autre.serie_codes("qpv_autre", autre.strict_indices(
            places["lon"].to_numpy().astype(float), places["lat"].to_numpy().astype(float)))
        return places.select(
            "lon", "lat", "source_coordonnees", "localise", "motif_non_localise", "qpv",
            "qpv_tampon", "distance_qpv_m").with_columns(qpv_autre), \
            {"multiples": int(getattr(index, "multiples", 0))}

    places, info_placement = _cache_derive(travail, "placement", cle_placement, placer)
    dans_df = dans_df.drop(ENTREES_PLACEMENT, strict=False).hstack(places.get_columns())
    del places
    # Addresses (issue 19): establishments without usable coordinates placed from their Sirene
    # address when an address geocoder is installed (source_coordonnees = ban); else unchanged.
    from essqpv.geocodage.etablissements import completer_par_adresse
    dans_df, geocodage_ban = completer_par_adresse(dans_df, couche, reglages.tampon_m, etape)
    # (the transition's QPV on the other map: from the placement's cache, except for the
    # establishments the address geocoder placed, placed on the other map again there)
    autre_carte = dans_df.filter(pl.col("localise")
                                 & (pl.col("source_coordonnees") != "ban")).select(
        "siret", "qpv_autre")
    dans_df = dans_df.drop("qpv_autre")

    # INSEE's own QPV code, for the same geography.
    colonne_insee = {"2015": ["plg_qp15", "plg_qp"], "2024": ["plg_qp24"]}[couche.geographie]
    colonne_insee = [c for c in colonne_insee if c in dans_df.columns]
    code_insee = pl.coalesce([pl.col(c) for c in colonne_insee]) if colonne_insee \
        else pl.lit(None, dtype=pl.String)
    dans_df = dans_df.with_columns(
        pl.when(pl.col("geo_present")).then(code_insee).otherwise(None).alias("qpv_insee_brut"))
    dans_df = dans_df.with_columns(
        pl.when(pl.col("qpv_insee_brut").is_in(["HZ", "CSZ", "", " "])).then(None)
        .otherwise(pl.col("qpv_insee_brut").str.strip_chars()).alias("qpv_insee"))
    accord = None
    discordances = pl.DataFrame(schema={"siret": pl.String, "qpv_essqpv": pl.String,
                                        "qpv_insee": pl.String})
    if colonne_insee and c_geo is not None and any(
            f.a(c) for f in [fichiers.geolocalisation] for c in colonne_insee):
        comparees = dans_df.filter((pl.col("source_coordonnees") == "geolocalisation")
                                   & pl.col("localise") & pl.col("qpv_insee_brut").is_not_null())
        differentes = comparees.filter(pl.col("qpv").fill_null("") !=
                                       pl.col("qpv_insee").fill_null(""))
        accord = {"colonne": colonne_insee[0], "comparees": comparees.height,
                  "concordantes": comparees.height - differentes.height,
                  "discordantes": differentes.height}
        discordances = differentes.select("siret", pl.col("qpv").alias("qpv_essqpv"),
                                          "qpv_insee")

    # (only the columns the base keeps, before the employment join copies every row)
    dans_df = dans_df.select([c for c in dans_df.columns
                              if c in COLONNES_ETABLISSEMENTS or c == "denomination_usuelle"])
    if v_emp is not None:
        etape("Emplois")
        dans_df = _ajouter(dans_df, v_emp.valides.select("siret", "effectif", *COMPTES),
                           "siret")
    else:
        dans_df = dans_df.with_columns(
            *[pl.lit(None, dtype=pl.Int64).alias(c) for c in ("effectif", *COMPTES)])

    dans_df = dans_df.with_columns(
        pl.col("date_creation").str.to_date("%Y-%m-%d", strict=False),
        pl.coalesce(pl.col("denomination"), pl.col("denomination_usuelle"), pl.col("enseigne"))
        .alias("denomination"),
    ).select(COLONNES_ETABLISSEMENTS)
    dans_df = _en_enum(dans_df, COLONNES_ENUM_PLACEMENT)

    # Reconciliation (METHODOLOGY 8).
    localisees = int(dans_df["localise"].sum())
    motifs = (dans_df.filter(~pl.col("localise")).group_by("motif_non_localise").len()
              .sort("motif_non_localise"))
    en_qpv = int(dans_df["qpv"].is_not_null().sum())
    rapport = {
        "millesime": millesime,
        "lignes_lues": c_etab.lignes_lues,
        "lignes_rejetees": len(c_etab.rejets),
        "lignes_vides": c_etab.lignes_vides,
        "lignes_de_continuation": c_etab.lignes_suites,
        "rejets_par_motif": c_etab.rejets_par_motif,
        "acceptees": acceptees,
        "actives": comptes_d["actives"],
        "fermees": acceptees - comptes_d["actives"],
        "ess": comptes_d["ess"],
        "non_ess": comptes_d["actives"] - comptes_d["ess"],
        "exclues_activite": comptes_d["exclues"],
        "dans_perimetre": dans_df.height,
        "localisees": localisees,
        "non_localisees": dans_df.height - localisees,
        "non_localisees_par_motif": dict(motifs.iter_rows()),
        "en_qpv": en_qpv,
        "hors_qpv": localisees - en_qpv,
        f"en_qpv_{reglages.tampon_m}m": int(dans_df["qpv_tampon"].is_not_null().sum()),
        "etablissements_sans_unite_legale": comptes_d["sans_ul"],
        "communes_inconnues": communes_inconnues,
        "unites_legales": _compte_fichier(c_ul),
    }
    if geocodage_ban is not None:
        rapport["geocodage_ban"] = geocodage_ban
    if c_geo is not None:
        rapport["geolocalisation"] = _compte_fichier(c_geo)
    if c_emp is not None and v_emp is not None:
        tous = c_emp.rejets + v_emp.rejets
        rapport["emplois"] = {
            "lignes_lues": c_emp.lignes_lues, "lignes_rejetees": len(tous),
            "rejets_par_motif": _par_motif(tous), "acceptees": v_emp.valides.height,
            "jointes": int(dans_df["effectif"].is_not_null().sum()),
        }
    if accord is not None:
        rapport["accord_qpv_insee"] = accord
    if info_placement["multiples"]:
        rapport["points_dans_plusieurs_qpv"] = info_placement["multiples"]

    rejets = []
    for role, conv, extra in (("etablissements", c_etab, []), ("unites_legales", c_ul, []),
                              ("geolocalisation", c_geo, []),
                              ("emplois", c_emp, v_emp.rejets if v_emp else [])):
        if conv is None:
            continue
        for r in sorted(conv.rejets + extra, key=lambda r: r.ligne):
            rejets.append((role, r.ligne, r.motif, r.contenu))
    # fiabilite: gates before anything is replaced (ConstructionRefusee unless forcer)
    etape("Vérification de la plausibilité")
    avant_garde = list(avertissements)
    avertissements += garde_fous.verifier_plausibilite(
        rapport, garde_fous.controle_precedent(base, millesime), rejets, forcer)
    rapport["avertissements"] = avertissements

    etape("Écriture de la base")

    sources = []
    for role, f in (("etablissements", fichiers.etablissements),
                    ("unites_legales", fichiers.unites_legales),
                    ("geolocalisation", fichiers.geolocalisation), ("emplois", fichiers.emplois)):
        if f is None:
            continue
        empreinte, methode = futurs_empreintes[role].result()
        sources.append({"role": role, "fichier": f.chemin.name, "chemin": _chemin_public(f.chemin, base),
                        "taille": f.taille, "empreinte": empreinte, "methode_empreinte": methode,
                        "schema": f.variante, "modifie_le": dt.datetime.fromtimestamp(
                            f.chemin.stat().st_mtime).isoformat(timespec="seconds"),
                        "producteur": "Insee" if role != "emplois" else "fichier de l'observatoire",
                        "licence": LICENCE_DONNEES if role != "emplois" else "usage sous convention"})
    sources.append({"role": "qpv", "fichier": couche.fichier, "geographie": couche.geographie,
                    "polygones_repares": couche.reparees, "producteur": "ANCT",
                    "precision": couche.avertissement or "contours officiels",
                    "licence": LICENCE_DONNEES})

    qpv_df = couche.vers_frame().with_columns(pl.lit(millesime).alias("millesime"))
    dep_reg = {d["code"]: d["region"] for d in reference.departements()}
    qpv_df = qpv_df.with_columns(pl.col("departement").replace_strict(
        dep_reg, default=None, return_dtype=pl.String).alias("region")).select(
        "millesime", "code_qp", "nom_qp", "communes", "departement", "region", "surface_m2",
        "repare", "hors_champ_sirene", "geometrie")

    meta = {
        "millesime": millesime, "geographie_qpv": couche.geographie,
        "tampon_m": reglages.tampon_m,
        "date_construction": dt.datetime.now().replace(microsecond=0),
        "version": __version__, "synthetique": bool(synthetique),
        "avec_emplois": fichiers.emplois is not None,
        "sources": json.dumps(sources, ensure_ascii=False),
        "controle": json.dumps(rapport, ensure_ascii=False),
        "accord_qpv_insee": json.dumps(accord) if accord else None,
        "avertissements": json.dumps(avertissements, ensure_ascii=False),
    }
    # fiabilite: the rejects folder is written and checked, then swapped in with the base
    garde_fous.point_arret("avant_ecriture")
    rejets_prepares = garde_fous.preparer_rejets(base, millesime, rejets)
    garde_fous.point_arret("rejets_prepares")
    # (the establishments' table handed over to the writer, which frees it once it is in
    # the base: the transition and the publication then read the base)
    from essqpv import transition
    pour_transition = dans_df.filter(pl.col("localise")).select(
        transition.colonnes_etablissements(fichiers.emplois is not None))
    etablissements = [dans_df.with_columns(pl.lit(millesime).alias("millesime"))]
    del dans_df
    try:
        _ecrire(base, millesime, meta, etablissements,
                qpv_df, rejets, discordances.with_columns(pl.lit(millesime).alias("millesime")),
                travail, etape, autre_carte, pour_transition,
                resultat=None if cle_resultat is None else {
                    "cle": cle_resultat, "rapport": rapport, "avant_garde": avant_garde,
                    "rejets": [[r[0], r[1], r[2], r[3].hex()] for r in rejets]})
    except BaseException:
        shutil.rmtree(rejets_prepares, ignore_errors=True)
        raise
    garde_fous.point_arret("base_echangee")
    garde_fous.echanger_rejets(base, millesime, rejets_prepares)
    garde_fous.point_arret("rejets_echanges")
    return rapport


def _chemin_public(chemin: Path, base: Path) -> str:
    """A source's path as published: relative to the base's folder when it is inside it,
    else its file name (no absolute server path in the API or the static site)."""
    try:
        return chemin.resolve().relative_to(base.resolve().parent).as_posix()
    except ValueError:
        return chemin.name


def _compte_fichier(conv: sirene.Conversion) -> dict:
    return {"lignes_lues": conv.lignes_lues, "lignes_rejetees": len(conv.rejets),
            "rejets_par_motif": conv.rejets_par_motif, "acceptees": conv.lignes_acceptees,
            "lignes_vides": conv.lignes_vides, "lignes_de_continuation": conv.lignes_suites}


def _par_motif(rejets: list[sirene.Rejet]) -> dict[str, int]:
    compte: dict[str, int] = {}
    for r in rejets:
        compte[r.motif] = compte.get(r.motif, 0) + 1
    return dict(sorted(compte.items()))


def dossier_rejets(base: str | Path, millesime: str) -> Path:
    """Folder of the rejects files of one vintage: ``<base>.rejets/<millesime>/``."""
    base = Path(base)
    garde_fous.reparer_rejets(base)  # a build killed between the base and rejects swaps
    return base.with_name(base.name + ".rejets") / millesime


_TABLES_DE_LA_BASE = frozenset({"millesimes", "qpv", "rejets", "discordances_qpv_insee",
                                 "etablissements", "transition", "transition_qpv",
                                 "transition_statuts", "publication_cellules",
                                 "publication_relations", "publication_reponses",
                                 "publication_certificats"})


def _remplacable(base: Path, millesime: str) -> bool:
    """True when the base holds nothing but this vintage: the new file can start empty
    instead of copying the old one and deleting its rows (same result, far less work)."""
    try:
        con = duckdb.connect(str(base), read_only=True)
    except duckdb.Error:
        return False
    try:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        if not tables <= _TABLES_DE_LA_BASE:
            return False
        if "millesimes" not in tables:
            return not tables
        return con.execute("SELECT count(*) FROM millesimes WHERE millesime <> ?",
                           [millesime]).fetchone()[0] == 0
    except duckdb.Error:
        return False
    finally:
        con.close()


def _cle_image(etab: pl.DataFrame, meta: dict) -> str:
    """Key of the base image of ``etab`` (:func:`_ecrire`): its rows' hashes, its schema,
    the versions that write it, and what the transition 2015 -> 2024 stored with them
    depends on besides (the headcounts chosen, the geography, the other map's embedded
    contours, the embedded new and removed QPV)."""
    from essqpv import transition
    autre = "2015" if meta["geographie_qpv"] == "2024" else "2024"
    h = hashlib.sha256(f"{__version__}|{duckdb.__version__}|{pl.__version__}|{SCHEMA}|"
                       f"{transition.SCHEMA}|{bool(meta['avec_emplois'])}|"
                       f"{meta['geographie_qpv']}|{_empreinte_reference(f'qpv{autre}.parquet')}|"
                       f"{_empreinte_reference('transition_qpv.parquet')}|"
                       f"{etab.schema}|{etab.height}".encode())
    h.update(etab.hash_rows(seed=21).to_numpy().tobytes())
    for c, t in etab.schema.items():  # (an Enum's rows hash its codes: its values too)
        if isinstance(t, pl.Enum):
            h.update(f"{c}|{len(t.categories)}|".encode())
            h.update("\x00".join(t.categories.to_list()).encode())
    return h.hexdigest()[:20]


def _image_lisible(chemin: Path, lignes: int, millesime: str) -> bool:
    """Whether a copy of a base image opens and holds ``lignes`` establishments and the
    transition of ``millesime``."""
    try:
        con = duckdb.connect(str(chemin), read_only=True)
    except duckdb.Error:
        return False
    try:
        return con.execute("SELECT count(*) FROM etablissements").fetchall()[0][0] == lignes \
            and con.execute("SELECT count(*) FROM transition_qpv WHERE millesime = ?",
                            [millesime]).fetchall()[0][0] > 0
    except duckdb.Error:
        return False
    finally:
        con.close()


def _ecrire(base: Path, millesime: str, meta: dict, etablissements: list[pl.DataFrame],
            qpv: pl.DataFrame, rejets: list, discordances: pl.DataFrame,
            travail: Path | None = None, etape: Progression | None = None,
            autre_carte: pl.DataFrame | None = None,
            pour_transition: pl.DataFrame | None = None,
            resultat: dict | None = None) -> None:
    """Write one vintage into a copy of the base, then swap it in atomically.

    ``etablissements`` holds the establishments' table, taken out of the list (so that it
    is freed once inserted, before the transition and the publication read the base).
    ``autre_carte`` (``siret, qpv_autre``): the strict QPV on the other map of located
    establishments, already known, and ``pour_transition`` the located establishments'
    rows the transition reads (:func:`essqpv.transition.ecrire`: not read back from the
    base).

    When the base holds nothing but this vintage (a new file is started), the file holding
    only the establishments table is kept in ``travail`` (``image-<key>.duckdb``, the key
    being the rows written): a later build writing the same rows (a rebuild from the cache)
    starts from a copy of that file instead of inserting them again. There too, the
    finished base is kept with ``resultat`` (the inputs' key, the report, the rejects:
    :func:`_garder_resultat`), taken as it is by a build of the same inputs."""
    etab = etablissements.pop()
    temporaire = base.with_name(base.name + f".tmp-{os.getpid()}")
    fermer_connexions(base)
    for f in (temporaire, temporaire.with_name(temporaire.name + ".wal")):
        if f.exists():
            f.unlink()
    neuve = not (base.exists() and not _remplacable(base, millesime))
    if not neuve:
        shutil.copyfile(base, temporaire)
    image = travail / f"image-{_cle_image(etab, meta)}.duckdb" if neuve and travail else None
    ecrite = image is not None and image.exists()
    if ecrite:
        shutil.copyfile(image, temporaire)
        if not _image_lisible(temporaire, etab.height, millesime):  # (damaged: written anew)
            temporaire.unlink()
            image.unlink()
            ecrite = False
    try:
        con = duckdb.connect(str(temporaire))
        try:
            con.execute("BEGIN")
            con.execute(SCHEMA)
            existe = con.execute("SELECT count(*) FROM information_schema.tables WHERE "
                                 "table_name = 'etablissements'").fetchone()[0]
            for table in ("millesimes", "qpv", "rejets", "discordances_qpv_insee") + (
                    ("etablissements",) if existe and not ecrite else ()):
                con.execute(f"DELETE FROM {table} WHERE millesime = ?", [millesime])
            if not ecrite:  # (one insert from Arrow: no copy of the frame, DuckDB's threads;
                # string views and the Enums' dictionaries as they are, VARCHAR in DuckDB)
                con.register("_etab", etab.to_arrow(compat_level=pl.CompatLevel.newest()))
                enums = [f"{c}::VARCHAR AS {c}" for c, t in etab.schema.items()
                         if isinstance(t, pl.Enum)]
                choix = ("SELECT * " + (f"REPLACE ({', '.join(enums)}) " if enums else "")
                         + "FROM _etab")
                con.execute(f"INSERT INTO etablissements BY NAME {choix}" if existe
                            else f"CREATE TABLE etablissements AS {choix}")
                con.unregister("_etab")
            del etab
            from essqpv import transition  # geo2024: the 2015 -> 2024 transition, same commit
            if not ecrite:  # (with the establishments in the image: a rebuild reuses it)
                if image is not None:  # (DuckDB's buffers of the insert freed first)
                    con.execute("COMMIT")
                    con.execute("CHECKPOINT")
                    con.execute("BEGIN")
                if etape is not None:
                    etape("Transition 2015 → 2024")
                transition.ecrire(con, millesime, autre_carte, pour_transition,
                                  meta["geographie_qpv"])
            del pour_transition
            if image is not None and not ecrite:  # the image: these tables, then the rest
                con.execute("COMMIT")
                con.execute("CHECKPOINT")
                for ancienne in travail.glob("image-*.duckdb*"):
                    ancienne.unlink()
                partielle = image.with_name(image.name + f".partiel-{os.getpid()}")
                try:
                    shutil.copyfile(temporaire, partielle)
                    os.replace(partielle, image)
                finally:
                    partielle.unlink(missing_ok=True)
                con.execute("BEGIN")
            con.register("_qpv", qpv.to_arrow())
            con.execute("INSERT INTO qpv BY NAME SELECT * FROM _qpv")
            con.register("_disc", discordances.to_arrow())
            con.execute("INSERT INTO discordances_qpv_insee BY NAME SELECT * FROM _disc")
            if rejets:
                rj = pl.DataFrame({"millesime": millesime, "fichier": [r[0] for r in rejets],
                                   "ligne": [r[1] for r in rejets], "motif": [r[2] for r in rejets],
                                   "contenu": [r[3].decode("utf-8", "replace") for r in rejets]})
                con.register("_rej", rj.to_arrow())
                con.execute("INSERT INTO rejets BY NAME SELECT * FROM _rej")
            colonnes = ", ".join(meta)
            marques = ", ".join("?" for _ in meta)
            con.execute(f"INSERT INTO millesimes ({colonnes}) VALUES ({marques})",
                        list(meta.values()))
            # the protected publication (issue 18): every cell, its certificates, the answers
            # every output reads; verified before it is written, in the same transaction (a
            # plan without proof stops the build and the previous base stays in place)
            from essqpv.indicators.publication import ecrire_plan
            ecrire_plan(con, millesime, progression=etape, cache=travail)
            if etape is not None:
                etape("Enregistrement de la base")
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        if neuve and travail is not None and resultat is not None:
            _garder_resultat(travail, temporaire, resultat)
        garde_fous.point_arret("base_temporaire_ecrite")
        os.replace(temporaire, base)
    except BaseException:
        for f in (temporaire, temporaire.with_name(temporaire.name + ".wal")):
            if f.exists():
                f.unlink()
        raise


# Version of the stored result's format and of what its key covers.
RESULTAT = "resultat-1"


def _cle_resultat(fichiers: _Fichiers, couche, base: Path, millesime: str,
                  reglages: Reglages, synthetique: bool, avertissements: list[str]) -> str:
    """Key of a build's finished result, from its inputs only: each input file's
    fingerprint (:func:`_empreinte_rapide`, what the conversions' caches trust) and schema,
    the QPV contours as placed, the vintage, the settings, the base's path (the sources'
    public paths), the versions and schemas, the embedded reference files, and the
    warnings known so far. What the gates add depends on the base replaced: checked on
    reuse (:func:`_reprendre_resultat`)."""
    import sys

    from essqpv import transition
    # (the publication plan writer, as called: another one, e.g. a benchmark's, misses)
    publication = sys.modules.get("essqpv.indicators.publication")
    plan = "essqpv.indicators.publication.ecrire_plan" if publication is None else \
        f"{publication.ecrire_plan.__module__}.{publication.ecrire_plan.__qualname__}"
    h = hashlib.sha256("|".join((
        RESULTAT, __version__, _versions(), _empreinte_code(), SCHEMA, transition.SCHEMA,
        plan, millesime, str(base.resolve()), repr(reglages), str(synthetique),
        couche.geographie, str(couche.fichier), str(couche.reparees),
        str(couche.avertissement), _empreinte_couche(couche),
        json.dumps(avertissements, ensure_ascii=False))).encode())
    for role in ("etablissements", "unites_legales", "geolocalisation", "emplois"):
        f = getattr(fichiers, role)
        h.update(f"|{role}|".encode())
        if f is not None:
            h.update(f"{_empreinte_rapide(f.chemin)}|{f.variante}|{f.taille}|"
                     f"{f.chemin.name}|{_chemin_public(f.chemin, base)}".encode())
    dossier = Path(str(reference.chemin("communes.csv"))).parent
    for chemin in sorted(dossier.rglob("*")):
        if chemin.is_file() and "__pycache__" not in chemin.parts:
            h.update(f"|{chemin.relative_to(dossier)}|".encode())
            h.update(chemin.read_bytes())
    return h.hexdigest()[:20]


def _garder_resultat(travail: Path, fichier: Path, resultat: dict) -> None:
    """Keep the finished base ``fichier`` (written, checkpointed, closed) and what the build
    returns and writes besides (report, warnings before the gates, rejects) in ``travail``
    under the inputs' key: ``resultat-<key>.duckdb`` and ``.json``, each written whole
    then renamed (the JSON last: an entry without it is not used)."""
    cle = resultat["cle"]
    for ancien in travail.glob("resultat-*"):
        ancien.unlink()
    copie = travail / f"resultat-{cle}.duckdb"
    meta = travail / f"resultat-{cle}.json"
    partielle = copie.with_name(copie.name + f".partiel-{os.getpid()}")
    partiel = meta.with_name(meta.name + f".partiel-{os.getpid()}")
    try:
        shutil.copyfile(fichier, partielle)
        os.replace(partielle, copie)
        partiel.write_text(json.dumps({**resultat, "format": RESULTAT,
                                       "taille": copie.stat().st_size}, ensure_ascii=False),
                           "utf-8")
        os.replace(partiel, meta)
    finally:
        partielle.unlink(missing_ok=True)
        partiel.unlink(missing_ok=True)


def _reprendre_resultat(base: Path, travail: Path, millesime: str, cle: str, forcer: bool,
                        etape: Progression) -> tuple[dict, list, Path] | None:
    """The stored result of the inputs' key ``cle`` (:func:`_garder_resultat`), copied to
    the base's temporary file and dated now: ``(report, rejects, temporary file)``; None
    when there is none, when it is damaged (then removed) or when the gates, on the base
    replaced, warn otherwise than when it was written (the normal build then runs).
    A refusal of the gates is raised as the normal build would."""
    copie = travail / f"resultat-{cle}.duckdb"
    meta = travail / f"resultat-{cle}.json"
    if not (copie.is_file() and meta.is_file()):
        return None
    try:
        m = json.loads(meta.read_text("utf-8"))
        if m["format"] != RESULTAT or m["cle"] != cle or m["taille"] != copie.stat().st_size:
            raise ValueError
        rapport, avant = m["rapport"], list(m["avant_garde"])
        rejets = [(r[0], int(r[1]), r[2], bytes.fromhex(r[3])) for r in m["rejets"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        copie.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        return None
    etape("Résultat déjà construit avec les mêmes fichiers et réglages")
    etape("Vérification de la plausibilité")
    sans = {k: v for k, v in rapport.items() if k != "avertissements"}
    avant += garde_fous.verifier_plausibilite(
        sans, garde_fous.controle_precedent(base, millesime), rejets, forcer)
    if avant != rapport.get("avertissements"):
        return None
    etape("Écriture de la base")
    temporaire = base.with_name(base.name + f".tmp-{os.getpid()}")
    fermer_connexions(base)
    try:
        shutil.copyfile(copie, temporaire)
        con = duckdb.connect(str(temporaire))
        try:
            if con.execute("SELECT list(millesime) FROM millesimes").fetchone()[0] != \
                    [millesime] or not con.execute(
                        "SELECT count(*) FROM etablissements").fetchone()[0] == \
                    rapport["dans_perimetre"]:
                raise ValueError
            con.execute("UPDATE millesimes SET date_construction = ? WHERE millesime = ?",
                        [dt.datetime.now().replace(microsecond=0), millesime])
            con.execute("CHECKPOINT")
        finally:
            con.close()
    except (OSError, duckdb.Error, ValueError):  # (damaged: the normal build runs)
        for f in (temporaire, temporaire.with_name(temporaire.name + ".wal"), copie, meta):
            f.unlink(missing_ok=True)
        return None
    rapport["avertissements"] = avant
    return rapport, rejets, temporaire


def _echanger_resultat(base: Path, millesime: str, rapport: dict, rejets: list,
                       temporaire: Path) -> dict:
    """Swap a reused result (:func:`_reprendre_resultat`) in, with its rejects files, in the
    order and with the checks of a normal build."""
    rejets_prepares = None
    try:
        garde_fous.point_arret("avant_ecriture")
        rejets_prepares = garde_fous.preparer_rejets(base, millesime, rejets)
        garde_fous.point_arret("rejets_prepares")
        garde_fous.point_arret("base_temporaire_ecrite")
        os.replace(temporaire, base)
    except BaseException:
        for f in (temporaire, temporaire.with_name(temporaire.name + ".wal")):
            f.unlink(missing_ok=True)
        if rejets_prepares is not None:
            shutil.rmtree(rejets_prepares, ignore_errors=True)
        raise
    garde_fous.point_arret("base_echangee")
    garde_fous.echanger_rejets(base, millesime, rejets_prepares)
    garde_fous.point_arret("rejets_echanges")
    return rapport


# --------------------------------------------------------------------------- reading


# One read-only connection per base file, reused across calls (opening a DuckDB file costs
# ~0.1 s): keyed by the file's identity, so a rebuilt (swapped-in) base gets a new connection.
_CONNEXIONS: dict[str, tuple[tuple, duckdb.DuckDBPyConnection]] = {}
_VERROU = threading.Lock()


def fermer_connexions(base: str | Path | None = None) -> None:
    """Close the cached read-only connections (of one base, or all).

    Call it before opening a base read-write in the same process: DuckDB refuses two
    configurations of one file in a process.
    """
    with _VERROU:
        cles = [str(Path(base).resolve())] if base is not None else list(_CONNEXIONS)
        for cle in cles:
            entree = _CONNEXIONS.pop(cle, None)
            if entree:
                entree[1].close()


def ouvrir(base: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only cursor on the base (close it when done; the connection is cached).

    Raises
    ------
    BaseInvalide
        When the file is missing or is not an essqpv base.
    """
    base = Path(base)
    if not base.exists():
        raise BaseInvalide(f"Base introuvable : {base} (construisez-la avec essqpv construire).")
    chemin = str(base.resolve())
    st = base.stat()
    identite = (st.st_ino, st.st_mtime_ns, st.st_size)
    with _VERROU:
        entree = _CONNEXIONS.get(chemin)
        if entree and entree[0] == identite:
            return entree[1].cursor()
        if entree:
            _CONNEXIONS.pop(chemin)
            entree[1].close()
        try:
            con = duckdb.connect(chemin, read_only=True)
        except duckdb.Error as exc:
            raison = ("ouverte en écriture par un autre processus" if "lock" in str(exc).lower()
                      else "fichier d'un autre type ou endommagé")
            raise BaseInvalide(f"{base} n'est pas une base DuckDB lisible ({raison}).") from None
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        if not {"millesimes", "etablissements"} <= tables:
            con.close()
            raise BaseInvalide(f"{base} n'est pas une base essqpv (tables millesimes et "
                               "etablissements absentes).")
        _CONNEXIONS[chemin] = (identite, con)
        return con.cursor()


def _identite(base: str | Path) -> tuple:
    b = Path(base)
    if not b.exists():
        raise BaseInvalide(f"Base introuvable : {b} (construisez-la avec essqpv construire).")
    st = b.stat()
    return (str(b.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)


def millesimes(base: str | Path) -> list[dict]:
    """The vintages of the base, newest first (cached while the file is unchanged)."""
    import copy
    return copy.deepcopy(_millesimes(_identite(base)))


@lru_cache(maxsize=32)
def _millesimes(identite: tuple) -> list[dict]:
    base = identite[0]
    con = ouvrir(base)
    try:
        lignes = con.execute(
            "SELECT millesime, geographie_qpv, tampon_m, date_construction, version, "
            "synthetique, avec_emplois, sources, avertissements FROM millesimes "
            "ORDER BY millesime DESC").fetchall()
    finally:
        con.close()
    return [{"millesime": m, "geographie_qpv": g, "tampon_m": t,
             "date_construction": d.isoformat() if d else None, "version": v,
             "synthetique": bool(s), "avec_emplois": bool(e), "sources": json.loads(src or "[]"),
             "avertissements": json.loads(av or "[]")}
            for m, g, t, d, v, s, e, src, av in lignes]


def millesime_par_defaut(base: str | Path, millesime: str | None = None) -> str:
    """The given vintage if the base holds it, else the newest one."""
    liste = [m["millesime"] for m in millesimes(base)]
    if not liste:
        raise BaseInvalide(f"La base {base} ne contient aucun millésime.")
    if millesime is None:
        return liste[0]
    if millesime not in liste:
        raise BaseInvalide(f"Millésime {millesime} absent de la base {Path(base).name} "
                           f"(disponibles : {', '.join(liste)}).")
    return millesime


def metadonnees(base: str | Path, millesime: str | None = None) -> dict:
    """The metadata of one vintage (newest by default)."""
    m = millesime_par_defaut(base, millesime)
    return next(x for x in millesimes(base) if x["millesime"] == m)


def controle(base: str | Path, millesime: str | None = None) -> list[dict]:
    """The reconciliation of every vintage (or one), METHODOLOGY 8."""
    con = ouvrir(base)
    try:
        if millesime:
            millesime_par_defaut(base, millesime)
            lignes = con.execute("SELECT controle FROM millesimes WHERE millesime = ?",
                                 [millesime]).fetchall()
        else:
            lignes = con.execute("SELECT controle FROM millesimes ORDER BY millesime DESC"
                                 ).fetchall()
    finally:
        con.close()
    return [json.loads(r[0]) for r in lignes]


def qpv_de_la_base(base: str | Path, millesime: str | None = None) -> dict[str, str]:
    """QPV codes → names of one vintage (cached while the file is unchanged)."""
    m = millesime_par_defaut(base, millesime)
    return dict(_qpv_de_la_base(_identite(base), m))


@lru_cache(maxsize=32)
def _qpv_de_la_base(identite: tuple, m: str) -> tuple:
    con = ouvrir(identite[0])
    try:
        return tuple(con.execute("SELECT code_qp, nom_qp FROM qpv WHERE millesime = ? "
                                 "ORDER BY code_qp", [m]).fetchall())
    finally:
        con.close()


def _selection(base: str | Path, territoire: str, millesime: str | None, perimetre: str,
               en_qpv: bool | None):
    """Vintage, territory and SQL condition (with parameters) of an establishment listing."""
    from essqpv.indicators.compute import condition_territoire, verifier_perimetre
    from essqpv.territoires import resoudre
    m = millesime_par_defaut(base, millesime)
    t = resoudre(territoire, qpv_de_la_base(base, m))
    con = ouvrir(base)
    try:
        colonne_qpv = verifier_perimetre(con, m, perimetre)
    finally:
        con.close()
    ou, params = condition_territoire(t, colonne_qpv)
    if en_qpv is True:
        ou += f" AND {colonne_qpv} IS NOT NULL"
    elif en_qpv is False:
        ou += f" AND {colonne_qpv} IS NULL"
    return m, t, f"millesime = ? AND {ou}", [m, *params]


def lister_etablissements(base: str | Path, territoire: str, millesime: str | None = None,
                          perimetre: str = "strict", en_qpv: bool | None = None,
                          page: int = 1, taille: int = 50) -> dict:
    """A page of the in-scope establishments of a territory (public Sirene attributes only)."""
    if not (1 <= taille <= 1000):
        raise ParametreInvalide("taille doit être comprise entre 1 et 1000.")
    if page < 1:
        raise ParametreInvalide("page doit être supérieure ou égale à 1.")
    m, t, ou, params = _selection(base, territoire, millesime, perimetre, en_qpv)
    con = ouvrir(base)
    try:
        total = con.execute(f"SELECT count(*) FROM etablissements WHERE {ou}",
                            params).fetchall()[0][0]
        lignes = con.execute(
            f"SELECT {', '.join(COLONNES_PUBLIQUES)} FROM etablissements WHERE {ou} "
            "ORDER BY siret LIMIT ? OFFSET ?", [*params, taille, (page - 1) * taille]
        ).fetchall()
    finally:
        con.close()
    return {"territoire": t.en_dict(), "millesime": m, "perimetre": perimetre, "total": total,
            "page": page, "taille": taille,
            "etablissements": [dict(zip(COLONNES_PUBLIQUES, ligne)) for ligne in lignes]}


def etablissements_publics(base: str | Path, territoire: str, millesime: str | None = None,
                           perimetre: str = "strict", en_qpv: bool | None = None) -> pl.DataFrame:
    """Every in-scope establishment of a territory, public Sirene attributes only, in one read.

    The same rows as :func:`lister_etablissements` page after page, for exports.
    """
    _, _, ou, params = _selection(base, territoire, millesime, perimetre, en_qpv)
    con = ouvrir(base)
    try:
        table = con.sql(f"SELECT {', '.join(COLONNES_PUBLIQUES)} FROM etablissements "
                        f"WHERE {ou} ORDER BY siret", params=params).to_arrow_table()
    finally:
        con.close()
    return pl.from_arrow(table)
