"""The 2015 → 2024 transition on the demo base (synthetic register on the 2024 map, with its
2015 codes): entering + staying = in QPV 2024, leaving + staying = in QPV 2015."""
from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

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
    # published headcounts are the raw ones or NULL with a status (never a partial value)
    assert t.filter(pl.col("secret").is_null())["n_sal_publie"].equals(
        t.filter(pl.col("secret").is_null())["n_sal"])
    assert t.filter(pl.col("secret").is_not_null())["n_sal_publie"].null_count() == \
        t.filter(pl.col("secret").is_not_null()).height


def test_tableau_protege_et_qpv_nouveaux(base_demo):
    r = T.tableau(base_demo, "DEP:93")
    assert r["geographie_millesime"] == "2024" and set(r["cases"]) <= {*T.STATUTS, T.TOTAL}
    for ligne in r["cases"].values():
        for case in ligne.values():
            assert (case["n_sal"] is None) == (case["secret"] is not None)
    assert all(q["departement"] == "93" for q in r["qpv_nouveaux"] + r["qpv_sortis"])


def test_qpv_nouveaux_sont_les_codes_n():
    """The QPV 2024 with no 2015 predecessor are the ones ANCT coded ``…N`` (new)."""
    t = T.qpv_nouveaux_et_sortis()
    nouveaux = t.filter(pl.col("evolution") == "nouveau")["code_qp"]
    assert nouveaux.str.starts_with("QN").all()
    en_n = int(nouveaux.str.ends_with("N").sum())
    assert en_n >= 130 and en_n / len(nouveaux) > 0.95  # 139 codes end with N
    sortis = t.filter(pl.col("evolution") == "sorti")["code_qp"]
    assert len(sortis) > 0 and sortis.str.starts_with("QP").all()


def test_dimension_inconnue(base_demo):
    from essqpv.errors import ParametreInvalide
    with pytest.raises(ParametreInvalide, match="Dimension inconnue"):
        T.tableau(base_demo, "FR", dimension="taille")
