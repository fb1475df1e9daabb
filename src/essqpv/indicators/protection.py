"""Protection of the publication plan by certificates, and the attacker's audit (METHODOLOGY 7).

The plan (:mod:`essqpv.indicators.publication`) is a set of cells and additivity relations
``A x = 0``. The attacker knows every published cell, every relation, that a headcount is
``>= 0`` and that a cell without establishment is 0 (establishment counts are public).

**Certificate.** For a sensitive cell ``c`` of value ``v_c`` and protection ``p`` (from
``reference/confidentialite.csv``), a vector ``d`` over the cells with

- ``A d = 0`` on *every* relation of the plan,
- ``d = 0`` on every published (not suppressed) cell and on every cell without establishment,
- ``v + d >= 0`` on every cell,
- ``d_c >= p`` (upward certificate) or ``d_c <= -min(p, v_c)`` (downward),

is a proof: ``v + d`` is a table the attacker cannot tell from the true one (same published
figures, same relations, non-negative), so the attacker's interval for ``c`` reaches at least
``v_c + d_c``; with both certificates it contains ``[v_c - min(p, v_c), v_c + p]``. No need to
solve the attacker's program on the whole plan: checking a certificate is one sparse product.
A certificate stays valid when more cells are suppressed (its support only grows more free).

**Protection** (:func:`proteger`): primary suppression from the rule of
``reference/confidentialite.csv``; the problem is then reduced (cells without establishment
dropped, cells that always hold the same establishments merged: an EPCI of one commune, a QPV
lying in one commune and its part in that commune, a perimeter whose ring is empty…);
for every sensitive cell and direction, a certificate is first looked for among those already
found (a certificate scaled within its non-negativity limits proves every cell it moves);
otherwise a linear program (HiGHS) finds the perturbation of least information loss: moving
an already unknown cell costs (almost) nothing, moving a published cell costs its weight
(``1 + value``, per published copy), as in Fischetti and Salazar's model of cell suppression;
the published cells it moves become secondary secrets. The program is restricted to a set of
classes, smallest first (:class:`_Chercheur`): the cell's commune with 3, 10, then 30 partner
communes of its département (with their QPV, parts of QPV, EPCI and the département's own
cells), then the communes sharing its QPV; then the département, its région (the cells above
them held at 0), the whole plan. Classes outside the set are held at 0 and every
relation touching the set is kept, so any solution is valid for the whole plan (and it is
verified against the whole plan anyway).

**Audit** (:func:`auditer`): every stored certificate is verified against the full relation
matrix; each suppressed or sensitive cell gets the interval its valid certificates
guarantee (each scaled as far as non-negativity allows: an inner bound of the attacker's
interval); where the block of unknown cells is small, the exact interval of the attacker's
linear program (tightest bound) is computed too.
"""
from __future__ import annotations

import os
import sys
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import polars as pl

from essqpv.config import Confidentialite
from essqpv.errors import EssqpvError

_TOL = 1e-6
#: relative tolerance of a certificate's relations (floating-point linear programs)
TOLERANCE_CERTIFICAT = 1e-7
#: a certificate reaches its protection with this relative margin (covers the tolerance)
_MARGE = 0.0
_COUT_LIBRE = 1e-3


def protection(v: np.ndarray, regles: Confidentialite) -> np.ndarray:
    """The protection interval's half-width of each cell (``reference/confidentialite.csv``)."""
    return np.maximum(regles.protection_relative * v, regles.protection_minimum)


def requis(v: np.ndarray, regles: Confidentialite) -> tuple[np.ndarray, np.ndarray]:
    """Bounds the attacker's interval must reach: ``(max(v - p, 0), v + p)``."""
    p = protection(v, regles)
    return np.maximum(v - p, 0.0), v + p


class Systeme:
    """Relations as a sparse matrix (rows: relations ``total - sum(members) = 0``)."""

    def __init__(self, plan) -> None:
        from scipy.sparse import csr_matrix  # (imported when used: ≈ 0.15 s)
        self.n = len(plan)
        tailles = np.fromiter((1 + len(m) for _, m in plan.relations), dtype=np.int64,
                              count=len(plan.relations))
        indptr = np.concatenate([[0], np.cumsum(tailles)])
        cellules = np.empty(int(indptr[-1]), dtype=np.int64)
        coefs = -np.ones(int(indptr[-1]))
        for r, (total, membres) in enumerate(plan.relations):
            a = indptr[r]
            cellules[a] = total
            coefs[a] = 1.0
            cellules[a + 1:indptr[r + 1]] = membres
        self.indptr, self.cellules, self.coefs = indptr, cellules, coefs
        self.matrice = csr_matrix((coefs, cellules, indptr),
                                  shape=(len(plan.relations), self.n))
        self.matrice.sum_duplicates()
        incidence = csr_matrix((np.ones_like(coefs), cellules, indptr),
                               shape=(len(plan.relations), self.n)).tocsc()
        self._cptr, self._crel = incidence.indptr, incidence.indices
        self.incidence = incidence.tocsr()

    def cellules_de(self, r: int) -> np.ndarray:
        return self.cellules[self.indptr[r]:self.indptr[r + 1]]

    def relations_de(self, c: int) -> np.ndarray:
        return self._crel[self._cptr[c]:self._cptr[c + 1]]


@dataclass
class Certificat:
    """A perturbation ``d`` of the plan (sparse: cell indices and values), see module doc."""

    cellules: np.ndarray
    delta: np.ndarray


# --------------------------------------------------------------------------------------------
# reduction


def classes(systeme: Systeme, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells holding the same establishments merged: ``(cls, racines)``, the class of every
    cell (-1 for a cell without establishment) and the representative cell of every class.

    Two cells are merged when a relation makes one the only non-empty part of the other
    (``total = member``)."""
    actif = n > 0
    N = systeme.n
    parent = np.arange(N)

    def trouver(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    ip, ce = systeme.indptr, systeme.cellules
    totaux = ce[ip[:-1]]
    nb_actifs = np.add.reduceat(actif[ce].astype(np.int64), ip[:-1]) if len(ip) > 1 \
        else np.zeros(0, dtype=np.int64)
    nb_actifs = nb_actifs - actif[totaux]
    for r in np.flatnonzero((nb_actifs == 1) & actif[totaux]):
        membres = ce[ip[r] + 1:ip[r + 1]]
        m = int(membres[actif[membres]][0])
        a, b = trouver(int(totaux[r])), trouver(m)
        if a != b:
            parent[max(a, b)] = min(a, b)
    while True:
        suivant = parent[parent]
        if np.array_equal(suivant, parent):
            break
        parent = suivant
    racines = np.unique(parent[actif])
    cls = np.full(N, -1, dtype=np.int64)
    rang = np.full(N, -1, dtype=np.int64)
    rang[racines] = np.arange(len(racines))
    cls[actif] = rang[parent[actif]]
    return cls, racines


class _Reduit:
    """The plan without its empty cells, identical cells merged into classes.

    Two cells are merged when a relation makes one the only non-empty part of the other
    (``total = member``): they hold the same establishments, so they are the same figure.
    Relations are rewritten on the classes, emptied and duplicated ones dropped.
    """

    def __init__(self, systeme: Systeme, n: np.ndarray) -> None:
        from scipy.sparse import csr_matrix
        actif = n > 0
        N = systeme.n
        cls, racines = classes(systeme, n)
        self.K = len(racines)
        self.cls = cls
        self.representant = racines
        cellules_actives = np.flatnonzero(actif)
        self.membres = csr_matrix(
            (np.ones(len(cellules_actives)), (cls[cellules_actives], cellules_actives)),
            shape=(self.K, N))
        P = csr_matrix((np.ones(len(cellules_actives)), (cellules_actives,
                                                         cls[cellules_actives])),
                       shape=(N, self.K))
        R = (systeme.matrice @ P).tocsr()
        R.sum_duplicates()
        R.data[np.abs(R.data) < 0.5] = 0.0
        R.eliminate_zeros()
        # duplicated relations (same cells, same or opposite signs) are dropped
        garder, vues = [], set()
        for r in range(R.shape[0]):
            a, b = R.indptr[r], R.indptr[r + 1]
            if a == b:
                continue
            idx, val = R.indices[a:b], R.data[a:b]
            ordre = np.argsort(idx)
            idx, val = idx[ordre], val[ordre]
            if val[0] < 0:
                val = -val
            cle = (idx.tobytes(), val.tobytes())
            if cle in vues:
                continue
            vues.add(cle)
            garder.append(r)
        self.R = R[np.asarray(garder, dtype=np.int64)].tocsr() if garder else \
            csr_matrix((0, self.K))
        self.RT = self.R.tocsc()
        self.RT.sort_indices()
        self.degre = np.diff(self.RT.indptr)
        self.liees = np.flatnonzero(self.degre > 0)


# --------------------------------------------------------------------------------------------
# protection


def _highs():
    """A HiGHS instance; the banner HiGHS prints on stdout at its first start is silenced
    (it would break the JSON written by ``essqpv controle --secret --format json``)."""
    import highspy
    if _BANNIERE_TUE:
        return highspy.Highs()
    sys.stdout.flush()
    sauve = os.dup(1)
    nul = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(nul, 1)
        h = highspy.Highs()
    finally:
        os.dup2(sauve, 1)
        os.close(sauve)
        os.close(nul)
    _BANNIERE_TUE.append(True)
    return h


_BANNIERE_TUE: list = []


def _groupes(plan, red: _Reduit) -> dict[str, np.ndarray]:
    """Where every class lies: département and région (-1 when above, or unknown), commune
    unit (a commune, the parts of QPV in it and the QPV whose first commune it is; -1 above
    the commune) and EPCI (-1 when not an EPCI's cell); the neighbouring units of each unit
    (communes sharing a QPV).

    Read from the territory codes of its cells (``COM:``, ``X:qpv@commune``, ``QPV:``,
    ``EPCI:``, ``DEP:``, ``REG:``, residuals ``~reste``); a class takes the most specific
    territory of its cells. Only used to choose small programs: never for correctness (a
    certificate found in any set of classes is verified against the whole plan).
    """
    from essqpv import reference
    from essqpv.territoires import table_communes
    t = table_communes()
    dep_com = dict(t.select("commune", "departement").unique("commune").iter_rows())
    epci_com = dict(t.select("commune", "epci").unique("commune").iter_rows())
    # an EPCI goes with the département holding most of its communes, the smaller code on a
    # tie (the grouping returns its rows in no fixed order: an unordered choice here made two
    # builds of the same data suppress different cells)
    epci_dep: dict[str, str] = {}
    for e, d in (t.filter(pl.col("epci").is_not_null()).group_by("epci", "departement")
                 .len().sort(["len", "departement"], descending=[True, False])
                 .unique("epci", keep="first", maintain_order=True)
                 .select("epci", "departement").iter_rows()):
        epci_dep[e] = d
    reg_dep = {d["code"]: d["region"] for d in reference.departements()}
    # communes and their QPV: a QPV goes with the first of its communes (its "unit"), and the
    # communes sharing a QPV are neighbours
    communes_de_qpv: dict[str, set[str]] = defaultdict(set)
    qpv_dep: dict[str, str] = {}
    for terr in sorted({k[1] for k in plan.cles if k[1].startswith("X:")}):
        q, _, c = terr[2:].partition("@")
        if c in dep_com:
            qpv_dep.setdefault(q, dep_com[c])
            communes_de_qpv[q].add(c)
    unite_qpv = {q: min(cs) for q, cs in communes_de_qpv.items()}
    codes_dep = {d: i for i, d in enumerate(sorted(reg_dep))}
    codes_reg = {r: i for i, r in enumerate(sorted(set(reg_dep.values())))}
    codes_grp: dict[str, int] = {}
    codes_epci: dict[str, int] = {}
    memo: dict[str, tuple[int, int, int, int]] = {}

    def groupe(commune: str) -> int:
        return codes_grp.setdefault(commune, len(codes_grp))

    def lire(terr: str) -> tuple[int, int, int, int]:
        if terr in memo:
            return memo[terr]
        base = terr.split("~", 1)[0]
        prefixe, _, code = base.partition(":")
        dep, grp, epci = None, -1, -1
        if prefixe == "X":
            q, _, c = code.partition("@")
            dep = dep_com.get(c) or qpv_dep.get(q)
            grp = groupe(c if c in dep_com else unite_qpv.get(q, "Q" + q))
        elif prefixe == "COM":
            dep = dep_com.get(code)
            grp = groupe(code)
        elif prefixe == "QPV":
            dep = qpv_dep.get(code)
            grp = groupe(unite_qpv.get(code, "Q" + code))
        elif prefixe == "EPCI":
            dep = epci_dep.get(code)
            epci = codes_epci.setdefault(code, len(codes_epci))
        elif prefixe == "DEP":
            dep = code if code in reg_dep else None
        if "~" in terr and prefixe == "EPCI":
            dep = None  # an EPCI's rest may lie in another département
        if dep is not None and dep in codes_dep:
            r = (codes_dep[dep], codes_reg[reg_dep[dep]], grp, epci)
        elif prefixe == "REG" and code in codes_reg:
            r = (-1, codes_reg[code], grp, epci)
        else:
            r = (-1, -1, grp, epci)
        memo[terr] = r
        return r

    lu = np.asarray([lire(k[1]) for k in plan.cles], dtype=np.int64).reshape(-1, 4)
    actives = np.flatnonzero(red.cls >= 0)
    sortie = {}
    for j, nom in enumerate(("dep", "reg", "grp", "epci")):
        x = np.full(red.K, -1, dtype=np.int64)
        np.maximum.at(x, red.cls[actives], lu[actives, j])
        sortie[nom] = x
    # the EPCI of each commune group (through its communes)
    grp_epci: dict[int, set[int]] = defaultdict(set)
    for terr in sorted({k[1] for k in plan.cles if k[1].startswith("COM:")}):
        e = epci_com.get(terr[4:])
        g = lire(terr)[2]
        if e is not None and e in codes_epci and g >= 0:
            grp_epci[g].add(codes_epci[e])
    sortie["grp_epci"] = grp_epci
    # neighbours: the units of the communes a QPV spans
    voisins: dict[int, set[int]] = defaultdict(set)
    for cs in communes_de_qpv.values():
        us = {codes_grp[c] for c in cs if c in codes_grp}
        for u in us:
            voisins[u] |= us - {u}
    sortie["voisins"] = voisins
    # régions outside metropolitan France (their départements are 97x, 98x)
    sortie["regions_outre_mer"] = np.asarray(sorted(
        {codes_reg[reg_dep[d]] for d in reg_dep if d.startswith(("97", "98"))}), dtype=np.int64)
    return sortie


class _Modele_certificats:
    """Least-cost certificates over a set of classes, one warm-started linear program.

    Columns: for every class of the set bound by a relation, ``u >= 0`` and ``0 <= l <= v``
    with ``d = u - l`` (so ``v + d >= 0``); rows: every reduced relation touching the set,
    ``= 0``; classes outside the set are held at 0 (so any solution is a certificate for the
    whole plan). Cost per unit of movement: the class's weight when it is published
    (suppressing it loses information), almost nothing when the attacker already does not
    read it. A target is fixed to its required movement through its column bounds, the
    program re-solved from the previous basis, then released.
    """

    def __init__(self, red: _Reduit, v: np.ndarray, connue: np.ndarray,
                 poids: np.ndarray, classes: np.ndarray | None = None) -> None:
        import highspy
        hs = self.hs = highspy
        RT = red.RT  # csc: classes are columns (indices sorted)
        if classes is None:
            lies = red.liees
        else:
            classes = np.unique(np.asarray(classes, dtype=np.int64))
            lies = classes[red.degre[classes] > 0]
        self.lies = lies
        m = self.m = len(lies)
        self.v = v
        self.h = _highs()
        h = self.h
        h.setOptionValue("output_flag", False)
        h.setOptionValue("primal_feasibility_tolerance", 1e-9)
        h.setOptionValue("dual_feasibility_tolerance", 1e-9)
        h.setOptionValue("presolve", "off")  # keep the basis between targets
        h.setOptionValue("solver", "simplex")
        if m == 0:
            return
        # the columns of the set, gathered from the csc arrays; rows renumbered
        debuts = RT.indptr[lies]
        longueurs = RT.indptr[lies + 1] - debuts
        indptr = np.concatenate([[0], np.cumsum(longueurs)])
        pos = np.arange(indptr[-1]) - np.repeat(indptr[:-1], longueurs) + np.repeat(
            debuts, longueurs)
        lignes, rang = np.unique(RT.indices[pos], return_inverse=True)
        valeurs = RT.data[pos]
        cout = np.where(connue[lies], poids[lies], _COUT_LIBRE)
        nnz = int(indptr[-1])
        # (the array form of passModel: setting a HighsLp's members copies them at each step)
        h.passModel(2 * m, len(lignes), 2 * nnz, int(hs.MatrixFormat.kColwise),
                    int(hs.ObjSense.kMinimize), 0.0, np.concatenate([cout, cout]),
                    np.zeros(2 * m), np.concatenate([np.full(m, hs.kHighsInf), v[lies]]),
                    np.zeros(len(lignes)), np.zeros(len(lignes)),
                    np.concatenate([indptr[:-1], nnz + indptr[:-1]]).astype(np.int32),
                    np.concatenate([rang, rang]).astype(np.int32),
                    np.concatenate([valeurs, -valeurs]), np.zeros(2 * m, dtype=np.int32))

    def colonne(self, c: int) -> int:
        """The column of class ``c`` in this program, -1 when not in it."""
        j = int(np.searchsorted(self.lies, c))
        return j if j < self.m and self.lies[j] == c else -1

    def liberer(self, classes: np.ndarray) -> None:
        """Classes newly suppressed: moving them costs (almost) nothing from now on."""
        if not self.m:
            return
        classes = np.asarray(classes, dtype=np.int64)
        j = np.searchsorted(self.lies, classes)
        dedans = j < self.m
        j, classes = j[dedans], classes[dedans]
        j = j[self.lies[j] == classes]
        if j.size:
            idx = np.concatenate([j, j + self.m]).astype(np.int32)
            self.h.changeColsCost(len(idx), idx, np.full(len(idx), _COUT_LIBRE))

    def resoudre(self, c: int, sens: int, montant: float
                 ) -> tuple[np.ndarray, np.ndarray] | None:
        """The least-cost certificate moving class ``c`` by ``sens * montant``, or None."""
        hs = self.hs
        j = self.colonne(c)
        if j < 0:
            return None
        h = self.h
        u, l = j, j + self.m
        if sens > 0:
            h.changeColBounds(u, montant, montant)
            h.changeColBounds(l, 0.0, 0.0)
        else:
            h.changeColBounds(u, 0.0, 0.0)
            h.changeColBounds(l, montant, montant)
        h.run()
        statut = h.getModelStatus()
        x = np.asarray(h.getSolution().col_value) if statut == hs.HighsModelStatus.kOptimal \
            else None
        h.changeColBounds(u, 0.0, hs.kHighsInf)
        h.changeColBounds(l, 0.0, float(self.v[c]))
        if x is None:
            if statut in (hs.HighsModelStatus.kInfeasible,
                          hs.HighsModelStatus.kUnboundedOrInfeasible):
                return None
            raise EssqpvError("Secret statistique : le programme linéaire n'a pas abouti "
                              f"({h.modelStatusToString(statut)}).")
        d = x[:self.m] - x[self.m:]
        d[np.abs(d) < 1e-9 * max(1.0, montant)] = 0.0
        d[j] = sens * montant
        garde = np.flatnonzero(d)
        return self.lies[garde], d[garde]


def _indexer(etiquette: np.ndarray, nombre: int) -> list[np.ndarray]:
    """Classes of each label (labels ``0..nombre-1``; -1 left out)."""
    ordre = np.argsort(etiquette, kind="stable")
    e = etiquette[ordre]
    bornes = np.searchsorted(e, np.arange(nombre + 1))
    return [ordre[bornes[i]:bornes[i + 1]] for i in range(nombre)]


class _Chercheur:
    """Certificates searched in growing sets of classes, smallest first:

    1. the class's commune (its cells, its parts of QPV, its QPV, both perimeters and the
       ring, every table) with the communes sharing a QPV with it, their EPCI and their
       département's own cells;
    2. the same with a few other communes of the département (those of the same EPCI first,
       then those holding the most unknown classes): the partners a suppression pattern
       needs when a cell must move against another commune;
    3. the département, 4. its région (the cells above each held at 0), 5. the whole plan.

    Classes outside the set are held at 0 and every relation touching the set is kept, so a
    solution of any of them is a certificate for the whole plan. Sets 1–2 are small programs
    built for the target (a few hundred classes); 3–5 are warm models kept between targets.
    """

    #: how many partner commune groups the second set adds, in turn
    PARTENAIRES = (3, 10, 30)
    CHAUD = True

    def __init__(self, plan, red: _Reduit, v: np.ndarray, connue: np.ndarray,
                 poids: np.ndarray) -> None:
        self.red, self.v, self.connue, self.poids = red, v, connue, poids
        g = _groupes(plan, red)
        self.dep, self.reg, self.grp, self.epci = g["dep"], g["reg"], g["grp"], g["epci"]
        self.grp_epci, self.voisins = g["grp_epci"], g["voisins"]
        # the national cells with every class outside metropolitan France (the cells of the
        # territories outside the régions, FR~autres, move against the DROM, not France)
        nationales = np.flatnonzero((self.dep < 0) & (self.reg < 0))
        self.outre_mer = np.union1d(nationales, np.flatnonzero(
            np.isin(self.reg, g["regions_outre_mer"])))
        self.outre_mer_regions = g["regions_outre_mer"]
        self.haut = np.flatnonzero(self.dep < 0)  # classes above the départements
        n_grp = int(self.grp.max(initial=-1)) + 1
        n_epci = int(self.epci.max(initial=-1)) + 1
        n_dep = int(self.dep.max(initial=-1)) + 1
        self.classes_grp = _indexer(self.grp, n_grp)
        self.classes_epci = _indexer(self.epci, n_epci)
        propres = np.where((self.grp < 0) & (self.epci < 0), self.dep, -1)
        self.classes_dep = _indexer(propres, n_dep)  # the département's own cells
        # département of each commune group (of its first class), groups of each département
        self.dep_grp = np.full(n_grp, -1, dtype=np.int64)
        avec = np.flatnonzero(self.grp >= 0)
        self.dep_grp[self.grp[avec][::-1]] = self.dep[avec][::-1]
        self.grp_dep = _indexer(self.dep_grp, n_dep)
        n_reg = int(self.reg.max(initial=-1)) + 1
        self.reg_grp = np.full(n_grp, -1, dtype=np.int64)
        self.reg_grp[self.grp[avec][::-1]] = self.reg[avec][::-1]
        self.grp_reg = _indexer(self.reg_grp, n_reg)
        propres_reg = np.where((self.grp < 0) & (self.epci < 0) & (self.dep < 0), self.reg, -1)
        self.classes_reg = _indexer(propres_reg, n_reg)  # the région's own cells
        self.modeles: dict[tuple, _Modele_certificats] = {}
        self.programmes = 0
        self.niveaux = {"commune": 0, "voisins": 0, "voisins_hors": 0, "outre_mer": 0,
                        "departement": 0, "region": 0, "plan": 0}

    def _modele(self, cle: tuple) -> _Modele_certificats:
        m = self.modeles.get(cle) if self.CHAUD else None
        if m is None:
            # (the cells above the set are held at 0: a département's or a région's program
            # never moves the région's or the national figures — a cell that needs them goes
            # to the next set, where the cheapest partner is chosen over the whole région or
            # plan, instead of a national figure suppressed for one commune)
            if cle[0] == "departement":
                classes = np.flatnonzero(self.dep == cle[1])
            elif cle[0] == "region":
                classes = np.flatnonzero(self.reg == cle[1])
            else:
                classes = None
            m = _Modele_certificats(self.red, self.v, self.connue, self.poids, classes)
            self.modeles[cle] = m
        return m

    def _local(self, groupes: list[int], regions: bool = False) -> np.ndarray:
        """Classes of commune groups, with their EPCI and their départements' own cells (and
        their régions' own cells with ``regions``: partners in other régions)."""
        morceaux = [self.classes_grp[g] for g in groupes]
        epcis = set().union(*(self.grp_epci.get(g, set()) for g in groupes))
        morceaux += [self.classes_epci[e] for e in sorted(epcis)]
        deps = {int(self.dep_grp[g]) for g in groupes} - {-1}
        morceaux += [self.classes_dep[d] for d in sorted(deps)]
        if regions:
            regs = {int(self.reg_grp[g]) for g in groupes} - {-1}
            morceaux += [self.classes_reg[r] for r in sorted(regs)]
        return np.unique(np.concatenate(morceaux))

    def _plus_inconnues(self, candidats: np.ndarray, exclus: set, nombre: int) -> list[int]:
        """The candidate commune groups holding the most unknown classes."""
        candidats = np.asarray([x for x in candidats.tolist() if x not in exclus], dtype=np.int64)
        if candidats.size == 0 or nombre <= 0:
            return []
        inconnues = np.asarray([int((~self.connue[self.classes_grp[int(x)]]).sum())
                                for x in candidats])
        ordre = np.argsort(-inconnues, kind="stable")
        return [int(x) for x in candidats[ordre[:nombre]]]

    def _essais_hors_commune(self, c: int, g: int) -> list[tuple[list[int], bool]]:
        """Local sets for a cell that must move against other départements or régions (a
        département alone in its région's list, a département's, EPCI's or région's cell)."""
        d, r = int(self.dep[c]), int(self.reg[c])
        essais: list[tuple[list[int], bool]] = []
        if d >= 0:
            base = [g] if g >= 0 else self._plus_inconnues(self.grp_dep[d], set(), 3)
            if r >= 0:
                autres_dep = self.grp_reg[r][self.dep_grp[self.grp_reg[r]] != d]
                for k in (3, 10):
                    essais.append((base + self._plus_inconnues(autres_dep, set(base), k), False))
                # (a région of one département: partners in other régions)
                autres = np.flatnonzero((self.reg_grp >= 0) & (self.reg_grp != r))
                for k in (3, 10):
                    essais.append((base + self._plus_inconnues(autres, set(base), k), True))
        elif r >= 0:
            base = self._plus_inconnues(self.grp_reg[r], set(), 3)
            autres = np.flatnonzero((self.reg_grp >= 0) & (self.reg_grp != r))
            for k in (3, 10):
                essais.append((base + self._plus_inconnues(autres, set(base), k), True))
        return [(gs, regs) for gs, regs in essais if gs]

    def _partenaires(self, g: int, nombre: int) -> list[int]:
        """Other commune groups of the département: same EPCI first, then the most unknown."""
        d = int(self.dep_grp[g])
        if d < 0:
            return []
        autres = self.grp_dep[d]
        autres = autres[autres != g]
        if autres.size == 0:
            return []
        mes_epci = self.grp_epci.get(g, set())
        meme = np.asarray([bool(self.grp_epci.get(int(x), set()) & mes_epci) for x in autres])
        inconnues = np.asarray([int((~self.connue[self.classes_grp[int(x)]]).sum())
                                for x in autres])
        ordre = np.lexsort((-inconnues, ~meme))
        return [int(x) for x in autres[ordre[:nombre]]]

    def liberer(self, classes: np.ndarray) -> None:
        for m in self.modeles.values():
            m.liberer(classes)

    def resoudre(self, c: int, sens: int, montant: float
                 ) -> tuple[np.ndarray, np.ndarray] | None:
        if self.red.RT.indptr[c + 1] == self.red.RT.indptr[c]:
            # bound by no relation: moving it alone is a certificate
            return np.asarray([c]), np.asarray([sens * montant])
        g = int(self.grp[c])
        if g >= 0:
            proches = sorted(self.voisins.get(g, ()))
            essais = []
            for k in self.PARTENAIRES:
                p = self._partenaires(g, k)
                if not essais or len(p) > len(essais[-1]) - 1:
                    essais.append([g, *p])
            if proches:
                essais.append(sorted({g, *proches, *essais[-1]}))
            for groupes in essais:
                self.programmes += 1
                m = _Modele_certificats(self.red, self.v, self.connue, self.poids,
                                        self._local(groupes))
                trouve = m.resoudre(c, sens, montant)
                if trouve is not None:
                    self.niveaux["commune" if len(groupes) == 1 else "voisins"] += 1
                    return trouve
        for groupes, regions in self._essais_hors_commune(c, g):
            self.programmes += 1
            m = _Modele_certificats(self.red, self.v, self.connue, self.poids,
                                    self._local(groupes, regions))
            trouve = m.resoudre(c, sens, montant)
            if trouve is not None:
                self.niveaux["voisins_hors"] += 1
                return trouve
        if self.reg[c] < 0 or np.isin(self.reg[c], self.outre_mer_regions):
            self.programmes += 1
            m = _Modele_certificats(self.red, self.v, self.connue, self.poids, self.outre_mer)
            trouve = m.resoudre(c, sens, montant)
            if trouve is not None:
                self.niveaux["outre_mer"] += 1
                return trouve
        cles = []
        if self.dep[c] >= 0:
            cles.append(("departement", int(self.dep[c]), int(self.reg[c])))
        if self.reg[c] >= 0:
            cles.append(("region", int(self.reg[c])))
        cles.append(("plan",))
        for cle in cles:
            self.programmes += 1
            trouve = self._modele(cle).resoudre(c, sens, montant)
            if trouve is not None:
                self.niveaux[cle[0]] += 1
                return trouve
        return None


def _limites(v: np.ndarray, idx: np.ndarray, val: np.ndarray) -> tuple[float, float]:
    """How far a perturbation can be scaled up (``alpha_plus``) and reversed
    (``alpha_moins``) keeping every cell non-negative: ``lambda`` in [-alpha_moins, alpha_plus]."""
    neg, pos = val < 0, val > 0
    a_plus = float(np.min(v[idx[neg]] / -val[neg])) if neg.any() else np.inf
    a_moins = float(np.min(v[idx[pos]] / val[pos])) if pos.any() else np.inf
    return a_plus, a_moins


def _portees(dc: float, a_plus: float, a_moins: float) -> tuple[float, float]:
    """Upward and downward reach of a cell moved by ``dc`` in a scalable perturbation."""
    haut = max(a_plus * dc if dc > 0 else -a_moins * dc, 0.0)
    bas = max(-a_plus * dc if dc < 0 else a_moins * dc, 0.0)
    return haut, bas


def sensibles(plan, regles: Confidentialite, exclus: frozenset) -> np.ndarray:
    """Cells the primary rule makes sensitive (fewer establishments than the minimum, or one
    establishment above the dominance share); tables of counts (public) excluded."""
    n = np.asarray(plan.nombre)
    v = np.asarray(plan.valeur, dtype=float)
    mx = np.asarray(plan.maximum, dtype=float)
    s = (n > 0) & ((n < regles.nombre_minimum) | (mx > regles.dominance_maximum * v))
    s &= np.asarray([k[0] not in exclus for k in plan.cles], dtype=bool)
    return s


def sensibilite(plan, regles: Confidentialite, exclus: frozenset,
                systeme: Systeme | None = None) -> np.ndarray:
    """The sensitive cells of the plan: those of the primary rule (:func:`sensibles`) and
    every cell identical to one of them (same establishments: the same figure)."""
    systeme = systeme or Systeme(plan)
    cls, racines = classes(systeme, np.asarray(plan.nombre))
    actif = cls >= 0
    sens_k = np.zeros(len(racines), dtype=bool)
    sens_k[cls[sensibles(plan, regles, exclus) & actif]] = True
    sensible = np.zeros(len(plan), dtype=bool)
    sensible[actif] = sens_k[cls[actif]]
    return sensible


def proteger(plan, regles: Confidentialite, exclus: frozenset,
             progression=None) -> dict:
    """Primary and secondary suppression with a certificate for every sensitive cell.

    Sets ``plan.sensible``, ``plan.statuts`` and ``plan.certificats``; returns counts.
    """
    etape = progression or (lambda _t: None)
    N = len(plan)
    v = np.asarray(plan.valeur, dtype=float)
    n = np.asarray(plan.nombre)
    publiee = np.asarray(plan.publiee, dtype=bool)
    systeme = Systeme(plan)
    red = _Reduit(systeme, n)
    K = red.K
    cls = red.cls
    actif = cls >= 0
    sens_c = sensibles(plan, regles, exclus)
    sens_k = np.zeros(K, dtype=bool)
    sens_k[cls[sens_c & actif]] = True
    # a cell identical to a sensitive one is the same figure: sensitive too
    sensible = np.zeros(N, dtype=bool)
    sensible[actif] = sens_k[cls[actif]]
    statut = np.zeros(N, dtype=np.int8)  # 0 published or not shown, 1 primaire, 2 secondaire
    statut[sensible & publiee] = 1
    vk = v[red.representant]
    montrees = publiee & actif
    nb_montrees = np.bincount(cls[montrees], minlength=K)
    connue = nb_montrees > 0
    connue[sens_k] = False
    poids = nb_montrees * (1.0 + vk)
    req_bas, req_haut = requis(vk, regles)
    besoin_haut = (req_haut - vk) * (1 + _MARGE)
    besoin_bas = np.minimum((vk - req_bas) * (1 + _MARGE), vk)
    chercheur = _Chercheur(plan, red, vk, connue, poids)
    certificats: list[tuple[np.ndarray, np.ndarray]] = []
    origines: list[tuple[int, int]] = []  # (class, direction) each certificate was found for
    limites: list[tuple[float, float]] = []
    par_classe: dict[int, list[int]] = defaultdict(list)
    echecs: list[int] = []
    reutilises = 0
    cibles = np.flatnonzero(sens_k)
    cibles = cibles[np.argsort(-besoin_haut[cibles], kind="stable")]
    membres_montres = red.membres.multiply(montrees[None, :].astype(float)).tocsr()
    membres_montres.eliminate_zeros()  # (the product keeps the unshown members as zeros)
    for numero, c in enumerate(cibles):
        if numero % 500 == 0:
            etape(f"{numero}/{len(cibles)}")
        c = int(c)
        for sens, besoin in ((1, besoin_haut[c]), (-1, besoin_bas[c])):
            if besoin <= 0:
                continue
            couvert = False
            for k in par_classe.get(c, ()):
                idx, val = certificats[k]
                dc = float(val[np.searchsorted(idx, c)])
                haut, bas = _portees(dc, *limites[k])
                if (haut if sens > 0 else bas) >= besoin * (1 - 1e-9):
                    couvert = True
                    break
            if couvert:
                reutilises += 1
                continue
            trouve = chercheur.resoudre(c, sens, besoin)
            if trouve is None:
                echecs.append(c)
                continue
            idx, val = trouve
            # published cells the perturbation moves become secondary secrets
            nouvelles = idx[connue[idx]]
            if nouvelles.size:
                connue[nouvelles] = False
                chercheur.liberer(nouvelles)
                sous = membres_montres[nouvelles]
                cellules_sec = sous.indices
                cellules_sec = cellules_sec[statut[cellules_sec] == 0]
                statut[cellules_sec] = 2
            k = len(certificats)
            origines.append((c, sens))
            certificats.append((idx, val))
            limites.append(_limites(vk, idx, val))
            for x in idx:
                par_classe[int(x)].append(k)
    etape(f"{len(cibles)}/{len(cibles)}")
    # certificates in cell space: every member of a class moves with it
    M = red.membres
    sortie = []
    for idx, val in certificats:
        sous = M[idx]
        repete = np.diff(sous.indptr)
        cellules = sous.indices
        delta = np.repeat(val, repete)
        ordre = np.argsort(cellules)
        sortie.append(Certificat(cellules[ordre].astype(np.int64), delta[ordre]))
    noms = {0: None, 1: "primaire", 2: "secondaire"}
    plan.sensible = sensible.tolist()
    plan.statuts = [noms[int(s)] for s in statut]
    plan.certificats = sortie
    plan.origines = [(int(red.representant[c]), sens) for c, sens in origines]
    return {"classes": K, "relations_reduites": red.R.shape[0],
            "cellules_actives": int(actif.sum()), "cibles": len(cibles),
            "programmes": chercheur.programmes, "reutilises": reutilises,
            "trouves_par_niveau": chercheur.niveaux,
            "certificats": len(sortie), "sans_certificat": len(echecs)}


# --------------------------------------------------------------------------------------------
# audit


@dataclass
class Intervalle:
    """What an attacker can derive about one cell: ``[bas, haut]`` (``haut`` may be inf).

    ``exact``: the attacker's tightest interval (linear program over the cell's block);
    otherwise a part of it guaranteed by valid certificates (the true interval is at least as
    wide).
    """

    cellule: int
    bas: float
    haut: float
    valeur: float
    requis_bas: float
    requis_haut: float
    sensible: bool
    exact: bool = True

    @property
    def protegee(self) -> bool:
        tol = _TOL * max(1.0, self.valeur)
        if self.sensible:
            return self.bas <= self.requis_bas + tol and self.haut >= self.requis_haut - tol
        return self.haut - self.bas > tol


def inconnues(plan) -> np.ndarray:
    """Cells the attacker does not read: suppressed or never shown, with establishments."""
    n = np.asarray(plan.nombre)
    publiee = np.asarray(plan.publiee, dtype=bool)
    supprimee = np.asarray([s is not None for s in plan.statuts], dtype=bool)
    return (supprimee | ~publiee) & (n > 0)


def verifier_certificats(plan, systeme: Systeme | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check every certificate of ``plan.certificats`` against the full plan.

    Returns ``(valide, bas, haut)``: which certificates hold (relations, support only on
    unknown cells, finite values), and for every cell the lowest and highest value the valid
    certificates, each scaled as far as non-negativity allows, show the attacker must admit
    (``bas = haut = valeur`` for a cell no valid certificate moves).
    """
    from scipy.sparse import csc_matrix
    systeme = systeme or Systeme(plan)
    v = np.asarray(plan.valeur, dtype=float)
    N = len(plan)
    certs = list(getattr(plan, "certificats", []) or [])
    bas, haut = v.copy(), v.copy()
    if not certs:
        return np.zeros(0, dtype=bool), bas, haut
    inconnue = inconnues(plan)
    tailles = np.asarray([len(c.cellules) for c in certs], dtype=np.int64)
    lignes = np.concatenate([c.cellules for c in certs]).astype(np.int64)
    valeurs = np.concatenate([c.delta for c in certs]).astype(float)
    colonnes = np.repeat(np.arange(len(certs)), tailles)
    valide = np.ones(len(certs), dtype=bool)
    hors = (lignes < 0) | (lignes >= N) | ~np.isfinite(valeurs)
    valide[colonnes[hors]] = False
    lignes = np.where(hors, 0, lignes)
    valeurs = np.where(hors, 0.0, valeurs)
    # support only on cells the attacker does not read
    valide[colonnes[~inconnue[lignes] & (valeurs != 0)]] = False
    D = csc_matrix((valeurs, (lignes, colonnes)), shape=(N, len(certs)))
    echelle = np.zeros(len(certs))
    np.maximum.at(echelle, colonnes, np.abs(valeurs))
    residu = abs(systeme.matrice @ D).max(axis=0).toarray().ravel() if systeme.matrice.shape[0] \
        else np.zeros(len(certs))
    valide &= residu <= TOLERANCE_CERTIFICAT * np.maximum(1.0, echelle)
    valide &= echelle > 0
    # scaling limits of each certificate (non-negativity of every cell it moves)
    a_plus = np.full(len(certs), np.inf)
    a_moins = np.full(len(certs), np.inf)
    neg, pos = valeurs < 0, valeurs > 0
    np.minimum.at(a_plus, colonnes[neg], v[lignes[neg]] / -valeurs[neg])
    np.minimum.at(a_moins, colonnes[pos], v[lignes[pos]] / valeurs[pos])
    ok = valide[colonnes] & (valeurs != 0)
    l, d, ap, am = lignes[ok], valeurs[ok], a_plus[colonnes[ok]], a_moins[colonnes[ok]]
    with np.errstate(invalid="ignore"):
        monte = np.where(d > 0, ap * d, -am * d)
        descend = np.where(d < 0, ap * d, -am * d)
    np.maximum.at(haut, l, v[l] + np.maximum(monte, 0.0))
    np.minimum.at(bas, l, np.maximum(v[l] + np.minimum(descend, 0.0), 0.0))
    return valide, bas, haut


def determinees(systeme: Systeme, inconnue: np.ndarray) -> np.ndarray:
    """Unknown cells a chain of single-unknown relations gives away (structural, exact)."""
    restantes = np.asarray(systeme.incidence @ inconnue.astype(np.float64)).round().astype(
        np.int64)
    determinee = np.zeros(systeme.n, dtype=bool)
    pile = list(np.flatnonzero(restantes == 1))
    while pile:
        r = pile.pop()
        if restantes[r] != 1:
            continue
        cells = systeme.cellules_de(r)
        libres = cells[inconnue[cells] & ~determinee[cells]]
        if libres.size != 1:
            continue
        c = int(libres[0])
        determinee[c] = True
        for r2 in systeme.relations_de(c):
            restantes[r2] -= 1
            if restantes[r2] == 1:
                pile.append(r2)
    return determinee


def blocs(systeme: Systeme, libres: np.ndarray) -> list[tuple[np.ndarray, list[int]]]:
    """Connected blocks of free unknown cells and the relations binding them."""
    parent = np.arange(systeme.n)

    def trouver(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    rel_libres = []
    actives = np.flatnonzero(np.asarray(systeme.incidence @ libres.astype(np.float64)) > 0)
    for r in actives:
        cells = systeme.cellules_de(r)
        ls = cells[libres[cells]]
        if ls.size == 0:
            continue
        rel_libres.append(r)
        a = trouver(int(ls[0]))
        for b in ls[1:]:
            rb = trouver(int(b))
            if rb != a:
                parent[rb] = a
    racines: dict[int, list[int]] = defaultdict(list)
    for c in np.flatnonzero(libres):
        racines[trouver(int(c))].append(int(c))
    rels: dict[int, list[int]] = defaultdict(list)
    for r in rel_libres:
        cells = systeme.cellules_de(r)
        rels[trouver(int(cells[libres[cells]][0]))].append(r)
    return [(np.asarray(sorted(cs)), rels[k]) for k, cs in racines.items()]


class _Modele:
    """The attacker's linear program over one block of free cells (HiGHS, kept warm).

    Variables: the block's free cells (>= 0); rows: the relations binding them, the other
    cells of each relation at their published (or already determined) value.
    """

    def __init__(self, systeme: Systeme, v: np.ndarray, cells: np.ndarray,
                 rels: list[int]) -> None:
        import highspy
        self.cells = cells
        self.pos = {int(c): k for k, c in enumerate(cells)}
        sous = systeme.matrice[np.asarray(rels, dtype=np.int64)]
        a = sous[:, cells].tocsc()
        b = -(sous @ v) + a @ v[cells]
        self.echelle = max(1.0, float(v[cells].max()))
        b = b / self.echelle
        h = _highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("presolve", "off")  # warm starts from the previous basis
        h.setOptionValue("solver", "simplex")
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(cells), len(rels)
        lp.col_cost_ = np.zeros(len(cells))
        lp.col_lower_ = np.zeros(len(cells))
        lp.col_upper_ = np.full(len(cells), highspy.kHighsInf)
        lp.row_lower_ = b
        lp.row_upper_ = b
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr
        lp.a_matrix_.index_ = a.indices
        lp.a_matrix_.value_ = a.data
        h.passModel(lp)
        self.h = h
        self.hs = highspy

    def extreme(self, c: int, maximiser: bool) -> float | None:
        """The max (or min) of cell ``c`` over the attacker's tables; None when unbounded."""
        hs = self.hs
        k = np.asarray([self.pos[int(c)]], dtype=np.int32)
        self.h.changeColsCost(1, k, np.ones(1))
        self.h.changeObjectiveSense(hs.ObjSense.kMaximize if maximiser
                                    else hs.ObjSense.kMinimize)
        self.h.run()
        statut = self.h.getModelStatus()
        self.h.changeColsCost(1, k, np.zeros(1))
        if statut in (hs.HighsModelStatus.kUnbounded, hs.HighsModelStatus.kUnboundedOrInfeasible):
            return None
        if statut != hs.HighsModelStatus.kOptimal:
            raise EssqpvError("Secret statistique : le programme linéaire n'a pas abouti "
                              f"({self.h.modelStatusToString(statut)}).")
        return float(self.h.getSolution().col_value[k[0]]) * self.echelle


#: a block of at most this many free unknown cells gets the attacker's exact program
BLOC_EXACT = 300


def auditer(plan, regles: Confidentialite, bloc_exact: int = BLOC_EXACT
            ) -> tuple[list[Intervalle], dict]:
    """The attacker's audit: an interval for every suppressed or sensitive unknown cell.

    Certificates give every cell they move a guaranteed interval; cells given away by a
    chain of relations get their single value; in blocks of at most ``bloc_exact`` free
    cells, the attacker's linear program gives the exact interval.
    """
    systeme = Systeme(plan)
    v = np.asarray(plan.valeur, dtype=float)
    N = len(plan)
    inconnue = inconnues(plan)
    supprimee = np.asarray([s is not None for s in plan.statuts], dtype=bool)
    sensible = np.asarray(plan.sensible or [False] * N, dtype=bool)
    cibles = inconnue & (sensible | supprimee)
    valide, bas, haut = verifier_certificats(plan, systeme)
    exacte = np.zeros(N, dtype=bool)
    determinee = determinees(systeme, inconnue)
    # a cell given away by the relations: its value (certificates cannot move it)
    donnees = cibles & determinee
    bas[donnees] = v[donnees]
    haut[donnees] = v[donnees]
    exacte[donnees] = True
    libres = inconnue & ~determinee
    petits = 0
    for cells, rels in blocs(systeme, libres):
        ciblees = cells[cibles[cells]]
        if ciblees.size == 0 or len(cells) > bloc_exact:
            continue
        petits += 1
        if not rels:
            bas[ciblees], haut[ciblees] = 0.0, np.inf
            exacte[ciblees] = True
            continue
        modele = _Modele(systeme, v, cells, rels)
        for c in ciblees:
            h = modele.extreme(int(c), True)
            haut[c] = np.inf if h is None else max(h, v[c])
            b = modele.extreme(int(c), False)
            bas[c] = max(0.0, min(b, v[c])) if b is not None else 0.0
            exacte[c] = True
    req_bas, req_haut = requis(v, regles)
    sortie = [Intervalle(int(c), float(bas[c]), float(haut[c]), float(v[c]),
                         float(req_bas[c]), float(req_haut[c]), bool(sensible[c]),
                         bool(exacte[c]))
              for c in np.flatnonzero(cibles)]
    bilan = {"certificats": int(len(valide)), "certificats_invalides": int((~valide).sum()),
             "blocs_exacts": petits, "exactes": int(exacte[cibles].sum())}
    return sortie, bilan
