"""Benchmark of the synthetic register generator (essqpv.synthese.generer).

Usage::

    .venv/bin/python benchmarks/generateur.py                 # demo profile, then 1 M rows
    .venv/bin/python benchmarks/generateur.py 5000000         # any sizes, in rows

Prints, per size: rows per file, wall time, CPU time of this process, peak RSS and bytes
written. Files go to a temporary folder removed at the end.
"""
from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from essqpv.synthese import generer


def mesurer(taille: int | None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t0, c0 = time.perf_counter(), time.process_time()
        r = generer(d, etablissements=taille) if taille else generer(d, profil="demo")
        mur, cpu = time.perf_counter() - t0, time.process_time() - c0
        octets = sum(p.stat().st_size for p in Path(d).iterdir())
    pic = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    return {"taille": taille or "demo", "lignes": r["lignes"], "mur_s": round(mur, 1),
            "cpu_s": round(cpu, 1), "pic_rss_gio": round(pic, 2),
            "octets_mio": round(octets / 2**20)}


if __name__ == "__main__":
    tailles = [int(a) for a in sys.argv[1:]] or [None, 1_000_000]
    for t in tailles:
        print(mesurer(t), flush=True)
