"""Shared helpers of the command line: error handling, console, JSON output."""
from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from essqpv.errors import EssqpvError

console = Console(stderr=True)
sortie = Console()


def executer(app: typer.Typer) -> int:
    """Run the typer app; turn project errors into one French line and exit code 1."""
    debug = "--debug" in sys.argv
    try:
        app(standalone_mode=False)
    except EssqpvError as exc:
        if debug:
            raise
        console.print(f"[bold red]Erreur :[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        console.print("Interrompu.")
        return 130
    except Exception as exc:  # click usage errors
        import click
        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        raise
    return 0


def json_texte(obj: Any) -> str:
    """JSON as the project writes it: UTF-8 text, two-space indent, keys in order."""
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str)
