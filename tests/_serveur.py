"""Real HTTP servers for browser tests: the application under uvicorn in a thread, or a
published static site under http.server in a thread; and Debian's Chromium for Playwright."""
from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium (Playwright's own download does not work here): see tests/conftest.py
ARGUMENTS_CHROMIUM = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"]


def exiger_navigateur() -> None:
    """Skip (with the command to run) when Chromium or pytest-playwright is missing."""
    import pytest
    if not CHROMIUM.exists():  # pragma: no cover - the CI installs it (apt-get install chromium)
        pytest.skip("Chromium absent (/usr/bin/chromium) : apt-get install -y chromium",
                    allow_module_level=True)
    pytest.importorskip("pytest_playwright")


def port_libre() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def servir(application):
    """Serve an ASGI application on 127.0.0.1; yields its base URL."""
    import uvicorn
    port = port_libre()
    serveur = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port,
                                            log_level="warning"))
    fil = threading.Thread(target=serveur.run, daemon=True)
    fil.start()
    debut = time.monotonic()
    while not serveur.started:
        assert time.monotonic() - debut < 30, "le serveur ne démarre pas"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serveur.should_exit = True
        fil.join(timeout=10)


class _Silencieux(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@contextmanager
def servir_dossier(dossier: Path):
    """Serve a folder (a site written by ``essqpv publier``) on 127.0.0.1; yields its URL."""
    serveur = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Silencieux, directory=str(dossier)))
    fil = threading.Thread(target=serveur.serve_forever, daemon=True)
    fil.start()
    try:
        yield f"http://127.0.0.1:{serveur.server_address[1]}"
    finally:
        serveur.shutdown()
        serveur.server_close()
        fil.join(timeout=10)
