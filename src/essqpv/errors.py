"""The project's errors: one base class, a few subclasses, each message in French.

The CLI turns any :class:`EssqpvError` into one line on standard error and exit code 1
(2 for a value the user gave that is not allowed: :class:`ParametreInvalide`,
:class:`BaseInvalide`); ``--debug`` shows the traceback.
"""
from __future__ import annotations

import errno as _errno


class EssqpvError(Exception):
    """Base error of essqpv: its message is one complete French sentence for the user."""


class FichierIntrouvable(EssqpvError):
    """An input file does not exist: ``Fichier introuvable : stock.csv``."""


class FichierInvalide(EssqpvError):
    """An input file cannot be read as what it claims to be (bad zip, wrong file, no CRS)."""


class ColonneManquante(FichierInvalide):
    """A required column is missing: names the file and the column."""


class TerritoireInconnu(EssqpvError):
    """A territory code or name is unknown; the message lists the closest suggestions."""


class ParametreInvalide(EssqpvError):
    """A parameter value is not allowed (perimeter, vintage, format...)."""


class BaseInvalide(EssqpvError):
    """The base file is missing, unreadable, or has no such vintage."""


class ReseauIndisponible(EssqpvError):
    """A download failed because the network or the server cannot be reached."""


class GeocodeurIndisponible(EssqpvError):
    """No address geocoder is installed, or its Redis server cannot be started."""

    statut_http = 503  # the API: the service is not available (not the request's fault)


class ConstructionRefusee(EssqpvError):
    """A build was refused before replacing a vintage: the new one looks implausible
    (empty stock, too many rejects, too few establishments placed...). ``--forcer``
    overrides it."""


class BaseOccupee(EssqpvError):
    """Another process is building the same base (its lock is held)."""


class SortieRefusee(EssqpvError):
    """An output folder holds files this tool did not write: nothing is replaced."""


class ContenuTropVolumineux(FichierInvalide):
    """A file sent to the API decompresses (or would) to more than the limits allow."""

    statut_http = 413


_CAUSES_OS = {_errno.EACCES: "permission refusée", _errno.EPERM: "opération non permise",
              _errno.ENOENT: "fichier ou dossier introuvable", _errno.ENOSPC: "disque plein",
              _errno.EROFS: "système de fichiers en lecture seule",
              _errno.EISDIR: "c'est un dossier", _errno.ENOTDIR: "ce n'est pas un dossier",
              _errno.EEXIST: "existe déjà", _errno.ENOTEMPTY: "dossier non vide",
              _errno.EMFILE: "trop de fichiers ouverts",
              _errno.EXDEV: "autre système de fichiers"}


def cause_os(exc: BaseException) -> str:
    """The cause of an operating-system error, in French (``disque plein``...)."""
    if isinstance(exc, OSError) and exc.errno in _CAUSES_OS:
        return _CAUSES_OS[exc.errno]
    if "no space left on device" in str(exc).lower():
        return _CAUSES_OS[_errno.ENOSPC]
    return getattr(exc, "strerror", None) or type(exc).__name__
