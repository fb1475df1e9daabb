"""Reuse of the stored protection on a rebuild (essqpv.indicators.reprise).

A rebuild whose plan is identical reuses the protection stored in the build's cache, after the
same verification as a fresh one; a changed cell protects afresh; a damaged or falsified
stored protection is detected and recomputed, never trusted.
"""
from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pytest

from essqpv.indicators import reprise

M = "2024-01"


@pytest.fixture(scope="module")
def base_petite(tmp_path_factory):
    """The hand-built base of test_indicateurs (13 employers in and around QP093001)."""
    from essqpv import base as B
    from tests.test_indicateurs import _registre
    d = tmp_path_factory.mktemp("reprise")
    etab, ul, emp = _registre(d, avec_commerce=True)
    b = d / "obs.duckdb"
    etapes: list[str] = []
    B.construire(etablissements=etab, unites_legales=ul, emplois=emp, millesime=M, base=b,
                 geographie="2015", progression=etapes.append)
    return b, (etab, ul, emp), etapes


def _stocke(con) -> tuple[list, list]:
    """The stored statuses (by key) and certificates (by keys and moves) of the plan."""
    cel = con.execute("SELECT cellule, tableau, territoire, perimetre, zone, ligne, sensible, "
                      "statut FROM publication_cellules WHERE millesime = ? ORDER BY cellule",
                      [M]).fetchall()
    cle = {r[0]: r[1:6] for r in cel}
    statuts = sorted((r[1:6], r[6], r[7]) for r in cel)
    certs: dict[int, list] = {}
    for k, c, d in con.execute("SELECT certificat, cellule, delta FROM publication_certificats "
                               "WHERE millesime = ?", [M]).fetchall():
        certs.setdefault(k, []).append((cle[c], round(d, 9)))
    return statuts, sorted(tuple(sorted(v)) for v in certs.values())


def _copie(base, tmp_path):
    b = tmp_path / "copie.duckdb"
    shutil.copyfile(base, b)
    return b


def _ecrire(b, cache):
    from essqpv.indicators.publication import ecrire_plan
    con = duckdb.connect(str(b))
    try:
        bilan = ecrire_plan(con, M, cache=cache)
        return bilan, _stocke(con)
    finally:
        con.close()


def test_reconstruction_reprend_la_protection(base_petite, tmp_path):
    """The second build of the same files reuses the stored protection (a file of the build's
    cache), and writes the same statuses and certificates as the first."""
    from essqpv import base as B
    from essqpv.indicators.publication import audit_base
    b, (etab, ul, emp), etapes = base_petite
    travail = b.with_name(b.name + ".travail")
    assert len(list(travail.glob("protection-*.npz"))) == 1
    assert not any("protection reprise" in e for e in etapes)
    con = duckdb.connect(str(b), read_only=True)
    try:
        avant = _stocke(con)
    finally:
        con.close()
    b2 = tmp_path / "obs.duckdb"
    shutil.copyfile(b, b2)
    shutil.copytree(travail, tmp_path / "obs.duckdb.travail")
    etapes2: list[str] = []
    B.construire(etablissements=etab, unites_legales=ul, emplois=emp, millesime=M, base=b2,
                 geographie="2015", progression=etapes2.append)
    assert any("protection reprise" in e for e in etapes2)
    assert not any(e.startswith("Plan de publication : secret statistique") for e in etapes2)
    con = duckdb.connect(str(b2), read_only=True)
    try:
        assert _stocke(con) == avant
    finally:
        con.close()
    _, intervalles, bilan = audit_base(b2)
    assert bilan["certificats_invalides"] == 0 and all(iv.protegee for iv in intervalles)


def test_reprise_identique_a_une_protection_neuve(base_petite, tmp_path):
    b = _copie(base_petite[0], tmp_path)
    cache = tmp_path / "cache"
    neuf, stocke_neuf = _ecrire(b, cache)
    assert not neuf["protection_reprise"] and neuf["protection_raison"] == "absente"
    repris, stocke_repris = _ecrire(b, cache)
    assert repris["protection_reprise"] and repris["protection_raison"] == "reprise"
    assert stocke_repris == stocke_neuf
    assert (repris["primaires"], repris["secondaires"], repris["certificats"]) == (
        neuf["primaires"], neuf["secondaires"], neuf["certificats"])


def test_case_changee_protection_neuve(base_petite, tmp_path):
    """One establishment's headcount changed: another plan, protected afresh."""
    b = _copie(base_petite[0], tmp_path)
    cache = tmp_path / "cache"
    _ecrire(b, cache)
    con = duckdb.connect(str(b))
    try:
        n = con.execute("UPDATE etablissements SET effectif = effectif + 7 WHERE siret = ("
                        "SELECT min(siret) FROM etablissements WHERE employeur "
                        "AND effectif > 0)").fetchone()[0]
        assert n == 1
    finally:
        con.close()
    bilan, _ = _ecrire(b, cache)
    assert not bilan["protection_reprise"] and bilan["protection_raison"] == "absente"
    assert len(list(cache.glob("protection-*.npz"))) == 2


def _falsifier(cache, modifier) -> None:
    """Rewrite the stored protection with ``modifier(arrays)`` applied and a consistent
    checksum (a forger's file, not a damaged one)."""
    (f,) = cache.glob("protection-*.npz")
    with np.load(f) as z:
        t = {k: z[k].copy() for k in z.files}
    del t["controle"]
    modifier(t)
    t["controle"] = np.frombuffer(reprise._controle(t).encode(), dtype=np.uint8)
    with open(f, "wb") as sortie:
        np.savez(sortie, **t)


def _moitie_du_premier_mouvement(t):
    t["delta"][0] *= 0.5  # the first certificate no longer balances its relations


def _secret_secondaire_publie(t):
    sec = np.flatnonzero(t["statut"] == 2)
    assert sec.size
    t["statut"][sec[0]] = 0  # a cell a certificate moves would be published


def _sensible_oublie(t):
    t["sensible"][np.flatnonzero(t["sensible"])[0]] = False


def _primaire_leve(t):
    t["statut"][np.flatnonzero(t["statut"] == 1)[0]] = 0  # a sensitive cell published


@pytest.mark.parametrize("modifier, raison", [
    (_moitie_du_premier_mouvement, "incohérente : certificats"),
    (_secret_secondaire_publie, "incohérente : certificats"),
    (_sensible_oublie, "incohérente : cases sensibles"),
    (_primaire_leve, "incohérente : secrets primaires"),
])
def test_protection_falsifiee_recalculee(base_petite, tmp_path, modifier, raison):
    b = _copie(base_petite[0], tmp_path)
    cache = tmp_path / "cache"
    _, neuf = _ecrire(b, cache)
    _falsifier(cache, modifier)
    bilan, stocke = _ecrire(b, cache)
    assert not bilan["protection_reprise"] and bilan["protection_raison"] == raison
    assert stocke == neuf  # protected afresh: the same protection as the first build
    # and the fresh protection is stored again, then reused
    encore, _ = _ecrire(b, cache)
    assert encore["protection_reprise"]


@pytest.mark.parametrize("abimer, raison", [
    (lambda f: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]), "illisible"),
    (lambda f: f.write_bytes(b"pas une protection"), "illisible"),
])
def test_protection_abimee_recalculee(base_petite, tmp_path, abimer, raison):
    b = _copie(base_petite[0], tmp_path)
    cache = tmp_path / "cache"
    _, neuf = _ecrire(b, cache)
    (f,) = cache.glob("protection-*.npz")
    abimer(f)
    bilan, stocke = _ecrire(b, cache)
    assert not bilan["protection_reprise"] and bilan["protection_raison"] == raison
    assert stocke == neuf


def test_somme_de_controle(base_petite, tmp_path):
    """A stored array changed without its checksum (a damaged file that still opens)."""
    b = _copie(base_petite[0], tmp_path)
    cache = tmp_path / "cache"
    _, neuf = _ecrire(b, cache)
    (f,) = cache.glob("protection-*.npz")
    with np.load(f) as z:
        t = {k: z[k].copy() for k in z.files}
    t["delta"][0] += 1.0
    with open(f, "wb") as sortie:
        np.savez(sortie, **t)
    bilan, stocke = _ecrire(b, cache)
    assert bilan["protection_raison"] == "incohérente : somme de contrôle"
    assert stocke == neuf


def test_empreinte_independante_de_l_ordre(base_petite):
    """The same plan listed in another order has the same empreinte; another rule another."""
    import dataclasses

    from essqpv.config import confidentialite
    from essqpv.indicators.publication import Plan, lire_plan, tableaux_comptes
    con = duckdb.connect(str(base_petite[0]), read_only=True)
    try:
        plan = lire_plan(con, M)
    finally:
        con.close()
    regles, exclus = confidentialite(), tableaux_comptes()
    e = reprise.empreinte(plan, regles, exclus)
    perm = np.random.default_rng(0).permutation(len(plan))
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(plan))
    autre = Plan(M)
    for i in perm:
        autre.cellule(*plan.cles[i], plan.nombre[i], plan.valeur[i], plan.maximum[i],
                      publiee=plan.publiee[i], niveau=plan.niveaux[i])
    for t, membres in reversed(plan.relations):
        autre.relation(int(inverse[t]), [int(inverse[m]) for m in reversed(membres)])
    assert reprise.empreinte(autre, regles, exclus) == e
    assert reprise.empreinte(plan, dataclasses.replace(regles, nombre_minimum=4), exclus) != e
    autre.valeur[0] += 1.0
    assert reprise.empreinte(autre, regles, exclus) != e
