"""Statistical confidentiality (METHODOLOGY 7): hand-built tables with exact statuses, and
property tests on random 1-D and 2-D tables (no published secret, nothing recoverable,
idempotent, shares add up)."""
from __future__ import annotations

import csv
import doctest
from importlib.resources import files

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from essqpv.config import Confidentialite, confidentialite
from essqpv.errors import ParametreInvalide
from essqpv.indicators import confidentiality
from essqpv.indicators.confidentiality import (
    TOTAL,
    Cellule,
    agreger,
    parts_publiees,
    proteger,
    proteger_tableau,
    recuperables,
    secret_primaire,
)

VIDE = Cellule(0, 0.0, 0.0)


def cel(*effectifs: float) -> Cellule:
    """A cell from the headcounts of its establishments."""
    return Cellule(len(effectifs), float(sum(effectifs)), float(max(effectifs, default=0)))


def une_dimension(lignes: dict) -> tuple[dict, list]:
    """Cells and groups of a 1-D list with its total, built independently of the module."""
    cellules = dict(lignes)
    cellules[TOTAL] = agreger(lignes.values())
    return cellules, [(TOTAL, list(lignes))]


def deux_dimensions(grille: dict) -> tuple[dict, list]:
    """Cells and groups of a 2-D table with margins: rows, columns, grand total both ways."""
    lignes = list(grille)
    colonnes = list(next(iter(grille.values())))
    cellules = {(r, c): grille[r][c] for r in lignes for c in colonnes}
    for r in lignes:
        cellules[(r, TOTAL)] = agreger(grille[r][c] for c in colonnes)
    for c in colonnes:
        cellules[(TOTAL, c)] = agreger(grille[r][c] for r in lignes)
    cellules[(TOTAL, TOTAL)] = agreger(grille[r][c] for r in lignes for c in colonnes)
    groupes = [((r, TOTAL), [(r, c) for c in colonnes]) for r in lignes]
    groupes += [((TOTAL, c), [(r, c) for r in lignes]) for c in colonnes]
    groupes.append(((TOTAL, TOTAL), [(r, TOTAL) for r in lignes]))
    groupes.append(((TOTAL, TOTAL), [(TOTAL, c) for c in colonnes]))
    return cellules, groupes


def supprimees(statuts: dict) -> set:
    return {k for k, s in statuts.items() if s}


# ---------------------------------------------------------------------------------------------
# thresholds are data


def test_seuils_lus_du_fichier_de_reference():
    texte = files("essqpv.reference").joinpath("confidentialite.csv").read_text("utf-8")
    valeurs = {r["parametre"]: r["valeur"] for r in csv.DictReader(texte.splitlines())}
    regles = confidentialite()
    assert regles.nombre_minimum == int(valeurs["nombre_minimum"]) == 3
    assert regles.dominance_maximum == float(valeurs["dominance_maximum"]) == 0.85


def test_regle_primaire_seuils_exacts():
    assert secret_primaire(cel(10, 20)) is True  # 2 establishments
    assert secret_primaire(cel(10, 20, 30)) is False  # 3 establishments, largest 50 %
    assert secret_primaire(cel(90, 5, 5)) is True  # one establishment holds 90 %
    assert secret_primaire(cel(85, 10, 5)) is False  # exactly 85 %: not more than 85 %
    assert secret_primaire(cel(85.5, 10, 4.5)) is True  # 85.5 %
    assert secret_primaire(VIDE) is False  # an empty cell's zero is public
    assert secret_primaire(cel(0, 0, 0)) is False  # 3 establishments without employees
    # other thresholds, passed explicitly, change the verdict: nothing is hard-coded
    assert secret_primaire(cel(1, 1, 1, 1), Confidentialite(5, 0.85)) is True
    assert secret_primaire(cel(60, 20, 20), Confidentialite(3, 0.5)) is True


def test_cellule_invalide():
    with pytest.raises(ParametreInvalide, match="effectif"):
        Cellule(2, 10.0, 12.0)
    with pytest.raises(ParametreInvalide, match="sans établissement"):
        Cellule(0, 3.0, 3.0)
    with pytest.raises(ParametreInvalide, match="négatif"):
        Cellule(-1, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------
# hand-built tables, exact statuses


def test_une_dimension_une_case_secrete():
    statuts = proteger_tableau(
        {
            "Action sociale": cel(40, 35, 30, 20),  # 125
            "Enseignement": cel(12, 8),  # 2 establishments: primary
            "Santé humaine": cel(10, 10, 9, 6),  # 35
            "Sport et loisirs": cel(9, 6, 3),  # 18: the smallest other cell
            "Commerce": cel(20, 15, 10),  # 45
        }
    )
    assert statuts == {
        "Action sociale": None,
        "Enseignement": "primaire",
        "Santé humaine": None,
        "Sport et loisirs": "secondaire",
        "Commerce": None,
        TOTAL: None,
    }


def test_case_dominee_par_un_etablissement():
    lignes = {
        "Action sociale": cel(40, 35, 30, 20),
        "Enseignement": cel(90, 4, 3, 3),  # 4 establishments but one holds 90 %
        "Sport et loisirs": cel(9, 6, 3),
        "Commerce": cel(20, 15, 10),
    }
    assert proteger_tableau(lignes) == {
        "Action sociale": None,
        "Enseignement": "primaire",
        "Sport et loisirs": "secondaire",
        "Commerce": None,
        TOTAL: None,
    }


def test_aucune_case_secrete():
    lignes = {"a": cel(5, 5, 5), "b": cel(10, 20, 30, 5), "c": cel(1, 1, 1)}
    assert proteger_tableau(lignes) == {"a": None, "b": None, "c": None, TOTAL: None}
    cellules, groupes = deux_dimensions({"x": {"f": cel(3, 3, 3), "g": cel(4, 4, 4)}})
    assert supprimees(proteger(cellules, groupes)) == set()


def test_voisine_unique_vide_le_total_est_supprime():
    # The only other cell is empty (its 0 is public): the total cannot stay published. Here it
    # is the same 2 establishments, hence primary itself.
    statuts = proteger_tableau({"association": cel(30, 12), "fondation": VIDE})
    assert statuts == {"association": "primaire", "fondation": None, TOTAL: "primaire"}
    # A complement suppressed through another group (here: given) whose only neighbour is
    # empty: the total becomes the complement.
    cellules = {"a": cel(30, 12, 5), "vide": VIDE, "T": cel(30, 12, 5)}
    statuts = proteger(cellules, [("T", ["a", "vide"])], statuts_initiaux={"a": "secondaire"})
    assert statuts == {"a": "secondaire", "vide": None, "T": "secondaire"}


def test_voisines_vides_ignorees_comme_complement():
    # Empty cells are smaller (0) but cannot serve: the smallest non-empty cell is chosen.
    statuts = proteger_tableau(
        {"a": VIDE, "b": cel(7, 3), "c": VIDE, "d": cel(50, 40, 30), "e": cel(9, 9, 9)}
    )
    assert statuts == {"a": None, "b": "primaire", "c": None, "d": None, "e": "secondaire",
                       TOTAL: None}


def test_deux_dimensions_rectangle():
    grille = {
        "Action sociale": {"association": cel(5, 3), "cooperative": cel(20, 10, 10)},
        "Enseignement": {"association": cel(4, 4, 4), "cooperative": cel(3, 3, 3)},
        "Commerce": {"association": cel(30, 20, 10), "cooperative": cel(40, 10, 10)},
    }
    statuts = proteger_tableau(grille)
    assert statuts == {
        "Action sociale": {"association": "primaire", "cooperative": "secondaire", TOTAL: None},
        "Enseignement": {"association": "secondaire", "cooperative": "secondaire", TOTAL: None},
        "Commerce": {"association": None, "cooperative": None, TOTAL: None},
        TOTAL: {"association": None, "cooperative": None, TOTAL: None},
    }
    cellules, groupes = deux_dimensions(grille)
    plats = {(r, c): s for r, ligne in statuts.items() for c, s in ligne.items()}
    assert recuperables(cellules, groupes, plats) == set()
    # Any three corners of that rectangle give the fourth away.
    trois = dict(plats)
    trois[("Enseignement", "cooperative")] = None
    assert recuperables(cellules, groupes, trois) == {
        ("Action sociale", "association"),
        ("Action sociale", "cooperative"),
        ("Enseignement", "association"),
    }


def test_deux_dimensions_ligne_avec_voisine_vide():
    grille = {
        "Action sociale": {"association": cel(5, 3), "fondation": VIDE},
        "Enseignement": {"association": cel(4, 4, 4), "fondation": cel(3, 3, 3)},
        "Commerce": {"association": cel(30, 20, 10), "fondation": cel(40, 10, 10)},
    }
    statuts = proteger_tableau(grille)
    # The row total is the secret cell again (primary); the column and the grand total
    # groups each get the smallest complement, which close one rectangle of totals.
    assert statuts == {
        "Action sociale": {"association": "primaire", "fondation": None, TOTAL: "primaire"},
        "Enseignement": {"association": "secondaire", "fondation": None, TOTAL: "secondaire"},
        "Commerce": {"association": None, "fondation": None, TOTAL: None},
        TOTAL: {"association": None, "fondation": None, TOTAL: None},
    }
    cellules, groupes = deux_dimensions(grille)
    plats = {(r, c): s for r, ligne in statuts.items() for c, s in ligne.items()}
    assert recuperables(cellules, groupes, plats) == set()


def test_audit_lineaire_complement_nul():
    # The secret cell and the smallest complement both have 0 employees: together they add up
    # to a published 0, so each is 0 (non-negativity). No group has a lone suppression, only
    # the LP sees it, and protection adds the next cell.
    lignes = {"a": cel(0, 0), "b": cel(0, 0, 0), "c": cel(20, 20, 10)}
    cellules, groupes = une_dimension(lignes)
    assert recuperables(cellules, groupes, {"a": "primaire", "b": "secondaire"}) == {"a", "b"}
    statuts = proteger(cellules, groupes)
    assert statuts == {"a": "primaire", "b": "secondaire", "c": "secondaire", TOTAL: None}
    assert recuperables(cellules, groupes, statuts) == set()


def test_recuperables_chemin_rapide_et_propagation():
    grille = {
        "x": {"f": cel(5, 5, 5), "g": cel(6, 6, 6), "h": cel(7, 7, 7)},
        "y": {"f": cel(8, 8, 8), "g": cel(9, 9, 9), "h": cel(1, 1, 1)},
    }
    cellules, groupes = deux_dimensions(grille)
    # a whole row suppressed, its total published: each column gives its cell away
    ligne = {("x", "f"): "primaire", ("x", "g"): "secondaire", ("x", "h"): "secondaire"}
    assert recuperables(cellules, groupes, ligne) == set(ligne)
    # with the row total suppressed too, the column totals still give everything away
    ligne[("x", TOTAL)] = "secondaire"
    assert recuperables(cellules, groupes, ligne) == set(ligne)
    # a rectangle with positive values holds
    rectangle = {("x", "f"): "primaire", ("x", "g"): "secondaire",
                 ("y", "f"): "secondaire", ("y", "g"): "secondaire"}
    assert recuperables(cellules, groupes, rectangle) == set()
    # an empty cell marked suppressed is a public 0
    cellules2, groupes2 = une_dimension({"a": VIDE, "b": cel(1, 2, 3)})
    assert recuperables(cellules2, groupes2, {"a": "secondaire"}) == {"a"}


def test_statuts_initiaux_et_groupes_invalides():
    cellules, groupes = une_dimension({"a": cel(5, 5, 5), "b": cel(6, 6, 6), "c": cel(9, 9, 9)})
    # a cell suppressed elsewhere (linked table) gets a complement here
    assert proteger(cellules, groupes, statuts_initiaux={"c": "secondaire"}) == {
        "a": "secondaire", "b": None, "c": "secondaire", TOTAL: None
    }
    with pytest.raises(ParametreInvalide, match="absente"):
        proteger(cellules, [(TOTAL, ["a", "z"])])
    with pytest.raises(ParametreInvalide, match="n'est pas la somme"):
        proteger(cellules, [(TOTAL, ["a", "b"])])
    with pytest.raises(ParametreInvalide, match="deux fois"):
        proteger(cellules, [(TOTAL, ["a", "a", "b", "c"])])


def test_sans_marges_seule_la_regle_primaire():
    lignes = {"a": cel(5, 3), "b": cel(6, 6, 6), "c": cel(9, 9, 9)}
    assert proteger_tableau(lignes, with_margins=False) == {"a": "primaire", "b": None, "c": None}


def test_parts_publiees_exemple():
    parts = parts_publiees({"a": 5.0, "b": 7.0, "c": 20.0, "d": 8.0},
                           {"a": "primaire", "b": "secondaire"}, 40.0)
    assert parts == {"a": None, "b": None, "c": 0.5, "d": 0.2}
    assert parts_publiees({"a": 0.0}, {}, 0.0) == {"a": None}
    with pytest.raises(ParametreInvalide):
        parts_publiees({"a": 1.0}, {}, -1.0)


def test_exemples_des_docstrings():
    resultat = doctest.testmod(confidentiality)
    assert resultat.attempted >= 10 and resultat.failed == 0


# ---------------------------------------------------------------------------------------------
# property tests

# A cell = the headcounts of its establishments: 0, 1, 2 establishments are frequent (primary
# secrets, empty cells), establishments without employees too (their zeros defeat a
# complement: only the LP audit sees it), and sometimes one big establishment dominates.
effectifs_etablissement = st.integers(min_value=0, max_value=40)
cellules_st = st.one_of(
    st.just(VIDE),
    st.lists(st.just(0), min_size=1, max_size=4).map(lambda e: cel(*e)),
    st.lists(effectifs_etablissement, min_size=1, max_size=2).map(lambda e: cel(*e)),
    st.lists(effectifs_etablissement, min_size=3, max_size=7).map(lambda e: cel(*e)),
    st.tuples(st.integers(200, 500), st.lists(effectifs_etablissement, min_size=2, max_size=4))
    .map(lambda t: cel(t[0], *t[1])),
)
tables_1d = st.integers(min_value=1, max_value=8).flatmap(
    lambda n: st.lists(cellules_st, min_size=n, max_size=n)
).map(lambda cs: {f"s{i:02d}": c for i, c in enumerate(cs)})
tables_2d = st.tuples(st.integers(1, 4), st.integers(1, 4)).flatmap(
    lambda d: st.lists(cellules_st, min_size=d[0] * d[1], max_size=d[0] * d[1]).map(
        lambda cs: {f"r{i}": {f"c{j}": cs[i * d[1] + j] for j in range(d[1])}
                    for i in range(d[0])}
    )
)
tables = st.one_of(tables_1d.map(une_dimension), tables_2d.map(deux_dimensions))

REGLAGES = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def verifier_protection(cellules: dict, groupes: list, statuts: dict) -> None:
    assert set(statuts) == set(cellules)
    for cle, c in cellules.items():
        # (a) no published cell breaks the primary rule; every primary secret is marked
        assert (statuts[cle] == "primaire") == secret_primaire(c)
        if statuts[cle] is None:
            assert not secret_primaire(c)
        if c.nombre == 0:
            assert statuts[cle] is None  # empty cells are never suppressed
    for total, membres in groupes:
        # no additive group holds a single suppressed cell (else subtraction gives it away)
        assert len(supprimees({k: statuts[k] for k in (total, *membres)})) != 1
    # (b) nothing is recoverable, even by linear programming with non-negativity
    assert recuperables(cellules, groupes, statuts) == set()


@REGLAGES
@given(tables)
def test_propriete_protection(table):
    cellules, groupes = table
    statuts = proteger(cellules, groupes)
    verifier_protection(cellules, groupes, statuts)
    # (c) deterministic, and re-protecting the published output changes nothing
    assert proteger(cellules, groupes) == statuts
    assert proteger(cellules, groupes, statuts_initiaux=statuts) == statuts
    # (d) in every group, published shares + the suppressed block's share = 1
    for total, membres in groupes:
        t = cellules[total].effectif
        if t == 0 or statuts[total]:
            continue
        valeurs = {m: cellules[m].effectif for m in membres}
        parts = parts_publiees(valeurs, statuts, t)
        publie = sum(v for m, v in valeurs.items() if not statuts[m])
        bloc = (t - publie) / t
        assert bloc >= -1e-12
        assert sum(p for p in parts.values() if p is not None) + bloc == pytest.approx(1, abs=1e-3)
        assert {m for m, p in parts.items() if p is None} == {m for m in membres if statuts[m]}
        # the block sums the suppressed cells: never a single one
        assert len([m for m in membres if statuts[m]]) != 1


@REGLAGES
@given(tables_2d)
def test_propriete_tableau_deux_dimensions(grille):
    statuts = proteger_tableau(grille)
    cellules, groupes = deux_dimensions(grille)
    plats = {(r, c): s for r, ligne in statuts.items() for c, s in ligne.items()}
    assert plats == proteger(cellules, groupes)
    verifier_protection(cellules, groupes, plats)


@settings(max_examples=200, deadline=None)
@given(tables, st.data())
def test_propriete_audit_voit_les_soustractions(table, data):
    # On any suppression pattern, a cell alone in a group is reported recoverable.
    cellules, groupes = table
    cles = sorted(cellules, key=repr)
    motif = data.draw(st.sets(st.sampled_from(cles)))
    statuts = {k: ("secondaire" if k in motif else None) for k in cellules}
    trouvees = recuperables(cellules, groupes, statuts)
    assert trouvees <= motif
    for total, membres in groupes:
        seules = [k for k in (total, *membres) if k in motif]
        if len(seules) == 1:
            assert seules[0] in trouvees
    assert {k for k in motif if cellules[k].nombre == 0} <= trouvees
    # the null-space shortcut and the linear programs agree
    assert recuperables(cellules, groupes, statuts, methode="lp") == trouvees
