"""Same data, same secrets: compare the protected publications of two bases built from the
same files (each from scratch, its own cache), cell by cell.

Run::

    .venv/bin/essqpv demo --sortie /tmp/demo1      # or make demo
    .venv/bin/essqpv demo --sortie /tmp/demo2      # a second build from scratch
    .venv/bin/python benchmarks/determinisme.py /tmp/demo1/observatoire.duckdb \\
        /tmp/demo2/observatoire.duckdb [--json sortie.json]

For the latest vintage of each base: the plan's cells (key, count, value, largest
establishment, published or not) and relations must be the same; then every cell's status
(published, ``primaire``, ``secondaire``) and the certificates (cells and movements, keyed by
cell keys) are compared. Two publications of the same data protected differently would
together reveal secrets: any difference is printed (the first ten) and the exit code is 1.
Nothing here is a test: a demo build takes about ten minutes.
"""
from __future__ import annotations

import argparse
import json
import sys

import duckdb


def _lire(chemin: str) -> dict:
    con = duckdb.connect(chemin, read_only=True)
    try:
        m = con.execute("SELECT max(millesime) FROM millesimes").fetchone()[0]
        cellules = con.execute(
            "SELECT cellule, tableau, territoire, perimetre, zone, ligne, nombre, valeur, "
            "maximum, publiee, statut FROM publication_cellules WHERE millesime = ?",
            [m]).fetchall()
        cle = {r[0]: tuple(r[1:6]) for r in cellules}
        relations = con.execute(
            "SELECT relation, list(cellule ORDER BY cellule), list(coefficient ORDER BY "
            "cellule) FROM publication_relations WHERE millesime = ? GROUP BY relation",
            [m]).fetchall()
        certificats = con.execute(
            "SELECT certificat, list(cellule ORDER BY cellule), list(round(delta, 6) ORDER "
            "BY cellule) FROM publication_certificats WHERE millesime = ? GROUP BY "
            "certificat", [m]).fetchall()
    finally:
        con.close()
    return {
        "millesime": m,
        "plan": {cle[r[0]]: tuple(r[6:10]) for r in cellules},
        "statuts": {cle[r[0]]: r[10] for r in cellules},
        "relations": sorted(tuple(sorted(zip((cle[c] for c in cs), co))) for _, cs, co
                            in relations),
        "certificats": sorted(tuple(zip((cle[c] for c in cs), ds)) for _, cs, ds
                              in certificats),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base1")
    ap.add_argument("base2")
    ap.add_argument("--json", help="écrire le bilan dans ce fichier")
    a = ap.parse_args()
    x, y = _lire(a.base1), _lire(a.base2)
    diff = sorted(k for k in x["statuts"].keys() | y["statuts"].keys()
                  if x["statuts"].get(k, "absente") != y["statuts"].get(k, "absente"))
    bilan = {
        "bases": [a.base1, a.base2], "millesimes": [x["millesime"], y["millesime"]],
        "cellules": [len(x["plan"]), len(y["plan"])],
        "plans_identiques": x["plan"] == y["plan"] and x["relations"] == y["relations"],
        "secondaires": [sum(s == "secondaire" for s in d["statuts"].values()) for d in (x, y)],
        "primaires": [sum(s == "primaire" for s in d["statuts"].values()) for d in (x, y)],
        "certificats": [len(x["certificats"]), len(y["certificats"])],
        "statuts_differents": len(diff),
        "exemples": [[*k, x["statuts"].get(k), y["statuts"].get(k)] for k in diff[:10]],
        "certificats_identiques": x["certificats"] == y["certificats"],
    }
    texte = json.dumps(bilan, ensure_ascii=False, indent=1)
    print(texte)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            f.write(texte + "\n")
    return 0 if bilan["plans_identiques"] and not diff and bilan["certificats_identiques"] \
        else 1


if __name__ == "__main__":
    sys.exit(main())
