"""The ESS in the QPV over time: series at 1 January of every year since 2008, from INSEE's
historical stocks (METHODOLOGY 10).

:func:`construire_historique` reads ``StockEtablissementHistorique`` and
``StockUniteLegaleHistorique`` (:mod:`essqpv.sources.historique`), classifies every period
with the rules of the current vintage (family from the legal category, ESS flag and name of
the legal unit's period; exclusion, sector and employer character from the establishment's
period), and counts, at each date, the establishments whose period and whose legal unit's
period covering that date are in scope: active (``A``), of an ESS family, activity not
excluded. The position of an establishment is fixed (a move makes a new siret): it is the
one of the vintage of the base (commune, coordinates, QPV), for both QPV geographies (2015
and 2024), each held fixed over the whole series. An establishment the base does not place
(closed or out of the ESS at the vintage) is counted in France entière as ``non localisé``.

The points are 1 January 2008 … 1 January of the vintage's year, then the vintage itself
(``AAAA-MM``, the current periods: the picture of the stock). Creations (the start of the
establishment's first active period) and closures (the start of a closed period following an
active one) of in-scope establishments are counted per calendar year.

What is stored in the base (tables ``historique_stock``, ``historique_flux``,
``historique_meta``, and ``historique_communes`` for the levels above the commune) is a cube
by commune × QPV × family × sector × employer × placed; the series of a territory are sums
over it (:func:`serie`), protected before publication (:func:`evolution`).
Headcounts are not historised by INSEE: there is no employment series.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from essqpv import __version__, perimeter, reference
from essqpv.config import LICENCE_DONNEES
from essqpv.errors import BaseInvalide, FichierInvalide, ParametreInvalide
from essqpv.sources import historique as H

__all__ = ["construire_historique", "serie", "points_de", "GEOGRAPHIES", "ANNEE_DEBUT",
           "AVERTISSEMENT_EFFECTIFS", "disponible"]

ANNEE_DEBUT = 2008
GEOGRAPHIES = ("2024", "2015")
NON_CLASSE = "Non classé"
REGLE_SECRET = (
    "Les séries comptent des établissements, publics dans Sirene : le secret statistique, qui "
    "protège les effectifs salariés, n'y masque aucune case (méthodologie, section 7).")
AVERTISSEMENT_EFFECTIFS = (
    "Les effectifs salariés ne sont pas historisés par l'Insee : les séries comptent des "
    "établissements ; les salariés ne sont donnés que pour le millésime courant.")
LOIN = dt.date(9999, 12, 31)
#: Largest relative gap between the series' last point and the vintage accepted without
#: ``forcer`` (files of another month than the stock differ a little, not more).
ECART_MAX = 0.05

SCHEMA = """
CREATE TABLE IF NOT EXISTS historique_meta (
    millesime VARCHAR, geographies JSON, points JSON, date_construction TIMESTAMP,
    version VARCHAR, synthetique BOOLEAN, sources JSON, controle JSON, avertissements JSON);
CREATE TABLE IF NOT EXISTS historique_stock (
    geographie VARCHAR, ordre INTEGER, commune VARCHAR, qpv VARCHAR, localise BOOLEAN,
    employeur BOOLEAN, famille VARCHAR, secteur VARCHAR, n BIGINT);
CREATE TABLE IF NOT EXISTS historique_flux (
    geographie VARCHAR, annee INTEGER, type VARCHAR, commune VARCHAR, qpv VARCHAR,
    localise BOOLEAN, employeur BOOLEAN, famille VARCHAR, secteur VARCHAR, n BIGINT);
CREATE TABLE IF NOT EXISTS historique_communes (
    commune VARCHAR, departement VARCHAR, region VARCHAR, epci VARCHAR);
"""
# The cube's cells: the territory levels above the commune are a function of it (the
# current COG commune), kept once in ``historique_communes``.
DIMENSIONS = ["commune", "qpv", "localise", "employeur", "famille", "secteur"]
_TEXTES = ["commune", "qpv", "famille", "secteur"]


# --------------------------------------------------------------------------- points

def points_de(millesime: str) -> list[tuple[str, dt.date]]:
    """(label, date) of the series' points: 1 January 2008 … 1 January of the vintage's
    year, then the vintage (its current periods; date: the vintage's first day)."""
    annee, mois = int(millesime[:4]), int(millesime[5:7])
    points = [(f"{a}-01-01", dt.date(a, 1, 1)) for a in range(ANNEE_DEBUT, annee + 1)]
    return points + [(millesime, dt.date(annee, mois, 1))]


# --------------------------------------------------------------------------- NAF rév. 1

def correspondance_naf(chemin: str | Path | None) -> dict[str, str]:
    """NAF rév. 1 → rév. 2 codes, one-to-one only.

    ``chemin``: a CSV table of passage with two columns, NAF rév. 1 code then NAF rév. 2
    code (INSEE's published table, one row per pair; codes with or without the dot). A rév.
    1 code kept is one whose rows all give the same rév. 2 code and whose rév. 2 code comes
    from no other rév. 1 code; every other rév. 1 period is ``Non classé``. ``None``: the
    table shipped in ``reference/naf_rev1_rev2.csv``.
    """
    if chemin is None:
        chemin = reference.chemin("naf_rev1_rev2.csv")
    chemin = Path(chemin)
    if not chemin.exists():
        raise FichierInvalide(f"Fichier introuvable : {chemin} (table de passage NAF).")
    table = pl.read_csv(chemin, infer_schema=False, comment_prefix="#")
    if table.width < 2:
        raise FichierInvalide(f"{chemin.name} : deux colonnes attendues (code NAF rév. 1, "
                              "code NAF rév. 2), trouvé : {table.width}.")
    a, b = table.columns[:2]

    def pointer(col: str) -> pl.Expr:  # 853K or 85.3K -> 85.3K ; 8899B -> 88.99B
        c = pl.col(col).str.strip_chars().str.to_uppercase().str.replace_all(r"\.", "")
        return pl.when(c.str.len_chars() >= 3).then(
            c.str.slice(0, 2) + pl.lit(".") + c.str.slice(2)).otherwise(c)
    t = table.select(pointer(a).alias("r1"), pointer(b).alias("r2")).drop_nulls().unique()
    uniques = t.filter((pl.col("r1").count().over("r1") == 1)
                       & (pl.col("r2").count().over("r2") == 1))
    return dict(uniques.iter_rows())


# --------------------------------------------------------------------------- classification

def _unites_legales_ess(ul: pl.DataFrame) -> pl.DataFrame:
    """ESS periods of the legal units (siren, debut, fin, famille)."""
    # (lazily, filtered and selected in the same query: only the ESS periods' four columns
    # are materialised, not the family's reason nor the texts cast for the rules)
    return perimeter.familles_unites_legales(
        ul.lazy().with_columns(pl.lit(None, dtype=pl.String).alias("sigle"),
                               *[pl.col(c).cast(pl.String) for c in ("etat_ul", "ess")
                                 if c in ul.columns])
    ).filter(pl.col("famille").is_not_null()).select(
        "siren", "debut", "fin", pl.col("famille").cast(pl.Categorical)).collect()


#: bits of the integer that codes a combination of activity, nomenclature and employer
#: character (:func:`_periodes_etablissements`)
_BITS_COMBINAISON = 62


def _periodes_etablissements(eh: pl.DataFrame, naf1: dict[str, str]) -> tuple[pl.DataFrame,
                                                                              dict]:
    """Every establishment period with ``secteur``, ``exclue``, ``employeur`` (NAF rév. 1
    codes mapped to rév. 2 when one-to-one). The classification depends on the activity,
    its nomenclature and the employer character only: it is computed once per combination
    of them, then joined to the periods."""
    cles = ["naf", "nomenclature_naf", "employeur_brut"]
    # the combination as one integer made of the three columns' category codes: grouped and
    # joined on one number instead of three categorical columns (at national scale, the
    # grouping on three columns held 0.8 GiB more); three columns else
    on, combo = cles, None
    if all(eh.schema[k] == pl.Categorical for k in cles):
        bits = max((int(eh[k].to_physical().max() or 0) + 1).bit_length() for k in cles)
        if 3 * bits <= _BITS_COMBINAISON:
            combo = sum((pl.col(k).to_physical().cast(pl.Int64).fill_null(-1) + 1)
                        * (1 << (bits * i)) for i, k in enumerate(cles)).alias("_combo")
            on = ["_combo"]
    # (the number of periods of each combination gives the counts without joining them)
    if combo is None:
        combos = eh.group_by(cles).len("_periodes")
    else:
        combos = eh.lazy().group_by(combo).agg(*[pl.col(k).first() for k in cles],
                                               pl.len().alias("_periodes")).collect()
    c = combos.select(pl.col(k).cast(pl.String) for k in cles)
    rev1 = pl.col("nomenclature_naf") == "NAFRev1"
    mappe = pl.col("naf").replace_strict(naf1, default=None, return_dtype=pl.String) \
        if naf1 else pl.lit(None, dtype=pl.String)
    c = c.with_columns(
        pl.when(rev1 & mappe.is_not_null()).then(mappe).otherwise(pl.col("naf")).alias("naf"),
        pl.when(rev1 & mappe.is_not_null()).then(pl.lit("NAFRev2"))
        .otherwise(pl.col("nomenclature_naf")).alias("nomenclature_naf"),
        (rev1 & mappe.is_not_null()).alias("naf_rev1_convertie"),
        pl.lit(None, dtype=pl.String).alias("tranche"))
    c = perimeter.classer_etablissements(c.lazy()).collect()
    classes = pl.concat([combos, c.select(
        pl.col("secteur").cast(pl.Categorical), "employeur",
        pl.col("motif_exclusion").is_not_null().alias("exclue"), "naf_rev1_convertie",
        "nafrev2")], how="horizontal")
    comptes = {"periodes_naf_rev1_converties": int(
                   classes.filter(pl.col("naf_rev1_convertie"))["_periodes"].sum()),
               "periodes_hors_naf_rev2": int(
                   classes.filter(~pl.col("nafrev2"))["_periodes"].sum())}
    # (only the three columns of the class are joined, in the periods' order, then set
    # beside the periods' own columns: those are not copied)
    classe = eh.lazy().select(cles if combo is None else [combo]).join(
        classes.lazy().select(*on, "secteur", "employeur", "exclue"), on=on, how="left",
        nulls_equal=True, maintain_order="left").select("secteur", "employeur", "exclue")
    etab = pl.concat([eh.select("siret", "siren", "debut", "fin", "etat", "employeur_brut"),
                      classe.collect()], how="horizontal")
    return etab.select("siret", "siren", "debut", "fin", "etat", "secteur", "employeur",
                       "employeur_brut", "exclue"), comptes


def _intervalles(etab: pl.DataFrame, ul: pl.DataFrame) -> pl.DataFrame:
    """In-scope intervals: the intersections of an active, not excluded establishment period
    with an ESS period of its legal unit (``debut``/``fin`` filled: no start = 0001-01-01,
    no end = 9999-12-31)."""
    tot, loin = pl.lit(dt.date(1, 1, 1)), pl.lit(LOIN)
    # (lazily: the periods filtered and the join's rows judged without materialising every
    # column of the join)
    e = etab.lazy().filter((pl.col("etat") == "A") & ~pl.col("exclue")).select(
        "siret", "siren", pl.col("debut").fill_null(tot).alias("ed"),
        pl.col("fin").fill_null(loin).alias("ef"), "secteur", "employeur", "employeur_brut")
    u = ul.lazy().select("siren", pl.col("debut").fill_null(tot).alias("ud"),
                         pl.col("fin").fill_null(loin).alias("uf"), "famille")
    j = e.join(u, on="siren", how="inner").with_columns(
        pl.max_horizontal("ed", "ud").alias("debut"), pl.min_horizontal("ef", "uf").alias("fin"))
    return j.filter(pl.col("debut") <= pl.col("fin")).select(
        "siret", "debut", "fin", "ef", pl.col("famille").cast(pl.Categorical),
        pl.col("secteur").cast(pl.Categorical), "employeur",
        pl.col("employeur_brut").cast(pl.Categorical)).collect()


def _evenements(etab: pl.DataFrame, inter: pl.DataFrame, annee_fin: int) -> pl.DataFrame:
    """Creations and closures of in-scope establishments per year (siret, annee, type, and
    the attributes of the interval concerned)."""
    attrs = ["siret", "famille", "secteur", "employeur"]
    # (the three columns used: taken where they are when the periods of each siret are
    # already consecutive in order of start, or in the reverse order as in INSEE's files;
    # sorted otherwise, a copy of a third of the periods' bytes)
    ordre = etab.select("siret", "debut", "etat")
    sens = H.sens_des_periodes(ordre["siret"], ordre["debut"])
    if sens == 0:
        ordre = ordre.sort(["siret", "debut"], nulls_last=False)
        sens = 1
    # (grouped by siret: the first row of a siret is the one whose siret differs from the
    # previous row's, with no grouping; the previous period of a row, the row before it, or
    # after it when the starts decrease)
    actives = ordre.filter(pl.col("etat") == "A")
    premiere = (actives.filter(pl.col("siret").ne_missing(pl.col("siret").shift(sens)))
                .select("siret", pl.col("debut").alias("creation"))
                .filter(pl.col("creation").is_not_null()))
    del actives
    # (the events of the years of the series only, each joined on one number: the siret
    # and the day as one integer, instead of two columns)
    d0 = dt.date(ANNEE_DEBUT, 1, 1) - dt.timedelta(days=1)  # (the eve of a closure on 1 Jan)
    d1 = dt.date(annee_fin, 12, 31)
    zero = (d0 - dt.date(1970, 1, 1)).days
    if (d1 - d0).days >= 1 << 15:  # (a siret < 10**14: 10**14 << 15 fits in 63 bits)
        raise ParametreInvalide(f"Millésime {annee_fin} : les séries vont de {ANNEE_DEBUT} à "
                                f"{ANNEE_DEBUT + 88} au plus.")

    def cle(jour: str) -> pl.Expr:
        j = pl.col(jour)
        return pl.when(j.is_between(d0, d1)).then(
            pl.col("siret") * (1 << 15) + (j.cast(pl.Int64) - zero)).alias("_cle")

    premiere = premiere.lazy().filter(pl.col("creation").dt.year() >= ANNEE_DEBUT) \
        .select(cle("creation"))
    creations = (inter.lazy().select(*attrs, "debut", cle("debut"))
                 .join(premiere, on="_cle", how="inner")
                 .select(*attrs, pl.col("debut").dt.year().alias("annee"),
                         pl.lit("creations").alias("type")).collect())
    # a closed period that follows an active one: closure on its first day; counted when
    # the establishment was in scope on the day before
    ordre = ordre.with_columns(pl.when(pl.col("siret").eq_missing(pl.col("siret").shift(sens)))
                               .then(pl.col("etat").shift(sens)).alias("_avant"))
    fermetures = ordre.lazy().filter(
        (pl.col("etat") == "F") & (pl.col("_avant") == "A")
        & pl.col("debut").dt.year().is_between(ANNEE_DEBUT, annee_fin)).select(
        "siret", (pl.col("debut") - pl.duration(days=1)).alias("veille"),
        pl.col("debut").dt.year().alias("annee")).select(cle("veille"), "annee")
    fermetures = (inter.lazy().select(*attrs, cle("fin"))
                  .join(fermetures, on="_cle", how="inner")
                  .select(*attrs, "annee", pl.lit("fermetures").alias("type")).collect())
    return pl.concat([creations, fermetures])


# --------------------------------------------------------------------------- positions

def _couche_de_la_base(con: duckdb.DuckDBPyConnection, millesime: str, geographie: str):
    """The QPV contours stored with a vintage, as a layer."""
    from essqpv.sources.qpv import _couche
    q = con.sql("SELECT code_qp, nom_qp, communes, departement, geometrie, repare "
                "FROM qpv WHERE millesime = ? ORDER BY code_qp", params=[millesime]).pl()
    import shapely
    return _couche(q["code_qp"].to_list(), q["nom_qp"].to_list(), q["communes"].to_list(),
                   q["departement"].to_list(), shapely.from_wkb(q["geometrie"].to_numpy()),
                   geographie, q["repare"].to_numpy(), f"base, millésime {millesime}")


#: the base's siret as the number the historical periods carry (null unless 14 digits)
_SIRET_NOMBRE = ("CASE WHEN regexp_full_match(siret, '[0-9]{14}') "
                 "THEN CAST(siret AS BIGINT) END")


def _positions_stock(sirets: pl.Series, etablissements: str | Path,
                     geolocalisation: str | Path | None, travail: Path,
                     tampon_m: int) -> tuple[pl.DataFrame, dict]:
    """Commune and coordinates of establishments absent from the vintage (closed, or out of
    the ESS now), read from the stock of establishments (which keeps the closed ones) and the
    geolocation file, placed by the rules of METHODOLOGY 5."""
    from essqpv import base as B
    from essqpv.placement import localiser_etablissements
    from essqpv.sources import sirene
    from essqpv.territoires import table_communes
    src = sirene.preparer(etablissements, "etablissements", travail / "extraits")
    colonnes = ["siret", "codeCommuneEtablissement", "coordonneeLambertAbscisseEtablissement",
                "coordonneeLambertOrdonneeEtablissement", "longitude", "latitude"]
    nombres = sirets.cast(pl.Int64, strict=False).drop_nulls().to_numpy()
    # (in the stock, the siret follows the siren and the nic)
    lues, n_lues, rejets, _ = H.lire_filtre(
        src, colonnes, H.Filtre(identifiant=("siret", 14, nombres), prefixe=(9, 5),
                                forme=False))
    df = (lues.select(colonnes).rename({c: B.RENOMMAGE_ETABLISSEMENTS[c] for c in colonnes})
          .unique("siret", keep="first")
          .with_columns(pl.col("siret").cast(pl.Int64, strict=False)))  # (14 digits)
    compte = {"fichier": src.chemin.name, "lignes_lues": n_lues,
              "lignes_rejetees": len(rejets), "trouves": df.height}
    if geolocalisation is not None:
        gsrc = sirene.preparer(geolocalisation, "geolocalisation", travail / "extraits")
        gcols = list(B.RENOMMAGE_GEOLOCALISATION)
        glues, _, _, _ = H.lire_filtre(gsrc, gcols, H.Filtre(identifiant=("siret", 14, nombres),
                                                             forme=False))
        geo = (glues.select(gcols).rename(B.RENOMMAGE_GEOLOCALISATION)
               .unique("siret", keep="first")
               .select(pl.col("siret").cast(pl.Int64, strict=False), "geo_x", "geo_y",
                       "geo_qualite", "geo_epsg")
               .with_columns(pl.lit(True).alias("geo_present")))
        df = df.join(geo, on="siret", how="left").with_columns(
            pl.col("geo_present").fill_null(False))
    else:
        df = df.with_columns(pl.lit(False).alias("geo_present"))
    df = (df.join(table_communes().rename({"code": "code_commune"}), on="code_commune",
                  how="left")
          .with_columns(pl.coalesce(pl.col("departement"), B._departement_du_code())
                        .alias("departement_crs")))
    entree = df.with_columns(pl.col("departement_crs").alias("departement")).drop(
        "commune", "region", "epci", "departement_crs")
    # (coordinates only: :func:`_positions` places them in the contours of each geography)
    places = localiser_etablissements(entree, None, tampon_m)
    return df.select("siret", "commune").with_columns(
        places["localise"], places["lon"], places["lat"],
        pl.lit(None, dtype=pl.Boolean).alias("employeur_actuel")), compte


def _positions(con: duckdb.DuckDBPyConnection, millesime: str, couches: dict[str, object],
               absents: pl.DataFrame | None) -> pl.DataFrame:
    """siret → commune, placed, employer now, and the QPV of each geography (``qpv_2015``,
    ``qpv_2024``): the vintage's points (and those of ``absents``), each placed in the
    contours of every geography (strict perimeter). (The levels above the commune are a
    function of it: not read here.)"""
    from essqpv.placement import IndexQPV
    p = con.sql(
        f"SELECT {_SIRET_NOMBRE} AS siret, commune, localise, "
        "lon, lat, employeur AS employeur_actuel FROM etablissements WHERE millesime = ?",
        params=[millesime]).pl()
    if absents is not None and absents.height:
        absents = absents.join(p.select("siret"), on="siret", how="anti")
        p = pl.concat([p, absents.select(p.columns)], how="vertical_relaxed")
    lon = p["lon"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    lat = p["lat"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    places = p["localise"].fill_null(False).to_numpy()
    for geo, couche in couches.items():
        index = IndexQPV(couche)
        idx = np.where(places, index.strict_indices(lon, lat), -1)
        p = p.with_columns(index.serie_codes(f"qpv_{geo}", idx).cast(pl.Categorical))
    return p.drop("lon", "lat").with_columns(pl.col("commune").cast(pl.Categorical))


def _avec_positions(lignes: pl.DataFrame, pos: pl.DataFrame,
                    geographies: list[str]) -> pl.DataFrame:
    """Rows (one per interval or event) with the establishment's position in each of
    ``geographies`` (``qpv_<géographie>``), ``localise`` filled."""
    return (lignes.join(pos.select("siret", "commune", "localise", "employeur_actuel",
                                   *[f"qpv_{g}" for g in geographies]),
                        on="siret", how="left")
            .with_columns(pl.col("localise").fill_null(False)))


def _joindre(inter: pl.DataFrame, points: list[tuple[str, dt.date]], pos: pl.DataFrame,
             geographies: list[str]) -> pl.DataFrame:
    """The intervals that cover a point, with the points they cover (``i0`` ≤ point index <
    ``i1``; the vintage point, dated 9999-12-31 here, is covered by the intervals that never
    end only), their attributes and the establishment's position in every geography
    (``qpv_<géographie>``), joined once for all of them."""
    dates = [d for _, d in points[:-1]] + [LOIN]
    t = np.array(dates, dtype="datetime64[D]")
    debut = inter["debut"].to_numpy().astype("datetime64[D]")
    fin = inter["fin"].to_numpy().astype("datetime64[D]")
    joint = (inter.select("siret", "famille", "secteur", "employeur", "employeur_brut")
             .with_columns(pl.Series("i0", np.searchsorted(t, debut, side="left"), pl.Int32),
                           pl.Series("i1", np.searchsorted(t, fin, side="right"), pl.Int32))
             .filter(pl.col("i0") < pl.col("i1")))
    del debut, fin
    joint = _avec_positions(joint, pos, geographies)
    # at the vintage, a period without employer character takes the stock's flag
    return joint.with_columns(
        pl.when(pl.col("employeur_brut").is_null() & pl.col("employeur_actuel").is_not_null())
        .then(pl.col("employeur_actuel")).otherwise(pl.col("employeur"))
        .alias("employeur_dernier")).drop("siret", "employeur_brut", "employeur_actuel")


def _cube(joint: pl.DataFrame, points: list[tuple[str, dt.date]], geo: str) -> pl.DataFrame:
    """Counts by point × cell (see the module's docstring) in geography ``geo``, from the
    intervals of :func:`_joindre`.

    The intervals of the same cell and the same points are counted together first (one
    grouping: the steps below work on the groups, not on every interval). The groups get an
    integer cell id; each adds its count at its first point and takes it away after its
    last one in a cells × points grid, summed along the points (no row per interval and
    point: the memory is the grid's, cells × points integers).
    """
    dernier = len(points) - 1
    autres = [d for d in DIMENSIONS if d != "employeur"]
    groupes = (joint.select(*[c for c in autres if c != "qpv"], pl.col(f"qpv_{geo}").alias("qpv"),
                            "employeur", "employeur_dernier", "i0", "i1")
               .group_by(*autres, "employeur", "employeur_dernier", "i0", "i1")
               .agg(pl.len().alias("_n")))
    cellules = (pl.concat([groupes.select(*autres, "employeur"),
                           groupes.select(*autres, pl.col("employeur_dernier").alias("employeur"))])
                .unique(maintain_order=True).with_row_index("cellule"))
    groupes = (groupes.join(cellules, on=[*autres, "employeur"], how="left", nulls_equal=True)
               .join(cellules.rename({"cellule": "cellule_dernier",
                                      "employeur": "employeur_dernier"}),
                     on=[*autres, "employeur_dernier"], how="left", nulls_equal=True))
    # counts by cell × point without spreading the intervals: + at a group's first point,
    # - after its last one (points before the vintage), summed along the points; the
    # vintage point counts the intervals that never end, in their vintage cell
    n_cel, n_pts = cellules.height, len(points)
    c = groupes["cellule"].to_numpy().astype(np.int64)
    poids = groupes["_n"].to_numpy().astype(np.int64)
    i0 = groupes["i0"].to_numpy().astype(np.int64)
    i1 = groupes["i1"].to_numpy().astype(np.int64)
    fin = np.minimum(i1, dernier)
    m = i0 < fin
    largeur = n_pts + 1
    pas = (np.bincount(c[m] * largeur + i0[m], weights=poids[m], minlength=n_cel * largeur)
           - np.bincount(c[m] * largeur + fin[m], weights=poids[m],
                         minlength=n_cel * largeur))
    grille = np.cumsum(np.rint(pas).astype(np.int64).reshape(n_cel, largeur), axis=1)[:, :n_pts]
    couvre = i1 > dernier
    grille[:, dernier] = np.rint(np.bincount(
        groupes["cellule_dernier"].to_numpy()[couvre].astype(np.int64), weights=poids[couvre],
        minlength=n_cel)).astype(np.int64)
    cel, ordre = np.nonzero(grille)
    comptes = pl.DataFrame({"cellule": cel.astype(np.uint32), "ordre": ordre.astype(np.int16),
                            "n": grille[cel, ordre].astype(np.int64)})
    del grille, pas
    # the cells' texts as categories: the cube has cells × points rows
    cellules = cellules.with_columns(pl.col(c).cast(pl.Categorical) for c in _TEXTES)
    return (comptes.join(cellules.with_columns(pl.col("cellule").cast(pl.UInt32)), on="cellule")
            .drop("cellule").with_columns(pl.lit(geo).cast(pl.Categorical).alias("geographie")))


def _agreger(lignes: pl.DataFrame, pos: pl.DataFrame, geo: str, *cles: str) -> pl.DataFrame:
    """Counts of events by ``cles`` × cell."""
    return (_avec_positions(lignes, pos, [geo]).rename({f"qpv_{geo}": "qpv"})
            .group_by(*cles, *DIMENSIONS).agg(pl.len().cast(pl.Int64).alias("n"))
            .with_columns(pl.lit(geo).alias("geographie")))


# --------------------------------------------------------------------------- build

def construire_historique(*, base: str | Path, **parametres) -> dict:
    """Build the series of a base's vintage and store them in the base (see
    :func:`_construire_historique` for the parameters), holding the base's build lock: a
    build or another series of the same base running meanwhile is named and this one stops
    (the base and its rejects stay as they were); what killed builds left is cleaned first."""
    from essqpv import garde_fous
    base = Path(base)
    if base.is_symlink():
        base = base.resolve()
    if not base.is_file():
        raise BaseInvalide(f"Base introuvable : {base} (construisez-la d'abord avec "
                           "« essqpv construire »).")
    with garde_fous.Verrou(base) as verrou:
        restes = garde_fous.nettoyer_restes(base)
        controle = _construire_historique(base=base, **parametres)
    controle["avertissements"] += garde_fous.avertissements_du_verrou(verrou, restes)
    return controle


def _construire_historique(*, base: Path, etablissements_historique: str | Path,
                          unites_legales_historique: str | Path,
                          millesime: str | None = None, qpv: str | Path | None = None,
                          table_naf: str | Path | None = None,
                          etablissements: str | Path | None = None,
                          geolocalisation: str | Path | None = None,
                          forcer: bool = False,
                          progression: Callable[[str], None] | None = None) -> dict:
    """Build the series of the base's vintage ``millesime`` (default: the latest) and store
    them in the base (replacing earlier series).

    ``qpv``: contours of the other geography than the vintage's (the embedded 2015
    contours are used when the vintage is in the 2024 geography and ``qpv`` is not given).
    ``table_naf``: INSEE's NAF rév. 1 → rév. 2 table of passage (:func:`correspondance_naf`).
    ``etablissements`` (and ``geolocalisation``): the stock (and geolocation file) of the
    vintage, to place the establishments the base does not hold (closed since, or out of
    the ESS now); without them, those are counted as ``non localisé``.
    ``forcer``: write the series even when their last point differs from the vintage by more
    than :data:`ECART_MAX` (by default an implausible build is refused and the base keeps
    its earlier series).

    Returns the reconciliation (the object ``essqpv historique`` prints).
    """
    from essqpv import base as B
    from essqpv.sources.qpv import lire_qpv

    etape = progression or (lambda _t: None)
    m = B.millesime_par_defaut(base, millesime)
    meta = B.metadonnees(base, m)
    geo_m = meta["geographie_qpv"]
    autres: dict[str, object] = {}
    if qpv is not None:
        couche = lire_qpv(qpv)
        if couche.geographie == geo_m:
            raise ParametreInvalide(
                f"{Path(qpv).name} : contours de la géographie {couche.geographie}, celle du "
                f"millésime {m} ; donnez les contours de l'autre géographie.")
        autres[couche.geographie] = couche
    elif geo_m == "2024":
        autres["2015"] = lire_qpv(geographie="2015")  # (the embedded default is 2024)
    travail = base.with_name(base.name + ".travail") / "historique"
    travail.mkdir(parents=True, exist_ok=True)
    naf1 = correspondance_naf(table_naf)

    etape("Lecture de l'historique des unités légales")
    regles = reference.regles_familles()
    cjs = regles.filter(pl.col("regle") == "categorie_juridique")["valeur"].to_list()
    valeurs_ess = regles.filter(pl.col("regle") == "ess")["valeur"].to_list()
    # the name rule needs the ESS flag too: these two cover every ESS period
    garder_ul = H.Filtre(codes={"categorieJuridiqueUniteLegale": cjs,
                                "economieSocialeSolidaireUniteLegale": valeurs_ess})
    uh = H.charger(unites_legales_historique, H.UNITES_LEGALES, travail, garder_ul)
    ul = _unites_legales_ess(uh.periodes)
    uh.periodes = uh.periodes.clear()  # (released: its count is kept)
    etape("Lecture de l'historique des établissements")
    sirens = ul["siren"].unique().cast(pl.Int64, strict=False).drop_nulls().to_numpy()
    eh = H.charger(etablissements_historique, H.ETABLISSEMENTS, travail,
                   H.Filtre(identifiant=("siren", 9, sirens)))

    etape("Périodes dans le champ de l'ESS")
    etab, comptes_naf = _periodes_etablissements(eh.periodes, naf1)
    eh.periodes = eh.periodes.clear()  # (released: its count is kept)
    inter = _intervalles(etab, ul)
    n_ul_ess = ul.height
    del ul  # (every frame is released once done with: the later stages start lower)
    points = points_de(m)
    annee_fin = int(m[:4])
    evts = _evenements(etab, inter, annee_fin)
    del etab

    etape("Positions des établissements")
    con_b = B.ouvrir(base)
    couches = {geo_m: _couche_de_la_base(con_b, m, geo_m), **autres}
    absents, compte_stock = None, None
    if etablissements is not None:
        manquants = inter.join(con_b.sql(
            f"SELECT {_SIRET_NOMBRE} AS siret FROM etablissements WHERE millesime = ?",
            params=[m]).pl(), on="siret", how="anti")["siret"].unique()
        absents, compte_stock = _positions_stock(manquants, etablissements, geolocalisation,
                                                 travail, int(meta.get("tampon_m") or 300))
    pos = _positions(con_b, m, couches, absents)
    del absents
    geographies = [g for g in GEOGRAPHIES if g in couches]

    etape("Séries")
    stocks, flux = [], []
    joint = _joindre(inter, points, pos, geographies)  # (once for every geography)
    for g in geographies:
        stocks.append(_cube(joint, points, g))
        flux.append(_agreger(evts, pos, g, "annee", "type"))
    del joint, evts
    stock = pl.concat(stocks).select("geographie", "ordre", *DIMENSIONS, "n")
    flux_df = pl.concat(flux).select("geographie", "annee", "type", *DIMENSIONS, "n")
    del stocks, flux

    # reconciliation: the vintage point against the base's own picture
    dernier = stock.filter((pl.col("ordre") == len(points) - 1) & (pl.col("geographie") == geo_m))
    n_base, n_qpv_base = con_b.execute(
        "SELECT count(*), count(qpv) FROM etablissements WHERE millesime = ?", [m]).fetchone()
    con_b.close()
    siret_hors_base = inter.join(pos.select("siret"), on="siret", how="anti")["siret"].n_unique()
    n_inter, n_dans_le_champ = inter.height, inter["siret"].n_unique()
    del inter, pos
    controle = {
        "millesime": m, "geographie_millesime": geo_m, "geographies": geographies,
        "points": [p for p, _ in points],
        "etablissements_historique": eh.reconciliation(),
        "unites_legales_historique": uh.reconciliation(),
        "periodes_unites_legales_ess": n_ul_ess,
        "intervalles_dans_le_champ": n_inter,
        "etablissements_dans_le_champ_une_fois_au_moins": n_dans_le_champ,
        "etablissements_sans_position": siret_hors_base,
        "etablissements_places_par_le_stock": compte_stock,
        "part_localisee_par_point": _part_localisee(stock, geo_m, points),
        **comptes_naf,
        "correspondance_naf_rev1": len(naf1),
        "dernier_point": {"etablissements": int(dernier["n"].sum()),
                          "en_qpv": int(dernier.filter(pl.col("qpv").is_not_null())["n"].sum())},
        "millesime_de_la_base": {"etablissements": int(n_base), "en_qpv": int(n_qpv_base)},
    }
    avertissements = [AVERTISSEMENT_EFFECTIFS]
    a, b = controle["dernier_point"]["etablissements"], int(n_base)
    if not forcer and abs(a - b) > ECART_MAX * max(b, 1):
        raise FichierInvalide(
            f"Séries non écrites (la base garde les précédentes) : le dernier point des "
            f"fichiers historiques compte {a} établissements de l'ESS, le millésime {m} de la "
            f"base {b} (écart de plus de {ECART_MAX:.0%}). Les fichiers historiques sont-ils "
            "ceux du même mois que le stock, et complets ? Option --forcer pour les écrire "
            "quand même.")
    if controle["dernier_point"] != controle["millesime_de_la_base"]:
        avertissements.append(
            f"Le dernier point de la série ({controle['dernier_point']['etablissements']} "
            f"établissements) diffère du millésime {m} de la base "
            f"({controle['millesime_de_la_base']['etablissements']}) : les fichiers "
            "historiques ne sont pas de la même date que le stock.")
    if "2024" not in geographies:
        avertissements.append("Contours 2024 non fournis : séries en géographie 2015 seulement "
                              "(option --qpv).")
    sources = [{"role": h.role, "fichier": h.source.chemin.name, "schema": h.source.variante,
                "taille": h.source.taille, "producteur": "Insee", "licence": LICENCE_DONNEES}
               for h in (eh, uh)]
    rejets = [(h.role, r.ligne, r.motif, r.contenu) for h in (eh, uh) for r in h.rejets]

    etape("Écriture dans la base")
    B.fermer_connexions(base)
    _ecrire(base, m, geographies, points, bool(meta.get("synthetique")), sources, controle,
            avertissements, stock, flux_df, rejets)
    del stock, flux_df, dernier, rejets
    etape("Réponses publiées")
    controle["reponses_publiees"] = ecrire_reponses_evolution(base, m)
    controle["avertissements"] = avertissements
    return controle


def _part_localisee(stock: pl.DataFrame, geo: str, points) -> dict[str, float | None]:
    par = (stock.filter(pl.col("geographie") == geo).group_by("ordre")
           .agg(pl.col("n").sum().alias("n"), pl.col("n").filter(pl.col("localise")).sum()
                .alias("l")).sort("ordre"))
    return {points[o][0]: (round(l / n, 4) if n else None) for o, n, l in par.iter_rows()}


def dossier_rejets(base: str | Path) -> Path:
    """Folder of the rejects of the historical files: ``<base>.rejets/historique/``."""
    base = Path(base)
    return base.with_name(base.name + ".rejets") / "historique"


def _ecrire(base: Path, m: str, geographies: list[str], points, synthetique: bool,
            sources: list, controle: dict, avertissements: list, stock: pl.DataFrame,
            flux: pl.DataFrame, rejets: list) -> None:
    """Replace the series in one transaction (an interrupted build keeps the old ones), then
    swap in their rejects folder, written and checked beforehand (a build killed between
    the two is finished or undone at the next start: :func:`essqpv.garde_fous.reparer_rejets`)."""
    from essqpv import garde_fous
    # rejects file, as for the stocks: ligne<TAB>motif<TAB>line unchanged
    tmp_rejets = garde_fous.preparer_rejets(base, "historique",
                                            sorted(rejets, key=lambda r: (r[0], r[1])))
    con = duckdb.connect(str(base))
    try:
        con.execute("BEGIN")
        # the tables made afresh: the series of an earlier version (another schema) go too
        for t in ("historique_meta", "historique_stock", "historique_flux",
                  "historique_communes"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
        con.execute(SCHEMA)
        con.execute("DELETE FROM rejets WHERE millesime = 'historique'")
        con.register("_s", stock.to_arrow())
        con.execute("INSERT INTO historique_stock BY NAME SELECT * FROM _s")
        con.register("_f", flux.to_arrow())
        con.execute("INSERT INTO historique_flux BY NAME SELECT * FROM _f")
        from essqpv.territoires import table_communes
        communes = (table_communes().select("commune", "departement", "region", "epci")
                    .unique("commune", keep="first"))
        con.register("_c", communes.to_arrow())
        con.execute("INSERT INTO historique_communes SELECT c.* FROM _c c WHERE c.commune IN "
                    "(SELECT DISTINCT commune FROM historique_stock UNION "
                    "SELECT DISTINCT commune FROM historique_flux)")
        if rejets:
            rj = pl.DataFrame({"millesime": "historique", "fichier": [r[0] for r in rejets],
                               "ligne": [r[1] for r in rejets], "motif": [r[2] for r in rejets],
                               "contenu": [r[3].decode("utf-8", "replace") for r in rejets]})
            con.register("_r", rj.to_arrow())
            con.execute("INSERT INTO rejets BY NAME SELECT * FROM _r")
        con.execute(
            "INSERT INTO historique_meta VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [m, json.dumps(geographies), json.dumps([p for p, _ in points]),
             dt.datetime.now().replace(microsecond=0), __version__, synthetique,
             json.dumps(sources, ensure_ascii=False), json.dumps(controle, ensure_ascii=False),
             json.dumps(avertissements, ensure_ascii=False)])
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        shutil.rmtree(tmp_rejets, ignore_errors=True)  # (written by this build only)
        raise
    finally:
        con.close()
    garde_fous.echanger_rejets(base, "historique", tmp_rejets)


# --------------------------------------------------------------------------- reading

def disponible(base: str | Path) -> dict | None:
    """The series' metadata when the base holds series, else None."""
    from essqpv import base as B
    con = B.ouvrir(base)
    try:
        try:
            ligne = con.execute("SELECT millesime, geographies, points, synthetique, sources, "
                                "controle, avertissements, date_construction "
                                "FROM historique_meta").fetchone()
        except duckdb.CatalogException:
            return None
        geo_m = con.execute("SELECT geographie_qpv FROM millesimes WHERE millesime = ?",
                            [ligne[0]]).fetchone() if ligne is not None else None
    finally:
        con.close()
    if ligne is None:
        return None
    geographies = json.loads(ligne[1])
    return {"millesime": ligne[0], "geographies": geographies,
            "geographie_millesime": str(geo_m[0]) if geo_m else geographies[0],
            "points": json.loads(ligne[2]), "synthetique": bool(ligne[3]),
            "sources": json.loads(ligne[4]), "controle": json.loads(ligne[5]),
            "avertissements": json.loads(ligne[6]), "date_construction": str(ligne[7])}


def geographie_par_defaut(info: dict, geographie: str | None = None) -> str:
    """The QPV geography asked for (checked), by default the vintage's when the series have
    it."""
    if geographie is None:
        geo_m = info.get("geographie_millesime")
        return geo_m if geo_m in info["geographies"] else info["geographies"][0]
    if geographie not in info["geographies"]:
        raise ParametreInvalide(
            f"Géographie {geographie} absente des séries (disponibles : "
            f"{', '.join(info['geographies'])}).")
    return geographie


def verifier_qpv(niveau: str, geographie: str, info: dict) -> None:
    """A QPV is a territory of its vintage's geography only: its series in the other one
    would count nothing (its code is not in that map), so it is refused, with the reason."""
    geo_m = info.get("geographie_millesime")
    if niveau == "qpv" and geographie != geo_m:
        raise ParametreInvalide(
            f"Un quartier prioritaire n'a de série que dans la géographie de son millésime "
            f"({geo_m}) : ses contours n'existent pas dans la géographie {geographie}.")


def genre_de(geographie: str, info: dict) -> str:
    """Genre of the stored series answers of a QPV geography: ``evolution`` for the
    vintage's (``/api/evolution/<code>``, :func:`essqpv.web._donnees.servir_genre`),
    ``evolution_<géographie>`` for the other."""
    return GENRE if geographie == info.get("geographie_millesime") else f"{GENRE}_{geographie}"


_STOCK = "historique_stock LEFT JOIN historique_communes USING (commune)"
_FLUX = "historique_flux LEFT JOIN historique_communes USING (commune)"


def _condition(t, colonne_qpv: str = "qpv") -> tuple[str, list]:
    from essqpv.indicators.compute import condition_territoire
    return condition_territoire(t, colonne_qpv)


def serie(base: str | Path, territoire, geographie: str | None = None) -> dict:
    """The raw (unprotected) series of a territory: counts per point, in its QPV and in the
    whole territory, by employer character, family and sector; placed share; creations and
    closures per year; the France entière reference. Publication goes through
    :func:`essqpv.indicators.historique.publier` (protected)."""
    from essqpv import base as B
    from essqpv.territoires import Territoire, resoudre
    info = disponible(base)
    if info is None:
        raise ParametreInvalide(
            "Cette base n'a pas de séries historiques : lancez « essqpv historique » avec "
            "les fichiers StockEtablissementHistorique et StockUniteLegaleHistorique.")
    geographie = geographie_par_defaut(info, geographie)
    t = territoire if isinstance(territoire, Territoire) else resoudre(
        territoire, B.qpv_de_la_base(base, info["millesime"]))
    verifier_qpv(t.niveau, geographie, info)
    cond, params = _condition(t)
    con = B.ouvrir(base)
    try:
        points = info["points"]
        n = len(points)

        def par_point(extra: str = "", cle: str | None = None) -> list[int] | dict:
            """Counts per point of the territory's cube rows (``extra``: more conditions;
            ``cle``: one series per value of that column)."""
            requete = (f"SELECT ordre, {cle + ',' if cle else ''} sum(n) FROM {_STOCK} "
                       f"WHERE geographie = ? AND ({cond}) {extra} GROUP BY ALL")
            lignes = con.execute(requete, [geographie, *params]).fetchall()
            if cle is None:
                v = [0] * n
                for o, s in lignes:
                    v[o] = int(s)
                return v
            res: dict[str, list[int]] = {}
            for o, k, s in lignes:
                res.setdefault(k, [0] * n)[o] = int(s)
            return dict(sorted(res.items()))

        en_qpv = "AND qpv IS NOT NULL" if t.niveau != "qpv" else ""
        zones = {"qpv": en_qpv, "ensemble": ""}
        sortie = {"territoire": t.en_dict(), "geographie_qpv": geographie,
                  "millesime": info["millesime"], "points": points}
        for zone, extra in zones.items():
            if t.niveau == "qpv" and zone == "ensemble":
                continue
            sortie[zone] = {
                "etablissements": par_point(extra),
                "employeurs": par_point(extra + " AND employeur"),
                "non_employeurs": par_point(extra + " AND NOT employeur"),
                "familles": par_point(extra, "famille"),
                "secteurs": par_point(extra, "secteur"),
            }
        # placed share (in the territory: the QPV need a position; France counts the unplaced)
        sortie["localises"] = par_point("AND localise")
        sortie["etablissements_territoire"] = par_point()
        fr = con.execute("SELECT ordre, sum(n), sum(n) FILTER (WHERE qpv IS NOT NULL) FROM "
                         "historique_stock WHERE geographie = ? GROUP BY ordre",
                         [geographie]).fetchall()
        france = [0] * n
        france_qpv = [0] * n
        for o, s, q in fr:
            france[o], france_qpv[o] = int(s), int(q or 0)
        sortie["france"] = {"etablissements": france, "en_qpv": france_qpv}
        annees = list(range(ANNEE_DEBUT, int(info["millesime"][:4]) + 1))
        flux: dict = {}
        for zone, extra in zones.items():
            if t.niveau == "qpv" and zone == "ensemble":
                continue
            lignes = con.execute(
                f"SELECT type, annee, sum(n) FROM {_FLUX} WHERE geographie = ? AND "
                f"({cond}) {extra} GROUP BY ALL", [geographie, *params]).fetchall()
            z = {"creations": [0] * len(annees), "fermetures": [0] * len(annees)}
            for typ, a, s in lignes:
                z[typ][a - ANNEE_DEBUT] = int(s)
            flux[zone] = z
        sortie["flux"] = {"annees": annees, **flux}
        sortie["synthetique"] = info["synthetique"]
        sortie["sources"] = info["sources"]
        sortie["avertissements"] = list(info["avertissements"])
        return sortie
    finally:
        con.close()


# --------------------------------------------------------------------------- publication

def publier(brute: dict, copier: bool = True) -> dict:
    """The series of :func:`serie`, as published (METHODOLOGY 7).

    Every value of a series is a count of establishments, and establishment counts are
    public (Sirene is open data): the rules of the secret mask headcounts, never counts
    (the publication plan marks no count table secret). No cell is suppressed: ``secret`` is
    empty and the index 2015 = 100 is computed on every point.
    """
    import orjson
    # a deep copy (as JSON: what is stored); ``copier`` false: ``brute`` itself is
    # completed (a series made for this answer only; only its first level is added to)
    s = orjson.loads(orjson.dumps(brute)) if copier else brute
    s["part_localisee"] = [
        (round(l / t, 4) if t else None)
        for l, t in zip(s["localises"], s["etablissements_territoire"])]
    s["indice_2015"] = _indices(s)
    s["secret"] = []
    s["protege"] = True
    s["regle_secret"] = REGLE_SECRET
    # where a reader looks for the employees: there is no such series
    s["salaries"] = None
    s["note_salaries"] = AVERTISSEMENT_EFFECTIFS
    return s


def _indices(s: dict) -> dict:
    """Index 2015 = 100 of the QPV of the territory and of France entière (published values)."""
    try:
        i15 = s["points"].index("2015-01-01")
    except ValueError:
        return {}

    def indice(valeurs: list) -> list:
        ref = valeurs[i15]
        return [round(100 * x / ref, 1) if x is not None and ref else None for x in valeurs]
    return {"qpv": indice(s["qpv"]["etablissements"]),
            "france": indice(s["france"]["etablissements"]),
            "france_qpv": indice(s["france"]["en_qpv"])}


def evolution(base: str | Path, territoire, geographie: str | None = None) -> dict:
    """The published series of a territory (what every output shows): the answer stored
    with the vintage's publication (:func:`reponses_evolution`, read by its key with
    :func:`essqpv.indicators.reponses.reponse_texte`: a territory outside the plan raises
    ``HorsPlan``). A base without publication (built before the build wrote the plan) gets
    the series computed the same way (:func:`publier`)."""
    from essqpv.indicators.reponses import publication_presente, reponse_texte
    info = disponible(base)
    if info is None:
        return publier(serie(base, territoire, geographie))  # (its clear error)
    geo = geographie_par_defaut(info, geographie)
    if publication_presente(base, info["millesime"]):
        from essqpv import base as B
        from essqpv.territoires import Territoire, resoudre
        t = territoire if isinstance(territoire, Territoire) else resoudre(
            territoire, B.qpv_de_la_base(base, info["millesime"]))
        verifier_qpv(t.niveau, geo, info)
        return json.loads(reponse_texte(base, genre_de(geo, info), t, "strict",
                                        info["millesime"]))
    return publier(serie(base, territoire, geo))


# --------------------------------------------------------------------------- stored answers
#
# The series count establishments, and establishment counts are public (Sirene is open
# data; METHODOLOGY 7, and the plan never marks a count table secret): no series cell is
# sensitive, and a series holds no headcount, so no series answer, alone or combined with
# any other answer, narrows the interval of a suppressed headcount. The series therefore
# add no cell to the publication plan (each cell would cost protection time and protect
# nothing); their answers are stored next to the plan's (``publication_reponses``, genre
# below) for every territory of the plan, and
# every output reads them by their key (:func:`evolution`): genre ``evolution`` for the
# vintage's QPV geography, ``evolution_<géographie>`` for the other, ``perimetre`` =
# ``strict`` (the series do not depend on the perimeter).

GENRE = "evolution"
_NIVEAUX_COLONNES = {"region": "region", "departement": "departement", "epci": "epci",
                     "commune": "commune", "qpv": "qpv"}


def _avec_ensembles(cadre: pl.DataFrame) -> pl.DataFrame:
    """Columns ``france``, ``metropole``, ``drom`` (the code of the territory or null)."""
    from essqpv.territoires import DROM
    d = pl.col("departement")
    return cadre.with_columns(
        pl.lit("FR").alias("france"),
        pl.when(d.is_not_null() & ~d.str.starts_with("97") & ~d.str.starts_with("98"))
        .then(pl.lit("METRO")).alias("metropole"),
        pl.when(d.is_in(list(DROM))).then(pl.lit("DROM")).alias("drom"))


def series_en_bloc(con, info: dict, geographie: str, territoires: list) -> dict[str, dict]:
    """The raw series (as :func:`serie` gives them) of many territories at once.

    The cube is read once; its rows get integer codes (territory of each level, point,
    employer character, family, sector, in a QPV, placed) and every series of every
    territory of a level is one weighted ``numpy.bincount`` over those codes: a few passes
    over the cube per level, whatever the number of territories. A family or a sector is
    listed for a territory when the cube has a row of it there (as :func:`serie`)."""
    n = len(info["points"])
    annees = list(range(ANNEE_DEBUT, int(info["millesime"][:4]) + 1))
    na = len(annees)
    # (the levels above the commune are a function of it: looked up in the communes'
    # table, not joined to each row of the cube)
    stock = con.sql(
        "SELECT ordre, commune, qpv, localise, employeur, famille, secteur, n "
        "FROM historique_stock WHERE geographie = ?", params=[geographie]).pl()
    flux = con.sql("SELECT annee, type, commune, qpv, n FROM historique_flux "
                   "WHERE geographie = ?", params=[geographie]).pl()
    communes = _avec_ensembles(con.sql(
        "SELECT commune, departement, region, epci FROM historique_communes").pl())
    familles = sorted(stock["famille"].drop_nulls().unique().to_list())
    secteurs = sorted(stock["secteur"].drop_nulls().unique().to_list())

    def code(colonne: str, valeurs: list) -> np.ndarray:
        """Index of each row's value in ``valeurs`` (-1: null or another value)."""
        if not valeurs:
            return np.full(stock.height, -1, np.int64)
        return stock.select(pl.col(colonne).replace_strict(
            valeurs, list(range(len(valeurs))), default=-1, return_dtype=pl.Int64)
        ).to_series().fill_null(-1).to_numpy()

    ordre = stock["ordre"].cast(pl.Int64).to_numpy()
    poids = stock["n"].cast(pl.Float64).to_numpy()
    en_qpv = stock["qpv"].is_not_null().to_numpy()
    localise = stock["localise"].fill_null(False).to_numpy()
    employeur = stock.select(pl.when(pl.col("employeur").is_null()).then(-1)
                             .otherwise(pl.col("employeur").cast(pl.Int64))).to_series().to_numpy()
    c_famille, c_secteur = code("famille", familles), code("secteur", secteurs)
    f_annee = flux["annee"].cast(pl.Int64).to_numpy() - ANNEE_DEBUT
    f_type = (flux["type"] == "fermetures").cast(pl.Int64).to_numpy()
    f_poids = flux["n"].cast(pl.Float64).to_numpy()
    f_qpv = flux["qpv"].is_not_null().to_numpy()
    f_dans = (f_annee >= 0) & (f_annee < na)

    france = np.rint(np.bincount(ordre, weights=poids, minlength=n)).astype(np.int64).tolist()
    france_qpv = np.rint(np.bincount(ordre[en_qpv], weights=poids[en_qpv], minlength=n)
                         ).astype(np.int64).tolist()
    par_niveau: dict[str, list] = defaultdict(list)
    for t in territoires:
        par_niveau[t.niveau].append(t)
    sorties: dict[str, dict] = {}
    for niveau, liste in par_niveau.items():
        col = {"france": "france", "metropole": "metropole", "drom": "drom"}.get(
            niveau, _NIVEAUX_COLONNES.get(niveau))
        if col is None:
            continue
        valeurs = [t.code if niveau in ("france", "metropole", "drom") else t.valeur
                   for t in liste]
        nt = len(valeurs)
        index = {v: i for i, v in enumerate(valeurs)}
        if col in ("commune", "qpv"):
            cle, correspondance = col, index
        else:  # each commune of the communes' table → its territory's index at this level
            cle = "commune"
            paires = communes.select("commune", pl.col(col).replace_strict(
                list(index), list(index.values()), default=-1, return_dtype=pl.Int64)
                .alias("i")).filter(pl.col("i") >= 0)
            correspondance = dict(zip(paires["commune"].to_list(), paires["i"].to_list()))
        if col == "france" or not correspondance:  # (France: every row, whatever its commune)
            i = index.get("FR", -1) if col == "france" else -1
            i_t = np.full(stock.height, i, np.int64)
            fi_t = np.full(flux.height, i, np.int64)
        else:
            i_t, fi_t = (cadre.select(pl.col(cle).replace_strict(
                list(correspondance), list(correspondance.values()), default=-1,
                return_dtype=pl.Int64)).to_series().fill_null(-1).to_numpy()
                for cadre in (stock, flux))
        # the rows of the level's territories, taken once
        dans = np.flatnonzero(i_t >= 0)
        l_t, l_ordre, l_poids = i_t[dans], ordre[dans], poids[dans]
        l_qpv, l_localise, l_employeur = en_qpv[dans], localise[dans], employeur[dans]
        l_famille, l_secteur = c_famille[dans], c_secteur[dans]

        def compter(masque: np.ndarray | None, cle: np.ndarray | None = None, k: int = 1,
                    lignes: bool = False):
            """Sums (nt, k, n) of the level's rows in ``masque`` (None: all) and, when
            ``lignes``, whether each (territory, key) has a row."""
            def pris(x: np.ndarray) -> np.ndarray:
                return x if masque is None else x[masque]
            cles = (pris(l_t) * k + (pris(cle) if cle is not None else 0)) * n + pris(l_ordre)
            taille = nt * k * n
            sommes = np.rint(np.bincount(cles, weights=pris(l_poids), minlength=taille))
            sommes = sommes.astype(np.int64).reshape(nt, k, n)
            if not lignes:
                return sommes, None
            return sommes, np.bincount(cles, minlength=taille).reshape(nt, k, n).sum(axis=2) > 0

        zones = {"qpv": l_qpv if niveau != "qpv" else None}
        f_zones = {"qpv": f_qpv if niveau != "qpv" else np.ones_like(f_qpv)}
        if niveau != "qpv":
            zones["ensemble"] = None
            f_zones["ensemble"] = np.ones_like(f_qpv)
        cubes = {}
        for zone, z in zones.items():
            def et(m: np.ndarray) -> np.ndarray:
                return m if z is None else (z & m)
            # the three employer characters (unknown, no, yes) in one pass
            par_employeur = compter(z, l_employeur + 1, 3)[0]
            cubes[zone] = {
                "etablissements": par_employeur.sum(axis=1),
                "employeurs": par_employeur[:, 2],
                "non_employeurs": par_employeur[:, 1],
                "familles": compter(et(l_famille >= 0), l_famille, max(len(familles), 1),
                                    True),
                "secteurs": compter(et(l_secteur >= 0), l_secteur, max(len(secteurs), 1),
                                    True),
            }
            fm = (fi_t >= 0) & f_zones[zone] & f_dans
            cles = (fi_t[fm] * 2 + f_type[fm]) * na + f_annee[fm]
            cubes["flux_" + zone] = np.rint(np.bincount(
                cles, weights=f_poids[fm], minlength=nt * 2 * na)).astype(np.int64).reshape(
                nt, 2, na)
        localises = compter(l_localise)[0][:, 0]
        # every row of the territory: the zone without a mask (« ensemble », or the QPV's)
        tout = cubes["ensemble" if niveau != "qpv" else "qpv"]["etablissements"]
        for i, terr in enumerate(liste):
            sortie = {"territoire": terr.en_dict(), "geographie_qpv": geographie,
                      "millesime": info["millesime"], "points": info["points"]}
            for zone in zones:
                c = cubes[zone]
                sortie[zone] = {
                    "etablissements": c["etablissements"][i].tolist(),
                    "employeurs": c["employeurs"][i].tolist(),
                    "non_employeurs": c["non_employeurs"][i].tolist(),
                    "familles": {m: c["familles"][0][i, j].tolist()
                                 for j, m in enumerate(familles) if c["familles"][1][i, j]},
                    "secteurs": {m: c["secteurs"][0][i, j].tolist()
                                 for j, m in enumerate(secteurs) if c["secteurs"][1][i, j]},
                }
            sortie["localises"] = localises[i].tolist()
            sortie["etablissements_territoire"] = tout[i].tolist()
            sortie["france"] = {"etablissements": list(france), "en_qpv": list(france_qpv)}
            sortie["flux"] = {"annees": annees, **{
                zone: {"creations": cubes["flux_" + zone][i, 0].tolist(),
                       "fermetures": cubes["flux_" + zone][i, 1].tolist()} for zone in zones}}
            sortie["synthetique"] = info["synthetique"]
            sortie["sources"] = info["sources"]
            sortie["avertissements"] = list(info["avertissements"])
            sorties[terr.code] = sortie
    return sorties


def _territoires_du_plan(con, millesime: str) -> list:
    """The territories of the vintage's publication plan (those the answers are stored
    for), as :class:`~essqpv.territoires.Territoire`."""
    from essqpv.indicators.reponses import NIVEAUX_PUBLIES, _libelles
    from essqpv.territoires import Territoire
    try:
        lignes = con.execute(
            "SELECT DISTINCT territoire, niveau FROM publication_cellules WHERE millesime = ? "
            "AND publiee", [millesime]).fetchall()
    except duckdb.CatalogException:
        return []
    lignes = [(c, n) for c, n in lignes if n in NIVEAUX_PUBLIES]
    libelles = _libelles(con, millesime, [c for c, _ in lignes])
    return [Territoire(c, n, libelles[c]) for c, n in sorted(lignes)]


def reponses_evolution(con, millesime: str):
    """``(genre, territoire, perimetre, objet)``: the published series of every territory of
    the plan, in each geography of the series (the QPV of the other geography than the
    vintage's are not territories of the plan: a QPV's series is stored in the vintage's)."""
    # (no failing query: the answers are written inside the build's transaction, which an
    # error would abort)
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = "
                       "'historique_meta'").fetchone()[0]:
        return
    lignes = con.execute("SELECT millesime, geographies, points, synthetique, sources, "
                         "avertissements FROM historique_meta").fetchall()
    if not lignes or lignes[0][0] != millesime:
        return
    ligne = lignes[0]
    geo_m = con.execute("SELECT geographie_qpv FROM millesimes WHERE millesime = ?",
                        [millesime]).fetchall()[0][0]
    info = {"millesime": ligne[0], "geographies": json.loads(ligne[1]),
            "geographie_millesime": geo_m,
            "points": json.loads(ligne[2]), "synthetique": bool(ligne[3]),
            "sources": json.loads(ligne[4]), "avertissements": json.loads(ligne[5])}
    territoires = _territoires_du_plan(con, millesime)
    for geo in info["geographies"]:
        liste = [t for t in territoires if t.niveau != "qpv" or geo == geo_m]
        for code, brute in series_en_bloc(con, info, geo, liste).items():
            yield genre_de(geo, info), code, "strict", publier(brute, copier=False)


def _enregistrer_genre() -> None:
    from essqpv.indicators.reponses import genre_de_reponses
    genre_de_reponses(reponses_evolution)


_enregistrer_genre()


def ecrire_reponses_evolution(base: str | Path, millesime: str) -> int:
    """(Re)write the stored series answers of a vintage whose publication plan is stored
    (after ``essqpv historique``); returns how many (0: the base has no stored plan)."""
    from essqpv import base as B
    from essqpv.indicators.publication import json_reponse
    B.fermer_connexions(base)
    con = duckdb.connect(str(base))
    try:
        try:
            n = con.execute("SELECT count(*) FROM publication_reponses WHERE millesime = ?",
                            [millesime]).fetchall()[0][0]
        except duckdb.CatalogException:
            return 0
        if not n:
            return 0
        lignes = [(g, t, p, json_reponse(o)) for g, t, p, o in reponses_evolution(con, millesime)]
        con.execute("BEGIN")
        con.execute("DELETE FROM publication_reponses WHERE millesime = ? AND (genre = ? "
                    "OR starts_with(genre, ?))", [millesime, GENRE, GENRE + "_"])
        if lignes:
            df = pl.DataFrame({"millesime": millesime, "genre": [x[0] for x in lignes],
                               "territoire": [x[1] for x in lignes],
                               "perimetre": [x[2] for x in lignes],
                               "json": [x[3] for x in lignes]})
            con.register("_rep_evo", df.to_arrow())
            con.execute("INSERT INTO publication_reponses BY NAME SELECT * FROM _rep_evo")
        con.execute("COMMIT")
        return len(lignes)
    finally:
        con.close()
