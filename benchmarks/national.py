"""National-scale benchmark (issue 9): essqpv construire against a pandas + geopandas reference.

Run (``make bench`` runs the defaults)::

    .venv/bin/python benchmarks/national.py                          # 40 M establishments
    .venv/bin/python benchmarks/national.py --etablissements 5000000 --etapes construire,reference
    .venv/bin/python benchmarks/national.py --echelle 1000000,5000000,20000000,40000000
    .venv/bin/python benchmarks/national.py --graphique              # echelle.png from results

Steps (``--etapes``, comma-separated; default all):

- ``generer``: write (or reuse, checked by SHA-256) the synthetic register with
  ``essqpv.synthese.generer`` into ``--donnees`` (outside the repository; 40 M ≈ 15 GB), and
  extract the establishments CSV from its ZIP once (the build reads the plain CSV files);
- ``construire``: ``essqpv.base.construire`` from the raw CSV files, Parquet cache emptied
  first (a child process: wall time, peak RSS, each stage's share);
- ``cache``: the same build again, from the Parquet cache;
- ``reference``: ``benchmarks/reference_pandas.py`` on the same files (skipped above
  ``--reference-max`` establishments: it needs ~10 GiB per 5 M rows), then the counts by
  family × région × in/out QPV are compared with the base, which must match exactly;
- ``indicateurs``: ``benchmarks/indicateurs.py`` on the base (any territory's indicators);
- ``points``: the QPV lookup of 100,000 points (``essqpv.lookup.localiser_points``);
- ``serie`` (``make bench``): ``essqpv construire`` (cache emptied) and the two peers of
  ``pairs.py`` (polars + shapely, DuckDB + spatial) in turn, ``--repetitions`` times, on the
  same files: time, CPU, peak memory, and the ratios.

``--coeur``: the builds skip the publication plan and its protection (``ecrire_plan``), the
part of ``essqpv construire`` the peers do not do and whose cost does not depend on the
register's size but on the geography (with the cache emptied, the protection is computed
afresh: minutes); everything else runs as in ``essqpv construire``.

Each figure is the median of ``--repetitions`` runs; the load of the machine (``uptime``)
is recorded with it. Results are appended to ``benchmarks/work/resultats.jsonl`` (git-ignored)
and summed up as a table; ``--graphique`` draws ``benchmarks/echelle.png`` from that file.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ICI = Path(__file__).resolve().parent
TRAVAIL = ICI / "work"
RESULTATS = TRAVAIL / "resultats.jsonl"
PYTHON = sys.executable
ETAPES = ("generer", "construire", "cache", "reference", "indicateurs", "points")
# The peers (issue 21): the same core job in polars + shapely and in DuckDB + spatial, as an
# analyst would write it (``pairs.py``, from ../shared/bench-peers when present, else the copy
# in this folder), run on the same files, alternated with ``essqpv construire`` in one series.
PAIRS = next((p for p in (ICI.parent.parent / "shared" / "bench-peers" / "pairs.py",
                          ICI / "pairs.py") if p.exists()), ICI / "pairs.py")
PILES = ("polars_shapely", "duckdb")
# Their own environment: the DuckDB spatial extension needs DuckDB 1.5.5 (essqpv's is newer).
PAQUETS_PAIRS = ("duckdb==1.5.5", "duckdb-extension-spatial==1.5.5", "polars", "shapely",
                 "pyogrio", "numpy", "geopandas", "pyarrow")
GRAINE = 2024
COEUR = False  # --coeur
MILLESIME = "2024-01"
NOMS = {
    "etablissements": "StockEtablissement_utf8.csv",
    "unites_legales": "StockUniteLegale_utf8.csv",
    "geolocalisation": "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.csv",
    "emplois": "emplois.csv",
}


# --------------------------------------------------------------------------- measuring

def charge() -> str:
    """Load averages (1, 5, 15 min) as ``uptime`` prints them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def lancer(commande: list[str], sortie: Path | None = None) -> dict:
    """Run a child process; wall time and its own peak RSS (``wait4``)."""
    debut = time.perf_counter()
    with open(sortie or os.devnull, "wb") as flux, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(commande, stdout=flux, stderr=err)
        _, statut, usage = os.wait4(p.pid, 0)
        mur = time.perf_counter() - debut
        err.seek(0)
        erreurs = err.read().decode("utf-8", "replace")
    if os.waitstatus_to_exitcode(statut) != 0:
        raise SystemExit(f"échec de {' '.join(commande[:3])}… :\n{erreurs[-3000:]}")
    return {"mur_s": round(mur, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "pic_rss_gio": round(usage.ru_maxrss / 2**20, 3), "charge": charge()}


def mediane(mesures: list[dict]) -> dict:
    m = {k: round(statistics.median(x[k] for x in mesures), 3)
         for k in ("mur_s", "cpu_s", "pic_rss_gio")}
    m["mur_min_max"] = [min(x["mur_s"] for x in mesures), max(x["mur_s"] for x in mesures)]
    m["charges"] = [x["charge"] for x in mesures]
    m["runs"] = len(mesures)
    return m


def enregistrer(ligne: dict) -> None:
    TRAVAIL.mkdir(exist_ok=True)
    ligne = {"date": dt.datetime.now().isoformat(timespec="seconds"), **ligne}
    with open(RESULTATS, "a", encoding="utf-8") as f:
        f.write(json.dumps(ligne, ensure_ascii=False) + "\n")
    print(json.dumps(ligne, ensure_ascii=False), flush=True)


# --------------------------------------------------------------------------- data

def _sha256(chemin: Path) -> str:
    h = hashlib.sha256()
    with open(chemin, "rb") as f:
        for bloc in iter(lambda: f.read(1 << 24), b""):
            h.update(bloc)
    return h.hexdigest()


def donnees(racine: Path, n: int, verifier: bool) -> Path:
    """The register of ``n`` establishments: generated once, then reused (SHA-256 manifest)."""
    dossier = racine / f"e{n}"
    manifeste = dossier / "manifeste.json"
    if manifeste.exists():
        m = json.loads(manifeste.read_text("utf-8"))
        bons = all((dossier / f).exists() and (dossier / f).stat().st_size == v["taille"]
                   for f, v in m["fichiers"].items())
        if bons and verifier:
            bons = all(_sha256(dossier / f) == v["sha256"] for f, v in m["fichiers"].items())
        if bons and m.get("graine") == GRAINE:
            return dossier
        print(f"{dossier} : fichiers modifiés, nouvelle génération", flush=True)
    if not (dossier / "generation.json").exists():
        from essqpv.synthese import generer
        t = time.perf_counter()
        r = generer(dossier, etablissements=n, graine=GRAINE, millesime=MILLESIME)
        (dossier / "generation.json").write_text(json.dumps(
            {"etablissements": n, "graine": GRAINE, "millesime": MILLESIME,
             "lignes": r["lignes"], "malformees": r["malformees"], "attendu": r["attendu"],
             "duree_s": round(time.perf_counter() - t, 1)}, default=str), "utf-8")
    # the build reads plain CSV: extract the establishments once (timed apart)
    t = time.perf_counter()
    with zipfile.ZipFile(dossier / "StockEtablissement_utf8.zip") as z:
        membre = z.infolist()[0]
        cible = dossier / NOMS["etablissements"]
        if not (cible.exists() and cible.stat().st_size == membre.file_size):
            with z.open(membre) as src, open(cible, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 24)
    extraction = round(time.perf_counter() - t, 1)
    gen = json.loads((dossier / "generation.json").read_text("utf-8"))
    fichiers = {f: {"taille": (dossier / f).stat().st_size, "sha256": _sha256(dossier / f)}
                for f in NOMS.values()}
    manifeste.write_text(json.dumps({"graine": gen["graine"], "etablissements": n,
                                     "lignes": gen["lignes"], "extraction_zip_s": extraction,
                                     "fichiers": fichiers}, indent=1), "utf-8")
    return dossier


# --------------------------------------------------------------------------- build

def _interne_construire(dossier: Path, base: Path, sortie: Path, coeur: bool = False) -> None:
    """(child process) Build the base, recording when each stage starts (``coeur``: without
    the publication plan)."""
    from essqpv.base import construire
    if coeur:
        from essqpv.indicators import publication
        publication.ecrire_plan = lambda *args, **kwargs: {}
    temps: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    rapport = construire(
        etablissements=dossier / NOMS["etablissements"],
        unites_legales=dossier / NOMS["unites_legales"],
        geolocalisation=dossier / NOMS["geolocalisation"], emplois=dossier / NOMS["emplois"],
        millesime=MILLESIME, base=base,
        progression=lambda e: temps.append((e, time.perf_counter() - t0)))
    fin = time.perf_counter() - t0
    etapes = {}
    for i, (e, t) in enumerate(temps):
        suivant = temps[i + 1][1] if i + 1 < len(temps) else fin
        etapes[e] = round(suivant - t, 3)
    sortie.write_text(json.dumps({"etapes_s": etapes, "total_s": round(fin, 3),
                                  "rapport": rapport}, ensure_ascii=False, default=str), "utf-8")


def _commande_construire(dossier: Path, base: Path, sortie: Path) -> list[str]:
    return [PYTHON, __file__, "--interne-construire", str(dossier), str(base), str(sortie),
            *(["--coeur"] if COEUR else [])]


def construire(dossier: Path, base: Path, depuis_cache: bool, repetitions: int) -> dict:
    mesures, etapes = [], []
    travail = base.with_name(base.name + ".travail")
    for _ in range(repetitions):
        if not depuis_cache and travail.exists():
            shutil.rmtree(travail)
        sortie = TRAVAIL / "construire.json"
        m = lancer(_commande_construire(dossier, base, sortie))
        info = json.loads(sortie.read_text("utf-8"))
        mesures.append(m)
        etapes.append(info["etapes_s"])
    med = mediane(mesures)
    noms = list(etapes[0])
    med["etapes_s"] = {e: round(statistics.median(x.get(e, 0) for x in etapes), 3) for e in noms}
    total = sum(med["etapes_s"].values()) or 1
    med["parts_etapes"] = {e: round(v / total, 3) for e, v in med["etapes_s"].items()}
    med["rapport"] = {k: info["rapport"][k] for k in ("lignes_lues", "lignes_rejetees",
                                                      "dans_perimetre", "en_qpv")}
    return med


def comptes_base(base: Path) -> dict:
    import duckdb
    con = duckdb.connect(str(base), read_only=True)
    try:
        lignes = con.execute(
            "SELECT famille, region, qpv IS NOT NULL, count(*) FROM etablissements "
            "WHERE millesime = ? GROUP BY ALL", [MILLESIME]).fetchall()
    finally:
        con.close()
    return {(f, r, bool(q)): int(n) for f, r, q, n in lignes}


def reference(dossier: Path, base: Path, repetitions: int) -> dict:
    mesures = []
    for _ in range(repetitions):
        sortie = TRAVAIL / "reference.json"
        mesures.append(lancer([PYTHON, str(ICI / "reference_pandas.py"), "--donnees",
                               str(dossier), "--sortie", str(sortie)]))
    r = json.loads(sortie.read_text("utf-8"))
    attendu = comptes_base(base)
    obtenu = {(f, reg, q): n for f, reg, q, n in r["comptes"]}
    differences = {str(k): [attendu.get(k), obtenu.get(k)] for k in set(attendu) | set(obtenu)
                   if attendu.get(k) != obtenu.get(k)}
    med = mediane(mesures)
    med.update(etapes_s=r["etapes_s"], cellules=len(attendu), identiques=not differences,
               differences=dict(list(differences.items())[:20]),
               dans_perimetre=r["dans_perimetre"], en_qpv=r["en_qpv"])
    return med


# --------------------------------------------------------------------------- peers

def _python_pairs() -> str:
    """The interpreter of the peers' environment (``work/pairs-venv``, made once)."""
    env = TRAVAIL / "pairs-venv"
    python = env / "bin" / "python"
    if not (env / ".installe").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PAQUETS_PAIRS],
                       check=True)
        (env / ".installe").write_text(" ".join(PAQUETS_PAIRS), "utf-8")
    return str(python)


def _entrees_pairs(dossier: Path) -> tuple[Path, Path]:
    """The folder ``pairs.py`` reads (links to the register's files under its names) and
    the QPV contours as a GeoPackage in EPSG:2154 with ``code_qp`` (the embedded 2015
    contours, the ones ``essqpv construire`` uses by default)."""
    liens = TRAVAIL / f"pairs-{dossier.name}"
    liens.mkdir(parents=True, exist_ok=True)
    for nom, role in (("StockEtablissement.csv", "etablissements"),
                      ("StockUniteLegale.csv", "unites_legales"),
                      ("GeolocEtablissement.csv", "geolocalisation")):
        lien = liens / nom
        if lien.is_symlink() or lien.exists():
            lien.unlink()
        lien.symlink_to(dossier / NOMS[role])
    gpkg = TRAVAIL / "qpv2015_epsg2154.gpkg"
    if not gpkg.exists():
        import geopandas as gpd
        import shapely

        from essqpv import reference
        q = reference.qpv2015()
        gpd.GeoDataFrame({"code_qp": q["code_qp"].to_list()},
                         geometry=shapely.from_wkb(q["geometrie"].to_numpy()),
                         crs=4326).to_crs(2154).to_file(gpkg, driver="GPKG")
    return liens, gpkg


def _pair(pile: str, liens: Path, gpkg: Path) -> dict:
    sortie = TRAVAIL / f"pairs-{pile}.txt"
    m = lancer([_python_pairs(), str(PAIRS), pile, str(liens), str(gpkg)], sortie)
    ligne = next((x for x in sortie.read_text("utf-8").splitlines()
                  if x.startswith("RESULT")), "")
    m["resultat"] = ligne
    return m


def serie(dossier: Path, base: Path, repetitions: int) -> dict:
    """``essqpv construire`` (empty cache), then each peer, ``repetitions`` times in turn,
    on the same files: medians and the ratios peer / essqpv."""
    liens, gpkg = _entrees_pairs(dossier)
    _python_pairs()
    mesures: dict[str, list[dict]] = {"essqpv": [], **{p: [] for p in PILES}}
    travail = base.with_name(base.name + ".travail")
    rapport = None
    for _ in range(repetitions):
        if travail.exists():
            shutil.rmtree(travail)
        sortie = TRAVAIL / "construire.json"
        mesures["essqpv"].append(lancer(_commande_construire(dossier, base, sortie)))
        rapport = json.loads(sortie.read_text("utf-8"))
        mesures["essqpv"][-1]["etapes_s"] = rapport["etapes_s"]
        for p in PILES:
            mesures[p].append(_pair(p, liens, gpkg))
    res = {k: mediane(v) for k, v in mesures.items()}
    res["essqpv"]["etapes_s"] = {e: round(statistics.median(x["etapes_s"].get(e, 0)
                                                             for x in mesures["essqpv"]), 3)
                                 for e in mesures["essqpv"][0]["etapes_s"]}
    res["essqpv"]["ess"] = rapport["rapport"]["ess"]
    res["essqpv"]["rapport"] = {k: rapport["rapport"][k] for k in (
        "lignes_lues", "lignes_rejetees", "ess", "dans_perimetre", "en_qpv")}
    for p in PILES:
        res[p]["resultat"] = mesures[p][-1]["resultat"]
        res[p]["rapport_temps"] = round(res[p]["mur_s"] / res["essqpv"]["mur_s"], 2)
        # (the machine is shared: CPU time, less sensitive to the load, is the comparison)
        res[p]["rapport_cpu"] = round(res[p]["cpu_s"] / res["essqpv"]["cpu_s"], 2)
    return res


# --------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark national (issue 9).")
    ap.add_argument("--etablissements", type=int, default=40_000_000,
                    help="taille du registre synthétique (lignes d'établissements)")
    ap.add_argument("--echelle", default="",
                    help="tailles séparées par des virgules : mesure construire (+ référence "
                         "sous --reference-max) à chaque taille")
    ap.add_argument("--etapes", default=",".join(ETAPES),
                    help=f"étapes séparées par des virgules parmi {', '.join(ETAPES)}, serie")
    ap.add_argument("--donnees", type=Path,
                    default=Path(os.environ.get("ESSQPV_BENCH_DONNEES", TRAVAIL / "donnees")),
                    help="dossier des registres générés (hors du dépôt de préférence)")
    ap.add_argument("--reference-max", type=int, default=5_000_000)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--verifier-empreintes", action="store_true",
                    help="recalculer le SHA-256 des fichiers réutilisés")
    ap.add_argument("--graphique", action="store_true")
    ap.add_argument("--coeur", action="store_true",
                    help="constructions sans le plan de publication ni sa protection (ce que "
                         "les pairs ne font pas)")
    ap.add_argument("--interne-construire", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.interne_construire:
        _interne_construire(*map(Path, a.interne_construire), coeur=a.coeur)
        return
    global COEUR
    COEUR = a.coeur
    if a.graphique:
        graphique()
        return
    etapes = set(a.etapes.split(","))
    tailles = [int(x) for x in a.echelle.split(",") if x] or [a.etablissements]
    TRAVAIL.mkdir(exist_ok=True)
    for n in tailles:
        dossier = donnees(a.donnees, n, a.verifier_empreintes)
        manifeste = json.loads((dossier / "manifeste.json").read_text("utf-8"))
        base = TRAVAIL / f"national-{n}.duckdb"
        commun = {"etablissements": n, "lignes": manifeste["lignes"], "coeur": COEUR,
                  "octets_csv": sum(v["taille"] for v in manifeste["fichiers"].values())}
        if "construire" in etapes:
            r = construire(dossier, base, False, a.repetitions)
            r["lignes_par_s"] = round(n / r["mur_s"])
            enregistrer({"mesure": "construire", **commun, **r})
        if "serie" in etapes:
            enregistrer({"mesure": "serie", **commun, **serie(dossier, base, a.repetitions)})
        if "cache" in etapes:
            enregistrer({"mesure": "cache", **commun,
                         **construire(dossier, base, True, a.repetitions)})
        if "reference" in etapes and n <= a.reference_max:
            r = reference(dossier, base, max(1, min(a.repetitions, 2)))
            r["lignes_par_s"] = round(n / r["mur_s"])
            enregistrer({"mesure": "reference", **commun, **r})
        if "indicateurs" in etapes:
            sortie = TRAVAIL / "indicateurs.json"
            lancer([PYTHON, str(ICI / "indicateurs.py"), "--base", str(base), "--json",
                    str(sortie)])
            enregistrer({"mesure": "indicateurs", **commun,
                         **json.loads(sortie.read_text("utf-8"))})
        if "points" in etapes:
            enregistrer({"mesure": "points_100000", **commun, **points()})
    resume()


def points() -> dict:
    sys.path.insert(0, str(ICI))
    from placement import points as tirer

    from essqpv.lookup import index_qpv, localiser_points
    from essqpv.sources.qpv import lire_qpv
    index_qpv(None)
    lon, lat = tirer(100_000, lire_qpv(), graine=2)
    temps = []
    for _ in range(7):
        t = time.perf_counter()
        localiser_points(lon, lat)
        temps.append(time.perf_counter() - t)
    return {"mediane_s": round(statistics.median(temps), 3), "min_s": round(min(temps), 3),
            "charge": charge()}


def _lignes() -> list[dict]:
    if not RESULTATS.exists():
        return []
    return [json.loads(x) for x in RESULTATS.read_text("utf-8").splitlines() if x.strip()]


def _dernieres() -> dict[tuple[str, int], dict]:
    dernier: dict[tuple[str, int], dict] = {}
    for x in _lignes():
        dernier[(x["mesure"], x["etablissements"])] = x
    return dernier


def resume() -> None:
    """The latest figure of each measure and size, as a Markdown table."""
    d = _dernieres()
    print("\n| taille | mesure | mur (médiane) | pic RSS | lignes/s | charge | date |")
    print("|---|---|---|---|---|---|---|")
    for (mesure, n), x in sorted(d.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if mesure == "serie":  # (its own table below)
            continue
        mur = x.get("mur_s", x.get("mediane_s"))
        rss = x.get("pic_rss_gio", "")
        print(f"| {n:,} | {mesure} | {mur} s | {rss} Gio | {x.get('lignes_par_s', '')} | "
              f"{x.get('charges', [x.get('charge', '')])[0]} | {x['date'][:10]} |")
    series = sorted((n, x) for (m, n), x in d.items() if m == "serie")
    if series:
        print("\n| établissements | essqpv construire | polars + shapely | DuckDB + spatial "
              "| pairs / essqpv (CPU ; temps) | charge | date |")
        print("|---|---|---|---|---|---|---|")
        for n, x in series:
            cellule = [f"{x[k]['mur_s']} s, {x[k]['cpu_s']} s CPU, {x[k]['pic_rss_gio']} Gio"
                       for k in ("essqpv", *PILES)]
            ratios = " / ".join(f"{x[p].get('rapport_cpu', '?')}" for p in PILES) + " ; " + \
                " / ".join(f"{x[p]['rapport_temps']}" for p in PILES)
            print(f"| {n / 1e6:g} M | {' | '.join(cellule)} | {ratios} | "
                  f"{x['essqpv']['charges'][0]} | {x['date'][:16]} |")
    for n in sorted({k[1] for k in d}):
        c, r = d.get(("construire", n)), d.get(("reference", n))
        if c and r:
            print(f"\n{n:,} : référence / essqpv = {r['mur_s'] / c['mur_s']:.1f}x en temps, "
                  f"{r['pic_rss_gio'] / c['pic_rss_gio']:.1f}x en mémoire ; comptes "
                  f"{'identiques' if r['identiques'] else 'DIFFÉRENTS'}")


def graphique() -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    d = _dernieres()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for mesure, libelle, style in (("construire", "essqpv construire (CSV → base)", "o-"),
                                   ("cache", "essqpv, depuis le cache (Arrow, Parquet)", "s--"),
                                   ("reference", "référence pandas + geopandas", "^-")):
        pts = sorted((n, x) for (m, n), x in d.items() if m == mesure)
        if not pts:
            continue
        ns = [n / 1e6 for n, _ in pts]
        ax1.plot(ns, [x["mur_s"] for _, x in pts], style, label=libelle)
        ax2.plot(ns, [x["pic_rss_gio"] for _, x in pts], style, label=libelle)
    ax1.axhline(25, color="grey", lw=0.8, ls=":")
    ax2.axhline(3, color="grey", lw=0.8, ls=":")
    ax1.set(xlabel="établissements (millions)", ylabel="temps écoulé (s, médiane)",
            title="Temps")
    ax2.set(xlabel="établissements (millions)", ylabel="pic de mémoire (Gio)",
            title="Mémoire")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Coût selon la taille du registre (2 cœurs, machine partagée ; "
                 "cibles en pointillé)", fontsize=10)
    fig.tight_layout()
    fig.savefig(ICI / "echelle.png", dpi=110)
    print(ICI / "echelle.png")


if __name__ == "__main__":
    main()
