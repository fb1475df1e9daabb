"""Directory of the quartiers' ESS initiatives and the three socio-economic models.

Public verbs: :func:`valider`, :func:`importer`, :func:`lister`, :func:`exporter` (the
directory), :func:`modeles` (the seed deck's table of the three models),
:func:`deduire_modele` (the model from a resources breakdown), :func:`annuaire_initial`
(the initiatives the deck names), and the adult-relay layer: :func:`importer_relais`,
:func:`relais_par_departement`.
"""
from __future__ import annotations

from essqpv.directory import _reference
from essqpv.directory.annuaire import (
    COLONNES_EXPORT,
    ResultatValidation,
    annuaire_initial,
    exporter,
    importer,
    importer_annuaire_initial,
    lister,
    valider,
)
from essqpv.directory.modele import choisir_modele, deduire_modele, parts_ressources
from essqpv.directory.relais import (
    SOURCE_RELAIS,
    importer_relais,
    lire_relais,
    relais_adultes,
    relais_par_departement,
)

__all__ = [
    "COLONNES_EXPORT",
    "SOURCE_RELAIS",
    "SOURCE_WEBINAIRE",
    "ResultatValidation",
    "annuaire_initial",
    "categories",
    "choisir_modele",
    "deduire_modele",
    "exporter",
    "importer",
    "importer_annuaire_initial",
    "importer_relais",
    "lire_relais",
    "lister",
    "modeles",
    "parts_ressources",
    "relais_adultes",
    "relais_par_departement",
    "valider",
]

#: The seed deck, source of the models table, the categories and the starter directory.
SOURCE_WEBINAIRE = ("Webinaire ANCT / ESS France / RTES « L'ESS dans les quartiers prioritaires "
                    "de la politique de la ville » (2020)")


def modeles() -> list[dict]:
    """The seed deck's table of the three socio-economic models.

    Returns
    -------
    list of dict
        ``modele`` (1, 2, 3), ``intitule``, ``caracteristiques``, ``modele_economique``,
        ``environnement``, ``partenaires_cles``, ``exemples`` (list), ``source``.
    """
    return [{**m, "modele": int(m["modele"]), "exemples": m["exemples"].split("|"),
             "source": SOURCE_WEBINAIRE} for m in _reference.modeles()]


def categories() -> list[dict]:
    """The deck's axes and categories: ``axe, libelle_axe, categorie, libelle_categorie``."""
    return [{k: r[k] for k in ("axe", "libelle_axe", "categorie", "libelle_categorie")}
            for r in _reference.categories()]
