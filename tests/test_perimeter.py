"""ESS families, reasons, exclusions, sectors, employer flag and headcount estimate."""
from __future__ import annotations

import polars as pl

from essqpv import perimeter, reference


def _ul(lignes):
    return pl.LazyFrame(lignes, schema=["siren", "categorie_juridique", "ess", "denomination",
                                        "sigle"], orient="row")


def test_familles_et_motifs():
    ul = _ul([
        ("1", "9220", "", "ASSO DU QUARTIER", None),
        ("2", "9300", None, "FONDATION X", None),
        ("3", "8210", "O", "MUTUELLE Y", None),
        ("4", "5458", "O", "SCOP Z", None),
        ("5", "5710", "O", "SCOP-BTP DU NORD", None),
        ("6", "5710", "O", "SCOPE CONSEIL", None),
        ("7", "5710", "O", "CAEN SERVICES", None),
        ("8", "5710", "O", "LES COOPERATIVES REUNIES", None),
        ("9", "5710", "O", "X", "CAE"),
        ("10", "5710", "O", "Coopérative d'activité", None),
        ("11", "5710", "N", "SCOP SANS DRAPEAU", None),
        ("12", "1000", None, "DUPONT", None),
        ("13", "6411", "N", "ASSURANCE MUTUELLE", None),
    ])
    r = perimeter.familles_unites_legales(ul).collect()
    assert r.select("famille", "motif_famille").rows() == [
        ("association", "cj=9220"), ("fondation", "cj=9300"), ("mutuelle", "cj=8210"),
        ("cooperative", "cj=5458"), ("cooperative", "ess=O+nom"),
        ("societe_commerciale_ess", "ess=O"), ("societe_commerciale_ess", "ess=O"),
        ("societe_commerciale_ess", "ess=O"), ("cooperative", "ess=O+nom"),
        ("cooperative", "ess=O+nom"), (None, "hors_ess"), (None, "hors_ess"),
        ("mutuelle", "cj=6411")]


def test_exclusions_secteurs_employeur_effectif():
    e = pl.LazyFrame([
        ("84.11Z", "NAFRev2", "11", "O"),   # public administration: excluded
        ("94.91Z", "NAFRev2", "01", "O"),   # religious: excluded
        ("94.99Z", "NAFRev2", "NN", "N"),   # other membership organisations
        ("88.10A", "NAFRev2", "", "O"),     # employer, unknown headcount
        ("85.3K", "NAFRev1", "03", None),   # not NAF rev. 2: Non classé, kept
        ("86.10Z", "NAFRev2", "53", ""),    # empty flag: employer by its bracket
        ("01.11Z", "NAFRev2", "00", None),  # 00: not an employer
        ("43.21A", "NAFRev2", "02", "O"),
        ("94.11Z", "NAFRev2", "01", "O"),
        ("84.11Z", "NAFRev1", "01", "O"),   # division 84 of another nomenclature: kept
    ], schema=["naf", "nomenclature_naf", "tranche", "employeur_brut"], orient="row")
    r = perimeter.classer_etablissements(e).collect()
    assert r["motif_exclusion"].to_list() == [
        "exclu_ape=84.11Z", "exclu_ape=94.91Z", None, None, None, None, None, None,
        "exclu_ape=94.11Z", None]
    assert r["secteur"].to_list() == [
        "Autres services", "Autres services",
        "Autres organisations fonctionnant par adhésion volontaire", "Action sociale",
        "Non classé", "Santé humaine", "Autres services", "Industrie et construction",
        "Autres services", "Non classé"]
    assert r["employeur"].to_list() == [True, True, False, True, True, True, False, True, True,
                                        True]
    assert r["effectif_estime"].to_list() == [14.5, 1.5, 0.0, None, 7.5, 10000.0, 0.0, 4.0,
                                              1.5, 1.5]


def test_tables_de_reference():
    assert reference.naf().height == 732
    assert reference.naf()["sous_classe"].is_unique().all()
    assert reference.categories_juridiques().height == 260
    fam = reference.regles_familles()
    assert set(fam["famille"]) == set(reference.FAMILLES)
    cj = fam.filter(pl.col("regle") == "categorie_juridique")
    assert cj["valeur"].is_unique().all()
    assert set(cj["valeur"]) <= set(reference.categories_juridiques()["code_niveau3"])
    # the legal-category rules come before the name and flag rules (first match wins)
    assert cj["ordre"].max() < fam.filter(pl.col("regle") != "categorie_juridique")["ordre"].min()
    sect = reference.regles_secteurs()
    assert sect["secteur"].is_unique().all() and len(reference.SECTEURS) == 13
    divisions = [c for codes in sect.filter(pl.col("niveau") == "division")["codes"]
                 for c in codes.split("|")]
    assert len(divisions) == len(set(divisions))
    assert set(divisions) <= set(reference.naf()["division"])
    t = reference.tranches()
    assert t.height == 16 and t["code"].is_unique().all()
    assert reference.qpv2015().height == 1514
    assert reference.qpv2015()["repare"].sum() == 34
    assert reference.contours("regions").height == 18
    assert reference.contours("departements").height == 101
