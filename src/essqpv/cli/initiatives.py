"""``essqpv initiatives``: the directory of initiatives and the adult-relay layer."""
from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from essqpv.cli._commun import console, json_texte, sortie

OPTION_BASE = typer.Option(Path("observatoire.duckdb"), "--base", "-b", envvar="ESSQPV_BASE",
                           help="Base DuckDB de l'observatoire (variable ESSQPV_BASE).")


class Format(str, Enum):
    csv = "csv"
    xlsx = "xlsx"
    json = "json"


class Affichage(str, Enum):
    tableau = "tableau"
    json = "json"


def _afficher_resume(resume: dict, titre: str) -> None:
    t = Table(title=titre, show_header=False)
    for cle in ("fichier", "format", "lignes_lues", "acceptees", "rejetees", "nouvelles",
                "mises_a_jour", "rattachees_siret", "rattachees_coordonnees", "non_rattachees",
                "en_qpv", "millesime_base"):
        if cle in resume:
            t.add_row(cle.replace("_", " "), str(resume[cle]))
    sortie.print(t)
    if resume.get("base_synthetique"):
        from essqpv.config import MARQUE_SYNTHETIQUE
        sortie.print(f"[bold red]Base : {MARQUE_SYNTHETIQUE}[/]")
    if resume.get("rejets_par_motif"):
        sortie.print("Rejets par motif : " + ", ".join(
            f"{k} = {v}" for k, v in resume["rejets_par_motif"].items()))
    for r in resume.get("rejets", [])[:50]:
        sortie.print(f"  ligne {r['ligne']} — {r['motif']} : {r['message']}", highlight=False)
    if len(resume.get("rejets", [])) > 50:
        sortie.print(f"  … {len(resume['rejets']) - 50} autres rejets (voir --format json).")
    for a in resume.get("avertissements", [])[:20]:
        console.print(f"[yellow]Avertissement :[/] {a}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``initiatives`` sub-application to the main command."""
    sous = typer.Typer(help="Annuaire des initiatives de l'ESS dans les quartiers et modèles "
                            "socio-économiques ; postes d'adultes-relais.",
                       no_args_is_help=True)

    @sous.command("importer")
    def importer_cmd(
        fichier: Path = typer.Argument(None, help="Fichier CSV, XLSX ou JSON (export GoGoCarto) "
                                                  "des initiatives."),
        base: Path = OPTION_BASE,
        format: Format = typer.Option(None, "--format", "-f",
                                      help="Format du fichier (par défaut : son extension)."),
        source: str = typer.Option(None, "--source",
                                   help="Provenance à inscrire sur les lignes qui n'en ont pas "
                                        "(par défaut : le nom du fichier)."),
        initial: bool = typer.Option(False, "--annuaire-initial",
                                     help="Importer l'annuaire de départ (initiatives citées par "
                                          "le webinaire ANCT / ESS France / RTES, 2020)."),
        creer: bool = typer.Option(False, "--creer",
                                   help="Créer la base si elle n'existe pas."),
        affichage: Affichage = typer.Option(Affichage.tableau, "--sortie",
                                            help="Affichage du bilan : tableau ou json."),
    ) -> None:
        """Valider, rattacher à la base (SIRET ou coordonnées) et enregistrer des initiatives."""
        from essqpv.directory import importer, importer_annuaire_initial
        from essqpv.errors import ParametreInvalide

        if initial:
            with console.status("Import de l'annuaire de départ…"):
                resume = importer_annuaire_initial(base, creer=creer)
        elif fichier is None:
            raise ParametreInvalide("Donner un fichier à importer, ou --annuaire-initial.")
        else:
            with console.status(f"Import de {fichier.name}…"):
                resume = importer(base, fichier, format.value if format else None, source,
                                  creer=creer)
        if affichage == Affichage.json:
            sortie.print(json_texte(resume), highlight=False, markup=False, soft_wrap=True)
        else:
            _afficher_resume(resume, f"Import dans {base}")

    @sous.command("valider")
    def valider_cmd(
        fichier: Path = typer.Argument(..., help="Fichier CSV, XLSX ou JSON à contrôler."),
        format: Format = typer.Option(None, "--format", "-f",
                                      help="Format du fichier (par défaut : son extension)."),
        affichage: Affichage = typer.Option(Affichage.tableau, "--sortie",
                                            help="Affichage du bilan : tableau ou json."),
    ) -> None:
        """Contrôler un fichier d'initiatives sans rien écrire (code 1 s'il y a des rejets)."""
        from essqpv.directory import valider

        resume = valider(fichier, format.value if format else None).resume()
        if affichage == Affichage.json:
            sortie.print(json_texte(resume), highlight=False, markup=False, soft_wrap=True)
        else:
            _afficher_resume(resume, f"Contrôle de {fichier.name}")
        if resume["rejetees"]:
            raise typer.Exit(1)

    @sous.command("lister")
    def lister_cmd(
        base: Path = OPTION_BASE,
        territoire: str = typer.Option(None, "--territoire", "-t",
                                       help="Territoire : FR, DEP:93, REG:11, COM:93066, "
                                            "QPV:QP093001…"),
        modele: int = typer.Option(None, "--modele", "-m", min=1, max=3,
                                   help="Seulement ce modèle socio-économique (1, 2 ou 3)."),
        affichage: Affichage = typer.Option(Affichage.tableau, "--sortie",
                                            help="Affichage : tableau ou json."),
    ) -> None:
        """Lister les initiatives (l'annuaire de départ si la base n'en contient pas)."""
        from essqpv.directory import lister

        lignes = lister(base, territoire)
        if modele:
            lignes = [r for r in lignes if r["modele"] == modele]
        if affichage == Affichage.json:
            sortie.print(json_texte(lignes), highlight=False, markup=False, soft_wrap=True)
            return
        t = Table(title=f"Initiatives ({len(lignes)})")
        for c in ("nom", "modèle", "catégories", "commune", "QPV", "rattachement"):
            t.add_column(c)
        for r in lignes:
            t.add_row(r["nom"], str(r["modele"] or ""), ", ".join(r["libelles_categories"]),
                      r["nom_commune"] or "", r["qpv"] or "", r["rattachement"] or "")
        sortie.print(t)
        sources = sorted({r["source"] for r in lignes if r["source"]})
        if sources:
            sortie.print("Sources : " + " ; ".join(sources), highlight=False)

    @sous.command("exporter")
    def exporter_cmd(
        fichier: Path = typer.Argument(..., help="Fichier à écrire (.csv, .xlsx ou .json)."),
        base: Path = OPTION_BASE,
        format: Format = typer.Option(None, "--format", "-f",
                                      help="Format (par défaut : l'extension du fichier)."),
        territoire: str = typer.Option(None, "--territoire", "-t",
                                       help="Seulement ce territoire (DEP:93, QPV:QP093001…)."),
    ) -> None:
        """Exporter l'annuaire en CSV, XLSX ou JSON de type GoGoCarto (réimportable tel quel)."""
        from essqpv.directory import exporter

        r = exporter(base, fichier, format.value if format else None, territoire)
        sortie.print(f"{r['initiatives']} initiatives écrites dans {r['fichier']} "
                     f"({r['format']}).", highlight=False)

    @sous.command("modeles")
    def modeles_cmd(
        affichage: Affichage = typer.Option(Affichage.tableau, "--sortie",
                                            help="Affichage : tableau ou json."),
    ) -> None:
        """Afficher le tableau des trois modèles socio-économiques du webinaire."""
        from essqpv.directory import SOURCE_WEBINAIRE, modeles

        m = modeles()
        if affichage == Affichage.json:
            sortie.print(json_texte(m), highlight=False, markup=False, soft_wrap=True)
            return
        t = Table(title="Les trois modèles socio-économiques", show_lines=True)
        for c in ("modèle", "caractéristiques", "modèle économique", "environnement",
                  "partenaires clés", "exemples"):
            t.add_column(c)
        for r in m:
            t.add_row(f"{r['modele']}. {r['intitule']}", r["caracteristiques"],
                      r["modele_economique"], r["environnement"], r["partenaires_cles"],
                      ", ".join(r["exemples"]))
        sortie.print(t)
        sortie.print(f"Source : {SOURCE_WEBINAIRE}.", highlight=False)

    @sous.command("relais")
    def relais_cmd(
        base: Path = OPTION_BASE,
        fichier: Path = typer.Option(None, "--fichier",
                                     help="Fichier ANCT (JSON) ou CSV des postes ; par défaut "
                                          "la couche 2023 embarquée."),
        importer_couche: bool = typer.Option(True, "--importer/--sans-importer",
                                             help="Enregistrer la couche dans la base "
                                                  "(table relais_adultes) avant d'afficher."),
        affichage: Affichage = typer.Option(Affichage.tableau, "--sortie",
                                            help="Affichage : tableau ou json."),
    ) -> None:
        """Postes d'adultes-relais (ANCT 2023) rapprochés de la base par SIRET, par département."""
        from essqpv.directory import SOURCE_RELAIS, importer_relais, relais_par_departement

        resume = None
        if importer_couche:
            with console.status("Import des postes d'adultes-relais…"):
                resume = importer_relais(base, fichier)
        lignes = relais_par_departement(base)
        if affichage == Affichage.json:
            sortie.print(json_texte({"bilan": resume, "departements": lignes}), highlight=False,
                         markup=False, soft_wrap=True)
            return
        if resume:
            sortie.print(
                f"{resume['postes']} postes, {resume['employeurs']} employeurs (SIRET distincts), "
                f"dont {resume['employeurs_ess']} dans la base ESS "
                f"({resume['postes_ess']} postes).", highlight=False)
        t = Table(title="Adultes-relais par département")
        for c in ("département", "postes", "employeurs", "employeurs ESS", "montant (€)"):
            t.add_column(c, justify="right" if c != "département" else "left")
        for r in lignes:
            t.add_row(f"{r['departement'] or '—'} {r['libelle']}", str(r["postes"]),
                      str(r["employeurs"]), "" if r["employeurs_ess"] is None
                      else str(r["employeurs_ess"]),
                      f"{r['montant']:,.0f}".replace(",", "\u202f"))
        sortie.print(t)
        sortie.print(f"Source : {SOURCE_RELAIS['producteur']}, millésime "
                     f"{SOURCE_RELAIS['millesime']}, {SOURCE_RELAIS['licence']}.", highlight=False)
        if lignes and lignes[0]["base_synthetique"]:
            from essqpv.config import MARQUE_SYNTHETIQUE
            sortie.print(f"[bold red]Base : {MARQUE_SYNTHETIQUE}[/]")

    app.add_typer(sous, name="initiatives")
