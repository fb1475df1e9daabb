"""The dashboard in a real browser (Playwright driving Debian's Chromium), offline.

The same journeys run against the live application (uvicorn in a thread) and against the
static site written by ``essqpv publier`` (served by http.server in a thread): open the
dashboard, search a territory by name with the keyboard, see the tiles change, click a QPV
on the map, download the Excel file.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import openpyxl
import pytest

from tests._serveur import exiger_navigateur, servir, servir_dossier

pytestmark = pytest.mark.browser
exiger_navigateur()


@pytest.fixture(scope="module")
def url_api(base_demo):
    from essqpv.web import creer_application
    with servir(creer_application(base_demo)) as url:
        yield url


@pytest.fixture(scope="module")
def site_statique(base_demo, tmp_path_factory):
    """Saint-Denis published as a static site (exports for every territory, no PDF)."""
    from essqpv.web import publier
    sortie = tmp_path_factory.mktemp("site-navigateur") / "site"
    publier(base_demo, sortie, territoires=["COM:93066"], fichiers="tous", rapports=False)
    return sortie


@pytest.fixture(scope="module")
def url_statique(site_statique):
    with servir_dossier(site_statique) as url:
        yield url


def _suivre_erreurs(page) -> list[str]:
    erreurs: list[str] = []
    page.on("pageerror", lambda e: erreurs.append(f"exception : {e}"))
    page.on("console", lambda m: erreurs.append(m.text) if m.type == "error" else None)
    return erreurs


def _valeur_tuile(page, cle: str) -> str:
    return page.locator(f'.tuile[data-cle="{cle}"] .valeur').get_attribute("data-valeur")


def _cliquer_qpv(page, code: str) -> None:
    """Click inside the QPV's polygon, at a point where it is the element on top."""
    chemin = page.locator(f"path.qpv-{code}")
    chemin.wait_for(state="attached")
    page.locator("#carte").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('.leaflet-marker-pane').children"
                           ".length > 0 && !document.querySelector('.leaflet-zoom-anim')")
    # The establishment markers (clusters) of a QPV sit on top of its polygon: let the
    # pointer go through them while the QPV is clicked, as a user clicking beside them would.
    panneaux = ".leaflet-marker-pane, .leaflet-shadow-pane, .leaflet-tooltip-pane"
    page.evaluate("""(sel) => document.querySelectorAll(sel).forEach(
        e => e.style.pointerEvents = 'none')""", panneaux)
    # A point of the polygon that is on top and inside the window; polled, because the map
    # may still be panning to the territory (then the polygon is partly off the window).
    trouve = page.wait_for_function("""(code) => {
        const p = document.querySelector('path.qpv-' + code);
        if (!p) return null;
        const r = p.getBoundingClientRect();
        const g = Math.max(r.left, 0), h = Math.max(r.top, 0);
        const d = Math.min(r.right, window.innerWidth), b = Math.min(r.bottom, window.innerHeight);
        if (d <= g || b <= h) return null;
        for (let i = 1; i < 48; i++) for (let j = 1; j < 48; j++) {
            const x = g + (d - g) * i / 48, y = h + (b - h) * j / 48;
            if (document.elementFromPoint(x, y) === p) return [x, y];
        }
        return null; }""", arg=code, timeout=15000)
    point = trouve.json_value()
    assert point, f"aucun point cliquable dans le contour de {code}"
    page.mouse.click(point[0], point[1])
    page.evaluate("""(sel) => document.querySelectorAll(sel).forEach(
        e => e.style.pointerEvents = '')""", panneaux)


def _parcours(page, base_url: str, requete: str, libelle: str, code: str, attendu: dict,
              france: dict, qpv: str, qpv_employeurs: int, tmp_path: Path) -> None:
    erreurs = _suivre_erreurs(page)
    page.goto(base_url)
    page.locator("#titre-territoire").wait_for()
    page.wait_for_function("() => document.querySelectorAll('.tuile').length > 0")
    assert page.locator("#titre-territoire").inner_text() == "France entière"
    assert _valeur_tuile(page, "etablissements_employeurs") == str(
        france["chiffres_cles"]["etablissements_employeurs"])
    assert "ne pas citer" in page.locator("#bandeau-synthetique").inner_text()
    assert "Licence Ouverte" in page.locator("#pied").inner_text()

    # search by name, with the keyboard only
    champ = page.get_by_role("combobox", name="Rechercher un territoire (nom ou code)")
    champ.focus()
    page.keyboard.type(requete, delay=20)
    option = page.get_by_role("option", name=libelle).first
    option.wait_for()
    assert page.locator("#recherche-territoire").get_attribute("aria-expanded") == "true"
    index = page.locator("#suggestions li[data-code]").evaluate_all(
        f"(els) => els.findIndex(e => e.dataset.code === {json.dumps(code)})")
    assert index >= 0
    for _ in range(index + 1):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(t) => document.querySelector('#titre-territoire').textContent === t", arg=libelle)
    page.wait_for_function(
        "(v) => document.querySelector('.tuile[data-cle=\"etablissements_employeurs\"] "
        ".valeur').dataset.valeur === v",
        arg=str(attendu["chiffres_cles"]["etablissements_employeurs"]))
    assert (attendu["chiffres_cles"]["etablissements_employeurs"]
            != france["chiffres_cles"]["etablissements_employeurs"])  # the tiles did change
    comparaison = page.locator('.tuile[data-cle="etablissements_employeurs"] .comparaison')
    assert comparaison.inner_text().startswith("France")
    assert code.replace(":", "%3A") in page.url or code in page.url
    lignes = page.locator("#table-secteurs tbody tr")
    assert lignes.count() == len(attendu["tableau_secteurs"])

    # click a QPV on the map: its figures appear
    _cliquer_qpv(page, qpv)
    fiche = page.locator("#fiche-quartier")
    fiche.wait_for(state="visible")
    assert qpv in fiche.locator("h3").inner_text()
    assert fiche.locator(".qpv-employeurs").inner_text() == str(qpv_employeurs)

    # download the Excel file
    with page.expect_download() as telechargement:
        page.locator("#lien-excel").click()
    fichier = tmp_path / telechargement.value.suggested_filename
    telechargement.value.save_as(fichier)
    assert fichier.suffix == ".xlsx"
    classeur = openpyxl.load_workbook(io.BytesIO(fichier.read_bytes()), read_only=True)
    assert classeur.sheetnames
    assert erreurs == []


def _qpv_le_plus_fourni(quartiers: list[dict]) -> dict:
    return max(quartiers, key=lambda r: (r["etablissements_employeurs"], r["code_qp"]))


def test_tableau_de_bord_api(page, url_api, base_demo, tmp_path):
    from essqpv.indicators import indicateurs, indicateurs_qpv
    q = _qpv_le_plus_fourni(indicateurs_qpv(base_demo, territoire="DEP:93"))
    _parcours(page, url_api, "Seine-Saint", "Seine-Saint-Denis", "DEP:93",
              indicateurs(base_demo, "DEP:93"), indicateurs(base_demo, "FR"),
              q["code_qp"], q["etablissements_employeurs"], tmp_path)


def test_tableau_de_bord_statique(page, url_statique, base_demo, tmp_path):
    from essqpv.indicators import indicateurs, indicateurs_qpv
    q = _qpv_le_plus_fourni(indicateurs_qpv(base_demo, territoire="COM:93066"))
    _parcours(page, url_statique, "Saint-Denis", "Saint-Denis", "COM:93066",
              indicateurs(base_demo, "COM:93066"), indicateurs(base_demo, "FR"),
              q["code_qp"], q["etablissements_employeurs"], tmp_path)


def test_navigation_au_clavier_et_qpv_depuis_la_liste(page, url_api, base_demo):
    """Without a mouse: skip link, then a QPV reached from the accessible list."""
    from essqpv.indicators import indicateurs_qpv
    erreurs = _suivre_erreurs(page)
    page.goto(f"{url_api}/?territoire=DEP:93")
    page.wait_for_function("() => document.querySelectorAll("
                           "'#table-quartiers tbody tr[data-qpv]').length > 0")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Aller au contenu"
    q = _qpv_le_plus_fourni(indicateurs_qpv(base_demo, territoire="DEP:93"))
    bouton = page.locator(f'#table-quartiers tr[data-qpv="{q["code_qp"]}"] button')
    bouton.focus()
    page.keyboard.press("Enter")
    fiche = page.locator("#fiche-quartier")
    fiche.wait_for(state="visible")
    assert page.evaluate("() => document.activeElement.id") == "fiche-quartier"
    lien = fiche.get_by_role("link", name="Afficher tous les indicateurs de ce quartier")
    lien.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(t) => document.querySelector('#titre-territoire').textContent === t",
        arg=q["nom_qp"])
    assert page.locator("#tuiles .tuile").count() >= 5
    assert erreurs == []


def test_page_statique_hors_serveur_de_donnees(site_statique):
    """The published folder is self-contained: no absolute URL to a server or a CDN."""
    page = (site_statique / "index.html").read_text()
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert '"/api/' not in page
    assert shutil.disk_usage(site_statique).free > 0
