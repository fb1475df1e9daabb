"""Cost of the publication plan and of the attacker's audit on a base (issue 18).

Run: ``nice .venv/bin/python benchmarks/publication.py --base <base.duckdb> --json out.json``
(the demo base of ``essqpv demo``, or a national base built by ``benchmarks/national.py``).

Measures, in one process, for the newest vintage of the base: the construction of the plan
(cells and relations of every linked table), the protection (primary and secondary
suppression over the whole plan) and the audit (the attacker's interval of every suppressed
or sensitive cell). Prints the figures; ``--json`` writes them.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from essqpv.base import millesime_par_defaut, ouvrir
from essqpv.indicators.publication import auditer, construire_plan, proteger_plan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    m = millesime_par_defaut(a.base)
    con = ouvrir(a.base)
    try:
        n_etab = con.execute("SELECT count(*) FROM etablissements WHERE millesime = ?",
                             [m]).fetchone()[0]
        tampon, emplois = con.execute("SELECT tampon_m, avec_emplois FROM millesimes "
                                      "WHERE millesime = ?", [m]).fetchone()
        t0 = time.perf_counter()
        plan, territoires = construire_plan(con, m, int(tampon), bool(emplois))
        t1 = time.perf_counter()
    finally:
        con.close()
    proteger_plan(plan)
    t2 = time.perf_counter()
    intervalles = auditer(plan)
    t3 = time.perf_counter()
    r = {"base": a.base.name, "millesime": m, "etablissements_dans_le_perimetre": n_etab,
         "cellules": len(plan), "relations": len(plan.relations),
         "territoires_publies": len(territoires),
         "primaires": sum(s == "primaire" for s in plan.statuts),
         "secondaires": sum(s == "secondaire" for s in plan.statuts),
         "sensibles": int(sum(plan.sensible)), "auditees": len(intervalles),
         "sous_protegees": sum(not iv.protegee for iv in intervalles),
         "exactes": sum(iv.exact for iv in intervalles),
         "plan_s": round(t1 - t0, 2), "protection_s": round(t2 - t1, 2),
         "audit_s": round(t3 - t2, 2),
         "pic_rss_mo": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
         "coeurs": os.cpu_count()}
    print(json.dumps(r, ensure_ascii=False, indent=2))
    if a.json:
        a.json.write_text(json.dumps(r, ensure_ascii=False, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
