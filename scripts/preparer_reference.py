"""Rebuild the embedded geographic reference data of essqpv from ../shared/data.

Run from the project root: ``python scripts/preparer_reference.py [DATA_DIR]``.
Writes, under ``src/essqpv/reference/``:

- ``qpv2015.parquet``: the 1,514 QPV of the official 2015 national file
  (``QP_METROPOLEOUTREMER_WGS84_EPSG4326.shp``), geometry as WKB (EPSG:4326),
  invalid polygons repaired with ``shapely.make_valid`` (flag ``repare``);
- ``qpv2024.parquet``: the 1,584 QPV of the 2024 geography (ANCT, décret n° 2023-1314) from
  the 4-decimal copy ``qpv/2024/QP2024_France_Hexagonale_Outre_Mer_WGS84_arrondi4.geojson``
  (coordinates rounded to ≈ 11 m), polygons made valid with ``shapely.make_valid`` (the
  rounding leaves 586 self-intersections), département / région / EPCI of each QPV derived
  from its INSEE commune codes with the COG (``communes.csv``, ``epci.csv``);
- ``regions_contours.parquet`` / ``departements_contours.parquet``: région and
  département contours with overseas at their true positions, simplified for maps;
- ``transition_qpv.parquet``: the QPV 2024 with no overlapping QPV 2015 and the QPV 2015
  with no overlapping QPV 2024, computed from the two files above by
  ``essqpv.transition.calculer_qpv_nouveaux_et_sortis`` (``--transition`` writes it alone).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import shapely

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "essqpv" / "reference"


def _polygonal(g):
    """Keep only the polygonal part of a repaired geometry."""
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    parts = [p for p in getattr(g, "geoms", []) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts)


def main(data: Path) -> None:
    src = data / "qpv/2015/QP_METROPOLEOUTREMER_WGS84_EPSG4326.shp"
    meta, table = pyogrio.read_arrow(src, encoding="cp1252")
    geom = shapely.from_wkb(table[meta["geometry_name"] or "wkb_geometry"].to_numpy(zero_copy_only=False))
    valid = shapely.is_valid(geom)
    fixed = np.array([g if v else _polygonal(shapely.make_valid(g)) for g, v in zip(geom, valid)])
    pq.write_table(pa.table({
        "code_qp": table["CODE_QP"],
        "nom_qp": table["NOM_QP"],
        "commune_qp": table["COMMUNE_QP"],
        "repare": (~valid).tolist(),
        "geometrie": shapely.to_wkb(fixed).tolist(),
    }), OUT / "qpv2015.parquet", compression="zstd")
    print(f"qpv2015: {len(fixed)} QPV, {int((~valid).sum())} réparés")

    qpv2024(data)

    for name, fname, tol in (("regions", "regions-avec-outre-mer.geojson", 0.005),
                             ("departements", "departements-avec-outre-mer.geojson", 0.003)):
        m, df = pyogrio.read_arrow(data / "geo" / fname)
        raw = shapely.from_wkb(df[m["geometry_name"] or "wkb_geometry"].to_numpy(zero_copy_only=False))
        g = shapely.make_valid(shapely.simplify(raw, tol, preserve_topology=True))
        pq.write_table(pa.table({
            "code": df["code"],
            "nom": df["nom"],
            "geometrie": shapely.to_wkb(shapely.set_precision(g, 0.0001)).tolist(),
        }), OUT / f"{name}_contours.parquet", compression="zstd")
        print(f"{name}: {len(df)} contours")

    transition_qpv()


def transition_qpv() -> None:
    """Write ``transition_qpv.parquet`` from the embedded contours (see the docstring)."""
    from essqpv.transition import calculer_qpv_nouveaux_et_sortis
    t = calculer_qpv_nouveaux_et_sortis()
    t.write_parquet(OUT / "transition_qpv.parquet", compression="zstd")
    print(f"transition_qpv: {t.height} QPV sans équivalent sur l'autre carte")


def qpv2024(data: Path) -> None:
    """Write ``qpv2024.parquet`` (see the module docstring)."""
    import polars as pl
    src = data / "qpv/2024/QP2024_France_Hexagonale_Outre_Mer_WGS84_arrondi4.geojson"
    meta, table = pyogrio.read_arrow(src)
    geom = shapely.from_wkb(table[meta["geometry_name"] or "wkb_geometry"].to_numpy(zero_copy_only=False))
    valid = shapely.is_valid(geom)
    fixed = np.array([g if v else _polygonal(shapely.make_valid(g)) for g, v in zip(geom, valid)])
    com = pl.read_csv(OUT / "communes.csv", infer_schema=False)
    # a code may be listed twice (commune actuelle and déléguée): the current one wins
    com = com.sort(pl.col("type") != "commune-actuelle").unique("code_commune", keep="first")
    cog = {r["code_commune"]: r for r in com.iter_rows(named=True)}
    epci = dict(pl.read_csv(OUT / "epci.csv", infer_schema=False)
                .unique("code_commune", keep="first").select("code_commune", "code_epci").iter_rows())
    codes, deps, regs, epcis, noms_com, communes = [], [], [], [], [], []
    for code, insee in zip(table["code_qp"].to_pylist(), table["insee_com"].to_pylist()):
        liste = [c.strip() for c in insee.split(",") if c.strip()]
        manquants = [c for c in liste if c not in cog]
        if manquants:
            raise SystemExit(f"{code}: commune(s) {manquants} absente(s) du COG")
        d = {cog[c]["code_departement"] for c in liste}
        if len(d) != 1:
            raise SystemExit(f"{code}: plusieurs départements {sorted(d)}")
        codes.append(code)
        deps.append(d.pop())
        regs.append(cog[liste[0]]["code_region"])
        communes.append("; ".join(liste))
        noms_com.append(", ".join(cog[c]["nom_commune"] for c in liste))
        epcis.append("; ".join(dict.fromkeys(epci[c] for c in liste if c in epci)))
    pq.write_table(pa.table({
        "code_qp": codes, "nom_qp": table["lib_qp"], "communes": communes,
        "noms_communes": noms_com, "departement": deps, "region": regs, "epci": epcis,
        "repare": (~valid).tolist(), "geometrie": shapely.to_wkb(fixed).tolist(),
    }), OUT / "qpv2024.parquet", compression="zstd", compression_level=19)
    print(f"qpv2024: {len(fixed)} QPV, {int((~valid).sum())} réparés")


if __name__ == "__main__":
    if sys.argv[1:] == ["--transition"]:
        transition_qpv()
    else:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
