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

Storage (internal tables, never read by an output):

- ``transition_statuts``: one row per establishment with a status (its QPV in each map);
- ``transition``: the raw counts ``(territoire, statut, dimension, valeur, n_etab,
  n_employeurs, n_sal, n_sal_max)`` per France, région, département, EPCI and commune, by
  family and by sector (``valeur = 'Ensemble'`` for the total);
- ``transition_qpv``: the QPV 2024 without any 2015 predecessor overlapping it (``nouveau``)
  and the QPV 2015 that no QPV 2024 overlaps (``sorti``); overlap: a common area of at least
  1 % of the smaller polygon, measured in the territory's metric CRS, so that slivers of the
  redrawn boundaries do not count. Geography, not statistics: public.

Publication (METHODOLOGY 7): the transition is a linked table of the one publication plan
(:func:`cellules_du_plan`, registered with
:func:`essqpv.indicators.publication.extension_du_plan`), protected together with every
other table, and its answers (genre ``transition``) are written from the plan's published
cells only (:func:`reponses`, registered with
:func:`essqpv.indicators.reponses.genre_de_reponses`). Cells (tableau ``transition``,
perimeter ``strict``, zone = the status or the map total):

- headcounts of employers by status — by family and by sector for France, régions and
  départements, in all for EPCI and communes (their detail would be secret almost
  everywhere, and every cell costs protection time);
- the same for the *other* map's total (``qpv2015`` on a 2024 base); the base map's total is
  the standard cell of the territory (``salaries``, strict, QPV, sector), so that
  ``entrant + maintenu`` is linked with what every other answer publishes; by family it is
  a cell of this table (``qpv2024``), whose families sum to the standard total;
- ``hors_deux_cartes`` (never shown): the employers of the territory in a QPV of neither
  map, so that "outside the QPV" (the territory minus its QPV, derivable from the standard
  answers) = ``sortant`` + this cell;
- the territorial hierarchy (France = régions + rest, région = départements + rest,
  département = communes + rest, EPCI = communes + rest) for every zone and line.

Counts of establishments (employers or not) are public (Sirene is open data): tableau
``transition_etablissements``, never secret.
"""
from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import duckdb
import numpy as np
import polars as pl
import shapely

from essqpv.indicators.publication import extension_du_plan
from essqpv.indicators.reponses import genre_de_reponses

__all__ = ["STATUTS", "ecrire", "calculer_qpv_nouveaux_et_sortis", "cellules",
           "qpv_nouveaux_et_sortis", "tableau", "tableaux",
           "SCHEMA",
           "cellules_du_plan", "reponses", "GENRE", "LIBELLES", "CELLULE_SAL",
           "CELLULE_NOMBRE"]

STATUTS = ("entrant", "sortant", "maintenu")
LIBELLES = {"entrant": "en QPV 2024, pas en 2015", "sortant": "en QPV 2015, plus en 2024",
            "maintenu": "en QPV 2015 et 2024"}
NIVEAUX = (("FR", None), ("REG", "region"), ("DEP", "departement"), ("EPCI", "epci"),
           ("COM", "commune"))
TOTAL = "Ensemble"
GENRE = "transition"
CELLULE_SAL = "transition"
CELLULE_NOMBRE = "transition_etablissements"
HORS = "hors_deux_cartes"
#: suffix of the residual territories of the transition's partitions (their own names: the
#: standard tables' residuals ``~reste`` hold other establishments)
RESTE = "~reste_transition"
#: levels whose headcounts are published by family and by sector (the others: in all)
NIVEAUX_DETAILLES = ("france", "region", "departement")

SCHEMA = """
CREATE TABLE IF NOT EXISTS transition (
    millesime VARCHAR, territoire VARCHAR, statut VARCHAR, dimension VARCHAR,
    valeur VARCHAR, n_etab BIGINT, n_employeurs BIGINT, n_sal DOUBLE, n_sal_max DOUBLE);
CREATE TABLE IF NOT EXISTS transition_qpv (
    millesime VARCHAR, code_qp VARCHAR, geographie VARCHAR, evolution VARCHAR,
    nom_qp VARCHAR, departement VARCHAR, communes VARCHAR);
ALTER TABLE transition_qpv ADD COLUMN IF NOT EXISTS communes VARCHAR;
CREATE TABLE IF NOT EXISTS transition_statuts (
    millesime VARCHAR, siret VARCHAR, qpv_2015 VARCHAR, qpv_2024 VARCHAR, statut VARCHAR);
"""


@lru_cache(maxsize=1)
def qpv_nouveaux_et_sortis() -> pl.DataFrame:
    """QPV 2024 with no overlapping QPV 2015 (``nouveau``) and QPV 2015 with no overlapping
    QPV 2024 (``sorti``): ``code_qp, geographie, evolution, nom_qp, departement, communes``.

    Read from the embedded reference file ``transition_qpv.parquet``, derived from the
    embedded contours by :func:`calculer_qpv_nouveaux_et_sortis` (``scripts/
    preparer_reference.py``; a test checks that it is what that computation gives): the
    1.2 s of reading, projecting and intersecting both maps are not paid by every build."""
    from essqpv import reference
    with reference.chemin("transition_qpv.parquet").open("rb") as f:
        return pl.read_parquet(f)


def calculer_qpv_nouveaux_et_sortis() -> pl.DataFrame:
    """:func:`qpv_nouveaux_et_sortis` computed from the embedded contours (commune codes
    ``;``-separated; for 2015, whose file names its communes, the codes of the communes of
    that name in its département)."""
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
    communes24, communes15 = communes_des_qpv("2024"), communes_des_qpv("2015")
    lignes = [(c24.codes[i], "2024", "nouveau", c24.noms[i], c24.departements[i],
               ";".join(sorted(communes24.get(c24.codes[i], ()))))
              for i in range(len(c24)) if i not in avec24]
    lignes += [(c15.codes[i], "2015", "sorti", c15.noms[i], c15.departements[i],
                ";".join(sorted(communes15.get(c15.codes[i], ()))))
               for i in range(len(c15)) if i not in avec15]
    return pl.DataFrame(lignes, schema=["code_qp", "geographie", "evolution", "nom_qp",
                                        "departement", "communes"], orient="row")


@lru_cache(maxsize=2)
def communes_des_qpv(geographie: str) -> dict[str, frozenset[str]]:
    """Commune codes of each QPV of the embedded contours of a geography (2024: from the
    file; 2015, whose file names its communes: the communes of that name in its
    département)."""
    from essqpv import reference
    from essqpv.sources.qpv import departement_du_code
    from essqpv.territoires import normaliser
    if geographie == "2024":
        t = reference.qpv2024()
        return {c: frozenset(x.strip() for x in (v or "").replace(",", ";").split(";")
                             if x.strip()) for c, v in zip(t["code_qp"], t["communes"])}
    par_nom: dict[tuple, list[str]] = defaultdict(list)
    for code, dep, nom in _noms_communes():
        par_nom[(dep, normaliser(nom))].append(code)
    villes = {"paris": "75056", "marseille": "13055", "lyon": "69123"}  # (arrondissements)

    def codes(qpv: str, noms: str) -> frozenset[str]:
        sortie: set[str] = set()
        for n in (noms or "").split(","):
            n = normaliser(n)
            premier = n.split(" ", 1)[0]
            if premier in villes and n[len(premier):].strip()[:1].isdigit():
                sortie.add(villes[premier])
            sortie.update(par_nom.get((departement_du_code(qpv), n), []))
        return frozenset(sortie)
    t = reference.qpv2015()
    return {c: codes(c, v) for c, v in zip(t["code_qp"], t["commune_qp"])}


def _noms_communes() -> list[tuple[str, str, str]]:
    """(code, département, name) of every commune of the COG."""
    from essqpv.territoires import _index
    return [(t.valeur, t.valeur[:3] if t.valeur.startswith(("97", "98")) else t.valeur[:2],
             t.libelle) for t in _index()[0].values() if t.niveau == "commune"]


def _statuts(con: duckdb.DuckDBPyConnection, millesime: str, geographie: str,
             connus: pl.DataFrame | None = None,
             etablissements: pl.DataFrame | None = None) -> pl.DataFrame:
    """Located active ESS establishments with their QPV in both geographies and a status.

    ``connus`` (``siret, qpv_autre``): the strict QPV on the other map of establishments
    already placed there (the build's placement); the others are placed on the embedded
    contours of the other geography here. ``etablissements``: the rows
    :func:`_etablissements` reads from the base, handed over by the build (its text
    columns may be Enums)."""
    from essqpv.placement import IndexQPV
    from essqpv.sources.qpv import lire_qpv
    if etablissements is None:
        e = _etablissements(con, millesime, "localise")
    else:
        e = etablissements.with_columns(pl.col(c).cast(pl.String) for c, t in
                                        etablissements.schema.items() if isinstance(t, pl.Enum))
    autre = "2015" if geographie == "2024" else "2024"
    if connus is not None:
        e = e.join(connus.select("siret", pl.col("qpv_autre").cast(pl.String),
                                 pl.lit(True).alias("_connu")),
                   on="siret", how="left", maintain_order="left")
        a_placer = e["_connu"].is_null().to_numpy()
        e = e.drop("_connu")
    else:
        e = e.with_columns(pl.lit(None, dtype=pl.String).alias("qpv_autre"))
        a_placer = np.ones(e.height, dtype=bool)
    lignes = np.flatnonzero(a_placer)
    if len(lignes):
        index = IndexQPV(lire_qpv(geographie=autre))
        codes = index.strict(e["lon"].to_numpy().astype(float)[lignes],
                             e["lat"].to_numpy().astype(float)[lignes])
        codes = [None if c is None or c == "" or (isinstance(c, float) and np.isnan(c))
                 else str(c) for c in list(codes)]
        places = pl.Series(codes, dtype=pl.String)
        if len(lignes) == e.height:
            e = e.with_columns(places.alias("qpv_autre"))
        else:
            e = e.with_columns(e["qpv_autre"].scatter(lignes, places))
    q24, q15 = ("qpv", "qpv_autre") if geographie == "2024" else ("qpv_autre", "qpv")
    return e.with_columns(
        pl.col(q24).alias("qpv_2024"), pl.col(q15).alias("qpv_2015")).with_columns(
        pl.when(pl.col("qpv_2024").is_not_null() & pl.col("qpv_2015").is_not_null())
        .then(pl.lit("maintenu"))
        .when(pl.col("qpv_2024").is_not_null()).then(pl.lit("entrant"))
        .when(pl.col("qpv_2015").is_not_null()).then(pl.lit("sortant"))
        .otherwise(None).alias("statut")).filter(pl.col("statut").is_not_null())


def colonnes_etablissements(avec_emplois: bool) -> list:
    """The columns :func:`_etablissements` reads (polars expressions on the base's table)."""
    valeur = "effectif" if avec_emplois else "effectif_estime"
    return ["siret", "famille", "secteur", "employeur",
            pl.col(valeur).fill_null(0).alias("sal"), "commune", "departement", "region",
            "epci", "lon", "lat", "qpv"]


def _etablissements(con, millesime: str, filtre: str) -> pl.DataFrame:
    avec_emplois = con.execute("SELECT avec_emplois FROM millesimes WHERE millesime = ?",
                               [millesime]).fetchall()[0]
    valeur = "effectif" if avec_emplois and avec_emplois[0] else "effectif_estime"
    return con.sql(
        f"SELECT siret, famille, secteur, employeur, coalesce({valeur}, 0) AS sal, commune, "
        "departement, region, epci, lon, lat, qpv FROM etablissements "
        f"WHERE millesime = ? AND {filtre}", params=[millesime]).pl()


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


def _inserer(con, table: str, df: pl.DataFrame) -> None:
    nom = f"_{table}"
    con.register(nom, df.to_arrow())
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {nom}")
    con.unregister(nom)


def ecrire(con: duckdb.DuckDBPyConnection, millesime: str,
           connus: pl.DataFrame | None = None,
           etablissements: pl.DataFrame | None = None,
           geographie: str | None = None) -> dict:
    """Compute the transition of the vintage and store it (tables ``transition``,
    ``transition_statuts`` and ``transition_qpv``), inside the caller's transaction.
    ``connus``, ``etablissements``: see :func:`_statuts`; ``geographie``: the vintage's
    (read from ``millesimes`` when not given). Returns the national counts."""
    con.execute(SCHEMA)
    for table in ("transition", "transition_qpv", "transition_statuts"):
        con.execute(f"DELETE FROM {table} WHERE millesime = ?", [millesime])
    if geographie is None:
        geographie = con.execute("SELECT geographie_qpv FROM millesimes WHERE millesime = ?",
                                 [millesime]).fetchall()[0][0]
    e = _statuts(con, millesime, geographie, connus, etablissements)
    del etablissements
    if e.height:
        _inserer(con, "transition", cellules(e).with_columns(
            pl.lit(millesime).alias("millesime")))
        _inserer(con, "transition_statuts", e.select(
            "siret", "qpv_2015", "qpv_2024", "statut").with_columns(
            pl.lit(millesime).alias("millesime")))
    _inserer(con, "transition_qpv", qpv_nouveaux_et_sortis().with_columns(
        pl.lit(millesime).alias("millesime")))
    return {s: int(e.filter(pl.col("statut") == s).height) for s in STATUTS}


# --------------------------------------------------------------------------------------------
# the linked table of the publication plan


def _statuts_stockes(con, millesime: str, geographie: str) -> pl.DataFrame:
    """The establishments with a status: from ``transition_statuts`` when the build stored
    it, else placed again on the other map's contours."""
    try:
        n = con.execute("SELECT count(*) FROM transition_statuts WHERE millesime = ?",
                        [millesime]).fetchone()[0]
    except duckdb.CatalogException:
        n = None
    if not n:  # (a plan written before the transition of the vintage, in the same build)
        return _statuts(con, millesime, geographie)
    e = _etablissements(con, millesime, "localise")
    s = con.sql("SELECT siret, qpv_2015, qpv_2024, statut FROM transition_statuts "
                "WHERE millesime = ?", params=[millesime]).pl()
    return e.join(s, on="siret", how="inner")


def _appartenances(e: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``e`` once per territory they belong to (``territoire``, ``niveau``), and
    the residual territories completing each partition (``niveau = 'residu'``)."""
    reg, dep, com, epci = (pl.col(c) for c in ("region", "departement", "commune", "epci"))
    parts = [
        e.with_columns(pl.lit("FR").alias("territoire"), pl.lit("france").alias("niveau")),
        e.filter(reg.is_not_null()).with_columns(("REG:" + reg).alias("territoire"),
                                                 pl.lit("region").alias("niveau")),
        e.filter(dep.is_not_null()).with_columns(("DEP:" + dep).alias("territoire"),
                                                 pl.lit("departement").alias("niveau")),
        e.filter(epci.is_not_null()).with_columns(("EPCI:" + epci).alias("territoire"),
                                                  pl.lit("epci").alias("niveau")),
        e.filter(com.is_not_null()).with_columns(("COM:" + com).alias("territoire"),
                                                 pl.lit("commune").alias("niveau")),
        e.filter(reg.is_null()).with_columns(pl.lit("FR" + RESTE).alias("territoire"),
                                             pl.lit("residu").alias("niveau")),
        e.filter(reg.is_not_null() & dep.is_null()).with_columns(
            ("REG:" + reg + RESTE).alias("territoire"), pl.lit("residu").alias("niveau")),
        e.filter(dep.is_not_null() & com.is_null()).with_columns(
            ("DEP:" + dep + RESTE).alias("territoire"), pl.lit("residu").alias("niveau")),
        e.filter(epci.is_not_null() & com.is_null()).with_columns(
            ("EPCI:" + epci + RESTE).alias("territoire"), pl.lit("residu").alias("niveau")),
    ]
    return pl.concat(parts, how="vertical")


def _lignes(e: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``e`` once per line: ``Ensemble``, ``secteur:…``, ``famille:…``."""
    return pl.concat([
        e.with_columns(pl.lit(TOTAL).alias("ligne")),
        e.with_columns(("secteur:" + pl.col("secteur").fill_null("Non classé")).alias("ligne")),
        e.with_columns(("famille:" + pl.col("famille").fill_null("inconnue")).alias("ligne")),
    ], how="vertical")


def _agreger(e: pl.DataFrame, zone: pl.Expr) -> dict[tuple, tuple]:
    """(territoire, zone, ligne) → (niveau, employers, headcount, largest headcount)."""
    g = e.with_columns(zone.alias("zone")).group_by("territoire", "niveau", "zone", "ligne").agg(
        pl.len().alias("n"), pl.col("sal").sum().alias("v"), pl.col("sal").max().alias("mx"))
    return {(t, z, li): (niv, int(n), float(v or 0.0), float(mx or 0.0))
            for t, niv, z, li, n, v, mx in g.iter_rows()}


def cellules_du_plan(plan, con, millesime: str) -> dict:
    """Register the transition's cells and relations into the publication plan (see the
    module doc). Returns the number of cells and relations added (for the benchmarks)."""
    from essqpv.indicators.publication import ENS, SAL
    avant_cellules, avant_relations = len(plan), len(plan.relations)
    geo = con.execute("SELECT geographie_qpv FROM millesimes WHERE millesime = ?",
                      [millesime]).fetchone()[0]
    if geo not in ("2015", "2024"):
        return {"cellules": 0, "relations": 0}
    st = _statuts_stockes(con, millesime, geo)
    if st.height == 0:
        return {"cellules": 0, "relations": 0}
    autre = "2015" if geo == "2024" else "2024"
    dehors = "sortant" if geo == "2024" else "entrant"   # in the other map only
    statuts_de = {"2024": ("entrant", "maintenu"), "2015": ("sortant", "maintenu")}
    z_autre, z_base = f"qpv{autre}", f"qpv{geo}"

    def standard(terr: str, ligne: str, zone: str = "qpv") -> int | None:
        if terr.endswith(RESTE):
            return None
        if ligne == TOTAL:
            return plan.indice((SAL, terr, "strict", zone, ENS))
        if ligne.startswith("secteur:"):
            return plan.indice((SAL, terr, "strict", zone, ligne[len("secteur:"):]))
        return None

    membres = _lignes(_appartenances(st))
    # establishment counts (public): every level, every line
    for (terr, z, ligne), (niv, n, _, _) in _agreger(membres, pl.col("statut")).items():
        if niv != "residu":
            plan.cellule(CELLULE_NOMBRE, terr, "strict", z, ligne, n, niveau=niv)

    emp = membres.filter(pl.col("employeur"))
    detail = pl.col("niveau").is_in(list(NIVEAUX_DETAILLES)) | (
        (pl.col("niveau") == "residu") & (pl.col("territoire").str.starts_with("FR~")
                                          | pl.col("territoire").str.starts_with("REG:")))
    emp = emp.filter(detail | (pl.col("ligne") == TOTAL))
    donnees = _agreger(emp, pl.col("statut"))
    dans_autre = emp.filter(pl.col("statut").is_in([dehors, "maintenu"]))
    donnees.update(_agreger(dans_autre, pl.lit(z_autre)))
    dans_base = emp.filter(pl.col("statut").is_in(list(statuts_de[geo]))
                           & pl.col("ligne").str.starts_with("famille:"))
    donnees.update(_agreger(dans_base, pl.lit(z_base)))

    # employers of each territory in a QPV of neither map (never shown), where the
    # standard tables have the territory's "outside the QPV"
    avec = {t for t, _, _ in donnees}
    tous = _etablissements(con, millesime, "employeur AND qpv IS NULL").join(
        st.select("siret"), on="siret", how="anti")
    ni = _lignes(_appartenances(tous)).filter(
        pl.col("territoire").is_in(list(avec)) & (
            (pl.col("ligne") == TOTAL) | ((pl.col("territoire") == "FR")
                                          & pl.col("ligne").str.starts_with("secteur:"))))
    donnees.update({k: x for k, x in _agreger(ni, pl.lit(HORS)).items()
                    if standard(k[0], k[2], "hors") is not None})

    index: dict[tuple, int] = {}
    for (terr, z, ligne), (niv, n, v, mx) in sorted(donnees.items()):
        publiee = niv != "residu" and z != HORS
        index[(terr, z, ligne)] = plan.cellule(CELLULE_SAL, terr, "strict", z, ligne, n, v, mx,
                                               publiee=publiee, niveau=niv)

    def cellule(terr: str, z: str, ligne: str) -> int | None:
        if z == z_base and not ligne.startswith("famille:"):
            return standard(terr, ligne)
        return index.get((terr, z, ligne))

    def relation(total: int | None, parts: list[int | None]) -> None:
        parts = [p for p in parts if p is not None]
        if total is None or not parts:
            return
        # only the identities that hold (an establishment the standard table places in a QPV
        # without the coordinates the transition needs: no relation, not a false one)
        n = sum(plan.nombre[p] for p in parts)
        v = sum(plan.valeur[p] for p in parts)
        if n == plan.nombre[total] and abs(v - plan.valeur[total]) <= 1e-6 * max(
                1.0, abs(plan.valeur[total])):
            plan.relation(total, parts)

    territoires: dict[str, set[str]] = defaultdict(set)   # territory → its lines
    for terr, _, ligne in donnees:
        territoires[terr].add(ligne)
    zones = (*STATUTS, z_autre, z_base)
    for terr, lignes in territoires.items():
        secteurs = [li for li in lignes if li.startswith("secteur:")]
        familles = [li for li in lignes if li.startswith("famille:")]
        for z in zones:
            # lines: the total is the sum of the sectors, and of the families
            for groupe in (secteurs, familles):
                if groupe and not (z == z_base and groupe is secteurs):
                    relation(cellule(terr, z, TOTAL), [cellule(terr, z, li) for li in groupe])
        for ligne in lignes:
            # maps: each map's total is the sum of its statuses
            for carte, z in ((geo, z_base), (autre, z_autre)):
                relation(cellule(terr, z, ligne),
                         [cellule(terr, s, ligne) for s in statuts_de[carte]])
            # outside the base map's QPV = in the other map only + in neither
            relation(standard(terr, ligne, "hors"),
                     [cellule(terr, dehors, ligne), index.get((terr, HORS, ligne))])

    # the territorial hierarchy, for every zone and line
    enfants: dict[str, set[str]] = defaultdict(set)
    for reg, dep, epci, com in st.select("region", "departement", "epci", "commune"
                                         ).unique().iter_rows():
        enfants["FR"].add(f"REG:{reg}" if reg else "FR" + RESTE)
        if reg:
            enfants[f"REG:{reg}"].add(f"DEP:{dep}" if dep else f"REG:{reg}{RESTE}")
        if dep:
            enfants[f"DEP:{dep}"].add(f"COM:{com}" if com else f"DEP:{dep}{RESTE}")
        if epci:
            enfants[f"EPCI:{epci}"].add(f"COM:{com}" if com else f"EPCI:{epci}{RESTE}")
    for parent, fils in enfants.items():
        for ligne in territoires.get(parent, ()):
            for z in zones:
                if z == z_base and not ligne.startswith("famille:"):
                    continue  # the standard cells have their own hierarchy
                relation(cellule(parent, z, ligne), [cellule(f, z, ligne) for f in sorted(fils)])
    return {"cellules": len(plan) - avant_cellules,
            "relations": len(plan.relations) - avant_relations}


extension_du_plan(cellules_du_plan, comptes=(CELLULE_NOMBRE,))


# --------------------------------------------------------------------------------------------
# the answers (genre "transition"), from the plan's published cells only

NIVEAUX_REPONSES = ("france", "region", "departement", "epci", "commune")
LIBELLES_FAMILLES = {"association": "Associations", "fondation": "Fondations",
                     "mutuelle": "Mutuelles", "cooperative": "Coopératives",
                     "societe_commerciale_ess": "Sociétés commerciales de l'ESS"}
ZONES_REPONSE = (*STATUTS, "qpv2015", "qpv2024")
LIBELLES_ZONES = {**LIBELLES, "qpv2015": "en QPV 2015", "qpv2024": "en QPV 2024"}
AVERTISSEMENT = ("Transition calculée sur les contours intégrés des deux géographies (2024 : "
                 "copie ANCT arrondie à ≈ 11 m) ; périmètre strict, établissements localisés "
                 "de l'ESS actifs au millésime.")
AVERTISSEMENT_SECRET = ("Secret statistique appliqué aux salariés avec toutes les autres "
                        "tables (plan de publication unique) : « s » = case masquée ; les "
                        "nombres d'établissements sont publics. Salariés par famille et par "
                        "secteur publiés pour la France, les régions et les départements ; "
                        "pour les EPCI et les communes, en tout seulement.")


def _lignes_reponse() -> list[tuple[str, str, str]]:
    """(cell line, dimension, label) of the transition table, total first."""
    from essqpv import reference
    return ([(TOTAL, "ensemble", "Ensemble")]
            + [(f"famille:{f}", "famille", LIBELLES_FAMILLES.get(f, f))
               for f in reference.FAMILLES]
            + [(f"secteur:{s}", "secteur", s) for s in reference.SECTEURS])


def _qpv_du_territoire(qpv: list[tuple], terr: str, niveau: str) -> list[tuple]:
    """The new and left QPV (rows of ``transition_qpv``) of a territory."""
    from essqpv import reference
    v = terr.split(":", 1)[1] if ":" in terr else terr
    if niveau == "france":
        return qpv
    if niveau == "departement":
        return [q for q in qpv if q[4] == v]
    if niveau == "region":
        deps = {d["code"] for d in reference.departements() if d.get("region") == v}
        return [q for q in qpv if q[4] in deps]
    communes = {v} if niveau == "commune" else _communes_par_epci().get(v, set())
    return [q for q in qpv if communes & set((q[5] or "").split(";"))]


@lru_cache(maxsize=1)
def _communes_par_epci() -> dict[str, set[str]]:
    from essqpv.territoires import table_communes
    d: dict[str, set[str]] = defaultdict(set)
    for c, e in table_communes().select("commune", "epci").unique("commune").iter_rows():
        if e:
            d[e].add(c)
    return d


def reponses(con, millesime: str):
    """Yield ``("transition", territoire, "strict", answer)`` for France, every région,
    département, and every EPCI and commune of the plan, from ``publication_cellules``."""
    from essqpv.couverture import NON_COUVERT, note_totaux, qpv_hors_sirene, territoire_hors_sirene
    from essqpv.indicators.compute import _salaries
    from essqpv.indicators.publication import ENS, SAL, avertissement_synthetique
    from essqpv.indicators.reponses import _meta
    from essqpv.territoires import _index
    try:
        geo = con.execute("SELECT geographie_qpv FROM millesimes WHERE millesime = ?",
                          [millesime]).fetchone()[0]
    except (duckdb.Error, TypeError):
        return
    if geo not in ("2015", "2024"):
        return
    meta = _meta(con, millesime)
    z_base = f"qpv{geo}"
    cel: dict[tuple, tuple] = {}
    niveaux: dict[str, str] = {}
    for tab, terr, niv, zone, ligne, n, v, st in con.execute(
            "SELECT tableau, territoire, niveau, zone, ligne, nombre, valeur, statut "
            "FROM publication_cellules WHERE millesime = ? AND publiee AND perimetre = 'strict' "
            "AND (tableau IN (?, ?) OR (tableau = ? AND zone = 'qpv'))",
            [millesime, CELLULE_SAL, CELLULE_NOMBRE, SAL]).fetchall():
        if niv not in NIVEAUX_REPONSES:
            continue
        if tab == SAL:
            ligne = TOTAL if ligne == ENS else f"secteur:{ligne}"
            tab, zone = CELLULE_SAL, z_base
        cel[(tab, terr, zone, ligne)] = (int(n), float(v or 0.0), st)
        niveaux[terr] = niv
    if not cel:
        return
    try:
        qpv = con.execute("SELECT code_qp, geographie, evolution, nom_qp, departement, "
                          "communes FROM transition_qpv WHERE millesime = ? "
                          "ORDER BY geographie DESC, code_qp", [millesime]).fetchall()
    except duckdb.Error:
        qpv = []
    if not qpv:  # (answers written before the transition of the vintage, in the same build)
        qpv = [(c, g, ev, nom, d, com) for c, g, ev, nom, d, com in
               qpv_nouveaux_et_sortis().sort(["geographie", "code_qp"], descending=[True, False]
                                             ).iter_rows()]
    par_code = _index()[0]
    n_hors = qpv_hors_sirene(con, millesime)
    detail = set(NIVEAUX_DETAILLES)
    for terr, niveau in sorted(niveaux.items()):
        t = par_code.get(terr)
        libelle = t.libelle if t is not None else terr
        non_couvert = t is not None and territoire_hors_sirene(t)
        lignes = []
        for ligne, dimension, lib in _lignes_reponse():
            nb = {s: cel.get((CELLULE_NOMBRE, terr, s, ligne), (0, 0.0, None))[0]
                  for s in STATUTS}
            etab = {**nb, "qpv2015": nb["sortant"] + nb["maintenu"],
                    "qpv2024": nb["entrant"] + nb["maintenu"]}
            r: dict = {"ligne": ligne, "dimension": dimension, "libelle": lib,
                       "etablissements": etab}
            if niveau in detail or ligne == TOTAL:
                emp, sal, secret = {}, {}, {}
                for z in ZONES_REPONSE:
                    n, v, st = cel.get((CELLULE_SAL, terr, z, ligne), (0, 0.0, None))
                    emp[z] = n
                    sal[z] = None if st else _salaries(v)
                    if st:
                        secret[z] = st
                r.update(employeurs=emp, salaries=sal, secret=secret)
            else:
                r.update(employeurs=None, salaries=None, secret={})
            if non_couvert:
                r.update(etablissements={z: None for z in ZONES_REPONSE},
                         employeurs={z: None for z in ZONES_REPONSE},
                         salaries={z: None for z in ZONES_REPONSE}, secret={})
            lignes.append(r)
        choisis = _qpv_du_territoire(qpv, terr, niveau)
        avert = [AVERTISSEMENT, AVERTISSEMENT_SECRET]
        if meta["synthetique"]:
            avert.insert(0, avertissement_synthetique())
        if not meta["avec_emplois"]:
            avert.append("Salariés estimés au centre de la tranche d'effectif Insee (aucun "
                         "fichier des emplois).")
        if niveau == "france" and (note := note_totaux(n_hors, geo)):
            avert.append(note)
        obj: dict = {
            "territoire": {"code": terr, "niveau": niveau, "libelle": libelle},
            "millesime": millesime, "perimetre": "strict", "geographie_qpv": geo,
            "synthetique": meta["synthetique"], "zones": dict(LIBELLES_ZONES),
            "salaries_par_ligne": niveau in detail, "lignes": lignes,
            "qpv_nouveaux": [_qpv(q) for q in choisis if q[2] == "nouveau"],
            "qpv_sortis": [_qpv(q) for q in choisis if q[2] == "sorti"],
            "sources": meta["sources"], "avertissements": avert,
        }
        if non_couvert:
            obj["couverture"] = NON_COUVERT
            avert.insert(0, _non_couvert())
        yield GENRE, terr, "strict", obj


def _qpv(q: tuple) -> dict:
    return {"code_qp": q[0], "geographie": q[1], "nom_qp": q[3], "departement": q[4],
            "communes": q[5] or ""}


def _non_couvert() -> str:
    from essqpv.couverture import NON_COUVERT
    return (f"Territoire {NON_COUVERT} : la Polynésie française a son propre répertoire des "
            "entreprises (ISPF) ; aucun chiffre n'est calculé (ce n'est pas zéro).")


genre_de_reponses(reponses)


# --------------------------------------------------------------------------------------------
# reading


def tableau(base, territoire: str = "FR", millesime: str | None = None) -> dict:
    """The protected transition of a territory: the stored answer of the publication
    (genre ``transition``), for France, a région, a département, an EPCI or a commune.

    A territory of the register without any ESS establishment in a QPV of either map gets
    the same answer with zeros (its établissements are public counts: nothing is hidden).

    Raises
    ------
    ParametreInvalide
        A QPV (the transition is by territory), or a base whose publication was not
        written (built before this version).
    TerritoireInconnu
        Unknown territory.
    """
    from essqpv.base import millesime_par_defaut, ouvrir
    from essqpv.errors import ParametreInvalide
    from essqpv.territoires import resoudre
    m = millesime_par_defaut(base, millesime)
    t = resoudre(territoire)
    if t.niveau not in NIVEAUX_REPONSES:
        raise ParametreInvalide(
            f"La transition 2015 → 2024 est publiée pour la France, les régions, les "
            f"départements, les EPCI et les communes, pas pour « {t.libelle} » ({t.niveau}).")
    con = ouvrir(base)
    try:
        try:
            lignes = con.execute(
                "SELECT territoire, json FROM publication_reponses WHERE millesime = ? AND "
                "genre = ? AND territoire IN (?, 'FR')", [m, GENRE, t.code]).fetchall()
        except duckdb.CatalogException:
            lignes = []
    finally:
        con.close()
    par = dict(lignes)
    if "FR" not in par:
        raise ParametreInvalide(
            f"La base {base} n'a pas de publication protégée (plan de publication) pour le "
            f"millésime {m} : la transition 2015 → 2024 n'est publiée qu'à partir d'elle, "
            "protégée avec toutes les autres tables (docs/methodologie.md, 6.8).")
    import json
    if t.code in par:
        return json.loads(par[t.code])
    return _reponse_nulle(json.loads(par["FR"]), t)


def tableaux(base, codes: list[str], millesime: str) -> dict[str, dict]:
    """The stored answers of several territories at once (those the base has)."""
    import json

    from essqpv.base import ouvrir
    if not codes:
        return {}
    con = ouvrir(base)
    try:
        try:
            lignes = con.execute(
                "SELECT territoire, json FROM publication_reponses WHERE millesime = ? AND "
                f"genre = ? AND territoire IN ({', '.join('?' * len(codes))})",
                [millesime, GENRE, *codes]).fetchall()
        except duckdb.CatalogException:
            lignes = []
    finally:
        con.close()
    return {t: json.loads(j) for t, j in lignes}


def _reponse_nulle(fr: dict, t) -> dict:
    """The answer of a territory without any establishment in a QPV of either map."""
    from essqpv.couverture import NON_COUVERT, territoire_hors_sirene
    non_couvert = territoire_hors_sirene(t)
    detail = t.niveau in NIVEAUX_DETAILLES
    r = dict(fr)
    r["territoire"] = t.en_dict()
    r["salaries_par_ligne"] = detail
    zero = None if non_couvert else 0
    r["lignes"] = [{"ligne": li["ligne"], "dimension": li["dimension"], "libelle": li["libelle"],
                    "etablissements": {z: zero for z in ZONES_REPONSE},
                    **({"employeurs": {z: zero for z in ZONES_REPONSE},
                        "salaries": {z: zero for z in ZONES_REPONSE}}
                       if detail or li["ligne"] == TOTAL else
                       {"employeurs": None, "salaries": None}), "secret": {}}
                   for li in fr["lignes"]]
    qpv = [(q["code_qp"], q["geographie"], None, q["nom_qp"], q["departement"],
            q.get("communes")) for q in fr["qpv_nouveaux"] + fr["qpv_sortis"]]
    choisis = {q[0] for q in _qpv_du_territoire(qpv, t.code, t.niveau)}
    r["qpv_nouveaux"] = [q for q in fr["qpv_nouveaux"] if q["code_qp"] in choisis]
    r["qpv_sortis"] = [q for q in fr["qpv_sortis"] if q["code_qp"] in choisis]
    r["avertissements"] = [a for a in fr["avertissements"] if not a.startswith("Totaux hors")]
    if non_couvert:
        r["couverture"] = NON_COUVERT
        r["avertissements"].insert(0, _non_couvert())
    return r
