"""The ESS perimeter (METHODOLOGY 2–4 and 6.3): pure functions, frames in, frames out.

Every rule comes from the reference tables (``reference/familles.csv``,
``exclusions_activite.csv``, ``secteurs.csv``, ``tranches_effectifs.csv``); each classified row
keeps its reason code (``motif_famille``, ``motif_exclusion``).

Columns expected (already renamed by the loaders, every value text):

- legal units: ``siren, categorie_juridique, ess, denomination, sigle``;
- establishments: ``siren, naf, nomenclature_naf, tranche, employeur_brut``.
"""
from __future__ import annotations

import re

import polars as pl

from essqpv import reference

__all__ = ["familles_unites_legales", "classer_etablissements", "jetons_nom"]


_ACCENTS = (("ÀÂÄÁÃÅ", "A"), ("ÉÈÊË", "E"), ("ÎÏÍÌ", "I"), ("ÔÖÓÒÕ", "O"), ("ÙÛÜÚ", "U"),
            ("Ç", "C"), ("Ÿ", "Y"), ("Œ", "OE"), ("Æ", "AE"), ("Ñ", "N"))


def _majuscules_sans_accents(colonne: str) -> pl.Expr:
    """Upper case, accented capitals replaced (one Aho-Corasick pass, not one per letter)."""
    avant = [a for lettres, _ in _ACCENTS for a in lettres]
    apres = [b for lettres, b in _ACCENTS for _ in lettres]
    return pl.col(colonne).fill_null("").str.to_uppercase().str.replace_many(avant, apres)


def jetons_nom(colonne: str) -> pl.Expr:
    """Upper-cased, accent-free tokens of a name, split on every non-alphanumeric character.

    >>> pl.DataFrame({"n": ["Scop-BTP l'Équipe"]}).select(jetons_nom("n")).item().to_list()
    ['SCOP', 'BTP', 'L', 'EQUIPE']
    """
    texte = _majuscules_sans_accents(colonne)
    return texte.str.replace_all(r"[^A-Z0-9]+", " ").str.strip_chars().str.split(" ")


def _contient_jeton(colonne: str, jetons: list[str]) -> pl.Expr:
    """Whether one of ``jetons`` is a token of the name (same tokens as :func:`jetons_nom`).

    A token is a maximal run of ``[A-Z0-9]`` in the upper-cased, accent-free text, so a
    token equals ``J`` exactly when ``J`` occurs bounded by a non-alphanumeric character or
    an end of the text on both sides: one regex, no list per row.
    """
    if not jetons:
        return pl.lit(False)
    alternatives = "|".join(re.escape(j) for j in jetons)
    if any(not re.fullmatch(r"[A-Z0-9]+", j) for j in jetons):  # not a possible token
        return jetons_nom(colonne).list.set_intersection(pl.lit(jetons)).list.len() > 0
    return _majuscules_sans_accents(colonne).str.contains(
        rf"(?:^|[^A-Z0-9])(?:{alternatives})(?:[^A-Z0-9]|$)")


def familles_unites_legales(ul: pl.LazyFrame) -> pl.LazyFrame:
    """Add ``famille`` (null outside the ESS) and ``motif_famille`` to legal units.

    First matching rule wins, in the order of ``reference/familles.csv``.
    """
    regles = reference.regles_familles().sort("ordre")
    cj = regles.filter(pl.col("regle") == "categorie_juridique")
    nom = regles.filter(pl.col("regle") == "ess_et_nom")
    ess = regles.filter(pl.col("regle") == "ess")
    jetons = nom["valeur"].to_list()
    famille_nom = nom["famille"].unique().to_list()
    if len(famille_nom) > 1:  # the table gives one family for the name rule
        raise ValueError("familles.csv : la règle ess_et_nom doit désigner une seule famille")
    correspondance = dict(zip(cj["valeur"].to_list(), cj["famille"].to_list()))
    valeur_ess = ess["valeur"].to_list()
    famille_ess = ess["famille"].to_list()
    a_nom = _contient_jeton("denomination", jetons) | _contient_jeton("sigle", jetons)
    est_ess = pl.col("ess").is_in(valeur_ess)
    famille_cj = pl.col("categorie_juridique").replace_strict(
        correspondance, default=None, return_dtype=pl.String)
    return ul.with_columns(
        pl.when(famille_cj.is_not_null()).then(famille_cj)
        .when(est_ess & a_nom).then(pl.lit(famille_nom[0] if famille_nom else None))
        .when(est_ess).then(pl.lit(famille_ess[0] if famille_ess else None))
        .otherwise(pl.lit(None, dtype=pl.String)).alias("famille"),
        pl.when(famille_cj.is_not_null()).then(pl.lit("cj=") + pl.col("categorie_juridique"))
        .when(est_ess & a_nom).then(pl.lit("ess=O+nom"))
        .when(est_ess).then(pl.lit("ess=O"))
        .otherwise(pl.lit("hors_ess")).alias("motif_famille"),
    )


def _division(naf: str = "naf") -> pl.Expr:
    return pl.col(naf).fill_null("").str.slice(0, 2)


def classer_etablissements(etab: pl.LazyFrame) -> pl.LazyFrame:
    """Add exclusion, sector, employer flag and headcount estimate to establishments.

    Adds ``nafrev2`` (bool), ``motif_exclusion`` (``exclu_ape=<code>`` or null), ``secteur``,
    ``employeur`` (bool), ``effectif_estime`` (float; null = unknown headcount of an employer).
    """
    est_rev2 = pl.col("nomenclature_naf").fill_null("") == "NAFRev2"
    naf = pl.col("naf").fill_null("")
    exclusions = reference.exclusions_activite()
    div_ex = exclusions.filter(pl.col("niveau") == "division")["code"].to_list()
    sc_ex = exclusions.filter(pl.col("niveau") == "sous_classe")["code"].to_list()
    exclue = est_rev2 & (_division().is_in(div_ex) | naf.is_in(sc_ex))

    secteur = pl.when(~est_rev2 | (naf == "")).then(pl.lit(_secteur_niveau("hors_naf_rev2")))
    for regle in reference.regles_secteurs().sort("ordre").iter_rows(named=True):
        codes = regle["codes"].split("|")
        if regle["niveau"] == "division":
            secteur = secteur.when(_division().is_in(codes)).then(pl.lit(regle["secteur"]))
        elif regle["niveau"] == "sous_classe":
            secteur = secteur.when(naf.is_in(codes)).then(pl.lit(regle["secteur"]))
    secteur = secteur.otherwise(pl.lit(_secteur_niveau("naf_rev2")))

    tranches = reference.tranches()
    employeuses = tranches.filter(pl.col("employeur") == "O")["code"].to_list()
    estime = dict(zip(tranches["code"].to_list(), tranches["effectif_estime"].to_list()))
    employeur = (pl.when(pl.col("employeur_brut") == "O").then(True)
                 .when(pl.col("employeur_brut") == "N").then(False)
                 .otherwise(pl.col("tranche").fill_null("").is_in(employeuses)))
    effectif = (pl.when(~pl.col("employeur")).then(pl.lit(0.0))
                .otherwise(pl.col("tranche").replace_strict(estime, default=None,
                                                            return_dtype=pl.Float64)))
    return etab.with_columns(
        est_rev2.alias("nafrev2"),
        pl.when(exclue).then(pl.lit("exclu_ape=") + naf).otherwise(None).alias("motif_exclusion"),
        secteur.alias("secteur"),
        employeur.alias("employeur"),
    ).with_columns(effectif.alias("effectif_estime"))


def _secteur_niveau(niveau: str) -> str:
    regles = reference.regles_secteurs().filter(pl.col("niveau") == niveau)
    return regles["secteur"][0]
