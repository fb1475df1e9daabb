"""Reading and classifying the establishments (issue 2: 5 M rows ≤ 5 s, ≤ 1 GiB peak RSS).

Run: ``.venv/bin/python benchmarks/lecture_classement.py --donnees DIR [--repetitions 3]``
(``DIR``: a register written by ``essqpv.synthese.generer``, e.g. ``benchmarks/national.py
--etablissements 5000000 --etapes generer``; the establishments CSV extracted from its ZIP).

Each run is a child process doing what ``essqpv construire`` does up to the ESS perimeter,
with the same library calls and an empty cache: check both stock files, read them (CSV →
Parquet, malformed lines rejected), classify (families, exclusions, sectors, employers) and
collect the in-scope establishments. Prints wall time, CPU time and peak RSS (medians) and
the machine's load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _interne(dossier: Path, travail: Path) -> None:
    from essqpv.base import (
        RENOMMAGE_ETABLISSEMENTS,
        RENOMMAGE_UNITES_LEGALES,
        _candidats_ess,
        _convertir_cache,
        _garder_etablissements,
        _perimetre_ess,
    )
    from essqpv.sources import sirene

    t0 = time.perf_counter()
    etab_src = sirene.preparer(dossier / "StockEtablissement_utf8.csv", "etablissements",
                               travail)
    ul_src = sirene.preparer(dossier / "StockUniteLegale_utf8.csv", "unites_legales", travail)
    garder, regles = _candidats_ess(ul_src)
    c_ul = _convertir_cache(ul_src, list(RENOMMAGE_UNITES_LEGALES), travail, garder,
                            ("siren",), regles)
    c_etab = _convertir_cache(etab_src, list(RENOMMAGE_ETABLISSEMENTS), travail,
                              *_garder_etablissements(c_ul))
    lecture = time.perf_counter() - t0
    dans, comptes = _perimetre_ess(c_etab, c_ul)
    print(json.dumps({"lecture_s": round(lecture, 3),
                      "classement_s": round(time.perf_counter() - t0 - lecture, 3),
                      "lignes_lues": c_etab.lignes_lues, "rejets": len(c_etab.rejets),
                      "dans_perimetre": dans.height, "comptes": comptes}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--donnees", type=Path)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--interne", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.interne:
        _interne(*map(Path, a.interne))
        return
    if a.donnees is None:
        ap.error("--donnees est obligatoire")
    mesures = []
    for _ in range(a.repetitions):
        with tempfile.TemporaryDirectory() as travail:
            debut = time.perf_counter()
            p = subprocess.Popen([sys.executable, __file__, "--interne", str(a.donnees),
                                  travail], stdout=subprocess.PIPE)
            _, statut, usage = os.wait4(p.pid, 0)
            mur = time.perf_counter() - debut
            info = json.loads(p.stdout.read())
            p.stdout.close()
        if os.waitstatus_to_exitcode(statut):
            raise SystemExit("échec")
        mesures.append({"mur_s": mur, "cpu_s": usage.ru_utime + usage.ru_stime,
                        "pic_rss_gio": usage.ru_maxrss / 2**20,
                        "charge": " ".join(f"{x:.2f}" for x in os.getloadavg()), **info})
        print(json.dumps(mesures[-1]), flush=True)
    med = {k: round(statistics.median(m[k] for m in mesures), 2)
           for k in ("mur_s", "cpu_s", "pic_rss_gio", "lecture_s", "classement_s")}
    print(json.dumps({"mediane": med, "lignes_lues": mesures[0]["lignes_lues"],
                      "dans_perimetre": mesures[0]["dans_perimetre"],
                      "charges": [m["charge"] for m in mesures]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
