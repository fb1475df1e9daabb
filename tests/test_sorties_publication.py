"""Every output reads the protected publication, and nothing else.

On a hand-built base holding the two attacks of the per-answer protection (a ring of two
employers around QP093001 between the strict and the 300 m perimeters; a QPV of one employer,
QP093004, beside QPV whose communes are answered on their own), every output for Seine-Saint-
Denis is compared with the cells of ``publication_cellules``: the API JSON, the static site's
JSON, the Excel workbook (opened back with openpyxl), the CSV files, the tables of the PDF
report (text extracted by poppler's ``pdftotext``) and the CLI: identical figures, identical
``s`` marks. Then, as an attacker: every figure the API publishes for every territory of the
plan, put in the plan's additivity relations (territory ⊂ parent, strict + ring = 300 m,
sectors sum to the total), gives every suppressed cell the interval the plan's own audit gives
it (the API adds nothing to the plan; the plan's audit against the protection interval of
``reference/confidentialite.csv`` is ``essqpv controle --secret``), and no value to the cells
of the two attacks.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import warnings
from pathlib import Path

import duckdb
import openpyxl
import pytest
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from essqpv import base as B
from essqpv import reference
from essqpv.indicators.publication import SAL, auditer, lire_plan
from tests import _fabrique as F

M = "2024-01"
TERR = "DEP:93"
ENS = "Ensemble"
# (QPV, commune, [(NAF, employees), ...]) in the 2015 map
DANS_QPV = [
    ("QP093001", "93013", [("88.10A", 10)] * 4 + [("85.59A", 20)] * 3 + [("47.11A", 5)]),
    ("QP093004", "93029", [("88.10A", 1)]),                      # one employer: primary
    ("QP093012", "93010", [("88.10A", 5)] * 3),                  # the smallest complement
    ("QP093051", "93071", [("88.10A", 40)] * 5 + [("85.59A", 30)] * 3),
    # elsewhere, so that France is not Seine-Saint-Denis
    ("QP094029", "94033", [("88.10A", 25)] * 4 + [("85.59A", 12)] * 3),
    ("QP095012", "95127", [("88.10A", 18)] * 5 + [("85.59A", 9)] * 4),
    ("QP069010", "69029", [("88.10A", 30)] * 6 + [("85.59A", 20)] * 3),
]
ANNEAU = [("88.10A", 100), ("85.59A", 77)]   # 100 m outside QP093001: the ring's 2 employers


def _registre(d: Path):
    e, u, emplois = [], [], ["siret,effectif,femmes,cdi,contrats_aides,temps_complet"]
    n = 0

    def ajouter(commune, naf, effectif, lon, lat, cj="9220"):
        nonlocal n
        n += 1
        siren = f"{n:09d}"
        ligne = F.etab(siren + "00011", commune, naf=naf, tranche="12" if effectif > 9 else "03")
        ligne["longitude"], ligne["latitude"] = f"{lon:.7f}", f"{lat:.7f}"
        e.append(ligne)
        u.append(F.ul(siren, cj))
        emplois.append(f"{siren}00011,{effectif},{effectif // 2},{effectif // 2},0,"
                       f"{effectif // 2}")

    for code, commune, postes in DANS_QPV:
        lon, lat = F.point_interieur(code)
        for naf, eff in postes:
            ajouter(commune, naf, eff, lon, lat, cj="5458" if naf == "47.11A" else "9220")
    (_, dehors, _, _) = F.points_bord("QP093001", 100.0)
    for naf, eff in ANNEAU:
        ajouter("93013", naf, eff, *dehors)
    return F.ecrire_registre(d, e, u, emplois)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sorties_publication")
    etab, ul, emp = _registre(d)
    b = d / "obs.duckdb"
    B.construire(etablissements=etab, unites_legales=ul, emplois=emp, millesime=M, base=b,
                 geographie="2015")  # the build writes the protected publication
    return b


@pytest.fixture(scope="module")
def cellules(base) -> dict[tuple, tuple]:
    """(territoire, perimetre, zone, ligne) → (valeur, statut) of the published salariés."""
    con = duckdb.connect(str(base), read_only=True)
    try:
        return {(t, p, z, l): (v, st) for t, p, z, l, v, st in con.execute(
            "SELECT territoire, perimetre, zone, ligne, valeur, statut FROM "
            "publication_cellules WHERE millesime = ? AND tableau = ? AND publiee",
            [M, SAL]).fetchall()}
    finally:
        con.close()


@pytest.fixture(scope="module")
def client(base) -> TestClient:
    from essqpv.web import creer_application
    return TestClient(creer_application(base))


def _stocke(base, genre: str, terr: str, per: str = "strict") -> str:
    con = duckdb.connect(str(base), read_only=True)
    try:
        return con.execute("SELECT json FROM publication_reponses WHERE millesime = ? AND "
                           "genre = ? AND territoire = ? AND perimetre = ?",
                           [M, genre, terr, per]).fetchone()[0]
    finally:
        con.close()


# --- the protected table: what every output must show ------------------------------------

def _secteurs_attendus(cel: dict, terr: str = TERR, per: str = "strict") -> dict[str, tuple]:
    """secteur → (salariés en QPV, part QPV, part France, écart): a number or "s"."""
    v_tq, st_tq = cel[(terr, per, "qpv", ENS)]
    v_tf, st_tf = cel[("FR", "-", "tout", ENS)]
    sortie = {}
    for s in list(reference.SECTEURS) + [ENS]:
        vq, stq = cel[(terr, per, "qpv", s)]
        vf, stf = cel[("FR", "-", "tout", s)]
        sal = "s" if stq else round(vq)
        pq = "s" if (stq or st_tq) else (round(vq / v_tq, 4) if v_tq else None)
        pf = "s" if (stf or st_tf) else (round(vf / v_tf, 4) if v_tf else None)
        if "s" in (pq, pf):
            ec = "s"
        else:
            ec = None if pq is None or pf is None else round(100 * (pq - pf), 2)
        sortie[s] = (sal, pq, pf, ec)
    return sortie


def _quartiers_attendus(cel: dict, codes: list[str], per: str = "strict") -> dict[str, object]:
    out = {}
    for c in codes:
        v, st = cel[(f"QPV:{c}", per, "qpv", ENS)]
        out[c] = "s" if st else round(v)
    return out


def _secteurs_json(r: dict) -> dict[str, tuple]:
    def x(ligne, col):
        return "s" if col in ligne["secret"] else ligne[col]
    return {ligne["secteur"]: tuple(x(ligne, c) for c in ("salaries_qpv", "part_qpv",
                                                          "part_france", "ecart_points"))
            for ligne in r["tableau_secteurs"]}


def _proche(a, b, tolerance: float) -> bool:
    if a == "s" or b == "s" or a is None or b is None:
        return a == b
    return abs(float(a) - float(b)) <= tolerance


def _comparer(obtenu: dict, attendu: dict, tolerances=(0, 1e-9, 1e-9, 1e-9)) -> None:
    assert set(obtenu) == set(attendu)
    for cle, valeurs in attendu.items():
        for a, b, tol in zip(obtenu[cle], valeurs, tolerances):
            assert _proche(a, b, tol), (cle, obtenu[cle], valeurs)


def test_le_territoire_a_des_cases_publiees_primaires_et_secondaires(cellules):
    attendu = _secteurs_attendus(cellules)
    statuts = {cellules[(TERR, "strict", "qpv", s)][1] for s in attendu}
    assert {"primaire", "secondaire"} <= statuts  # the comparison below means something
    assert None in statuts  # and published cells


# --- every output, one territory -----------------------------------------------------------

def test_api_sert_les_octets_stockes(client, base, cellules):
    r = client.get(f"/api/indicateurs/{TERR}")
    assert r.status_code == 200
    assert r.content == _stocke(base, "indicateurs", TERR).encode()  # no re-serialisation
    _comparer(_secteurs_json(r.json()), _secteurs_attendus(cellules))
    cles = r.json()["chiffres_cles"]
    v, st = cellules[(TERR, "strict", "qpv", ENS)]
    assert cles["salaries"] == (None if st else round(v))
    assert cles["secret"].get("salaries") == st
    v, st = cellules[(TERR, "-", "tout", ENS)]
    assert cles["salaries_ess_territoire"] == (None if st else round(v))
    assert cles["secret"].get("salaries_ess_territoire") == st
    q = client.get("/api/quartiers", params={"territoire": TERR})
    assert q.content == _stocke(base, "quartiers", TERR).encode()
    lignes = q.json()["quartiers"]
    assert {x["code_qp"]: "s" if x["secret"] else x["salaries"] for x in lignes} == \
        _quartiers_attendus(cellules, [x["code_qp"] for x in lignes])
    # a QPV's own page and the 300 m perimeter: the plan's cells too
    for code, per in (("QP093001", "strict"), ("QP093001", "300m"), ("QP093004", "strict")):
        p = client.get(f"/api/qpv/{code}", params={"perimetre": per})
        assert p.content == _stocke(base, "indicateurs", f"QPV:{code}", per).encode()
        v, st = cellules[(f"QPV:{code}", per, "qpv", ENS)]
        assert p.json()["chiffres_cles"]["salaries"] == (None if st else round(v))


def test_site_statique_ecrit_les_octets_stockes(base, tmp_path, cellules):
    from essqpv.web import publier
    bilan = publier(base, tmp_path / "site", territoires=[TERR], fichiers="aucun")
    racine = tmp_path / "site" / "donnees" / M
    for per in ("strict", "300m"):
        for genre in ("indicateurs", "quartiers"):
            ecrit = (racine / per / genre / "DEP_93.json").read_bytes()
            assert ecrit == _stocke(base, genre, TERR, per).encode()
    r = json.loads((racine / "strict" / "indicateurs" / "DEP_93.json").read_text("utf-8"))
    _comparer(_secteurs_json(r), _secteurs_attendus(cellules))
    # the site publishes the territories of the plan and nothing else
    publies = {t["code"] for t in json.loads(
        (tmp_path / "site" / "donnees" / "territoires.json").read_text("utf-8"))}
    con = duckdb.connect(str(base), read_only=True)
    try:
        plan = {t for (t,) in con.execute(
            "SELECT DISTINCT territoire FROM publication_reponses WHERE millesime = ?",
            [M]).fetchall()}
    finally:
        con.close()
    assert publies <= plan and {"FR", TERR, "QPV:QP093001", "COM:93013"} <= publies
    assert bilan["territoires"] == len(publies)


def test_excel_relu(base, tmp_path, cellules):
    from essqpv.outputs import exporter
    (chemin,) = exporter(base, TERR, format="xlsx", sortie=tmp_path)
    classeur = openpyxl.load_workbook(chemin, read_only=True)
    lignes = list(classeur["Secteurs"].iter_rows(values_only=True))
    entete = lignes[0]
    i = {nom: entete.index(nom) for nom in ("Secteur", "Salariés en QPV", "Part en QPV",
                                             "Part en France", "Écart (points)")}
    obtenu = {}
    for ligne in lignes[1:]:
        if ligne[i["Secteur"]] is None or all(x is None for x in ligne[1:]):
            continue  # (the note under the table)
        obtenu[ligne[i["Secteur"]]] = tuple(
            ligne[i[c]] for c in ("Salariés en QPV", "Part en QPV", "Part en France",
                                  "Écart (points)"))
    _comparer(obtenu, _secteurs_attendus(cellules))
    qpv = list(classeur["QPV"].iter_rows(values_only=True))
    j, k = qpv[0].index("Code QPV"), qpv[0].index("Salariés ESS en QPV")
    obtenus = {ligne[j]: ligne[k] for ligne in qpv[1:]
               if ligne[j] and any(x is not None for x in ligne[1:])}
    assert obtenus == _quartiers_attendus(cellules, list(obtenus))
    classeur.close()


def test_csv_relu(base, tmp_path, cellules):
    from essqpv.outputs import exporter
    chemins = {p.name: p for p in exporter(base, TERR, format="csv", sortie=tmp_path)}
    secteurs = next(p for n, p in chemins.items() if n.endswith("-secteurs.csv"))
    lignes = list(csv.DictReader(io.StringIO(secteurs.read_text("utf-8-sig"))))
    obtenu = {}
    for ligne in lignes:
        marques = dict(x.split(":", 1) for x in (ligne["secret"] or "").split("; ") if x)
        obtenu[ligne["secteur"]] = tuple(
            "s" if c in marques else (float(ligne[c]) if ligne[c] != "" else None)
            for c in ("salaries_qpv", "part_qpv", "part_france", "ecart_points"))
        assert all(v == "" for c, v in ligne.items() if c in marques)  # null, never a figure
    _comparer(obtenu, _secteurs_attendus(cellules))
    qpv = next(p for n, p in chemins.items() if n.endswith("-qpv.csv"))
    obtenus = {}
    for ligne in csv.DictReader(io.StringIO(qpv.read_text("utf-8-sig"))):
        obtenus[ligne["code_qp"]] = "s" if "salaries:" in (ligne["secret"] or "") else \
            round(float(ligne["salaries"]))
    assert obtenus == _quartiers_attendus(cellules, list(obtenus))


def _nombre_pdf(x: str):
    x = x.replace("\u202f", "").replace("\xa0", "").replace("%", "").replace("−", "-")
    x = x.replace(",", ".").strip()
    return "s" if x == "s" else float(x)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils absent")
def test_tableaux_du_rapport_pdf(base, tmp_path, cellules):
    from essqpv.outputs import rapport
    pdf = Path(rapport(base, TERR, "strict", format="pdf", sortie=tmp_path))
    texte = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                           text=True, check=True).stdout
    attendu = _secteurs_attendus(cellules)
    obtenu = {}
    lignes = texte.splitlines()
    debut = next(k for k, x in enumerate(lignes) if "Emploi salarié ESS par secteur" in x)
    for ligne in lignes[debut:debut + 60]:
        propre = ligne.strip()
        for s in attendu:
            if s not in obtenu and propre.startswith(s[:30]):
                morceaux = [m for m in propre.split("  ") if m.strip()]
                obtenu[s] = tuple(_nombre_pdf(m) for m in morceaux[-4:])
    # the PDF shows parts in % with one decimal, the gap in points with one decimal
    attendu_pdf = {s: (v[0], *(("s" if x == "s" else 100 * x) if i < 2 else x
                               for i, x in enumerate(v[1:])))
                   for s, v in attendu.items()}
    _comparer(obtenu, attendu_pdf, (0, 0.051, 0.051, 0.051))
    # the QPV table of the report (the first rows, with figures)
    quartiers = {}
    for ligne in lignes:
        morceaux = ligne.split()
        if morceaux and morceaux[0].startswith("QP093") and len(morceaux) >= 4:
            quartiers[morceaux[0]] = _nombre_pdf(morceaux[-1])
    assert {"QP093001", "QP093004", "QP093012"} <= set(quartiers)
    assert quartiers == {c: (v if v == "s" else float(v)) for c, v in
                         _quartiers_attendus(cellules, list(quartiers)).items()}
    assert "Licence Ouverte" in texte  # source and licence on every page


def test_cli_indicateurs(base, cellules):
    from essqpv.cli import app
    r = CliRunner().invoke(app, ["indicateurs", "--base", str(base), "--territoire", TERR,
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == json.loads(_stocke(base, "indicateurs", TERR))
    c = CliRunner().invoke(app, ["indicateurs", "--base", str(base), "--territoire", TERR,
                                 "--format", "csv"])
    lignes = list(csv.reader(io.StringIO(c.stdout)))
    sal = {ligne[1]: (ligne[3] or ligne[4]) for ligne in lignes
           if ligne[0] == "tableau_secteurs" and ligne[2] == "salaries_qpv"}
    for s, v in _secteurs_attendus(cellules).items():
        assert sal[s] == ("primaire" if v[0] == "s" and cellules[(TERR, "strict", "qpv", s)][1]
                          == "primaire" else "secondaire" if v[0] == "s" else str(v[0]))


# --- outside the plan ------------------------------------------------------------------------

def test_territoire_hors_plan_jamais_calcule(client, base):
    from essqpv.errors import TerritoireInconnu
    from essqpv.indicators import indicateurs
    r = client.get("/api/indicateurs/COM:75056")  # Paris: no establishment, not in the plan
    assert r.status_code == 404
    message = r.json()["erreur"]
    assert "hors du plan de publication" in message and "/api/territoires/publies" in message
    assert client.get("/api/quartiers", params={"territoire": "COM:75056"}).status_code == 404
    with pytest.raises(TerritoireInconnu, match="hors du plan"):
        indicateurs(base, "COM:75056")
    liste = client.get("/api/territoires/publies").json()
    codes = {t["code"] for t in liste}
    assert {"FR", "METRO", TERR, "COM:93013", "QPV:QP093001"} <= codes
    assert "COM:75056" not in codes
    # the search box proposes published territories only
    assert all(t["code"] in codes for t in client.get(
        "/api/territoires", params={"q": "Paris"}).json())


# --- the attacker, through the API -----------------------------------------------------------

def _plan_vu_par_l_api(client, base):
    """The plan with, as known, exactly the salariés cells the API shows a figure for."""
    con = duckdb.connect(str(base), read_only=True)
    try:
        plan = lire_plan(con, M)
    finally:
        con.close()
    territoires = client.get("/api/territoires/publies").json()
    avec_effectif = {plan.cles[i][1] for i, n in enumerate(plan.nombre) if n > 0}
    vus: set[tuple] = set()
    interroges = set()
    for t in territoires:
        code = t["code"]
        if code not in avec_effectif:
            continue  # every cell of it is zero: known from the public counts anyway
        interroges.add(code)
        for per in ("strict", "300m"):
            r = client.get(f"/api/indicateurs/{code}", params={"perimetre": per}).json()
            c = r["chiffres_cles"]
            if c["salaries"] is not None:
                vus.add((SAL, code, per, "qpv", ENS))
            if c["salaries_ess_territoire"] is not None and t["niveau"] != "qpv":
                vus.add((SAL, code, "-", "tout", ENS))
            for ligne in r["tableau_secteurs"]:
                if ligne["salaries_qpv"] is not None:
                    vus.add((SAL, code, per, "qpv", ligne["secteur"]))
                if ligne["part_france"] is not None:
                    vus.add((SAL, "FR", "-", "tout", ligne["secteur"]))
            for ligne in r.get("regions", []):
                if ligne["salaries"] is not None:
                    vus.add((SAL, f"REG:{ligne['region']}", per, "qpv", ENS))
                if ligne["salaries_ess_territoire"] is not None:
                    vus.add((SAL, f"REG:{ligne['region']}", "-", "tout", ENS))
            q = client.get("/api/quartiers", params={"territoire": code,
                                                     "perimetre": per}).json()
            for ligne in q["quartiers"]:
                if ligne["salaries"] is not None:
                    vus.add((SAL, f"QPV:{ligne['code_qp']}", per, "qpv", ENS))
    return plan, vus, interroges


def test_l_api_ne_publie_que_les_cases_du_plan_et_rien_ne_se_deduit(client, base):
    plan, vus, interroges = _plan_vu_par_l_api(client, base)
    publiees = {k for k, p, st, n in zip(plan.cles, plan.publiee, plan.statuts, plan.nombre)
                if k[0] == SAL and p and st is None and n > 0 and k[1] in interroges}
    vus_non_nuls = {k for k in vus if plan.nombre[plan.indice(k)] > 0}
    # identical marks: the API shows a figure exactly where the plan publishes one
    assert vus_non_nuls == publiees
    # the attacker's audit on what the API shows gives every suppressed cell the interval
    # the plan's own audit gives it (``essqpv controle --secret``, tests/test_publication.py):
    # the API adds nothing to what the plan publishes
    du_plan = {plan.cles[iv.cellule]: (round(iv.bas, 6), round(iv.haut, 6))
               for iv in auditer(plan)}
    for i, k in enumerate(plan.cles):
        if k[0] == SAL:
            plan.publiee[i] = k in vus
            if k in vus:
                plan.statuts[i] = None
    intervalles = auditer(plan)
    par_l_api = {plan.cles[iv.cellule]: (round(iv.bas, 6), round(iv.haut, 6))
                 for iv in intervalles}
    assert (SAL, "QPV:QP093004", "strict", "qpv", ENS) in par_l_api
    assert (SAL, "QPV:QP093001", "anneau", "qpv", ENS) in par_l_api
    assert par_l_api == du_plan
    # the two attacks of the issue: neither the QPV of one employer nor the ring of two has a
    # value through the API
    for cle in ((SAL, "QPV:QP093004", "strict", "qpv", ENS),
                (SAL, "QPV:QP093001", "anneau", "qpv", ENS)):
        bas, haut = par_l_api[cle]
        assert haut > bas, cle


def test_les_deux_attaques_de_l_issue_ne_donnent_rien(client, cellules):
    # 1. strict against 300 m: the ring of QP093001 holds 2 employers (100 + 77 employees)
    strict = client.get("/api/qpv/QP093001").json()["chiffres_cles"]["salaries"]
    large = client.get("/api/qpv/QP093001", params={"perimetre": "300m"}).json()
    large = large["chiffres_cles"]["salaries"]
    assert strict is None or large is None  # the difference would be the ring
    # 2. differencing across the hierarchy: département − published QPV − communes' answers
    dep = client.get("/api/quartiers", params={"territoire": TERR}).json()["quartiers"]
    total = client.get(f"/api/indicateurs/{TERR}").json()["chiffres_cles"]["salaries"]
    inconnus = {x["code_qp"] for x in dep if x["salaries"] is None}
    connus = {x["code_qp"]: x["salaries"] for x in dep if x["salaries"] is not None}
    for code, commune in (("QP093001", "93013"), ("QP093012", "93010"),
                          ("QP093051", "93071"), ("QP093004", "93029")):
        # a commune holding one QPV: its answer is that QPV's figure
        v = client.get(f"/api/indicateurs/COM:{commune}").json()["chiffres_cles"]["salaries"]
        if v is not None:
            connus[code] = v
            inconnus.discard(code)
    assert "QP093004" in inconnus
    if total is not None:
        assert len(inconnus) >= 2  # never a single unknown left in the département's sum


def test_table_liee_servie_et_publiee_telle_que_stockee(base, tmp_path):
    """A linked table's stored answer (genre of its own) is served by a key lookup and
    written as it is in the static site, once its URL prefix is declared."""
    from essqpv.web import creer_application, publier
    from essqpv.web._donnees import PREFIXES_STOCKES, servir_genre
    b = tmp_path / "copie.duckdb"
    shutil.copyfile(base, b)
    texte = json.dumps({"territoire": {"code": TERR}, "essai": [1, "s"]}, indent=2)
    con = duckdb.connect(str(b))
    try:
        con.execute("INSERT INTO publication_reponses VALUES (?, 'essai', ?, 'strict', ?)",
                    [M, TERR, texte])
    finally:
        con.close()
    servir_genre("/api/essai/", "essai")
    try:
        client = TestClient(creer_application(b))
        r = client.get(f"/api/essai/{TERR}")
        assert r.status_code == 200 and r.content == texte.encode()
        assert client.get("/api/essai/DEP:94").status_code == 404  # not stored: no figure
        publier(b, tmp_path / "site", territoires=[TERR], fichiers="aucun")
        ecrit = tmp_path / "site" / "donnees" / M / "strict" / "essai" / "DEP_93.json"
        assert ecrit.read_text("utf-8") == texte
    finally:
        PREFIXES_STOCKES.pop("/api/essai/", None)
