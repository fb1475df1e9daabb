"""The computing pieces the national series rely on, against plain references on random
inputs: digits judged by 8-byte words (:func:`essqpv.sources.historique._chiffres`) against
the byte-by-byte reading, the sieve before the binary search (``_parmi``), and the creations
and closures found on the sorted periods (:func:`essqpv.historique._evenements`) against a
loop over each establishment's periods, and the overlap check on periods already in order
(:func:`essqpv.sources.historique._verifier_chevauchements`) against the check after a
sort."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from essqpv import historique as HI
from essqpv.sources import historique as H


def test_chiffres_par_mots_comme_octet_par_octet():
    rng = np.random.default_rng(11)
    alphabet = np.frombuffer(b"0123456789/:,a\n\xff\xfa\x2f\x3a ", np.uint8)
    for _ in range(300):
        n = int(rng.integers(1, 400))
        a = rng.choice(alphabet, n, p=None).astype(np.uint8)
        if rng.random() < 0.5:  # runs of digits, as identifiers are
            a[: n // 2] = rng.integers(48, 58, n // 2)
        debuts = np.sort(rng.integers(0, n, int(rng.integers(1, 60))))
        for k in (5, 8, 9, 14, 16, 17):
            ok, nombres = H._chiffres(a, debuts, k)
            ok_ref, nombres_ref = H._chiffres_octet_par_octet(a, debuts, k)
            assert np.array_equal(ok, ok_ref), k
            assert np.array_equal(nombres[ok], nombres_ref[ok_ref]), k


def test_crible_comme_recherche_seule():
    rng = np.random.default_rng(12)
    valeurs = np.unique(rng.integers(100_000_000, 999_999_999, 50_000))
    # values sharing the sieve's bits with a wanted one (same remainder mod 2**27)
    voisins = valeurs[:1000] + (1 << H._BITS)
    nombres = np.concatenate([rng.integers(0, 10**9, 20_000), rng.choice(valeurs, 5_000),
                              voisins, [-1, 0, 10**15]])
    bits = H._bits_de(valeurs)
    attendu = H._parmi(nombres, valeurs)
    assert attendu.sum() >= 5_000
    assert np.array_equal(H._parmi(nombres, valeurs, bits), attendu)
    f = H.Filtre(identifiant=("siren", 9, valeurs[::-1]))
    assert np.array_equal(H._parmi(nombres, f.identifiant[2], f.bits), attendu)


def _evenements_reference(etab: pl.DataFrame, inter: pl.DataFrame, fin_annee: int):
    """Creations and closures by a loop over each siret's periods in order of start."""
    par_siret: dict[int, list] = {}
    for s, d, e in etab.select("siret", "debut", "etat").iter_rows():
        par_siret.setdefault(s, []).append((d, e))
    creations, veilles = set(), set()
    for s, periodes in par_siret.items():
        periodes.sort(key=lambda p: (p[0] is not None, p[0] or dt.date.min))
        actives = [d for d, e in periodes if e == "A"]
        if actives and actives[0] is not None:
            creations.add((s, actives[0]))
        for (_, e0), (d1, e1) in zip(periodes, periodes[1:]):
            if e0 == "A" and e1 == "F" and d1 is not None:
                veilles.add((s, d1 - dt.timedelta(days=1), d1.year))
    sortie = []
    for s, d, f, fam, sec, emp in inter.select("siret", "debut", "fin", "famille", "secteur",
                                               "employeur").iter_rows():
        if (s, d) in creations:
            sortie.append((s, fam, sec, emp, d.year, "creations"))
        for s2, v, a in veilles:
            if s2 == s and v == f:
                sortie.append((s, fam, sec, emp, a, "fermetures"))
    return sorted(x for x in sortie if HI.ANNEE_DEBUT <= x[4] <= fin_annee)


@pytest.mark.parametrize("ordre", ["melange", "croissant", "decroissant"])
def test_creations_et_fermetures_comme_la_boucle(ordre):
    """Whatever the order of the periods: shuffled (sorted first), or already grouped by
    siret in increasing or decreasing order of start (INSEE's layout: taken as they are)."""
    rng = np.random.default_rng(13)
    lignes, intervalles = [], []
    for i in range(300):  # each establishment: a chain of periods, some with gaps
        siret = 10_000_000_000_000 + i
        jour = dt.date(2004, 1, 1) + dt.timedelta(days=int(rng.integers(0, 4000)))
        for j in range(int(rng.integers(1, 5))):
            debut = None if j == 0 and rng.random() < 0.1 else jour
            fin = jour + dt.timedelta(days=int(rng.integers(0, 1500)))
            dernier = rng.random() < 0.25
            etat = "A" if rng.random() < 0.6 else "F"
            lignes.append((siret, debut, None if dernier else fin, etat))
            if etat == "A" and rng.random() < 0.8:
                coupe = fin if rng.random() < 0.8 else fin - dt.timedelta(days=3)
                intervalles.append((siret, debut or dt.date(1, 1, 1),
                                    HI.LOIN if dernier else coupe, ["A", "B"][i % 2],
                                    ["x", "y"][j % 2], bool(i % 3)))
            if dernier:
                break
            jour = fin + dt.timedelta(days=1 if rng.random() < 0.8 else 40)
    rng.shuffle(lignes)
    # (one period per start and siret, as the overlap check leaves them)
    etab = (pl.DataFrame(lignes, schema={"siret": pl.Int64, "debut": pl.Date, "fin": pl.Date,
                                          "etat": pl.String}, orient="row")
            .unique(["siret", "debut"], keep="first")
            .with_columns(pl.col("etat").cast(pl.Categorical)))
    if ordre != "melange":
        etab = etab.sort(["siret", "debut"], descending=[False, ordre == "decroissant"],
                         nulls_last=ordre == "decroissant")
    assert H.sens_des_periodes(etab["siret"], etab["debut"]) == \
        {"melange": 0, "croissant": 1, "decroissant": -1}[ordre]
    inter = pl.DataFrame(intervalles, schema={
        "siret": pl.Int64, "debut": pl.Date, "fin": pl.Date, "famille": pl.String,
        "secteur": pl.String, "employeur": pl.Boolean}, orient="row")
    evts = HI._evenements(etab, inter, 2024)
    obtenu = sorted(evts.select("siret", "famille", "secteur", "employeur", "annee", "type")
                    .iter_rows())
    attendu = _evenements_reference(etab, inter, 2024)
    assert obtenu == attendu
    assert {t for *_, t in attendu} == {"creations", "fermetures"}


def _chevauchements_reference(cadre: pl.DataFrame) -> set[int]:
    """Lines of the periods rejected for overlap, by a loop over each siret's periods in
    order of start (a period without start first): rejected when it starts on or before the
    latest end of the earlier ones."""
    par: dict[int, list] = {}
    for s, d, f, n, m in cadre.select("siret", "debut", "fin", "_ligne", "_motif").iter_rows():
        if m is None:
            par.setdefault(s, []).append((d or dt.date.min, f or dt.date.max, n))
    rejetees = set()
    for periodes in par.values():
        periodes.sort()
        fin = None
        for d, f, n in periodes:
            if fin is not None and d <= fin:
                rejetees.add(n)
            fin = f if fin is None else max(fin, f)
    return rejetees


@pytest.mark.parametrize("ordre", ["melange", "croissant", "decroissant"])
def test_chevauchements_sans_tri_comme_apres_tri(ordre):
    """Periods already grouped by siret in order of start, or in the reverse order (INSEE's
    layout), are judged where they are: the same rejects as the loop, and as the check of
    the same periods shuffled (which sorts them)."""
    rng = np.random.default_rng(14)
    lignes = []
    for i in range(400):
        siret = 10_000_000_000_000 + i
        jour = dt.date(2000, 1, 1) + dt.timedelta(days=int(rng.integers(0, 6000)))
        debuts = set()
        for j in range(int(rng.integers(1, 6))):
            debut = None if j == 0 and rng.random() < 0.15 else jour
            fin = None if rng.random() < 0.2 else jour + dt.timedelta(
                days=int(rng.integers(0, 900)))
            if debut not in debuts:  # (one period per start: equal starts are judged sorted)
                debuts.add(debut)
                motif = "date_invalide" if rng.random() < 0.05 else None
                lignes.append((siret, debut, fin, motif))
            # the next period starts after the end, on it, or before it (overlaps)
            jour = (fin or jour) + dt.timedelta(days=int(rng.integers(-300, 300)))
    cadre = pl.DataFrame(lignes, schema={"siret": pl.Int64, "debut": pl.Date, "fin": pl.Date,
                                         "_motif": pl.String}, orient="row")
    cadre = cadre.sort(["siret", "debut"], descending=[False, ordre == "decroissant"],
                       nulls_last=ordre == "decroissant")
    if ordre == "melange":
        cadre = cadre.sample(fraction=1.0, shuffle=True, seed=3)
    cadre = cadre.with_row_index("_ligne", offset=2).with_columns(
        pl.col("_ligne").cast(pl.Int64), pl.col("_motif").cast(pl.Categorical))
    bons = cadre.filter(pl.col("_motif").is_null())
    assert H.sens_des_periodes(bons["siret"], bons["debut"], tranche=64) == \
        {"melange": 0, "croissant": 1, "decroissant": -1}[ordre]
    attendu = _chevauchements_reference(cadre)
    assert 50 < len(attendu) < cadre.height // 2

    def rejetees(c: pl.DataFrame) -> set[int]:
        return set(c.filter(pl.col("_motif") == "periodes_chevauchantes")["_ligne"].to_list())
    assert rejetees(H._verifier_chevauchements(cadre, H.ETABLISSEMENTS)) == attendu
    melange = cadre.sample(fraction=1.0, shuffle=True, seed=5)
    assert rejetees(H._verifier_chevauchements(melange, H.ETABLISSEMENTS)) == attendu


def test_classement_par_combinaison_codee_comme_par_trois_colonnes(monkeypatch):
    """The periods classed by their combination of activity, nomenclature and employer
    character coded as one integer: the same classes, in the periods' order, as the
    grouping and join on the three columns (the way taken when the codes do not fit)."""
    rng = np.random.default_rng(15)
    n = 3000
    naf = rng.choice(["85.59A", "88.10A", "94.99Z", "91.3E", "47.11F", "94.20Z", ""], n)
    nomenclature = np.where(naf == "91.3E", "NAFRev1", rng.choice(["NAFRev2", ""], n))
    eh = pl.DataFrame({
        "siret": np.arange(n, dtype=np.int64) + 10**13, "siren": np.arange(n) // 2 + 10**8,
        "debut": [dt.date(2010, 1, 1)] * n, "fin": [None] * n,
        "etat": rng.choice(["A", "F"], n), "naf": naf, "nomenclature_naf": nomenclature,
        "employeur_brut": rng.choice(["O", "N", ""], n)}).with_columns(
        pl.col("etat", "naf", "nomenclature_naf", "employeur_brut").replace("", None)
        .cast(pl.Categorical))
    naf1 = {"91.3E": "94.99Z"}
    etab, comptes = HI._periodes_etablissements(eh, naf1)
    monkeypatch.setattr(HI, "_BITS_COMBINAISON", 0)
    etab_3, comptes_3 = HI._periodes_etablissements(eh, naf1)
    assert comptes == comptes_3 and comptes["periodes_naf_rev1_converties"] > 0
    assert etab.equals(etab_3)
    assert etab["siret"].equals(eh["siret"])
    assert etab["secteur"].n_unique() > 2 and etab["exclue"].any()
