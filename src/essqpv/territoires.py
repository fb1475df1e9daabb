"""Territories: codes, names, and how an establishment belongs to one (METHODOLOGY 6).

A territory is written ``FR`` (France entière), ``METRO`` (France métropolitaine), ``DROM``,
``REG:11``, ``DEP:93``, ``EPCI:200054781``, ``COM:93066``, ``QPV:QN09301I`` (2024 geography) or
``QPV:QP093001`` (2015) — or by its name
(``"Seine-Saint-Denis"``). Names are matched without case, accents or hyphens; an unknown
name raises :class:`~essqpv.errors.TerritoireInconnu` with the closest suggestions.

The COG mapping of commune codes (arrondissements municipaux, communes déléguées and
associées to their parent, former codes to the current commune) also lives here.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache

import polars as pl

from essqpv import reference
from essqpv.errors import TerritoireInconnu

__all__ = ["Territoire", "resoudre", "rechercher", "table_communes", "NIVEAUX", "normaliser",
           "libelle_region", "libelle_departement", "territoires_niveau"]

NIVEAUX = {
    "FR": "france", "METRO": "metropole", "DROM": "drom", "REG": "region",
    "DEP": "departement", "EPCI": "epci", "COM": "commune", "QPV": "qpv",
}
LIBELLES_FIXES = {"FR": "France entière", "METRO": "France métropolitaine",
                  "DROM": "Départements et régions d'outre-mer"}
DROM = ("971", "972", "973", "974", "976")
_ORDRE = {"france": 0, "metropole": 1, "drom": 2, "region": 3, "departement": 4, "epci": 5,
          "qpv": 6, "commune": 7}


@dataclass(frozen=True)
class Territoire:
    """A territory: ``code`` (``DEP:93``), ``niveau`` (``departement``), ``libelle``."""

    code: str
    niveau: str
    libelle: str

    @property
    def valeur(self) -> str:
        """The code without its prefix (``93`` for ``DEP:93``)."""
        return self.code.split(":", 1)[1] if ":" in self.code else self.code

    def en_dict(self) -> dict:
        return asdict(self)


def normaliser(texte: str) -> str:
    """Lower case, no accents, hyphens and apostrophes as spaces.

    >>> normaliser("Seine-Saint-Denis")
    'seine saint denis'
    """
    texte = unicodedata.normalize("NFKD", texte).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", " ", texte.lower()).strip()


@lru_cache(maxsize=1)
def table_communes() -> pl.DataFrame:
    """Any commune code Sirene may carry → current commune, département, région, EPCI.

    Columns: ``code`` (as found in Sirene), ``commune`` (current COG code), ``departement``,
    ``region``, ``epci``. A current commune maps to itself; arrondissements municipaux,
    communes déléguées and associées to their parent; a former code to the commune that
    lists it in ``anciens_codes``.
    """
    c = reference.communes()
    actuelles = c.filter(pl.col("type") == "commune-actuelle")
    base = actuelles.select(pl.col("code_commune").alias("commune"), pl.col("code_departement")
                            .alias("departement"), pl.col("code_region").alias("region"))
    propres = actuelles.select(pl.col("code_commune").alias("code"),
                               pl.col("code_commune").alias("commune"))
    filles = c.filter(pl.col("type") != "commune-actuelle").select(
        pl.col("code_commune").alias("code"), pl.col("commune_parente").alias("commune"))
    anciens = actuelles.filter(pl.col("anciens_codes").is_not_null()).select(
        pl.col("anciens_codes").str.split("|").alias("code"),
        pl.col("code_commune").alias("commune")).explode("code")
    toutes = pl.concat([propres, filles, anciens]).unique("code", keep="first",
                                                          maintain_order=True)
    epci = reference.epci().select(pl.col("code_commune").alias("commune"),
                                   pl.col("code_epci").alias("epci")).unique("commune")
    return (toutes.join(base, on="commune", how="left").join(epci, on="commune", how="left")
            .filter(pl.col("departement").is_not_null()))


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, Territoire], list[tuple[str, Territoire, int]]]:
    """Codes → territory, and (normalised name, territory, weight) for name search."""
    par_code: dict[str, Territoire] = {}
    noms: list[tuple[str, Territoire, int]] = []

    def ajouter(t: Territoire, poids: int = 0) -> None:
        par_code[t.code] = t
        noms.append((normaliser(t.libelle), t, poids))

    for code, libelle in LIBELLES_FIXES.items():
        ajouter(Territoire(code, NIVEAUX[code], libelle), 10**9)
    for r in reference.regions():
        ajouter(Territoire(f"REG:{r['code']}", "region", r["nom"]), 10**8)
    for d in reference.departements():
        ajouter(Territoire(f"DEP:{d['code']}", "departement", d["nom"]), 10**7)
    e = reference.epci().unique("code_epci", maintain_order=True)
    for code, nom in e.select("code_epci", "nom_epci").iter_rows():
        ajouter(Territoire(f"EPCI:{code}", "epci", nom), 10**6)
    c = reference.communes().filter(pl.col("type") == "commune-actuelle")
    for code, nom, pop in c.select("code_commune", "nom_commune", "population").iter_rows():
        ajouter(Territoire(f"COM:{code}", "commune", nom), int(pop or 0))
    for code, nom, _ in _qpv_embarques():
        ajouter(Territoire(f"QPV:{code}", "qpv", nom), 0)
    return par_code, noms


@lru_cache(maxsize=1)
def _qpv_embarques() -> list[tuple[str, str, str]]:
    """(code, name, communes) of the embedded QPV of both geographies, 2024 first."""
    q24 = reference.qpv2024().select("code_qp", "nom_qp", "noms_communes")
    q15 = reference.qpv2015().select("code_qp", "nom_qp", "commune_qp")
    return list(q24.iter_rows()) + list(q15.iter_rows())


def _qpv_territoire(code: str, qpv_base: dict[str, str] | None) -> Territoire | None:
    if qpv_base is not None and code in qpv_base:
        return Territoire(f"QPV:{code}", "qpv", qpv_base[code])
    return _index()[0].get(f"QPV:{code}")


def resoudre(texte: str, qpv_base: dict[str, str] | None = None) -> Territoire:
    """Resolve a territory given by code or by name.

    Parameters
    ----------
    texte : str
        ``FR``, ``METRO``, ``DROM``, ``REG:11``, ``DEP:93``, ``EPCI:…``, ``COM:93066``,
        ``QPV:QP093001`` or a name.
    qpv_base : dict, optional
        QPV codes → names of the base (the embedded 2024 and 2015 QPV are always known).

    Raises
    ------
    TerritoireInconnu
        With the closest suggestions.
    """
    brut = (texte or "").strip()
    if not brut:
        raise TerritoireInconnu("Territoire vide : indiquez un code (DEP:93) ou un nom.")
    par_code, noms = _index()
    code = brut.upper()
    if code in par_code and ":" not in code:
        return par_code[code]
    if ":" in code:
        prefixe, valeur = code.split(":", 1)
        prefixe = prefixe.strip()
        valeur = valeur.strip()
        if prefixe not in NIVEAUX:
            raise TerritoireInconnu(
                f"Niveau de territoire inconnu : {prefixe} (attendu : FR, METRO, DROM, REG, "
                "DEP, EPCI, COM ou QPV).")
        if prefixe == "QPV":
            t = _qpv_territoire(valeur, qpv_base)
        else:
            t = par_code.get(f"{prefixe}:{valeur}")
        if t is None:
            raise TerritoireInconnu(f"Code de territoire inconnu : {brut}.")
        return t
    if re.fullmatch(r"Q[PN][0-9A-Z]{5,7}", code):
        t = _qpv_territoire(code, qpv_base)
        if t:
            return t
    cle = normaliser(brut)
    trouves = [(poids, t) for nom, t, poids in noms if nom == cle]
    if trouves:
        trouves.sort(key=lambda p: (_ORDRE[p[1].niveau], -p[0]))
        return trouves[0][1]
    suggestions = [t.libelle + f" ({t.code})" for t in rechercher(brut, 5, qpv_base)]
    if not suggestions:
        proches = difflib.get_close_matches(cle, [n for n, _, _ in noms], n=5, cutoff=0.6)
        suggestions = [f"{t.libelle} ({t.code})" for n, t, _ in noms if n in proches][:5]
    aide = " Vouliez-vous dire : " + ", ".join(suggestions) + " ?" if suggestions else ""
    raise TerritoireInconnu(f"Territoire inconnu : « {brut} ».{aide}")


def rechercher(q: str, limite: int = 10,
               qpv_base: dict[str, str] | None = None) -> list[Territoire]:
    """Territories whose name or code starts with (then contains) ``q``, largest first."""
    cle = normaliser(q or "")
    if not cle:
        return []
    par_code, noms = _index()
    code = (q or "").strip().upper()
    resultats: list[tuple[int, int, int, Territoire]] = []
    vus: set[str] = set()
    if code in par_code:
        resultats.append((0, 0, 0, par_code[code]))
        vus.add(code)
    if qpv_base:
        for c, nom in qpv_base.items():
            if c.upper().startswith(code) or normaliser(nom).startswith(cle):
                t = Territoire(f"QPV:{c}", "qpv", nom)
                if t.code not in vus:
                    resultats.append((1, _ORDRE["qpv"], 0, t))
                    vus.add(t.code)
    for nom, t, poids in noms:
        if t.code in vus:
            continue
        valeur = t.code.split(":", 1)[-1]
        if nom.startswith(cle) or valeur == code:
            resultats.append((1, _ORDRE[t.niveau], -poids, t))
        elif f" {cle}" in f" {nom}":
            resultats.append((2, _ORDRE[t.niveau], -poids, t))
    resultats.sort(key=lambda r: r[:3])
    return [r[3] for r in resultats[:limite]]


def libelle_region(code: str | None) -> str | None:
    """Name of a région code."""
    t = _index()[0].get(f"REG:{code}")
    return t.libelle if t else None


def libelle_departement(code: str | None) -> str | None:
    """Name of a département code."""
    t = _index()[0].get(f"DEP:{code}")
    return t.libelle if t else None


def territoires_niveau(niveau: str) -> list[Territoire]:
    """Every territory of one level (``region``, ``departement``...)."""
    return [t for t in _index()[0].values() if t.niveau == niveau]
