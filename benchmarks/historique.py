"""Benchmark of the historical series (issue 20): ``essqpv historique`` at national scale.

Run::

    .venv/bin/python benchmarks/historique.py --registre DOSSIER     # a register of national.py
    .venv/bin/python benchmarks/historique.py --etablissements 5000000 --repetitions 3

Steps:

1. the synthetic register of ``N`` establishments (``--registre``: a folder written by
   ``benchmarks/national.py``, read only; otherwise generated into ``--donnees/eN``);
2. its base (``essqpv construire``, not timed here: ``national.py`` measures it), in
   ``benchmarks/work/historique-N.duckdb``;
3. the historical files of that register (``essqpv.synthese.generer_historiques``: ≈ 2.3
   periods per establishment, like INSEE's), written once into ``--donnees/hN`` (timed apart);
4. measured, in a child process (wall time, CPU time, peak RSS by ``wait4``): the whole
   ``construire_historique`` — both historical files read and checked, the stock and the
   geolocation file read for the establishments the vintage does not hold, both QPV
   geographies (the 2024 contours of ``../shared/data/qpv/2024``, ``--qpv``), every
   series written into the base — with the time of each stage.

Results are appended to ``benchmarks/work/historique.jsonl`` (git-ignored) and written up
in ``benchmarks/historique.md``. Nothing here is a test.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ICI = Path(__file__).resolve().parent
sys.path.insert(0, str(ICI))
import national as N  # noqa: E402  (the measuring helpers of the national benchmark)

TRAVAIL = ICI / "work"
RESULTATS = TRAVAIL / "historique.jsonl"


QPV2024 = ICI.parent.parent / "shared" / "data" / "qpv" / "2024" / \
    "QP2024_France_Hexagonale_Outre_Mer_WGS84_arrondi4.geojson"


def _interne(registre: Path, historiques: Path, base: Path, sortie: Path, qpv: Path) -> None:
    """(child process) Build the series, recording when each stage starts."""
    from essqpv.historique import construire_historique
    temps: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    r = construire_historique(
        base=base,
        etablissements_historique=historiques / "StockEtablissementHistorique_utf8.csv",
        unites_legales_historique=historiques / "StockUniteLegaleHistorique_utf8.csv",
        etablissements=registre / N.NOMS["etablissements"],
        geolocalisation=registre / N.NOMS["geolocalisation"],
        qpv=qpv if qpv.name != "-" else None,
        progression=lambda e: temps.append((e, time.perf_counter() - t0)))
    fin = time.perf_counter() - t0
    etapes = {}
    for i, (e, t) in enumerate(temps):
        etapes[e] = round((temps[i + 1][1] if i + 1 < len(temps) else fin) - t, 2)
    sortie.write_text(json.dumps({"etapes_s": etapes, "total_s": round(fin, 2), "controle": r},
                                 ensure_ascii=False, default=str), "utf-8")


def _base(registre: Path, base: Path) -> None:
    if base.exists():
        return
    sortie = TRAVAIL / "historique-construire.json"
    print(f"construction de {base}…", flush=True)
    N.lancer([N.PYTHON, str(ICI / "national.py"), "--interne-construire", str(registre),
              str(base), str(sortie)])


def _historiques(registre: Path, dossier: Path) -> dict:
    manifeste = dossier / "manifeste.json"
    if manifeste.exists():
        return json.loads(manifeste.read_text("utf-8"))
    from essqpv.synthese import generer_historiques
    fichiers = {"etablissements": registre / N.NOMS["etablissements"],
                "unites_legales": registre / N.NOMS["unites_legales"]}
    t = time.perf_counter()
    h = generer_historiques(fichiers, N.MILLESIME, N.GRAINE, dossier=dossier)
    m = {"periodes": h["periodes"], "duree_s": round(time.perf_counter() - t, 1),
         "octets": {Path(f).name: Path(f).stat().st_size for f in h["fichiers"].values()}}
    manifeste.write_text(json.dumps(m, indent=1), "utf-8")
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark des séries historiques (ticket 20).")
    ap.add_argument("--etablissements", type=int, default=40_000_000)
    ap.add_argument("--registre", type=Path, default=None,
                    help="registre de national.py déjà écrit (lu seulement)")
    ap.add_argument("--donnees", type=Path,
                    default=Path(os.environ.get("ESSQPV_BENCH_DONNEES", TRAVAIL / "donnees")))
    ap.add_argument("--repetitions", type=int, default=1)
    ap.add_argument("--qpv", type=Path, default=QPV2024 if QPV2024.exists() else Path("-"),
                    help="contours de la seconde géographie (2024 ; « - » : aucune)")
    ap.add_argument("--interne", nargs=5, type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.interne:
        _interne(*a.interne)
        return
    TRAVAIL.mkdir(exist_ok=True)
    registre = a.registre or N.donnees(a.donnees, a.etablissements, False)
    n = json.loads((registre / "manifeste.json").read_text("utf-8"))["etablissements"]
    base = TRAVAIL / f"historique-{n}.duckdb"
    _base(registre, base)
    hist = _historiques(registre, a.donnees / f"h{n}")
    print(f"historiques : {hist}", flush=True)
    mesures, etapes = [], []
    for _ in range(a.repetitions):
        sortie = TRAVAIL / "historique-sortie.json"
        m = N.lancer([N.PYTHON, __file__, "--interne", str(registre), str(a.donnees / f"h{n}"),
                      str(base), str(sortie), str(a.qpv)])
        info = json.loads(sortie.read_text("utf-8"))
        mesures.append(m)
        etapes.append(info["etapes_s"])
    med = N.mediane(mesures)
    med["etapes_s"] = {e: round(statistics.median(x.get(e, 0) for x in etapes), 2)
                       for e in etapes[0]}
    c = info["controle"]
    ligne = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "etablissements": n,
             "periodes": hist["periodes"], "octets_historiques": hist["octets"],
             "generation_historiques_s": hist["duree_s"], **med,
             "points": len(c["points"]), "geographies": c["geographies"],
             "etablissements_dans_le_champ": c["etablissements_dans_le_champ_une_fois_au_moins"],
             "dernier_point": c["dernier_point"], "millesime_de_la_base": c["millesime_de_la_base"],
             "sans_position": c["etablissements_sans_position"]}
    with open(RESULTATS, "a", encoding="utf-8") as f:
        f.write(json.dumps(ligne, ensure_ascii=False) + "\n")
    print(json.dumps(ligne, ensure_ascii=False, indent=1), flush=True)


if __name__ == "__main__":
    main()
