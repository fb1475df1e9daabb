"""Commands ``servir`` (the dashboard and its API) and ``publier`` (the static site)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from essqpv.cli._commun import console, sortie

OPTION_BASE = typer.Option(Path("observatoire.duckdb"), "--base", "-b", envvar="ESSQPV_BASE",
                           help="Fichier de la base (construite par essqpv construire ou "
                                "essqpv demo).")


def servir(
    base: Path = OPTION_BASE,
    hote: str = typer.Option("127.0.0.1", "--hote",
                             help="Adresse d'écoute (127.0.0.1 : cette machine seulement)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port d'écoute."),
    processus: int = typer.Option(
        1, "--processus", min=1, max=64,
        help="Processus serveurs (uvicorn workers) ; chacun garde en mémoire les réponses "
             "stockées de la base. Un par cœur pour le débit maximal."),
) -> None:
    """Servir le tableau de bord et son API JSON (lecture seule de la base : les réponses
    stockées de la publication protégée, gardées en mémoire)."""
    import os

    import uvicorn

    from essqpv.web import creer_application
    if processus == 1:
        application = creer_application(base)
    else:  # checked here (a clear error before any worker); each worker loads the answers
        from essqpv.indicators.reponses import verifier_publication
        verifier_publication(base)
    console.print(f"Tableau de bord : [bold]http://{hote}:{port}/[/] — API : "
                  f"http://{hote}:{port}/openapi.json — Ctrl+C pour arrêter.", highlight=False)
    if processus == 1:
        uvicorn.run(application, host=hote, port=port, log_level="warning", access_log=False)
        return
    os.environ["ESSQPV_BASE"] = str(Path(base).resolve())
    uvicorn.run("essqpv.web.app:application_servie", factory=True, host=hote, port=port,
                workers=processus, log_level="warning", access_log=False)


def publier(
    base: Path = OPTION_BASE,
    sortie_dossier: Path = typer.Option(Path("site"), "--sortie", "-o",
                                        help="Dossier du site statique à écrire."),
    millesime: Optional[list[str]] = typer.Option(
        None, "--millesime", "-m", help="Millésime à publier (répétable ; par défaut : tous)."),
    territoire: Optional[list[str]] = typer.Option(
        None, "--territoire", "-t",
        help="Publier ce territoire et ce qu'il contient (répétable ; par défaut : la France "
             "entière). Ex. DEP:93 publie la France, la Seine-Saint-Denis, ses EPCI, "
             "communes et quartiers."),
    fichiers: str = typer.Option(
        "departements", "--fichiers",
        help="Rapports PDF et exports à joindre : « tous » les territoires, jusqu'aux "
             "« departements » (France, régions, départements) ou « aucun »."),
    rapports: bool = typer.Option(True, "--rapports/--sans-rapports",
                                  help="Joindre les rapports PDF (quelques secondes chacun) "
                                       "en plus des exports Excel et CSV."),
) -> None:
    """Publier le tableau de bord en fichiers statiques (les réponses stockées de la
    publication protégée, par territoire du plan)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    from essqpv.web import publier as publier_site
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as barre:
        tache = barre.add_task("Publication", total=None)

        def progression(fait: int, total: int, message: str) -> None:
            barre.update(tache, completed=fait, total=total, description=message)

        bilan = publier_site(base, sortie_dossier, millesimes=millesime or None,
                             territoires=territoire or None, fichiers=fichiers,
                             rapports=rapports, progression=progression)
    sortie.print(f"Site statique écrit dans [bold]{bilan['dossier']}[/] : "
                 f"{bilan['territoires']} territoires, {bilan['fichiers']} fichiers, "
                 f"{bilan['taille_mo']:.1f} Mo. Ouvrez index.html depuis un serveur web "
                 f"(ex. python -m http.server -d {bilan['dossier']}).", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("servir")(servir)
    app.command("publier")(publier)
