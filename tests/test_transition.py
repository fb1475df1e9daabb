"""The 2015 → 2024 transition on the demo base (synthetic register on the 2024 map, with its
2015 codes): entering + staying = in QPV 2024, leaving + staying = in QPV 2015."""
from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from essqpv import transition as T
from essqpv.placement import IndexQPV
from essqpv.sources.qpv import lire_qpv


def _etablissements(base) -> pl.DataFrame:
    con = duckdb.connect(str(base), read_only=True)
    try:
        return con.sql("SELECT siret, famille, secteur, departement, lon, lat, qpv "
                       "FROM etablissements WHERE millesime = '2024-01' AND localise").pl()
    finally:
        con.close()


def test_transition_dans_la_base_de_demo(base_demo):
    con = duckdb.connect(str(base_demo), read_only=True)
    try:
        geo = con.execute("SELECT geographie_qpv FROM millesimes").fetchall()
        t = con.sql("SELECT * FROM transition WHERE millesime = '2024-01'").pl()
    finally:
        con.close()
    assert geo == [("2024",)]
    e = _etablissements(base_demo)
    # independent placement on the embedded 2015 contours
    i15 = IndexQPV(lire_qpv(geographie="2015"))
    q15 = i15.strict(e["lon"].to_numpy(), e["lat"].to_numpy())
    dans15 = np.array([c is not None and c == c and c != "" for c in q15])
    dans24 = e["qpv"].is_not_null().to_numpy()

    def n(territoire, statut, dimension="famille", valeur=T.TOTAL):
        r = t.filter((pl.col("territoire") == territoire) & (pl.col("statut") == statut)
                     & (pl.col("dimension") == dimension) & (pl.col("valeur") == valeur))
        return int(r["n_etab"].sum())

    assert n("FR", "entrant") + n("FR", "maintenu") == int(dans24.sum())
    assert n("FR", "sortant") + n("FR", "maintenu") == int(dans15.sum())
    assert n("FR", "maintenu") == int((dans24 & dans15).sum())
    assert n("FR", "sortant") > 0 and n("FR", "entrant") > 0  # the demo shows the transition
    assert n("FR", T.TOTAL) == int((dans24 | dans15).sum())
    # per département too, and families / sectors add up to the total
    for dep in ("93", "974"):
        m = (e["departement"] == dep).to_numpy()
        assert n(f"DEP:{dep}", "entrant") + n(f"DEP:{dep}", "maintenu") == int(
            (dans24 & m).sum())
        assert n(f"DEP:{dep}", "sortant") + n(f"DEP:{dep}", "maintenu") == int(
            (dans15 & m).sum())
    for dim in ("famille", "secteur"):
        for statut in T.STATUTS:
            lignes = t.filter((pl.col("territoire") == "FR") & (pl.col("statut") == statut)
                              & (pl.col("dimension") == dim) & (pl.col("valeur") != T.TOTAL))
            assert int(lignes["n_etab"].sum()) == n("FR", statut, dim)
    # the stored statuses are the ones counted
    con = duckdb.connect(str(base_demo), read_only=True)
    try:
        par_statut = dict(con.execute("SELECT statut, count(*) FROM transition_statuts "
                                      "WHERE millesime = '2024-01' GROUP BY ALL").fetchall())
    finally:
        con.close()
    assert par_statut == {s: n("FR", s) for s in T.STATUTS}


def test_qpv_nouveaux_sont_les_codes_n():
    """The QPV 2024 with no 2015 predecessor are the ones ANCT coded ``…N`` (new)."""
    t = T.qpv_nouveaux_et_sortis()
    nouveaux = t.filter(pl.col("evolution") == "nouveau")["code_qp"]
    assert nouveaux.str.starts_with("QN").all()
    en_n = int(nouveaux.str.ends_with("N").sum())
    assert en_n >= 130 and en_n / len(nouveaux) > 0.95  # 139 codes end with N
    sortis = t.filter(pl.col("evolution") == "sorti")
    assert sortis.height > 0 and sortis["code_qp"].str.starts_with("QP").all()
    # their communes: codes of the COG (for 2015, found by name in the département)
    pleyel = sortis.filter(pl.col("code_qp") == "QP093038")
    assert pleyel["communes"].to_list() == ["93066"]
    assert (sortis["communes"] != "").mean() > 0.9



def test_qpv_nouveaux_et_sortis_embarques_sont_le_calcul():
    """The embedded ``transition_qpv.parquet`` is what the embedded contours give (if the
    contours, the COG or the geometry library change, run scripts/preparer_reference.py)."""
    assert T.qpv_nouveaux_et_sortis().equals(T.calculer_qpv_nouveaux_et_sortis())


def test_statuts_avec_la_carte_connue_de_la_construction(base_demo):
    """The build hands over the other map's QPV from its placement's cache; the statuses are
    those of a placement on the other map's contours, and the establishments it does not
    hand over (placed by the address geocoder) are placed again."""
    con = duckdb.connect(str(base_demo), read_only=True)
    try:
        seuls = T._statuts(con, "2024-01", "2024").sort("siret")
        e = con.sql("SELECT siret FROM etablissements WHERE millesime = '2024-01' "
                    "AND localise").pl()
        stockes = con.sql("SELECT siret, qpv_2015 AS qpv_autre FROM transition_statuts "
                          "WHERE millesime = '2024-01'").pl()
        # every located establishment known (none in a QPV 2015 but those stored)...
        tous = e.join(stockes, on="siret", how="left")
        assert T._statuts(con, "2024-01", "2024", tous).sort("siret").equals(seuls)
        # ...or a third of them not known: placed again, same statuses
        partiels = tous.gather_every(3)
        assert T._statuts(con, "2024-01", "2024", partiels).sort("siret").equals(seuls)
        # the rows handed over by the build (its few-valued columns are Enums) instead of
        # read back from the base: the same statuses
        avec = con.execute("SELECT avec_emplois FROM millesimes WHERE millesime = "
                           "'2024-01'").fetchall()[0][0]
        table = con.sql("SELECT * FROM etablissements WHERE millesime = '2024-01'").pl()
        table = table.with_columns(pl.col(c).cast(pl.Enum(table[c].drop_nulls().unique()
                                                          .sort()))
                                   for c in ("famille", "secteur", "departement", "qpv"))
        remis = table.filter(pl.col("localise")).select(T.colonnes_etablissements(avec))
        assert T._statuts(con, "2024-01", "2024", partiels, remis).sort("siret").equals(seuls)
        # a wrong known QPV is taken as it is (the build's placement is trusted)
        faux = tous.with_columns(pl.lit(None, dtype=pl.String).alias("qpv_autre"))
        assert T._statuts(con, "2024-01", "2024", faux).filter(
            pl.col("statut") == "sortant").height == 0
    finally:
        con.close()
    assert seuls.filter(pl.col("statut") == "sortant").height > 0
