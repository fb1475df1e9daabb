"""The downloader against a real HTTP server on 127.0.0.1 (threaded, with Range support)."""
from __future__ import annotations

import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from essqpv.errors import FichierInvalide, ParametreInvalide, ReseauIndisponible
from essqpv.sources.telechargement import (
    SOURCES,
    sources_officielles,
    telecharger,
    telecharger_fichier,
)

FIXTURE = Path(__file__).parent / "data" / "telechargement" / "StockUniteLegale_utf8.zip"


class _Gestionnaire(BaseHTTPRequestHandler):
    """Serves ``server.fichiers``; drops the connection after ``server.coupures[path]`` bytes
    the first time a path is asked; records every request's Range header."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        serveur = self.server
        donnees = serveur.fichiers.get(self.path)
        plage = self.headers.get("Range")
        serveur.requetes.append((self.path, plage))
        if donnees is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        debut = 0
        if plage:
            debut = int(re.match(r"bytes=(\d+)-", plage).group(1))
            if debut >= len(donnees):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(donnees)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range",
                             f"bytes {debut}-{len(donnees) - 1}/{len(donnees)}")
        else:
            self.send_response(200)
        corps = donnees[debut:]
        self.send_header("Content-Length", str(len(corps)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        coupure = serveur.coupures.pop(self.path, None)
        if coupure is not None:
            self.wfile.write(corps[:coupure])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(corps)


@pytest.fixture()
def serveur():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Gestionnaire)
    srv.daemon_threads = True
    srv.fichiers, srv.coupures, srv.requetes = {}, {}, []
    fil = threading.Thread(target=srv.serve_forever, daemon=True)
    fil.start()
    srv.adresse = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def donnees():
    return FIXTURE.read_bytes()


def test_telechargement_complet(serveur, donnees, tmp_path):
    serveur.fichiers["/stock.zip"] = donnees
    sha = hashlib.sha256(donnees).hexdigest()
    vus = []
    res = telecharger_fichier(f"{serveur.adresse}/stock.zip", tmp_path / "StockUniteLegale.zip",
                              sha256=sha, progression=lambda f, n, t: vus.append((n, t)))
    assert res.statut == "telecharge" and res.empreinte_verifiee
    assert (tmp_path / "StockUniteLegale.zip").read_bytes() == donnees
    assert not (tmp_path / "StockUniteLegale.zip.partiel").exists()
    assert vus[-1] == (len(donnees), len(donnees))
    # A second run finds the file and does not ask the server again.
    n = len(serveur.requetes)
    res = telecharger_fichier(f"{serveur.adresse}/stock.zip", tmp_path / "StockUniteLegale.zip",
                              sha256=sha)
    assert res.statut == "deja_present" and len(serveur.requetes) == n


def test_telechargement_interrompu_puis_repris(serveur, donnees, tmp_path):
    serveur.fichiers["/stock.zip"] = donnees
    serveur.coupures["/stock.zip"] = 30_000
    res = telecharger_fichier(f"{serveur.adresse}/stock.zip", tmp_path / "s.zip",
                              sha256=hashlib.sha256(donnees).hexdigest())
    assert res.statut == "repris"
    assert (tmp_path / "s.zip").read_bytes() == donnees
    assert serveur.requetes == [("/stock.zip", None), ("/stock.zip", "bytes=30000-")]


def test_partiel_laisse_par_une_execution_precedente(serveur, donnees, tmp_path):
    serveur.fichiers["/stock.zip"] = donnees
    (tmp_path / "s.zip.partiel").write_bytes(donnees[:12345])
    res = telecharger_fichier(f"{serveur.adresse}/stock.zip", tmp_path / "s.zip")
    assert res.statut == "repris" and not res.empreinte_verifiee
    assert (tmp_path / "s.zip").read_bytes() == donnees
    assert serveur.requetes == [("/stock.zip", "bytes=12345-")]


def test_fichier_corrompu_rejete(serveur, donnees, tmp_path):
    abime = bytearray(donnees)
    abime[5000] ^= 0xFF
    serveur.fichiers["/stock.zip"] = bytes(abime)
    with pytest.raises(FichierInvalide, match="Fichier corrompu : s.zip .*supprimé"):
        telecharger_fichier(f"{serveur.adresse}/stock.zip", tmp_path / "s.zip",
                            sha256=hashlib.sha256(donnees).hexdigest())
    assert not (tmp_path / "s.zip").exists()
    assert not (tmp_path / "s.zip.partiel").exists()


def test_taille_attendue_differente(serveur, donnees, tmp_path):
    serveur.fichiers["/stock.zip"] = donnees
    with pytest.raises(FichierInvalide, match="incomplet"):
        telecharger_fichier(f"{serveur.adresse}/stock.zip", tmp_path / "s.zip",
                            taille_attendue=len(donnees) + 1)
    assert not (tmp_path / "s.zip.partiel").exists()


def test_serveur_injoignable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ReseauIndisponible, match="injoignable.*connexion impossible"):
        telecharger_fichier(f"http://127.0.0.1:{port}/stock.zip", tmp_path / "s.zip")
    assert not (tmp_path / "s.zip").exists()


def test_adresse_introuvable(serveur, tmp_path):
    with pytest.raises(FichierInvalide, match="HTTP 404"):
        telecharger_fichier(f"{serveur.adresse}/absent.zip", tmp_path / "s.zip")


def test_telecharger_sources_avec_urls_remplacees(serveur, donnees, tmp_path):
    serveur.fichiers["/ul.zip"] = donnees
    serveur.fichiers["/qp.zip"] = donnees[:5000]
    res = telecharger(tmp_path, sources=("qpv2015",),
                      urls={"qpv2015": f"{serveur.adresse}/qp.zip"})
    assert [r.fichier for r in res] == ["qp-politiquedelaville-shp.zip"]
    assert (tmp_path / "qp-politiquedelaville-shp.zip").read_bytes() == donnees[:5000]
    assert res[0].page_documentation.startswith("https://www.data.gouv.fr/")
    with pytest.raises(ParametreInvalide, match="plusieurs fichiers"):
        telecharger(tmp_path, sources=("sirene",), urls={"sirene": f"{serveur.adresse}/x"})
    with pytest.raises(ParametreInvalide, match="Source inconnue"):
        telecharger(tmp_path, sources=("insee",))


def test_table_des_sources_officielles():
    t = sources_officielles()
    assert t.columns == ["nom", "fichier", "url", "page_documentation", "taille_attendue",
                         "sha256", "verifie_le", "remarque"]
    assert set(t["nom"]) == set(SOURCES)
    assert t["fichier"].is_unique().all()
    assert {"StockEtablissement_utf8.zip", "StockUniteLegale_utf8.zip"} <= set(t["fichier"])
    assert t["url"].str.starts_with("https://").all()
    assert t["verifie_le"].str.contains(r"^\d{4}-\d{2}-\d{2}$").all()
    assert t["remarque"].str.contains("non vérifi").any()


def test_commande_telecharger(serveur, donnees, tmp_path):
    import json

    from typer.testing import CliRunner

    from essqpv.cli import app
    serveur.fichiers["/ul.zip"] = donnees
    res = CliRunner().invoke(app, [
        "telecharger", "--dossier", str(tmp_path), "--sources", "sirene", "--format", "json",
        "--url", f"StockUniteLegale_utf8.zip={serveur.adresse}/ul.zip",
        "--url", f"StockEtablissement_utf8.zip={serveur.adresse}/ul.zip"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert sorted(x["fichier"] for x in r) == ["StockEtablissement_utf8.zip",
                                               "StockUniteLegale_utf8.zip"]
    assert (tmp_path / "StockUniteLegale_utf8.zip").read_bytes() == donnees
