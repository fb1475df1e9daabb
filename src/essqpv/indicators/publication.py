"""The publication plan: every cell essqpv can publish, protected together (METHODOLOGY 7).

:func:`construire_plan` gathers, for one vintage, the cells of every linked table, and
:func:`ecrire_plan` stores the protected plan in the base:

- ``publication_cellules``: one row per cell — the territory (France, France métropolitaine,
  DROM, région, département, EPCI and commune holding a QPV, QPV), the perimeter (``strict``,
  ``<N>m``, ``anneau`` = the ring between them, ``-`` for the territory as a whole), the zone
  (``qpv``, ``hors`` = outside the QPV, ``tout``), the line (a sector, ``Ensemble``, a family, a
  size group…), the establishment count (public), the headcount, and the status: ``primaire``,
  ``secondaire`` or NULL (published). Cells that no answer shows but that an attacker can
  compute by subtraction (the ring, the territory outside its QPV, the part of a QPV in one
  commune, the communes of a département that hold no QPV…) are in the table too, with
  ``publiee = false``: they are protected like the others when they are sensitive.
- ``publication_relations``: the additivity relations between cells (``total = sum of members``):
  territory ⊂ parent, strict + ring = buffer perimeter, sectors sum to the total, QPV and the
  rest of the territory sum to the territory.
- ``publication_reponses``: the answers (the JSON of ``essqpv indicateurs`` and of the QPV
  listings) for every territory and perimeter of the plan, written from its published cells
  only (:mod:`essqpv.indicators.reponses`).

Every build (``essqpv construire``, :func:`essqpv.base.construire`) calls :func:`ecrire_plan`
in its write transaction: the plan is computed, protected, its certificates verified against
every relation, then stored with the serialised answers; a plan without proof stops the build
and the previous base stays in place; a rebuild whose plan is identical reuses the protection
stored in the build's cache after the same verification (:mod:`essqpv.indicators.reprise`).
``essqpv controle --secret`` (:func:`audit_base`)
audits the stored plan. Measured costs: ``benchmarks/publication.md``.

Protection (:func:`proteger_plan`, :mod:`essqpv.indicators.protection`): primary rule from
``reference/confidentialite.csv`` on every cell, published or not; the problem reduced (empty
cells dropped, cells of identical establishments merged); for every sensitive cell and
direction, a *certificate* — a perturbation of the unknown cells that keeps every relation,
every published cell and non-negativity, moving the cell by its protection — reused from
those already found or found by a least-cost linear program (HiGHS), whose moved published
cells become secondary secrets. The certificates are stored and verified against the full
relation matrix before anything is written.

:func:`auditer` is the attacker's audit: guaranteed intervals from the verified certificates,
exact intervals by linear programming where the block of unknown cells is small.

Registering a linked table (other geographies, transition tables, historical series)
------------------------------------------------------------------------------------
Cells and relations added to the plan before protection are protected with all the others::

    from essqpv.indicators.publication import extension_du_plan

    @extension_du_plan
    def ma_table(plan, con, millesime):
        # plan.cellule(tableau, territoire, perimetre, zone, ligne, n, valeur, maximum,
        #              publiee=True, niveau=...) -> int (the cell's index; same key = same cell)
        # plan.relation(total_index, [member indices])   # total = sum(members), exactly
        ...

The function is called for every build with the plan of the standard tables already filled
(``plan.indice(cle)`` finds an existing cell by its key tuple
``(tableau, territoire, perimetre, zone, ligne)``), and a read connection on the vintage being
written (table ``etablissements``). A member published in two tables is the same cell (same
key): that is what links them. Published cells of an extension appear in
``publication_cellules`` with their status; the outputs of the extension read them from there.
An extension whose tables hold establishment counts (public, never secret) declares them:
``@extension_du_plan(comptes=("ma_table_etablissements",))``.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from essqpv import reference
from essqpv.config import MARQUE_SYNTHETIQUE, Confidentialite, confidentialite
from essqpv.errors import EssqpvError
from essqpv.indicators import protection as _protection
from essqpv.indicators.protection import Certificat, Intervalle

__all__ = ["Plan", "extension_du_plan", "tableaux_comptes", "construire_plan", "proteger_plan", "auditer",
           "ecrire_plan", "TABLES_PUBLICATION", "ENS", "ANNEAU", "Intervalle"]

ENS = "Ensemble"
ANNEAU = "anneau"
TOUT = "-"
SAL = "salaries"
TABLES_PUBLICATION = ("publication_cellules", "publication_relations", "publication_reponses",
                      "publication_certificats")
ARRONDI_PART = 4
#: tables of establishment counts of the standard plan (public: never secret)
TABLEAUX_COMPTES = frozenset({"familles_employeurs", "familles_non_employeurs", "tailles",
                              "creations"})
_TOL = 1e-6

_EXTENSIONS: list[Callable] = []
_COMPTES_DES_EXTENSIONS: set[str] = set()


def extension_du_plan(fonction: Callable | None = None, *, comptes: Iterable[str] = ()
                      ) -> Callable:
    """Register a function ``f(plan, con, millesime)`` adding linked cells (see module doc).

    ``comptes``: the tables of the extension that hold establishment counts (public, never
    secret, like the standard count tables). Usable as ``@extension_du_plan`` or
    ``@extension_du_plan(comptes=("ma_table_etablissements",))``.
    """
    def enregistrer(f: Callable) -> Callable:
        if f not in _EXTENSIONS:
            _EXTENSIONS.append(f)
        _COMPTES_DES_EXTENSIONS.update(comptes)
        return f
    return enregistrer if fonction is None else enregistrer(fonction)


def tableaux_comptes() -> frozenset[str]:
    """Every table of establishment counts of the plan: the standard ones and those the
    registered extensions declare (``extension_du_plan(..., comptes=...)``)."""
    return TABLEAUX_COMPTES | frozenset(_COMPTES_DES_EXTENSIONS)


# --------------------------------------------------------------------------------------------
# the plan


@dataclass
class Plan:
    """Cells and additivity relations of one vintage (a plain, growable container)."""

    millesime: str
    cles: list[tuple] = field(default_factory=list)
    niveaux: list[str] = field(default_factory=list)
    nombre: list[int] = field(default_factory=list)
    valeur: list[float] = field(default_factory=list)
    maximum: list[float] = field(default_factory=list)
    extra: list[tuple] = field(default_factory=list)
    publiee: list[bool] = field(default_factory=list)
    relations: list[tuple[int, list[int]]] = field(default_factory=list)
    _index: dict[tuple, int] = field(default_factory=dict)
    statuts: list[str | None] = field(default_factory=list)
    sensible: list[bool] = field(default_factory=list)
    certificats: list[Certificat] = field(default_factory=list)

    def indice(self, cle: tuple) -> int | None:
        """Index of the cell of key ``(tableau, territoire, perimetre, zone, ligne)``."""
        return self._index.get(cle)

    def cellule(self, tableau: str, territoire: str, perimetre: str, zone: str, ligne: str,
                n: int, valeur: float = 0.0, maximum: float = 0.0, publiee: bool = True,
                niveau: str = "", extra: tuple = (0, 0, 0, 0, 0)) -> int:
        """Add a cell (or return the existing cell of the same key, unchanged)."""
        cle = (tableau, territoire, perimetre, zone, ligne)
        i = self._index.get(cle)
        if i is not None:
            if publiee:
                self.publiee[i] = True
            return i
        i = len(self.cles)
        self._index[cle] = i
        self.cles.append(cle)
        self.niveaux.append(niveau)
        self.nombre.append(int(n))
        v = float(valeur or 0.0)
        self.valeur.append(v)
        self.maximum.append(min(float(maximum or 0.0), v))
        self.extra.append(extra)
        self.publiee.append(bool(publiee))
        return i

    def _charger(self, df: pl.DataFrame) -> None:
        """Add the cells of a frame at once (same rule as :meth:`cellule`: the first row of a
        key makes the cell, a later published row publishes it)."""
        cles = ["tableau", "territoire", "perimetre", "zone", "ligne"]
        for col, defaut, type_ in (("niveau", "", pl.String), ("n", 0, pl.Int64),
                                   ("s", 0.0, pl.Float64), ("mx", 0.0, pl.Float64),
                                   ("femmes", 0, pl.Int64), ("cdi", 0, pl.Int64),
                                   ("contrats_aides", 0, pl.Int64),
                                   ("temps_complet", 0, pl.Int64), ("sans_valeur", 0, pl.Int64),
                                   ("publiee", True, pl.Boolean)):
            if col not in df.columns:
                df = df.with_columns(pl.lit(defaut, dtype=type_).alias(col))
            else:
                df = df.with_columns(pl.col(col).cast(type_).fill_null(defaut))
        df = df.with_columns(pl.col("publiee").any().over(cles)).unique(
            cles, keep="first", maintain_order=True)
        deja = [self._index.get(k) for k in df.select(cles).iter_rows()]
        for i, pub in zip(deja, df["publiee"].to_list()):
            if i is not None and pub:
                self.publiee[i] = True
        nouvelles = df.filter(pl.Series([i is None for i in deja], dtype=pl.Boolean))
        debut = len(self.cles)
        cles_n = list(nouvelles.select(cles).iter_rows())
        self.cles.extend(cles_n)
        self._index.update(zip(cles_n, range(debut, debut + len(cles_n))))
        self.niveaux.extend(nouvelles["niveau"].to_list())
        self.nombre.extend(nouvelles["n"].to_list())
        v = nouvelles["s"].to_list()
        self.valeur.extend(v)
        self.maximum.extend(np.minimum(nouvelles["mx"].to_numpy(), np.asarray(v)).tolist())
        self.extra.extend(nouvelles.select("femmes", "cdi", "contrats_aides", "temps_complet",
                                           "sans_valeur").iter_rows())
        self.publiee.extend(nouvelles["publiee"].to_list())

    def relation(self, total: int, membres: Iterable[int]) -> None:
        """Add ``total = sum(membres)`` (cell indices)."""
        membres = [m for m in membres if m != total]
        if membres:
            self.relations.append((total, membres))

    def __len__(self) -> int:
        return len(self.cles)

    def canonique(self) -> None:
        """Put the cells in the order of their sorted keys and the relations in a fixed order.

        The protection depends on the order it is given the cells in, and the queries that
        make the plan return their rows in no fixed order (parallel aggregation): without
        this, two builds of the same register could suppress different cells, and their two
        publications, each protected, would together reveal secrets.
        """
        if self.certificats:
            raise EssqpvError("Plan déjà protégé : son ordre ne peut plus changer.")
        ordre = ordre_cles(self.cles)
        rang = np.empty(len(ordre), dtype=np.int64)
        rang[ordre] = np.arange(len(ordre))
        for nom in ("cles", "niveaux", "nombre", "valeur", "maximum", "extra", "publiee",
                    "statuts", "sensible"):
            liste = getattr(self, nom)
            if liste:
                setattr(self, nom, [liste[i] for i in ordre])
        self._index = {c: i for i, c in enumerate(self.cles)}
        self.relations = sorted(
            (int(rang[t]), sorted(int(rang[m]) for m in membres))
            for t, membres in self.relations)


def ordre_cles(cles: list[tuple]) -> np.ndarray:
    """Indices of ``cles`` in the order of the sorted keys (keys are unique)."""
    try:
        return np.asarray(sorted(range(len(cles)), key=cles.__getitem__), dtype=np.int64)
    except TypeError:  # (keys mixing None and text: compared by their text)
        return np.asarray(sorted(range(len(cles)), key=lambda i: repr(cles[i])),
                          dtype=np.int64)


# --------------------------------------------------------------------------------------------
# building the standard tables


def _perimetres(tampon: int) -> tuple[str, str]:
    return "strict", f"{tampon}m"


def _cadre(con, requete: str, parametres: list) -> pl.DataFrame:
    """A query's rows as a polars frame (the copy DuckDB warns about is small here)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pl.from_arrow(con.execute(requete, parametres).to_arrow_table())


def _atomes(con, millesime: str, avec_emplois: bool) -> pl.DataFrame:
    valeur = "effectif" if avec_emplois else "effectif_estime"
    return _cadre(con,
        f"""SELECT commune, departement, region, epci, qpv, qpv_tampon, secteur,
                   count(*) AS n, coalesce(sum({valeur}), 0)::DOUBLE AS s,
                   coalesce(max({valeur}), 0)::DOUBLE AS mx,
                   coalesce(sum(femmes), 0)::BIGINT AS femmes,
                   coalesce(sum(cdi), 0)::BIGINT AS cdi,
                   coalesce(sum(contrats_aides), 0)::BIGINT AS contrats_aides,
                   coalesce(sum(temps_complet), 0)::BIGINT AS temps_complet,
                   (count(*) FILTER (WHERE {valeur} IS NULL))::BIGINT AS sans_valeur
            FROM etablissements WHERE millesime = ? AND employeur
            GROUP BY ALL""", [millesime])


def _atomes_comptes(con, millesime: str) -> pl.DataFrame:
    fin = _date_millesime(millesime)
    debut = fin.replace(year=fin.year - 1)
    groupes = {r["code"]: r["groupe_taille"] for r in reference.tranches().iter_rows(named=True)
               if r["groupe_taille"]}
    df = _cadre(con,
        """SELECT commune, departement, region, epci, qpv, qpv_tampon, famille, employeur,
                  tranche, (date_creation >= ? AND date_creation < ?) IS TRUE AS creation,
                  count(*) AS n
           FROM etablissements WHERE millesime = ? AND qpv_tampon IS NOT NULL
           GROUP BY ALL""", [debut, fin, millesime])
    return df.with_columns(pl.col("tranche").replace_strict(
        groupes, default="inconnue", return_dtype=pl.String).alias("taille"))


def _date_millesime(millesime: str) -> dt.date:
    annee, mois = millesime.split("-")
    return dt.date(int(annee), int(mois), 1)


def _appartenances(df: pl.DataFrame, communes_plan: set[str], epci_plan: set[str]
                   ) -> pl.DataFrame:
    """Atom rows repeated once per (non-QPV) territory of the plan they belong to."""
    from essqpv.territoires import DROM
    dep = pl.col("departement")
    metro = dep.is_not_null() & ~dep.str.starts_with("97") & ~dep.str.starts_with("98")
    parts = [
        df.with_columns(pl.lit("FR").alias("territoire"), pl.lit("france").alias("niveau")),
        df.filter(metro).with_columns(pl.lit("METRO").alias("territoire"),
                                      pl.lit("metropole").alias("niveau")),
        df.filter(dep.is_in(list(DROM))).with_columns(pl.lit("DROM").alias("territoire"),
                                                      pl.lit("drom").alias("niveau")),
        df.filter(pl.col("region").is_not_null()).with_columns(
            ("REG:" + pl.col("region")).alias("territoire"), pl.lit("region").alias("niveau")),
        df.filter(dep.is_not_null()).with_columns(
            ("DEP:" + dep).alias("territoire"), pl.lit("departement").alias("niveau")),
        df.filter(pl.col("epci").is_in(list(epci_plan))).with_columns(
            ("EPCI:" + pl.col("epci")).alias("territoire"), pl.lit("epci").alias("niveau")),
        df.filter(pl.col("commune").is_in(list(communes_plan))).with_columns(
            ("COM:" + pl.col("commune")).alias("territoire"), pl.lit("commune").alias("niveau")),
        # residual (implicit) territories that complete the partitions
        df.filter(~metro & ~dep.is_in(list(DROM)).fill_null(False)).with_columns(
            pl.lit("FR~autres").alias("territoire"), pl.lit("residu").alias("niveau")),
        df.filter(pl.col("region").is_null()).with_columns(
            pl.lit("FR~sans_region").alias("territoire"), pl.lit("residu").alias("niveau")),
        df.filter(pl.col("region").is_not_null() & dep.is_null()).with_columns(
            ("REG:" + pl.col("region") + "~reste").alias("territoire"),
            pl.lit("residu").alias("niveau")),
        df.filter(dep.is_not_null() & ~pl.col("commune").is_in(list(communes_plan))
                  .fill_null(False)).with_columns(
            ("DEP:" + dep + "~reste").alias("territoire"), pl.lit("residu").alias("niveau")),
        df.filter(pl.col("epci").is_in(list(epci_plan)) & ~pl.col("commune").is_in(
            list(communes_plan)).fill_null(False)).with_columns(
            ("EPCI:" + pl.col("epci") + "~reste").alias("territoire"),
            pl.lit("residu").alias("niveau")),
    ]
    return pl.concat(parts, how="vertical")


_AGG = [pl.col("n").sum(), pl.col("s").sum(), pl.col("mx").max(), pl.col("femmes").sum(),
        pl.col("cdi").sum(), pl.col("contrats_aides").sum(), pl.col("temps_complet").sum(),
        pl.col("sans_valeur").sum()]


def _grouper(df: pl.DataFrame, par_secteur: bool) -> pl.DataFrame:
    cles = ["territoire", "niveau"] + (["secteur"] if par_secteur else [])
    g = df.group_by(cles).agg(_AGG)
    if not par_secteur:
        g = g.with_columns(pl.lit(ENS).alias("secteur"))
    return g.select("territoire", "niveau", pl.col("secteur").alias("ligne"), "n", "s", "mx",
                    "femmes", "cdi", "contrats_aides", "temps_complet", "sans_valeur")


def _masques(tampon: int) -> list[tuple[str, pl.Expr, str]]:
    strict, large = _perimetres(tampon)
    q, t = pl.col("qpv"), pl.col("qpv_tampon")
    return [(strict, q.is_not_null(), "qpv"), (large, t.is_not_null(), "qpv_tampon"),
            (ANNEAU, t.is_not_null() & q.is_null(), "qpv_tampon")]


def construire_plan(con, millesime: str, tampon: int, avec_emplois: bool) -> tuple[Plan, dict]:
    """The plan of the standard tables of one vintage (cells and relations, unprotected).

    Returns the plan and the territories published: code → (niveau, libelle).
    """
    atomes = _atomes(con, millesime, avec_emplois)
    plan = Plan(millesime)
    strict, large = _perimetres(tampon)
    ecart = atomes.filter(pl.col("qpv").is_not_null() & (
        pl.col("qpv_tampon").is_null() | (pl.col("qpv_tampon") != pl.col("qpv"))))
    if ecart.height:
        raise EssqpvError(
            "Plan de publication : des établissements placés dans un QPV (périmètre strict) "
            f"ne sont pas rattachés au même QPV dans le périmètre de {tampon} m "
            f"({int(ecart['n'].sum())} établissements) ; la base est incohérente.")
    qpv_base = con.execute("SELECT code_qp, nom_qp, communes, departement FROM qpv "
                           "WHERE millesime = ? ORDER BY code_qp", [millesime]).fetchall()
    communes_plan = set(atomes.filter(pl.col("qpv_tampon").is_not_null())["commune"]
                        .drop_nulls().to_list())
    from essqpv.territoires import table_communes
    connues = set(table_communes()["commune"].to_list())
    for _, _, communes, _ in qpv_base:
        for c in (communes or "").replace(",", ";").split(";"):
            if c.strip() in connues:
                communes_plan.add(c.strip())
    epci_de = dict(table_communes().select("commune", "epci").unique("commune").iter_rows())
    epci_plan = {epci_de[c] for c in communes_plan if epci_de.get(c)}
    epci_plan |= set(atomes.filter(pl.col("commune").is_in(list(communes_plan)))["epci"]
                     .drop_nulls().to_list())

    membres = _appartenances(atomes, communes_plan, epci_plan)
    secteurs = list(reference.SECTEURS)
    morceaux: list[pl.DataFrame] = []

    def ajouter(g: pl.DataFrame, perimetre: str, zone: str, publiee: bool) -> None:
        morceaux.append(g.with_columns(
            pl.lit(SAL).alias("tableau"), pl.lit(perimetre).alias("perimetre"),
            pl.lit(zone).alias("zone"),
            (pl.lit(publiee) & (pl.col("niveau") != "residu")).alias("publiee")))

    # zone qpv, every perimeter (the ring is never shown), by sector and in all
    for perimetre, masque, colonne in _masques(tampon):
        dans = membres.filter(masque)
        montre = perimetre != ANNEAU
        ajouter(_grouper(dans, True), perimetre, "qpv", montre)
        ajouter(_grouper(dans, False), perimetre, "qpv", montre)
        hq = atomes.filter(masque).with_columns(
            ("QPV:" + pl.col(colonne)).alias("territoire"), pl.lit("qpv").alias("niveau"))
        ajouter(_grouper(hq, True), perimetre, "qpv", montre)
        ajouter(_grouper(hq, False), perimetre, "qpv", montre)
        # the part of a QPV in one commune (never shown)
        xq = atomes.filter(masque).with_columns(
            ("X:" + pl.col(colonne) + "@" + pl.col("commune").fill_null("?")).alias(
                "territoire"), pl.lit("intersection").alias("niveau"))
        ajouter(_grouper(xq, True), perimetre, "qpv", False)
        ajouter(_grouper(xq, False), perimetre, "qpv", False)
        if perimetre != ANNEAU:
            hors = membres.filter(~masque)
            ajouter(_grouper(hors, False), perimetre, "hors", False)
            ajouter(_grouper(hors.filter(pl.col("territoire") == "FR"), True), perimetre,
                    "hors", False)
    ajouter(_grouper(membres, False), TOUT, "tout", True)
    ajouter(_grouper(membres.filter(pl.col("territoire") == "FR"), True), TOUT, "tout", True)

    # published territories: every one gets its cells, zeros included
    territoires = _territoires_publies(qpv_base, communes_plan, epci_plan)
    terr = pl.DataFrame({"territoire": list(territoires),
                         "niveau": [n for n, _ in territoires.values()]},
                        schema={"territoire": pl.String, "niveau": pl.String})
    lignes = pl.DataFrame({"ligne": secteurs + [ENS]})
    zeros = [terr.join(pl.DataFrame({"perimetre": [strict, large]}), how="cross")
             .join(lignes, how="cross").with_columns(pl.lit("qpv").alias("zone")),
             terr.filter(pl.col("niveau") != "qpv").with_columns(
                 pl.lit(TOUT).alias("perimetre"), pl.lit(ENS).alias("ligne"),
                 pl.lit("tout").alias("zone")),
             pl.DataFrame({"territoire": "FR", "niveau": "france", "perimetre": TOUT,
                           "ligne": secteurs, "zone": "tout"})]
    morceaux.append(pl.concat(zeros, how="diagonal").with_columns(
        pl.lit(SAL).alias("tableau"), pl.lit(True).alias("publiee")))
    plan._charger(pl.concat(morceaux, how="diagonal"))

    _relations(plan, communes_plan, epci_plan, epci_de, tampon)
    for extension in _EXTENSIONS:
        extension(plan, con, millesime)
    _verifier_relations(plan)
    _comptes(plan, con, millesime, tampon, territoires, communes_plan, epci_plan)
    plan.canonique()
    return plan, territoires


def _territoires_publies(qpv_base, communes_plan: set[str], epci_plan: set[str]) -> dict:
    from essqpv.territoires import _index
    par_code = _index()[0]
    sortie: dict[str, tuple[str, str]] = {}
    for code in ("FR", "METRO", "DROM"):
        sortie[code] = (par_code[code].niveau, par_code[code].libelle)
    for niveau, prefixe, codes in (
            ("region", "REG", sorted(r["code"] for r in reference.regions())),
            ("departement", "DEP", sorted(d["code"] for d in reference.departements())),
            ("epci", "EPCI", sorted(epci_plan)), ("commune", "COM", sorted(communes_plan))):
        for c in codes:
            t = par_code.get(f"{prefixe}:{c}")
            if t is not None:
                sortie[t.code] = (niveau, t.libelle)
    for code, nom, _, _ in qpv_base:
        sortie[f"QPV:{code}"] = ("qpv", nom)
    return sortie


def _relations(plan: Plan, communes_plan: set[str], epci_plan: set[str], epci_de: dict,
               tampon: int) -> None:
    """The additivity relations between the cells holding establishments (a relation between
    empty cells holds trivially; an empty member adds nothing)."""
    strict, large = _perimetres(tampon)
    cles = ["tableau", "territoire", "perimetre", "zone", "ligne"]
    cellules = pl.DataFrame({k: [c[j] for c in plan.cles] for j, k in enumerate(cles)},
                            schema={k: pl.String for k in cles}).with_columns(
        pl.Series("indice", np.arange(len(plan), dtype=np.int64)),
        pl.Series("n", np.asarray(plan.nombre, dtype=np.int64)))
    actives = cellules.filter((pl.col("n") > 0) & (pl.col("tableau") == SAL)).rename(
        {"indice": "membre"})
    totaux = cellules.select(*cles, pl.col("indice").alias("total"))
    parties: list[pl.DataFrame] = []

    def famille(nom: pl.Expr, membres: pl.DataFrame, **total: pl.Expr) -> None:
        """Members joined to their total (the cell of key ``total`` overriding theirs)."""
        m = membres.with_columns(nom.alias("_famille")).with_columns(**total).join(
            totaux, on=cles, how="left")
        sans = m.filter(pl.col("total").is_null())
        if sans.height:
            r = sans.row(0, named=True)
            raise EssqpvError(
                "Plan de publication : la case totale "
                f"{tuple(r[k] for k in cles)} manque alors que ses parties comptent des "
                "établissements ; la base est incohérente.")
        parties.append(m.select(pl.col("_famille").alias("famille"), "total", "membre"))

    # within a territory: sectors sum to the total; strict + ring = buffer perimeter
    famille(pl.lit("secteurs") + pl.col("perimetre") + pl.col("zone"),
            actives.filter(pl.col("ligne") != ENS), ligne=pl.lit(ENS))
    famille(pl.lit("perimetres"),
            actives.filter((pl.col("zone") == "qpv") & pl.col("perimetre").is_in(
                [strict, ANNEAU])), perimetre=pl.lit(large))
    # in QPV + outside = the territory, for each perimeter
    tout = cellules.filter(pl.col("zone") == "tout").select("territoire", "ligne").unique()
    famille(pl.lit("zones") + pl.col("perimetre"),
            actives.filter(pl.col("perimetre").is_in([strict, large])
                           & pl.col("zone").is_in(["qpv", "hors"]))
            .join(tout, on=["territoire", "ligne"], how="semi"),
            perimetre=pl.lit(TOUT), zone=pl.lit("tout"))
    # hierarchies: parent = sum of children (+ the implicit residual)
    parents = _partitions(communes_plan, epci_plan, epci_de)
    hierarchie = actives.filter(
        ((pl.col("zone") == "qpv") & pl.col("perimetre").is_in([strict, large, ANNEAU]))
        | ((pl.col("ligne") == ENS) & (((pl.col("perimetre") == TOUT) & (pl.col("zone") == "tout"))
           | (pl.col("perimetre").is_in([strict, large]) & (pl.col("zone") == "hors")))))
    famille(pl.lit("hierarchie") + pl.col("partition").cast(pl.String),
            hierarchie.join(parents, left_on="territoire", right_on="enfant", how="inner"),
            territoire=pl.col("parent"))
    # QPV and communes through their intersections
    x = actives.filter(pl.col("territoire").str.starts_with("X:")).with_columns(
        pl.col("territoire").str.slice(2).str.split_exact("@", 1).alias("_qc")).unnest("_qc")
    famille(pl.lit("qpv"), x, territoire="QPV:" + pl.col("field_0"))
    famille(pl.lit("communes"), x.filter(pl.col("field_1") != "?"),
            territoire="COM:" + pl.col("field_1"))
    rel = (pl.concat(parties).unique().sort("famille", "total", "membre")
           .group_by("famille", "total", maintain_order=True).agg("membre"))
    for total, membres in zip(rel["total"].to_list(), rel["membre"].to_list()):
        plan.relation(total, membres)


def _partitions(communes_plan: set[str], epci_plan: set[str], epci_de: dict) -> pl.DataFrame:
    """Territorial partitions: ``(partition, parent, enfant)``, residuals included."""
    deps = reference.departements()
    from essqpv.territoires import DROM, table_communes
    partitions: list[tuple[str, list[str]]] = []
    metro = [f"DEP:{d['code']}" for d in deps if not d["code"].startswith(("97", "98"))]
    drom = [f"DEP:{d}" for d in DROM]
    partitions.append(("FR", ["METRO", "DROM", "FR~autres"]))
    partitions.append(("FR", [f"REG:{r['code']}" for r in reference.regions()]
                       + ["FR~sans_region"]))
    partitions.append(("METRO", metro))
    partitions.append(("DROM", drom))
    for r in reference.regions():
        partitions.append((f"REG:{r['code']}", [f"DEP:{d['code']}" for d in deps
                                                 if d.get("region") == r["code"]]
                           + [f"REG:{r['code']}~reste"]))
    com_dep: dict[str, list[str]] = defaultdict(list)
    com_epci: dict[str, list[str]] = defaultdict(list)
    dep_de = dict(table_communes().select("commune", "departement").unique("commune").iter_rows())
    for c in sorted(communes_plan):
        if dep_de.get(c):
            com_dep[dep_de[c]].append(f"COM:{c}")
        if epci_de.get(c) in epci_plan:
            com_epci[epci_de[c]].append(f"COM:{c}")
    for d in deps:
        partitions.append((f"DEP:{d['code']}", com_dep.get(d["code"], [])
                           + [f"DEP:{d['code']}~reste"]))
    for e in sorted(epci_plan):
        partitions.append((f"EPCI:{e}", com_epci.get(e, []) + [f"EPCI:{e}~reste"]))
    return pl.DataFrame({"partition": [k for k, (_, e) in enumerate(partitions) for _ in e],
                         "parent": [p for p, e in partitions for _ in e],
                         "enfant": [x for _, e in partitions for x in e]},
                        schema={"partition": pl.Int64, "parent": pl.String,
                                "enfant": pl.String})


def _verifier_relations(plan: Plan) -> None:
    if not plan.relations:
        return
    v = np.asarray(plan.valeur, dtype=float)
    n = np.asarray(plan.nombre, dtype=np.int64)
    echelle = max(1.0, float(np.abs(v).max(initial=0.0)))
    tailles = np.asarray([len(m) for _, m in plan.relations], dtype=np.int64)
    totaux = np.asarray([t for t, _ in plan.relations], dtype=np.int64)
    membres = np.concatenate([np.asarray(m, dtype=np.int64) for _, m in plan.relations])
    debuts = np.concatenate([[0], np.cumsum(tailles)[:-1]])
    sn = np.add.reduceat(n[membres], debuts)
    sv = np.add.reduceat(v[membres], debuts)
    faux = np.flatnonzero((sn != n[totaux]) | (np.abs(sv - v[totaux]) > _TOL * echelle))
    if faux.size:
        r = int(faux[0])
        t = int(totaux[r])
        raise EssqpvError(
            "Plan de publication : relation non additive pour la case "
            f"{plan.cles[t]} ({n[t]} établissements, {v[t]} salariés ; "
            f"somme des parties : {sn[r]}, {sv[r]} ; parties : "
            f"{[plan.cles[m] for m in plan.relations[r][1]][:4]}).")


def _comptes(plan: Plan, con, millesime: str, tampon: int, territoires: dict,
             communes_plan: set[str], epci_plan: set[str]) -> None:
    """Count tables (public: establishment counts are never secret): families, sizes, creations."""
    df = _atomes_comptes(con, millesime)
    membres = _appartenances(df, communes_plan, epci_plan).filter(pl.col("niveau") != "residu")
    morceaux: list[pl.DataFrame] = []
    for perimetre, masque, colonne in _masques(tampon)[:2]:
        hq = df.filter(masque).with_columns(("QPV:" + pl.col(colonne)).alias("territoire"),
                                            pl.lit("qpv").alias("niveau"))
        dans = pl.concat([membres.filter(masque), hq], how="vertical")
        for tableau, filtre, ligne in (
                ("familles_employeurs", pl.col("employeur"), "famille"),
                ("familles_non_employeurs", ~pl.col("employeur"), "famille"),
                ("tailles", pl.col("employeur"), "taille"),
                ("creations", pl.col("creation"), "famille")):
            g = (dans.filter(filtre & pl.col("territoire").is_in(list(territoires)))
                 .group_by("territoire", "niveau", ligne).agg(pl.col("n").sum()))
            morceaux.append(g.select(
                pl.lit(tableau).alias("tableau"), "territoire", pl.lit(perimetre).alias(
                    "perimetre"), pl.lit("qpv").alias("zone"), pl.col(ligne).alias("ligne"),
                "niveau", "n", pl.lit(True).alias("publiee")))
    plan._charger(pl.concat(morceaux, how="diagonal"))


# --------------------------------------------------------------------------------------------
# protection (the certificates and the audit are in essqpv.indicators.protection)


def proteger_plan(plan: Plan, regles: Confidentialite | None = None,
                  progression: Callable[[str], None] | None = None) -> dict:
    """Primary and secondary suppression over the whole plan, with a certificate proving the
    protection interval of every sensitive cell (sets ``plan.statuts``, ``plan.sensible`` and
    ``plan.certificats``); returns counts (see :func:`essqpv.indicators.protection.proteger`).
    """
    return _protection.proteger(plan, regles or confidentialite(), tableaux_comptes(),
                                progression)


def marge(iv: Intervalle) -> float:
    """How far an interval reaches beyond (> 0) or short of (< 0) its protection, in units."""
    if not iv.sensible:
        return min(iv.haut - iv.bas, 1e300) - _TOL * max(1.0, iv.valeur)
    return min(iv.haut - iv.requis_haut, iv.requis_bas - iv.bas)


def auditer(plan: Plan, regles: Confidentialite | None = None) -> list[Intervalle]:
    """The attacker's interval of every suppressed or sensitive unpublished cell: from the
    plan's certificates (verified against every relation), exact where the block is small."""
    return _protection.auditer(plan, regles or confidentialite())[0]


def audit_base(base, millesime: str | None = None
               ) -> tuple[Plan, list[Intervalle], dict]:
    """The stored plan of a vintage of a base and the attacker's audit of it (worst first).

    Reads ``publication_cellules``, ``publication_relations`` and ``publication_certificats``
    (written by the build); returns the plan, the intervals and the audit's counts.
    """
    from essqpv.base import millesime_par_defaut, ouvrir
    m = millesime_par_defaut(base, millesime)
    con = ouvrir(base)
    plan = lire_plan(con, m)
    intervalles, bilan = _protection.auditer(plan, confidentialite())
    intervalles.sort(key=lambda iv: (marge(iv), plan.cles[iv.cellule]))
    return plan, intervalles, bilan


# --------------------------------------------------------------------------------------------
# storage


def _cadre_cellules(plan: Plan) -> pl.DataFrame:
    extra = np.asarray(plan.extra, dtype=np.int64).reshape(-1, 5) if plan.extra else \
        np.zeros((0, 5), dtype=np.int64)
    return pl.DataFrame({
        "millesime": [plan.millesime] * len(plan),
        "cellule": np.arange(len(plan), dtype=np.int64),
        "tableau": [k[0] for k in plan.cles], "territoire": [k[1] for k in plan.cles],
        "niveau": plan.niveaux, "perimetre": [k[2] for k in plan.cles],
        "zone": [k[3] for k in plan.cles], "ligne": [k[4] for k in plan.cles],
        "nombre": np.asarray(plan.nombre, dtype=np.int64),
        "valeur": np.asarray(plan.valeur, dtype=np.float64),
        "maximum": np.asarray(plan.maximum, dtype=np.float64),
        "femmes": extra[:, 0], "cdi": extra[:, 1], "contrats_aides": extra[:, 2],
        "temps_complet": extra[:, 3], "sans_valeur": extra[:, 4],
        "publiee": plan.publiee, "sensible": plan.sensible or [False] * len(plan),
        "statut": pl.Series(plan.statuts or [None] * len(plan), dtype=pl.String),
    })


def _cadre_relations(plan: Plan) -> pl.DataFrame:
    rel, cel, coef = [], [], []
    for r, (total, membres) in enumerate(plan.relations):
        rel += [r] * (1 + len(membres))
        cel += [total, *membres]
        coef += [1] + [-1] * len(membres)
    return pl.DataFrame({"millesime": [plan.millesime] * len(rel), "relation": rel,
                         "cellule": cel, "coefficient": coef},
                        schema={"millesime": pl.String, "relation": pl.Int64,
                                "cellule": pl.Int64, "coefficient": pl.Int8})


SCHEMA_PUBLICATION = """
CREATE TABLE IF NOT EXISTS publication_cellules (
    millesime VARCHAR, cellule BIGINT, tableau VARCHAR, territoire VARCHAR, niveau VARCHAR,
    perimetre VARCHAR, zone VARCHAR, ligne VARCHAR, nombre BIGINT, valeur DOUBLE,
    maximum DOUBLE, femmes BIGINT, cdi BIGINT, contrats_aides BIGINT, temps_complet BIGINT,
    sans_valeur BIGINT, publiee BOOLEAN, sensible BOOLEAN, statut VARCHAR);
CREATE TABLE IF NOT EXISTS publication_relations (
    millesime VARCHAR, relation BIGINT, cellule BIGINT, coefficient TINYINT);
CREATE TABLE IF NOT EXISTS publication_reponses (
    millesime VARCHAR, genre VARCHAR, territoire VARCHAR, perimetre VARCHAR, json VARCHAR);
CREATE TABLE IF NOT EXISTS publication_certificats (
    millesime VARCHAR, certificat BIGINT, cellule BIGINT, delta DOUBLE);
"""


def _cadre_certificats(plan: Plan) -> pl.DataFrame:
    certs = plan.certificats
    tailles = np.asarray([len(c.cellules) for c in certs], dtype=np.int64)
    return pl.DataFrame({
        "millesime": pl.Series([plan.millesime] * int(tailles.sum()), dtype=pl.String),
        "certificat": np.repeat(np.arange(len(certs), dtype=np.int64), tailles),
        "cellule": np.concatenate([c.cellules for c in certs]).astype(np.int64) if certs
        else np.zeros(0, dtype=np.int64),
        "delta": np.concatenate([c.delta for c in certs]).astype(np.float64) if certs
        else np.zeros(0)})


def _inserer(con, table: str, df: pl.DataFrame) -> None:
    con.register("_pub", df.to_arrow())
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _pub")
    con.unregister("_pub")


def ecrire_plan(con, millesime: str, regles: Confidentialite | None = None,
                progression: Callable[[str], None] | None = None,
                cache: Path | None = None) -> dict:
    """Compute, protect, check and store the plan of one vintage, then its serialised answers.

    ``con`` is the read-write connection of the build (table ``etablissements``, ``qpv`` and
    ``millesimes`` already hold the vintage). The answers of the next vintage are rewritten
    too (their ``evolution`` compares with this one). The certificates are verified against
    every relation before anything is written: a sensitive or suppressed cell without proof
    stops the build (:class:`EssqpvError`), the previous base stays in place.

    ``cache`` (the build's cache folder): the protection of a plan identical to one already
    protected there is reused (:mod:`essqpv.indicators.reprise`) after the same
    verification; a stored protection that does not pass it is discarded and the plan is
    protected afresh. The protection computed is stored there for the next build.

    Returns
    -------
    dict
        ``cellules``, ``relations``, ``primaires``, ``secondaires``, ``reponses`` (counts).
    """
    import time
    etape = progression or (lambda _t: None)
    regles = regles or confidentialite()
    debut = time.perf_counter()
    tampon, avec_emplois = con.execute(
        "SELECT tampon_m, avec_emplois FROM millesimes WHERE millesime = ?",
        [millesime]).fetchone()
    etape("Plan de publication : cases et relations")
    plan, territoires = construire_plan(con, millesime, int(tampon), bool(avec_emplois))
    t_plan = time.perf_counter() - debut
    from essqpv.indicators import reprise as _reprise
    exclus = tableaux_comptes()
    bilan, raison, cle, ordre = None, "sans cache", None, None
    if cache is not None:
        etape("Plan de publication : protection enregistrée")
        ordre = _reprise._ordre(plan)
        cle = _reprise.empreinte(plan, regles, exclus, ordre)
        bilan, raison = _reprise.reprendre(cache, cle, plan, regles, exclus, ordre)
    if bilan is not None:
        etape("Plan de publication : vérification des certificats (protection reprise)")
        intervalles, verif = _protection.auditer(plan, regles, bloc_exact=0)
        if verif["certificats_invalides"] or not all(iv.protegee for iv in intervalles):
            bilan, raison = None, "incohérente : certificats"  # not trusted: done afresh
            _reprise.chemin(cache, cle).unlink(missing_ok=True)
    reprise = bilan is not None
    if not reprise:
        etape("Plan de publication : secret statistique")
        bilan = proteger_plan(plan, regles, lambda t: etape(
            f"Plan de publication : secret statistique ({t} cases sensibles)"))
    t_secret = time.perf_counter() - debut - t_plan
    if not reprise:
        etape("Plan de publication : vérification des certificats")
        intervalles, verif = _protection.auditer(plan, regles, bloc_exact=0)
    sous = [iv for iv in intervalles if not iv.protegee]
    if sous or verif["certificats_invalides"]:
        iv = sous[0] if sous else None
        raise EssqpvError(
            "Plan de publication : la protection n'est pas démontrée "
            f"({len(sous)} cases sans preuve, {verif['certificats_invalides']} certificats "
            "invalides" + (f" ; par exemple {plan.cles[iv.cellule]}" if iv else "") +
            ") ; la base n'est pas remplacée.")
    t_verif = time.perf_counter() - debut - t_plan - t_secret
    if cache is not None and not reprise:
        try:
            _reprise.garder(cache, cle, plan, bilan, ordre)
        except OSError:  # (a cache that cannot be written costs the next build its reuse)
            pass
    etape("Plan de publication : écriture et réponses")
    con.execute(SCHEMA_PUBLICATION)
    for table in TABLES_PUBLICATION:
        con.execute(f"DELETE FROM {table} WHERE millesime = ?", [millesime])
    cel = _cadre_cellules(plan)
    _inserer(con, "publication_cellules", cel)
    _inserer(con, "publication_relations", _cadre_relations(plan))
    _inserer(con, "publication_certificats", _cadre_certificats(plan))
    from essqpv.indicators.reponses import ecrire_reponses
    tous = [r[0] for r in con.execute("SELECT millesime FROM millesimes ORDER BY millesime"
                                      ).fetchall()]
    a_refaire = [millesime] + [m for m in tous if m > millesime][:1]
    reponses = 0
    for m in a_refaire:
        reponses += ecrire_reponses(con, m)
    statuts = cel["statut"]
    return {"cellules": len(plan), "relations": len(plan.relations),
            "primaires": int((statuts == "primaire").sum()),
            "secondaires": int((statuts == "secondaire").sum()),
            "sensibles_non_publiees": int((cel["sensible"] & ~cel["publiee"]).sum()),
            "certificats": len(plan.certificats), "protection": bilan,
            "protection_reprise": reprise, "protection_raison": raison,
            "reponses": reponses, "duree_plan_s": round(t_plan, 3),
            "duree_secret_s": round(t_secret, 3), "duree_verification_s": round(t_verif, 3),
            "duree_totale_s": round(time.perf_counter() - debut, 3)}


def lire_plan(con, millesime: str) -> Plan:
    """The stored plan of a vintage (cells, relations, statuses), e.g. for the audit."""
    cel = _cadre(con, "SELECT * FROM publication_cellules WHERE millesime = ? ORDER BY cellule",
                 [millesime])
    if cel.height == 0:
        raise EssqpvError(f"La base ne contient pas de plan de publication pour le millésime "
                          f"{millesime} : reconstruisez-le (essqpv construire).")
    plan = Plan(millesime)
    plan.cles = list(cel.select("tableau", "territoire", "perimetre", "zone", "ligne").iter_rows())
    plan._index = {k: i for i, k in enumerate(plan.cles)}
    plan.niveaux = cel["niveau"].to_list()
    plan.nombre = cel["nombre"].to_list()
    plan.valeur = cel["valeur"].to_list()
    plan.maximum = cel["maximum"].to_list()
    plan.extra = [tuple(r) for r in cel.select("femmes", "cdi", "contrats_aides",
                                               "temps_complet", "sans_valeur").iter_rows()]
    plan.publiee = cel["publiee"].to_list()
    plan.sensible = cel["sensible"].to_list()
    plan.statuts = cel["statut"].to_list()
    rel = con.execute("SELECT relation, cellule, coefficient FROM publication_relations "
                      "WHERE millesime = ? ORDER BY relation, coefficient DESC, cellule",
                      [millesime]).fetchall()
    courant, total, membres = None, None, []
    for r, c, coef in rel:
        if r != courant:
            if courant is not None:
                plan.relations.append((total, membres))
            courant, total, membres = r, None, []
        if coef > 0:
            total = c
        else:
            membres.append(c)
    if courant is not None:
        plan.relations.append((total, membres))
    existe = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = "
                         "'publication_certificats'").fetchone()[0]
    if existe:
        certs = _cadre(con, "SELECT certificat, cellule, delta FROM publication_certificats "
                       "WHERE millesime = ? ORDER BY certificat, cellule", [millesime])
        if certs.height:
            k = certs["certificat"].to_numpy()
            cellules, delta = certs["cellule"].to_numpy(), certs["delta"].to_numpy()
            coupes = np.flatnonzero(np.diff(k)) + 1
            plan.certificats = [Certificat(c.astype(np.int64), d.astype(np.float64)) for c, d
                                in zip(np.split(cellules, coupes), np.split(delta, coupes))]
    return plan


def json_reponse(obj) -> str:
    """The JSON text of a stored answer (as the CLI and the API write it): UTF-8, two-space
    indent, keys in order (orjson: the answers of a whole plan are serialised at build time)."""
    import orjson
    return orjson.dumps(obj, default=str,
                        option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode("utf-8")


def avertissement_synthetique() -> str:
    return (MARQUE_SYNTHETIQUE[0].upper() + MARQUE_SYNTHETIQUE[1:] + " : le registre "
            "de ce millésime est synthétique (essqpv synthese).")
