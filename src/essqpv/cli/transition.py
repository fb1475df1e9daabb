"""Command ``transition``: what the 2024 priority map changes for a territory (the stored,
protected answer of the publication)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from essqpv.cli._commun import json_texte, sortie


def transition(
    territoire: str = typer.Argument("FR", help="Territoire : FR, REG:11, DEP:93, EPCI:…, "
                                                "COM:93066 ou un nom (pas un QPV)."),
    base: Path = typer.Option(Path("observatoire.duckdb"), "--base", "-b",
                              help="Fichier de la base."),
    millesime: Optional[str] = typer.Option(None, "--millesime",
                                            help="Millésime (le plus récent par défaut)."),
    detail: str = typer.Option("famille", "--detail", help="famille ou secteur."),
    format: str = typer.Option("texte", "--format", help="texte ou json."),
) -> None:
    """Ce que change la nouvelle carte (2015 → 2024) : établissements et salariés de l'ESS
    entrés (en QPV 2024, pas en 2015), sortis, maintenus, par famille ou par secteur, protégés
    par le secret statistique avec toutes les autres tables (« s » = case masquée ; « — » =
    non publié à ce niveau ; « n.c. » = non couvert par Sirene)."""
    from essqpv.errors import ParametreInvalide
    from essqpv.outputs.transition import table_detail, table_ensemble
    from essqpv.transition import tableau
    if format not in ("texte", "json"):
        raise ParametreInvalide(f"Format inconnu : {format} (attendu : texte ou json).")
    if detail not in ("famille", "secteur"):
        raise ParametreInvalide(f"Détail inconnu : {detail} (attendu : famille ou secteur).")
    r = tableau(base, territoire, millesime)
    if format == "json":
        sortie.print(json_texte(r), highlight=False, soft_wrap=True)
        return
    for table in (table_ensemble(r), table_detail(r, detail)):
        t = Table(title=f"{table['titre']} — millésime {r['millesime']}", title_justify="left")
        for i, c in enumerate(table["entetes"]):
            t.add_column(c, justify="left" if i == 0 else "right")
        for ligne in table["lignes"]:
            t.add_row(*ligne)
        sortie.print(t)
    n, s = len(r["qpv_nouveaux"]), len(r["qpv_sortis"])
    sortie.print(f"QPV 2024 sans prédécesseur en 2015 : {n} ; QPV 2015 sortis de la carte : {s}.")
    for a in r["avertissements"]:
        sortie.print(f"[yellow]{a}[/]")


def register(app: typer.Typer) -> None:
    app.command("transition")(transition)
