"""One build, stage by stage: wall time, CPU time of the process and peak RSS of each stage.

Run (``PYTHONPATH`` picks the code measured, e.g. another worktree's ``src`` to alternate
two versions on the same files)::

    nice .venv/bin/python benchmarks/etapes.py <dossier du registre> <base.duckdb> \
        [--coeur] [--vider]

``--coeur`` measures the core build, the one the peers of ``pairs.py`` compare with: the
publication plan and its protection (``ecrire_plan``) are skipped, everything else (reading,
perimeter, placement, employment, rejects, base, transition) runs as in ``essqpv construire``.
``--vider`` empties the base's cache folder first (a build from the raw files).

Prints one line per stage (name, wall s, CPU s, peak RSS GiB during the stage, then the
peaks of its two parts: anonymous memory and pages of mapped files), the totals,
and the main counts (rows read, ESS rows, in scope, in QPV, legal-unit rows), to compare two
versions alternated under the same load (the machine is shared: compare CPU times).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from pathlib import Path

NOMS = {"etablissements": "StockEtablissement_utf8.csv",
        "unites_legales": "StockUniteLegale_utf8.csv",
        "geolocalisation": "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.csv",
        "emplois": "emplois.csv"}


def sans_publication() -> None:
    """Skip the publication plan and its protection in the builds of this process (the
    build imports ``ecrire_plan`` when it writes the base)."""
    from essqpv.indicators import publication
    publication.ecrire_plan = lambda *args, **kwargs: {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dossier", type=Path)
    ap.add_argument("base", type=Path)
    ap.add_argument("--coeur", action="store_true",
                    help="sans le plan de publication ni sa protection")
    ap.add_argument("--vider", action="store_true", help="cache de la base vidé d'abord")
    a = ap.parse_args()
    dossier, base = a.dossier, a.base
    if a.vider:
        shutil.rmtree(base.with_name(base.name + ".travail"), ignore_errors=True)
    courant = {"etape": "imports", "pic": 0, "anon": 0, "fichiers": 0}
    lignes = []

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    def parts() -> tuple[int, int]:
        """(anonymous memory, pages of mapped files) in the RSS (/proc/self/status)."""
        vals = {}
        with open("/proc/self/status") as f:
            for ligne in f:
                if ligne.startswith(("RssAnon:", "RssFile:")):
                    nom, kb = ligne.split()[:2]
                    vals[nom] = int(kb) * 1024
        return vals.get("RssAnon:", 0), vals.get("RssFile:", 0)

    def echantillonner() -> None:
        while True:
            courant["pic"] = max(courant["pic"], rss())
            anon, fichiers = parts()
            courant["anon"] = max(courant["anon"], anon)
            courant["fichiers"] = max(courant["fichiers"], fichiers)
            time.sleep(0.05)

    threading.Thread(target=echantillonner, daemon=True).start()
    t0, c0 = time.perf_counter(), time.process_time()
    dernier = [t0, c0]

    def etape(nom: str) -> None:
        t, c = time.perf_counter(), time.process_time()
        lignes.append((courant["etape"], round(t - dernier[0], 2), round(c - dernier[1], 2),
                       round(courant["pic"] / 2**30, 2), round(courant["anon"] / 2**30, 2),
                       round(courant["fichiers"] / 2**30, 2)))
        anon, fichiers = parts()
        courant.update(etape=nom, pic=rss(), anon=anon, fichiers=fichiers)
        dernier[:] = [t, c]

    from essqpv.base import construire
    if a.coeur:
        sans_publication()
    r = construire(**{role: dossier / nom for role, nom in NOMS.items()},
                   millesime="2024-01", base=base, progression=etape)
    etape("fin")
    for ligne in lignes:
        print(*ligne, sep="\t")
    print("TOTAL", round(time.perf_counter() - t0, 2), round(time.process_time() - c0, 2))
    print("COMPTES", r["lignes_lues"], r["ess"], r["dans_perimetre"], r["en_qpv"],
          r["unites_legales"]["lignes_lues"])
    import resource
    print("PIC", round(max(l[3] for l in lignes), 2), "Gio (échantillons),",
          round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2), "Gio (maxrss)",
          "coeur" if a.coeur else "complet")


if __name__ == "__main__":
    main()
