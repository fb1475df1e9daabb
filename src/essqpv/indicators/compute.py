"""Indicators of METHODOLOGY 6 for any territory, perimeter and vintage.

Compute first, protect second: every headcount cell of the answer goes through
:mod:`essqpv.indicators.confidentiality` before it leaves this module, in **one** protection
problem per answer (the key figures, the sector table and, for France, the regional table
share cells: protecting them separately would let a cell suppressed in one table be read in
another).

Establishment counts are public (Sirene is open data) and never suppressed.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Hashable
from functools import lru_cache
from pathlib import Path

import duckdb

from essqpv import reference
from essqpv.base import metadonnees, millesime_par_defaut, millesimes, ouvrir, qpv_de_la_base
from essqpv.config import MARQUE_SYNTHETIQUE, confidentialite
from essqpv.errors import ParametreInvalide
from essqpv.indicators.confidentiality import Cellule, agreger, proteger
from essqpv.territoires import DROM, Territoire, libelle_region, resoudre

__all__ = ["indicateurs", "tableau_regional", "indicateurs_qpv", "condition_territoire",
           "verifier_perimetre"]

QPV, RESTE, ENS = "qpv", "reste", "Ensemble"
ARRONDI_PART = 4


def verifier_perimetre(con: duckdb.DuckDBPyConnection, millesime: str, perimetre: str) -> str:
    """Column of the base that holds the QPV of a perimeter (``strict`` or ``<N>m``)."""
    tampon = con.execute("SELECT tampon_m FROM millesimes WHERE millesime = ?",
                         [millesime]).fetchone()[0]
    if perimetre == "strict":
        return "qpv"
    if perimetre == f"{tampon}m":
        return "qpv_tampon"
    raise ParametreInvalide(
        f"Périmètre inconnu : « {perimetre} » (attendu : strict ou {tampon}m pour ce millésime).")


def condition_territoire(t: Territoire, colonne_qpv: str) -> tuple[str, list]:
    """SQL condition (with parameters) selecting the establishments of a territory.

    Column names come from a fixed list; values are always parameters.
    """
    v = t.valeur
    if t.niveau == "france":
        return "TRUE", []
    if t.niveau == "metropole":
        return ("departement IS NOT NULL AND departement NOT LIKE '97%' "
                "AND departement NOT LIKE '98%'", [])
    if t.niveau == "drom":
        return "departement IN (" + ", ".join("?" for _ in DROM) + ")", list(DROM)
    colonne = {"region": "region", "departement": "departement", "epci": "epci",
               "commune": "commune", "qpv": colonne_qpv}[t.niveau]
    return f"{colonne} = ?", [v]


def _cellule(n: int, s: float | None, smax: float | None) -> Cellule:
    s = float(s or 0.0)
    return Cellule(int(n), s, min(float(smax or 0.0), s))


def _arrondi(x: float | None, chiffres: int = ARRONDI_PART) -> float | None:
    return None if x is None else round(x, chiffres)


def _salaries(valeur: float | None) -> float | int | None:
    if valeur is None:
        return None
    return int(round(valeur))


def ligne_secteur(secteur: str, sq: float, st_sq: str | None, tot_q: float,
                  st_ens_q: str | None, sf: float, st_sf: str | None, tot_f: float,
                  st_ens_f: str | None) -> dict:
    """One row of the sector table QPV vs France: employees in QPV, both shares and their gap,
    each withheld (with its reason in ``secret``) when its cell or the total it divides by is
    secret."""
    secret: dict[str, str] = {}
    ligne = {"secteur": secteur, "salaries_qpv": None if st_sq else _salaries(sq)}
    if st_sq:
        secret["salaries_qpv"] = st_sq
    if st_sq or st_ens_q:
        ligne["part_qpv"] = None
        secret["part_qpv"] = st_sq or st_ens_q
    else:
        ligne["part_qpv"] = _arrondi(sq / tot_q) if tot_q else None
    if st_sf or st_ens_f:
        ligne["part_france"] = None
        secret["part_france"] = st_sf or st_ens_f
    else:
        ligne["part_france"] = _arrondi(sf / tot_f) if tot_f else None
    if ligne["part_qpv"] is None or ligne["part_france"] is None:
        ligne["ecart_points"] = None
        if "part_qpv" in secret or "part_france" in secret:
            secret["ecart_points"] = secret.get("part_qpv") or secret.get("part_france")
    else:
        ligne["ecart_points"] = round(100 * (ligne["part_qpv"] - ligne["part_france"]), 2) + 0.0
    ligne["secret"] = secret
    return ligne


def _date_millesime(millesime: str) -> dt.date:
    annee, mois = millesime.split("-")
    return dt.date(int(annee), int(mois), 1)


@lru_cache(maxsize=256)
def _sources(base: str, millesime: str, mtime: float) -> tuple[list, bool, bool, str, int, list]:
    m = metadonnees(base, millesime)
    return (m["sources"], m["synthetique"], m["avec_emplois"], m["geographie_qpv"],
            m["tampon_m"], m["avertissements"])


def _contexte(base: str | Path, territoire: str, perimetre: str, millesime: str | None):
    base = str(base)
    m = millesime_par_defaut(base, millesime)
    t = resoudre(territoire, qpv_de_la_base(base, m)) if not isinstance(territoire, Territoire) \
        else territoire
    return base, m, t


def _agregats(con, m: str, cond: str, params: list, colonne_qpv: str, valeur: str,
              par: str) -> list[tuple]:
    """Employers grouped by ``par`` and in/out QPV: n, headcount, max, employment sums."""
    return con.execute(
        f"""SELECT {par} AS cle, {colonne_qpv} IS NOT NULL AS en_qpv, count(*) AS n,
                   sum({valeur}) AS s, max({valeur}) AS smax,
                   sum(femmes), sum(cdi), sum(contrats_aides), sum(temps_complet),
                   count(*) FILTER (WHERE {valeur} IS NULL) AS sans_valeur
            FROM etablissements
            WHERE millesime = ? AND employeur AND ({cond})
            GROUP BY ALL""", [m, *params]).fetchall()


def _somme(lignes: list[tuple], en_qpv: bool | None = None, cle=None) -> tuple:
    """Aggregate rows of :func:`_agregats` (n, s, smax, femmes, cdi, ca, tc, sans_valeur)."""
    n = s = f = c = a = tc = sv = 0
    smax = 0.0
    for row in lignes:
        if en_qpv is not None and row[1] != en_qpv:
            continue
        if cle is not None and row[0] != cle:
            continue
        n += row[2]
        s += row[3] or 0
        smax = max(smax, row[4] or 0)
        f += row[5] or 0
        c += row[6] or 0
        a += row[7] or 0
        tc += row[8] or 0
        sv += row[9]
    return n, float(s), float(smax), f, c, a, tc, sv


def _calculer(base: str, m: str, t: Territoire, perimetre: str, avec_regions: bool) -> dict:
    sources, synthetique, avec_emplois, geographie, tampon, avert_base = _sources(
        base, m, Path(base).stat().st_mtime)
    con = ouvrir(base)
    try:
        colonne_qpv = verifier_perimetre(con, m, perimetre)
        cond, params = condition_territoire(t, colonne_qpv)
        valeur = "effectif" if avec_emplois else "effectif_estime"
        terr = _agregats(con, m, cond, params, colonne_qpv, valeur, "secteur")
        france = terr if t.niveau == "france" else _agregats(
            con, m, "TRUE", [], colonne_qpv, valeur, "secteur")
        familles = con.execute(
            f"""SELECT famille, employeur, count(*) FROM etablissements
                WHERE millesime = ? AND ({cond}) AND {colonne_qpv} IS NOT NULL
                GROUP BY ALL""", [m, *params]).fetchall()
        tailles = con.execute(
            f"""SELECT tranche, count(*) FROM etablissements
                WHERE millesime = ? AND ({cond}) AND {colonne_qpv} IS NOT NULL AND employeur
                GROUP BY ALL""", [m, *params]).fetchall()
        fin = _date_millesime(m)
        debut = fin.replace(year=fin.year - 1)
        creations = con.execute(
            f"""SELECT famille, count(*) FROM etablissements
                WHERE millesime = ? AND ({cond}) AND {colonne_qpv} IS NOT NULL
                  AND date_creation >= ? AND date_creation < ?
                GROUP BY ALL""", [m, *params, debut, fin]).fetchall()
        regions = _agregats(con, m, "TRUE", [], colonne_qpv, valeur, "region") \
            if avec_regions else []
    finally:
        con.close()

    # ---- one protection problem for every headcount cell of the answer
    secteurs = list(reference.SECTEURS)
    cellules: dict[Hashable, Cellule] = {}
    groupes: list[tuple[Hashable, list[Hashable]]] = []
    for s in secteurs:
        nq, sq, mq, *_ = _somme(terr, True, s)
        nf, sf, mf, *_ = _somme(france, None, s)
        cellules[(s, QPV)] = _cellule(nq, sq, mq)
        # France outside the territory's QPV, for this sector. Its largest establishment is
        # known exactly for France; elsewhere the France maximum bounds it (conservative).
        nr, sr = nf - nq, max(sf - sq, 0.0)
        mr = _somme(france, False, s)[2] if t.niveau == "france" else mf
        cellules[(s, RESTE)] = _cellule(nr, sr, mr if nr else 0.0)
        cellules[(s, ENS)] = _cellule(nf, sf, mf)
        groupes.append(((s, ENS), [(s, QPV), (s, RESTE)]))
    for col in (QPV, RESTE, ENS):
        cellules[(ENS, col)] = _cellule(
            sum(cellules[(s, col)].nombre for s in secteurs),
            sum(cellules[(s, col)].effectif for s in secteurs),
            max(cellules[(s, col)].effectif_max for s in secteurs))
        groupes.append(((ENS, col), [(s, col) for s in secteurs]))
    groupes.append(((ENS, ENS), [(ENS, QPV), (ENS, RESTE)]))
    # key figures: territory = its QPV + the rest of the territory
    n_h, s_h, m_h, *_ = _somme(terr, False)
    n_t, s_t, m_t, *_ = _somme(terr, None)
    if t.niveau != "france":
        cellules["territoire_hors_qpv"] = _cellule(n_h, s_h, m_h)
        cellules["territoire"] = _cellule(n_t, s_t, m_t)
        groupes.append(("territoire", [(ENS, QPV), "territoire_hors_qpv"]))
        n_f, s_f, m_f, *_ = _somme(france, None)
        cellules["ailleurs"] = _cellule(max(n_f - n_t, 0), max(s_f - s_t, 0.0), m_f)
        groupes.append(((ENS, RESTE), ["territoire_hors_qpv", "ailleurs"]))
    if avec_regions:
        codes_r = sorted({r[0] for r in regions if r[0] is not None})
        for code in codes_r:
            for col, en in ((QPV, True), (RESTE, False)):
                n, s, mx, *_ = _somme(regions, en, code)
                cellules[("REG", code, col)] = _cellule(n, s, mx)
            n, s, mx, *_ = _somme(regions, None, code)
            cellules[("REG", code, ENS)] = _cellule(n, s, mx)
            groupes.append((("REG", code, ENS), [("REG", code, QPV), ("REG", code, RESTE)]))
        for col, en in ((QPV, True), (RESTE, False)):
            lignes_hr = [r for r in regions if r[0] is None and r[1] == en]
            n, s, mx, *_ = _somme(lignes_hr)
            cellules[("REG", None, col)] = _cellule(n, s, mx)
            groupes.append(((ENS, col), [("REG", c, col) for c in codes_r] + [("REG", None, col)]))
    initiaux: dict[Hashable, str] = {}
    if t.niveau == "qpv":
        # a QPV hidden as a complement in its département's list stays hidden on its own
        # page, and its sector cells are protected around it
        canonique = statuts_qpv(base, m, perimetre).get(t.valeur)
        if canonique:
            initiaux = {(ENS, QPV): canonique, "territoire": canonique}
    statuts = proteger(cellules, groupes, confidentialite(), statuts_initiaux=initiaux or None)

    # ---- key figures
    nq, sq, mq, fe, cd, ca, tc, sv = _somme(terr, True)
    secret_cles: dict[str, str] = {}
    st_q = statuts[(ENS, QPV)]
    st_t = statuts[(ENS, ENS)] if t.niveau == "france" else statuts["territoire"]
    fam_emp = {f: 0 for f in reference.FAMILLES}
    fam_non = {f: 0 for f in reference.FAMILLES}
    for famille, employeur, n in familles:
        (fam_emp if employeur else fam_non)[famille] = n
    parts_familles = {f: (_arrondi(v / nq) if nq else None) for f, v in fam_emp.items()}
    cles: dict = {
        "etablissements_employeurs": nq,
        "part_associations": parts_familles["association"],
        "parts_familles": parts_familles,
        "salaries": None if st_q else _salaries(sq),
        "estime": not avec_emplois,
    }
    if st_q:
        secret_cles["salaries"] = st_q
    parts = {"part_femmes": fe, "part_cdi": cd, "part_contrats_aides": ca,
             "part_temps_complet": tc}
    for cle, v in parts.items():
        if not avec_emplois:
            cles[cle] = None
        elif st_q:
            cles[cle] = None
            secret_cles[cle] = st_q
        else:
            cles[cle] = _arrondi(v / sq) if sq else None
    s_terr = s_t if t.niveau != "qpv" else sq
    if t.niveau == "qpv":
        cles["part_emploi_ess_en_qpv"] = None
    elif st_q or st_t:
        cles["part_emploi_ess_en_qpv"] = None
        secret_cles["part_emploi_ess_en_qpv"] = st_q or st_t
    else:
        cles["part_emploi_ess_en_qpv"] = _arrondi(sq / s_t) if s_t else None
    cles["salaries_ess_territoire"] = None if st_t else _salaries(s_terr)
    if st_t:
        secret_cles["salaries_ess_territoire"] = st_t
    if avec_emplois:
        cles["employeurs_sans_donnee_emploi"] = sv
    else:
        cles["employeurs_effectif_inconnu"] = sv
    cles["secret"] = secret_cles

    # ---- sector table
    lignes_secteurs = []
    st_ens_q, st_ens_f = statuts[(ENS, QPV)], statuts[(ENS, ENS)]
    tot_q, tot_f = cellules[(ENS, QPV)].effectif, cellules[(ENS, ENS)].effectif
    for s in secteurs + [ENS]:
        lignes_secteurs.append(ligne_secteur(
            s, cellules[(s, QPV)].effectif, statuts[(s, QPV)], tot_q, st_ens_q,
            cellules[(s, ENS)].effectif, statuts[(s, ENS)], tot_f, st_ens_f))

    # ---- beyond employment (6.4)
    groupes_taille = {r["code"]: r["groupe_taille"] for r in
                      reference.tranches().iter_rows(named=True) if r["groupe_taille"]}
    taille = {g: 0 for g in ("1 à 5", "6 à 9", "10 à 19", "20 et plus")}
    taille["inconnue"] = 0
    for tranche, n in tailles:
        taille[groupes_taille.get(tranche, "inconnue")] += n
    par_famille = {f: 0 for f in reference.FAMILLES}
    for famille, n in creations:
        par_famille[famille] = n

    resultat: dict = {
        "territoire": t.en_dict(),
        "perimetre": perimetre,
        "millesime": m,
        "geographie_qpv": geographie,
        "chiffres_cles": cles,
        "tableau_secteurs": lignes_secteurs,
        "familles_en_qpv": {"employeurs": fam_emp, "non_employeurs": fam_non},
        "etablissements_en_qpv": sum(fam_emp.values()) + sum(fam_non.values()),
        "non_employeurs_en_qpv": sum(fam_non.values()),
        "taille_employeurs_en_qpv": taille,
        "creations_en_qpv": {"debut": debut.isoformat(), "fin": fin.isoformat(),
                             "total": sum(par_famille.values()), "par_famille": par_famille},
    }
    if avec_regions:
        resultat["regions"] = _lignes_regionales(cellules, statuts)
    resultat["sources"] = sources
    avert = list(avert_base)
    if synthetique:
        avert.insert(0, MARQUE_SYNTHETIQUE[0].upper() + MARQUE_SYNTHETIQUE[1:] + " : le registre "
                     "de ce millésime est synthétique (essqpv synthese).")
    if not avec_emplois:
        avert.append("Salariés estimés au centre de la tranche d'effectif Insee (aucun fichier "
                     "des emplois) ; parts de femmes, de CDI, de contrats aidés et de temps "
                     "complet non disponibles.")
    if t.niveau == "qpv" and geographie:
        avert.append(f"Géographie des QPV {geographie}.")
    resultat["avertissements"] = avert
    resultat["secret"] = _liste_secret(resultat)
    return resultat


def _lignes_regionales(cellules: dict, statuts: dict) -> list[dict]:
    lignes = []
    for cle in sorted(k for k in cellules if isinstance(k, tuple) and k[0] == "REG"
                      and k[2] == QPV and k[1] is not None):
        code = cle[1]
        q, e = cellules[("REG", code, QPV)], cellules[("REG", code, ENS)]
        st_q, st_e = statuts[("REG", code, QPV)], statuts[("REG", code, ENS)]
        secret = {}
        if st_q:
            secret["salaries"] = st_q
        if st_e:
            secret["salaries_ess_territoire"] = st_e
        if st_q or st_e:
            secret["part_emploi_ess_en_qpv"] = st_q or st_e
        lignes.append({
            "region": code, "libelle": libelle_region(code) or code,
            "etablissements_employeurs": q.nombre,
            "salaries": None if st_q else _salaries(q.effectif),
            "part_emploi_ess_en_qpv": None if (st_q or st_e) else (
                _arrondi(q.effectif / e.effectif) if e.effectif else None),
            "salaries_ess_territoire": None if st_e else _salaries(e.effectif),
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


def indicateurs(base: str | Path, territoire: str | Territoire, perimetre: str = "strict",
                millesime: str | None = None) -> dict:
    """The protected indicators of one territory, perimeter and vintage (METHODOLOGY 9).

    The same object is printed by ``essqpv indicateurs --format json`` and served by the
    web API.

    Raises
    ------
    TerritoireInconnu, ParametreInvalide, BaseInvalide
    """
    base, m, t = _contexte(base, territoire, perimetre, millesime)
    resultat = _calculer(base, m, t, perimetre, avec_regions=(t.niveau == "france"))
    resultat["evolution"] = _evolution(base, m, t, perimetre, resultat)
    # --- geo2024: territories outside Sirene (French Polynesia), essqpv.couverture ---
    from essqpv import couverture
    if couverture.territoire_hors_sirene(t):
        couverture.marquer(resultat)
    elif t.niveau == "france":
        con = ouvrir(base)
        try:
            note = couverture.note_totaux(couverture.qpv_hors_sirene(con, m),
                                          resultat.get("geographie_qpv"))
        finally:
            con.close()
        if note:
            resultat["avertissements"].append(note)
    # --- end geo2024 ---
    return resultat


def _evolution(base: str, m: str, t: Territoire, perimetre: str, actuel: dict) -> dict | None:
    anciens = [x["millesime"] for x in millesimes(base) if x["millesime"] < m]
    if not anciens:
        return None
    precedent = anciens[0]
    try:
        avant = _calculer(base, precedent, t, perimetre, avec_regions=False)
    except ParametreInvalide:
        return None
    evo = {"millesime_precedent": precedent}
    for cle in ("etablissements_employeurs", "salaries"):
        a, b = avant["chiffres_cles"][cle], actuel["chiffres_cles"][cle]
        evo[cle] = {"precedent": a, "actuel": b,
                    "variation": (b - a) if a is not None and b is not None else None}
    return evo


def tableau_regional(base: str | Path, perimetre: str = "strict",
                     millesime: str | None = None) -> list[dict]:
    """The regional table (carte 1), protected: one row per région."""
    return indicateurs(base, "FR", perimetre, millesime)["regions"]


def indicateurs_qpv(base: str | Path, perimetre: str = "strict", millesime: str | None = None,
                    territoire: str | None = None) -> list[dict]:
    """One protected row per QPV of a territory: employers, non-employers, salariés.

    The secret status of a QPV does not depend on the territory asked: it comes from
    :func:`statuts_qpv` (the QPV of each département form one additive group), so that two
    listings, or a listing and a QPV's own page, never disclose different cells.
    """
    base, m, t = _contexte(base, territoire or "FR", perimetre, millesime)
    sources, synthetique, avec_emplois, geographie, tampon, _ = _sources(
        base, m, Path(base).stat().st_mtime)
    con = ouvrir(base)
    try:
        colonne_qpv = verifier_perimetre(con, m, perimetre)
        valeur = "effectif" if avec_emplois else "effectif_estime"
        if t.niveau in ("france",):
            cond_q, params_q = "TRUE", []
        elif t.niveau == "qpv":
            cond_q, params_q = "q.code_qp = ?", [t.valeur]
        elif t.niveau in ("region", "departement"):
            cond_q, params_q = f"q.{t.niveau} = ?", [t.valeur]
        elif t.niveau == "metropole":
            cond_q, params_q = "q.departement NOT LIKE '97%' AND q.departement NOT LIKE '98%'", []
        elif t.niveau == "drom":
            cond_q, params_q = "q.departement IN ('971','972','973','974','976')", []
        else:  # epci, commune: the QPV where establishments of the territory are placed
            cond, params = condition_territoire(t, colonne_qpv)
            cond_q = (f"q.code_qp IN (SELECT DISTINCT {colonne_qpv} FROM etablissements "
                      f"WHERE millesime = ? AND {cond} AND {colonne_qpv} IS NOT NULL)")
            params_q = [m, *params]
        lignes = con.execute(
            f"""SELECT q.code_qp, q.nom_qp, q.departement, q.region, q.hors_champ_sirene,
                       count(e.siret) FILTER (WHERE e.employeur) AS employeurs,
                       count(e.siret) FILTER (WHERE NOT e.employeur) AS non_employeurs,
                       sum(e.{valeur}) FILTER (WHERE e.employeur) AS s,
                       max(e.{valeur}) FILTER (WHERE e.employeur) AS smax
                FROM qpv q LEFT JOIN etablissements e
                  ON e.millesime = q.millesime AND e.{colonne_qpv} = q.code_qp
                WHERE q.millesime = ? AND {cond_q}
                GROUP BY ALL ORDER BY q.code_qp""", [m, *params_q]).fetchall()
    finally:
        con.close()
    statuts = statuts_qpv(base, m, perimetre)
    sortie = []
    for code, nom, dep, reg, hors_champ, emp, non_emp, s, _ in lignes:
        st = statuts[code]
        if hors_champ:  # geo2024: outside Sirene, shown as such and never as zero
            sortie.append({"code_qp": code, "nom_qp": nom, "departement": dep, "region": reg,
                           "hors_champ_sirene": True, "couverture": "non couvert par Sirene",
                           "etablissements_employeurs": None, "non_employeurs": None,
                           "salaries": None, "secret": {}})
            continue
        sortie.append({"code_qp": code, "nom_qp": nom, "departement": dep, "region": reg,
                       "hors_champ_sirene": bool(hors_champ),
                       "etablissements_employeurs": emp, "non_employeurs": non_emp,
                       "salaries": None if st else _salaries(s or 0.0),
                       "secret": {"salaries": st} if st else {}})
    return sortie


def statuts_qpv(base: str, millesime: str, perimetre: str) -> dict[str, str | None]:
    """Canonical secret status of every QPV's salariés (cached while the base is unchanged).

    Groups: the QPV of one département add up to the département's QPV total.
    """
    st = Path(base).stat()
    return _statuts_qpv(str(base), millesime, perimetre, (st.st_ino, st.st_mtime_ns))


@lru_cache(maxsize=32)
def _statuts_qpv(base: str, m: str, perimetre: str, _identite: tuple) -> dict[str, str | None]:
    _, _, avec_emplois, _, _, _ = _sources(base, m, Path(base).stat().st_mtime)
    con = ouvrir(base)
    try:
        colonne_qpv = verifier_perimetre(con, m, perimetre)
        valeur = "effectif" if avec_emplois else "effectif_estime"
        lignes = con.execute(
            f"""SELECT q.code_qp, q.departement,
                       count(e.siret) FILTER (WHERE e.employeur),
                       sum(e.{valeur}) FILTER (WHERE e.employeur),
                       max(e.{valeur}) FILTER (WHERE e.employeur)
                FROM qpv q LEFT JOIN etablissements e
                  ON e.millesime = q.millesime AND e.{colonne_qpv} = q.code_qp
                WHERE q.millesime = ? GROUP BY ALL ORDER BY q.code_qp""", [m]).fetchall()
    finally:
        con.close()
    cellules: dict[Hashable, Cellule] = {r[0]: _cellule(r[2], r[3], r[4]) for r in lignes}
    par_dep: dict[str, list[str]] = {}
    for code, dep, *_ in lignes:
        par_dep.setdefault(dep or "", []).append(code)
    groupes = []
    for dep, codes in par_dep.items():
        total = ("DEP", dep)
        cellules[total] = agreger(cellules[c] for c in codes)
        groupes.append((total, codes))
    statuts = proteger(cellules, groupes, confidentialite())
    return {code: statuts[code] for code, *_ in lignes}
