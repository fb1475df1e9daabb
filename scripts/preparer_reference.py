"""Rebuild the embedded geographic reference data of essqpv from ../shared/data.

Run from the project root: ``python scripts/preparer_reference.py [DATA_DIR]``.
Writes, under ``src/essqpv/reference/``:

- ``qpv2015.parquet``: the 1,514 QPV of the official 2015 national file
  (``QP_METROPOLEOUTREMER_WGS84_EPSG4326.shp``), geometry as WKB (EPSG:4326),
  invalid polygons repaired with ``shapely.make_valid`` (flag ``repare``);
- ``regions_contours.parquet`` / ``departements_contours.parquet``: région and
  département contours with overseas at their true positions, simplified for maps.
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


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
