"""The serialised answers of the publication plan (METHODOLOGY 9), built from its cells only.

Writing: :func:`ecrire_reponses` reads ``publication_cellules`` (the published cells and their
statuses, never the establishments) and writes, for every territory and perimeter of the plan,
the JSON of ``essqpv indicateurs`` (genre ``indicateurs``) and of the QPV listing (genre
``quartiers``) into ``publication_reponses``.

Reading: every output reads those answers and nothing else. :func:`indicateurs`,
:func:`indicateurs_qpv` and :func:`reponse_texte` are key lookups in the base (CLI, report,
exports); :class:`Publication` holds every answer of a base in memory as bytes (the web API
and the static site). A territory or a perimeter the plan does not hold is not answered with
figures: :class:`HorsPlan` (HTTP 404) says which territories exist.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

import polars as pl

from essqpv import couverture, reference
from essqpv.errors import BaseInvalide, TerritoireInconnu
from essqpv.indicators.compute import (_arrondi, _salaries, ligne_secteur, part_publiee,
                                       verifier_perimetre)
from essqpv.indicators.publication import (ANNEAU, ENS, SAL, TOUT, avertissement_synthetique,
                                           json_reponse)

__all__ = ["ecrire_reponses", "genre_de_reponses", "indicateurs", "indicateurs_qpv",
           "tableau_regional", "reponse_texte", "Publication", "HorsPlan", "NIVEAUX_PUBLIES",
           "publication_presente",
           "URL_TERRITOIRES_PUBLIES"]

#: Where the API lists the territories of the plan (named by the 404 of a territory outside it).
URL_TERRITOIRES_PUBLIES = "/api/territoires/publies"

_GENRES: list = []


def genre_de_reponses(fonction):
    """Register ``f(con, millesime)`` yielding ``(genre, territoire, perimetre, objet)``.

    Linked tables registered with :func:`essqpv.indicators.publication.extension_du_plan`
    (transition, historical series…) serialise their answers this way: ``objet`` is written
    with :func:`json_reponse` next to the standard answers, from ``publication_cellules`` only,
    every time the vintage's answers are (re)written. The module defining ``f`` must be
    imported before the build (as for the plan extensions).
    """
    if fonction not in _GENRES:
        _GENRES.append(fonction)
    return fonction

NIVEAUX_PUBLIES = ("france", "metropole", "drom", "region", "departement", "epci", "commune",
                   "qpv")


class _Cellules:
    """Published cells of one vintage: key → (n, valeur, statut, extra)."""

    def __init__(self, con, millesime: str) -> None:
        lignes = con.execute(
            "SELECT tableau, territoire, niveau, perimetre, zone, ligne, nombre, valeur, femmes, "
            "cdi, contrats_aides, temps_complet, sans_valeur, statut FROM publication_cellules "
            "WHERE millesime = ? AND publiee", [millesime]).fetchall()
        self.cles: dict[tuple, tuple] = {}
        self.niveaux: dict[str, str] = {}
        self.comptes: dict[tuple, dict[str, int]] = defaultdict(dict)
        for tab, terr, niv, per, zone, ligne, n, v, fe, cd, ca, tc, sv, st in lignes:
            if tab == SAL:
                self.cles[(terr, per, zone, ligne)] = (n, v, st, (fe, cd, ca, tc), sv)
                if niv in NIVEAUX_PUBLIES:
                    self.niveaux[terr] = niv
            else:
                self.comptes[(tab, terr, per)][ligne] = n

    def get(self, terr: str, per: str, zone: str, ligne: str = ENS) -> tuple:
        return self.cles.get((terr, per, zone, ligne), (0, 0.0, None, (0, 0, 0, 0), 0))


def _meta(con, millesime: str) -> dict:
    g, t, s, e, src, av = con.execute(
        "SELECT geographie_qpv, tampon_m, synthetique, avec_emplois, sources, avertissements "
        "FROM millesimes WHERE millesime = ?", [millesime]).fetchone()
    return {"geographie_qpv": g, "tampon_m": t, "synthetique": bool(s), "avec_emplois": bool(e),
            "sources": json.loads(src or "[]"), "avertissements": json.loads(av or "[]")}


def _libelles(con, millesime: str, codes) -> dict[str, str]:
    from essqpv.territoires import _index
    par_code = _index()[0]
    noms = dict(con.execute("SELECT 'QPV:' || code_qp, nom_qp FROM qpv WHERE millesime = ?",
                            [millesime]).fetchall())
    return {c: noms.get(c) or (par_code[c].libelle if c in par_code else c) for c in codes}


def _cles(cel: _Cellules, terr: str, niveau: str, per: str, meta: dict) -> dict:
    nq, sq, st_q, (fe, cd, ca, tc), sv = cel.get(terr, per, "qpv")
    if niveau == "qpv":
        nt, st_, st_t = nq, sq, st_q
    else:
        nt, st_, st_t, _, _ = cel.get(terr, TOUT, "tout")
    fam = {f: 0 for f in reference.FAMILLES}
    fam.update(cel.comptes.get(("familles_employeurs", terr, per), {}))
    parts_familles = {f: (_arrondi(fam[f] / nq) if nq else None) for f in reference.FAMILLES}
    secret: dict[str, str] = {}
    cles: dict = {
        "etablissements_employeurs": nq,
        "part_associations": parts_familles["association"],
        "parts_familles": parts_familles,
        "salaries": None if st_q else _salaries(sq),
        "estime": not meta["avec_emplois"],
    }
    if st_q:
        secret["salaries"] = st_q
    for cle, v in (("part_femmes", fe), ("part_cdi", cd), ("part_contrats_aides", ca),
                   ("part_temps_complet", tc)):
        if not meta["avec_emplois"]:
            cles[cle] = None
        else:
            part_publiee(cles, secret, cle, v, sq, st_q)
    if niveau == "qpv":
        cles["part_emploi_ess_en_qpv"] = None
    else:
        part_publiee(cles, secret, "part_emploi_ess_en_qpv", sq, st_, st_q or st_t)
    cles["salaries_ess_territoire"] = None if st_t else _salaries(st_)
    if st_t:
        secret["salaries_ess_territoire"] = st_t
    cles["employeurs_sans_donnee_emploi" if meta["avec_emplois"]
         else "employeurs_effectif_inconnu"] = sv
    cles["secret"] = secret
    return cles


def _secteurs(cel: _Cellules, terr: str, per: str) -> list[dict]:
    _, tot_q, st_ens_q, _, _ = cel.get(terr, per, "qpv")
    _, tot_f, st_ens_f, _, _ = cel.get("FR", TOUT, "tout")
    lignes = []
    for s in list(reference.SECTEURS) + [ENS]:
        _, sq, st_sq, _, _ = cel.get(terr, per, "qpv", s)
        _, sf, st_sf, _, _ = cel.get("FR", TOUT, "tout", s)
        lignes.append(ligne_secteur(s, sq, st_sq, tot_q, st_ens_q, sf, st_sf, tot_f, st_ens_f))
    return lignes


def _regions(cel: _Cellules, per: str, libelles: dict) -> list[dict]:
    lignes = []
    for terr in sorted(t for t, n in cel.niveaux.items() if n == "region"):
        nt, vt, st_e, _, _ = cel.get(terr, TOUT, "tout")
        if nt == 0:
            continue
        nq, vq, st_q, _, _ = cel.get(terr, per, "qpv")
        secret = {}
        if st_q:
            secret["salaries"] = st_q
        if st_e:
            secret["salaries_ess_territoire"] = st_e
        if st_q or st_e:
            secret["part_emploi_ess_en_qpv"] = st_q or st_e
        code = terr.split(":", 1)[1]
        lignes.append({
            "region": code, "libelle": libelles.get(terr, code),
            "etablissements_employeurs": nq,
            "salaries": None if st_q else _salaries(vq),
            "part_emploi_ess_en_qpv": None if (st_q or st_e) else (
                _arrondi(vq / vt) if vt else None),
            "salaries_ess_territoire": None if st_e else _salaries(vt),
            "secret": secret,
        })
    return lignes


def _liste_secret(resultat: dict) -> list[dict]:
    liste = []
    for col, statut in resultat["chiffres_cles"]["secret"].items():
        liste.append({"tableau": "chiffres_cles", "ligne": None, "colonne": col,
                      "statut": statut})
    for ligne in resultat["tableau_secteurs"]:
        for col, statut in ligne["secret"].items():
            liste.append({"tableau": "tableau_secteurs", "ligne": ligne["secteur"],
                          "colonne": col, "statut": statut})
    for ligne in resultat.get("regions", []):
        for col, statut in ligne["secret"].items():
            liste.append({"tableau": "regions", "ligne": ligne["region"], "colonne": col,
                          "statut": statut})
    return liste


def _date_millesime(millesime: str) -> dt.date:
    annee, mois = millesime.split("-")
    return dt.date(int(annee), int(mois), 1)


def _reponse(cel: _Cellules, precedent: tuple | None, terr: str, niveau: str, libelle: str,
             per: str, m: str, meta: dict, libelles: dict) -> dict:
    fam_emp = {f: 0 for f in reference.FAMILLES}
    fam_emp.update(cel.comptes.get(("familles_employeurs", terr, per), {}))
    fam_non = {f: 0 for f in reference.FAMILLES}
    fam_non.update(cel.comptes.get(("familles_non_employeurs", terr, per), {}))
    taille = {g: 0 for g in ("1 à 5", "6 à 9", "10 à 19", "20 et plus")}
    taille["inconnue"] = 0
    taille.update(cel.comptes.get(("tailles", terr, per), {}))
    creations = {f: 0 for f in reference.FAMILLES}
    creations.update(cel.comptes.get(("creations", terr, per), {}))
    fin = _date_millesime(m)
    debut = fin.replace(year=fin.year - 1)
    r: dict = {
        "territoire": {"code": terr, "niveau": niveau, "libelle": libelle},
        "perimetre": per, "millesime": m, "geographie_qpv": meta["geographie_qpv"],
        "chiffres_cles": _cles(cel, terr, niveau, per, meta),
        "tableau_secteurs": _secteurs(cel, terr, per),
        "familles_en_qpv": {"employeurs": fam_emp, "non_employeurs": fam_non},
        "etablissements_en_qpv": sum(fam_emp.values()) + sum(fam_non.values()),
        "non_employeurs_en_qpv": sum(fam_non.values()),
        "taille_employeurs_en_qpv": taille,
        "creations_en_qpv": {"debut": debut.isoformat(), "fin": fin.isoformat(),
                             "total": sum(creations.values()), "par_famille": creations},
    }
    if niveau == "france":
        r["regions"] = _regions(cel, per, libelles)
    r["sources"] = meta["sources"]
    avert = list(meta["avertissements"])
    if meta["synthetique"]:
        avert.insert(0, avertissement_synthetique())
    if not meta["avec_emplois"]:
        avert.append("Salariés estimés au centre de la tranche d'effectif Insee (aucun fichier "
                     "des emplois) ; parts de femmes, de CDI, de contrats aidés et de temps "
                     "complet non disponibles.")
    if niveau == "qpv" and meta["geographie_qpv"]:
        avert.append(f"Géographie des QPV {meta['geographie_qpv']}.")
    r["avertissements"] = avert
    r["secret"] = _liste_secret(r)
    r["evolution"] = _evolution(precedent, terr, per, r)
    return r


def _evolution(precedent: tuple | None, terr: str, per: str, actuel: dict) -> dict | None:
    if precedent is None:
        return None
    m_prec, cel_prec, perimetres_prec = precedent
    if per not in perimetres_prec:
        return None
    evo: dict = {"millesime_precedent": m_prec}
    n, v, st, _, _ = cel_prec.get(terr, per, "qpv")
    connu = terr in cel_prec.niveaux
    avant = {"etablissements_employeurs": n if connu else None,
             "salaries": None if (st or not connu) else _salaries(v)}
    for cle in ("etablissements_employeurs", "salaries"):
        a, b = avant[cle], actuel["chiffres_cles"][cle]
        evo[cle] = {"precedent": a, "actuel": b,
                    "variation": (b - a) if a is not None and b is not None else None}
    return evo


class _Quartiers:
    """The QPV rows of the listings (one row per QPV and perimeter, the same in every listing
    that shows it), and which QPV each territory lists."""

    def __init__(self, cel: _Cellules, qpv: list[tuple], qpv_de_commune: dict,
                 communes_epci: dict) -> None:
        from essqpv.territoires import DROM
        self.cel, self.qpv = cel, qpv
        self.qpv_de_commune, self.communes_epci = qpv_de_commune, communes_epci
        self.par_code = {q[0]: [q] for q in qpv}
        self.par_region: dict[str, list] = defaultdict(list)
        self.par_dep: dict[str, list] = defaultdict(list)
        for q in qpv:
            self.par_region[q[3]].append(q)
            self.par_dep[q[2]].append(q)
        self.metropole = [q for q in qpv if q[2] and not q[2].startswith(("97", "98"))]
        self.drom = [q for q in qpv if q[2] in DROM]
        self.rang = {q[0]: i for i, q in enumerate(qpv)}
        self.lignes: dict[tuple, dict] = {}

    def ligne(self, q: tuple, per: str) -> dict:
        cle = (q[0], per)
        r = self.lignes.get(cle)
        if r is None:
            code, nom, dep, reg, hors_champ = q
            n, v, st, _, _ = self.cel.get(f"QPV:{code}", per, "qpv")
            non_emp = sum(self.cel.comptes.get(("familles_non_employeurs", f"QPV:{code}", per),
                                               {}).values())
            r = {"code_qp": code, "nom_qp": nom, "departement": dep, "region": reg,
                 "hors_champ_sirene": bool(hors_champ),
                 "etablissements_employeurs": n, "non_employeurs": non_emp,
                 "salaries": None if st else _salaries(v),
                 "secret": {"salaries": st} if st else {}}
            if hors_champ:  # geo2024: outside Sirene, never zero
                couverture.marquer_quartier(r)
            self.lignes[cle] = r
        return r

    def liste(self, terr: str, niveau: str, per: str) -> list[dict]:
        valeur = terr.split(":", 1)[1] if ":" in terr else terr
        if niveau == "france":
            choisis = self.qpv
        elif niveau == "qpv":
            choisis = self.par_code.get(valeur, [])
        elif niveau == "region":
            choisis = self.par_region.get(valeur, [])
        elif niveau == "departement":
            choisis = self.par_dep.get(valeur, [])
        elif niveau == "metropole":
            choisis = self.metropole
        elif niveau == "drom":
            choisis = self.drom
        else:
            communes = self.communes_epci.get(valeur, []) if niveau == "epci" else [valeur]
            codes = set()
            for c in communes:
                codes |= self.qpv_de_commune.get((per, c), set())
            choisis = sorted((self.par_code[c][0] for c in codes if c in self.par_code),
                             key=lambda q: self.rang[q[0]])
        return [self.ligne(q, per) for q in choisis]


def ecrire_reponses(con, millesime: str) -> int:
    """(Re)write the serialised answers of one vintage from its plan; returns their count."""
    meta = _meta(con, millesime)
    cel = _Cellules(con, millesime)
    perimetres = ["strict", f"{meta['tampon_m']}m"]
    anterieurs = [r[0] for r in con.execute(
        "SELECT DISTINCT millesime FROM publication_cellules WHERE millesime < ? "
        "ORDER BY millesime DESC LIMIT 1", [millesime]).fetchall()]
    precedent = None
    if anterieurs:
        m_prec = anterieurs[0]
        meta_prec = _meta(con, m_prec)
        precedent = (m_prec, _Cellules(con, m_prec), ["strict", f"{meta_prec['tampon_m']}m"])
    libelles = _libelles(con, millesime, cel.niveaux)
    qpv = con.execute("SELECT code_qp, nom_qp, departement, region, hors_champ_sirene FROM qpv "
                      "WHERE millesime = ? ORDER BY code_qp", [millesime]).fetchall()
    # which QPV a commune holds: named in the contours, or establishments of it placed there
    qpv_de_commune: dict[tuple, set] = defaultdict(set)
    for code, communes in con.execute("SELECT code_qp, communes FROM qpv WHERE millesime = ?",
                                      [millesime]).fetchall():
        for c in (communes or "").replace(",", ";").split(";"):
            for per in perimetres:
                qpv_de_commune[(per, c.strip())].add(code)
    for terr, per in con.execute(
            "SELECT DISTINCT territoire, perimetre FROM publication_cellules WHERE millesime = ? "
            "AND niveau = 'intersection' AND nombre > 0", [millesime]).fetchall():
        if per != ANNEAU:
            q, c = terr[2:].split("@", 1)
            qpv_de_commune[(per, c)].add(q)
    from essqpv.territoires import table_communes
    communes_epci: dict[str, list[str]] = defaultdict(list)
    for c, e in table_communes().select("commune", "epci").unique("commune").iter_rows():
        if e:
            communes_epci[e].append(c)
    quartiers = _Quartiers(cel, qpv, qpv_de_commune, communes_epci)
    lignes = []
    for terr, niveau in sorted(cel.niveaux.items()):
        for per in perimetres:
            r = _reponse(cel, precedent, terr, niveau, libelles[terr], per, millesime, meta,
                         libelles)
            couverture.appliquer(r, con, millesime)  # geo2024: Polynesia "non couvert", never 0
            lignes.append(("indicateurs", terr, per, json_reponse(r)))
            q = {"territoire": r["territoire"], "perimetre": per, "millesime": millesime,
                 "quartiers": quartiers.liste(terr, niveau, per)}
            lignes.append(("quartiers", terr, per, json_reponse(q)))
    import essqpv.historique  # noqa: F401  (registers the series' answers: genre evolution)
    for genre in _GENRES:
        for g, terr, per, obj in genre(con, millesime):
            lignes.append((g, terr, per, json_reponse(obj)))
    con.execute("DELETE FROM publication_reponses WHERE millesime = ?", [millesime])
    df = pl.DataFrame({"millesime": millesime, "genre": [x[0] for x in lignes],
                       "territoire": [x[1] for x in lignes], "perimetre": [x[2] for x in lignes],
                       "json": [x[3] for x in lignes]},
                      schema={"millesime": pl.String, "genre": pl.String,
                              "territoire": pl.String, "perimetre": pl.String,
                              "json": pl.String})
    con.register("_pub_rep", df.to_arrow())
    con.execute("INSERT INTO publication_reponses BY NAME SELECT * FROM _pub_rep")
    con.unregister("_pub_rep")
    return len(lignes)


# --------------------------------------------------------------------------------------------
# reading: every output answers from the stored answers, by key


class HorsPlan(TerritoireInconnu):
    """A territory the publication plan holds no answer for (HTTP 404): no figure is computed
    on the fly, the message says which territories exist."""


_LIBELLES_NIVEAUX = (("region", "régions"), ("departement", "départements"),
                     ("epci", "EPCI"), ("commune", "communes"), ("qpv", "QPV"))


def message_hors_plan(code: str, libelle: str, millesime: str,
                      comptes: dict[str, int]) -> str:
    """The French message of a territory outside the plan (what exists, where it is listed)."""
    detail = ", ".join(f"{comptes.get(n, 0)} {lib}" for n, lib in _LIBELLES_NIVEAUX)
    return (f"Territoire hors du plan de publication : {libelle} ({code}) n'a pas de "
            f"réponse publiée pour le millésime {millesime}. Sont publiés : la France entière "
            f"(FR), la France métropolitaine (METRO), les DROM, les régions, les départements, "
            f"les EPCI et les communes qui comptent un QPV, et les QPV ({detail}). Aucun "
            "chiffre n'est calculé à la demande (secret statistique : une combinaison de "
            "réponses ne doit révéler aucune case masquée). Liste des territoires publiés : "
            f"{URL_TERRITOIRES_PUBLIES} (API) ou donnees/territoires.json (site statique).")


def _sans_publication(base, millesime: str) -> BaseInvalide:
    from pathlib import Path
    return BaseInvalide(
        f"La base {Path(base).name} ne contient pas la publication protégée du millésime "
        f"{millesime} (tables publication_*) : reconstruisez-la avec essqpv construire "
        "(chaque sortie lit cette publication, rien n'est calculé à la demande).")


def _resoudre(base, territoire, millesime: str | None):
    from essqpv.base import millesime_par_defaut, qpv_de_la_base
    from essqpv.territoires import Territoire, resoudre
    m = millesime_par_defaut(base, millesime)
    t = territoire if isinstance(territoire, Territoire) else resoudre(
        territoire, qpv_de_la_base(base, m))
    return m, t


def _comptes_niveaux(con, millesime: str) -> dict[str, int]:
    return dict(con.execute(
        "SELECT niveau, count(DISTINCT territoire) FROM publication_cellules "
        "WHERE millesime = ? AND publiee AND tableau = ? GROUP BY niveau",
        [millesime, SAL]).fetchall())


def reponse_texte(base, genre: str, territoire, perimetre: str = "strict",
                  millesime: str | None = None) -> str:
    """The stored JSON text of one answer (a key lookup in ``publication_reponses``).

    Raises
    ------
    TerritoireInconnu
        Unknown code or name (with suggestions).
    HorsPlan
        A known territory the plan does not publish.
    ParametreInvalide
        A perimeter the vintage does not have.
    BaseInvalide
        The base holds no publication for the vintage (built before it existed).
    """
    import duckdb

    from essqpv.base import ouvrir
    m, t = _resoudre(base, territoire, millesime)
    con = ouvrir(base)
    try:
        verifier_perimetre(con, m, perimetre)
        try:
            ligne = con.execute(
                "SELECT json FROM publication_reponses WHERE millesime = ? AND genre = ? "
                "AND territoire = ? AND perimetre = ?", [m, genre, t.code, perimetre]).fetchone()
        except duckdb.CatalogException:
            raise _sans_publication(base, m) from None
        if ligne is not None:
            return ligne[0]
        if con.execute("SELECT count(*) FROM publication_reponses WHERE millesime = ?",
                       [m]).fetchone()[0] == 0:
            raise _sans_publication(base, m)
        raise HorsPlan(message_hors_plan(t.code, t.libelle, m, _comptes_niveaux(con, m)))
    finally:
        con.close()


def publication_presente(base, millesime: str | None = None) -> bool:
    """Whether the base holds the protected publication of the vintage (newest by default):
    every build writes it; a base built by an earlier version has none (its outputs are
    refused with the message asking to rebuild it)."""
    import duckdb

    from essqpv.base import millesime_par_defaut, ouvrir
    m = millesime_par_defaut(base, millesime)
    con = ouvrir(base)
    try:
        try:
            return con.execute("SELECT count(*) FROM publication_reponses WHERE millesime = ?",
                               [m]).fetchone()[0] > 0
        except duckdb.CatalogException:
            return False
    finally:
        con.close()


def indicateurs(base, territoire, perimetre: str = "strict",
                millesime: str | None = None) -> dict:
    """The protected indicators of one territory, perimeter and vintage (METHODOLOGY 9):
    the stored answer of the publication plan, as ``essqpv indicateurs --format json`` prints
    it and the web API serves it."""
    return json.loads(reponse_texte(base, "indicateurs", territoire, perimetre, millesime))


def indicateurs_qpv(base, perimetre: str = "strict", millesime: str | None = None,
                    territoire: str | None = None) -> list[dict]:
    """One row per QPV of a territory (employers, non-employers, salariés), as stored."""
    return json.loads(reponse_texte(base, "quartiers", territoire or "FR", perimetre,
                                    millesime))["quartiers"]


def tableau_regional(base, perimetre: str = "strict", millesime: str | None = None
                     ) -> list[dict]:
    """The regional table (carte 1): one row per région, from France's stored answer."""
    return indicateurs(base, "FR", perimetre, millesime)["regions"]


def _connexion_propre(base):
    """A DuckDB connection of its own on ``base`` (read-only), to close once read: the pages it
    read are freed with it (the cached connection of :func:`essqpv.base.ouvrir` keeps them)."""
    from pathlib import Path

    import duckdb

    from essqpv.base import ouvrir
    ouvrir(base).close()  # (a clear error when the file is not a base)
    con = duckdb.connect(config={"threads": 1})
    chemin = str(Path(base).resolve()).replace("'", "''")
    con.execute(f"ATTACH '{chemin}' AS publication (READ_ONLY)")
    con.execute("USE publication")
    return con


def verifier_publication(base) -> int:
    """The number of stored answers of the newest vintage; BaseInvalide when there is none
    (checked by ``essqpv servir`` before starting its workers)."""
    import duckdb

    from essqpv.base import millesime_par_defaut
    m = millesime_par_defaut(base)
    con = _connexion_propre(base)
    try:
        try:
            n = con.execute("SELECT count(*) FROM publication_reponses WHERE millesime = ?",
                            [m]).fetchone()[0]
        except duckdb.CatalogException:
            n = 0
    finally:
        con.close()
    if not n:
        raise _sans_publication(base, m)
    return n


class Publication:
    """Every stored answer of a base in memory, as the bytes the API sends.

    ``octets(genre, territoire, perimetre, millesime)`` is a dictionary lookup; answers of
    more than :data:`SEUIL_GZIP` bytes are also kept gzipped (compressed once, at loading):
    nothing is computed or serialised per request, and memory does not grow with the load.
    """

    SEUIL_GZIP = 1400

    def __init__(self, base) -> None:
        import gzip

        import duckdb

        self._octets: dict[tuple, bytes] = {}
        self._gzip: dict[tuple, bytes] = {}
        #: vintage → territory code → (niveau, libelle)
        self.territoires: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
        self.comptes: dict[str, dict[str, int]] = {}
        # a connection of its own, closed once read: the pages DuckDB read do not stay in
        # the memory of a server (the answers are held once, as bytes)
        con = _connexion_propre(base)
        try:
            try:
                curseur = con.execute("SELECT millesime, genre, territoire, perimetre, json "
                                      "FROM publication_reponses")
            except duckdb.CatalogException:
                curseur = None
            while curseur is not None:
                paquet = curseur.fetchmany(2000)
                if not paquet:
                    break
                for m, g, terr, per, texte in paquet:
                    cle = (g, terr, per, m)
                    corps = texte.encode("utf-8")
                    self._octets[cle] = corps
                    if len(corps) > self.SEUIL_GZIP:
                        self._gzip[cle] = gzip.compress(corps, compresslevel=6, mtime=0)
            if self._octets:
                for m, terr, niveau, libelle in con.execute(
                        "SELECT millesime, territoire, "
                        "json_extract_string(json, '$.territoire.niveau'), "
                        "json_extract_string(json, '$.territoire.libelle') "
                        "FROM publication_reponses WHERE genre = 'indicateurs' "
                        "AND perimetre = 'strict' ORDER BY millesime, territoire").fetchall():
                    self.territoires[m][terr] = (niveau, libelle)
                for m, liste in self.territoires.items():
                    comptes: dict[str, int] = defaultdict(int)
                    for niveau, _ in liste.values():
                        comptes[niveau] += 1
                    self.comptes[m] = dict(comptes)
        finally:
            con.close()

    def __len__(self) -> int:
        return len(self._octets)

    def taille_octets(self) -> int:
        """Bytes held (answers and their gzipped copies)."""
        return sum(map(len, self._octets.values())) + sum(map(len, self._gzip.values()))

    def octets(self, genre: str, territoire: str, perimetre: str, millesime: str
               ) -> bytes | None:
        return self._octets.get((genre, territoire, perimetre, millesime))

    def octets_gzip(self, genre: str, territoire: str, perimetre: str, millesime: str
                    ) -> bytes | None:
        """The gzipped copy (None for small answers, sent as they are)."""
        return self._gzip.get((genre, territoire, perimetre, millesime))

    def genres(self) -> set[str]:
        """The genres of the stored answers (``indicateurs``, ``quartiers``, linked tables)."""
        return {cle[0] for cle in self._octets}

    def publie(self, territoire: str, millesime: str) -> bool:
        return territoire in self.territoires.get(millesime, {})

    def hors_plan(self, code: str, libelle: str, millesime: str) -> HorsPlan:
        return HorsPlan(message_hors_plan(code, libelle, millesime,
                                          self.comptes.get(millesime, {})))
