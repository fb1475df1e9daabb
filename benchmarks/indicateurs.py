"""Indicators of any territory from a national base (issue 3: ≤ 200 ms each).

Run: ``.venv/bin/python benchmarks/indicateurs.py --base benchmarks/work/national-40000000.duckdb``
(a base built by ``benchmarks/national.py``).

Measures ``essqpv.indicators.indicateurs`` for France entière, a région, a département, an
EPCI, a commune and a QPV — the largest of each level in the base, the busiest case — in one
process: a first call (connection opened, caches cold), then the median and the maximum of
``--repetitions`` further calls. Prints a table; ``--json`` writes the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from essqpv.base import ouvrir
from essqpv.indicators import indicateurs


def territoires(base: Path) -> dict[str, str]:
    """The largest territory of each level in the base (by in-scope establishments)."""
    con = ouvrir(base)
    try:
        def plus_grand(col: str) -> str:
            return con.execute(f"SELECT {col} FROM etablissements WHERE {col} IS NOT NULL "
                               f"GROUP BY {col} ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
        return {"France": "FR", "région": f"REG:{plus_grand('region')}",
                "département": f"DEP:{plus_grand('departement')}",
                "EPCI": f"EPCI:{plus_grand('epci')}", "commune": f"COM:{plus_grand('commune')}",
                "QPV": f"QPV:{plus_grand('qpv')}"}
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--repetitions", type=int, default=15)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    t0 = time.perf_counter()
    choix = territoires(a.base)
    ouverture = time.perf_counter() - t0
    resultats = {}
    for niveau, code in choix.items():
        t = time.perf_counter()
        indicateurs(a.base, code)
        premier = time.perf_counter() - t
        temps = []
        for _ in range(a.repetitions):
            t = time.perf_counter()
            indicateurs(a.base, code)
            temps.append(time.perf_counter() - t)
        resultats[niveau] = {"territoire": code, "premier_ms": round(premier * 1000, 1),
                             "mediane_ms": round(statistics.median(temps) * 1000, 1),
                             "max_ms": round(max(temps) * 1000, 1)}
    charge = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"ouverture de la base + choix des territoires : {ouverture:.2f} s ; charge {charge}")
    print("| niveau | territoire | 1er appel | médiane | max |")
    print("|---|---|---|---|---|")
    for niveau, r in resultats.items():
        print(f"| {niveau} | {r['territoire']} | {r['premier_ms']} ms | {r['mediane_ms']} ms "
              f"| {r['max_ms']} ms |")
    if a.json:
        a.json.write_text(json.dumps({"territoires": resultats, "charge": charge,
                                      "pire_mediane_ms": max(r["mediane_ms"] for r in
                                                             resultats.values())},
                                     ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main()
