"""Cost of the publication plan, of its protection and of the attacker's audit (issue 18).

Two modes:

``--base B.duckdb``
    for the newest vintage of an existing base, in one process: the construction of the plan
    (cells and relations of every linked table), the protection (primary suppression,
    reduction, certificates), the verification of every certificate against the full
    relation matrix, and the exact attacker's programs of the small blocks.

``--registre DOSSIER --sortie B.duckdb``
    a whole build (``essqpv construire``) of a register folder (the files written by
    ``benchmarks/generateur.py`` or ``essqpv synthese``): wall-clock time of each step of the
    build from its progress messages, so the plan's share of the build is measured where it
    runs (inside the build's write transaction).

``--sans-reprise`` (with ``--registre``) removes the protections stored in the base's cache
first, so that a rebuild protects the plan afresh instead of reusing the stored one
(:mod:`essqpv.indicators.reprise`); the figures say whether it was reused
(``protection_reprise``) and whether the build started from a cache (``depuis_le_cache``).

``--json`` writes the figures. Run it with ``nice`` on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path


def _charge() -> float:
    return round(os.getloadavg()[0], 1)


def mesurer_base(base: Path) -> dict:
    import numpy as np

    from essqpv.base import millesime_par_defaut, ouvrir
    from essqpv.config import confidentialite
    from essqpv.indicators import protection
    from essqpv.indicators.publication import construire_plan, proteger_plan
    m = millesime_par_defaut(base)
    con = ouvrir(base)
    n_etab = con.execute("SELECT count(*) FROM etablissements WHERE millesime = ?",
                         [m]).fetchone()[0]
    tampon, emplois = con.execute("SELECT tampon_m, avec_emplois FROM millesimes "
                                  "WHERE millesime = ?", [m]).fetchone()
    charge = [_charge()]
    t0 = time.perf_counter()
    c0 = time.process_time()
    plan, territoires = construire_plan(con, m, int(tampon), bool(emplois))
    t1, c1 = time.perf_counter(), time.process_time()
    bilan = proteger_plan(plan)
    t2, c2 = time.perf_counter(), time.process_time()
    charge.append(_charge())
    regles = confidentialite()
    intervalles, verif = protection.auditer(plan, regles, bloc_exact=0)
    t3, c3 = time.perf_counter(), time.process_time()
    exacts, bilan_exact = protection.auditer(plan, regles)
    t4, c4 = time.perf_counter(), time.process_time()
    charge.append(_charge())
    tailles = np.asarray([len(c.cellules) for c in plan.certificats] or [0])
    return {
        "base": base.name, "millesime": m, "etablissements_dans_le_perimetre": n_etab,
        "cellules": len(plan), "relations": len(plan.relations),
        "territoires_publies": len(territoires),
        "primaires": sum(s == "primaire" for s in plan.statuts),
        "secondaires": sum(s == "secondaire" for s in plan.statuts),
        "sensibles": int(sum(plan.sensible)), "protection": bilan,
        "support_moyen_des_certificats": round(float(tailles.mean()), 1),
        "support_maximal_des_certificats": int(tailles.max()),
        "auditees": len(intervalles),
        "sous_protegees_certificats": sum(not iv.protegee for iv in intervalles),
        "certificats_invalides": verif["certificats_invalides"],
        "sous_protegees_audit_complet": sum(not iv.protegee for iv in exacts),
        "exactes": bilan_exact["exactes"], "blocs_exacts": bilan_exact["blocs_exacts"],
        "plan_s": round(t1 - t0, 2), "protection_s": round(t2 - t1, 2),
        "verification_s": round(t3 - t2, 2), "audit_exact_s": round(t4 - t3, 2),
        "plan_protection_verification_s": round(t3 - t0, 2),
        "cpu_plan_protection_verification_s": round(c3 - c0, 2),
        "cpu_plan_s": round(c1 - c0, 2), "cpu_protection_s": round(c2 - c1, 2),
        "cpu_audit_exact_s": round(c4 - c3, 2),
        "pic_rss_mo": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "charge_moyenne": charge, "coeurs": os.cpu_count()}


def mesurer_construction(registre: Path, sortie: Path, sans_reprise: bool = False) -> dict:
    from essqpv.base import construire
    travail = sortie.with_name(sortie.name + ".travail")
    if sans_reprise:  # the stored protections removed: the plan is protected afresh
        for f in travail.glob("protection-*.npz"):
            f.unlink()
    cache_present = travail.exists()
    fichiers = {p.name: p for p in registre.iterdir()}

    def trouver(*noms: str) -> Path | None:
        for n in noms:
            if n in fichiers:
                return fichiers[n]
        return None

    etapes: list[tuple[float, str]] = []
    debut = time.perf_counter()
    c0 = time.process_time()
    charge = [_charge()]

    def progression(texte: str) -> None:
        etapes.append((time.perf_counter() - debut, texte))

    # (the CSV when the folder has it: benchmarks/national.py decompresses the ZIP once)
    construire(
        etablissements=trouver("StockEtablissement_utf8.csv", "StockEtablissement_utf8.zip"),
        unites_legales=trouver("StockUniteLegale_utf8.csv", "StockUniteLegale_utf8.zip"),
        geolocalisation=trouver(
            "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.csv",
            "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.zip"),
        emplois=trouver("emplois.csv"), millesime="2024-01", base=sortie, synthetique=True,
        progression=progression, forcer=True)
    fin = time.perf_counter() - debut
    charge.append(_charge())
    durees: dict[str, float] = {}
    bornes = etapes + [(fin, "fin")]
    for (t, texte), (t2, _) in zip(bornes, bornes[1:]):
        cle = texte.split(" (")[0]
        durees[cle] = round(durees.get(cle, 0.0) + t2 - t, 2)
    plan = sum(d for k, d in durees.items() if k.startswith("Plan de publication"))
    import duckdb
    con = duckdb.connect(str(sortie), read_only=True)
    try:
        n_etab = con.execute("SELECT count(*) FROM etablissements").fetchone()[0]
        cellules = con.execute("SELECT count(*), count(*) FILTER (WHERE statut = 'primaire'), "
                               "count(*) FILTER (WHERE statut = 'secondaire') "
                               "FROM publication_cellules").fetchone()
        certificats = con.execute("SELECT count(DISTINCT certificat) FROM "
                                  "publication_certificats").fetchone()[0]
        reponses = con.execute("SELECT count(*) FROM publication_reponses").fetchone()[0]
    finally:
        con.close()
    reprise = any("protection reprise" in texte for _, texte in etapes)
    return {"registre": str(registre), "base": sortie.name,
            "depuis_le_cache": cache_present, "protection_reprise": reprise,
            "etablissements_dans_le_perimetre": n_etab, "cellules": cellules[0],
            "primaires": cellules[1], "secondaires": cellules[2], "certificats": certificats,
            "reponses": reponses, "construction_s": round(fin, 1),
            "cpu_construction_s": round(time.process_time() - c0, 1),
            "plan_de_publication_s": round(plan, 1),
            "part_du_plan": round(plan / fin, 3), "etapes_s": durees,
            "pic_rss_mo": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "charge_moyenne": charge, "coeurs": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path)
    ap.add_argument("--registre", type=Path)
    ap.add_argument("--sortie", type=Path)
    ap.add_argument("--sans-reprise", action="store_true",
                    help="avec --registre : supprime les protections enregistrées dans le "
                    "cache de la base avant de la construire (protection refaite)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if a.registre:
        if not a.sortie:
            ap.error("--registre demande --sortie (la base construite)")
        r = mesurer_construction(a.registre, a.sortie, a.sans_reprise)
    elif a.base:
        r = mesurer_base(a.base)
    else:
        ap.error("--base ou --registre")
    print(json.dumps(r, ensure_ascii=False, indent=2))
    if a.json:
        a.json.write_text(json.dumps(r, ensure_ascii=False, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
