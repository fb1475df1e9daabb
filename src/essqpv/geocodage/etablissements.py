"""``essqpv construire``: establishments without usable coordinates, placed by their address.

When an address geocoder is installed (``essqpv geocodeur installer``), the in-scope
establishments that the geolocation file could not place — no coordinates, a point drawn at
random in the commune (quality 33), invalid coordinates or outside their CRS — are geocoded
from their Sirene address. Only a **house number** found with the rules of
:mod:`essqpv.geocodage.localisation` places one (``source_coordonnees = ban``, ``score_ban``);
the others keep their reason. Establishments whose location INSEE withholds
(``non_diffusible``) are left as they are: geocoding them would undo that choice. Without a
geocoder nothing changes.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

__all__ = ["completer_par_adresse", "MOTIFS_GEOCODES"]

MOTIFS_GEOCODES = ("sans_coordonnees", "qualite_xy_33", "coordonnees_invalides",
                   "hors_zone_crs")


def completer_par_adresse(df: pl.DataFrame, couche, tampon_m: int,
                          etape: Callable[[str], None] | None = None,
                          dossier: str | Path | None = None) -> tuple[pl.DataFrame, dict | None]:
    """``df`` (placed establishments) with the geocoded ones placed, and the count for the
    control table (``None`` when no geocoder is installed). Adds ``score_ban``."""
    from essqpv.geocodage.geocodeur import Geocodeur, geocodeur_installe
    from essqpv.geocodage.localisation import localiser_adresses

    df = df.with_columns(pl.lit(None, dtype=pl.Float64).alias("score_ban"))
    if not geocodeur_installe(dossier):
        return df, None
    candidats = df.with_row_index("_rang").filter(
        ~pl.col("localise") & pl.col("motif_non_localise").is_in(MOTIFS_GEOCODES)
        & pl.col("adresse").fill_null("").str.contains(r"\d")
        & ~pl.col("adresse").fill_null("").str.contains("[ND]", literal=True))
    with Geocodeur(dossier) as g:
        info = {"departements_installes": list(g.departements),
                "date_ban": sorted({d["date_ban"] for d in g.etat["departements"]}),
                "candidats": candidats.height}
        if candidats.height:
            if etape:
                etape("Géocodage des adresses (BAN)")
            r = localiser_adresses(candidats["adresse"].to_list(), g, couche=couche,
                                   tampon_m=tampon_m)
        else:
            r = {"statut": []}
    statuts = r["statut"]
    info["par_statut"] = {s: statuts.count(s) for s in dict.fromkeys(statuts)}
    ok = [s == "localise" for s in statuts]
    info["localisees"] = sum(ok)
    if not any(ok):
        return df, info
    rangs = candidats["_rang"].filter(pl.Series(ok)).to_numpy()
    choisis = [i for i, v in enumerate(ok) if v]

    def prendre(cle):
        return [r[cle][i] for i in choisis]

    maj = pl.DataFrame({
        "_rang": rangs,
        "lon": prendre("lon_ban"), "lat": prendre("lat_ban"),
        "qpv": prendre("qpv_code"), "qpv_tampon": prendre(f"qpv_code_{tampon_m}m"),
        "distance_qpv_m": prendre("distance_qpv_m"), "score_ban": prendre("score_ban"),
    }, schema_overrides={"_rang": pl.UInt32, "lon": pl.Float64, "lat": pl.Float64,
                         "qpv": pl.String, "qpv_tampon": pl.String,
                         "distance_qpv_m": pl.Float64, "score_ban": pl.Float64})
    colonnes = ["lon", "lat", "qpv", "qpv_tampon", "distance_qpv_m", "score_ban"]
    out = df.with_row_index("_rang").join(maj, on="_rang", how="left", suffix="_ban")
    place = pl.col("lon_ban").is_not_null()
    out = out.with_columns(
        *[pl.when(place).then(pl.col(f"{c}_ban")).otherwise(pl.col(c)).alias(c)
          for c in colonnes],
        pl.when(place).then(pl.lit("ban")).otherwise(pl.col("source_coordonnees"))
        .alias("source_coordonnees"),
        (pl.col("localise") | place).alias("localise"),
        pl.when(place).then(None).otherwise(pl.col("motif_non_localise"))
        .alias("motif_non_localise"),
    ).drop("_rang", *[f"{c}_ban" for c in colonnes])
    info["en_qpv"] = int(maj["qpv"].is_not_null().sum())
    return out.select(df.columns), info
