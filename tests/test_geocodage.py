"""The address geocoder with the REAL addok and Redis, on the BAN-format extract of
``tests/data/ban`` (served by a local HTTP server, as the BAN would)."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
from email.utils import formatdate
from http.server import ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from essqpv import lookup
from essqpv.errors import FichierInvalide, GeocodeurIndisponible, ParametreInvalide
from essqpv.geocodage import Geocodeur, etat, installer
from essqpv.geocodage.localisation import (
    departement_du_code_postal,
    localiser_adresse,
    localiser_adresses,
)
from tests.test_telechargement import _Gestionnaire

BAN = Path(__file__).parent / "data" / "ban"
#: 2026-11-30 00:00 UTC, the "Last-Modified" of the served files
DATE_BAN = 1795996800


class _AvecHead(_Gestionnaire):
    def do_HEAD(self):
        donnees = self.server.fichiers.get(self.path)
        self.send_response(200 if donnees is not None else 404)
        self.send_header("Content-Length", str(len(donnees or b"")))
        self.send_header("Last-Modified", formatdate(DATE_BAN, usegmt=True))
        self.end_headers()


def _serveur():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _AvecHead)
    srv.daemon_threads = True
    srv.fichiers, srv.coupures, srv.requetes = {}, {}, []
    for dep in ("93", "94"):
        srv.fichiers[f"/ban/adresses-addok-{dep}.ndjson.gz"] = (
            BAN / f"adresses-addok-{dep}.ndjson.gz").read_bytes()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.modele = f"http://127.0.0.1:{srv.server_address[1]}/ban/adresses-addok-{{departement}}" \
                 ".ndjson.gz"
    return srv


@pytest.fixture(scope="module")
def serveur():
    srv = _serveur()
    yield srv
    srv.shutdown()


@pytest.fixture(scope="module")
def installe(serveur, tmp_path_factory):
    dossier = tmp_path_factory.mktemp("geocodeur")
    r = installer("94, 93", dossier, url=serveur.modele)
    return dossier, r


@pytest.fixture(scope="module")
def geocodeur(installe):
    with Geocodeur(installe[0]) as g:
        yield g


def _documents(dep: str) -> list[dict]:
    with gzip.open(BAN / f"adresses-addok-{dep}.ndjson.gz", "rt", encoding="utf-8") as f:
        return [json.loads(ligne) for ligne in f]


def _numero(dep: str, voie_id: str, numero: str = "4") -> dict:
    d = next(d for d in _documents(dep) if d["id"] == voie_id)
    return d["housenumbers"][numero]


# ------------------------------------------------------------------------------ installation

def test_installation_et_etat(installe, serveur):
    dossier, r = installe
    assert r["installe"] and [d["code"] for d in r["departements"]] == ["93", "94"]
    for d in r["departements"]:
        docs = _documents(d["code"])
        attendu = {t: sum(1 for x in docs if x["type"] == t) for t in
                   ("municipality", "street", "locality")}
        attendu["numeros"] = sum(len(x.get("housenumbers") or {}) for x in docs)
        assert d["documents"] == attendu
        octets = (BAN / d["fichier"]).read_bytes()
        assert d["sha256"] == hashlib.sha256(octets).hexdigest()
        assert d["taille_fichier"] == len(octets)
        assert d["date_ban"] == "2026-11-30" and d["date_ban_source"] == "serveur"
    assert r["versions"]["addok"].startswith("1.3.")
    e = etat(dossier)
    assert e["installe"] and e["taille_octets"] > 0
    assert (dossier / "index" / "dump.rdb").exists() and (dossier / "index" / "addok.db").exists()
    assert not (dossier / "construction").exists()


def test_redis_a_nous(installe):
    dossier = installe[0]
    g = Geocodeur(dossier).ouvrir()
    serveur = g._serveur
    c = serveur.client()
    try:
        assert c.config_get("bind")["bind"] == "127.0.0.1"
        assert c.config_get("save")["save"] == ""
        assert c.config_get("appendonly")["appendonly"] == "no"
        assert c.config_get("protected-mode")["protected-mode"] == "yes"
        assert Path(c.config_get("dir")["dir"]) == (dossier / "index").resolve()
        assert c.dbsize() > 0
    finally:
        c.close()
    processus, dossier_socket = serveur._processus, Path(serveur.socket).parent
    avant = (dossier / "index" / "dump.rdb").stat().st_mtime_ns
    g.fermer()
    assert processus.poll() is not None
    assert not dossier_socket.exists()
    # stopping never rewrites the installed index
    assert (dossier / "index" / "dump.rdb").stat().st_mtime_ns == avant


def test_installation_interrompue_et_fichier_invalide(serveur, tmp_path):
    # a dropped transfer is resumed (Range); a bad line fails with file and line, and the
    # index already installed is kept
    serveur.coupures["/ban/adresses-addok-93.ndjson.gz"] = 3000
    r = installer("93", tmp_path, url=serveur.modele)
    assert r["telechargements"][0]["statut"] == "repris"
    assert any(p == "/ban/adresses-addok-93.ndjson.gz" and plage == "bytes=3000-"
               for p, plage in serveur.requetes)
    avant = (tmp_path / "index" / "installation.json").read_text("utf-8")
    lignes = gzip.decompress(serveur.fichiers["/ban/adresses-addok-94.ndjson.gz"]).split(b"\n")
    lignes[2] = b'{"id": "x", "type": "rue"'
    serveur.fichiers["/ban/casse-94.ndjson.gz"] = gzip.compress(b"\n".join(lignes))
    modele_casse = serveur.modele.replace("adresses-addok-", "casse-")
    with pytest.raises(FichierInvalide, match=r"adresses-addok-94\.ndjson\.gz, ligne 3"):
        installer("94", tmp_path, url=modele_casse)
    assert (tmp_path / "index" / "installation.json").read_text("utf-8") == avant
    with pytest.raises(FichierInvalide, match="SHA-256"):
        installer("94", tmp_path / "autre", url=serveur.modele, empreintes={"94": "0" * 64})
    with pytest.raises(ParametreInvalide, match="Département inconnu"):
        installer("99", tmp_path, url=serveur.modele)
    assert etat(tmp_path / "rien") == {"installe": False, "dossier": str(tmp_path / "rien"),
                                       "departements": [], "taille_octets": 0}
    with pytest.raises(GeocodeurIndisponible, match="geocodeur installer"):
        Geocodeur(tmp_path / "rien")


# ------------------------------------------------------------------------------ addresses

def _attendu(point: dict) -> dict:
    """The QPV answer of the default geography for a BAN point."""
    return lookup.localiser_points(point["lon"], point["lat"]).to_dicts()[0]


def test_adresses_dedans_dehors_et_pieges(geocodeur):
    dedans = _numero("93", "93066_1000")          # 4 Rue de la Paix, Saint-Denis
    dehors = _numero("94", "94041_1296")          # 4 Rue de la Fontaine, Ivry
    proche = _numero("93", "93066_1296")          # 4 Rue des Érables, Saint-Denis
    requetes = [
        "4 rue de la Paix 93200 Saint-Denis",        # 0 exact, in a QPV
        "4 Rue de la Fontaine 94200 Ivry-sur-Seine",  # 1 exact, far from any QPV
        "4 rue de la pais 93200 st denis",           # 2 typos
        "4 rue de la fontaine ivry sur seine",       # 3 no postcode, one street of that name
        "4 rue de la paix",                          # 4 same street in four communes
        "4 rue de la paix 94200",                    # 5 the postcode settles it
        "10 rue de Rivoli 75001 Paris",              # 6 département not installed
        "",                                          # 7 empty line
        "rue de la paix 93200 Saint-Denis",          # 8 street only: centroid in a QPV
        "7 avenue des tilleuls 93200 saint-denis",   # 9 no such street in Saint-Denis
        "qsdfgh jklm",                               # 10 nothing
        "4 rue des erables 93200 saint denis",       # 11 near a QPV
        "Saint-Denis",                               # 12 a commune
    ]
    r = localiser_adresses(requetes, geocodeur)
    assert len(r["statut"]) == len(requetes)
    lignes = [{k: v[i] for k, v in r.items()} for i in range(len(requetes))]
    a = _attendu(dedans)
    assert lignes[0]["statut"] == "localise" and lignes[0]["type_ban"] == "housenumber"
    assert (lignes[0]["lon_ban"], lignes[0]["lat_ban"]) == (dedans["lon"], dedans["lat"])
    assert lignes[0]["dans_qpv"] is True and a["dans_qpv"] is True
    assert lignes[0]["qpv_code"] == a["qpv_code"]
    assert lignes[0]["reponse"].startswith(f"dans le QPV {a['qpv_code']}")
    b = _attendu(dehors)
    assert lignes[1]["statut"] == "localise" and lignes[1]["dans_qpv"] is False
    assert b["dans_qpv"] is False and lignes[1]["distance_qpv_m"] == b["distance_qpv_m"]
    assert lignes[1]["reponse"].startswith("hors QPV")
    assert lignes[2]["statut"] == "localise" and lignes[2]["qpv_code"] == a["qpv_code"]
    assert lignes[2]["adresse_ban"] == "4 Rue de la Paix 93200 Saint-Denis"
    assert lignes[3]["statut"] == "localise" and lignes[3]["code_commune_ban"] == "94041"
    assert lignes[4]["statut"] == "a_verifier" and "ambiguë" in lignes[4]["remarque"]
    assert lignes[4]["dans_qpv"] is None and lignes[4]["qpv_code"] is None
    assert lignes[5]["statut"] == "localise" and lignes[5]["code_commune_ban"] == "94041"
    assert lignes[6]["statut"] == "departement_non_installe"
    assert "75" in lignes[6]["remarque"] and "--departements 75" in lignes[6]["remarque"]
    assert lignes[6]["adresse_ban"] is None
    assert lignes[7]["statut"] == "adresse_vide"
    # a street centroid inside a QPV is said, never declared
    rue = next(d for d in _documents("93") if d["id"] == "93066_1000")
    assert _attendu(rue)["dans_qpv"] is True
    assert lignes[8]["type_ban"] == "street" and lignes[8]["statut"] == "a_verifier"
    assert lignes[8]["dans_qpv"] is None and lignes[8]["qpv_code"] is None
    assert lignes[8][f"qpv_code_300m"] is None and lignes[8]["distance_qpv_m"] is None
    assert "jamais" in lignes[8]["remarque"] and "tombe dans le QPV" in lignes[8]["remarque"]
    assert lignes[9]["statut"] == "a_verifier" and "Avenue des Lilas" in lignes[9]["remarque"]
    assert lignes[9]["dans_qpv"] is None
    assert lignes[10]["statut"] == "adresse_introuvable"
    c = _attendu(proche)
    assert lignes[11]["statut"] == "localise" and not lignes[11]["dans_qpv"]
    assert lignes[11]["reponse"] == (f"à {c['distance_qpv_m']:.0f} m du QPV "
                                     f"{c['qpv_code_300m']} « " + lignes[11]["reponse"]
                                     .split("« ", 1)[1])
    assert lignes[12]["type_ban"] == "municipality" and lignes[12]["statut"] == "a_verifier"
    # a stricter threshold turns the typo into a row to check
    strict = localiser_adresses(requetes[:3], geocodeur, score_min=0.9)
    assert strict["statut"] == ["localise", "localise", "a_verifier"]
    assert "sous le seuil 0,90" in strict["remarque"][2]


def test_codes_postaux():
    assert departement_du_code_postal("93200") == "93"
    assert departement_du_code_postal("01000") == "01"
    assert departement_du_code_postal("20000") == "2A"
    assert departement_du_code_postal("20290") == "2B"
    assert departement_du_code_postal("97411") == "974"
    assert departement_du_code_postal("98000") is None
    assert departement_du_code_postal("9320") is None


def test_lot_reparti_sur_des_processus(geocodeur):
    # the multi-process path gives the same answers, in order, as one process
    requetes = [f"{n} rue de la paix {cp}" for n in range(1, 13)
                for cp in ("93200", "94200", "94400", "93300")] + ["", "rien du tout"]
    seul = geocodeur.geocoder(requetes, travailleurs=1)
    import essqpv.geocodage.geocodeur as module
    seuil = module.SEUIL_PARALLELE
    module.SEUIL_PARALLELE = 10
    try:
        parallele = geocodeur.geocoder(requetes, travailleurs=2)
    finally:
        module.SEUIL_PARALLELE = seuil
    assert geocodeur._pool is not None
    assert parallele == seul
    assert seul[-2] == [] and seul[0][0]["label"] == "1 Rue de la Paix 93200 Saint-Denis"
    # block by block (exact answers here while the workers run addok on earlier blocks),
    # many small lots: the same answers, in order, and the progress reaches the end
    melange = [q for trio in zip(requetes, [q.replace("paix", "paxi") for q in requetes],
                                 [f"{q} saint-denis" for q in requetes]) for q in trio]
    seul = geocodeur.geocoder(melange, travailleurs=1)
    vus = []
    anciens = module.SEUIL_PARALLELE, module._BLOC, module._LOT
    module.SEUIL_PARALLELE, module._BLOC, module._LOT = 10, 7, 5
    try:
        parallele = geocodeur.geocoder(melange, travailleurs=2,
                                       progression=lambda f, t: vus.append((f, t)))
    finally:
        module.SEUIL_PARALLELE, module._BLOC, module._LOT = anciens
    assert parallele == seul and len(parallele) == len(melange)
    assert {r[0]["methode"] for r in parallele if r} == {"exacte", "addok"}
    assert vus[-1] == (len(melange), len(melange))
    assert [f for f, _ in vus] == sorted(f for f, _ in vus)


def test_requetes_d_un_code_postal_au_meme_processus():
    # the queries of one postcode go to one worker, the workers are given as many queries,
    # every query is given out once; once the list is read, a worker whose queries are done
    # takes some of another's, in smaller lots
    import random

    from essqpv.geocodage import geocodeur as module
    rng = random.Random(3)
    cps = [f"{rng.randrange(10000, 99999)}" for _ in range(40)]
    requetes = [f"{k} rue {rng.choice('abcdef')} {rng.choice(cps)} ville" for k in range(3000)]
    requetes += [f"{k} rue sans code postal" for k in range(200)] + ["12 rue 1234567 x"]
    files = module._Files(3)
    for i, q in enumerate(requetes):
        files.ajouter(i, q)
    assert len(files) == len(requetes)
    par_cp: dict = {}
    for w, file in enumerate(files.files):
        for _i, q in file:
            cp = module._cle(q)
            if cp is not None:
                par_cp.setdefault(cp, set()).add(w)
    assert set(par_cp) == set(cps) and all(len(ws) == 1 for ws in par_cp.values())
    assert module._cle("12 rue 1234567 x") is None and module._cle("4 rue 93200") == "93200"
    tailles = [len(f) for f in files.files]
    assert max(tailles) - min(tailles) <= module._ECART + 1
    # a file of one postcode: shared out as well (the postcode moves)
    une = module._Files(2)
    for i in range(5000):
        une.ajouter(i, f"{i} rue de la paix 93200 saint-denis")
    assert abs(len(une.files[0]) - len(une.files[1])) <= module._ECART + 1
    donnes = []
    while (lot := files.prendre(0, tout=False)) is not None:
        assert len(lot[0]) == module._LOT
        donnes += lot[0]
    assert len(files.files[0]) < module._LOT and files.prendre(0, tout=False) is None
    # the list is read: worker 0 finishes its own queries, then takes from the others
    tailles_fin = []
    while (lot := files.prendre(0, tout=True)) is not None:
        ix, qs = lot
        assert [requetes[i] for i in ix] == qs
        tailles_fin.append(len(ix))
        donnes += ix
    assert sorted(donnes) == list(range(len(requetes))) and len(files) == 0
    assert min(tailles_fin) >= 1 and tailles_fin[-1] <= module._LOT_MIN
    assert files.tout() == ([], [])


def test_autocompletion(geocodeur):
    r = geocodeur.rechercher("4 rue de la pa", limite=5, autocomplete=True)
    assert r and all("Rue de la Paix" in x["label"] for x in r[:4])
    assert geocodeur.rechercher("   ") == []
    assert geocodeur.rechercher("x" * 500) == []


def test_fichier_adresses_csv(installe, tmp_path):
    entree = tmp_path / "adherents.csv"
    entree.write_text("nom;adresse;code_postal\n"
                      "A;4 rue de la Paix;93200\n"
                      "B;4 Rue de la Fontaine 94200 Ivry-sur-Seine;\n"
                      "C;;\n"
                      "D;10 rue de Rivoli;75001\n"
                      "E;rue de la paix;93200\n", "utf-8")
    r = lookup.localiser_fichier(entree, geocodeur=installe[0])
    assert r["mode"] == "adresse" and r["lignes"] == 5
    assert r["colonnes"] == {"adresse": "adresse", "code_postal": "code_postal"}
    assert r["par_statut"] == {"localise": 2, "a_verifier": 1, "adresse_vide": 1,
                               "departement_non_installe": 1}
    assert r["dans_qpv"] == 1 and r["a_verifier"] == 1
    assert "Base Adresse Nationale" in r["source_adresses"]
    out = pl.read_csv(r["sortie"], separator=";", infer_schema=False)
    assert out["nom"].to_list() == ["A", "B", "C", "D", "E"]
    assert out["statut"].to_list() == ["localise", "localise", "adresse_vide",
                                       "departement_non_installe", "a_verifier"]
    assert out["dans_qpv"].to_list() == ["oui", "non", None, None, None]
    assert float(out["score_ban"][0]) > 0.6 and out["type_ban"][4] == "street"
    assert out["methode_ban"].to_list() == ["addok", "exacte", None, None, "addok"]
    assert out["remarque"][4].startswith("À vérifier")
    src = dict(pl.read_csv(r["sources"], separator=";", infer_schema=False).iter_rows())
    assert "Adresses : " + src["Adresses"] == r["source_adresses"]
    assert "Licence Ouverte" in src["Adresses"]
    assert "Licence Ouverte" in src["Contours des QPV"] and src["Données synthétiques"] == "non"


def test_fichier_adresses_en_colonnes_xlsx(installe, tmp_path):
    import openpyxl
    entree = tmp_path / "beneficiaires.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Numéro", "Voie", "CP", "Ville"])
    ws.append([4, "rue de la Paix", 93200, "Saint-Denis"])
    ws.append([None, None, None, None])
    ws.append(["3 bis", "Rue de la Paix", "94200", "Ivry"])
    wb.save(entree)
    r = lookup.localiser_fichier(entree, geocodeur=installe[0],
                                 colonnes={"numero": "Numéro", "voie": "Voie",
                                           "code_postal": "CP", "commune": "Ville"})
    assert r["mode"] == "adresse" and r["lignes"] == 3
    sortie = openpyxl.load_workbook(r["sortie"], read_only=True)
    lignes = list(sortie.worksheets[0].iter_rows(values_only=True))
    entete = list(lignes[0])
    i = entete.index("statut")
    assert [ligne[i] for ligne in lignes[1:]] == ["localise", "adresse_vide", "localise"]
    j = entete.index("adresse_ban")
    assert lignes[3][j] == "3 bis Rue de la Paix 94200 Ivry-sur-Seine"
    # a number in the sheet (1: written as in the BAN, found by the exact index)
    assert lignes[1][entete.index("score_ban")] == 1
    assert lignes[1][entete.index("methode_ban")] == "exacte"


def test_commande_localiser_adresse(installe):
    from typer.testing import CliRunner

    from essqpv.cli import app
    dossier = str(installe[0])
    # (the fixture's streets are placed in QPV of the 2015 map)
    run = CliRunner().invoke(app, ["localiser", "--adresse", "4 rue de la paix 93200 "
                                   "Saint-Denis", "--geocodeur", dossier, "--geographie",
                                   "2015"])
    assert run.exit_code == 0, run.output
    assert "Trouvée : 4 Rue de la Paix 93200 Saint-Denis" in run.output
    assert "Dans le QPV" in run.output and "pas une attestation" in run.output
    assert "Base Adresse Nationale" in run.output
    run = CliRunner().invoke(app, ["localiser", "--adresse", "rue de la paix 93200 "
                                   "Saint-Denis", "--geocodeur", dossier, "--format", "json"])
    r = json.loads(run.output)
    assert r["statut"] == "a_verifier" and r["dans_qpv"] is None
    run = CliRunner().invoke(app, ["geocodeur", "etat", "--dossier", dossier])
    assert run.exit_code == 0 and "93 Seine-Saint-Denis : BAN du 2026-11-30" in run.output
    run = CliRunner().invoke(app, ["localiser", "--adresse", "x", "--geocodeur",
                                   os.path.join(dossier, "absent")])
    assert run.exit_code != 0


def test_index_endommage(installe, tmp_path):
    import shutil
    copie = tmp_path / "copie"
    shutil.copytree(installe[0] / "index", copie / "index")
    (copie / "index" / "dump.rdb").write_bytes(b"REDIS pas vraiment" * 100)
    with pytest.raises(GeocodeurIndisponible, match="endommagé"):
        Geocodeur(copie).ouvrir()
    # a search writes nothing into the installed index
    avant = sorted(p.name for p in (installe[0] / "index").iterdir())
    with Geocodeur(installe[0]) as g:
        g.rechercher("4 rue de la paix")
    assert sorted(p.name for p in (installe[0] / "index").iterdir()) == avant


# ------------------------------------------------------------------------------ exact path

def _requetes_ban() -> list[tuple[str, dict | None]]:
    """Every street and house number of the extract, written as the BAN writes it."""
    out = []
    for dep in ("93", "94"):
        for d in _documents(dep):
            if d["type"] == "municipality":
                continue
            ville = d["city"][0] if isinstance(d["city"], list) else d["city"]
            out.append(f"{d['name']} {d['postcode']} {ville}")
            out += [f"{n} {d['name']} {d['postcode']} {ville}" for n in d.get("housenumbers")
                    or {}]
    return out


def test_chemin_exact_meme_reponse_qu_addok(geocodeur):
    # every address of the extract, as the BAN writes it: answered by the exact index with
    # the very fields addok gives (label, type, point, identifiers), score 1
    requetes = _requetes_ban()
    exactes = geocodeur.geocoder(requetes, travailleurs=1)
    par_addok = geocodeur.geocoder(requetes, travailleurs=1, exacte=False)
    assert len(requetes) == 589
    for q, e, a in zip(requetes, exactes, par_addok):
        assert len(e) == 1 and e[0]["methode"] == "exacte" and e[0]["score"] == 1.0, q
        assert a[0]["methode"] == "addok"
        sans = ("score", "methode")
        assert {k: v for k, v in e[0].items() if k not in sans} == \
            {k: v for k, v in a[0].items() if k not in sans}, q


def test_chemin_exact_variantes_et_refus(geocodeur):
    requetes = [
        "4, RUE DE LA PAIX - 93200 SAINT DENIS",     # 0 case, punctuation: exact
        "3bis r. de la paix 93200 St-Denis",         # 1 glued suffix, abbreviations: exact
        "4 rue de la Paix Saint-Denis",              # 2 no postcode, one commune: exact
        "4 rue de la Paix Saint-Denis 93200",        # 3 postcode last: exact
        "4 rue de la Paix 93300 Saint-Denis",        # 4 postcode not the address's: addok
        "4 rue de la Paix",                          # 5 no commune: addok (four communes)
        "4 rue de la pais 93200 Saint-Denis",        # 6 typo: addok
        "4 rue de la Paix 93200 93300 Saint-Denis",  # 7 two postcodes: addok
        "999 rue de la Paix 93200 Saint-Denis",      # 8 no such number: addok
        "Rue de la Paix 93200 Saint-Denis",          # 9 the street: exact, type street
    ]
    r = geocodeur.geocoder(requetes, limite=2, travailleurs=1)
    methodes = [x[0]["methode"] if x else None for x in r]
    assert methodes == ["exacte"] * 4 + ["addok"] * 5 + ["exacte"]
    assert {x[0]["label"] for x in r[:4]} == {"4 Rue de la Paix 93200 Saint-Denis",
                                              "3 bis Rue de la Paix 93200 Saint-Denis"}
    assert r[1][0]["housenumber"] == "3 bis"
    assert r[9][0]["type"] == "street" and r[9][0]["housenumber"] is None
    # the rules hold whatever the path: a street centroid is to check, never inside
    lignes = localiser_adresses(requetes, geocodeur)
    assert lignes["methode_ban"][:4] == ["exacte"] * 4
    assert lignes["statut"][:4] == ["localise"] * 4 and all(lignes["dans_qpv"][:4])
    assert lignes["statut"][9] == "a_verifier" and lignes["dans_qpv"][9] is None
    assert lignes["methode_ban"][9] == "exacte" and lignes["score_ban"][9] == 1.0
    assert lignes["statut"][5] == "a_verifier" and "ambiguë" in lignes["remarque"][5]


def test_chemin_exact_homonymes_et_collisions(installe, tmp_path):
    # a hash that leads to a row whose own text differs answers nothing (collision); two
    # BAN addresses with the same normalised text are both found: the query goes to addok
    import shutil
    import sqlite3

    from essqpv.geocodage import exactes
    copie = tmp_path / "exactes.db"
    shutil.copy(installe[0] / "index" / "exactes.db", copie)
    con = sqlite3.connect(copie)
    h1 = exactes._h("1 rue de la paix saint denis")
    h4 = exactes._h("4 rue de la paix saint denis")
    voie, num1 = con.execute("SELECT voie, numero FROM cles WHERE h = ?", (h1,)).fetchone()
    autre = con.execute("SELECT voie, numero FROM cles WHERE h = ?",
                        (exactes._h("4 rue de la fontaine ivry sur seine"),)).fetchone()
    # collision: the key of « 1 rue de la Paix » now leads to another address only
    con.execute("UPDATE cles SET h = 0 WHERE h = ?", (h1,))
    con.execute("INSERT INTO cles VALUES (?, ?, ?)", (h1, *autre))
    # homonym: a second « Rue de la Paix » of Saint-Denis, 93200, with its number 4
    con.execute("INSERT INTO voies SELECT 9999, type, nom, noms, code_postal, ville, villes, "
                "code_commune, 'x', lon, lat FROM voies WHERE id = ?", (voie,))
    con.execute("INSERT INTO numeros VALUES (99999, 9999, '4', 'y', 2.3, 48.9)")
    con.execute("INSERT INTO cles VALUES (?, 9999, 99999)", (h4,))
    con.commit()
    con.close()
    index = exactes.IndexExact(copie)
    try:
        r = index.chercher(["1 rue de la paix 93200 saint-denis",
                            "4 rue de la paix 93200 saint-denis",
                            "2 rue de la paix 93200 saint-denis",
                            "4 rue de la fontaine 94200 ivry-sur-seine"])
    finally:
        index.fermer()
    assert r[0] is None and r[1] is None
    assert r[2]["label"] == "2 Rue de la Paix 93200 Saint-Denis"
    assert r[3]["citycode"] == "94041"
    assert exactes.jetons("3BIS, Av. du Gal Leclerc 09000 Foix") == [
        "3", "bis", "avenue", "du", "general", "leclerc", "09000", "foix"]


def test_jetons_mot_a_mot_comme_le_texte_entier():
    # the normalisation is remembered word by word (split at the ASCII space): the same
    # words as the whole text normalised at once, whatever the characters around the spaces
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st
    from unidecode import unidecode

    from essqpv.geocodage import exactes

    def entier(texte):
        sortie = []
        for m in re.split(r"[^a-z0-9]+", unidecode(texte).lower()):
            if not m:
                continue
            colle = re.match(r"^(\d+)([a-z]+)$", m)
            if colle:
                sortie += [str(int(colle.group(1))),
                           exactes._EQUIVALENTS.get(colle.group(2), colle.group(2))]
            elif m.isdigit() and len(m) != 5:
                sortie.append(str(int(m)))
            else:
                sortie.append(exactes._EQUIVALENTS.get(m, m))
        return sortie

    lettres = st.sampled_from(list(" \u00a0\t\n-',.éèÀÇœŒßﬁ\u0301\u2028\u3000\u200b0123456789"
                                   "abstXYZ°№ǅæ") + ["av", "bd", "St", "3bis", "007", "93200"])

    @settings(max_examples=400, deadline=None)
    @given(st.lists(lettres, max_size=30).map("".join))
    def verifier(texte):
        assert exactes.jetons(texte) == entier(texte)
        assert exactes.jetons(texte) == entier(texte)  # (from memory the second time)

    verifier()
    assert exactes.jetons("") == [] and exactes.jetons(None) == []


def test_scores_d_addok_inchanges(geocodeur):
    # addok.conf's faster n-gram score: every result of addok's own processor, same score
    from addok.config import config
    from addok.helpers import results as resultats_addok

    from essqpv.geocodage import _scores
    requetes = ["4 rue de la pais 93200 st denis", "4 rue de la paix", "7 avenue des tilleuls "
                "93200 saint-denis", "rue des erables", "Saint-Denis", "4 r paix ivry",
                "3 bis rue de la fontaine 94200", "qsdfgh jklm", "12 avenue des lilas"]
    requetes += [q.replace("e", "a", 1) for q in _requetes_ban()[::25]]
    assert _scores.score_by_ngram_distance in config.SEARCH_RESULT_PROCESSORS

    def tous():
        return [[(r["label"], r["score"], r["type"]) for r in geocodeur.rechercher(q, limite=5)]
                for q in requetes]
    rapides = tous()
    i = config.SEARCH_RESULT_PROCESSORS.index(_scores.score_by_ngram_distance)
    config.SEARCH_RESULT_PROCESSORS[i] = resultats_addok.score_by_ngram_distance
    try:
        d_addok = tous()
    finally:
        config.SEARCH_RESULT_PROCESSORS[i] = _scores.score_by_ngram_distance
    assert rapides == d_addok and sum(map(len, rapides)) > 30


def _variantes_difficiles(graine: int = 19) -> list[str]:
    """Queries of every kind the geocoder meets, drawn from the extract: typos (two letters
    swapped, one dropped), unknown streets in a known commune, no postcode, street only,
    a word more, abbreviations, the commune alone."""
    import random
    rng = random.Random(graine)
    base = _requetes_ban()
    out = []
    for q in rng.sample(base, 200):
        mots = q.split(" ")
        i = rng.randrange(1, max(2, len(mots) - 2))
        m = mots[i]
        if len(m) > 3:
            j = rng.randrange(len(m) - 1)
            out.append(" ".join(mots[:i] + [m[:j] + m[j + 1] + m[j] + m[j + 2:]]
                                + mots[i + 1:]))
            out.append(" ".join(mots[:i] + [m[:j] + m[j + 1:]] + mots[i + 1:]))
        out.append(f"{rng.randint(1, 40)} rue {rng.choice(['Zola', 'Xyzab', 'Gambetta', 'Paix'])}"
                   f" {' '.join(mots[-2:])}")
        out.append(" ".join(m for m in mots if not (m.isdigit() and len(m) == 5)))
        out.append(" ".join(mots[:-2]))
        out.append(q.replace("Rue ", "r. ").replace("Avenue ", "av ") + " cedex")
        out.append(mots[-1])
    return out


def test_recherche_identique_a_addok_seul(geocodeur):
    # essqpv's accelerated search (labels remembered per street, labels scored together,
    # Redis answers remembered and sent together) against addok as published: the same
    # results, in the same order, the same label, score, type, point and identifier
    from essqpv.geocodage import _addok
    requetes = _variantes_difficiles()
    assert len(requetes) > 1000

    def tous():
        return [[(r["label"], r["score"], r["type"], r["lon"], r["lat"], r["id"])
                 for r in geocodeur.rechercher(q, limite=5)] for q in requetes]
    rapides = tous()
    rapides_encore = tous()  # the second time, from what the process remembered
    from addok.db import DB
    assert DB.instance._paires  # the fuzzy intersections were made here, from pair sets
    ancien = _addok.MAX_PAIRES
    _addok.MAX_PAIRES = 50  # the pair sets forgotten again and again
    try:
        DB.instance._paires.clear()
        rapides_oublie = tous()
    finally:
        _addok.MAX_PAIRES = ancien
    with _addok.addok_seul():
        d_addok = tous()
    assert rapides == d_addok and rapides_encore == d_addok and rapides_oublie == d_addok
    assert sum(map(len, rapides)) > 2500
    assert len({r[0][2] for r in rapides if r}) >= 3  # housenumber, street, municipality...


def test_documents_memorises_intacts_et_memoire_videe(geocodeur, monkeypatch):
    # what is remembered per document of the read-only index (its fiche: the decoded
    # document, its house numbers, importance and labels): a memory so small that it is
    # emptied in the middle of searches still gives addok's results, and the documents it
    # holds are the stored ones (the results are built from copies); the matched house
    # numbers with other fields than the BAN's go through addok's processors: the same
    import sqlite3

    from addok.config import config

    from essqpv.geocodage import _addok
    requetes = _variantes_difficiles(graine=5)[:400]

    def resultats(f):
        return [[(r["label"], r["score"], r["type"], r["lon"], r["lat"], r["id"])
                 for r in f(q, limite=5)] for q in requetes]
    with _addok.addok_seul():
        d_addok = resultats(_addok.rechercher)
    monkeypatch.setattr(_addok, "MAX_DOCUMENTS", 40)
    vides = []
    vrai_clear = dict.clear

    class Memoire(dict):
        def clear(self):
            vides.append(len(self))
            vrai_clear(self)
    monkeypatch.setitem(_addok._DOCUMENTS, "fiches", Memoire())
    rapides = resultats(geocodeur.rechercher)
    assert len(vides) > 10 and rapides == d_addok
    assert _addok._DOCUMENTS["actif"]
    fiches = _addok._DOCUMENTS["fiches"]
    assert fiches
    con = sqlite3.connect(geocodeur.index / "addok.db")
    for cle, fiche in fiches.items():
        (blob,) = con.execute("SELECT data FROM addok WHERE key = ?", (cle.decode(),)).fetchone()
        stocke = config.DOCUMENT_SERIALIZER.loads(blob)
        assert fiche.doc == stocke
        assert fiche.numeros == (stocke.get("housenumbers") or "")
    con.close()
    # every matched number through addok's own processors
    monkeypatch.setattr(_addok, "_CHAMPS_NUMERO", frozenset())
    monkeypatch.setitem(_addok._DOCUMENTS, "fiches", {})
    assert resultats(geocodeur.rechercher) == d_addok


def test_numeros_lus_a_la_demande_identiques():
    # a street's house numbers read on demand from the stored text: the same answers as the
    # whole document read at once, for the extract's documents and for texts written to
    # mislead a reader that looks for keys and braces (braces, quotes and keys inside
    # strings, escapes, numbers last or absent, non-ASCII keys)
    import random

    from addok.helpers.serializers import ZlibSerializer

    from essqpv.geocodage._scores import Documents, _Numeros
    rng = random.Random(3)
    piege = ['}}', '"un": {', '\\', '\\"', '{"deu": {', 'é', '"', '}', '', 'un']
    docs = _documents("93")[:300] + _documents("94")[:300]
    for k in range(300):
        hn = {}
        for j in range(rng.randint(0, 5)):
            cle = rng.choice(["un", "deu", "troi", "4b", "cinq", "é6", "x\"y", "sept"])
            hn[cle] = {"id": rng.choice(piege) + str(j), "raw": str(j),
                       "lon": rng.random(), "lat": 48.5}
            if rng.random() < 0.2:
                hn[cle]["postcode"] = rng.choice(piege)
        d = {"id": f"v{k}", "type": "street", "name": rng.choice(piege) + " rue",
             "housenumbers": hn, "city": [rng.choice(piege)]}
        if rng.random() < 0.5:
            d["_id"] = "x" + rng.choice(piege)
        if rng.random() < 0.2:
            d["autre"] = {"un": {"id": rng.choice(piege)}}
        docs.append(d)
    paresseux = []
    for d in docs:
        lu = Documents.loads(ZlibSerializer.dumps(d))
        vrai = d.get("housenumbers") or {}
        hn = lu.get("housenumbers") or {}
        paresseux.append(isinstance(hn, _Numeros))
        for cle in list(vrai) + ["un", "deu", "zzz", "1", "é6"]:
            assert (cle in hn) == (cle in vrai)
            if cle in vrai:
                assert hn[cle] == vrai[cle]
            else:
                with pytest.raises(KeyError):
                    hn[cle]
        assert lu == d and dict(hn) == vrai and len(hn) == len(vrai)
    # every street of the extract with numbers is read on demand, and many of the others
    ban = len(docs) - 300
    assert all(p for p, d in zip(paresseux, docs[:ban]) if d.get("housenumbers"))
    assert sum(paresseux[:ban]) > 20 and sum(paresseux[ban:]) > 10


def test_similarites_ensemble_identiques():
    # the labels of a search scored together (numpy) give the numbers of one at a time
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from essqpv.geocodage._scores import _pli_texte, _similarite_pliee, similarites_pliees
    libelles = [_pli_texte(q) for q in _requetes_ban()]
    for q in ("4 rue de la pais 93200 st denis", "rue paix", "ab", libelles[3]):
        assert similarites_pliees(_pli_texte(q), libelles) == \
            [_similarite_pliee(t, _pli_texte(q)) for t in libelles]

    @settings(max_examples=2000, deadline=None)
    @given(st.lists(st.text(alphabet="aab e1", max_size=9), max_size=12),
           st.text(alphabet="aab e1", max_size=9))
    def meme(textes, q):
        assert similarites_pliees(q, textes) == [_similarite_pliee(t, q) for t in textes]
    meme()


def test_score_addok_identique():
    # the faster text-similarity score of addok.conf gives addok's very number
    from addok.helpers.text import compare_ngrams
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from essqpv.geocodage._scores import similarite
    libelles = [q for q in _requetes_ban()[:120]]
    for a in libelles:
        for b in ("4 rue de la pais 93200 st denis", "rue paix", "x", a[:7], a):
            assert similarite(a, b) == compare_ngrams(a, b)

    # and addok's document format, read back the same
    from addok.helpers.serializers import ZlibSerializer

    from essqpv.geocodage._scores import Documents
    for d in _documents("93")[:20]:
        assert Documents.loads(ZlibSerializer.dumps(d)) == d == \
            ZlibSerializer.loads(Documents.dumps(d))

    from addok.helpers.text import ascii

    from essqpv.geocodage._scores import _pli_texte

    @settings(max_examples=3000, deadline=None)
    @given(st.text(alphabet="aabé e-'1ŒİßÉ\t  _.北\u0301Σς", max_size=12),
           st.text(alphabet="aabé e-'1Œ", max_size=9))
    def meme(a, b):
        assert similarite(a, b) == compare_ngrams(a, b)
        assert _pli_texte(a) == ascii(a)._cache
    meme()

    # a house-number label scored from its street's label: the same number
    from essqpv.geocodage._scores import similarite_prefixee

    @settings(max_examples=3000, deadline=None)
    @given(st.text(alphabet="12b is-", max_size=6), st.text(alphabet="aabé e-'1Œ", max_size=12),
           st.text(alphabet="aab1é e-'2", max_size=12))
    def numero_devant(numero, base, q):
        assert similarite_prefixee(numero, base, q) == compare_ngrams(f"{numero} {base}", q)
    numero_devant()
    for a in libelles:
        numero, _, base = a.partition(" ")
        for b in ("4 rue de la pais 93200 st denis", "44 rue paix", a, "4 4 4 44 rue"):
            assert similarite_prefixee(numero, base, b) == compare_ngrams(a, b)


def test_redis_tue_pendant_un_fichier(installe):
    # the Redis of the geocoder killed in the middle of a list: a clear French error, no
    # partial result; the next opening starts a new server
    import signal
    requetes = [f"{n} rue de la paxi {cp}" for n in range(1, 301)
                for cp in ("93200", "94200", "94400", "93300")]
    g = Geocodeur(installe[0]).ouvrir()
    try:
        def tuer(fait, total):
            if fait < total and g._serveur is not None and g._serveur._processus:
                os.kill(g._serveur._processus.pid, signal.SIGKILL)
        with pytest.raises(GeocodeurIndisponible, match="cessé de répondre"):
            g.geocoder(requetes, travailleurs=1, progression=tuer)
        assert g._serveur is None
        assert g.geocoder(["4 rue de la paix 93200 saint-denis"])[0][0]["methode"] == "exacte"
        assert g.rechercher("4 rue de la paix 93200")[0]["methode"] == "addok"
        # the same with the worker processes: they are stopped, nothing partial comes back
        import essqpv.geocodage.geocodeur as module
        anciens = module.SEUIL_PARALLELE, module._BLOC, module._LOT
        module.SEUIL_PARALLELE, module._BLOC, module._LOT = 10, 50, 20
        try:
            with pytest.raises(GeocodeurIndisponible, match="cessé de répondre"):
                g.geocoder(requetes, travailleurs=2, progression=tuer)
        finally:
            module.SEUIL_PARALLELE, module._BLOC, module._LOT = anciens
        assert g._serveur is None and g._pool is None
        assert g.geocoder(["4 rue de la paix 93200 saint-denis"])[0][0]["methode"] == "exacte"
    finally:
        g.fermer()


def test_fichiers_hostiles(installe, tmp_path):
    # a stray quote: file, physical line and column named; an address column with nothing
    # in it: every row kept, adresse_vide; a header alone: no row, no error
    casse = tmp_path / "guillemets.csv"
    casse.write_text('id;adresse\n1;4 rue de la Paix 93200 Saint-Denis\n'
                     '2;"4 Rue de la Fontaine" 94200 Ivry-sur-Seine\n', "utf-8")
    with pytest.raises(FichierInvalide, match=r"guillemets\.csv, ligne 3, colonne « adresse » "
                                              r": guillemet"):
        lookup.localiser_fichier(casse, geocodeur=installe[0])
    ouvert = tmp_path / "ouvert.csv"
    ouvert.write_text('id;adresse\n1;"4 rue de la Paix 93200 Saint-Denis\n2;x\n', "utf-8")
    with pytest.raises(FichierInvalide, match=r"ligne 2, colonne « adresse »"):
        lookup.localiser_fichier(ouvert, geocodeur=installe[0])
    vide = tmp_path / "vides.csv"
    vide.write_text("id;adresse;code_postal\n" + "".join(f"{i};;\n" for i in range(2000)),
                    "utf-8")
    r = lookup.localiser_fichier(vide, geocodeur=installe[0])
    assert r["lignes"] == 2000 and r["par_statut"] == {"adresse_vide": 2000}
    out = pl.read_csv(r["sortie"], separator=";", infer_schema=False)
    assert out.height == 2000 and out["id"].to_list() == [str(i) for i in range(2000)]
    entete = tmp_path / "entete.csv"
    entete.write_text("adresse\n", "utf-8")
    assert lookup.localiser_fichier(entete, geocodeur=installe[0])["lignes"] == 0
