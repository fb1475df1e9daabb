"""What the 2024 priority map changes: establishments in QPV 2015 only, 2024 only, both.

Computed at build time (:func:`ecrire`, inside the build's transaction) for every active
ESS establishment of the vintage that is located: its strict QPV in the vintage's geography
comes from the build; its strict QPV in the other geography from the embedded contours of
that geography (:class:`essqpv.placement.IndexQPV`). Each establishment in a QPV of at
least one map gets a status:

- ``entrant``: in a QPV 2024, in no QPV 2015 (the new map brings it in);
- ``sortant``: in a QPV 2015, in no QPV 2024 (it left the map);
- ``maintenu``: in a QPV of both maps.

So, for any territory, ``entrant + maintenu`` = establishments in QPV 2024 and
``sortant + maintenu`` = establishments in QPV 2015 (tested on the demo).

The cells are plain rows ``(territoire, statut, dimension, valeur, n_etab, n_employeurs,
n_sal, n_sal_max)`` per France, région, département, EPCI and commune, by family and by
sector (``valeur = 'Ensemble'`` for the total): the form a publication plan can take in.
Headcounts are protected by :func:`essqpv.indicators.confidentiality.proteger_tableau`
(primary and secondary secret, one 2-D table status × family — or sector — with its margins
per territory): outputs read ``n_sal_publie`` (NULL when suppressed) and ``secret``;
counts of establishments are public (Sirene is open data).

The QPV 2024 without any 2015 predecessor overlapping it (``nouveau``) and the QPV 2015
that no QPV 2024 overlaps (``sorti``) are listed in ``transition_qpv`` (overlap: a common
area of at least 1 % of the smaller polygon, measured in the territory's metric CRS, so
that slivers of the redrawn boundaries do not count).
"""
from __future__ import annotations

from functools import lru_cache

import duckdb
import numpy as np
import polars as pl
import shapely

__all__ = ["STATUTS", "ecrire", "cellules", "qpv_nouveaux_et_sortis", "tableau", "SCHEMA"]

STATUTS = ("entrant", "sortant", "maintenu")
LIBELLES = {"entrant": "en QPV 2024, pas en 2015", "sortant": "en QPV 2015, plus en 2024",
            "maintenu": "en QPV 2015 et 2024"}
NIVEAUX = (("FR", None), ("REG", "region"), ("DEP", "departement"), ("EPCI", "epci"),
           ("COM", "commune"))
TOTAL = "Ensemble"

SCHEMA = """
CREATE TABLE IF NOT EXISTS transition (
    millesime VARCHAR, territoire VARCHAR, statut VARCHAR, dimension VARCHAR,
    valeur VARCHAR, n_etab BIGINT, n_employeurs BIGINT, n_sal DOUBLE, n_sal_max DOUBLE,
    n_sal_publie DOUBLE, secret VARCHAR);
CREATE TABLE IF NOT EXISTS transition_qpv (
    millesime VARCHAR, code_qp VARCHAR, geographie VARCHAR, evolution VARCHAR,
    nom_qp VARCHAR, departement VARCHAR);
"""


@lru_cache(maxsize=1)
def qpv_nouveaux_et_sortis() -> pl.DataFrame:
    """QPV 2024 with no overlapping QPV 2015 (``nouveau``) and QPV 2015 with no overlapping
    QPV 2024 (``sorti``), from the embedded contours: ``code_qp, geographie, evolution,
    nom_qp, departement``."""
    from essqpv.sources.qpv import lire_qpv
    c24, c15 = lire_qpv(geographie="2024"), lire_qpv(geographie="2015")
    m24, m15 = c24.geometries_metriques(), c15.geometries_metriques()
    arbre = shapely.STRtree(c15.geometries)
    i24, i15 = arbre.query(c24.geometries, predicate="intersects")
    meme = c24.epsg_metriques[i24] == c15.epsg_metriques[i15]
    i24, i15 = i24[meme], i15[meme]
    # (the reprojection can leave tiny self-intersections: repaired before intersecting)
    commun = shapely.area(shapely.intersection(shapely.make_valid(m24[i24]),
                                               shapely.make_valid(m15[i15])))
    petit = np.minimum(shapely.area(m24[i24]), shapely.area(m15[i15]))
    vrai = commun >= 0.01 * petit
    avec24, avec15 = set(i24[vrai].tolist()), set(i15[vrai].tolist())
    lignes = [(c24.codes[i], "2024", "nouveau", c24.noms[i], c24.departements[i])
              for i in range(len(c24)) if i not in avec24]
    lignes += [(c15.codes[i], "2015", "sorti", c15.noms[i], c15.departements[i])
               for i in range(len(c15)) if i not in avec15]
    return pl.DataFrame(lignes, schema=["code_qp", "geographie", "evolution", "nom_qp",
                                        "departement"], orient="row")


def _statuts(con: duckdb.DuckDBPyConnection, millesime: str, geographie: str) -> pl.DataFrame:
    """Located active ESS establishments with their QPV in both geographies and a status."""
    from essqpv.placement import IndexQPV
    from essqpv.sources.qpv import lire_qpv
    avec_emplois = con.execute("SELECT avec_emplois FROM millesimes WHERE millesime = ?",
                               [millesime]).fetchall()[0]
    valeur = "effectif" if avec_emplois and avec_emplois[0] else "effectif_estime"
    e = con.sql(
        f"SELECT siret, famille, secteur, employeur, coalesce({valeur}, 0) AS sal, commune, "
        "departement, region, epci, lon, lat, qpv FROM etablissements "
        "WHERE millesime = ? AND localise", params=[millesime]).pl()
    autre = "2015" if geographie == "2024" else "2024"
    index = IndexQPV(lire_qpv(geographie=autre))
    codes = index.strict(e["lon"].to_numpy().astype(float), e["lat"].to_numpy().astype(float))
    codes = [None if c is None or c == "" or (isinstance(c, float) and np.isnan(c)) else str(c)
             for c in list(codes)]
    e = e.with_columns(pl.Series("qpv_autre", codes, dtype=pl.String))
    q24, q15 = ("qpv", "qpv_autre") if geographie == "2024" else ("qpv_autre", "qpv")
    return e.with_columns(
        pl.col(q24).alias("qpv_2024"), pl.col(q15).alias("qpv_2015")).with_columns(
        pl.when(pl.col("qpv_2024").is_not_null() & pl.col("qpv_2015").is_not_null())
        .then(pl.lit("maintenu"))
        .when(pl.col("qpv_2024").is_not_null()).then(pl.lit("entrant"))
        .when(pl.col("qpv_2015").is_not_null()).then(pl.lit("sortant"))
        .otherwise(None).alias("statut")).filter(pl.col("statut").is_not_null())


def cellules(e: pl.DataFrame) -> pl.DataFrame:
    """The raw cells of the transition of establishments ``e`` (one row each with
    ``statut, famille, secteur, employeur, sal`` and the territory columns)."""
    parts = []
    e = e.with_columns(pl.col("sal").cast(pl.Float64),
                       pl.when(pl.col("employeur")).then(pl.col("sal")).otherwise(0.0)
                       .alias("sal_emp"))
    for prefixe, col in NIVEAUX:
        terr = pl.lit("FR") if col is None else pl.lit(f"{prefixe}:") + pl.col(col)
        base = e.with_columns(terr.alias("territoire"))
        if col is not None:
            base = base.filter(pl.col(col).is_not_null())
        for dimension in ("famille", "secteur"):
            for statut_col, valeur_col in ((pl.col("statut"), pl.col(dimension)),
                                           (pl.col("statut"), pl.lit(TOTAL)),
                                           (pl.lit(TOTAL), pl.col(dimension)),
                                           (pl.lit(TOTAL), pl.lit(TOTAL))):
                g = base.with_columns(statut_col.alias("s"), valeur_col.fill_null("Non classé")
                                      .alias("v")).group_by("territoire", "s", "v").agg(
                    pl.len().alias("n_etab"), pl.col("employeur").sum().alias("n_employeurs"),
                    pl.col("sal_emp").sum().alias("n_sal"),
                    pl.col("sal_emp").max().alias("n_sal_max"))
                parts.append(g.with_columns(pl.lit(dimension).alias("dimension")))
    t = pl.concat(parts).rename({"s": "statut", "v": "valeur"}).unique(
        ["territoire", "statut", "dimension", "valeur"], keep="first")
    return t.select("territoire", "statut", "dimension", "valeur",
                    pl.col("n_etab").cast(pl.Int64), pl.col("n_employeurs").cast(pl.Int64),
                    "n_sal", "n_sal_max").sort("territoire", "dimension", "statut", "valeur")


def _proteger(t: pl.DataFrame) -> pl.DataFrame:
    """Secret of the headcounts: one 2-D table (status × value, with margins) per territory
    and dimension (the existing confidentiality functions of essqpv.indicators)."""
    from essqpv.indicators.confidentiality import Cellule, proteger_tableau
    statuts: dict[tuple, str | None] = {}
    for (terr, dim), g in t.group_by(["territoire", "dimension"], maintain_order=True):
        valeurs: dict = {}
        for r in g.iter_rows(named=True):
            valeurs.setdefault(r["statut"], {})[r["valeur"]] = Cellule(
                nombre=int(r["n_employeurs"]), effectif=float(r["n_sal"]),
                effectif_max=float(r["n_sal_max"] or 0.0))
        res = proteger_tableau(valeurs, with_margins=True, total=TOTAL)
        for s, ligne in res.items():
            for v, st in ligne.items():
                statuts[(terr, dim, s, v)] = st
    secret = [statuts.get((a, b, c, d)) for a, b, c, d in
              t.select("territoire", "dimension", "statut", "valeur").iter_rows()]
    t = t.with_columns(pl.Series("secret", secret, dtype=pl.String))
    return t.with_columns(pl.when(pl.col("secret").is_null()).then(pl.col("n_sal"))
                          .otherwise(None).alias("n_sal_publie"))


def ecrire(con: duckdb.DuckDBPyConnection, millesime: str) -> dict:
    """Compute the transition of the vintage and store it (tables ``transition`` and
    ``transition_qpv``), inside the caller's transaction. Returns the national counts."""
    con.execute(SCHEMA)
    for table in ("transition", "transition_qpv"):
        con.execute(f"DELETE FROM {table} WHERE millesime = ?", [millesime])
    geographie = con.execute("SELECT geographie_qpv FROM millesimes WHERE millesime = ?",
                             [millesime]).fetchall()[0][0]
    e = _statuts(con, millesime, geographie)
    t = _proteger(cellules(e)) if e.height else pl.DataFrame(
        schema={"territoire": pl.String, "statut": pl.String, "dimension": pl.String,
                "valeur": pl.String, "n_etab": pl.Int64, "n_employeurs": pl.Int64,
                "n_sal": pl.Float64, "n_sal_max": pl.Float64, "secret": pl.String,
                "n_sal_publie": pl.Float64})
    con.register("_transition", t.with_columns(pl.lit(millesime).alias("millesime")).to_arrow())
    con.execute("INSERT INTO transition BY NAME SELECT * FROM _transition")
    con.unregister("_transition")
    q = qpv_nouveaux_et_sortis().with_columns(pl.lit(millesime).alias("millesime"))
    con.register("_tq", q.to_arrow())
    con.execute("INSERT INTO transition_qpv BY NAME SELECT * FROM _tq")
    con.unregister("_tq")
    return {s: int(e.filter(pl.col("statut") == s).height) for s in STATUTS}


def tableau(base, territoire: str = "FR", millesime: str | None = None,
            dimension: str = "famille") -> dict:
    """The protected transition of a territory: rows per status, columns per family (or
    sector), with ``n_etab`` (public) and ``n_sal`` (None when suppressed); plus the QPV
    that are new or that left, in the territory's départements.

    Raises
    ------
    ParametreInvalide
        Unknown dimension, or a base built before the transition existed.
    """
    from essqpv.base import metadonnees, millesime_par_defaut, ouvrir
    from essqpv.errors import ParametreInvalide
    from essqpv.territoires import resoudre
    if dimension not in ("famille", "secteur"):
        raise ParametreInvalide(f"Dimension inconnue : {dimension} (famille ou secteur).")
    m = millesime_par_defaut(base, millesime)
    t = resoudre(territoire)
    meta = metadonnees(base, m)
    con = ouvrir(base)
    try:
        try:
            lignes = con.execute(
                "SELECT statut, valeur, n_etab, n_sal_publie, secret FROM transition "
                "WHERE millesime = ? AND territoire = ? AND dimension = ? "
                "ORDER BY statut, valeur", [m, t.code, dimension]).fetchall()
        except duckdb.CatalogException:
            raise ParametreInvalide(
                f"La base {base} n'a pas de table de transition 2015 → 2024 (construite avant "
                "cette version) : reconstruisez le millésime avec essqpv construire.") from None
        deps = None
        if t.niveau == "departement":
            deps = [t.valeur]
        elif t.niveau == "region":
            from essqpv import reference
            deps = [d["code"] for d in reference.departements() if d["region"] == t.valeur]
        q = con.execute("SELECT code_qp, geographie, evolution, nom_qp, departement FROM "
                        "transition_qpv WHERE millesime = ? ORDER BY geographie DESC, code_qp",
                        [m]).fetchall()
    finally:
        con.close()
    cases: dict = {}
    for statut, valeur, n, sal, secret in lignes:
        cases.setdefault(statut, {})[valeur] = {
            "n_etab": int(n), "n_sal": None if sal is None else round(float(sal)),
            "secret": secret}
    qpv = [{"code_qp": c, "geographie": g, "evolution": ev, "nom_qp": nom, "departement": d}
           for c, g, ev, nom, d in q if deps is None or d in deps]
    return {"territoire": t.en_dict(), "millesime": m, "dimension": dimension,
            "geographie_millesime": meta["geographie_qpv"], "statuts": dict(LIBELLES),
            "cases": cases, "qpv_nouveaux": [x for x in qpv if x["evolution"] == "nouveau"],
            "qpv_sortis": [x for x in qpv if x["evolution"] == "sorti"],
            "avertissements": [
                "Transition calculée sur les contours intégrés des deux géographies (2024 : "
                "copie ANCT arrondie à ≈ 11 m) ; périmètre strict, établissements localisés.",
                "Secret statistique appliqué aux salariés (règles primaire et secondaire, "
                "essqpv.indicators.confidentiality) ; les nombres d'établissements sont "
                "publics."]}
