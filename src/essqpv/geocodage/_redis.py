"""essqpv's own Redis server: Debian's ``redis-server``, one data folder, loopback only.

The server listens on 127.0.0.1 on a free port and on a Unix socket of a private temporary
folder (mode 700; essqpv's clients use the socket, a quarter faster per round trip), protected
mode on, with no automatic
snapshot and no append-only file: the index is written once, on purpose, by
:meth:`ServeurRedis.sauver` at the end of an installation, and read back from that
``dump.rdb`` at every start. Stopping is a SIGTERM, which saves nothing in that configuration: a search never rewrites the
installed index, and several essqpv processes can each start their own server on the same
folder.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from essqpv.errors import GeocodeurIndisponible

__all__ = ["ServeurRedis", "executable_redis"]

FICHIER_INDEX = "dump.rdb"


def executable_redis() -> str:
    """Path of ``redis-server``, or a French error saying how to install it."""
    chemin = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)),
        None)
    if not chemin:
        raise GeocodeurIndisponible(
            "Serveur Redis introuvable (redis-server) : installez le paquet Debian "
            "redis-server (apt-get install redis-server) ; essqpv le démarre et l'arrête "
            "lui-même, sans configuration.")
    return chemin


def _mourir_avec_le_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the server gets SIGTERM if essqpv dies without stopping it."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _port_libre() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeurRedis:
    """A Redis server started for one data folder; a context manager.

    Parameters
    ----------
    dossier : path
        Its data folder (``dump.rdb`` is read from there when present; the log goes there).
    """

    def __init__(self, dossier: str | Path):
        self.dossier = Path(dossier)
        self.port: int | None = None
        self.socket: str | None = None
        self._temporaire: str | None = None
        self._processus: subprocess.Popen | None = None

    # -- life cycle -------------------------------------------------------------------------
    def demarrer(self, delai_s: float | None = None) -> "ServeurRedis":
        """Start the server and wait until its index is loaded."""
        self.dossier.mkdir(parents=True, exist_ok=True)
        exe = executable_redis()
        index = self.dossier / FICHIER_INDEX
        if delai_s is None:
            # loading a dump: generous, in proportion to its size
            taille = index.stat().st_size if index.exists() else 0
            delai_s = 30.0 + taille / 20e6
        derniere = ""
        self._temporaire = tempfile.mkdtemp(prefix="essqpv-redis-")
        self.socket = os.path.join(self._temporaire, "redis.sock")
        for _ in range(5):
            self.port = _port_libre()
            # the log goes to the private folder: a search writes nothing into the index
            journal = Path(self._temporaire) / "redis.log"
            commande = [exe, "--bind", "127.0.0.1", "--port", str(self.port),
                        "--protected-mode", "yes", "--dir", str(self.dossier.resolve()),
                        "--dbfilename", FICHIER_INDEX, "--save", "", "--appendonly", "no",
                        "--daemonize", "no", "--logfile", str(journal.resolve()),
                        "--databases", "2", "--stop-writes-on-bgsave-error", "no",
                        "--rdbcompression", "yes", "--loglevel", "warning",
                        "--unixsocket", self.socket, "--unixsocketperm", "700"]
            self._processus = subprocess.Popen(commande, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.PIPE,
                                               preexec_fn=_mourir_avec_le_parent)
            try:
                self._attendre(delai_s)
                return self
            except GeocodeurIndisponible as exc:
                derniere = str(exc)
                self._tuer()
                if "port" not in derniere.lower():
                    break
        self._nettoyer()
        raise GeocodeurIndisponible(derniere)

    def _attendre(self, delai_s: float) -> None:
        import redis
        debut = time.monotonic()
        fin = debut + delai_s
        client = redis.Redis(unix_socket_path=self.socket, socket_connect_timeout=1)
        try:
            while time.monotonic() < fin:
                if self._processus.poll() is not None:
                    erreur = (self._processus.stderr.read() or b"").decode("utf-8", "replace")
                    journal = Path(self._temporaire) / "redis.log"
                    if journal.exists():
                        erreur += journal.read_text("utf-8", "replace")[-2000:]
                    lignes = [ligne.split(" # ", 1)[-1].strip() for ligne in
                              erreur.splitlines() if ligne.strip()]
                    derniere = lignes[-1] if lignes else "sans message"
                    conseil = (" ; l'index semble endommagé : réinstallez-le (essqpv geocodeur "
                               "installer --departements … --remplacer)"
                               if "loading the DB" in erreur or "RDB" in erreur else "")
                    raise GeocodeurIndisponible(
                        "Le serveur Redis du géocodeur s'est arrêté au démarrage "
                        f"(dossier {self.dossier}) : « {derniere[-300:]} »" + conseil
                        + (" (port occupé)" if "Address already in use" in erreur else "")
                        + ".")
                try:
                    if client.ping():
                        return
                except redis.BusyLoadingError:
                    # alive and reading its index: a loaded machine may need longer than
                    # planned — wait on, within 10 minutes
                    fin = max(fin, min(time.monotonic() + 5, debut + 600))
                except (redis.ConnectionError, FileNotFoundError):
                    pass
                time.sleep(0.02)
        finally:
            client.close()
        raise GeocodeurIndisponible(
            f"Le serveur Redis du géocodeur n'a pas répondu en {delai_s:.0f} s "
            f"(dossier {self.dossier}).")

    def client(self, db: int = 0):
        import redis
        return redis.Redis(unix_socket_path=self.socket, db=db)

    def sauver(self) -> Path:
        """Write the index (``SAVE``, synchronous) and return the dump's path."""
        c = self.client()
        try:
            c.save()
        finally:
            c.close()
        return self.dossier / FICHIER_INDEX

    def memoire(self) -> int:
        """Memory used by the data (``used_memory``), in bytes."""
        c = self.client()
        try:
            return int(c.info("memory")["used_memory"])
        finally:
            c.close()

    def arreter(self) -> None:
        """Stop the server (SIGTERM: with no save point and no append-only file configured,
        Redis exits without writing anything) and wait for it (killed after 10 s)."""
        if self._processus is None:
            return
        if self._processus.poll() is None:
            self._processus.terminate()
            try:
                self._processus.wait(10)
            except subprocess.TimeoutExpired:
                self._tuer()
        self._fermer()
        self._nettoyer()

    def _tuer(self) -> None:
        if self._processus is not None and self._processus.poll() is None:
            self._processus.kill()
            self._processus.wait(10)
        self._fermer()

    def _fermer(self) -> None:
        if self._processus is not None and self._processus.stderr:
            self._processus.stderr.close()
        self._processus = None

    def _nettoyer(self) -> None:
        if self._temporaire:
            shutil.rmtree(self._temporaire, ignore_errors=True)  # our own folder
            self._temporaire = None

    def __enter__(self) -> "ServeurRedis":
        if self._processus is None:
            self.demarrer()
        return self

    def __exit__(self, *exc) -> None:
        self.arreter()
