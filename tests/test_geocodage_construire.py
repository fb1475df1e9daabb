"""``essqpv construire`` with and without an address geocoder (REAL addok and Redis)."""
from __future__ import annotations

import duckdb
import pytest

from essqpv import base as B
from essqpv import lookup
from essqpv.geocodage import installer
from tests import _fabrique as F
from tests.test_geocodage import _numero, _serveur


def _adresse(numero, type_voie, voie, cp, ville) -> dict:
    return {"numeroVoieEtablissement": numero, "typeVoieEtablissement": type_voie,
            "libelleVoieEtablissement": voie, "codePostalEtablissement": cp,
            "libelleCommuneEtablissement": ville}


@pytest.fixture(scope="module")
def registre(tmp_path_factory):
    d = tmp_path_factory.mktemp("registre-ban")
    import pyproj
    x, y = pyproj.Transformer.from_crs(4326, 2154, always_xy=True).transform(
        *F.point_interieur("QP093039"))
    e = [
        # 1 no coordinates, exact address in a QPV
        F.etab("10000000100011", "93066", **_adresse("4", "RUE", "DE LA PAIX", "93200",
                                                     "SAINT-DENIS")),
        # 2 random point in the commune (quality 33), address far from any QPV
        F.etab("10000000100029", "94041", **_adresse("4", "RUE", "DE LA FONTAINE", "94200",
                                                     "IVRY-SUR-SEINE")),
        # 3 no coordinates, no number: the street's centre is never enough
        F.etab("10000000100037", "93066", **_adresse("", "RUE", "DE LA PAIX", "93200",
                                                     "SAINT-DENIS")),
        # 4 location withheld by INSEE: left as it is
        F.etab("10000000100045", "93066", **_adresse("[ND]", "[ND]", "[ND]", "93200",
                                                     "SAINT-DENIS")),
        # 5 good coordinates: unchanged
        F.etab("10000000100052", "93066", **_adresse("6", "RUE", "DE LA PAIX", "93200",
                                                     "SAINT-DENIS")),
        # 6 no coordinates, a département not installed
        F.etab("10000000100060", "75101", **_adresse("10", "RUE", "DE RIVOLI", "75001",
                                                     "PARIS")),
    ]
    etab = F.ecrire(d / "StockEtablissement_utf8.csv", "etablissements", e)
    ul = F.ecrire(d / "StockUniteLegale_utf8.csv", "unites_legales",
                  [F.ul("100000001", "9220", nom="ASSO")])
    geo = F.ecrire(d / "geo.csv", "geolocalisation", [
        {"siret": "10000000100029", "x": "660000", "y": "6855000", "qualite_xy": "33",
         "epsg": "2154"},
        {"siret": "10000000100045", "x": "[ND]", "y": "[ND]", "qualite_xy": "[ND]",
         "epsg": "[ND]"},
        {"siret": "10000000100052", "x": f"{x:.2f}", "y": f"{y:.2f}", "qualite_xy": "11",
         "epsg": "2154"},
    ], sep=";")
    return {"etablissements": etab, "unites_legales": ul, "geolocalisation": geo,
            "millesime": "2024-01", "dossier": d}


def _lignes(chemin) -> dict:
    con = duckdb.connect(str(chemin), read_only=True)
    try:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT siret, localise, motif_non_localise, source_coordonnees, qpv, lon, lat, "
            "score_ban FROM etablissements").fetchall()}
    finally:
        con.close()


def test_sans_geocodeur_rien_ne_change(registre, monkeypatch):
    monkeypatch.setenv("ESSQPV_GEOCODEUR", str(registre["dossier"] / "pas-de-geocodeur"))
    args = {k: v for k, v in registre.items() if k != "dossier"}
    r = B.construire(**args, base=registre["dossier"] / "sans.duckdb")
    F.verifier_reconciliation(r)
    assert "geocodage_ban" not in r
    lignes = _lignes(registre["dossier"] / "sans.duckdb")
    assert lignes["10000000100011"][:3] == (False, "sans_coordonnees", None)
    assert all(v[6] is None for v in lignes.values())


def test_avec_geocodeur_les_adresses_placent(registre, monkeypatch):
    srv = _serveur()
    geocodeur = registre["dossier"] / "geocodeur"
    installer("93,94", geocodeur, url=srv.modele)
    srv.shutdown()
    monkeypatch.setenv("ESSQPV_GEOCODEUR", str(geocodeur))
    args = {k: v for k, v in registre.items() if k != "dossier"}
    r = B.construire(**args, base=registre["dossier"] / "avec.duckdb")
    F.verifier_reconciliation(r)
    g = r["geocodage_ban"]
    assert g["candidats"] == 4 and g["localisees"] == 2
    assert g["par_statut"] == {"localise": 2, "a_verifier": 1, "departement_non_installe": 1}
    assert g["departements_installes"] == ["93", "94"]
    lignes = _lignes(registre["dossier"] / "avec.duckdb")
    p1 = _numero("93", "93066_1000")
    attendu = lookup.localiser_points(p1["lon"], p1["lat"]).to_dicts()[0]
    localise, motif, source, qpv, lon, lat, score = lignes["10000000100011"]
    assert (localise, motif, source) == (True, None, "ban")
    assert (lon, lat) == (p1["lon"], p1["lat"]) and qpv == attendu["qpv_code"]
    assert score > 0.6
    assert lignes["10000000100029"][:3] == (True, None, "ban")
    assert lignes["10000000100029"][3] is None
    assert lignes["10000000100037"][:3] == (False, "sans_coordonnees", None)
    assert lignes["10000000100045"][:2] == (False, "non_diffusible")
    assert lignes["10000000100052"][2] == "geolocalisation"
    assert lignes["10000000100052"][6] is None
    assert lignes["10000000100060"][:2] == (False, "sans_coordonnees")
    assert r["localisees"] == 3 and r["en_qpv"] == 2
    from typer.testing import CliRunner

    from essqpv.cli import app
    run = CliRunner().invoke(app, ["controle", "--base", str(registre["dossier"] /
                                                             "avec.duckdb")])
    assert run.exit_code == 0 and "dont placées par leur adresse (BAN)" in run.output
