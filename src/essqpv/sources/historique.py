"""Readers of INSEE's historical Sirene stocks: ``StockEtablissementHistorique`` and
``StockUniteLegaleHistorique`` (one row per period of an establishment or a legal unit).

Official schemas (``reference/colonnes_sources.csv``, roles ``etablissements_historique``,
18 columns, and ``unites_legales_historique``, 26 columns before 2023 then 28 with
``societeMissionUniteLegale``): ``dateDebut``/``dateFin`` bound the period (both days
included, ``dateFin`` empty for the current one; ``dateDebut`` is empty for the first period
of some old units, read as "since always"); the historised values of the period follow
(state, activity and its nomenclature, employer character; for legal units also the legal
category, the name and the ESS flag).

The files are read as the stocks are (:func:`essqpv.sources.sirene.preparer` and
:func:`~essqpv.sources.sirene.convertir`: zipped or not, header checked, malformed lines
rejected with their physical line number, the header being line 1). Then every period kept
is checked; a period is rejected, unchanged and with its reason, when:

- ``date_invalide``: ``dateDebut`` or ``dateFin`` is not an ``AAAA-MM-JJ`` date;
- ``date_fin_avant_debut``: ``dateFin`` < ``dateDebut``;
- ``periodes_chevauchantes``: it starts on or before the end of the previous period of the
  same siret (siren for legal units), periods taken in order of start (the first one kept);
- ``identifiant_invalide``: the siret is not 14 digits (siren: 9).

Reconciliation, in physical lines: ``lignes_lues = lignes_rejetees + acceptees``, and the
rejects by reason add up to ``lignes_rejetees``.

Rows that no series can use (periods of legal units that are never ESS candidates, periods
of their establishments) are thinned by the reader: they are counted and their lines are
checked for form, not for dates (``non_verifiees`` in the reconciliation).

Public verbs: :func:`charger`, :class:`Historique`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from essqpv.sources import sirene
from essqpv.sources.emplois import _lignes_brutes
from essqpv.sources.lecteur import Condition

__all__ = ["RENOMMAGE", "Historique", "charger", "MOTIFS"]

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

    ``periodes``: the accepted periods that were kept, renamed (``RENOMMAGE``), with
    ``debut`` and ``fin`` as dates (``debut`` null = since always, ``fin`` null = current
    period) and ``ligne`` (physical line). ``rejets``: every rejected line, form and rules.
    """

    role: str
    source: sirene.FichierSource
    periodes: pl.DataFrame
    lignes_lues: int
    rejets: list[sirene.Rejet] = field(default_factory=list)
    non_verifiees: int = 0

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
                "acceptees": self.acceptees, "periodes_utiles": self.periodes.height,
                "non_verifiees": self.non_verifiees}


def _verifier(cadre: pl.DataFrame, role: str) -> pl.DataFrame:
    """Add ``_motif`` (null = accepted) and the typed ``debut``/``fin``."""
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
    cadre = cadre.with_columns(motif.alias("_motif"))
    # Overlaps, among the periods that passed the rules above, in order of start (a period
    # without start first); the first period of a chain is kept, each later one that
    # starts on or before the end of the last kept one is rejected. The end of the last
    # kept period is carried by a cumulative maximum, so a chain is judged in one pass.
    bons = (cadre.filter(pl.col("_motif").is_null())
            .select(cle, "debut", "fin", "_ligne")
            .sort([cle, "debut", "_ligne"], nulls_last=False))
    loin = pl.date(9999, 12, 31)
    tres_tot = pl.date(1, 1, 1)
    bons = bons.with_columns(
        pl.col("fin").fill_null(loin).alias("_f"), pl.col("debut").fill_null(tres_tot).alias("_d"))
    bons = bons.with_columns(
        pl.col("_f").cum_max().shift(1).over(cle).alias("_fin_avant"))
    chevauche = bons.filter(pl.col("_fin_avant").is_not_null()
                            & (pl.col("_d") <= pl.col("_fin_avant")))["_ligne"]
    if chevauche.len():
        cadre = cadre.with_columns(
            pl.when(pl.col("_ligne").is_in(chevauche.implode()))
            .then(pl.lit("periodes_chevauchantes")).otherwise(pl.col("_motif")).alias("_motif"))
    return cadre


def charger(chemin: str | Path, role: str, travail: str | Path,
            garder: Condition | None = None) -> Historique:
    """Read and check a historical file (``role``: ``etablissements_historique`` or
    ``unites_legales_historique``).

    ``garder`` thins the rows no series can use (their lines are still read, counted and
    checked for form; see :func:`essqpv.sources.sirene.convertir`).
    """
    travail = Path(travail)
    source = sirene.preparer(chemin, role, travail / "extraits")
    renommage = RENOMMAGE[role]
    colonnes = list(renommage)
    conv = sirene.convertir(source, colonnes, travail / f"{role}.arrow", garder=garder,
                            numeroter=True)
    try:
        if conv.gardees is not None:
            lignes = (conv.lire().select("_garder", "_ligne").with_row_index("_rang")
                      .filter(pl.col("_garder")).select("_rang", "_ligne").collect())
            cadre = (conv.lire_gardees().collect()
                     .join(lignes.with_columns(pl.col("_rang").cast(pl.Int64)), on="_rang",
                           how="left").drop("_rang"))
            non_verifiees = conv.lignes_acceptees - cadre.height
        else:
            cadre = conv.lire().collect()
            non_verifiees = 0
    finally:
        for f in (conv.chemin, conv.gardees):
            if f is not None and f.exists():
                f.unlink()
    cadre = _verifier(cadre.rename(renommage), role)
    rejetees = cadre.filter(pl.col("_motif").is_not_null()).select("_ligne", "_motif")
    rejets = list(conv.rejets)
    if rejetees.height:
        contenus = _lignes_brutes(source.csv, set(rejetees["_ligne"].to_list()))
        rejets += [sirene.Rejet(int(n), m, contenus.get(int(n), b""))
                   for n, m in rejetees.iter_rows()]
    rejets.sort(key=lambda r: r.ligne)
    periodes = (cadre.filter(pl.col("_motif").is_null())
                .drop("_motif", "debut_brut", "fin_brut").rename({"_ligne": "ligne"}))
    return Historique(role=role, source=source, periodes=periodes,
                      lignes_lues=conv.lignes_lues, rejets=rejets,
                      non_verifiees=non_verifiees)
