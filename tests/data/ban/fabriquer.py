"""Build the BAN-format test extract (``adresses-addok-93.ndjson.gz``, ``-94``).

The files follow the schema of the BAN's per-département addok export (one JSON document a
line: ``municipality``, ``street`` with its ``housenumbers``, ``locality``; fields ``id``,
``type``, ``name``, ``postcode``, ``citycode``, ``lon``, ``lat``, ``x``, ``y`` (Lambert-93),
``city``, ``context``, ``importance``, ``population`` for communes). The communes, their INSEE
codes, postcodes and populations are real; the street names are those of the synthetic Sirene
register (``essqpv.synthese``); the streets are placed around the real QPV contours of the
embedded 2015 geography (inside a QPV, and far from any), so the addresses are *invented*.

Run from the repository root: ``python tests/data/ban/fabriquer.py`` (deterministic).
"""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
from pyproj import Transformer
from shapely import STRtree
from shapely.geometry import Point

from essqpv.sources.qpv import lire_qpv
from essqpv.synthese import _VOIES

ICI = Path(__file__).parent
VERS_L93 = Transformer.from_crs(4326, 2154, always_xy=True)

COMMUNES = {
    # code: (name, postcode, population (RP 2021), centre lon/lat, département, region)
    "93066": ("Saint-Denis", "93200", 113942, (2.3590, 48.9362), "Seine-Saint-Denis"),
    "93001": ("Aubervilliers", "93300", 88948, (2.3822, 48.9146), "Seine-Saint-Denis"),
    "94041": ("Ivry-sur-Seine", "94200", 64526, (2.3850, 48.8130), "Val-de-Marne"),
    "94081": ("Vitry-sur-Seine", "94400", 95510, (2.3925, 48.7875), "Val-de-Marne"),
}
TYPES = {"RUE": "Rue", "AV": "Avenue", "BD": "Boulevard", "PL": "Place", "ALL": "Allée",
         "IMP": "Impasse", "CHE": "Chemin", "QUAI": "Quai"}
PETITS = {"de", "la", "du", "des", "l", "le", "les"}


def joli(type_voie: str, libelle: str) -> str:
    mots = libelle.replace(",", "").lower().split()
    sortie = []
    for i, m in enumerate(mots):
        sortie.append(m if m in PETITS else m.capitalize())
    texte = " ".join(sortie).replace("l ", "l'").replace("Ecoles", "Écoles").replace(
        "Eglise", "Église").replace("Erables", "Érables").replace("Cedres", "Cèdres").replace(
        "Chenes", "Chênes").replace("Liberte", "Liberté").replace("Marche", "Marché")
    return f"{TYPES[type_voie]} {texte}"


def importance(population: int, numeros: int) -> float:
    # The BAN exporter's formula.
    return round((math.log(1 + population / 3) + math.log(1 + numeros)) / 20, 5)


def xy(lon: float, lat: float) -> tuple[float, float]:
    x, y = VERS_L93.transform(lon, lat)
    return round(x, 2), round(y, 2)


def main() -> None:
    qpv = lire_qpv()
    arbre = STRtree(qpv.geometries)
    rng = np.random.default_rng(19)
    noms = [v for v in _VOIES if "," not in v and v != "DES SYNTHESES"]
    types = list(TYPES)
    fichiers: dict[str, list[dict]] = {"93": [], "94": []}
    for code, (nom, cp, pop, (clon, clat), dep_nom) in COMMUNES.items():
        dep = code[:2]
        contexte = f"{dep}, {dep_nom}, Île-de-France"
        docs = fichiers[dep]
        docs.append({"id": code, "type": "municipality", "name": nom, "postcode": [cp],
                     "citycode": code, "lon": clon, "lat": clat, **dict(zip("xy", xy(clon,
                     clat))), "population": pop, "city": nom, "context": contexte,
                     "importance": importance(pop, 0)})
        dans = [i for i, c in enumerate(qpv.communes)
                if nom in [s.strip() for s in c.split(",")] and qpv.departements[i] == dep]
        # 6 streets through QPV of the commune, 6 far from any QPV
        rues = []
        for k in range(12):
            if k < 6 and dans:
                g = qpv.geometries[dans[k % len(dans)]]
                if k < len(dans):
                    p = g.representative_point()
                    lon0, lat0 = p.x, p.y
                else:  # another point drawn inside the same QPV
                    w, s_, e, n_ = g.bounds
                    while True:
                        lon0, lat0 = rng.uniform(w, e), rng.uniform(s_, n_)
                        if g.contains(Point(lon0, lat0)):
                            break
            else:
                for _ in range(2000):
                    lon0 = clon + rng.uniform(-0.03, 0.03)
                    lat0 = clat + rng.uniform(-0.02, 0.02)
                    if not len(arbre.query(Point(lon0, lat0), predicate="dwithin",
                                           distance=0.012)):  # ~ 900 m from every QPV
                        break
            rues.append((lon0, lat0))
        for k, (lon0, lat0) in enumerate(rues):
            libelle = noms[(k * 5 + int(code[-2:])) % len(noms)]
            if k == 0:
                libelle = "DE LA PAIX"        # homonymous street in every commune
            nom_voie = joli(types[k % len(types)] if k else "RUE", libelle)
            angle = rng.uniform(0, math.pi)
            n = int(rng.integers(8, 16))
            hn = {}
            for j in range(1, n + 1):
                # numbers along a ~120 m segment (a step of 1e-5 ° ≈ 1 m)
                t = (j - n / 2) * 8e-5
                lon, lat = lon0 + t * math.cos(angle), lat0 + t * math.sin(angle) * 0.66
                cle = str(j) if j != 3 else "3 bis"
                fantoir = f"{1000 + k * 37:04d}"
                hn[cle] = {"id": f"{code}_{fantoir}_{j:05d}" + ("_bis" if j == 3 else ""),
                           **dict(zip("xy", xy(lon, lat))), "lon": round(lon, 6),
                           "lat": round(lat, 6)}
            fantoir = f"{1000 + k * 37:04d}"
            docs.append({"id": f"{code}_{fantoir}", "type": "street", "name": nom_voie,
                         "postcode": cp, "citycode": [code], "lon": round(lon0, 6),
                         "lat": round(lat0, 6), **dict(zip("xy", xy(lon0, lat0))),
                         "city": [nom], "context": contexte,
                         "importance": importance(pop, len(hn)), "housenumbers": hn})
        # one lieu-dit (locality) without numbers
        lon0, lat0 = rues[-1]
        docs.append({"id": f"{code}_B001", "type": "locality", "name": "Les Quatre Chemins",
                     "postcode": cp, "citycode": [code], "lon": round(lon0 + 0.002, 6),
                     "lat": round(lat0 + 0.001, 6), **dict(zip("xy", xy(lon0 + 0.002,
                     lat0 + 0.001))), "city": [nom], "context": contexte,
                     "importance": importance(pop, 1)})
    for dep, docs in fichiers.items():
        chemin = ICI / f"adresses-addok-{dep}.ndjson.gz"
        # mtime=0: the same bytes at every run
        with open(chemin, "wb") as brut, gzip.GzipFile(fileobj=brut, mode="wb",
                                                       mtime=0) as f:
            for d in docs:
                f.write((json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n"
                         ).encode("utf-8"))
        n = sum(len(d.get("housenumbers", {})) for d in docs)
        print(f"{chemin.name}: {len(docs)} documents, {n} numéros")


if __name__ == "__main__":
    main()
