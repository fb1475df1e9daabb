"""Fingerprints of the historical series stored in a base, to prove that a change of the
code leaves them identical (issue 20).

Run::

    .venv/bin/python benchmarks/historique_empreintes.py BASE > avant.json   # one code
    .venv/bin/python benchmarks/historique_empreintes.py BASE > apres.json   # the other
    .venv/bin/python benchmarks/historique_empreintes.py --comparer avant.json apres.json

For each table of the series (``historique_stock``, ``historique_flux``,
``historique_communes``), the historical rejects (table ``rejets``, ``millesime =
'historique'``), the reconciliation stored in ``historique_meta`` (its ``controle``,
``points``, ``geographies``, ``sources``, ``avertissements``; not the build's date), the
stored answers of the series (``publication_reponses``, genres ``evolution*``) and the
published series of every territory a plan would hold (France, METRO, DROM, and each région,
département, EPCI, commune and QPV of the base's establishments in a QPV, both
geographies, as ``benchmarks/historique.py`` measures them): the number of rows and the
SHA-256 of the rows sorted (``ORDER BY ALL``) and written as CSV. Identical fingerprints
mean identical tables. Nothing here is a test.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

TABLES = {
    "historique_stock": "SELECT * FROM historique_stock",
    "historique_flux": "SELECT * FROM historique_flux",
    "historique_communes": "SELECT * FROM historique_communes",
    "rejets_historique": "SELECT * FROM rejets WHERE millesime = 'historique'",
    "controle": "SELECT millesime, geographies, points, synthetique, sources, "
                "json_extract(controle, '$') AS controle, avertissements FROM historique_meta",
    "reponses_enregistrees": "SELECT genre, territoire, perimetre, json FROM "
                             "publication_reponses WHERE starts_with(genre, 'evolution')",
}


def _empreinte(con, requete: str, dossier: Path, nom: str) -> dict:
    import duckdb
    try:
        n = con.execute(f"SELECT count(*) FROM ({requete})").fetchone()[0]
    except duckdb.CatalogException:
        return {"lignes": None, "sha256": None}
    chemin = dossier / f"{nom}.csv"
    con.execute(f"COPY (SELECT * FROM ({requete}) ORDER BY ALL) TO '{chemin}' (HEADER)")
    h = hashlib.sha256()
    with open(chemin, "rb") as f:
        while morceau := f.read(1 << 24):
            h.update(morceau)
    chemin.unlink()
    return {"lignes": int(n), "sha256": h.hexdigest()}


def _reponses(base: Path) -> dict:
    """The published series of every territory a plan would hold, both geographies."""
    import duckdb

    from essqpv import historique as HI
    from essqpv.indicators.publication import json_reponse
    from essqpv.territoires import Territoire
    info = HI.disponible(base)
    if info is None:
        return {"lignes": None, "sha256": None}
    con = duckdb.connect(str(base), read_only=True)
    try:
        lignes = con.execute(
            "SELECT DISTINCT unnest([('REG:' || region, 'region'), ('DEP:' || departement, "
            "'departement'), ('EPCI:' || epci, 'epci'), ('COM:' || commune, 'commune'), "
            "('QPV:' || qpv, 'qpv')]) FROM etablissements WHERE qpv IS NOT NULL").fetchall()
        territoires = [Territoire("FR", "france", "France"),
                       Territoire("METRO", "metropole", ""), Territoire("DROM", "drom", "")]
        territoires += [Territoire(c, n, c) for ((c, n),) in lignes if c is not None]
        h, n = hashlib.sha256(), 0
        for geo in info["geographies"]:
            liste = [t for t in territoires
                     if t.niveau != "qpv" or geo == info["geographies"][0]]
            series = HI.series_en_bloc(con, info, geo, liste)
            for code in sorted(series):
                h.update(f"{geo}\t{code}\t".encode())
                h.update(json_reponse(HI.publier(series[code])).encode())
                h.update(b"\n")
                n += 1
    finally:
        con.close()
    return {"lignes": n, "sha256": h.hexdigest()}


def empreintes(base: Path) -> dict:
    import duckdb
    con = duckdb.connect(str(base), read_only=True)
    try:
        with tempfile.TemporaryDirectory() as d:
            sortie = {nom: _empreinte(con, q, Path(d), nom) for nom, q in TABLES.items()}
    finally:
        con.close()
    sortie["reponses_calculees"] = _reponses(base)
    return sortie


def main() -> None:
    ap = argparse.ArgumentParser(description="Empreintes des séries historiques d'une base.")
    ap.add_argument("base", type=Path, nargs="?")
    ap.add_argument("--comparer", nargs=2, type=Path, metavar=("AVANT", "APRES"))
    a = ap.parse_args()
    if a.comparer:
        x, y = (json.loads(p.read_text("utf-8")) for p in a.comparer)
        differents = [k for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        for k in sorted(set(x) | set(y)):
            print(f"{'identique' if k not in differents else 'DIFFÉRENT'}\t{k}\t"
                  f"{x.get(k, {}).get('lignes')}\t{y.get(k, {}).get('lignes')}")
        sys.exit(1 if differents else 0)
    print(json.dumps(empreintes(a.base), indent=1))


if __name__ == "__main__":
    main()
