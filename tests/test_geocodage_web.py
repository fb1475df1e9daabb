"""The address lookup of the API and the dashboard, with the REAL addok and Redis, and the
dashboard in a real browser (Playwright driving Debian's Chromium)."""
from __future__ import annotations

import pytest

from essqpv import lookup
from essqpv.geocodage import installer
from tests._serveur import exiger_navigateur, servir
from tests.test_geocodage import _numero, _serveur


@pytest.fixture(scope="module")
def geocodeur_installe(tmp_path_factory):
    srv = _serveur()
    dossier = tmp_path_factory.mktemp("geocodeur-web")
    installer("93,94", dossier, url=srv.modele)
    srv.shutdown()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESSQPV_GEOCODEUR", str(dossier))
        yield dossier


@pytest.fixture(scope="module")
def client(base_demo, geocodeur_installe):
    from fastapi.testclient import TestClient

    from essqpv.web import creer_application
    with TestClient(creer_application(base_demo)) as c:
        yield c


def test_api_adresses(client):
    e = client.get("/api/adresses/etat").json()
    assert e["installe"] and [d["code"] for d in e["departements"]] == ["93", "94"]
    s = client.get("/api/adresses/suggestions", params={"q": "4 rue de la pa"}).json()
    assert s["suggestions"] and "Rue de la Paix" in s["suggestions"][0]["label"]
    r = client.get("/api/adresses/localiser",
                   params={"adresse": "4 rue de la Paix 93200 Saint-Denis"})
    assert r.status_code == 200
    r = r.json()
    point = _numero("93", "93066_1000")
    attendu = lookup.localiser_points(point["lon"], point["lat"]).to_dicts()[0]
    assert r["statut"] == "localise" and r["dans_qpv"] is True
    assert r["reponse"].startswith(f"dans le QPV {attendu['qpv_code']}")
    assert "Base Adresse Nationale" in r["source_adresses"]
    assert "attestation" in r["avertissement"]
    r = client.get("/api/adresses/localiser",
                   params={"adresse": "4 Rue de la Fontaine 94200 Ivry-sur-Seine"}).json()
    assert r["reponse"].startswith("hors QPV") and r["dans_qpv"] is False
    r = client.get("/api/adresses/localiser",
                   params={"adresse": "rue de la Paix 93200 Saint-Denis"}).json()
    assert r["statut"] == "a_verifier" and r["dans_qpv"] is None and r["reponse"] == ""
    r = client.get("/api/adresses/localiser",
                   params={"adresse": "1 rue de Rivoli 75001 Paris"}).json()
    assert r["statut"] == "departement_non_installe"
    assert client.get("/api/adresses/suggestions", params={"q": "ab"}).status_code in (400, 422)
    assert "/api/adresses/localiser" in client.get("/openapi.json").json()["paths"]


def test_api_fichier_d_adresses_et_ses_sources(client):
    # a CSV sent alone: its source and licence come back in a header (RFC 8187 encoding)
    from urllib.parse import unquote
    csv_ = "nom;adresse\nA;4 rue de la Paix 93200 Saint-Denis\nB;\n".encode()
    r = client.post("/api/localiser", files={"fichier": ("adh.csv", csv_)})
    assert r.status_code == 200, r.text
    lignes = r.text.splitlines()
    assert len(lignes) == 3 and lignes[2].startswith("B;;") and "adresse_vide" in lignes[2]
    entete = r.headers["x-essqpv-sources"]
    assert entete.startswith("UTF-8''")
    texte = unquote(entete.removeprefix("UTF-8''"))
    assert "Adresses : Adresses : Base Adresse Nationale" not in texte
    assert "Adresses : Base Adresse Nationale (BAN)" in texte
    assert "Licence Ouverte" in texte and "pas une attestation" in texte
    assert "Fichier complété : adh.csv" in texte


def _redis_du_geocodeur(dossier) -> list[int]:
    """Pids of the Redis servers this test process started on ``dossier``'s index."""
    import os
    from pathlib import Path
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            nom = (p / "cmdline").read_bytes().split(b" ")[0]
            parent = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            dossier_courant = os.readlink(p / "cwd")  # Redis works in its --dir
        except (OSError, ValueError, IndexError):
            continue
        if (parent == os.getpid() and os.path.basename(nom).startswith(b"redis-server")
                and dossier_courant == str((dossier / "index").resolve())):
            pids.append(int(p.name))
    return pids


def test_api_redis_tue_puis_relance(client, geocodeur_installe):
    # the geocoder's Redis killed between two requests: the next one starts a new server
    import os
    import signal
    assert client.get("/api/adresses/suggestions", params={"q": "4 rue de la pa"}).status_code \
        == 200
    pids = _redis_du_geocodeur(geocodeur_installe)
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    r = client.get("/api/adresses/localiser", params={"adresse": "4 rue de la pais 93200 "
                                                                "Saint-Denis"})
    assert r.status_code == 200 and r.json()["methode_ban"] == "addok"
    assert r.json()["statut"] == "localise"
    os.kill(_redis_du_geocodeur(geocodeur_installe)[0], signal.SIGKILL)
    s = client.get("/api/adresses/suggestions", params={"q": "4 rue de la pa"})
    assert s.status_code == 200 and s.json()["suggestions"]
    assert _redis_du_geocodeur(geocodeur_installe) != pids


def test_api_sans_geocodeur_503(base_demo, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from essqpv.web import creer_application
    monkeypatch.setenv("ESSQPV_GEOCODEUR", str(tmp_path / "aucun"))
    with TestClient(creer_application(base_demo)) as c:
        assert c.get("/api/adresses/etat").json()["installe"] is False
        for url, p in (("/api/adresses/localiser", {"adresse": "4 rue de la Paix 93200"}),
                       ("/api/adresses/suggestions", {"q": "4 rue de la pa"})):
            r = c.get(url, params=p, headers={"Accept": "application/json"})
            assert r.status_code == 503, r.text
            assert "Aucun géocodeur d'adresses installé" in r.json()["erreur"]
            assert "essqpv geocodeur installer --departements" in r.json()["erreur"]


@pytest.fixture(scope="module")
def url_adresses(base_demo, geocodeur_installe):
    from essqpv.web import creer_application
    with servir(creer_application(base_demo)) as url:
        yield url


@pytest.mark.browser
def test_champ_adresse_dans_le_navigateur(page, url_adresses):
    exiger_navigateur()
    erreurs = []
    page.on("pageerror", lambda e: erreurs.append(f"exception : {e}"))
    page.goto(url_adresses)
    bloc = page.locator("#bloc-adresse")
    bloc.wait_for(state="visible")
    champ = page.locator("#champ-adresse")
    champ.click()
    champ.press_sequentially("4 rue de la pa", delay=30)
    # the list of the whole typed text, not of a prefix answered while typing (under load the
    # keys can outrun the 150 ms pause and a prefix's list shows first)
    page.wait_for_function("() => { const l = document.querySelector('#suggestions-adresse');"
                           " return l.dataset.requete === '4 rue de la pa'"
                           " && l.querySelectorAll('li').length > 0; }")
    libelles = page.locator("#suggestions-adresse li").all_inner_texts()
    assert any(x == "4 Rue de la Paix 93200 Saint-Denis" for x in libelles), libelles
    # keyboard: down to the Saint-Denis suggestion, Enter takes it, Enter again searches
    rang = libelles.index("4 Rue de la Paix 93200 Saint-Denis")
    for _ in range(rang + 1):
        champ.press("ArrowDown")
    champ.press("Enter")
    page.wait_for_function("() => document.querySelector('#reponse-adresse').dataset.statut")
    texte = page.locator("#reponse-adresse").inner_text()
    point = _numero("93", "93066_1000")
    code = lookup.localiser_points(point["lon"], point["lat"]).to_dicts()[0]["qpv_code"]
    assert "Adresse trouvée : 4 Rue de la Paix 93200 Saint-Denis" in texte
    assert f"Dans le QPV {code}" in texte
    # the map is centred on the point, with a marker
    assert page.locator("#carte").get_attribute("data-adresse") == \
        f"{point['lon']},{point['lat']}"
    centre = page.evaluate("() => { const c = window.essqpvCarte().getCenter(); "
                           "return [c.lng, c.lat]; }")
    assert abs(centre[0] - point["lon"]) < 1e-4 and abs(centre[1] - point["lat"]) < 1e-4
    assert "Base Adresse Nationale" in page.locator("#source-adresse").inner_text()
    # a street without number: to check, never declared inside
    champ.fill("rue de la Paix 93200 Saint-Denis")
    champ.press("Escape")
    page.locator("#form-adresse button").click()
    page.wait_for_function("() => document.querySelector('#reponse-adresse').dataset.statut "
                           "=== 'a_verifier'")
    assert "Pas de réponse QPV" in page.locator("#reponse-adresse").inner_text()
    assert "Dans le QPV" not in page.locator("#reponse-adresse").inner_text()
    assert not erreurs, erreurs
