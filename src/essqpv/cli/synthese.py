"""``essqpv synthese`` (synthetic register) and ``essqpv telecharger`` (official files)."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from essqpv.cli._commun import console, json_texte, sortie
from essqpv.errors import ParametreInvalide


def _n(v: int) -> str:
    return f"{v:,}".replace(",", "\u202f")


def _urls(valeurs: list[str] | None) -> dict[str, str]:
    out = {}
    for v in valeurs or []:
        nom, egal, url = v.partition("=")
        if not egal or not nom.strip() or not url.strip():
            raise ParametreInvalide(f"--url attend nom=URL (reçu : « {v} »).")
        out[nom.strip()] = url.strip()
    return out


def register(app: typer.Typer) -> None:
    """Register ``essqpv synthese`` and ``essqpv telecharger``."""

    @app.command("synthese")
    def synthese(
        dossier: Path = typer.Option(..., "--dossier", "-d",
                                     help="Dossier où écrire les fichiers synthétiques."),
        profil: str = typer.Option("demo", "--profil",
                                   help="demo (volumes nationaux de l'ESS, ≈ 450 000 "
                                        "établissements) ou test (1/20e)."),
        etablissements: int | None = typer.Option(
            None, "--etablissements", "-n",
            help="Nombre de lignes d'établissements voulu (jusqu'au répertoire national, "
                 "≈ 40 millions) ; remplace le profil."),
        graine: int = typer.Option(2024, "--graine", help="Graine du tirage (même graine, "
                                                           "mêmes octets)."),
        millesime: str = typer.Option("2024-01", "--millesime", "-m",
                                      help="Millésime AAAA-MM des fichiers."),
        historiques: bool = typer.Option(
            False, "--historiques", help="Écrire aussi les fichiers historiques "
                                         "(StockEtablissementHistorique, "
                                         "StockUniteLegaleHistorique) cohérents avec le stock."),
        format_: str = typer.Option("texte", "--format", help="texte ou json."),
    ) -> None:
        """Écrire un registre Sirene SYNTHÉTIQUE aux schémas officiels (démonstration, tests).

        Stock des établissements (zip), des unités légales, fichier de géolocalisation et
        fichier des emplois ; les contours des QPV, les communes et les nomenclatures sont
        réels, les structures sont inventées. Quelques lignes mal formées sont plantées à
        dessein (listées dans LISEZMOI.txt).
        """
        from essqpv.synthese import generer

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                      transient=True) as barre:
            tache = barre.add_task("Registre synthétique", total=None)

            def avancer(etape: str, fait: int, total: int) -> None:
                barre.update(tache, completed=fait, total=total,
                             description="Tirage" if etape == "tirage" else "Écriture")

            r = generer(dossier, profil=profil, etablissements=etablissements, graine=graine,
                        millesime=millesime, progression=avancer)
            if historiques:
                from essqpv.synthese import generer_historiques
                barre.update(tache, description="Fichiers historiques")
                h = generer_historiques(r["fichiers"], millesime, graine)
                r["fichiers"].update(h["fichiers"])
                r["periodes_historiques"] = h["periodes"]
        if format_ == "json":
            sortie.print(json_texte(r), highlight=False, soft_wrap=True)
            return
        sortie.print(f"[bold yellow]{r['marque']}[/]")
        for role in ("etablissements", "unites_legales", "geolocalisation", "emplois"):
            sortie.print(f"  {r['fichiers'][role]} : {_n(r['lignes'][role])} lignes "
                         f"({r['lignes_malformees'][role]} mal formées à dessein)",
                         highlight=False)
        for role, n in (r.get("periodes_historiques") or {}).items():
            sortie.print(f"  {r['fichiers'][role]} : {_n(n)} périodes", highlight=False)
        a = r["attendu"]
        sortie.print(f"Établissements employeurs de l'ESS en QPV : "
                     f"{_n(a['etablissements_employeurs_qpv'])} ; salariés : "
                     f"{_n(a['salaries_qpv'])} ; en France : "
                     f"{_n(a['etablissements_employeurs_france'])} établissements.",
                     highlight=False)
        sortie.print(f"Durée : {r['duree_s']:.1f} s — détail dans {r['fichiers']['lisezmoi']}",
                     highlight=False)

    @app.command("telecharger")
    def telecharger_cmd(
        dossier: Path = typer.Option(Path("donnees"), "--dossier", "-d",
                                     help="Dossier de destination."),
        sources: str = typer.Option("sirene,geolocalisation,qpv2024,qpv2015,cog", "--sources",
                                    help="Sources à télécharger, séparées par des virgules."),
        url: list[str] | None = typer.Option(
            None, "--url", help="Adresse de remplacement nom=URL (source ou nom de fichier), "
                                "répétable."),
        forcer: bool = typer.Option(False, "--forcer",
                                    help="Télécharger de nouveau les fichiers déjà présents."),
        format_: str = typer.Option("texte", "--format", help="texte ou json."),
    ) -> None:
        """Télécharger les fichiers officiels (Sirene, géolocalisation, QPV, COG).

        Reprise des transferts interrompus, contrôle de la taille et de l'empreinte SHA-256
        quand elle est connue ; les adresses officielles sont dans
        reference/sources_officielles.csv.
        """
        from essqpv.sources.telechargement import telecharger

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                      DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as barre:
            taches: dict[str, int] = {}

            def avancer(fichier: str, fait: int, total: int | None) -> None:
                if fichier not in taches:
                    taches[fichier] = barre.add_task(fichier, total=total)
                barre.update(taches[fichier], completed=fait, total=total)

            res = telecharger(dossier, sources=sources.split(","), urls=_urls(url),
                              forcer=forcer, progression=avancer)
        if format_ == "json":
            sortie.print(json_texte([r.en_dict() for r in res]), highlight=False,
                         soft_wrap=True)
            return
        libelles = {"telecharge": "téléchargé", "repris": "repris et terminé",
                    "deja_present": "déjà présent"}
        for r in res:
            verif = "empreinte vérifiée" if r.empreinte_verifiee else "empreinte non publiée"
            sortie.print(f"{r.chemin} : {libelles[r.statut]}, {_n(r.taille)} octets, {verif} "
                         f"(sha256 {r.sha256[:12]}…) — source : {r.page_documentation}",
                         highlight=False)
