"""Load test of the web API on loopback: stored answers of the plan, mixed random territories.

Usage::

    nice .venv/bin/python benchmarks/charge_web.py --base demo/observatoire.duckdb \
        [--clients 50] [--requetes 400] [--processus 2] [--json resultat.json]

The server is the real command, ``essqpv servir --processus N`` (uvicorn workers, httptools
and uvloop when installed), in its own process group, listening on 127.0.0.1 only. Every
worker holds the stored answers of the publication plan in memory (bytes and their gzipped
copies, loaded at start-up): an answer is a dictionary lookup and the stored bytes.

The client runs on the same machine: ``--clients`` asyncio connections (keep-alive
HTTP/1.1, ``Accept-Encoding: gzip``, a minimal client so that the client's own cost does not
hide the server's), spread over ``--processus-clients`` processes. Each connection sends a
bounded number of requests (``--requetes``, no think time), each drawn at random (fixed
seed) among every territory of the plan (``/api/territoires/publies``) and both perimeters:
70 % ``/api/indicateurs/<code>``, 15 % ``/api/qpv/<code>`` (a QPV), 15 % ``/api/quartiers``
(QPV listing of a territory other than France). Every answer's status and length are checked.

Prints the throughput, the latency percentiles, and the resident memory of the server
(every process of its group) before and after the load; ``--json`` writes them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _port_libre() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memoire_groupe(pgid: int) -> tuple[int, float]:
    """(processes, resident MiB) of every process of the server's process group."""
    n, kib = 0, 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                champs = f.read().rsplit(")", 1)[1].split()
            if int(champs[2]) != pgid:  # field 5: process group
                continue
            with open(f"/proc/{pid}/status") as f:
                for ligne in f:
                    if ligne.startswith("VmRSS:"):
                        kib += int(ligne.split()[1])
                        n += 1
        except (OSError, ValueError, IndexError):
            continue
    return n, round(kib / 1024, 1)


def _chemins(territoires: list[dict], perimetres: list[str], n: int, graine: int) -> list[str]:
    """``n`` request paths drawn at random among the plan's territories."""
    hasard = random.Random(graine)
    qpv = [t["code"] for t in territoires if t["niveau"] == "qpv"]
    autres = [t["code"] for t in territoires if t["niveau"] != "france"]
    tous = [t["code"] for t in territoires]
    sortie = []
    for _ in range(n):
        p = hasard.choice(perimetres)
        suffixe = "" if p == "strict" else f"perimetre={p}"
        tirage = hasard.random()
        if tirage < 0.70:
            chemin = f"/api/indicateurs/{hasard.choice(tous)}" + (f"?{suffixe}" if suffixe else "")
        elif tirage < 0.85 and qpv:
            chemin = f"/api/qpv/{hasard.choice(qpv)[4:]}" + (f"?{suffixe}" if suffixe else "")
        else:
            chemin = f"/api/quartiers?territoire={hasard.choice(autres)}" + (
                f"&{suffixe}" if suffixe else "")
        sortie.append(chemin)
    return sortie


async def _client(port: int, chemins: list[str], latences: list[float], erreurs: list,
                  octets: list[int], limite: float) -> None:
    """One keep-alive HTTP/1.1 connection sending its bounded list of requests."""
    lecteur, ecrivain = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chemin in chemins:
            if time.perf_counter() > limite:
                erreurs.append("délai dépassé")
                break
            debut = time.perf_counter()
            ecrivain.write(f"GET {chemin} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Accept-Encoding: gzip\r\n\r\n".encode())
            await ecrivain.drain()
            entete = await lecteur.readuntil(b"\r\n\r\n")
            lignes = entete.split(b"\r\n")
            statut = int(lignes[0].split()[1])
            longueur = next(int(x.split(b":", 1)[1]) for x in lignes
                            if x.lower().startswith(b"content-length:"))
            corps = await lecteur.readexactly(longueur)
            latences.append(time.perf_counter() - debut)
            octets.append(len(corps))
            if statut != 200:
                erreurs.append(f"{statut} {chemin}")
    finally:
        ecrivain.close()


def _processus_client(port: int, lots: list[list[str]], depart: float, limite: float,
                      file) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    latences: list[float] = []
    erreurs: list = []
    octets: list[int] = []

    async def tout() -> None:
        while time.time() < depart:  # every client process starts at the same instant
            await asyncio.sleep(0.001)
        await asyncio.gather(*(_client(port, lot, latences, erreurs, octets,
                                       time.perf_counter() + limite) for lot in lots))
    asyncio.run(tout())
    file.put({"latences": latences, "erreurs": erreurs, "octets": sum(octets),
              "fin": time.time()})


def _charge(port: int, lots: list[list[str]], processus: int, limite: float) -> dict:
    ctx = multiprocessing.get_context("fork")
    file = ctx.Queue()
    depart = time.time() + 1.0
    parts = [lots[k::processus] for k in range(processus)]
    fils = [ctx.Process(target=_processus_client, args=(port, p, depart, limite, file))
            for p in parts]
    for f in fils:
        f.start()
    resultats = [file.get() for _ in fils]
    for f in fils:
        f.join()
    latences = sorted(x for r in resultats for x in r["latences"])
    erreurs = [x for r in resultats for x in r["erreurs"]]
    ecoule = max(r["fin"] for r in resultats) - depart  # from the common start to the last

    def centile(p: float) -> float:
        return 1000 * latences[min(len(latences) - 1, int(p / 100 * len(latences)))]

    return {"requetes": len(latences), "erreurs": len(erreurs), "exemples_erreurs": erreurs[:5],
            "duree_s": round(ecoule, 2), "debit_req_s": round(len(latences) / ecoule),
            "mo_recus": round(sum(r["octets"] for r in resultats) / 1e6, 1),
            "p50_ms": round(centile(50), 1), "p95_ms": round(centile(95), 1),
            "p99_ms": round(centile(99), 1), "max_ms": round(1000 * latences[-1], 1),
            "moyenne_ms": round(1000 * statistics.fmean(latences), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True,
                        help="base construite (avec sa publication protégée)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requetes", type=int, default=400, help="requêtes par client")
    parser.add_argument("--processus", type=int, default=2, help="processus serveurs")
    parser.add_argument("--processus-clients", type=int, default=1)
    parser.add_argument("--graine", type=int, default=18)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not 1 <= args.clients <= 500 or not 1 <= args.requetes <= 100_000:
        parser.error("--clients entre 1 et 500, --requetes entre 1 et 100000")
    import httpx

    from essqpv.base import millesimes
    port = _port_libre()
    essqpv = Path(sys.executable).with_name("essqpv")
    serveur = subprocess.Popen([str(essqpv), "servir", "--base", str(args.base), "--port",
                                str(port), "--processus", str(args.processus)],
                               start_new_session=True, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        debut = time.perf_counter()
        for _ in range(1200):
            try:
                if httpx.get(f"{url}/api/contexte", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if serveur.poll() is not None:
                raise SystemExit("le serveur s'est arrêté au démarrage")
            time.sleep(0.1)
        demarrage = time.perf_counter() - debut
        time.sleep(1.0 + args.processus)  # every worker loaded (each answers /api/contexte)
        territoires = httpx.get(f"{url}/api/territoires/publies", timeout=30).json()
        tampon = f"{millesimes(args.base)[0]['tampon_m']}m"
        chemins = _chemins(territoires, ["strict", tampon], args.clients * args.requetes,
                           args.graine)
        lots = [chemins[k * args.requetes:(k + 1) * args.requetes]
                for k in range(args.clients)]
        avant = _memoire_groupe(serveur.pid)
        resultat = _charge(port, lots, args.processus_clients, limite=600.0)
        apres = _memoire_groupe(serveur.pid)
    finally:
        os.killpg(serveur.pid, signal.SIGTERM)
        try:
            serveur.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(serveur.pid, signal.SIGKILL)
    with open("/proc/loadavg") as f:
        charge = f.read().split()[:3]
    resultat = {"clients": args.clients, "requetes_par_client": args.requetes,
                "processus_serveur": args.processus,
                "processus_clients": args.processus_clients, **resultat,
                "territoires_du_plan": len(territoires), "demarrage_s": round(demarrage, 1),
                "memoire_serveur_avant_mo": avant[1], "memoire_serveur_apres_mo": apres[1],
                "processus_serveur_comptes": avant[0], "charge_machine_apres": charge,
                "coeurs": os.cpu_count(), "python": sys.version.split()[0],
                "base": args.base.name}
    print(json.dumps(resultat, ensure_ascii=False, indent=2))
    if args.json:
        args.json.write_text(json.dumps(resultat, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return 0 if resultat["erreurs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
