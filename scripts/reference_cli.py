"""Write docs/commandes.md, the reference of every essqpv command, from the CLI itself.

Run from the project root: ``python scripts/reference_cli.py`` (a test checks the file is
up to date).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import typer

from essqpv.cli import app

CIBLE = Path(__file__).resolve().parents[1] / "docs" / "commandes.md"


def _options(cmd: click.Command) -> list[str]:
    lignes = []
    for p in cmd.params:
        if getattr(p, "param_type_name", "") == "option" or hasattr(p, "is_flag"):
            noms = ", ".join(f"`{n}`" for n in p.opts)
            aide = (p.help or "").replace("\n", " ")
            if p.required:
                aide += " (obligatoire)"
            elif p.default not in (None, False, ()) and not p.is_flag:
                aide += f" (défaut : `{p.default}`)"
            lignes.append(f"| {noms} | {aide} |")
        else:
            lignes.append(f"| `{p.name.upper()}` | argument |")
    return lignes


def rendre() -> str:
    racine = typer.main.get_command(app)
    sortie = ["# Commandes d'essqpv", "",
              "Référence générée par `scripts/reference_cli.py` à partir de l'aide des "
              "commandes (`essqpv COMMANDE --help` donne la même chose dans le terminal).", ""]

    def parcourir(groupe: click.Group, prefixe: str) -> None:
        for nom, cmd in groupe.commands.items():
            complet = f"{prefixe} {nom}".strip()
            sortie.append(f"## `essqpv {complet}`")
            sortie.append("")
            sortie.append((cmd.help or "").strip())
            sortie.append("")
            if isinstance(cmd, click.Group):
                parcourir(cmd, complet)
                continue
            options = _options(cmd)
            if options:
                sortie.extend(["| option | rôle |", "|---|---|", *options, ""])

    parcourir(racine, "")
    return "\n".join(sortie).rstrip() + "\n"


if __name__ == "__main__":
    CIBLE.write_text(rendre(), "utf-8")
    sys.stdout.write(f"écrit : {CIBLE}\n")
