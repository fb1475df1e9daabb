"""The 2015 → 2024 transition in the one publication plan (METHODOLOGY 7).

A small register across the redrawing of Seine-Saint-Denis (``tests/_transition_fabrique``,
real contours of both maps): one employer that left the map in Saint-Denis (12 employees),
new QPV in Saint-Denis and Drancy, QPV of both maps in Le Bourget, employers in a QPV of
neither map. Before: the transition protected as its own table (per territory, as the
per-answer tables are) gives away suppressed cells once combined with the standard answers
(the employer that left: exactly 12). After: its cells are linked with the standard ones in
the plan and protected together; the attacker's audit finds every suppressed cell protected.
"""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest

from essqpv import transition as T
from essqpv.indicators import publication as P
from essqpv.placement import IndexQPV
from essqpv.sources.qpv import lire_qpv
from tests import _transition_fabrique as TF

M = "2024-01"


@pytest.fixture(scope="module")
def base_transition(tmp_path_factory):
    return TF.bases(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def base_publiee(tmp_path_factory):
    """The same base with its protected publication written (plan, cells, answers)."""
    return TF.bases(tmp_path_factory)[1]


def _plans(base):
    """The plan with the transition, and the plan of the standard tables alone."""
    con = duckdb.connect(str(base), read_only=True)
    try:
        avec, _ = P.construire_plan(con, M, 300, True)
        extensions = list(P._EXTENSIONS)
        P._EXTENSIONS.clear()
        try:
            seul, _ = P.construire_plan(con, M, 300, True)
        finally:
            P._EXTENSIONS.extend(extensions)
        t = con.sql("SELECT * FROM transition WHERE millesime = ?", params=[M]).pl()
    finally:
        con.close()
    return avec, seul, t


def test_le_registre_traverse_la_nouvelle_carte():
    """The fixture's points are where it says (real contours of both maps)."""
    i24, i15 = IndexQPV(lire_qpv(geographie="2024")), IndexQPV(lire_qpv(geographie="2015"))
    for commune, (lon, lat) in TF.HORS_QPV.items():
        x, y = np.array([lon]), np.array([lat])
        assert i24.strict(x, y)[0] is None and i15.strict(x, y)[0] is None, commune
    x, y = TF.point("QP093038")
    assert i24.strict(np.array([x]), np.array([y]))[0] is None
    x, y = TF.point("QN09365N")
    assert i15.strict(np.array([x]), np.array([y]))[0] is None


def test_cellules_liees_aux_tables_standard(base_transition):
    plan, seul, _ = _plans(base_transition)
    ajout = len(plan) - len(seul)
    assert 0 < ajout < 200  # a few well-linked cells (138 on this register)
    ix = plan.indice

    def rel(total, membres):
        # (a member without any establishment is no cell: zero)
        t, ms = ix(total), {ix(m) for m in membres} - {None}
        assert t is not None and ms, (total, membres)
        assert any(tt == t and set(m) == ms for tt, m in plan.relations), (total, membres)

    for terr in ("COM:93066", "DEP:93", "FR"):
        # entering + staying = the territory's QPV-2024 cell of the standard tables
        rel(("salaries", terr, "strict", "qpv", "Ensemble"),
            [(T.CELLULE_SAL, terr, "strict", s, "Ensemble") for s in ("entrant", "maintenu")])
        # leaving + staying = in QPV 2015
        rel((T.CELLULE_SAL, terr, "strict", "qpv2015", "Ensemble"),
            [(T.CELLULE_SAL, terr, "strict", s, "Ensemble") for s in ("sortant", "maintenu")])
    # by sector, linked with the standard sector cells
    rel(("salaries", "DEP:93", "strict", "qpv", "Commerce"),
        [(T.CELLULE_SAL, "DEP:93", "strict", "entrant", "secteur:Commerce")])
    # outside the QPV 2024 (derivable from the standard answers) = left + neither map
    rel(("salaries", "COM:93066", "strict", "hors", "Ensemble"),
        [(T.CELLULE_SAL, "COM:93066", "strict", "sortant", "Ensemble"),
         (T.CELLULE_SAL, "COM:93066", "strict", T.HORS, "Ensemble")])
    # the hierarchy: the département is the sum of its communes
    rel((T.CELLULE_SAL, "DEP:93", "strict", "sortant", "Ensemble"),
        [(T.CELLULE_SAL, "COM:93066", "strict", "sortant", "Ensemble")])
    # families sum to the standard total
    familles = [k for k in plan.cles if k[:4] == (T.CELLULE_SAL, "DEP:93", "strict", "qpv2024")]
    rel(("salaries", "DEP:93", "strict", "qpv", "Ensemble"), familles)
    # counts of establishments: public, never secret
    assert "transition_etablissements" in P.tableaux_comptes()
    assert "transition_etablissements" not in P.TABLEAUX_COMPTES  # declared by the extension


def _statuts_par_table(plan, t):
    """The statuses the transition got when protected as its own table, per territory
    (rows: statuses and their total, columns: families or sectors and their total)."""
    from essqpv.indicators.confidentiality import Cellule, proteger_tableau
    statuts = {}
    for (terr, dim), g in t.group_by(["territoire", "dimension"]):
        valeurs: dict = {}
        for r in g.iter_rows(named=True):
            valeurs.setdefault(r["statut"], {})[r["valeur"]] = Cellule(
                int(r["n_employeurs"]), float(r["n_sal"]), float(r["n_sal_max"] or 0.0))
        for s, ligne in proteger_tableau(valeurs, with_margins=True, total=T.TOTAL).items():
            for v, st in ligne.items():
                li = T.TOTAL if v == T.TOTAL else f"{dim}:{v}"
                statuts[(T.CELLULE_SAL, terr, "strict", "union" if s == T.TOTAL else s, li)] = st
    return statuts


def test_avant_une_table_protegee_seule_se_retrouve(base_transition):
    plan, seul, t = _plans(base_transition)
    # the table as published on its own also showed the total over the statuses
    for terr in set(t["territoire"]):
        ms = [i for i in (plan.indice((T.CELLULE_SAL, terr, "strict", s, T.TOTAL))
                          for s in T.STATUTS) if i is not None]
        u = plan.cellule(T.CELLULE_SAL, terr, "strict", "union", T.TOTAL,
                         sum(plan.nombre[i] for i in ms), sum(plan.valeur[i] for i in ms),
                         max(plan.maximum[i] for i in ms))
        plan.relation(u, ms)
    P.proteger_plan(plan)   # (sensitivity of every cell)
    P.proteger_plan(seul)   # the standard tables, protected without the transition
    statuts = [None] * len(plan)
    for k, st in zip(seul.cles, seul.statuts):
        statuts[plan.indice(k)] = st
    for k, st in _statuts_par_table(plan, t).items():
        i = plan.indice(k)
        if i is not None and plan.publiee[i]:
            statuts[i] = st
    plan.statuts = statuts
    i = plan.indice((T.CELLULE_SAL, "FR", "strict", "sortant", T.TOTAL))
    assert plan.statuts[i] == "primaire"  # one employer left the map: a primary secret…
    iv = next(x for x in P.auditer(plan) if x.cellule == i)
    assert iv.bas == pytest.approx(12.0) and iv.haut == pytest.approx(12.0)  # …given away
    assert not iv.protegee


def test_apres_le_plan_tout_est_protege(base_publiee):
    con = duckdb.connect(str(base_publiee), read_only=True)
    try:
        plan = P.lire_plan(con, M)
    finally:
        con.close()
    i = plan.indice((T.CELLULE_SAL, "FR", "strict", "sortant", T.TOTAL))
    assert plan.statuts[i] == "primaire"
    intervalles = P.auditer(plan)
    assert intervalles and all(iv.protegee for iv in intervalles)
    iv = next(x for x in intervalles if x.cellule == i)
    assert iv.bas <= 12.0 - 3 + 1e-6 and iv.haut >= 12.0 + 3 - 1e-6
    # every transition cell an answer shows is published or suppressed, never partial
    for k, pub, st in zip(plan.cles, plan.publiee, plan.statuts):
        if k[0] == T.CELLULE_SAL and k[3] == T.HORS:
            assert not pub


def test_commande_controle_secret(base_publiee):
    from typer.testing import CliRunner

    from essqpv.cli import app
    r = CliRunner().invoke(app, ["controle", "--secret", "--base", str(base_publiee),
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    rapport = json.loads(r.output)
    assert rapport["sous_protegees"] == 0 and rapport["auditees"] >= 1


def _cellules(base):
    con = duckdb.connect(str(base), read_only=True)
    try:
        return {(tab, terr, z, li): (n, v, st) for tab, terr, z, li, n, v, st in con.execute(
            "SELECT tableau, territoire, zone, ligne, nombre, valeur, statut FROM "
            "publication_cellules WHERE publiee AND perimetre = 'strict'").fetchall()}
    finally:
        con.close()


def test_reponses_lues_dans_les_cellules(base_publiee):
    cel = _cellules(base_publiee)
    for terr in ("FR", "REG:11", "DEP:93", "EPCI:200054781", "COM:93066", "COM:93013"):
        r = T.tableau(base_publiee, terr)
        assert r["territoire"]["code"] == terr and r["geographie_qpv"] == "2024"
        for ligne in r["lignes"]:
            for s in T.STATUTS:
                n = cel.get((T.CELLULE_NOMBRE, terr, s, ligne["ligne"]), (0, 0, None))[0]
                assert ligne["etablissements"][s] == n
            e = ligne["etablissements"]
            assert e["qpv2024"] == e["entrant"] + e["maintenu"]
            assert e["qpv2015"] == e["sortant"] + e["maintenu"]
            if ligne["salaries"] is None:
                assert not r["salaries_par_ligne"] and ligne["ligne"] != T.TOTAL
                continue
            for z in T.ZONES_REPONSE:
                cle = (T.CELLULE_SAL, terr, z, ligne["ligne"])
                if z == "qpv2024" and not ligne["ligne"].startswith("famille:"):
                    cle = ("salaries", terr, "qpv", ligne["ligne"].removeprefix("secteur:"))
                n, v, st = cel.get(cle, (0, 0.0, None))
                assert ligne["employeurs"][z] == n
                if st:
                    assert ligne["salaries"][z] is None and ligne["secret"][z] == st
                else:
                    assert ligne["salaries"][z] == round(v) and z not in ligne["secret"]
    # the 2024 figures are the standard answers' own
    ind = json.loads(_reponse(base_publiee, "indicateurs", "DEP:93"))
    r = T.tableau(base_publiee, "DEP:93")
    total = r["lignes"][0]
    assert total["etablissements"]["qpv2024"] == ind["etablissements_en_qpv"]
    assert total["employeurs"]["qpv2024"] == ind["chiffres_cles"]["etablissements_employeurs"]
    assert total["salaries"]["qpv2024"] == ind["chiffres_cles"]["salaries"]


def _reponse(base, genre, terr, per="strict"):
    con = duckdb.connect(str(base), read_only=True)
    try:
        return con.execute("SELECT json FROM publication_reponses WHERE genre = ? AND "
                           "territoire = ? AND perimetre = ?", [genre, terr, per]).fetchone()[0]
    finally:
        con.close()


def test_reconciliation_des_comptes(base_publiee):
    """Entering + leaving + staying reconcile with the establishments in QPV of each map."""
    con = duckdb.connect(str(base_publiee), read_only=True)
    try:
        e = con.sql("SELECT lon, lat, qpv FROM etablissements WHERE localise").pl()
    finally:
        con.close()
    q15 = IndexQPV(lire_qpv(geographie="2015")).strict(e["lon"].to_numpy(), e["lat"].to_numpy())
    dans15 = sum(1 for c in q15 if c is not None)
    dans24 = int(e["qpv"].is_not_null().sum())
    tot = T.tableau(base_publiee, "FR")["lignes"][0]["etablissements"]
    assert (tot["entrant"], tot["sortant"], tot["maintenu"]) == (8, 2, 5)
    assert tot["qpv2024"] == dans24 and tot["qpv2015"] == dans15


def test_territoires_sans_transition_et_erreurs(base_publiee, base_transition):
    from essqpv.errors import ParametreInvalide
    r = T.tableau(base_publiee, "COM:75056")  # Paris: nothing of this register there
    assert r["territoire"]["code"] == "COM:75056"
    assert all(v == 0 for li in r["lignes"] for v in li["etablissements"].values())
    assert {q["departement"] for q in r["qpv_nouveaux"] + r["qpv_sortis"]} <= {"75"}
    poly = T.tableau(base_publiee, "DEP:987")  # French Polynesia: outside Sirene
    assert poly["couverture"] == "non couvert par Sirene"
    assert all(v is None for v in poly["lignes"][0]["etablissements"].values())
    assert all(v is None for v in poly["lignes"][0]["salaries"].values())
    assert any(q["departement"] == "987" for q in poly["qpv_nouveaux"])
    with pytest.raises(ParametreInvalide, match="pas pour"):
        T.tableau(base_publiee, "QPV:QN09365N")
    with pytest.raises(ParametreInvalide, match="publication protégée"):
        T.tableau(base_transition, "FR")  # publication not written
