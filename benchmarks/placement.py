"""Benchmark of essqpv.placement on the embedded 2015 contours (1,514 QPV).

Run: ``.venv/bin/python benchmarks/placement.py [--points 2000000] [--etablissements 3000000]``

Points: half drawn uniformly in the bounding boxes of random QPV widened by 0.03° (about
3 km: the dense urban fabric around the quartiers), half uniformly over metropolitan France
(-4.5…7.5°E, 43…50.5°N); fixed seed. Targets (issue 7): 2 M points strict ≤ 2 s.
"""
from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np
import polars as pl
import shapely

from essqpv.placement import IndexQPV, localiser_etablissements, vers_wgs84
from essqpv.sources.qpv import lire_qpv


def points(n: int, couche, graine: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(graine)
    boites = shapely.bounds(couche.geometries)
    k = n // 2
    b = boites[rng.integers(0, len(boites), k)]
    x1 = rng.uniform(b[:, 0] - 0.03, b[:, 2] + 0.03)
    y1 = rng.uniform(b[:, 1] - 0.03, b[:, 3] + 0.03)
    x2 = rng.uniform(-4.5, 7.5, n - k)
    y2 = rng.uniform(43.0, 50.5, n - k)
    return np.concatenate([x1, x2]), np.concatenate([y1, y2])


def chrono(f, *args, repetitions: int = 3):
    meilleur, res = float("inf"), None
    for _ in range(repetitions):
        t = time.perf_counter()
        res = f(*args)
        meilleur = min(meilleur, time.perf_counter() - t)
    return meilleur, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=2_000_000)
    ap.add_argument("--etablissements", type=int, default=3_000_000)
    a = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}")
    t = time.perf_counter()
    couche = lire_qpv()
    index = IndexQPV(couche)
    print(f"chargement contours intégrés + index : {time.perf_counter() - t:.2f} s")
    lon, lat = points(a.points, couche)
    d, codes = chrono(index.strict, lon, lat)
    n_in = int(np.count_nonzero(codes != None))  # noqa: E711
    print(f"strict, {a.points:,} points : {d:.2f} s ({n_in:,} en QPV, {index.multiples} sur "
          "plusieurs QPV)")
    d, (c, dist) = chrono(index.tampon, lon, lat, 300)
    print(f"tampon 300 m, {a.points:,} points : {d:.2f} s "
          f"({int(np.count_nonzero(c != None)):,} dans le tampon)")  # noqa: E711

    # establishments: a third each geolocation (EPSG:2154), Etalab (WGS84), stock (Lambert)
    n = a.etablissements
    lon, lat = points(n, couche, graine=1)
    x, y, _ = vers_wgs84(lon, lat, 4326)
    import pyproj
    tr = pyproj.Transformer.from_crs(4326, 2154, always_xy=True)
    lx, ly = tr.transform(lon, lat)
    tiers = np.arange(n) % 3
    txt = lambda v: pl.Series(np.round(v, 6)).cast(pl.String)  # noqa: E731
    vide = pl.lit(None, dtype=pl.String)
    df = pl.DataFrame({"siret": pl.Series(np.arange(n)).cast(pl.String),
                       "departement": pl.Series(["93"] * n),
                       "geo_present": pl.Series(tiers == 0),
                       "gx": txt(lx), "gy": txt(ly), "ex": txt(lon), "ey": txt(lat)})
    t0 = pl.Series(tiers)
    df = df.select(
        "siret", "departement", "geo_present",
        pl.when(t0 == 0).then("gx").otherwise(vide).alias("geo_x"),
        pl.when(t0 == 0).then("gy").otherwise(vide).alias("geo_y"),
        pl.when(t0 == 0).then(pl.lit("2154")).otherwise(vide).alias("geo_epsg"),
        pl.when(t0 == 0).then(pl.lit("11")).otherwise(vide).alias("geo_qualite"),
        pl.when(t0 == 1).then("ex").otherwise(vide).alias("etalab_lon"),
        pl.when(t0 == 1).then("ey").otherwise(vide).alias("etalab_lat"),
        pl.when(t0 == 2).then("gx").otherwise(vide).alias("lambert_x"),
        pl.when(t0 == 2).then("gy").otherwise(vide).alias("lambert_y"),
    )
    d, res = chrono(localiser_etablissements, df, index, 300, repetitions=1)
    print(f"localiser_etablissements, {n:,} lignes (1/3 géolocalisation EPSG:2154, 1/3 Etalab, "
          f"1/3 Lambert du stock) : {d:.2f} s — localisés {int(res['localise'].sum()):,}, "
          f"en QPV {res['qpv'].is_not_null().sum():,}, "
          f"tampon {res['qpv_tampon'].is_not_null().sum():,}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"pic mémoire (RSS) : {rss:.2f} GiB")


if __name__ == "__main__":
    main()
