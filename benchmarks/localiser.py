"""Benchmark of essqpv.lookup: 100,000 points after loading, a 100,000-row CSV in and out.

Run: ``.venv/bin/python benchmarks/localiser.py [--lignes 100000]``

Points drawn as in ``benchmarks/placement.py`` (half around random QPV, half uniform over
metropolitan France, fixed seed). Targets (issue 7): 100,000 points ≤ 2 s after loading;
100,000-row CSV in and out ≤ 5 s; (issue 21) 100,000-row CSV in, XLSX out ≤ 1.5 s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from placement import points  # noqa: E402

from essqpv.lookup import index_qpv, localiser_fichier, localiser_points  # noqa: E402
from essqpv.sources.qpv import lire_qpv  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lignes", type=int, default=100_000)
    a = ap.parse_args()
    t = time.perf_counter()
    index_qpv(None)
    print(f"chargement des contours + index : {time.perf_counter() - t:.2f} s")
    lon, lat = points(a.lignes, lire_qpv(), graine=2)
    meilleur = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        r = localiser_points(lon, lat)
        meilleur = min(meilleur, time.perf_counter() - t)
    print(f"localiser_points, {a.lignes:,} points : {meilleur:.2f} s "
          f"({int(r['dans_qpv'].sum()):,} dans un QPV, "
          f"{r['qpv_code_300m'].is_not_null().sum():,} à moins de 300 m)")
    with tempfile.TemporaryDirectory() as d:
        entree = Path(d) / "entree.csv"
        pl.DataFrame({"id": range(a.lignes), "nom": [f"structure {i}" for i in range(a.lignes)],
                      "longitude": lon.round(6), "latitude": lat.round(6)}).write_csv(
            entree, separator=";")
        meilleur = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            resume = localiser_fichier(entree, Path(d) / "sortie.csv")
            meilleur = min(meilleur, time.perf_counter() - t)
        print(f"localiser_fichier CSV → CSV, {a.lignes:,} lignes : {meilleur:.2f} s "
              f"({resume['dans_qpv']:,} dans un QPV)")
        temps, cpu = [], []
        for _ in range(3):
            t, c = time.perf_counter(), time.process_time()
            localiser_fichier(entree, Path(d) / "sortie.xlsx")
            temps.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        print(f"localiser_fichier CSV → XLSX, {a.lignes:,} lignes : "
              f"{statistics.median(temps):.2f} s (médiane de 3 ; min {min(temps):.2f} s ; "
              f"CPU {statistics.median(cpu):.2f} s ; "
              f"{(Path(d) / 'sortie.xlsx').stat().st_size / 2**20:.1f} Mio ; charge "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
