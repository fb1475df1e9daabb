"""Statistical confidentiality (*secret statistique*) of business tables — METHODOLOGY 7.

INSEE's rules for tables of establishments and headcounts:

- **primary** (:func:`secret_primaire`): a cell is secret when it has fewer than
  ``nombre_minimum`` establishments, or when one establishment holds more than
  ``dominance_maximum`` of its headcount. An empty cell (no establishment) is never secret:
  Sirene is open data, so everyone knows that its headcount is 0.
- **secondary** (:func:`proteger`): in every additive group (a total and the cells that add up to
  it, along each dimension of the table), a lone suppressed cell is protected by also
  suppressing the smallest other cell of the group, until a fixed point; then a linear-programming
  audit (:func:`recuperables`) checks that no suppressed cell can be computed exactly from the
  published cells, the totals and the public knowledge that every headcount is >= 0 and that
  empty cells are 0; while one can, a further complement is suppressed.

Thresholds come from :func:`essqpv.config.confidentialite` (``reference/confidentialite.csv``),
never from this module. Everything here is pure and deterministic: the same input always gives
the same statuses, whatever the order of the groups' internal computations.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from essqpv.config import Confidentialite, confidentialite
from essqpv.errors import EssqpvError, ParametreInvalide

__all__ = [
    "PRIMAIRE",
    "SECONDAIRE",
    "TOTAL",
    "Cellule",
    "agreger",
    "parts_publiees",
    "proteger",
    "proteger_tableau",
    "recuperables",
    "secret_primaire",
]


def linprog(*args, **kwargs):
    """``scipy.optimize.linprog``, imported when first called (importing scipy.optimize
    costs ≈ 0.4 s, paid otherwise by every build and command importing this module)."""
    from scipy.optimize import linprog as _linprog
    return _linprog(*args, **kwargs)


PRIMAIRE = "primaire"
SECONDAIRE = "secondaire"
TOTAL = "Ensemble"

# Relative tolerance (of the largest headcount of the table) under which the range of a
# suppressed cell counts as a single value, and additivity of the input is accepted.
_TOLERANCE_RELATIVE = 1e-6

Groupe = tuple[Hashable, Sequence[Hashable]]


@dataclass(frozen=True)
class Cellule:
    """One cell of a business table.

    Attributes
    ----------
    nombre : int
        Establishments in the cell (public: Sirene is open data).
    effectif : float
        Headcount of the cell: the value that is published or suppressed.
    effectif_max : float
        Headcount of the largest single establishment of the cell (never published).

    Raises
    ------
    ParametreInvalide
        When ``nombre < 0``, ``effectif < 0``, ``effectif_max`` is outside ``[0, effectif]``,
        or an empty cell has a headcount.

    Examples
    --------
    >>> Cellule(nombre=2, effectif=12.0, effectif_max=10.0)
    Cellule(nombre=2, effectif=12.0, effectif_max=10.0)
    """

    nombre: int
    effectif: float
    effectif_max: float

    def __post_init__(self) -> None:
        marge = _TOLERANCE_RELATIVE * max(1.0, abs(self.effectif))
        if not self.nombre >= 0:
            raise ParametreInvalide(
                f"Case invalide : nombre d'établissements négatif ({self.nombre})."
            )
        if not self.effectif >= 0:
            raise ParametreInvalide(f"Case invalide : effectif négatif ou absent ({self.effectif}).")
        if not 0 <= self.effectif_max <= self.effectif + marge:
            raise ParametreInvalide(
                "Case invalide : l'effectif du plus grand établissement "
                f"({self.effectif_max}) doit être compris entre 0 et l'effectif de la case "
                f"({self.effectif})."
            )
        if self.nombre == 0 and self.effectif > 0:
            raise ParametreInvalide(
                f"Case invalide : une case sans établissement a un effectif ({self.effectif})."
            )


def agreger(cellules: Iterable[Cellule]) -> Cellule:
    """Total of several cells: counts and headcounts add up, the largest establishment is the max.

    Parameters
    ----------
    cellules : iterable of Cellule
        The member cells (may be empty: the total is then an empty cell).

    Returns
    -------
    Cellule

    Examples
    --------
    >>> agreger([Cellule(2, 12.0, 10.0), Cellule(5, 40.0, 15.0)])
    Cellule(nombre=7, effectif=52.0, effectif_max=15.0)
    """
    liste = list(cellules)
    return Cellule(
        nombre=sum(c.nombre for c in liste),
        effectif=float(sum(c.effectif for c in liste)),
        effectif_max=float(max((c.effectif_max for c in liste), default=0.0)),
    )


def secret_primaire(c: Cellule, regles: Confidentialite | None = None) -> bool:
    """Whether a cell is secret under the primary rule (METHODOLOGY 7).

    Parameters
    ----------
    c : Cellule
        The cell.
    regles : Confidentialite, optional
        Thresholds; default: those of ``reference/confidentialite.csv``.

    Returns
    -------
    bool
        True when ``0 < c.nombre < regles.nombre_minimum`` or
        ``c.effectif_max > regles.dominance_maximum * c.effectif``. An empty cell
        (``nombre == 0``) is never secret: its zero is public.

    Examples
    --------
    >>> secret_primaire(Cellule(nombre=2, effectif=30.0, effectif_max=20.0))
    True
    >>> secret_primaire(Cellule(nombre=5, effectif=100.0, effectif_max=90.0))  # dominance
    True
    >>> secret_primaire(Cellule(nombre=5, effectif=100.0, effectif_max=40.0))
    False
    >>> secret_primaire(Cellule(nombre=0, effectif=0.0, effectif_max=0.0))
    False
    """
    regles = regles if regles is not None else confidentialite()
    if c.nombre == 0:
        return False
    if c.nombre < regles.nombre_minimum:
        return True
    return c.effectif_max > regles.dominance_maximum * c.effectif


# --------------------------------------------------------------------------------------------
# helpers


def _rangs(cles: Iterable[Hashable]) -> dict[Hashable, int]:
    """Rank of every key in sorted order (by ``repr`` when keys are not mutually comparable)."""
    cles = list(cles)
    try:
        ordonnees = sorted(cles)  # type: ignore[type-var]
    except TypeError:
        ordonnees = sorted(cles, key=lambda k: (type(k).__name__, repr(k)))
    return {k: i for i, k in enumerate(ordonnees)}


def _echelle(cellules: Mapping[Hashable, Cellule]) -> float:
    return max([1.0, *(abs(c.effectif) for c in cellules.values())])


def _verifier(cellules: Mapping[Hashable, Cellule], groupes: Sequence[Groupe]) -> None:
    """Check that every group names known cells and really adds up."""
    tolerance = _TOLERANCE_RELATIVE * _echelle(cellules)
    for total, membres in groupes:
        for cle in (total, *membres):
            if cle not in cellules:
                raise ParametreInvalide(
                    f"Groupe additif de total {total!r} : la case {cle!r} est absente du tableau."
                )
        if total in membres or len(set(membres)) != len(membres):
            raise ParametreInvalide(
                f"Groupe additif de total {total!r} : une case y figure deux fois."
            )
        somme_nombre = sum(cellules[m].nombre for m in membres)
        somme_effectif = sum(cellules[m].effectif for m in membres)
        if somme_nombre != cellules[total].nombre:
            raise ParametreInvalide(
                f"Groupe additif de total {total!r} : le nombre d'établissements du total "
                f"({cellules[total].nombre}) n'est pas la somme de ses cases ({somme_nombre})."
            )
        if abs(somme_effectif - cellules[total].effectif) > tolerance:
            raise ParametreInvalide(
                f"Groupe additif de total {total!r} : l'effectif du total "
                f"({cellules[total].effectif}) n'est pas la somme de ses cases ({somme_effectif})."
            )


def _plus_petite(
    candidates: Iterable[Hashable], cellules: Mapping[Hashable, Cellule], rang: Mapping[Hashable, int]
) -> Hashable | None:
    """The smallest cell by headcount, then by key order; None when there is none."""
    return min(candidates, key=lambda k: (cellules[k].effectif, rang[k]), default=None)


def _passe_groupes(
    cellules: Mapping[Hashable, Cellule],
    groupes: Sequence[Groupe],
    statuts: dict[Hashable, str | None],
    rang: Mapping[Hashable, int],
) -> None:
    """Suppress complements until no group holds exactly one suppressed cell (in place)."""
    change = True
    while change:
        change = False
        for total, membres in groupes:
            supprimees = [k for k in (total, *membres) if statuts[k]]
            if len(supprimees) != 1:
                continue
            seule = supprimees[0]
            # An empty cell's 0 is public: it cannot hide anything, so it is no complement.
            complement = _plus_petite(
                (m for m in membres if m != seule and not statuts[m] and cellules[m].nombre >= 1),
                cellules,
                rang,
            )
            if complement is None and seule != total:
                complement = total
            if complement is None:
                # A suppressed total whose members are all empty: nothing can hide it
                # (only reachable through ``statuts_initiaux``); the audit will report it.
                continue
            statuts[complement] = SECONDAIRE
            change = True


# --------------------------------------------------------------------------------------------
# audit


def recuperables(
    cellules: Mapping[Hashable, Cellule],
    groupes: Sequence[Groupe],
    statuts: Mapping[Hashable, str | None],
    methode: str = "auto",
) -> set[Hashable]:
    """Suppressed cells whose headcount can be computed exactly from what is published.

    The attacker knows the published headcounts, every additive constraint
    ``total = sum(members)``, that every headcount is >= 0, and that an empty cell
    (``nombre == 0``) is 0. A suppressed cell is recoverable when the minimum and the maximum of
    its value over all tables compatible with that knowledge are equal (within a relative
    tolerance of 1e-6 of the table's largest headcount).

    An exact fast path first solves every group that has a single unknown cell, and propagates
    (substitution, no arithmetic needed: the answer is structural). The remaining suppressed
    cells are decided at once by the directions in which the true table can move (one linear
    program, ``scipy.optimize.linprog`` with HiGHS, finds the empty-valued cells that must stay at
    0; a projection on the row space of the constraints does the rest), or, with ``methode="lp"``, by two linear programs per cell
    (its minimum and maximum), skipped when an earlier optimum already showed two different
    feasible values for the cell. Both give the same answer (a property test checks it).

    Parameters
    ----------
    cellules : mapping key -> Cellule
        Every cell of the table, totals included.
    groupes : sequence of (total_key, member_keys)
        The additive constraints.
    statuts : mapping key -> str or None
        A cell is suppressed when its status is truthy (``"primaire"``, ``"secondaire"``).
    methode : {"auto", "lp"}, default "auto"
        ``"lp"``: min and max of every remaining cell by linear programming (slower reference).

    Returns
    -------
    set
        The keys of the recoverable suppressed cells (empty when the protection holds).

    Raises
    ------
    ParametreInvalide
        When a group names an unknown cell or does not add up.

    Examples
    --------
    >>> cellules = {"A": Cellule(2, 5.0, 3.0), "B": Cellule(4, 7.0, 2.0),
    ...             "C": Cellule(6, 20.0, 5.0), "T": Cellule(12, 32.0, 5.0)}
    >>> groupes = [("T", ["A", "B", "C"])]
    >>> sorted(recuperables(cellules, groupes, {"A": "primaire"}))
    ['A']
    >>> recuperables(cellules, groupes, {"A": "primaire", "B": "secondaire"})
    set()
    """
    _verifier(cellules, groupes)
    supprimees = [k for k in cellules if statuts.get(k)]
    if not supprimees:
        return set()
    inconnues = set(supprimees)

    # Fast path: an empty cell is a public 0; a group with a single unknown gives it away.
    determinees = {k for k in supprimees if cellules[k].nombre == 0}
    change = True
    while change:
        change = False
        for total, membres in groupes:
            restantes = [k for k in (total, *membres) if k in inconnues and k not in determinees]
            if len(restantes) == 1:
                determinees.add(restantes[0])
                change = True

    variables = [k for k in supprimees if k not in determinees]
    if not variables:
        return determinees
    indice = {k: i for i, k in enumerate(variables)}
    echelle = _echelle(cellules)
    lignes: list[np.ndarray] = []
    seconds: list[float] = []
    for total, membres in groupes:
        coefficients = np.zeros(len(variables))
        constante = 0.0
        for cle, signe in ((total, 1.0), *((m, -1.0) for m in membres)):
            if cle in indice:
                coefficients[indice[cle]] += signe
            else:
                # Published, or determined: then its true value is the only possible one.
                constante += signe * cellules[cle].effectif / echelle
        if coefficients.any():
            lignes.append(coefficients)
            seconds.append(-constante)
    if not lignes:
        return determinees  # the remaining cells are in no constraint: unbounded
    a_eq = np.vstack(lignes)
    b_eq = np.asarray(seconds)
    bornes = [(0.0, None)] * len(variables)

    tolerance = _TOLERANCE_RELATIVE
    if methode == "auto":
        reelles = np.array([cellules[k].effectif / echelle for k in variables])
        return determinees | _immobiles(variables, a_eq, reelles <= tolerance)
    if methode != "lp":
        raise ParametreInvalide(f"Audit du secret : méthode inconnue {methode!r} (auto ou lp).")
    vus_min = np.full(len(variables), np.inf)
    vus_max = np.full(len(variables), -np.inf)

    def temoin(x: np.ndarray) -> None:
        np.minimum(vus_min, x, out=vus_min)
        np.maximum(vus_max, x, out=vus_max)

    resultat = set(determinees)
    for i, cle in enumerate(variables):
        if vus_max[i] - vus_min[i] >= tolerance:
            continue  # two feasible tables already differ on this cell
        objectif = np.zeros(len(variables))
        extremes = []
        for signe in (1.0, -1.0):
            objectif[i] = signe
            res = linprog(objectif, A_eq=a_eq, b_eq=b_eq, bounds=bornes, method="highs")
            if res.status == 3:  # unbounded above: the cell can be anything large
                extremes = []
                vus_max[i] = np.inf
                break
            if res.status != 0:
                raise EssqpvError(
                    "Audit du secret statistique : le programme linéaire n'a pas abouti "
                    f"pour la case {cle!r} ({res.message})."
                )
            temoin(res.x)
            extremes.append(res.x[i])
        if len(extremes) == 2 and extremes[1] - extremes[0] < tolerance:
            resultat.add(cle)
    return resultat


def _immobiles(variables: list[Hashable], a_eq: np.ndarray, nuls: np.ndarray) -> set[Hashable]:
    """Cells that no feasible table moves away from the true one (one LP at most).

    The feasible tables form a convex polyhedron P = {x >= 0, A x = b} containing the true
    table x*. A cell is constant on P iff every feasible direction d from x* has d_i = 0. The
    feasible directions form the cone C = {A d = 0, d_j >= 0 where x*_j = 0}. One LP finds the
    zero cells J that C keeps at 0 (maximise sum t_j, 0 <= t_j <= 1, t_j <= d_j: at the optimum
    t_j = 1 exactly for the cells C can raise). C then spans L = {A d = 0, d_J = 0}, so a cell
    i is constant iff L is orthogonal to e_i, i.e. e_i lies in the row space of the constraints
    [A; e_J]: its squared projection on an orthonormal basis of that row space is 1.
    """
    n = len(variables)
    zeros = np.flatnonzero(nuls)
    forcees = np.zeros(n, dtype=bool)
    if zeros.size:
        m = zeros.size
        # variables [d (n), t (m)]: A d = 0 ; t_j - d_j <= 0
        a_eq_cone = np.hstack([a_eq, np.zeros((a_eq.shape[0], m))])
        a_ub = np.zeros((m, n + m))
        a_ub[np.arange(m), zeros] = -1.0
        a_ub[np.arange(m), n + np.arange(m)] = 1.0
        objectif = np.concatenate([np.zeros(n), -np.ones(m)])
        bornes = [(None, None)] * n + [(0.0, 1.0)] * m
        res = linprog(objectif, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq_cone,
                      b_eq=np.zeros(a_eq.shape[0]), bounds=bornes, method="highs")
        if res.status != 0:
            raise EssqpvError(
                f"Audit du secret statistique : le programme linéaire n'a pas abouti ({res.message})."
            )
        forcees[zeros[res.x[n:] < 0.5]] = True
    fixations = np.zeros((int(forcees.sum()), n))
    fixations[np.arange(fixations.shape[0]), np.flatnonzero(forcees)] = 1.0
    contraintes = np.vstack([a_eq, fixations])
    _, valeurs_singulieres, vt = np.linalg.svd(contraintes, full_matrices=False)
    seuil = valeurs_singulieres.max(initial=0.0) * max(contraintes.shape) * np.finfo(float).eps
    base = vt[: int((valeurs_singulieres > seuil).sum())]
    projection = (base**2).sum(axis=0)
    return {k for k, p in zip(variables, projection) if p > 1 - 1e-9}


# --------------------------------------------------------------------------------------------
# protection


def proteger(
    cellules: Mapping[Hashable, Cellule],
    groupes: Sequence[Groupe],
    regles: Confidentialite | None = None,
    statuts_initiaux: Mapping[Hashable, str | None] | None = None,
) -> dict[Hashable, str | None]:
    """Primary and secondary suppression of a table with additive constraints (METHODOLOGY 7).

    1. Primary: every cell where :func:`secret_primaire` holds is ``"primaire"``.
    2. Secondary, by group, until a fixed point: a group (total + members) with exactly one
       suppressed cell gets a complement — its smallest other member by headcount, then by key
       order, among the published members that have at least one establishment (an empty
       cell's 0 is public); when there is none, the group's total. A total is itself a member of
       other groups (margins, grand total), so suppression propagates.
    3. Audit: while :func:`recuperables` finds a recoverable suppressed cell (first in key order),
       suppress the smallest published non-empty member of a group containing it (that
       group's total when no member is left), then go back to step 2.

    Parameters
    ----------
    cellules : mapping key -> Cellule
        Every cell of the table, totals included.
    groupes : sequence of (total_key, member_keys)
        Additive constraints ``total = sum(members)``; a total may be a member of another group.
    regles : Confidentialite, optional
        Thresholds; default: those of ``reference/confidentialite.csv``.
    statuts_initiaux : mapping key -> str or None, optional
        Cells already suppressed (e.g. by an earlier run, or in a linked table); they stay
        suppressed (``"secondaire"`` unless they are primary secrets). Re-protecting the output
        of this function with itself as ``statuts_initiaux`` returns it unchanged.

    Returns
    -------
    dict key -> str or None
        For every cell, in the order of ``cellules``: ``None`` (published), ``"primaire"`` or
        ``"secondaire"``.

    Raises
    ------
    ParametreInvalide
        When a group names an unknown cell, names a cell twice, or does not add up.

    Examples
    --------
    >>> cellules = {"A": Cellule(2, 5.0, 3.0), "B": Cellule(4, 7.0, 2.0),
    ...             "C": Cellule(6, 20.0, 5.0), "T": Cellule(12, 32.0, 5.0)}
    >>> proteger(cellules, [("T", ["A", "B", "C"])])
    {'A': 'primaire', 'B': 'secondaire', 'C': None, 'T': None}
    """
    regles = regles if regles is not None else confidentialite()
    _verifier(cellules, groupes)
    rang = _rangs(cellules)
    statuts: dict[Hashable, str | None] = {
        k: (PRIMAIRE if secret_primaire(c, regles) else None) for k, c in cellules.items()
    }
    for cle, statut in (statuts_initiaux or {}).items():
        if cle not in cellules:
            raise ParametreInvalide(f"Statut initial : la case {cle!r} est absente du tableau.")
        if statut and not statuts[cle]:
            statuts[cle] = SECONDAIRE

    groupes_de: dict[Hashable, list[int]] = {k: [] for k in cellules}
    for i, (total, membres) in enumerate(groupes):
        for cle in (total, *membres):
            groupes_de[cle].append(i)

    while True:
        _passe_groupes(cellules, groupes, statuts, rang)
        exposees = recuperables(cellules, groupes, statuts)
        if not exposees:
            break
        cible = min(exposees, key=rang.__getitem__)
        # Members first: a total hides as well but is the table's most useful figure.
        voisines = {
            k
            for i in groupes_de[cible]
            for k in groupes[i][1]
            if not statuts[k] and cellules[k].nombre >= 1
        }
        if not voisines:
            voisines = {
                groupes[i][0]
                for i in groupes_de[cible]
                if not statuts[groupes[i][0]] and cellules[groupes[i][0]].nombre >= 1
            }
        if not voisines:
            # Every neighbour is suppressed or empty: widen to any group holding a suppression.
            voisines = {
                k
                for total, membres in groupes
                if any(statuts[j] for j in (total, *membres))
                for k in (total, *membres)
                if not statuts[k] and cellules[k].nombre >= 1
            }
        complement = _plus_petite(voisines, cellules, rang)
        if complement is None:
            break  # nothing left to suppress: the audit result stands for the caller to see
        statuts[complement] = SECONDAIRE
    return statuts


def _est_2d(valeurs: Mapping) -> bool:
    interieurs = list(valeurs.values())
    if all(isinstance(v, Cellule) for v in interieurs):
        return False
    if all(isinstance(v, Mapping) for v in interieurs):
        return True
    raise ParametreInvalide(
        "Tableau invalide : attendu un dictionnaire ligne -> Cellule (une dimension) "
        "ou ligne -> {colonne -> Cellule} (deux dimensions)."
    )


def proteger_tableau(
    valeurs: Mapping[Hashable, Cellule] | Mapping[Hashable, Mapping[Hashable, Cellule]],
    with_margins: bool = True,
    total: Hashable = TOTAL,
    regles: Confidentialite | None = None,
) -> dict[Hashable, str | None] | dict[Hashable, dict[Hashable, str | None]]:
    """Protect a 1-D list with its total, or a 2-D table with its margins.

    Parameters
    ----------
    valeurs : mapping row -> Cellule, or mapping row -> (mapping column -> Cellule)
        One dimension: rows and, optionally, the total row ``total``. Two dimensions: the
        interior cells and, optionally, the margins (row ``total``, column ``total``); a
        missing interior cell is an empty cell (no establishment).
    with_margins : bool, default True
        Whether the totals are published: missing totals are then computed (:func:`agreger`)
        and every row and column (and the grand total along both) is an additive group.
        Without margins, only the primary rule applies (nothing can be subtracted).
    total : hashable, default "Ensemble"
        Label of the total row (and column).
    regles : Confidentialite, optional
        Thresholds; default: those of ``reference/confidentialite.csv``.

    Returns
    -------
    dict
        Same shape as ``valeurs`` (totals included, last): row -> status, or
        row -> {column -> status}; a status is ``None``, ``"primaire"`` or ``"secondaire"``.

    Raises
    ------
    ParametreInvalide
        When the table is neither shape, or a given total does not add up.

    Examples
    --------
    >>> proteger_tableau({"Action sociale": Cellule(2, 30.0, 20.0),
    ...                   "Enseignement": Cellule(8, 60.0, 15.0),
    ...                   "Sport et loisirs": Cellule(5, 12.0, 4.0),
    ...                   "Commerce": Cellule(0, 0.0, 0.0)})
    {'Action sociale': 'primaire', 'Enseignement': None, 'Sport et loisirs': 'secondaire', \
'Commerce': None, 'Ensemble': None}
    """
    if not _est_2d(valeurs):
        lignes = [k for k in valeurs if k != total]
        cellules: dict[Hashable, Cellule] = {k: valeurs[k] for k in lignes}  # type: ignore[misc]
        groupes: list[Groupe] = []
        if with_margins:
            cellules[total] = valeurs.get(total) or agreger(cellules.values())  # type: ignore[assignment]
            groupes.append((total, lignes))
        elif total in valeurs:
            cellules[total] = valeurs[total]  # type: ignore[assignment]
        return proteger(cellules, groupes, regles)

    table: Mapping[Hashable, Mapping[Hashable, Cellule]] = valeurs  # type: ignore[assignment]
    lignes = [r for r in table if r != total]
    colonnes: list[Hashable] = []
    for r in table:
        for c in table[r]:
            if c != total and c not in colonnes:
                colonnes.append(c)
    vide = Cellule(0, 0.0, 0.0)
    cellules = {(r, c): table[r].get(c, vide) for r in lignes for c in colonnes}
    groupes = []
    lignes_sortie = list(lignes)
    colonnes_sortie = list(colonnes)
    if with_margins:
        for r in lignes:
            donnee = table[r].get(total)
            cellules[(r, total)] = donnee or agreger(cellules[(r, c)] for c in colonnes)
        marge = table.get(total, {})
        for c in colonnes:
            donnee = marge.get(c)
            cellules[(total, c)] = donnee or agreger(cellules[(r, c)] for r in lignes)
        cellules[(total, total)] = marge.get(total) or agreger(
            cellules[(r, total)] for r in lignes
        )
        groupes += [((r, total), [(r, c) for c in colonnes]) for r in lignes]
        groupes += [((total, c), [(r, c) for r in lignes]) for c in colonnes]
        groupes.append(((total, total), [(r, total) for r in lignes]))
        groupes.append(((total, total), [(total, c) for c in colonnes]))
        lignes_sortie.append(total)
        colonnes_sortie.append(total)
    statuts = proteger(cellules, groupes, regles)
    return {r: {c: statuts[(r, c)] for c in colonnes_sortie} for r in lignes_sortie}


def parts_publiees(
    valeurs: Mapping[Hashable, float],
    statuts: Mapping[Hashable, str | None],
    total: float,
) -> dict[Hashable, float | None]:
    """Shares of the published cells of a group in its total; suppressed cells get ``None``.

    The published shares plus the share of the suppressed block,
    ``(total - sum of published values) / total``, add up to 1: a table shows the block as
    one residual line, never the suppressed cells one by one.

    Parameters
    ----------
    valeurs : mapping key -> float
        The members of the group (not the total).
    statuts : mapping key -> str or None
        Statuses from :func:`proteger` (a missing key means published).
    total : float
        The group's total (published).

    Returns
    -------
    dict key -> float or None
        ``valeur / total`` for published cells, ``None`` for suppressed ones; every share is
        ``None`` when ``total`` is 0 (a share of nothing is undefined).

    Raises
    ------
    ParametreInvalide
        When ``total`` is negative.

    Examples
    --------
    >>> parts_publiees({"A": 5.0, "B": 7.0, "C": 20.0, "D": 8.0},
    ...                {"A": "primaire", "B": "secondaire"}, 40.0)
    {'A': None, 'B': None, 'C': 0.5, 'D': 0.2}
    """
    if total < 0:
        raise ParametreInvalide(f"Parts : le total doit être positif ou nul (reçu {total}).")
    if total == 0:
        return {k: None for k in valeurs}
    return {k: (None if statuts.get(k) else v / total) for k, v in valeurs.items()}
