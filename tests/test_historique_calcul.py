"""The computing pieces the national series rely on, against plain references on random
inputs: digits judged by 8-byte words (:func:`essqpv.sources.historique._chiffres`) against
the byte-by-byte reading, the sieve before the binary search (``_parmi``), and the creations
and closures found on the sorted periods (:func:`essqpv.historique._evenements`) against a
loop over each establishment's periods."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

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


def test_creations_et_fermetures_comme_la_boucle():
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
    inter = pl.DataFrame(intervalles, schema={
        "siret": pl.Int64, "debut": pl.Date, "fin": pl.Date, "famille": pl.String,
        "secteur": pl.String, "employeur": pl.Boolean}, orient="row")
    evts = HI._evenements(etab, inter, 2024)
    obtenu = sorted(evts.select("siret", "famille", "secteur", "employeur", "annee", "type")
                    .iter_rows())
    attendu = _evenements_reference(etab, inter, 2024)
    assert obtenu == attendu
    assert {t for *_, t in attendu} == {"creations", "fermetures"}
