"""What the transition 2015 → 2024 adds to the publication plan (issue 16), on a base.

Run: ``nice .venv/bin/python benchmarks/transition.py --base <base.duckdb> [--proteger]
--json benchmarks/transition.json`` (the demo base of ``essqpv demo``).

Measures, for the newest vintage: the cells and relations of the plan without and with the
transition's extension (:func:`essqpv.transition.cellules_du_plan`), the time the extension
takes, how many of its cells are published, sensitive, never shown; with ``--proteger``, the
protection of both plans (primary and secondary suppression) and the suppressed transition
cells. Prints the figures; ``--json`` writes them.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from essqpv import transition as T
from essqpv.base import millesime_par_defaut, ouvrir
from essqpv.indicators import publication as P


_DUREE_EXTENSION: list[float] = []


def _chronometree(plan, con, m):
    t0 = time.perf_counter()
    try:
        return T.cellules_du_plan(plan, con, m)
    finally:
        _DUREE_EXTENSION.append(time.perf_counter() - t0)


def _plan(con, m: str, tampon: int, emplois: bool, avec: bool):
    sauve = list(P._EXTENSIONS)
    autres = [e for e in sauve if e is not T.cellules_du_plan]
    P._EXTENSIONS[:] = autres + ([_chronometree] if avec else [])
    try:
        t0 = time.perf_counter()
        plan, _ = P.construire_plan(con, m, tampon, emplois)
        return plan, time.perf_counter() - t0
    finally:
        P._EXTENSIONS[:] = sauve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--proteger", action="store_true",
                    help="protéger aussi les deux plans (long : minutes sur la démo)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    m = millesime_par_defaut(a.base)
    con = ouvrir(a.base)
    try:
        tampon, emplois, synth = con.execute(
            "SELECT tampon_m, avec_emplois, synthetique FROM millesimes WHERE millesime = ?",
            [m]).fetchone()
        statuts = dict(con.execute("SELECT statut, count(*) FROM transition_statuts WHERE "
                                   "millesime = ? GROUP BY ALL", [m]).fetchall())
        seul, t_seul = _plan(con, m, int(tampon), bool(emplois), False)
        avec, t_avec = _plan(con, m, int(tampon), bool(emplois), True)
    finally:
        con.close()
    miens = [i for i, k in enumerate(avec.cles) if k[0] in (T.CELLULE_SAL, T.CELLULE_NOMBRE)]
    r = {"base": a.base.name, "millesime": m, "synthetique": bool(synth),
         "etablissements_par_statut": statuts,
         "plan_sans_transition": {"cellules": len(seul), "relations": len(seul.relations),
                                  "duree_s": round(t_seul, 2)},
         "plan_avec_transition": {"cellules": len(avec), "relations": len(avec.relations),
                                  "duree_s": round(t_avec, 2)},
         "ajout": {"cellules": len(avec) - len(seul),
                   "relations": len(avec.relations) - len(seul.relations),
                   "cellules_salaries": sum(avec.cles[i][0] == T.CELLULE_SAL for i in miens),
                   "cellules_comptes_publiques": sum(avec.cles[i][0] == T.CELLULE_NOMBRE
                                                     for i in miens),
                   "jamais_montrees": sum(not avec.publiee[i] for i in miens),
                   "duree_extension_s": round(_DUREE_EXTENSION[-1], 2)}}
    if a.proteger:
        for nom, plan in (("sans", seul), ("avec", avec)):
            t0 = time.perf_counter()
            P.proteger_plan(plan)
            r[f"protection_{nom}_transition_s"] = round(time.perf_counter() - t0, 1)
            r[f"supprimees_{nom}_transition"] = sum(s is not None for s in plan.statuts)
        r["transition_supprimees"] = {
            s: sum(avec.statuts[i] == s for i in miens) for s in ("primaire", "secondaire")}
        r["transition_salaries_publiees"] = sum(
            avec.cles[i][0] == T.CELLULE_SAL and avec.publiee[i] and avec.statuts[i] is None
            for i in miens)
    r["pic_rss_mo"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    r["coeurs"] = os.cpu_count()
    print(json.dumps(r, ensure_ascii=False, indent=2))
    if a.json:
        a.json.write_text(json.dumps(r, ensure_ascii=False, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
