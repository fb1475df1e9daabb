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
   geographies (the vintage's, from the base, and the other one: the embedded 2015
   contours for a 2024 vintage, or the file given by ``--qpv``), every
   series written into the base — with the time of each stage.

``--tuiles K`` measures at national scale on ``K`` copies of the register, its historical
files and its base; ``--creux`` then copies only the stock and geolocation lines of the ESS
candidate sirens (the positions found are the same; a tenth of the bytes on disk).

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


def _interne(registre: Path, historiques: Path, base: Path, sortie: Path, qpv: Path) -> None:
    """(child process) Build the series, recording when each stage starts."""
    import resource

    from essqpv.historique import construire_historique
    temps: list[tuple[str, float]] = []
    usage: list[tuple[float, float]] = []  # (CPU seconds, peak RSS GiB) when a stage starts
    t0 = time.perf_counter()

    def noter(e: str) -> None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        temps.append((e, time.perf_counter() - t0))
        usage.append((r.ru_utime + r.ru_stime, r.ru_maxrss / 2**20))
    r = construire_historique(
        base=base,
        etablissements_historique=historiques / "StockEtablissementHistorique_utf8.csv",
        unites_legales_historique=historiques / "StockUniteLegaleHistorique_utf8.csv",
        etablissements=registre / N.NOMS["etablissements"],
        geolocalisation=registre / N.NOMS["geolocalisation"],
        qpv=qpv if qpv.name != "-" else None,
        progression=noter)
    fin = time.perf_counter() - t0
    r_fin = resource.getrusage(resource.RUSAGE_SELF)
    usage.append((r_fin.ru_utime + r_fin.ru_stime, r_fin.ru_maxrss / 2**20))
    etapes, cpu, pic = {}, {}, {}
    for i, (e, t) in enumerate(temps):
        etapes[e] = round((temps[i + 1][1] if i + 1 < len(temps) else fin) - t, 2)
        cpu[e] = round(usage[i + 1][0] - usage[i][0], 2)
        pic[e] = round(usage[i + 1][1], 3)  # peak RSS reached by the end of the stage
    sortie.write_text(json.dumps({"etapes_s": etapes, "etapes_cpu_s": cpu,
                                  "pic_rss_gio_fin_etape": pic, "total_s": round(fin, 2),
                                  "controle": r}, ensure_ascii=False, default=str), "utf-8")


def _interne_reponses(base: Path, sortie: Path) -> None:
    """(child process) The stored answers' computation for every territory a plan holds
    (France, METRO, DROM, and each région, département, EPCI, commune and QPV of the base's
    establishments in a QPV), both geographies: what ``essqpv historique`` adds when the base
    has a stored plan."""
    import duckdb

    from essqpv import historique as HI
    from essqpv.territoires import Territoire
    con = duckdb.connect(str(base), read_only=True)
    info = HI.disponible(base)
    lignes = con.execute(
        "SELECT DISTINCT unnest([('REG:' || region, 'region'), ('DEP:' || departement, "
        "'departement'), ('EPCI:' || epci, 'epci'), ('COM:' || commune, 'commune'), "
        "('QPV:' || qpv, 'qpv')]) FROM etablissements WHERE qpv IS NOT NULL").fetchall()
    territoires = [Territoire("FR", "france", "France"), Territoire("METRO", "metropole", ""),
                   Territoire("DROM", "drom", "")]
    territoires += [Territoire(c, n, c) for ((c, n),) in lignes if c is not None]
    t0 = time.perf_counter()
    n = 0
    for geo in info["geographies"]:
        liste = [t for t in territoires if t.niveau != "qpv" or geo == info["geographies"][0]]
        n += len(HI.series_en_bloc(con, info, geo, liste))
    sortie.write_text(json.dumps({"territoires": len(territoires), "reponses": n,
                                  "duree_s": round(time.perf_counter() - t0, 2)}), "utf-8")


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


# ------------------------------------------------------------------ national scale by tiling

#: files tiled, and whether the siret sits after the siren and the nic (byte 16)
TUILES = {"StockEtablissementHistorique_utf8.csv": (",", True),
          "StockUniteLegaleHistorique_utf8.csv": (",", False),
          N.NOMS["etablissements"]: (",", True),
          N.NOMS["geolocalisation"]: (";", False)}


def _tuiler_fichier(source: Path, cible: Path, tuiles: int, sep: str, siret_16: bool) -> int:
    """Write ``tuiles`` copies of ``source`` (one header) into ``cible``: copy ``k`` has its
    identifiers' first digit ``1`` replaced by ``k + 1`` (the synthetic sirens all start with
    1): the siren at the start of each line and, ``siret_16``, the siret at byte 16 after the
    siren and the nic. Each copy is a register of its own, the same as the original."""
    import numpy as np
    octets = 0
    with open(cible, "wb") as sortie:
        for k in range(tuiles):
            chiffre = ord(str(k + 1))
            with open(source, "rb") as entree:
                entete = entree.readline()
                if k == 0:
                    sortie.write(entete)
                reste = b""
                while True:
                    morceau = entree.read(64 << 20)
                    if not morceau and not reste:
                        break
                    blk = reste + morceau
                    coupe = blk.rfind(b"\n") + 1 if morceau else len(blk)
                    blk, reste = blk[:coupe], blk[coupe:]
                    a = np.frombuffer(blk, np.uint8).copy()
                    debuts = np.concatenate([[0], np.flatnonzero(a == 10)[:-1] + 1]) \
                        if len(a) else np.zeros(0, np.int64)
                    debuts = debuts[debuts < len(a)]
                    a[debuts[a[debuts] == 49]] = chiffre
                    if siret_16:
                        d = debuts[debuts + 16 < len(a)]
                        d = d[(a[d + 15] == ord(sep)) & (a[d + 16] == 49)]
                        a[d + 16] = chiffre
                    sortie.write(a.tobytes())
                    octets += len(a)
    return octets


def _creux(registre: Path, historiques: Path, dossier: Path) -> Path:
    """A register holding only the stock and geolocation lines of the sirens that are ESS
    candidates in the historical file of legal units (``--creux``): the positions' look-up
    keeps only the sirets it seeks, all of them among these lines, so it finds the same
    positions, reading a tenth of the bytes."""
    import polars as pl

    from essqpv import historique as HI
    from essqpv import reference
    from essqpv.sources import historique as H
    dossier.mkdir(parents=True, exist_ok=True)
    regles = reference.regles_familles()
    filtre = H.Filtre(codes={
        "categorieJuridiqueUniteLegale":
            regles.filter(pl.col("regle") == "categorie_juridique")["valeur"].to_list(),
        "economieSocialeSolidaireUniteLegale":
            regles.filter(pl.col("regle") == "ess")["valeur"].to_list()})
    uh = H.charger(historiques / "StockUniteLegaleHistorique_utf8.csv", H.UNITES_LEGALES,
                   dossier / "travail", filtre)
    sirens = {str(s).zfill(9).encode()
              for s in HI._unites_legales_ess(uh.periodes)["siren"].unique().to_list()}
    for nom in (N.NOMS["etablissements"], N.NOMS["geolocalisation"]):
        with open(registre / nom, "rb") as entree, open(dossier / nom, "wb") as sortie:
            sortie.write(entree.readline())
            sortie.writelines(ligne for ligne in entree if ligne[:9] in sirens)
    return dossier


def tuiler(registre: Path, historiques: Path, base: Path, dossier: Path, tuiles: int,
           creux: bool = False) -> dict:
    """National-scale inputs from a register of ``national.py``, its historical files and
    its base: ``tuiles`` copies of each (stock, geolocation, both historical files, the
    base's establishments), the identifiers of copy ``k`` starting with ``k + 1``. The series
    of the tiled inputs are then exactly ``tuiles`` times those of the original: the benchmark
    checks it."""
    import shutil

    import duckdb
    dossier.mkdir(parents=True, exist_ok=True)
    manifeste = dossier / "manifeste.json"
    if manifeste.exists():
        return json.loads(manifeste.read_text("utf-8"))
    t = time.perf_counter()
    octets = {}
    stock = _creux(registre, historiques, dossier / "creux") if creux else registre
    for nom, (sep, siret_16) in TUILES.items():
        src = (historiques if "Historique" in nom else stock) / nom
        octets[nom] = _tuiler_fichier(src, dossier / nom, tuiles, sep, siret_16)
    cible = dossier / "base.duckdb"
    shutil.copyfile(base, cible)
    con = duckdb.connect(str(cible))
    try:
        # series of an earlier build (perhaps of an older schema): built afresh by the run
        for table in ("historique_meta", "historique_stock", "historique_flux",
                      "historique_communes"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        colonnes = [r[0] for r in con.execute("DESCRIBE etablissements").fetchall()]
        remplace = ", ".join(f"'{{k}}' || substr({c}, 2) AS {c}" for c in ("siren", "siret")
                             if c in colonnes)
        for k in range(2, tuiles + 1):
            con.execute(f"INSERT INTO etablissements SELECT * REPLACE ({remplace.format(k=k)}) "
                        "FROM etablissements WHERE substr(siret, 1, 1) = '1'")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    m = {"tuiles": tuiles, "octets": octets, "creux": creux,
         "duree_s": round(time.perf_counter() - t, 1)}
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
    ap.add_argument("--qpv", type=Path, default=Path("-"),
                    help="contours de l'autre géographie que celle du millésime (« - », par "
                         "défaut : ceux de 2015 embarqués pour un millésime en géographie "
                         "2024)")
    ap.add_argument("--tuiles", type=int, default=1,
                    help="échelle nationale par copies : N copies du registre, de ses fichiers "
                         "historiques et de sa base (identifiants décalés), dans --donnees")
    ap.add_argument("--creux", action="store_true",
                    help="avec --tuiles : stock et géolocalisation réduits aux lignes des "
                         "siren candidats de l'ESS (mêmes positions trouvées, 1,3 Go relus "
                         "au lieu de 9,9 Go à 8 copies de 5 M)")
    ap.add_argument("--interne", nargs=5, type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--interne-reponses", nargs=2, type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.interne:
        _interne(*a.interne)
        return
    if a.interne_reponses:
        _interne_reponses(*a.interne_reponses)
        return
    TRAVAIL.mkdir(exist_ok=True)
    registre = a.registre or N.donnees(a.donnees, a.etablissements, False)
    # (national.py writes manifeste.json; registers of its later versions, generation.json)
    manifeste = registre / "manifeste.json"
    if not manifeste.exists():
        manifeste = registre / "generation.json"
    n = json.loads(manifeste.read_text("utf-8"))["etablissements"]
    base = TRAVAIL / f"historique-{n}.duckdb"
    _base(registre, base)
    dossier_h = a.donnees / f"h{n}"
    hist = _historiques(registre, dossier_h)
    print(f"historiques : {hist}", flush=True)
    tuiles = None
    if a.tuiles > 1:
        dossier_t = a.donnees / f"t{n}x{a.tuiles}{'c' if a.creux else ''}"
        tuiles = tuiler(registre, dossier_h, base, dossier_t, a.tuiles, a.creux)
        print(f"copies : {tuiles}", flush=True)
        registre, dossier_h, base = dossier_t, dossier_t, dossier_t / "base.duckdb"
    mesures, etapes = [], []
    for _ in range(a.repetitions):
        sortie = TRAVAIL / "historique-sortie.json"
        m = N.lancer([N.PYTHON, __file__, "--interne", str(registre), str(dossier_h),
                      str(base), str(sortie), str(a.qpv)])
        info = json.loads(sortie.read_text("utf-8"))
        mesures.append(m)
        etapes.append(info["etapes_s"])
    med = N.mediane(mesures)
    med["etapes_s"] = {e: round(statistics.median(x.get(e, 0) for x in etapes), 2)
                       for e in etapes[0]}
    med["etapes_cpu_s"] = info.get("etapes_cpu_s")
    med["pic_rss_gio_fin_etape"] = info.get("pic_rss_gio_fin_etape")
    c = info["controle"]
    k = a.tuiles if tuiles else 1
    # the stored answers of every territory of a plan (measured apart)
    sortie_r = TRAVAIL / "historique-reponses.json"
    m_r = N.lancer([N.PYTHON, __file__, "--interne-reponses", str(base), str(sortie_r)])
    reponses = {**json.loads(sortie_r.read_text("utf-8")), **m_r}
    periodes = {r: v * k for r, v in hist["periodes"].items()}
    ligne = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "etablissements": n * k,
             "copies": k, "periodes": periodes,
             "octets_historiques": tuiles["octets"] if tuiles else hist["octets"],
             "generation_historiques_s": hist["duree_s"], **med,
             "points": len(c["points"]), "geographies": c["geographies"],
             "etablissements_dans_le_champ": c["etablissements_dans_le_champ_une_fois_au_moins"],
             "dernier_point": c["dernier_point"], "millesime_de_la_base": c["millesime_de_la_base"],
             "sans_position": c["etablissements_sans_position"], "reponses": reponses,
             "lignes_lues": {r: c[r]["lignes_lues"] for r in ("etablissements_historique",
                                                               "unites_legales_historique")},
             "periodes_utiles": {r: c[r]["periodes_utiles"] for r in (
                 "etablissements_historique", "unites_legales_historique")}}
    with open(RESULTATS, "a", encoding="utf-8") as f:
        f.write(json.dumps(ligne, ensure_ascii=False) + "\n")
    print(json.dumps(ligne, ensure_ascii=False, indent=1), flush=True)


if __name__ == "__main__":
    main()
