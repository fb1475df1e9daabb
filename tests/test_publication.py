"""The publication plan: linked tables protected together, and the attacker's audit.

The two attacks found on the per-answer protection are planted on small plans: differencing
across the territorial hierarchy (a commune's answer giving away a QPV hidden as a complement
in its département's list), and the strict perimeter against the 300 m one (the ring between
them). Before: the audit recovers exact values. After ``proteger_plan``: intervals at least as
wide as the protection interval of ``reference/confidentialite.csv``.
"""
from __future__ import annotations

import numpy as np
import pytest

from essqpv.config import confidentialite
from essqpv.errors import EssqpvError
from essqpv.indicators.publication import Plan, auditer, proteger_plan

S = "salaries"


def _plan_hierarchie() -> tuple[Plan, dict[str, int]]:
    """Département 21 = six QPV; commune 21054 holds QP021001 only (its whole QPV part)."""
    p = Plan("2024-01")
    qpv = {"QP021002": (5, 207.0, 60.0), "QP021003": (4, 166.0, 50.0),
           "QP021004": (3, 16.0, 7.0), "QP021006": (4, 66.0, 20.0),
           "QP021001": (3, 15.0, 6.0), "QP021005": (1, 1.0, 1.0)}
    i = {code: p.cellule(S, f"QPV:{code}", "strict", "qpv", "Ensemble", n, v, m)
         for code, (n, v, m) in qpv.items()}
    i["DEP"] = p.cellule(S, "DEP:21", "strict", "qpv", "Ensemble", 20, 471.0, 60.0)
    i["COM"] = p.cellule(S, "COM:21054", "strict", "qpv", "Ensemble", 3, 15.0, 6.0)
    i["X"] = p.cellule(S, "X:QP021001@21054", "strict", "qpv", "Ensemble", 3, 15.0, 6.0,
                       publiee=False)
    p.relation(i["DEP"], [i[c] for c in qpv])
    p.relation(i["COM"], [i["X"]])
    p.relation(i["QP021001"], [i["X"]])
    return p, i


def _plan_anneau() -> tuple[Plan, dict[str, int]]:
    """QP002005: 3 employers and 18 employees strict, 5 and 195 within 300 m."""
    p = Plan("2024-01")
    i = {"strict": p.cellule(S, "QPV:QP002005", "strict", "qpv", "Ensemble", 3, 18.0, 8.0),
         "300m": p.cellule(S, "QPV:QP002005", "300m", "qpv", "Ensemble", 5, 195.0, 120.0),
         "anneau": p.cellule(S, "QPV:QP002005", "anneau", "qpv", "Ensemble", 2, 177.0, 120.0,
                             publiee=False)}
    # the département around it, so that a complement can be found
    for k, (n, v) in enumerate([(6, 80.0), (4, 40.0)]):
        for per, facteur in (("strict", 1.0), ("300m", 1.5), ("anneau", 0.5)):
            i[f"q{k}{per}"] = p.cellule(S, f"QPV:QP00200{k}", per, "qpv", "Ensemble", n,
                                        v * facteur, 10.0, publiee=per != "anneau")
    for per in ("strict", "300m", "anneau"):
        membres = [i[per] if per != "anneau" else i["anneau"]] + [i[f"q{k}{per}"] for k in (0, 1)]
        total = sum(p.valeur[m] for m in membres)
        n = sum(p.nombre[m] for m in membres)
        i[f"dep{per}"] = p.cellule(S, "DEP:02", per, "qpv", "Ensemble", n, total, 120.0,
                                   publiee=per != "anneau")
        p.relation(i[f"dep{per}"], membres)
    for cle in ("", "q0", "q1", "dep"):
        a = i[f"{cle}300m"] if cle else i["300m"]
        b = i[f"{cle}strict"] if cle else i["strict"]
        c = i[f"{cle}anneau"] if cle else i["anneau"]
        p.relation(a, [b, c])
    return p, i


def _intervalle(plan: Plan, cellule: int):
    return next(iv for iv in auditer(plan) if iv.cellule == cellule)


def test_hierarchie_avant_la_valeur_est_retrouvee():
    plan, i = _plan_hierarchie()
    proteger_plan(plan)
    # the per-answer pattern: the département's list hides QP021005 and one complement,
    # the commune's own answer publishes its 15 employees
    plan.statuts = [None] * len(plan)
    plan.statuts[i["QP021005"]] = "primaire"
    plan.statuts[i["QP021001"]] = "secondaire"
    iv = _intervalle(plan, i["QP021005"])
    assert iv.bas == pytest.approx(1.0) and iv.haut == pytest.approx(1.0)
    assert not iv.protegee


def test_hierarchie_apres_un_intervalle():
    plan, i = _plan_hierarchie()
    proteger_plan(plan)
    regles = confidentialite()
    iv = _intervalle(plan, i["QP021005"])
    assert iv.bas <= 0.0 + 1e-9
    assert iv.haut >= 1.0 + regles.protection_minimum - 1e-9
    # the commune holds exactly QP021001: both shown or both hidden, never one of them
    assert (plan.statuts[i["COM"]] is None) == (plan.statuts[i["QP021001"]] is None)
    assert all(x.protegee for x in auditer(plan))


def test_anneau_avant_la_valeur_est_retrouvee():
    plan, i = _plan_anneau()
    proteger_plan(plan)
    plan.statuts = [None] * len(plan)
    iv = _intervalle(plan, i["anneau"])
    assert iv.bas == pytest.approx(177.0) and iv.haut == pytest.approx(177.0)


def test_anneau_apres_un_intervalle():
    plan, i = _plan_anneau()
    proteger_plan(plan)
    regles = confidentialite()
    assert plan.sensible[i["anneau"]]  # 2 employers: sensitive although never shown
    iv = _intervalle(plan, i["anneau"])
    p = max(regles.protection_relative * 177.0, regles.protection_minimum)
    assert iv.bas <= 177.0 - p + 1e-6 and iv.haut >= 177.0 + p - 1e-6
    assert iv.haut > iv.bas
    assert all(x.protegee for x in auditer(plan))


def test_statuts_et_raisons():
    plan, i = _plan_hierarchie()
    proteger_plan(plan)
    statuts = np.asarray([s or "" for s in plan.statuts])
    assert statuts[i["QP021005"]] == "primaire"
    assert set(statuts) <= {"", "primaire", "secondaire"}
    assert (statuts == "secondaire").sum() >= 1


# --- on a real base: the plan of every linked table, and the command -----------------------

@pytest.fixture(scope="module")
def petite_base(tmp_path_factory):
    """The hand-built base of test_indicateurs (13 employers in and around QP093001)."""
    from essqpv import base as B
    from tests.test_indicateurs import _registre
    d = tmp_path_factory.mktemp("publication")
    etab, ul, emp = _registre(d, avec_commerce=True)
    b = d / "obs.duckdb"
    B.construire(etablissements=etab, unites_legales=ul, emplois=emp, millesime="2024-01",
                 base=b, geographie="2015")  # its points are placed in QP093001 (2015)
    return b  # (the build writes the protected publication)


def test_plan_de_la_base_protege(petite_base):
    from essqpv.indicators.publication import audit_base
    plan, intervalles, bilan = audit_base(petite_base)
    assert bilan["certificats"] >= 1 and bilan["certificats_invalides"] == 0
    cles = set(plan.cles)
    # every level of the hierarchy, both perimeters and the ring are in one plan
    for terr in ("FR", "METRO", "REG:11", "DEP:93", "COM:93013", "QPV:QP093001"):
        assert (S, terr, "strict", "qpv", "Ensemble") in cles
        assert (S, terr, "300m", "qpv", "Ensemble") in cles
    # the cooperative shop (1 employer) is a primary secret, also in the linked tables
    i = plan.indice((S, "QPV:QP093001", "strict", "qpv", "Commerce"))
    assert plan.statuts[i] == "primaire"
    assert intervalles and all(iv.protegee for iv in intervalles)
    assert all(iv.haut > iv.bas for iv in intervalles)


def test_commande_controle_secret(petite_base):
    import json

    from typer.testing import CliRunner

    from essqpv.cli import app
    r = CliRunner().invoke(app, ["controle", "--secret", "--base", str(petite_base),
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    rapport = json.loads(r.output)
    assert rapport["sous_protegees"] == 0 and rapport["auditees"] >= 1
    assert rapport["pires"][0]["marge"] >= -1e-6
    texte = CliRunner().invoke(app, ["controle", "--secret", "--base", str(petite_base)])
    assert texte.exit_code == 0 and "moins protégées" in texte.output


def test_reponses_stockees_lisent_le_plan(petite_base, tmp_path):
    """The serialised answers written from the plan: every published figure is the plan's
    cell, every suppressed cell is null with the plan's mark."""
    import json
    import shutil

    import duckdb

    from essqpv.indicators.publication import ecrire_plan
    b = tmp_path / "copie.duckdb"
    shutil.copyfile(petite_base, b)
    con = duckdb.connect(str(b))
    try:
        bilan = ecrire_plan(con, "2024-01")
        assert bilan["reponses"] > 0 and bilan["primaires"] >= 1
        cellules = {(t, p, z, l): (v, st) for t, p, z, l, v, st in con.execute(
            "SELECT territoire, perimetre, zone, ligne, valeur, statut FROM publication_cellules "
            "WHERE tableau = 'salaries' AND publiee").fetchall()}
        for terr in ("DEP:93", "COM:93013", "QPV:QP093001", "FR"):
            for per in ("strict", "300m"):
                texte = con.execute("SELECT json FROM publication_reponses WHERE genre = "
                                    "'indicateurs' AND territoire = ? AND perimetre = ?",
                                    [terr, per]).fetchone()[0]
                r = json.loads(texte)
                assert r["territoire"]["code"] == terr and r["perimetre"] == per
                for ligne in r["tableau_secteurs"]:
                    v, st = cellules[(terr, per, "qpv", ligne["secteur"])]
                    if st:
                        assert ligne["salaries_qpv"] is None
                        assert ligne["secret"]["salaries_qpv"] == st
                    else:
                        assert ligne["salaries_qpv"] == int(round(v))
                v, st = cellules[(terr, per, "qpv", "Ensemble")]
                assert r["chiffres_cles"]["salaries"] == (None if st else int(round(v)))
                assert r["chiffres_cles"]["secret"].get("salaries") == st
    finally:
        con.close()


def test_comptes_jamais_secrets(petite_base):
    from essqpv.indicators.publication import audit_base, tableaux_comptes
    plan, _, _ = audit_base(petite_base)
    assert all(st is None for k, st in zip(plan.cles, plan.statuts) if k[0] in tableaux_comptes())


def test_certificat_falsifie_detecte(petite_base, tmp_path):
    """A corrupted certificate in the stored plan: the audit rejects it and exits 1."""
    import json
    import shutil

    import duckdb
    from typer.testing import CliRunner

    from essqpv.cli import app
    b = tmp_path / "falsifiee.duckdb"
    shutil.copyfile(petite_base, b)
    con = duckdb.connect(str(b))
    try:
        # every certificate loses its first move: the relations no longer balance
        n = con.execute("SELECT count(DISTINCT certificat) FROM publication_certificats"
                        ).fetchone()[0]
        assert n >= 1
        con.execute("""UPDATE publication_certificats SET delta = delta * 0.5
                       WHERE (certificat, cellule) IN (SELECT certificat, min(cellule)
                       FROM publication_certificats GROUP BY certificat)""")
    finally:
        con.close()
    r = CliRunner().invoke(app, ["controle", "--secret", "--base", str(b), "--format", "json"])
    assert r.exit_code == 1, r.output
    rapport = json.loads(r.output)
    assert rapport["certificats_invalides"] == n
    # without the exact programs of the small blocks, no cell keeps a proof
    from essqpv.indicators import protection
    from essqpv.indicators.publication import lire_plan
    con = duckdb.connect(str(b), read_only=True)
    try:
        plan = lire_plan(con, "2024-01")
    finally:
        con.close()
    intervalles, bilan = protection.auditer(plan, confidentialite(), bloc_exact=0)
    assert bilan["certificats_invalides"] == n
    assert all(not iv.protegee for iv in intervalles if iv.sensible)


def test_certificat_sur_une_case_publiee_refuse():
    """A certificate moving a published cell is no proof (the attacker reads that cell)."""
    from essqpv.indicators.protection import Certificat, verifier_certificats
    plan, i = _plan_anneau()
    proteger_plan(plan)
    assert plan.certificats
    valide, _, _ = verifier_certificats(plan)
    assert valide.all()
    c = plan.certificats[0]
    publiee = next(k for k in range(len(plan)) if plan.publiee[k] and plan.statuts[k] is None
                   and k not in set(c.cellules.tolist()))
    cellules = np.append(c.cellules, publiee)
    ordre = np.argsort(cellules)
    plan.certificats[0] = Certificat(cellules[ordre], np.append(c.delta, 1.0)[ordre])
    valide, _, _ = verifier_certificats(plan)
    assert not valide[0]


# --- the same data, the same secrets, whatever order the queries return their rows in ------

def _plan_de(base):
    import duckdb

    from essqpv.indicators.publication import construire_plan
    con = duckdb.connect(str(base), read_only=True)
    try:
        millesime, tampon, emplois = con.execute(
            "SELECT millesime, tampon_m, avec_emplois FROM millesimes").fetchone()
        return construire_plan(con, millesime, int(tampon), bool(emplois))[0]
    finally:
        con.close()


def _melange(plan: Plan, graine: int) -> Plan:
    """The same cells and relations, added in another order (members too)."""
    rng = np.random.default_rng(graine)
    perm = rng.permutation(len(plan))
    autre = Plan(plan.millesime)
    nouveau = {}
    for i in perm:
        nouveau[int(i)] = autre.cellule(*plan.cles[i], plan.nombre[i], plan.valeur[i],
                                        plan.maximum[i], publiee=plan.publiee[i],
                                        niveau=plan.niveaux[i], extra=plan.extra[i])
    for r in rng.permutation(len(plan.relations)):
        total, membres = plan.relations[r]
        autre.relation(nouveau[total], [nouveau[m] for m in rng.permutation(membres)])
    return autre


def test_plan_dans_un_ordre_fixe(base_demo):
    """The plan built from a base lists its cells by key and its relations in a fixed order,
    whatever order DuckDB's parallel aggregation returned the rows in."""
    plan = _plan_de(base_demo)
    assert len(plan) > 10_000
    assert plan.cles == sorted(plan.cles)
    assert plan.relations == sorted(plan.relations)
    assert all(m == sorted(m) for _, m in plan.relations)
    assert all(plan.indice(c) == i for i, c in enumerate(plan.cles))
    autre = _melange(plan, 7)
    assert autre.cles != plan.cles
    autre.canonique()
    for nom in ("cles", "niveaux", "nombre", "valeur", "maximum", "extra", "publiee",
                "relations"):
        assert getattr(autre, nom) == getattr(plan, nom), nom


def test_meme_secret_quel_que_soit_l_ordre(petite_base):
    """Two plans of the same data given in different orders publish the same secrets and the
    same certificates once put in the canonical order."""
    plan = _plan_de(petite_base)
    resultats = []
    for graine in (1, 2):
        p = _melange(plan, graine)
        p.canonique()
        proteger_plan(p)
        resultats.append((dict(zip(p.cles, p.statuts)),
                          sorted((tuple(c.cellules), tuple(np.round(c.delta, 9)))
                                 for c in p.certificats)))
    assert resultats[0] == resultats[1]
    assert sum(1 for s in resultats[0][0].values() if s) >= 1


def test_plan_protege_ne_change_plus_d_ordre(petite_base):
    plan = _plan_de(petite_base)
    proteger_plan(plan)
    assert plan.certificats
    cles = list(plan.cles)
    with pytest.raises(EssqpvError, match="déjà protégé"):
        plan.canonique()
    assert plan.cles == cles


def test_epci_a_cheval_range_de_meme_quel_que_soit_l_ordre(monkeypatch):
    """The EPCI 245900758 has four communes in the Nord (59) and four in the Pas-de-Calais
    (62). Which département its cells go with decides which small programs the protection
    tries first, hence which cells it suppresses: the choice must not depend on the order in
    which the commune table comes (a parallel grouping returns its rows in no fixed order;
    two builds of the demo once published one cell differently because of it). On a tie, the
    smaller code: 59."""
    import polars as pl

    from essqpv import reference, territoires
    from essqpv.indicators import protection

    table = territoires.table_communes()
    communes = sorted(table.filter(pl.col("epci") == "245900758")["commune"].unique())
    assert [c[:2] for c in communes].count("59") == [c[:2] for c in communes].count("62") == 4
    p = Plan("2024-01")
    total = p.cellule(S, "EPCI:245900758", "strict", "qpv", "Ensemble", 8 * 3, 80.0, 10.0)
    membres = [p.cellule(S, f"COM:{c}", "strict", "qpv", "Ensemble", 3, 10.0, 10.0)
               for c in communes]
    p.relation(total, membres)
    red = protection._Reduit(protection.Systeme(p), np.asarray(p.nombre))
    codes = sorted(d["code"] for d in reference.departements())  # (the index _groupes gives)
    vus = set()
    for graine in range(8):
        melangee = table.sample(fraction=1.0, shuffle=True, seed=graine)
        monkeypatch.setattr(territoires, "table_communes", lambda m=melangee: m)
        g = protection._groupes(p, red)
        vus.add(int(g["dep"][red.cls[total]]))
    assert vus == {codes.index("59")}
