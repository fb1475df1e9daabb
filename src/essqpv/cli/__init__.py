"""The ``essqpv`` command: typer + rich, thin shells over the library.

Each area of the project registers its commands from its own module of this package
(``register(app)``), so the command line grows without one giant module. A command parses
its options, calls the library and writes; it holds no logic of its own.
"""
from __future__ import annotations

import importlib
import sys

import typer

from essqpv import __version__

app = typer.Typer(
    name="essqpv",
    help="Observatoire de l'économie sociale et solidaire (ESS) dans les quartiers "
         "prioritaires de la politique de la ville (QPV).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

# Modules of essqpv.cli that each define register(app). Keep one per area.
MODULES = [
    "base",          # construire, controle
    "indicateurs",   # indicateurs
    "localiser",     # localiser
    "geocodeur",     # geocodeur installer, etat
    "synthese",      # synthese, telecharger, demo
    "rapport",       # rapport, exporter
    "web",           # servir, publier
    "initiatives",   # initiatives ...
    "demo",          # demo
    "historique",    # historique, evolution
    "transition",    # transition (2015 → 2024)
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"essqpv {__version__}")
        raise typer.Exit()


@app.callback()
def principal(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Afficher la trace complète des erreurs."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Afficher la version et quitter."),
) -> None:
    """Observatoire ESS × QPV."""
    ctx.obj = {"debug": debug}


for _name in MODULES:
    try:
        _module = importlib.import_module(f"essqpv.cli.{_name}")
    except ModuleNotFoundError as exc:  # an area not written yet
        if exc.name != f"essqpv.cli.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    """Entry point: French one-line errors, traceback only with ``--debug``."""
    from essqpv.cli._commun import executer
    sys.exit(executer(app))
