"""A real HTTP server for browser tests: the application under uvicorn in a thread."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager


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
