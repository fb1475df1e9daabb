"""The web API (FastAPI TestClient) over the real demo base: every endpoint, every error path.

The API answers are compared with the library functions and with the CLI (``essqpv
indicateurs --format json``) for the same question: they must be the same JSON.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import warnings
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pytest
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from essqpv.base import lister_etablissements, millesimes
from essqpv.cli import app as cli_app
from essqpv.config import LICENCE_DONNEES, MARQUE_SYNTHETIQUE
from essqpv.indicators import indicateurs, indicateurs_qpv
from essqpv.web import creer_application, publier
from essqpv.web._donnees import Donnees, nom_fichier
from essqpv.web.app import ENTETES_SECURITE, TAILLE_CORPS_MAX

DEP = "DEP:93"


@pytest.fixture(scope="module")
def client(base_demo) -> TestClient:
    return TestClient(creer_application(base_demo))


@pytest.fixture(scope="module")
def un_qpv(base_demo) -> str:
    """The QPV of Seine-Saint-Denis with the most ESS employers in the demo base."""
    lignes = indicateurs_qpv(base_demo, territoire=DEP)
    return max(lignes, key=lambda r: (r["etablissements_employeurs"], r["code_qp"]))["code_qp"]


@pytest.fixture(scope="module")
def tampon(base_demo) -> str:
    return f"{millesimes(base_demo)[0]['tampon_m']}m"


def _cli_json(base: Path, *args: str) -> dict:
    r = CliRunner().invoke(cli_app, ["indicateurs", "--base", str(base), "--format", "json",
                                     *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _erreur(r, statut: int) -> str:
    assert r.status_code == statut, r.text
    assert r.headers["content-type"].startswith("application/json")
    corps = r.json()
    assert list(corps) == ["erreur"]
    assert len(corps["erreur"]) > 10
    return corps["erreur"]


# ---------------------------------------------------------------- indicators: API = CLI = library
@pytest.mark.parametrize("territoire", ["FR", DEP, "REG:11", "COM:93066"])
def test_indicateurs_api_egal_cli_et_bibliotheque(client, base_demo, territoire):
    api = client.get(f"/api/indicateurs/{territoire}").json()
    cli = _cli_json(base_demo, "--territoire", territoire)
    assert api == cli
    assert api == json.loads(json.dumps(indicateurs(base_demo, territoire), default=str))
    assert api["territoire"]["code"] == territoire
    assert api["perimetre"] == "strict"


def test_indicateurs_perimetre_tampon_et_millesime(client, base_demo, tampon):
    m = millesimes(base_demo)[0]["millesime"]
    api = client.get(f"/api/indicateurs/{DEP}", params={"perimetre": tampon,
                                                       "millesime": m}).json()
    assert api == _cli_json(base_demo, "--territoire", DEP, "--perimetre", tampon,
                            "--millesime", m)
    assert api["perimetre"] == tampon
    strict = client.get(f"/api/indicateurs/{DEP}").json()
    assert (api["chiffres_cles"]["etablissements_employeurs"]
            >= strict["chiffres_cles"]["etablissements_employeurs"])


def test_indicateurs_par_nom(client):
    r = client.get("/api/indicateurs/Seine-Saint-Denis")
    assert r.status_code == 200
    assert r.json()["territoire"] == {"code": DEP, "niveau": "departement",
                                      "libelle": "Seine-Saint-Denis"}


def test_qpv_egal_cli(client, base_demo, un_qpv):
    api = client.get(f"/api/qpv/{un_qpv}").json()
    assert api == _cli_json(base_demo, "--territoire", f"QPV:{un_qpv}")
    assert api["territoire"]["niveau"] == "qpv"
    assert client.get(f"/api/qpv/QPV:{un_qpv}").json() == api


def test_reponses_en_cache_identiques(client, base_demo):
    a = client.get(f"/api/indicateurs/{DEP}")
    b = client.get(f"/api/indicateurs/{DEP}")
    assert a.content == b.content
    d = Donnees(base_demo)
    premier = d.indicateurs_octets(DEP)
    assert d.indicateurs_octets(DEP) is premier  # served from the cache


def test_reponses_rechargees_quand_la_base_change(base_demo, tmp_path):
    copie = tmp_path / "copie.duckdb"
    copie.write_bytes(base_demo.read_bytes())
    d = Donnees(copie)
    avant = d.publication()
    assert d.indicateurs_octets("FR") is avant.octets("indicateurs", "FR", "strict",
                                                      d.millesime(None))
    import os
    st = copie.stat()
    os.utime(copie, (st.st_atime, st.st_mtime + 10))  # rewritten: new mtime
    d.verifier_fraicheur()
    assert d.publication() is not avant  # loaded again: a server never mixes two builds


def test_reponses_servies_telles_que_stockees(client, base_demo, un_qpv):
    """The API sends the bytes stored at build time (no computation, no re-serialisation),
    by code or by name, and the same stored QPV listing."""
    con = duckdb.connect(str(base_demo), read_only=True)
    try:
        stocke = dict(((g, t, p), j) for g, t, p, j in con.execute(
            "SELECT genre, territoire, perimetre, json FROM publication_reponses WHERE "
            "territoire IN ('FR', 'DEP:93', 'COM:93066', ?)", [f"QPV:{un_qpv}"]).fetchall())
    finally:
        con.close()
    for url, cle in ((f"/api/indicateurs/{DEP}", ("indicateurs", DEP, "strict")),
                     ("/api/indicateurs/Seine-Saint-Denis", ("indicateurs", DEP, "strict")),
                     ("/api/indicateurs/FR?perimetre=300m", ("indicateurs", "FR", "300m")),
                     ("/api/quartiers?territoire=COM:93066",
                      ("quartiers", "COM:93066", "strict"))):
        r = client.get(url, headers={"accept-encoding": "identity"})
        assert r.status_code == 200 and r.content == stocke[cle].encode(), url
    r = client.get(f"/api/qpv/{un_qpv}", headers={"accept-encoding": "identity"})
    assert r.content == stocke[("indicateurs", f"QPV:{un_qpv}", "strict")].encode()


def test_territoire_hors_du_plan(client, base_demo):
    """A commune without QPV is a real territory, but the plan does not publish it: a 404
    that says which territories exist, never figures computed on the fly."""
    publies = {t["code"] for t in client.get("/api/territoires/publies").json()}
    assert {"FR", "METRO", "DROM", DEP, "REG:11", "COM:93066"} <= publies
    hors = next(c for c in ("COM:01001", "COM:01002", "COM:29001") if c not in publies)
    for url in (f"/api/indicateurs/{hors}", f"/api/quartiers?territoire={hors}",
                f"/telecharger/xlsx/{hors}"):
        message = _erreur(client.get(url), 404)
        assert "hors du plan de publication" in message and "/api/territoires/publies" in message
    page = client.get("/", params={"territoire": hors})
    assert page.status_code == 404 and "hors du plan" in page.text
    # the search box proposes only what the plan publishes
    trouves = client.get("/api/territoires", params={"q": "L'Abergement", "limite": 10}).json()
    assert all(t["code"] in publies for t in trouves)


def test_gzip(client):
    r = client.get("/api/indicateurs/FR", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    brut = client.get("/api/indicateurs/FR", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in brut.headers
    assert r.json() == brut.json()
    assert gzip.decompress(gzip.compress(brut.content)) == brut.content


# ---------------------------------------------------------------- territories
def test_territoires_autocompletion(client):
    r = client.get("/api/territoires", params={"q": "Seine-Saint"})
    assert r.status_code == 200
    codes = [t["code"] for t in r.json()]
    assert codes[0] == DEP
    assert set(r.json()[0]) == {"code", "niveau", "libelle"}
    premiers = [t["code"] for t in client.get("/api/territoires", params={"q": "93"}).json()]
    assert premiers[:2] == ["REG:93", DEP]  # région 93 (Provence-Alpes-Côte d'Azur) first
    assert len(client.get("/api/territoires", params={"q": "sa", "limite": 3}).json()) == 3
    assert client.get("/api/territoires", params={"q": "zzzzqqq"}).json() == []


@pytest.mark.parametrize("params, mot", [({}, "manquant"), ({"q": ""}, "longueur"),
                                         ({"q": "a", "limite": 0}, "bornes"),
                                         ({"q": "a", "limite": 51}, "bornes"),
                                         ({"q": "a", "limite": "dix"}, "entier"),
                                         ({"q": "x" * 81}, "longueur")])
def test_territoires_parametres_invalides(client, params, mot):
    assert mot in _erreur(client.get("/api/territoires", params=params), 400)


# ---------------------------------------------------------------- QPV list, establishments
def test_quartiers(client, base_demo):
    r = client.get("/api/quartiers", params={"territoire": DEP}).json()
    assert r["territoire"]["code"] == DEP
    assert r["quartiers"] == json.loads(json.dumps(indicateurs_qpv(base_demo, territoire=DEP)))
    total = sum(q["etablissements_employeurs"] for q in r["quartiers"])
    ind = client.get(f"/api/indicateurs/{DEP}").json()
    assert total == ind["chiffres_cles"]["etablissements_employeurs"]


def test_etablissements_pagination(client, base_demo):
    attendu = lister_etablissements(base_demo, DEP, en_qpv=True, page=2, taille=7)
    r = client.get("/api/etablissements", params={"territoire": DEP, "en_qpv": "true",
                                                  "page": 2, "taille": 7})
    assert r.status_code == 200
    corps = r.json()
    assert corps == json.loads(json.dumps(attendu, default=str))
    assert corps["page"] == 2 and corps["taille"] == 7 and len(corps["etablissements"]) == 7
    # public Sirene attributes only: never a headcount of one establishment
    interdits = {"effectif", "effectif_estime", "femmes", "cdi", "contrats_aides",
                 "temps_complet"}
    for e in corps["etablissements"]:
        assert not interdits & set(e)
        assert e["qpv"] is not None
    tous = client.get("/api/etablissements", params={"territoire": DEP}).json()
    assert tous["total"] > corps["total"]


@pytest.mark.parametrize("params, statut", [
    ({"territoire": DEP, "taille": 1001}, 400), ({"territoire": DEP, "taille": 0}, 400),
    ({"territoire": DEP, "page": 0}, 400), ({"territoire": DEP, "page": "x"}, 400),
    ({"territoire": DEP, "en_qpv": "peut-etre"}, 400), ({}, 400),
    ({"territoire": "DEP:999"}, 404), ({"territoire": DEP, "perimetre": "loin"}, 400)])
def test_etablissements_erreurs(client, params, statut):
    _erreur(client.get("/api/etablissements", params=params), statut)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("url, statut, extrait", [
    ("/api/indicateurs/DEP:999", 404, "inconnu"),
    ("/api/indicateurs/XYZ:1", 404, "inconnu"),
    ("/api/indicateurs/Nulle-Part-Sur-Terre", 404, "inconnu"),
    ("/api/indicateurs/DEP:93?perimetre=loin", 400, "Périmètre"),
    ("/api/indicateurs/DEP:93?perimetre=999m", 400, ""),
    ("/api/indicateurs/DEP:93?millesime=2024", 400, "Millésime"),
    ("/api/indicateurs/DEP:93?millesime=1999-01", 400, "Millésime"),
    ("/api/indicateurs/DEP:93%3Cscript%3E", 400, "Territoire invalide"),
    ("/api/qpv/QP%27%3B--", 400, "Code de quartier"),
    ("/api/qpv/QP999999", 404, ""),
    ("/api/quartiers?territoire=DEP:999", 404, ""),
    ("/api/carte/communes", 400, "Découpage"),
    ("/api/nulle-part", 404, "introuvable"),
    ("/telecharger/pdf/DEP:93", 400, "Format"),
    ("/telecharger/xlsx/DEP:999", 404, ""),
    ("/telecharger/rapport/DEP:93?perimetre=loin", 400, ""),
    ("/api/localiser", 400, "manquants"),
    ("/api/localiser?lon=200&lat=48", 400, "lon"),
    ("/api/localiser?siret=123", 400, "siret"),
    ("/api/localiser?siret=12345678901234&lon=2&lat=48", 400, "pas les deux"),
])
def test_erreurs_en_json_francais(client, url, statut, extrait):
    message = _erreur(client.get(url), statut)
    assert extrait in message


def test_methode_non_autorisee(client):
    assert "Méthode" in _erreur(client.post("/api/indicateurs/FR"), 405)


def test_corps_trop_gros(client):
    r = client.post("/api/localiser", content=b"x" * (TAILLE_CORPS_MAX + 1),
                    headers={"content-type": "text/csv"})
    assert "volumineux" in _erreur(r, 413)


def test_jamais_500_sur_des_entrees_hostiles(client):
    for texte in ["'; DROP TABLE etablissements; --", "QPV:' OR 1=1", "%00", "DEP:" + "9" * 60,
                  "COM:..%2F..%2Fetc", "REG:", "EPCI:abc"]:
        r = client.get(f"/api/indicateurs/{texte}")
        assert r.status_code in (400, 404), (texte, r.status_code)
        r = client.get("/api/etablissements", params={"territoire": texte})
        assert r.status_code in (400, 404), (texte, r.status_code)


# ---------------------------------------------------------------- pages, security
def test_page_html_pied_et_bandeau(client, base_demo):
    r = client.get("/", params={"territoire": DEP})
    assert r.status_code == 200
    html = r.text
    assert '<html lang="fr">' in html
    assert "<h1 id=\"titre-territoire\">Seine-Saint-Denis</h1>" in html
    meta = millesimes(base_demo)[0]
    assert meta["synthetique"] is True
    assert MARQUE_SYNTHETIQUE in html  # the synthetic-data banner
    assert 'class="bandeau-synthetique"' in html
    assert LICENCE_DONNEES in html and meta["millesime"] in html and "Sirene" in html
    # the JSON twin of the page
    lien = re.search(r'<link rel="alternate" type="application/json" href="([^"]+)"', html)
    assert lien and client.get(lien.group(1).replace("&amp;", "&")).json()["territoire"][
        "code"] == DEP
    # no inline script nor style: the CSP forbids them
    for balise in re.findall(r"<script[^>]*>", html):
        assert "src=" in balise
    assert not re.search(r"<script[^>]*>[^<]", html)
    assert " style=" not in html and "<style" not in html
    for champ in ("recherche-territoire", "choix-perimetre", "choix-millesime",
                  "choix-decoupage", "seulement-qpv"):
        assert f'for="{champ}"' in html  # every control has a label


def test_page_territoire_inconnu(client):
    r = client.get("/", params={"territoire": "DEP:999"})
    assert r.status_code == 404
    assert "text/html" in r.headers["content-type"]
    assert "Code de territoire inconnu" in r.text


@pytest.mark.parametrize("url", ["/", "/api/indicateurs/FR", "/static/app.js",
                                 "/api/indicateurs/DEP:999", "/openapi.json"])
def test_entetes_de_securite(client, url):
    r = client.get(url)
    for cle, valeur in ENTETES_SECURITE.items():
        assert r.headers[cle] == valeur
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_openapi_et_pas_de_cdn(client):
    spec = client.get("/openapi.json").json()
    chemins = set(spec["paths"])
    for attendu in ("/api/territoires", "/api/territoires/publies",
                    "/api/indicateurs/{territoire}", "/api/qpv/{code}",
                    "/api/etablissements", "/api/quartiers", "/api/carte/{niveau}",
                    "/api/carte/qpv", "/api/localiser", "/telecharger/{format}/{territoire}",
                    "/telecharger/rapport/{territoire}", "/api/contexte"):
        assert attendu in chemins
    assert "maximum" in json.dumps(spec["paths"]["/api/etablissements"])
    assert client.get("/docs").status_code == 404  # Swagger UI would load a CDN
    page = client.get("/").text
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page


def test_actifs_vendus_avec_licence():
    statique = Path(__import__("essqpv.web", fromlist=["x"]).__file__).parent / "static"
    for f in ("vendor/leaflet/leaflet.js", "vendor/leaflet/LICENSE",
              "vendor/leaflet.markercluster/leaflet.markercluster.js",
              "vendor/leaflet.markercluster/LICENSE", "vendor/README.md"):
        assert (statique / f).is_file(), f
    assert "1.9.4" in (statique / "vendor/README.md").read_text()
    assert "BSD" in (statique / "vendor/leaflet/LICENSE").read_text() or "Redistribution" in (
        statique / "vendor/leaflet/LICENSE").read_text()


def test_base_ouverte_en_lecture_seule(base_demo, client):
    avant = hashlib.sha256(base_demo.read_bytes()).hexdigest()
    for url in ("/", "/api/indicateurs/REG:84", "/api/etablissements?territoire=REG:84",
                "/api/carte/qpv"):
        assert client.get(url).status_code == 200
    assert hashlib.sha256(base_demo.read_bytes()).hexdigest() == avant
    # another read-only reader can open the base while the app serves it
    con = duckdb.connect(str(base_demo), read_only=True)
    con.close()


# ---------------------------------------------------------------- map data
def test_contours(client, base_demo):
    regions = client.get("/api/carte/regions").json()
    assert regions["type"] == "FeatureCollection"
    assert len(regions["features"]) == 18
    assert {f["properties"]["code"] for f in regions["features"]} >= {"11", "93", "01", "04"}
    deps = client.get("/api/carte/departements").json()
    assert len(deps["features"]) == 101
    qpv = client.get("/api/carte/qpv").json()
    con = duckdb.connect(str(base_demo), read_only=True)
    n = con.execute("SELECT count(*) FROM qpv WHERE geometrie IS NOT NULL").fetchone()[0]
    con.close()
    assert len(qpv["features"]) == n
    texte = client.get("/api/carte/qpv", headers={"accept-encoding": "identity"}).text
    assert not re.search(r"\d\.\d{5,}", texte)  # rounded coordinates
    assert len(texte) < 1_500_000


def test_contexte(client, base_demo):
    ctx = client.get("/api/contexte").json()
    meta = millesimes(base_demo)[0]
    assert ctx["millesime"] == meta["millesime"]
    assert ctx["perimetres"] == ["strict", f"{meta['tampon_m']}m"]
    assert ctx["marque_synthetique"] == MARQUE_SYNTHETIQUE
    assert ctx["licence"] == LICENCE_DONNEES


# ---------------------------------------------------------------- lookup
def test_localiser_point_et_siret(client, base_demo):
    con = duckdb.connect(str(base_demo), read_only=True)
    siret, lon, lat, qpv = con.execute(
        "SELECT siret, lon, lat, qpv FROM etablissements WHERE qpv IS NOT NULL "
        "ORDER BY siret LIMIT 1").fetchone()
    con.close()
    r = client.get("/api/localiser", params={"lon": lon, "lat": lat}).json()
    assert r["qpv_code"] == qpv and r["dans_qpv"] is True
    assert r["avertissements"] == [MARQUE_SYNTHETIQUE]
    r = client.get("/api/localiser", params={"siret": siret}).json()
    assert r["qpv_code"] == qpv and r["trouve"] is True
    loin = client.get("/api/localiser", params={"lon": 2.0, "lat": 47.0}).json()
    assert loin["qpv_code"] is None and loin["dans_qpv"] is False


def test_localiser_fichier(client, base_demo):
    con = duckdb.connect(str(base_demo), read_only=True)
    lon, lat, qpv = con.execute("SELECT lon, lat, qpv FROM etablissements WHERE qpv IS NOT "
                                "NULL ORDER BY siret LIMIT 1").fetchone()
    con.close()
    csv = f"id;longitude;latitude\n1;{lon};{lat}\n2;2.0;47.0\n".encode()
    r = client.post("/api/localiser", files={"fichier": ("points.csv", csv, "text/csv")})
    assert r.status_code == 200
    lignes = r.text.strip().splitlines()
    assert lignes[0].startswith("id;longitude;latitude;qpv_code")
    assert lignes[1].split(";")[3] == qpv and lignes[2].split(";")[3] == ""
    r = client.post("/api/localiser", files={"fichier": ("points.exe", b"MZ", "x/y")})
    assert "format" in _erreur(r, 400)


# ---------------------------------------------------------------- downloads
def test_telechargements(client, base_demo):
    r = client.get(f"/telecharger/xlsx/{DEP}")
    assert r.status_code == 200
    assert 'filename="essqpv-DEP_93-' in r.headers["content-disposition"]
    classeur = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    assert classeur.sheetnames
    r = client.get(f"/telecharger/csv/{DEP}")
    assert r.status_code == 200
    contenu = r.content
    if contenu[:2] == b"PK":
        noms = zipfile.ZipFile(io.BytesIO(contenu)).namelist()
        assert noms and all(n.endswith(".csv") for n in noms)
    else:
        assert b";" in contenu or b"," in contenu


def test_telechargement_rapport_pdf(client):
    r = client.get("/telecharger/rapport/FR")
    assert r.status_code == 200
    assert r.content[:5] == b"%PDF-"
    assert r.headers["content-type"] == "application/pdf"


# ---------------------------------------------------------------- CLI and publication
def test_aide_des_commandes_en_francais():
    for commande in ("servir", "publier"):
        r = CliRunner().invoke(cli_app, [commande, "--help"])
        assert r.exit_code == 0
        assert "--base" in r.stdout
    assert "tableau de bord" in CliRunner().invoke(cli_app, ["servir", "--help"]).stdout
    assert "statiques" in CliRunner().invoke(cli_app, ["publier", "--help"]).stdout


def test_servir_base_absente(tmp_path):
    r = CliRunner().invoke(cli_app, ["servir", "--base", str(tmp_path / "absente.duckdb")])
    assert r.exit_code != 0
    assert "introuvable" in str(r.exception) + r.output


@pytest.fixture(scope="session")
def site_publie(base_demo, tmp_path_factory) -> Path:
    """The dashboard published for Seine-Saint-Denis (exports, no PDF: they take seconds)."""
    sortie = tmp_path_factory.mktemp("site") / "site"
    publier(base_demo, sortie, territoires=[DEP], fichiers="departements", rapports=False)
    return sortie


def test_publication_memes_json_que_l_api(site_publie, client, base_demo, un_qpv):
    m = millesimes(base_demo)[0]["millesime"]
    for code in ("FR", DEP, f"QPV:{un_qpv}"):
        fichier = site_publie / "donnees" / m / "strict" / "indicateurs" / f"{nom_fichier(code)}.json"
        assert fichier.read_bytes() == client.get(f"/api/indicateurs/{code}").content
    quartiers = json.loads((site_publie / "donnees" / m / "strict" / "quartiers" /
                            "DEP_93.json").read_text())
    assert quartiers == client.get("/api/quartiers", params={"territoire": DEP}).json()
    territoires = json.loads((site_publie / "donnees" / "territoires.json").read_text())
    codes = {t["code"] for t in territoires}
    assert {"FR", DEP, f"QPV:{un_qpv}"} <= codes
    assert any(c.startswith("EPCI:") for c in codes) and any(c.startswith("COM:93") for c in codes)
    assert not any(c.startswith("DEP:") and c != DEP for c in codes)
    page1 = json.loads((site_publie / "donnees" / m / "strict" / "etablissements" / "DEP_93" /
                        "qpv-1.json").read_text())
    api = client.get("/api/etablissements", params={"territoire": DEP, "en_qpv": "true",
                                                    "taille": 20}).json()
    assert page1["etablissements"] == api["etablissements"]
    assert page1["total"] == api["total"]
    manifeste = json.loads((site_publie / "donnees" / m / "telechargements.json").read_text())
    assert set(manifeste) == {"FR", DEP}
    assert (site_publie / manifeste[DEP]["xlsx"]).is_file()
    assert manifeste[DEP]["rapport"] == {}
    page = (site_publie / "index.html").read_text()
    assert 'data-mode="statique"' in page and MARQUE_SYNTHETIQUE in page
    assert (site_publie / "static" / "vendor" / "leaflet" / "leaflet.js").is_file()


def test_publier_parametres_invalides(base_demo, tmp_path):
    from essqpv.errors import ParametreInvalide, TerritoireInconnu
    with pytest.raises(ParametreInvalide):
        publier(base_demo, tmp_path / "s", fichiers="quelques-uns")
    with pytest.raises(TerritoireInconnu):
        publier(base_demo, tmp_path / "s", territoires=["DEP:999"], fichiers="aucun")
    assert not (tmp_path / "s").exists()
    assert not list(tmp_path.glob(".s-*"))  # the temporary folder is removed


def test_chemin_rapide_du_cache(client):
    """A URL already answered is served by the middleware: same bytes, same headers."""
    url = "/api/indicateurs/REG:32?perimetre=strict"
    premier = client.get(url, headers={"accept-encoding": "identity"})
    second = client.get(url, headers={"accept-encoding": "identity"})
    assert premier.content == second.content
    for cle in ("content-type", "content-security-policy", "x-frame-options",
                "referrer-policy", "x-content-type-options"):
        assert premier.headers[cle] == second.headers[cle]
    gz = client.get(url, headers={"accept-encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip" and gz.content == premier.content
    # an error is never cached
    assert client.get("/api/indicateurs/DEP:999").status_code == 404
    assert client.get("/api/indicateurs/DEP:999").status_code == 404


def test_dossier_des_telechargements_supprime_a_la_fin(base_demo, tmp_path):
    """The folder of the files made for downloads goes with the application and with the
    process: a server run leaves nothing behind in the temporary directory."""
    import gc
    import subprocess
    import sys
    app = creer_application(base_demo)
    dossier = Path(app.state.dossier_fichiers)
    assert dossier.is_dir()
    del app
    gc.collect()
    assert not dossier.exists()
    # a process that ends with its application alive
    code = ("import sys; from essqpv.web import creer_application; "
            "a = creer_application(sys.argv[1]); print(a.state.dossier_fichiers)")
    r = subprocess.run([sys.executable, "-c", code, str(base_demo)], capture_output=True,
                       text=True, check=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    fait = Path(r.stdout.strip().splitlines()[-1])
    assert fait.parent == tmp_path and not fait.exists()
    assert not list(tmp_path.glob("essqpv-web-*"))
