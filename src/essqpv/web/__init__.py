"""The web layer: the dashboard with its JSON API, and its static publication.

Public verbs: :func:`creer_application` (FastAPI app over a base, read-only) and
:func:`publier` (the same dashboard as static files with pre-computed JSON).
Both read the base through the library's confidentiality-protected functions only.
"""
from __future__ import annotations

from essqpv.web.app import creer_application
from essqpv.web.publier import publier

__all__ = ["creer_application", "publier"]
