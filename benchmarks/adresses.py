"""Address geocoder benchmarks (issue 19): install time, Redis memory, addresses per second.

The internet is not reachable from the development machine, so the BAN's files are replaced
by **synthetic départements in the BAN's addok format, of realistic size** (by default
260,000 house numbers in 16,250 streets — the BAN holds ≈ 26 M numbers for 101 départements —
over the département's real communes, weighted by their real population; street names drawn
from the words of real French commune names). They are served by a local HTTP server, so
``essqpv geocodeur installer`` runs exactly as against the BAN (download, checks, import).

Measures, each written to ``benchmarks/resultats_adresses.json`` with the load (``uptime``)
before and after and the commit:

- ``installation_1``: time to install one département (download + addok import + Redis save
  + exact index), Redis memory, index size on disk;
- ``installation_8``: the same for eight départements (93, 94, 92, 95, 91, 77, 78, 75);
- ``couts``: CPU per query of each kind of row, caches warmed by the same queries (a lower
  bound); ``froid``: the difficult rows with cold caches, 1 and 2 workers, Redis's own CPU;
- ``lot``: ``lookup.localiser_fichier`` (what ``essqpv localiser --fichier`` runs) on a
  100,000-row CSV drawn from the eight départements against the eight-département index, in
  random order, mixed as :data:`MELANGE` says (exact spelling, abbreviated, no postcode,
  typos, street only, unknown street, other département, empty, repeated rows): rows per
  second end to end (reading, geocoding, QPV, writing), and for each path of the geocoder
  (exact index, addok) its number of queries and its time.

Run: ``nice .venv/bin/python benchmarks/adresses.py [--numeros 260000] [--etapes ...]
[--travailleurs 2,1]`` (data under ``$ESSQPV_BENCH_DONNEES``, default ``/tmp/essqpv-bench``).
"""
from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from pyproj import Transformer

ICI = Path(__file__).parent
TRAVAIL = Path(os.environ.get("ESSQPV_BENCH_DONNEES", "/tmp/essqpv-bench")) / "adresses"
RESULTATS = ICI / "resultats_adresses.json"
HUIT = ["93", "94", "92", "95", "91", "77", "78", "75"]
TYPES = (["Rue"] * 50 + ["Avenue"] * 12 + ["Chemin"] * 10 + ["Allée"] * 8 + ["Impasse"] * 8
         + ["Place"] * 4 + ["Boulevard"] * 4 + ["Route"] * 4)
PARTICULES = ["de la", "du", "des", "de l'", "", "", "Saint-", "du Général"]


def _vocabulaire() -> list[str]:
    from essqpv import reference
    mots = set()
    for nom in reference.communes()["nom_commune"].to_list():
        for m in nom.replace("-", " ").replace("'", " ").split():
            if len(m) > 3 and m[0].isupper():
                mots.add(m)
    return sorted(mots)


def departement_synthetique(code: str, numeros: int, graine: int = 19) -> Path:
    """Write ``adresses-addok-<code>.ndjson.gz`` (BAN addok schema), once."""
    from essqpv import reference
    TRAVAIL.mkdir(parents=True, exist_ok=True)
    chemin = TRAVAIL / f"n{numeros}" / f"adresses-addok-{code}.ndjson.gz"
    if chemin.exists():
        return chemin
    chemin.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(graine + int(code[:2]))
    communes = reference.communes().filter(
        (reference.communes()["code_departement"] == code)
        & (reference.communes()["type"] == "commune-actuelle")).to_dicts()
    vers_l93 = Transformer.from_crs(4326, 2154, always_xy=True)
    mots = _vocabulaire()
    nom_dep = communes[0]["nom_departement"]
    contexte = f"{code}, {nom_dep}, {communes[0]['nom_region']}"
    poids = np.array([math.sqrt(max(int(c["population"] or 1), 1)) for c in communes])
    n_voies = max(1, numeros // 16)
    par_commune = rng.multinomial(n_voies, poids / poids.sum())
    # communes placed on a grid around the Paris region's latitude: only the sizes matter
    lon0, lat0 = 2.0 + (int(code[:2]) % 10) * 0.3, 48.5 + (int(code[:2]) % 7) * 0.1
    ecrits = 0
    tmp = chemin.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as f:
        for c, nv in zip(communes, par_commune):
            clon, clat = lon0 + rng.uniform(0, 0.5), lat0 + rng.uniform(0, 0.35)
            cp = c["code_commune"][:2] + f"{rng.integers(0, 1000):03d}"
            pop = int(c["population"] or 0)
            x, y = vers_l93.transform(clon, clat)
            f.write(json.dumps({"id": c["code_commune"], "type": "municipality",
                                "name": c["nom_commune"], "postcode": [cp],
                                "citycode": c["code_commune"], "lon": round(clon, 6),
                                "lat": round(clat, 6), "x": round(x, 2), "y": round(y, 2),
                                "population": pop, "city": c["nom_commune"],
                                "context": contexte,
                                "importance": round(math.log(1 + pop / 3) / 20, 5)},
                               ensure_ascii=False) + "\n")
            vus = set()
            for k in range(nv):
                while True:
                    t = TYPES[rng.integers(len(TYPES))]
                    p = PARTICULES[rng.integers(len(PARTICULES))]
                    w = mots[rng.integers(len(mots))]
                    if rng.random() < 0.3:
                        w += " " + mots[rng.integers(len(mots))]
                    nom = f"{t} {p}{'' if p.endswith(('-', chr(39))) or not p else ' '}{w}"
                    if nom not in vus:
                        vus.add(nom)
                        break
                slon, slat = clon + rng.normal(0, 0.01), clat + rng.normal(0, 0.008)
                angle = rng.uniform(0, math.pi)
                n = max(1, int(rng.gamma(2.0, 8.0)))
                hn = {}
                for j in range(1, n + 1):
                    d = (j - n / 2) * 1.2e-4
                    lo, la = slon + d * math.cos(angle), slat + d * math.sin(angle) * 0.66
                    xx, yy = vers_l93.transform(lo, la)
                    cle = str(j) + (" bis" if rng.random() < 0.03 else "")
                    hn[cle] = {"id": f"{c['code_commune']}_{k:04d}_{j:05d}", "x": round(xx, 2),
                               "y": round(yy, 2), "lon": round(lo, 6), "lat": round(la, 6)}
                ecrits += n
                sx, sy = vers_l93.transform(slon, slat)
                f.write(json.dumps({"id": f"{c['code_commune']}_{k:04d}", "type": "street",
                                    "name": nom, "postcode": cp,
                                    "citycode": [c["code_commune"]], "lon": round(slon, 6),
                                    "lat": round(slat, 6), "x": round(sx, 2), "y": round(sy, 2),
                                    "city": [c["nom_commune"]], "context": contexte,
                                    "importance": round((math.log(1 + pop / 3)
                                                         + math.log(1 + n)) / 20, 5),
                                    "housenumbers": hn}, ensure_ascii=False) + "\n")
    tmp.rename(chemin)
    return chemin


class _Serveur:
    def __init__(self, dossier: Path):
        h = functools.partial(_Silencieux, directory=str(dossier))
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.modele = (f"http://127.0.0.1:{self.srv.server_address[1]}/"
                       "adresses-addok-{departement}.ndjson.gz")

    def fermer(self):
        self.srv.shutdown()


class _Silencieux(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def _installer(deps: list[str], numeros: int, dossier: Path) -> dict:
    from essqpv.geocodage import installer
    fichiers = [departement_synthetique(d, numeros) for d in deps]
    srv = _Serveur(fichiers[0].parent)
    try:
        if dossier.exists():
            import shutil
            shutil.rmtree(dossier)
        t = time.perf_counter()
        r = installer(deps, dossier, url=srv.modele, remplacer=True)
        duree = time.perf_counter() - t
    finally:
        srv.fermer()
    return {"departements": deps, "numeros": sum(d["documents"]["numeros"]
                                                 for d in r["departements"]),
            "voies": sum(d["documents"]["street"] for d in r["departements"]),
            "octets_telecharges": sum(d["taille_fichier"] for d in r["departements"]),
            "duree_totale_s": round(duree, 1), "duree_import_s": r["duree_s"],
            "duree_import_addok_s": r["duree_import_addok_s"],
            "duree_index_exact_s": r["duree_index_exact_s"],
            "index_exact_mio": round((dossier / "index" / "exactes.db").stat().st_size
                                     / 2**20, 1),
            "memoire_redis_octets": r["memoire_redis_octets"],
            "memoire_redis_mio": round(r["memoire_redis_octets"] / 2**20, 1),
            "index_disque_mio": round(r["taille_octets"] / 2**20, 1)}


#: the mix of the 100,000-row file (shares of rows, in random order)
MELANGE = {
    "exacte": 0.55,          # as the BAN writes it (case changed on a third of them)
    "abregee": 0.10,         # « av. », « bd », « St- », no accents, a comma after the number
    "sans_code_postal": 0.08,
    "faute_de_frappe": 0.10,  # two letters swapped in the street name
    "sans_numero": 0.05,     # the street only
    "voie_inconnue": 0.05,   # a street that the commune does not have
    "autre_departement": 0.02,
    "vide": 0.02,
    "doublon": 0.03,         # a row repeating an earlier row of the file (members of a family)
}
_ABREVIATIONS = [("Avenue ", "av. "), ("Boulevard ", "bd "), ("Allée ", "all. "),
                 ("Chemin ", "ch. "), ("Impasse ", "imp. "), ("Place ", "pl. "),
                 ("Route ", "rte "), ("Saint-", "St-"), ("Général", "Gal")]


def _fichier_adresses(codes: list[str], numeros: int, lignes: int, graine: int = 7) -> Path:
    """A CSV of addresses drawn from the synthetic départements ``codes``, mixed as
    :data:`MELANGE` says; the kind of every row is written in column ``genre``."""
    from unidecode import unidecode
    chemin = TRAVAIL / f"n{numeros}" / f"adresses_{'-'.join(codes)}_{lignes}.csv"
    if chemin.exists():
        return chemin
    rng = np.random.default_rng(graine)
    voies = []
    for code in codes:
        with gzip.open(departement_synthetique(code, numeros), "rt", encoding="utf-8") as f:
            for ligne in f:
                d = json.loads(ligne)
                if d["type"] == "street":
                    voies.append((d["name"], d["postcode"], d["city"][0],
                                  list(d["housenumbers"])))
    mots = _vocabulaire()
    genres = list(MELANGE)
    tirages = rng.choice(len(genres), size=lignes, p=np.array(list(MELANGE.values())))
    ecrites: list[str] = []
    with open(chemin, "w", encoding="utf-8") as f:
        f.write("id;genre;adresse\n")
        for i, g in enumerate(tirages):
            genre = genres[g]
            nom, cp, ville, numeros_voie = voies[rng.integers(len(voies))]
            num = numeros_voie[rng.integers(len(numeros_voie))]
            if genre == "doublon" and ecrites:
                a = ecrites[rng.integers(len(ecrites))]
            elif genre == "exacte":
                a = f"{num} {nom} {cp} {ville}"
                a = [a, a.upper(), a.lower()][rng.integers(3)]
            elif genre == "abregee":
                for long, court in _ABREVIATIONS:
                    nom = nom.replace(long, court)
                a = unidecode(f"{num}, {nom} {cp} {ville}")
            elif genre == "sans_code_postal":
                a = f"{num} {nom} {ville}"
            elif genre == "faute_de_frappe":
                j = int(rng.integers(len(nom) - 2)) + 1
                a = f"{num} {nom[:j]}{nom[j + 1]}{nom[j]}{nom[j + 2:]} {cp} {ville}"
            elif genre == "sans_numero":
                a = f"{nom} {cp} {ville}"
            elif genre == "voie_inconnue":
                a = f"{num} Rue {mots[rng.integers(len(mots))]} {cp} {ville}"
            elif genre == "autre_departement":
                a = f"{num} {nom} 13001 Marseille"
            else:
                a = ""
            if genre == "doublon" and not ecrites:
                genre, a = "vide", ""
            ecrites.append(a)
            f.write(f"{i};{genre};{a}\n")
    return chemin


def _lot(codes: list[str], numeros: int, lignes: int, travailleurs: int, dossier: Path) -> dict:
    """One run of ``localiser_fichier`` in a child process: rows/s end to end, and the time
    spent in each path of the geocoder (exact index, addok) with its number of queries."""
    entree = _fichier_adresses(codes, numeros, lignes)
    code_py = (
        "import json,resource,sys,time\n"
        "from essqpv import lookup\n"
        "from essqpv.geocodage import exactes, geocodeur\n"
        "temps={'exacte':[0.0,0]}\n"
        "def chrono(nom, f):\n"
        "    def g(self, requetes, *a, **k):\n"
        "        t=time.perf_counter(); r=f(self, requetes, *a, **k)\n"
        "        temps[nom][0]+=time.perf_counter()-t; temps[nom][1]+=len(requetes); return r\n"
        "    return g\n"
        "exactes.IndexExact.chercher=chrono('exacte', exactes.IndexExact.chercher)\n"
        "t=time.perf_counter()\n"
        f"r=lookup.localiser_fichier({str(entree)!r}, {str(entree.with_name('sortie.csv'))!r},"
        f" geocodeur={str(dossier)!r})\n"
        "d=time.perf_counter()-t\n"
        "u=[resource.getrusage(q) for q in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]\n"
        "cpu=sum(x.ru_utime+x.ru_stime for x in u)\n"
        "print(json.dumps({'duree_s': d, 'par_statut': r['par_statut'],"
        " 'lignes': r['lignes'], 'temps': temps, 'cpu_s': cpu,"
        " 'cpu_principal_s': u[0].ru_utime+u[0].ru_stime,"
        " 'cpu_enfants_s': u[1].ru_utime+u[1].ru_stime,"
        " 'pic_memoire_kio': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n")
    t = time.perf_counter()
    env = {**os.environ, "ESSQPV_GEOCODEUR_PROCESSUS": str(travailleurs)}
    charge_avant = _charge()
    # at the caller's priority: a timed run is at normal priority (docs: bench lock)
    p = subprocess.run([sys.executable, "-c", code_py], capture_output=True, text=True,
                       env=env)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    r = json.loads(p.stdout.strip().splitlines()[-1])
    import polars as pl
    sortie = pl.read_csv(entree.with_name("sortie.csv"), separator=";", infer_schema=False)
    par_methode = {str(k): v for k, v in sortie["methode_ban"].value_counts().iter_rows()}
    # distinct queries per path (identical rows are asked once)
    uniques = {str(k): v for k, v in sortie.filter(pl.col("methode_ban").is_not_null())
               .unique("adresse")["methode_ban"].value_counts().iter_rows()}
    par_genre = {}
    for genre, statut, n in sortie.group_by(["genre", "statut"]).len().sort(
            ["genre", "statut"]).iter_rows():
        par_genre.setdefault(genre, {})[statut] = n
    # the exact lookups run in the main process while the workers run addok (overlapped):
    # their time is the main process's, not a share of the wall clock
    chemins = {"exacte": {"requetes": int(r["temps"]["exacte"][1]),
                          "duree_s": round(r["temps"]["exacte"][0], 2)},
               "requetes_uniques_par_chemin": uniques}
    return {"lignes": r["lignes"], "departements_tires": codes, "melange": MELANGE,
            "travailleurs": travailleurs, "duree_s": round(r["duree_s"], 2),
            "lignes_par_s": round(r["lignes"] / r["duree_s"]),
            "duree_processus_s": round(time.perf_counter() - t, 2),
            # CPU of essqpv, its addok workers and its Redis (all children, waited for):
            # rows per second of CPU x 2 is what two free cores would do at best
            "cpu_s": round(r["cpu_s"], 1), "cpu_principal_s": round(r["cpu_principal_s"], 1),
            "cpu_travailleurs_et_redis_s": round(r["cpu_enfants_s"], 1),
            "lignes_par_s_cpu_2_coeurs": round(2 * r["lignes"] / r["cpu_s"]),
            "chemins": chemins, "lignes_par_methode": par_methode,
            "par_statut": r["par_statut"], "statut_par_genre": par_genre,
            "pic_memoire_processus_mio": round(r["pic_memoire_kio"] / 1024),
            "charge_avant": charge_avant, "charge_apres": _charge()}


def _couts(codes: list[str], numeros: int, lignes: int, dossier: Path, n: int = 200) -> dict:
    """CPU per query of each kind of row of the 100,000-row file (its first ``n`` rows of
    that kind), through the geocoder as ``localiser`` calls it (exact index, then addok),
    and through addok alone with addok's own n-gram scorer and with essqpv's (same scores):
    load-independent costs, from which the rate of the stated mix on two free cores
    follows."""
    code_py = f"""
import csv, json, time
from addok.config import config
from addok.helpers import results as R
from essqpv.geocodage import Geocodeur, _addok, _scores
par = {{}}
with open({str(_fichier_adresses(codes, numeros, lignes))!r}, encoding="utf-8") as f:
    for i, genre, a in csv.reader(f, delimiter=";"):
        if i != "id" and a and len(par.setdefault(genre, [])) < {n}:
            par[genre].append(a)
sortie = {{}}
with Geocodeur({str(dossier)!r}, travailleurs=1) as g:
    g.rechercher("1 rue de la paix")
    k = config.SEARCH_RESULT_PROCESSORS.index(_scores.score_by_ngram_distance)
    for genre, qs in sorted(par.items()):
        for q in qs:
            _addok.rechercher(q, limite=2)  # warm caches, as in a long file
        c = time.process_time()
        r = g.geocoder(qs, limite=2, travailleurs=1)
        d = {{"requetes": len(qs), "chemin_exact": sum(1 for x in r if x and
                                                     x[0]["methode"] == "exacte"),
             "cpu_ms_geocodeur": (time.process_time() - c) / len(qs) * 1000}}
        for nom, f in (("cpu_ms_addok_score_addok", R.score_by_ngram_distance),
                       ("cpu_ms_addok_score_essqpv", _scores.score_by_ngram_distance)):
            config.SEARCH_RESULT_PROCESSORS[k] = f
            c = time.process_time()
            for q in qs:
                _addok.rechercher(q, limite=2)
            d[nom] = (time.process_time() - c) / len(qs) * 1000
        config.SEARCH_RESULT_PROCESSORS[k] = _scores.score_by_ngram_distance
        sortie[genre] = {{x: round(v, 3) if isinstance(v, float) else v for x, v in d.items()}}
print(json.dumps(sortie))
"""
    charge = _charge()
    p = subprocess.run(["nice", sys.executable, "-c", code_py], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    par_genre = json.loads(p.stdout.strip().splitlines()[-1])
    # the stated mix on two free cores: CPU per row (Redis's own CPU not counted: it is
    # another process, ~10 % of addok's), halved, plus nothing for the rest of the work
    cpu_ligne = sum(MELANGE[g] * v["cpu_ms_geocodeur"] for g, v in par_genre.items()
                    if g in MELANGE and g != "doublon") / (1 - MELANGE["doublon"])
    return {"par_genre": par_genre, "requetes_par_genre": n,
            "cpu_ms_par_ligne_du_melange": round(cpu_ligne, 3),
            "lignes_par_s_2_coeurs_libres_geocodage_seul": round(2000 / cpu_ligne),
            "charge_avant": charge, "charge_apres": _charge()}


def _froid(codes: list[str], numeros: int, lignes: int, dossier: Path, n: int = 1500,
           travailleurs: tuple[int, ...] = (1, 2)) -> dict:
    """The difficult rows (typos and unknown streets, the first ``n`` of the 100,000-row
    file, in its order) through ``Geocodeur.geocoder`` with caches **cold**, as in a real
    file: CPU of this process, of the addok workers and of Redis itself (read in
    ``/proc`` before it stops), for 1 and 2 workers."""
    code_py = f"""
import csv, json, os, resource, sys, time
from essqpv.geocodage import Geocodeur
def main():
    with open({str(_fichier_adresses(codes, numeros, lignes))!r}, encoding="utf-8") as f:
        qs = [a for i, g, a in csv.reader(f, delimiter=";")
              if g in ("faute_de_frappe", "voie_inconnue")][:{n}]
    t = int(sys.argv[1])
    tic = os.sysconf("SC_CLK_TCK")
    g = Geocodeur({str(dossier)!r}, travailleurs=t).ouvrir()
    pid = g._serveur._processus.pid
    def redis_cpu():
        x = open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()
        return (int(x[11]) + int(x[12])) / tic
    r0, m0 = redis_cpu(), time.perf_counter()
    g.geocoder(qs, limite=2)
    mur, r1 = time.perf_counter() - m0, redis_cpu()
    g.fermer()
    u = [resource.getrusage(q) for q in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    print(json.dumps({{"requetes": len(qs), "travailleurs": t, "mur_s": round(mur, 1),
                      "cpu_principal_s": round(u[0].ru_utime + u[0].ru_stime, 1),
                      "cpu_redis_s": round(r1 - r0, 1),
                      "cpu_travailleurs_et_demarrages_s": round(
                          u[1].ru_utime + u[1].ru_stime - (r1 - r0), 1)}}))
if __name__ == "__main__":
    main()
"""
    script = TRAVAIL / "froid.py"
    script.write_text(code_py, "utf-8")
    sortie = {"charge_avant": _charge(), "mesures": []}
    for t in travailleurs:
        p = subprocess.run(["nice", sys.executable, str(script), str(t)], capture_output=True,
                           text=True)
        if p.returncode:
            raise SystemExit(p.stderr[-3000:])
        m = json.loads(p.stdout.strip().splitlines()[-1])
        cpu = m["cpu_principal_s"] + m["cpu_travailleurs_et_demarrages_s"]
        m["cpu_ms_par_requete_hors_recherche_redis"] = round(cpu / m["requetes"] * 1000, 1)
        sortie["mesures"].append(m)
    sortie["charge_apres"] = _charge()
    return sortie


def _identite(codes: list[str], numeros: int, lignes: int, dossier: Path, n: int = 3000,
              graine: int = 11) -> dict:
    """``n`` distinct queries drawn at random from the 100,000-row file, geocoded as a file
    is (``Geocodeur.geocoder``: exact index, then essqpv's accelerated addok) and by addok
    as published (``_addok.addok_seul``, no exact index): the label, type, point and
    identifier of the two best results must be the same; the score too for the queries
    addok answers (the exact index gives 1 by design, docs/localiser.md)."""
    code_py = f"""
import csv, json, random
from essqpv.geocodage import Geocodeur, _addok
with open({str(_fichier_adresses(codes, numeros, lignes))!r}, encoding="utf-8") as f:
    qs = sorted({{a for i, g, a in csv.reader(f, delimiter=";") if a and g != "genre"}})
random.seed({graine})
qs = random.sample(qs, {n})
g = Geocodeur({str(dossier)!r}, travailleurs=1).ouvrir()
vite = g.geocoder(qs, limite=2)
with _addok.addok_seul():
    ref = [_addok.rechercher(q, limite=2) for q in qs]
g.fermer()
champs = ("label", "type", "lon", "lat", "id")
out = {{"requetes": len(qs), "par_methode": {{}}, "differences": []}}
for q, v, r in zip(qs, vite, ref):
    m = v[0]["methode"] if v else "aucune"
    d = out["par_methode"].setdefault(m, {{"requetes": 0, "identiques": 0, "score_different": 0}})
    d["requetes"] += 1
    if m == "exacte":
        same = bool(r) and all(v[0][k] == r[0][k] for k in champs)
        d["score_different"] += bool(r) and v[0]["score"] != r[0]["score"]
    else:
        same = [[x[k] for k in champs + ("score",)] for x in v] == \
               [[x[k] for k in champs + ("score",)] for x in r]
    d["identiques"] += same
    if not same and len(out["differences"]) < 10:
        out["differences"].append([q, v, r])
print(json.dumps(out, ensure_ascii=False))
"""
    charge = _charge()
    p = subprocess.run(["nice", sys.executable, "-c", code_py], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return {**json.loads(p.stdout.strip().splitlines()[-1]), "charge_avant": charge,
            "charge_apres": _charge()}


def _charge() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _commit() -> str:
    return subprocess.run(["git", "-C", str(ICI), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True).stdout.strip()[:90]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numeros", type=int, default=260_000)
    ap.add_argument("--lignes", type=int, default=100_000)
    ap.add_argument("--etapes", default="installation_1,installation_8,lot")
    ap.add_argument("--travailleurs", default="2,1")
    a = ap.parse_args()
    etapes = a.etapes.split(",")
    res = json.loads(RESULTATS.read_text("utf-8")) if RESULTATS.exists() else {}
    res["machine"] = {"coeurs": os.cpu_count(), "python": platform.python_version(),
                      "redis": subprocess.run(["redis-server", "--version"],
                                              capture_output=True, text=True).stdout.strip(),
                      "note": "machine partagée : charge notée à chaque mesure"}
    res["donnees"] = (f"départements synthétiques au format addok de la BAN, {a.numeros} "
                      "numéros chacun (communes et populations réelles, voies inventées)")
    un, huit = TRAVAIL / "geocodeur-1", TRAVAIL / "geocodeur-8"
    mesures = set()

    def ecrire():
        # what this run measured, over what the file holds now (steps may run apart)
        tout = json.loads(RESULTATS.read_text("utf-8")) if RESULTATS.exists() else {}
        tout.update({k: res[k] for k in mesures | {"machine", "donnees"}})
        tout.pop("lot_serie_precedente", None)  # (measured before the exact index)
        RESULTATS.write_text(json.dumps(tout, ensure_ascii=False, indent=1) + "\n", "utf-8")
    for etape, deps, dossier in (("installation_1", ["93"], un), ("installation_8", HUIT, huit)):
        if etape in etapes:
            c, commit = _charge(), _commit()
            res[etape] = {**_installer(deps, a.numeros, dossier), "charge_avant": c,
                          "charge_apres": _charge(), "commit": commit}
            print(json.dumps(res[etape], ensure_ascii=False), flush=True)
            mesures.add(etape)
            ecrire()
    if "couts" in etapes:
        res["couts"] = {**_couts(HUIT, a.numeros, a.lignes, huit), "commit": _commit()}
        print(json.dumps(res["couts"], ensure_ascii=False), flush=True)
        mesures.add("couts")
        ecrire()
    if "froid" in etapes:
        res["froid"] = {**_froid(HUIT, a.numeros, a.lignes, huit), "commit": _commit()}
        print(json.dumps(res["froid"], ensure_ascii=False), flush=True)
        mesures.add("froid")
        ecrire()
    if "identite" in etapes:
        res["identite"] = {**_identite(HUIT, a.numeros, a.lignes, huit), "commit": _commit()}
        print(json.dumps(res["identite"], ensure_ascii=False), flush=True)
        mesures.add("identite")
        ecrire()
    if "lot" in etapes:
        # drawn from the eight départements, against the eight-département index
        commit = _commit()
        res["lot"] = [{**_lot(HUIT, a.numeros, a.lignes, int(t), huit), "commit": commit}
                      for t in a.travailleurs.split(",")]
        for r in res["lot"]:
            print(json.dumps(r, ensure_ascii=False))
        mesures.add("lot")
        ecrire()


if __name__ == "__main__":
    main()
