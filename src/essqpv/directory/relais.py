"""Adult-relay posts of the politique de la ville (ANCT, 2023), joined to the base by SIRET.

The package carries the ANCT list as a compact CSV (``relais_adultes_2023.csv``, provenance
in ``README.md``); :func:`lire_relais` also reads the original ANCT JSON. The employer's
``code_tiers`` is its SIRET.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import polars as pl

from essqpv.directory.schema import siret_valide
from essqpv.errors import ColonneManquante, FichierIntrouvable, FichierInvalide

__all__ = [
    "COLONNES_RELAIS",
    "SOURCE_RELAIS",
    "importer_relais",
    "lire_relais",
    "relais_adultes",
    "relais_par_departement",
]

COLONNES_RELAIS = ("id_poste", "siret", "raison_sociale", "annee", "montant", "code_cv",
                   "departement", "region")
#: Provenance of the packaged layer (shown with every answer built from it).
SOURCE_RELAIS = {
    "fichier": "relais_adultes_2023.csv",
    "origine": "anct-carto/ci-ville, src/assets/adulte-relais-2023.json "
               "(commit 45f7521dd732934d95fe7cc715fd250ccffd2998, 2024-04-18)",
    "producteur": "ANCT (plateforme DAUPHIN, subventions politique de la ville)",
    "millesime": "2023",
    "licence": "Licence Ouverte 2.0",
}
_SCHEMA = {"id_poste": pl.Utf8, "siret": pl.Utf8, "raison_sociale": pl.Utf8, "annee": pl.Int32,
           "montant": pl.Float64, "code_cv": pl.Utf8, "departement": pl.Utf8, "region": pl.Utf8}


def _depuis_json(chemin: Path) -> pl.DataFrame:
    try:
        doc = json.loads(chemin.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise FichierInvalide(f"{chemin.name} : JSON invalide (ligne {exc.lineno}).") from exc
    if not isinstance(doc, list):
        raise FichierInvalide(f"{chemin.name} : liste de postes attendue (format ANCT).")
    lignes = []
    for i, r in enumerate(doc, start=1):
        for cle in ("id_poste", "code_tiers", "montant"):
            if cle not in r:
                raise ColonneManquante(f"{chemin.name} : poste n° {i} sans champ « {cle} ».")
        lignes.append({"id_poste": r["id_poste"], "siret": r["code_tiers"],
                       "raison_sociale": r.get("raison_sociale"), "annee": r.get("annee"),
                       "montant": r["montant"], "code_cv": r.get("code_cv"),
                       "departement": r.get("insee_dep"), "region": r.get("insee_reg")})
    return pl.DataFrame(lignes, schema=_SCHEMA)


def lire_relais(chemin: str | Path | None = None) -> pl.DataFrame:
    """The adult-relay posts: the packaged CSV, or an ANCT JSON / CSV file.

    Raises
    ------
    FichierInvalide
        When a SIRET is not 14 digits with a valid check key (names the post).
    """
    if chemin is None:
        with files("essqpv.directory").joinpath(SOURCE_RELAIS["fichier"]).open("rb") as f:
            df = pl.read_csv(f, schema=_SCHEMA)
        nom = SOURCE_RELAIS["fichier"]
    else:
        chemin = Path(chemin)
        if not chemin.exists():
            raise FichierIntrouvable(f"Fichier introuvable : {chemin}")
        nom = chemin.name
        if chemin.suffix.lower() == ".json":
            df = _depuis_json(chemin)
        else:
            df = pl.read_csv(chemin, infer_schema=False)
            manquantes = [c for c in COLONNES_RELAIS if c not in df.columns]
            if manquantes:
                raise ColonneManquante(f"{nom} : colonne « {manquantes[0]} » manquante "
                                       f"(attendu {', '.join(COLONNES_RELAIS)}).")
            df = df.select(COLONNES_RELAIS).cast(_SCHEMA)
    for poste, siret in df.select("id_poste", "siret").iter_rows():
        if not (siret and re.fullmatch(r"[0-9]{14}", siret) and siret_valide(siret)):
            raise FichierInvalide(f"{nom} : poste {poste} : SIRET « {siret} » invalide "
                                  f"(14 chiffres avec clé de contrôle attendus).")
    return df


@lru_cache(maxsize=1)
def relais_adultes() -> pl.DataFrame:
    """The packaged layer (5,416 posts 2023, 2,839 employers)."""
    return lire_relais(None)


def _joindre(df: pl.DataFrame, con) -> pl.DataFrame:
    """Add ``famille``, ``ess`` and ``qpv`` of the employer (newest vintage of the base)."""
    from essqpv.directory.annuaire import etablissements_par_siret, millesime_et_marque

    trouves = {}
    millesime = None
    if con is not None:
        millesime = millesime_et_marque(con)[0]
        trouves = etablissements_par_siret(con, df["siret"].unique().to_list(), millesime)
    return df.with_columns(
        pl.col("siret").replace_strict({s: e.get("famille") for s, e in trouves.items()},
                                       default=None, return_dtype=pl.Utf8).alias("famille"),
        pl.col("siret").is_in(list(trouves)).alias("ess"),
        pl.col("siret").replace_strict({s: e.get("qpv") for s, e in trouves.items()},
                                       default=None, return_dtype=pl.Utf8).alias("qpv"),
        pl.lit(millesime, dtype=pl.Utf8).alias("millesime"),
    )


def _resume(df: pl.DataFrame) -> dict:
    ess = df.filter(pl.col("ess"))
    familles = (ess.unique("siret").group_by("famille").len().sort("famille").iter_rows())
    return {
        "postes": df.height,
        "employeurs": df["siret"].n_unique(),
        "montant_total": round(float(df["montant"].sum()), 2),
        "postes_ess": ess.height,
        "employeurs_ess": ess["siret"].n_unique(),
        "employeurs_ess_par_famille": {f: n for f, n in familles},
        "employeurs_ess_en_qpv": ess.filter(pl.col("qpv").is_not_null())["siret"].n_unique(),
        "postes_sans_departement": df.filter(pl.col("departement").is_null()).height,
    }


def importer_relais(base: str | Path, chemin: str | Path | None = None) -> dict:
    """Store the adult-relay posts in the base table ``relais_adultes``, joined by SIRET.

    The table is replaced for the years present in the file, in one transaction.

    Returns
    -------
    dict
        ``postes``, ``employeurs`` (distinct SIRET), ``montant_total``, ``postes_ess``,
        ``employeurs_ess``, ``employeurs_ess_par_famille``, ``employeurs_ess_en_qpv``,
        ``postes_sans_departement``, ``millesime_base``, ``source``.
    """
    from essqpv.directory.annuaire import _connexion, millesime_et_marque

    df = lire_relais(chemin)
    con = _connexion(base, ecriture=True)
    try:
        joint = _joindre(df, con).with_columns(
            pl.lit(datetime.now().replace(microsecond=0)).alias("date_import"))
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "CREATE TABLE IF NOT EXISTS relais_adultes (id_poste VARCHAR, siret VARCHAR, "
                "raison_sociale VARCHAR, annee INTEGER, montant DOUBLE, code_cv VARCHAR, "
                "departement VARCHAR, region VARCHAR, famille VARCHAR, ess BOOLEAN, qpv VARCHAR, "
                "millesime VARCHAR, date_import TIMESTAMP)")
            annees = joint["annee"].unique().to_list()
            con.executemany("DELETE FROM relais_adultes WHERE annee = ?", [[a] for a in annees])
            con.register("relais_a_ecrire", joint.to_arrow())
            con.execute("INSERT INTO relais_adultes SELECT id_poste, siret, raison_sociale, annee, "
                        "montant, code_cv, departement, region, famille, ess, qpv, millesime, "
                        "date_import FROM relais_a_ecrire")
            con.unregister("relais_a_ecrire")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        millesime = joint["millesime"][0] if joint.height else None
        synthetique = millesime_et_marque(con)[1]
    finally:
        con.close()
    source = dict(SOURCE_RELAIS) if chemin is None else {"fichier": Path(chemin).name}
    return {**_resume(joint), "millesime_base": millesime, "base_synthetique": synthetique,
            "source": source}


def _libelle_departement(code: str | None) -> str:
    if code is None:
        return "Département non renseigné"
    try:
        from essqpv.territoires import libelle_departement
        nom = libelle_departement(code)
    except ImportError:
        from essqpv.reference import departements
        nom = next((d["nom"] for d in departements() if d["code"] == code), None)
    return nom or code


def relais_par_departement(base: str | Path | None) -> list[dict]:
    """Adult-relay posts by département, with how many employers are in the ESS base.

    Reads the base table ``relais_adultes`` when it exists; otherwise joins the packaged
    layer to the base's ``etablissements`` on the fly (no base: ESS columns are null).

    Returns
    -------
    list of dict
        One row per département (code order; posts without département last):
        ``departement, libelle, region, postes, employeurs, montant, postes_ess,
        employeurs_ess, part_employeurs_ess, employeurs_ess_par_famille,
        employeurs_ess_en_qpv, source, base_synthetique`` (the ESS columns come from
        synthetic demo data when ``base_synthetique`` is true).
    """
    from essqpv.directory.annuaire import _connexion, _tables

    from essqpv.directory.annuaire import millesime_et_marque

    df = None
    synthetique = False
    avec_base = base is not None and Path(base).exists()
    if avec_base:
        con = _connexion(base, ecriture=False)
        try:
            synthetique = millesime_et_marque(con)[1]
            if "relais_adultes" in _tables(con):
                df = pl.from_arrow(con.sql("SELECT * FROM relais_adultes").to_arrow_table())
            else:
                df = _joindre(relais_adultes(), con)
        finally:
            con.close()
    else:
        df = relais_adultes().with_columns(pl.lit(None, dtype=pl.Utf8).alias("famille"),
                                           pl.lit(None, dtype=pl.Boolean).alias("ess"),
                                           pl.lit(None, dtype=pl.Utf8).alias("qpv"))
    sortie = []
    groupes = df.partition_by("departement", as_dict=True, maintain_order=False)
    cles = sorted(groupes, key=lambda k: (k[0] is None, k[0] or ""))
    for cle in cles:
        g = groupes[cle]
        dep = cle[0]
        employeurs = g["siret"].n_unique()
        ligne = {"departement": dep, "libelle": _libelle_departement(dep),
                 "region": g["region"].drop_nulls().first() if g["region"].null_count() < g.height
                 else None,
                 "postes": g.height, "employeurs": employeurs,
                 "montant": round(float(g["montant"].sum()), 2)}
        if avec_base:
            ess = g.filter(pl.col("ess"))
            n = ess["siret"].n_unique()
            ligne.update(
                postes_ess=ess.height, employeurs_ess=n,
                part_employeurs_ess=round(n / employeurs, 4) if employeurs else None,
                employeurs_ess_par_famille={f: k for f, k in ess.unique("siret").group_by("famille")
                                            .len().sort("famille").iter_rows()},
                employeurs_ess_en_qpv=ess.filter(pl.col("qpv").is_not_null())["siret"].n_unique())
        else:
            ligne.update(postes_ess=None, employeurs_ess=None, part_employeurs_ess=None,
                         employeurs_ess_par_famille=None, employeurs_ess_en_qpv=None)
        ligne["source"] = SOURCE_RELAIS["producteur"] + ", " + SOURCE_RELAIS["licence"]
        ligne["base_synthetique"] = synthetique
        sortie.append(ligne)
    return sortie
