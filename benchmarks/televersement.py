"""Memory of the server answering POST /api/localiser with hostile and legitimate XLSX.

Usage::

    .venv/bin/python benchmarks/televersement.py [--base B.duckdb] [--json sortie.json]

Without ``--base``, a base is built in a temporary folder from a small synthetic register.
The server is ``essqpv servir`` in its own process; its peak resident memory (``VmHWM`` of
``/proc/<pid>/status``) is read before and after each request. Cases:

* ``bombe_400Mo``: a real XLSX (xlsxwriter's) whose sheet holds one inline-string cell of
  400 MB, deflated to ~ 400 KB (the hostile file of the reliability issue);
* ``cellule_512Kio``: one 512 KiB cell (passes the declared-size checks, refused while read);
* ``points_N``: N rows ``nom, lon, lat`` (accepted; the largest is 100,000 rows, the limit).
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ESSQPV = Path(sys.executable).with_name("essqpv")


def classeur(chemin: Path, lignes: list[list]) -> Path:
    import xlsxwriter
    with xlsxwriter.Workbook(str(chemin), {"constant_memory": True}) as c:
        f = c.add_worksheet("points")
        for i, ligne in enumerate(lignes):
            f.write_row(i, 0, ligne)
    return chemin


def bombe(dossier: Path, taille: int) -> Path:
    modele = classeur(dossier / "modele.xlsx", [["nom", "lon", "lat"], ["ok", 2.35, 48.85]])
    sortie = dossier / f"bombe-{taille}.xlsx"
    with zipfile.ZipFile(modele) as src, zipfile.ZipFile(
            sortie, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for m in src.infolist():
            if m.filename != "xl/worksheets/sheet1.xml":
                dst.writestr(m, src.read(m))
                continue
            debut, fin = src.read(m).decode().split("</sheetData>")
            with dst.open(m.filename, "w", force_zip64=True) as f:
                f.write(debut.encode() + b'<row r="3"><c r="A3" t="inlineStr"><is><t>')
                bloc = b"A" * min(taille, 1 << 20)
                for _ in range(taille // len(bloc)):
                    f.write(bloc)
                f.write(b"</t></is></c></row></sheetData>" + fin.encode())
    return sortie


def pic_mo(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmHWM")) / 1024


def main() -> None:
    import httpx
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base")
    parser.add_argument("--json")
    args = parser.parse_args()
    dossier = Path(tempfile.mkdtemp(prefix="essqpv-televersement-"))
    base = args.base
    if base is None:
        from essqpv.base import construire
        from essqpv.synthese import generer
        r = generer(dossier / "reg", etablissements=3000, graine=7)
        f = r["fichiers"]
        base = str(dossier / "obs.duckdb")
        construire(etablissements=f["etablissements"], unites_legales=f["unites_legales"],
                   geolocalisation=f["geolocalisation"], millesime="2024-01", base=base)
    cas = {"bombe_400Mo": bombe(dossier, 400 << 20),
           "cellule_512Kio": bombe(dossier, 512 << 10)}
    for n in (10_000, 100_000):
        cas[f"points_{n}"] = classeur(dossier / f"points-{n}.xlsx", [["nom", "lon", "lat"]] + [
            [f"point {i}", 2.30 + (i % 500) / 5000, 48.80 + (i // 500) / 5000]
            for i in range(n)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serveur = subprocess.Popen([str(ESSQPV), "servir", "--base", base, "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/api/localiser?lon=2.35&lat=48.85", timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        resultats = {"pic_initial_mo": round(pic_mo(serveur.pid), 1), "cas": {}}
        for nom, chemin in cas.items():
            avant = pic_mo(serveur.pid)
            debut = time.perf_counter()
            r = httpx.post(url + "/api/localiser",
                           files={"fichier": (chemin.name, chemin.read_bytes())}, timeout=600)
            duree = time.perf_counter() - debut
            resultats["cas"][nom] = {
                "taille_ko": round(chemin.stat().st_size / 1024, 1), "statut": r.status_code,
                "duree_s": round(duree, 2), "pic_avant_mo": round(avant, 1),
                "pic_apres_mo": round(pic_mo(serveur.pid), 1),
                "message": r.json().get("erreur") if r.status_code != 200 else None}
            print(nom, json.dumps(resultats["cas"][nom], ensure_ascii=False), flush=True)
    finally:
        serveur.terminate()
        serveur.wait(10)
    if args.json:
        Path(args.json).write_text(json.dumps(resultats, ensure_ascii=False, indent=2) + "\n",
                                   "utf-8")


if __name__ == "__main__":
    main()
