"""The dashboard's panel of the series since 2008, in a real Chromium."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from essqpv import historique as HI
from tests.test_historique_sorties import base_historique  # noqa: F401  (fixture)

if not Path("/usr/bin/chromium").exists():  # pragma: no cover - the CI installs it
    pytest.skip("Chromium absent (/usr/bin/chromium) : apt-get install -y chromium",
                allow_module_level=True)
pytest.importorskip("pytest_playwright")


def _port_libre() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium",
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run"]}


def test_panneau_du_tableau_de_bord(base_historique, page):
    import uvicorn

    from essqpv.web import creer_application
    port = _port_libre()
    serveur = uvicorn.Server(uvicorn.Config(creer_application(base_historique),
                                            host="127.0.0.1", port=port, log_level="warning"))
    fil = threading.Thread(target=serveur.run, daemon=True)
    fil.start()
    debut = time.monotonic()
    while not serveur.started:
        assert time.monotonic() - debut < 30
        time.sleep(0.05)
    s = HI.evolution(base_historique, "DEP:93", "2024")
    try:
        erreurs: list[str] = []
        page.on("pageerror", lambda e: erreurs.append(str(e)))
        page.on("console", lambda m: erreurs.append(m.text) if m.type == "error" else None)
        page.goto(f"http://127.0.0.1:{port}/?territoire=DEP:93")
        page.locator("#bloc-evolution").wait_for(state="visible", timeout=20000)
        lignes = page.locator("#table-evolution tbody tr")
        assert lignes.count() == len(s["points"])
        premiere = lignes.nth(0).locator("td").nth(0).inner_text()
        assert premiere.replace("\u202f", "").replace("\xa0", "") == \
            str(s["qpv"]["etablissements"][0])
        assert page.locator("#graphique-evolution svg polyline").count() >= 2
        assert "géographie des quartiers 2024" in \
            page.locator("#evolution-geographie").inner_text().lower()
        assert "historisés" in page.locator("#evolution-effectifs").inner_text()
        assert not erreurs, erreurs
    finally:
        serveur.should_exit = True
        fil.join(timeout=10)




def test_panneau_du_site_statique(base_historique, page, tmp_path):
    """The static site (essqpv publier) has the series panel too: its files are the published
    answers, read by the same page without a server of essqpv."""
    import functools
    import http.server
    import json

    from essqpv.web import publier
    sortie = tmp_path / "site"
    publier(base_historique, sortie, territoires=["DEP:93"], fichiers="aucun", rapports=False)
    s = HI.evolution(base_historique, "DEP:93")
    fichier = sortie / "donnees" / s["millesime"] / "strict" / "evolution" / "DEP_93.json"
    assert json.loads(fichier.read_text("utf-8")) == json.loads(json.dumps(s))
    assert 'data-evolution="oui"' in (sortie / "index.html").read_text("utf-8")

    class Silencieux(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    serveur = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Silencieux, directory=str(sortie)))
    fil = threading.Thread(target=serveur.serve_forever, daemon=True)
    fil.start()
    try:
        erreurs: list[str] = []
        page.on("pageerror", lambda e: erreurs.append(str(e)))
        page.goto(f"http://127.0.0.1:{serveur.server_address[1]}/?territoire=DEP:93")
        page.locator("#bloc-evolution").wait_for(state="visible", timeout=20000)
        assert page.locator("#table-evolution tbody tr").count() == len(s["points"])
        assert "historisés" in page.locator("#evolution-effectifs").inner_text()
        assert not erreurs, erreurs
    finally:
        serveur.shutdown()
        serveur.server_close()
