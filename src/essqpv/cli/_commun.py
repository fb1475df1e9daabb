"""Shared helpers of the command line: error handling, console, JSON output."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from essqpv.errors import _CAUSES_OS, BaseInvalide, EssqpvError, ParametreInvalide, cause_os

console = Console(stderr=True)
sortie = Console()

#: Exit codes (typer/click conventions): 1 an error while running (file, data, refusal,
#: crash), 2 a usage error (unknown option, a value not allowed, a base that is not one).
CODE_ERREUR, CODE_USAGE = 1, 2
_ERREURS_D_USAGE = (ParametreInvalide, BaseInvalide)


def _classes_click() -> tuple[type, ...]:
    """The exception bases of click, as typer vendors it and as installed (either may be)."""
    classes = []
    try:
        from typer._click import exceptions as e
        classes.append(e)
    except ImportError:
        pass
    try:
        import click.exceptions as e2
        classes.append(e2)
    except ImportError:
        pass
    return tuple(classes)


def _nom(exc, noms: str) -> bool:
    """True when ``exc`` is an instance of one of these click classes (any click copy)."""
    return any(isinstance(exc, getattr(m, n)) for m in _classes_click()
               for n in noms.split() if hasattr(m, n))


_TRADUCTIONS = [
    (r"Input should be a valid integer.*", "un nombre entier est attendu"),
    (r"Input should be a valid number.*", "un nombre est attendu"),
    (r"'?(.*?)'? is not a valid integer.*", r"« \1 » n'est pas un nombre entier"),
    (r"'?(.*?)'? is not a valid float.*", r"« \1 » n'est pas un nombre"),
    (r"Input should be greater than or equal to (.+)", r"la valeur doit être au moins \1"),
    (r"Input should be less than or equal to (.+)", r"la valeur doit être au plus \1"),
    (r"Input should be greater than (.+)", r"la valeur doit être supérieure à \1"),
    (r"Input should be less than (.+)", r"la valeur doit être inférieure à \1"),
    (r"(.+) is not in the range (.+)", r"\1 n'est pas dans l'intervalle \2"),
    (r"Input should be (.+)", r"valeurs possibles : \1"),
    (r"'?(.*?)'? is not one of (.+)", r"« \1 » n'est pas l'une des valeurs possibles : \2"),
    (r"File '(.*)' does not exist.*", r"le fichier « \1 » n'existe pas"),
    (r"Path '(.*)' does not exist.*", r"le chemin « \1 » n'existe pas"),
    (r"(Directory|File) '(.*)' is a (file|directory).*", r"« \2 » n'est pas du bon type"),
]


def _traduire(message: str) -> str:
    message = re.sub(r"^Value error, ", "", message.strip().rstrip("."))
    for motif, remplacement in _TRADUCTIONS:
        if re.fullmatch(motif, message, flags=re.S):
            texte = re.sub(motif, remplacement, message, flags=re.S)
            if texte.startswith("valeurs possibles"):
                texte = texte.replace(" or ", " ou ").replace("'", "")
            return texte
    return message


def _indice(exc) -> str:
    hint = getattr(exc, "param_hint", None)
    if hint is None and getattr(exc, "param", None) is not None:
        try:
            hint = exc.param.get_error_hint()
        except Exception:
            hint = getattr(exc.param, "name", None)
    if hint is not None and not isinstance(hint, str):
        hint = " / ".join(hint)
    return (hint or "").replace("'", "")


def message_usage(exc) -> str:
    """One French line for a click usage error."""
    if _nom(exc, "NoSuchOption"):
        texte = f"option inconnue : {exc.option_name}"
        if getattr(exc, "possibilities", None):
            texte += f" (vouliez-vous dire {', '.join(sorted(exc.possibilities))} ?)"
    elif _nom(exc, "MissingParameter"):
        texte = f"{_indice(exc) or 'un paramètre'} est obligatoire"
    elif _nom(exc, "BadParameter"):
        indice = _indice(exc)
        texte = (f"valeur invalide pour {indice} : " if indice else "valeur invalide : ") \
            + _traduire(exc.message)
    elif _nom(exc, "BadOptionUsage"):
        m = re.fullmatch(r"Option '?(.*?)'? requires an argument\.?", exc.message)
        texte = f"l'option {m.group(1)} demande une valeur" if m else _traduire(exc.message)
    else:
        m = re.fullmatch(r"No such command '?(.*?)'?\.?", exc.message)
        n = re.fullmatch(r"Got unexpected extra arguments?(?:\(s\))? \((.*)\)\.?",
                         exc.message)
        texte = (f"commande inconnue : {m.group(1)}" if m else
                 f"argument en trop : {n.group(1)}" if n else _traduire(exc.message))
    ctx = getattr(exc, "ctx", None)
    aide = f" (aide : {ctx.command_path} --help)" if ctx is not None else \
        " (aide : essqpv --help)"
    return f"Erreur d'utilisation : {texte}{aide}."


def _journal(exc: BaseException) -> Path | None:
    """Write the full trace of a crash to a log file; return its path."""
    dossiers = [Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
                / "essqpv", Path(tempfile.gettempdir())]
    nom = f"essqpv-erreur-{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
    for dossier in dossiers:
        try:
            dossier.mkdir(parents=True, exist_ok=True)
            chemin = dossier / nom
            with open(chemin, "w", encoding="utf-8") as f:
                f.write(f"essqpv {' '.join(sys.argv[1:])}\n\n")
                f.write("".join(traceback.format_exception(exc)))
            return chemin
        except OSError:
            continue
    return None


class _Termine(BaseException):
    """SIGTERM received: unwinds like Ctrl+C, so that temporary files and locks go."""


def _sur_sigterm(signum, frame) -> None:
    raise _Termine()


def executer(app: typer.Typer, args: list[str] | None = None) -> int:
    """:func:`_executer` with SIGTERM turned into a clean stop (exit 143)."""
    try:
        precedent = signal.signal(signal.SIGTERM, _sur_sigterm)
    except ValueError:  # not the main thread
        precedent = None
    try:
        return _executer(app, args)
    except _Termine:
        console.print("Arrêté (SIGTERM) : fichiers temporaires supprimés, rien n'a été "
                      "remplacé à moitié.")
        return 143
    finally:
        if precedent is not None:
            signal.signal(signal.SIGTERM, precedent)


def _executer(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run the typer app; every failure is one French line on standard error.

    Exit codes: 0 success; 1 an error while running (:class:`EssqpvError`, a file that cannot
    be read or written, a crash — whose full trace is written to a log file); 2 a usage
    error (unknown option, value not allowed, base that is not one); 130 interrupted.
    ``--debug`` shows the traceback instead.
    """
    argv = sys.argv[1:] if args is None else args
    debug = "--debug" in argv
    try:
        code = app(args=argv, standalone_mode=False)
        return code if isinstance(code, int) else 0
    except EssqpvError as exc:
        if debug:
            raise
        from rich.markup import escape
        console.print(f"[bold red]Erreur :[/] {escape(str(exc))}", highlight=False,
                      soft_wrap=True)
        return CODE_USAGE if isinstance(exc, _ERREURS_D_USAGE) else CODE_ERREUR
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        return code if isinstance(code, int) else 0
    except (typer.Abort, KeyboardInterrupt):
        console.print("Interrompu.")
        return 130
    except BrokenPipeError:  # ``essqpv … | head``: the reader left
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 141
    except Exception as exc:
        if _nom(exc, "Exit"):
            return exc.exit_code
        if _nom(exc, "Abort"):
            console.print("Interrompu.")
            return 130
        if _nom(exc, "NoArgsIsHelpError"):  # (typer printed the help already)
            return CODE_USAGE
        if _nom(exc, "UsageError"):
            if debug:
                raise
            console.print(message_usage(exc), highlight=False, soft_wrap=True, markup=False)
            return CODE_USAGE
        if _nom(exc, "ClickException"):
            console.print(f"Erreur : {_traduire(exc.format_message())}.", highlight=False,
                          soft_wrap=True, markup=False)
            return getattr(exc, "exit_code", CODE_ERREUR)
        if debug:
            raise
        if isinstance(exc, OSError) and (exc.filename or exc.errno in _CAUSES_OS):
            cause = cause_os(exc)
            console.print(f"Erreur : {exc.filename + ' : ' if exc.filename else ''}{cause}.",
                          highlight=False, soft_wrap=True, markup=False)
            return CODE_ERREUR
        journal = _journal(exc)
        premiere = (str(exc).strip().splitlines() or [""])[0][:300]
        console.print(
            f"Erreur interne : {type(exc).__name__}" + (f" : {premiere}" if premiere else "")
            + (f" — trace complète dans {journal}" if journal else "")
            + " (relancez avec --debug pour l'afficher).", highlight=False, soft_wrap=True,
            markup=False)
        return CODE_ERREUR


def json_texte(obj: Any) -> str:
    """JSON as the project writes it: UTF-8 text, two-space indent, keys in order."""
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str)
