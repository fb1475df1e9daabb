"""What the new map changes, in every output: report and slides (real PDF read back with
pdftotext), Excel (openpyxl) and CSV exports, the API, the dashboard in a real Chromium
and the static site. Every figure is the stored, protected answer of the publication.

Base: the small register across the redrawing of Seine-Saint-Denis
(``tests/_transition_fabrique``), with the publication its build writes.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest

from essqpv import transition as T
from tests import _transition_fabrique as TF
from tests._serveur import exiger_navigateur, servir, servir_dossier



@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return TF.bases(tmp_path_factory)[1]


def _pdftotext(chemin: Path) -> str:
    if shutil.which("pdftotext") is None:  # pragma: no cover - the CI installs poppler-utils
        pytest.skip("pdftotext absent : apt-get install -y poppler-utils")
    return subprocess.run(["pdftotext", "-layout", str(chemin), "-"], check=True,
                          capture_output=True, text=True).stdout


def _sans_espaces(t: str) -> str:
    return t.replace("\u202f", "").replace("\xa0", "")


def _salaries_publies(r: dict) -> list[str]:
    """The "Ensemble" headcounts of a stored transition answer, as an output shows them."""
    e = r["lignes"][0]
    return ["s" if e["salaries"][z] is None else str(round(e["salaries"][z]))
            for z in T.ZONES_REPONSE]


def test_transition_protegee_avec_le_plan(base):
    """The transition's suppressed headcounts keep their protection interval against an
    attacker holding every published cell of the plan (audit of the stored plan), and the
    stored answer shows exactly the plan's statuses."""
    from essqpv.indicators.publication import audit_base
    plan, intervalles, bilan = audit_base(base)
    assert bilan["certificats_invalides"] == 0
    transition = [iv for iv in intervalles if plan.cles[iv.cellule][0] == T.CELLULE_SAL]
    assert transition and all(iv.protegee for iv in transition)
    assert all(iv.protegee for iv in intervalles)
    statut = {k: st for k, st in zip(plan.cles, plan.statuts)}
    e = T.tableau(base, "DEP:93")["lignes"][0]
    for z in T.ZONES_REPONSE:
        # (the total in the base's map is the standard table's cell)
        cle = (T.CELLULE_SAL, "DEP:93", "strict", z, "Ensemble")
        if cle not in statut:
            cle = ("salaries", "DEP:93", "strict", "qpv", "Ensemble")
        st = statut.get(cle)
        assert e["secret"].get(z) == st
        assert (e["salaries"][z] is None) == (st is not None)


def test_rapport_pdf_section_tableau_et_carte(base, tmp_path):
    from essqpv.outputs import rapport
    r = T.tableau(base, "DEP:93")
    chemin = rapport(base, "DEP:93", format="pdf", sortie=tmp_path)
    texte = _pdftotext(chemin)
    assert "Ce que change la nouvelle carte" in texte
    debut = texte.index("Ce que change la nouvelle carte — Seine-Saint-Denis")
    section = texte[debut:]
    e = r["lignes"][0]["etablissements"]
    ligne = next(li for li in section.splitlines() if li.strip().startswith("Établissements ESS"))
    assert [int(x) for x in ligne.split()[-5:]] == [e[z] for z in T.ZONES_REPONSE]
    salaries = next(li for li in section.splitlines() if li.strip().startswith("Salariés"))
    # the headcounts as the protected publication stores them: "s" where suppressed (the
    # employer that left the map had 12 employees: a primary secret, never a figure)
    assert _sans_espaces(salaries).split()[-5:] == _salaries_publies(r)
    assert r["lignes"][0]["secret"]["sortant"] == "primaire"
    assert "12" not in salaries.split()
    assert "Pleyel QP093038" in " ".join(section.split())  # the QPV 2015 that left
    assert "Associations" in section and "Par secteur" in section
    # the map: an image in the PDF, after the section's first table…
    page = next(i for i, p in enumerate(texte.split("\f"), 1) if "Par famille" in p)
    images = subprocess.run(["pdfimages", "-list", "-f", str(page - 1), "-l", str(page),
                             str(chemin)], capture_output=True, text=True, check=True).stdout
    assert len(images.strip().splitlines()) >= 3  # (two header lines, then the images)
    # …and its text in the HTML report (inline SVG)
    html = rapport(base, "DEP:93", format="html", sortie=tmp_path).read_text("utf-8")
    carte = html[html.index('aria-label="Quartiers prioritaires 2015 et 2024 — Seine-Saint-'
                            'Denis"'):]
    carte = carte[:carte.index("</svg>")]
    for legende in ("QPV 2024 sans prédécesseur", "QPV 2015 sorti de la carte"):
        assert legende in carte


def _html(chemin: Path) -> str:
    """The text of an HTML report, one table row per line."""
    import html as H
    import re
    t = chemin.read_text("utf-8")
    t = re.sub(r"<svg.*?</svg>", " ", t, flags=re.S)
    t = re.sub(r"</tr>|<br>|</p>|</h2>|</caption>", "\n", t)
    return H.unescape(re.sub(r"<[^>]+>", " ", t))


def test_rapport_commune_et_diapos(base, tmp_path):
    from essqpv.outputs import rapport
    texte = _html(rapport(base, "COM:93066", format="html", sortie=tmp_path))
    section = texte[texte.index("Ce que change la nouvelle carte — Saint-Denis"):]
    # by family, headcounts are not published for a commune: "—", not "s", not a figure
    assoc = next(li for li in section.splitlines() if li.strip().startswith("Associations"))
    assert assoc.split()[1:] == ["4", "—", "2", "—", "0", "—"]
    diapos = _pdftotext(rapport(base, "DEP:93", format="diapos", sortie=tmp_path))
    assert "Ce que change la nouvelle carte" in diapos
    assert "8 établissements de l'ESS entrent" in " ".join(diapos.split())


def test_rapport_france_carte_par_departement(base, tmp_path):
    from essqpv.outputs import rapport
    html = rapport(base, "FR", format="html", sortie=tmp_path).read_text("utf-8")
    titre = 'aria-label="Entrées et sorties de la carte des QPV, par département — France'
    carte = html[html.index(titre):]
    carte = carte[:carte.index("</svg>")]
    e = T.tableau(base, "DEP:93")["lignes"][0]["etablissements"]
    assert f"jusqu'à ±{e['entrant'] - e['sortant']}" in carte.replace("&#39;", "'")
    assert "Totaux hors des 88 QPV de Polynésie française" in " ".join(_html(
        rapport(base, "FR", format="html", sortie=tmp_path)).split())


def test_polynesie_non_couvert_jamais_zero(base, tmp_path):
    from essqpv.outputs import exporter, rapport
    texte = _pdftotext(rapport(base, "DEP:987", format="pdf", sortie=tmp_path))
    section = texte[texte.index("Ce que change la nouvelle carte — Polynésie française"):]
    ligne = next(li for li in section.splitlines() if li.strip().startswith("Établissements ESS"))
    assert ligne.split()[-5:] == ["n.c."] * 5
    # its QPV in the report's list: n.c., never 0
    qpv = next(li for li in texte.splitlines() if "QN98701M" in li)
    assert qpv.split()[-3:] == ["n.c."] * 3
    (x,) = exporter(base, "DEP:987", format="xlsx", sortie=tmp_path)
    ws = openpyxl.load_workbook(x)["Nouvelle carte 2024"]
    entetes = [c.value for c in ws[1]]
    total = [c.value for c in ws[2]]
    assert total[entetes.index("Couverture")] == "non couvert par Sirene"
    assert all(total[entetes.index(f"Établissements — {t}")] is None
               for t in ("entrés (en QPV 2024, pas en 2015)", "en QPV 2024"))
    ws = openpyxl.load_workbook(x)["QPV"]
    entetes = [c.value for c in ws[1]]
    ligne = [c.value for c in ws[2]]
    assert ligne[entetes.index("Couverture")] == "non couvert par Sirene"
    assert ligne[entetes.index("Employeurs ESS en QPV")] is None


def test_export_excel_et_csv(base, tmp_path):
    from essqpv.outputs import exporter
    r = T.tableau(base, "DEP:93")
    (x,) = exporter(base, "DEP:93", format="xlsx", sortie=tmp_path)
    wb = openpyxl.load_workbook(x)
    assert "Nouvelle carte 2024" in wb.sheetnames
    ws = wb["Nouvelle carte 2024"]
    entetes = [c.value for c in ws[1]]
    lignes = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    total = next(li for li in lignes if li[0] == "ensemble")
    e = r["lignes"][0]["etablissements"]
    assert total[entetes.index("Établissements — entrés (en QPV 2024, pas en 2015)")] == \
        e["entrant"]
    assert total[entetes.index("Établissements — sortis (en QPV 2015, plus en 2024)")] == \
        e["sortant"]
    assert total[entetes.index("Salariés — sortis (en QPV 2015, plus en 2024)")] == "s"
    assert "salaries_sortant:primaire" in total[entetes.index("Secret statistique")]
    assert any(str(li[0]).startswith("Entrés : en QPV 2024") for li in lignes)
    csvs = exporter(base, "DEP:93", format="csv", sortie=tmp_path / "csv")
    (c,) = [p for p in csvs if p.name.endswith("-transition.csv")]
    with open(c, encoding="utf-8-sig", newline="") as f:
        rangs = list(csv.DictReader(f))
    assert rangs[0]["libelle"] == "Ensemble"
    assert int(rangs[0]["etablissements_qpv2024"]) == e["qpv2024"]
    assert rangs[0]["salaries_sortant"] == ""  # suppressed: empty, with its status
    assert "salaries_sortant:primaire" in rangs[0]["secret"]


def test_marque_synthetique(base, tmp_path):
    """On a synthetic register, the section and the sheet say so."""
    import duckdb

    from essqpv.config import MARQUE_SYNTHETIQUE
    from essqpv.indicators.reponses import ecrire_reponses
    from essqpv.outputs import exporter, rapport
    b = tmp_path / "synthetique.duckdb"
    shutil.copyfile(base, b)
    con = duckdb.connect(str(b))
    try:
        con.execute("UPDATE millesimes SET synthetique = true")
        ecrire_reponses(con, "2024-01")
    finally:
        con.close()
    r = T.tableau(b, "DEP:93")
    assert r["synthetique"] and MARQUE_SYNTHETIQUE in r["avertissements"][0].lower()
    texte = " ".join(_html(rapport(b, "DEP:93", format="html", sortie=tmp_path)).split())
    section = texte[texte.index("Ce que change la nouvelle carte"):]
    assert MARQUE_SYNTHETIQUE in section.lower()
    (x,) = exporter(b, "DEP:93", format="xlsx", sortie=tmp_path)
    ws = openpyxl.load_workbook(x)["Nouvelle carte 2024"]
    assert any(MARQUE_SYNTHETIQUE in str(c.value) for row in ws.iter_rows() for c in row)


# --- API --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(base):
    from fastapi.testclient import TestClient

    from essqpv.web import creer_application
    return TestClient(creer_application(base))


def test_api_transition_par_cle(base, monkeypatch):
    """Asked by its code, a territory's transition is the stored bytes of the publication
    (a key lookup, like the indicators): nothing is recomputed."""
    from fastapi.testclient import TestClient

    from essqpv.web import creer_application
    attendu = T.tableau(base, "DEP:93")

    def interdit(*args, **kwargs):
        raise AssertionError("transition recalculée au lieu d'être lue dans la publication")
    monkeypatch.setattr(T, "tableau", interdit)
    with TestClient(creer_application(base)) as c:
        r = c.get("/api/transition/DEP:93")
    assert r.status_code == 200 and r.json() == attendu


def test_api_transition(client, base):
    r = client.get("/api/transition/DEP:93")
    assert r.status_code == 200
    assert r.json() == T.tableau(base, "DEP:93")
    assert client.get("/api/transition/Seine-Saint-Denis").json()["territoire"]["code"] == \
        "DEP:93"
    com = client.get("/api/transition/COM:93066").json()
    assert com["salaries_par_ligne"] is False
    assert com["lignes"][0]["secret"]["sortant"] == "primaire"
    assert com["lignes"][0]["salaries"]["sortant"] is None
    erreur = client.get("/api/transition/QPV:QN09365N")
    assert erreur.status_code == 400 and "pas pour" in erreur.json()["erreur"]
    inconnu = client.get("/api/transition/XYZ:0")
    assert inconnu.status_code == 404 and inconnu.json()["erreur"]
    assert client.get("/api/transition/FR?millesime=2030-01").status_code in (400, 404, 503)
    assert "/api/transition/{territoire}" in client.get("/openapi.json").json()["paths"]
    page = client.get("/?territoire=DEP:93").text
    assert 'data-transition="oui"' in page and "static/transition.js" in page


def test_api_base_sans_publication(tmp_path_factory):
    from fastapi.testclient import TestClient

    from essqpv.web import creer_application
    brute = TF.bases(tmp_path_factory)[0]
    c = TestClient(creer_application(brute))
    r = c.get("/api/transition/FR")
    assert r.status_code == 400 and "publication protégée" in r.json()["erreur"]
    # the dashboard itself: every figure is a stored answer, so a base built before the
    # publication is refused with the message asking to rebuild it, never served
    accueil = c.get("/")
    assert accueil.status_code == 503 and "reconstruisez" in accueil.text
    assert 'data-transition="oui"' not in accueil.text


# --- dashboard in a real browser ------------------------------------------------------------

@pytest.fixture(scope="module")
def url_api(base):
    from essqpv.web import creer_application
    with servir(creer_application(base)) as url:
        yield url


def _lire_tableau(page) -> dict[str, list[str]]:
    lignes = {}
    for tr in page.locator("#table-transition tbody tr").all():
        cellules = [c.strip() for c in tr.locator("th, td").all_inner_texts()]
        lignes[cellules[0]] = [_sans_espaces(c) for c in cellules[1:]]
    return lignes


@pytest.mark.browser
def test_tableau_de_bord_navigateur(url_api, base, page):
    exiger_navigateur()
    erreurs: list[str] = []
    page.on("pageerror", lambda e: erreurs.append(str(e)))
    page.on("console", lambda m: erreurs.append(m.text) if m.type == "error" else None)
    page.goto(f"{url_api}/?territoire=DEP:93")
    # the panel says which territory its table shows (it may show another one first)
    page.locator("#bloc-transition[data-territoire='DEP:93']").wait_for(state="visible",
                                                                          timeout=20000)
    r = T.tableau(base, "DEP:93")
    e = r["lignes"][0]["etablissements"]
    lignes = _lire_tableau(page)
    assert lignes["Ensemble"] == [str(e[z]) for z in T.ZONES_REPONSE]
    assert "Associations" in lignes and "Commerce" not in lignes
    # the toggles: by sector, then the headcounts ("s" where suppressed)
    page.select_option("#choix-transition", "secteur")
    assert "Commerce" in _lire_tableau(page)
    page.select_option("#choix-transition-mesure", "salaries")
    lignes = _lire_tableau(page)
    assert lignes["Ensemble"] == _salaries_publies(r)
    secrets = sum(len(li["secret"]) for li in T.tableau(base, "DEP:93")["lignes"]
                  if li["dimension"] in ("ensemble", "secteur"))
    assert secrets >= 2
    assert page.locator("#table-transition td[title^='secret statistique']").count() == secrets
    assert "Pleyel QP093038" in page.locator("#transition-qpv").inner_text()
    # another territory, through the dashboard's own navigation: the panel follows
    page.goto(f"{url_api}/?territoire=COM:93066")
    page.locator("#bloc-transition[data-territoire='COM:93066']").wait_for(state="visible",
                                                                             timeout=20000)
    page.wait_for_function("document.querySelector('#titre-territoire').textContent"
                           ".includes('Saint-Denis')")
    page.select_option("#choix-transition-mesure", "salaries")
    lignes = _lire_tableau(page)
    assert lignes["Associations"][:3] == ["—", "—", "—"]  # not published for a commune
    # a QPV: the panel is hidden (the transition is by territory)
    page.goto(f"{url_api}/?territoire=QPV:QN09365N")
    page.locator("#bloc-transition[data-territoire='QPV:QN09365N']").wait_for(
        state="attached", timeout=20000)
    assert page.locator("#bloc-transition").is_hidden()
    assert not erreurs, erreurs


@pytest.mark.browser
def test_site_statique_navigateur(base, tmp_path, page):
    exiger_navigateur()
    from essqpv.web import publier
    sortie = tmp_path / "site"
    publier(base, sortie, territoires=["DEP:93"], fichiers="aucun", rapports=False)
    fichier = sortie / "donnees" / "2024-01" / "transition" / "DEP_93.json"
    assert json.loads(fichier.read_text("utf-8")) == T.tableau(base, "DEP:93")

    with servir_dossier(sortie) as url:
        page.goto(f"{url}/index.html?territoire=DEP:93")
        page.locator("#bloc-transition[data-territoire='DEP:93']").wait_for(state="visible",
                                                                              timeout=20000)
        e = T.tableau(base, "DEP:93")["lignes"][0]["etablissements"]
        assert _lire_tableau(page)["Ensemble"] == [str(e[z]) for z in T.ZONES_REPONSE]


def test_commande_transition(base):
    from typer.testing import CliRunner

    from essqpv.cli import app
    r = CliRunner().invoke(app, ["transition", "DEP:93", "--base", str(base), "--format",
                                 "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == T.tableau(base, "DEP:93")
    texte = CliRunner().invoke(app, ["transition", "COM:93066", "--base", str(base),
                                     "--detail", "secteur"])
    assert texte.exit_code == 0 and "Ce que change la nouvelle carte — Saint-Denis" in \
        texte.output and "Commerce" in texte.output
    from essqpv.errors import ParametreInvalide  # (exit code 2 through essqpv's main)
    qpv = CliRunner().invoke(app, ["transition", "QPV:QN09365N", "--base", str(base)])
    assert isinstance(qpv.exception, ParametreInvalide) and "pas pour" in str(qpv.exception)
    taille = CliRunner().invoke(app, ["transition", "--detail", "taille", "--base", str(base)])
    assert isinstance(taille.exception, ParametreInvalide)
