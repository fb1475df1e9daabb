"""Load test of the web API on loopback: N concurrent clients for D seconds.

Usage::

    .venv/bin/python benchmarks/charge_web.py --base demo/observatoire.duckdb \
        [--clients 50] [--duree 20]

Without ``--base``, a demo base is built in a temporary folder (synthetic register,
profile ``test``). The server is uvicorn in its own process (one worker, as
``essqpv servir``); the clients are asyncio tasks on keep-alive HTTP/1.1 connections (a
minimal client, so that the client's own cost does not hide the server's), each
asking ``/api/indicateurs/<territoire>`` in a loop over France, the régions and the
départements (strict and buffer perimeters), without think time. Prints the latency
percentiles and the throughput, and writes them as JSON with ``--json``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _port_libre() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _servir(base: str, port: int) -> None:
    import uvicorn

    from essqpv.web import creer_application
    uvicorn.run(creer_application(base), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)


def _base_demo(dossier: Path) -> Path:
    from essqpv.base import construire
    from essqpv.synthese import generer
    registre = dossier / "registre"
    generer(registre, profil="test", graine=2024, millesime="2024-01")
    f = {p.name: p for p in registre.iterdir()}
    base = dossier / "demo.duckdb"
    construire(etablissements=f["StockEtablissement_utf8.zip"],
               unites_legales=f["StockUniteLegale_utf8.csv"],
               geolocalisation=f["GeolocalisationEtablissement_Sirene_pour_etudes_statistiques"
                                 "_utf8.csv"],
               emplois=f["emplois.csv"], millesime="2024-01", base=base)
    return base


async def _client(port: int, chemins: list[str], fin: float, latences: list[float],
                  erreurs: list[int], decalage: int) -> None:
    """One keep-alive HTTP/1.1 connection (a minimal client: the measure is the server's)."""
    lecteur, ecrivain = await asyncio.open_connection("127.0.0.1", port)
    i = decalage
    try:
        while time.perf_counter() < fin:
            chemin = chemins[i % len(chemins)]
            i += 1
            debut = time.perf_counter()
            ecrivain.write(f"GET {chemin} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Accept-Encoding: gzip\r\n\r\n".encode())
            await ecrivain.drain()
            entete = await lecteur.readuntil(b"\r\n\r\n")
            lignes = entete.split(b"\r\n")
            statut = int(lignes[0].split()[1])
            longueur = next(int(x.split(b":", 1)[1]) for x in lignes
                            if x.lower().startswith(b"content-length:"))
            await lecteur.readexactly(longueur)
            latences.append(time.perf_counter() - debut)
            if statut != 200:
                erreurs.append(statut)
    finally:
        ecrivain.close()


async def _charge(port: int, chemins: list[str], clients: int, duree: float) -> dict:
    latences: list[float] = []
    erreurs: list[int] = []
    fin = time.perf_counter() + duree
    debut = time.perf_counter()
    await asyncio.gather(*(_client(port, chemins, fin, latences, erreurs, k * 7)
                           for k in range(clients)))
    ecoule = time.perf_counter() - debut
    latences.sort()

    def centile(p: float) -> float:
        return 1000 * latences[min(len(latences) - 1, int(p / 100 * len(latences)))]

    return {"clients": clients, "duree_s": round(ecoule, 1), "requetes": len(latences),
            "erreurs": len(erreurs), "debit_req_s": round(len(latences) / ecoule),
            "p50_ms": round(centile(50), 1), "p95_ms": round(centile(95), 1),
            "p99_ms": round(centile(99), 1), "max_ms": round(1000 * latences[-1], 1),
            "moyenne_ms": round(1000 * statistics.fmean(latences), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duree", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not 1 <= args.clients <= 500 or not 1 <= args.duree <= 300:
        parser.error("--clients entre 1 et 500, --duree entre 1 et 300 s")
    with tempfile.TemporaryDirectory() as tmp:
        base = args.base or _base_demo(Path(tmp))
        from essqpv.base import millesimes
        from essqpv.territoires import territoires_niveau
        tampon = f"{millesimes(base)[0]['tampon_m']}m"
        codes = ["FR", "METRO", "DROM"] + sorted(
            t.code for n in ("region", "departement") for t in territoires_niveau(n))
        chemins = [f"/api/indicateurs/{c}" + ("" if p == "strict" else f"?perimetre={p}")
                   for c in codes for p in ("strict", tampon)]
        port = _port_libre()
        serveur = multiprocessing.get_context("spawn").Process(
            target=_servir, args=(str(base), port), daemon=True)
        serveur.start()
        url = f"http://127.0.0.1:{port}"
        import httpx
        for _ in range(300):
            try:
                httpx.get(f"{url}/api/contexte", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        # warm-up: every answer computed once (then served from the application's cache)
        debut = time.perf_counter()
        with httpx.Client(base_url=url, timeout=60.0) as client:
            for c in chemins:
                assert client.get(c).status_code == 200, c
        froid = time.perf_counter() - debut
        resultat = asyncio.run(_charge(port, chemins, args.clients, args.duree))
        serveur.terminate()
        serveur.join(5)
    resultat.update(territoires=len(codes), chemins=len(chemins),
                    prechauffage_s=round(froid, 1), coeurs=os.cpu_count(),
                    python=sys.version.split()[0])
    print(json.dumps(resultat, ensure_ascii=False, indent=2))
    if args.json:
        args.json.write_text(json.dumps(resultat, ensure_ascii=False, indent=2), "utf-8")
    return 0 if resultat["erreurs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
