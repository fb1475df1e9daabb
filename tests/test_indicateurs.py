"""Indicators on hand-built bases: exact numbers, with and without suppressed cells."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from essqpv import base as B
from essqpv.cli import app
from essqpv.errors import ParametreInvalide, TerritoireInconnu
from essqpv.indicators import indicateurs, indicateurs_qpv
from tests import _fabrique as F

LON_Q, LAT_Q = F.point_interieur("QP093001")  # Le Bourget (93013); the bases use the 2015 map


def _registre(d, avec_commerce: bool):
    """7 employers in QP093001 (4 social action x 10, 3 education x 20), 5 outside (4 x 40 +
    1 x 40), optionally 1 cooperative shop in the QPV (5 employees)."""
    e, u, emplois = [], [], ["siret,effectif,femmes,cdi,contrats_aides,temps_complet"]
    n = 0

    def ajouter(cj, naf, effectif, femmes, cdi, ca, tc, dans_qpv, tranche):
        nonlocal n
        n += 1
        siren = f"{n:09d}"
        siret = siren + "00011"
        ligne = F.etab(siret, "93013", naf=naf, tranche=tranche)
        if dans_qpv:
            ligne["longitude"], ligne["latitude"] = f"{LON_Q:.7f}", f"{LAT_Q:.7f}"
        e.append(ligne)
        u.append(F.ul(siren, cj))
        emplois.append(f"{siret},{effectif},{femmes},{cdi},{ca},{tc}")

    for _ in range(4):
        ajouter("9220", "88.10A", 10, 7, 6, 2, 5, True, "11")
    for _ in range(3):
        ajouter("9220", "85.59A", 20, 10, 10, 0, 10, True, "12")
    for _ in range(5):
        ajouter("9220", "88.10A", 40, 20, 20, 0, 20, False, "12")
    if avec_commerce:
        ajouter("5458", "47.11A", 5, 2, 5, 0, 5, True, "02")
    # a non-employer association in the QPV
    n += 1
    ligne = F.etab(f"{n:09d}00011", "93013", naf="94.99Z", tranche="NN", employeur="N")
    ligne["longitude"], ligne["latitude"] = f"{LON_Q:.7f}", f"{LAT_Q:.7f}"
    ligne["dateCreationEtablissement"] = "2023-06-01"
    e.append(ligne)
    u.append(F.ul(f"{n:09d}", "9220"))
    return F.ecrire_registre(d, e, u, emplois)


@pytest.fixture(scope="module")
def base_sans_secret(tmp_path_factory):
    d = tmp_path_factory.mktemp("sans_secret")
    etab, ul, emp = _registre(d, avec_commerce=False)
    b = d / "obs.duckdb"
    B.construire(etablissements=etab, unites_legales=ul, emplois=emp, millesime="2024-01", base=b,
                 geographie="2015")
    return b


@pytest.fixture(scope="module")
def base_avec_secret(tmp_path_factory):
    d = tmp_path_factory.mktemp("avec_secret")
    etab, ul, emp = _registre(d, avec_commerce=True)
    b = d / "obs.duckdb"
    B.construire(etablissements=etab, unites_legales=ul, emplois=emp, millesime="2024-01", base=b,
                 geographie="2015")
    B.construire(etablissements=etab, unites_legales=ul, millesime="2023-01", base=b,
                 geographie="2015")
    return b


def _secteur(r, nom):
    return next(x for x in r["tableau_secteurs"] if x["secteur"] == nom)


def test_chiffres_cles_exacts_sans_secret(base_sans_secret):
    r = indicateurs(base_sans_secret, "DEP:93")
    assert r["territoire"] == {"code": "DEP:93", "niveau": "departement",
                               "libelle": "Seine-Saint-Denis"}
    assert (r["perimetre"], r["millesime"], r["geographie_qpv"]) == ("strict", "2024-01", "2015")
    c = r["chiffres_cles"]
    assert c["etablissements_employeurs"] == 7
    assert c["part_associations"] == 1.0
    assert c["parts_familles"] == {"association": 1.0, "fondation": 0.0, "mutuelle": 0.0,
                                   "cooperative": 0.0, "societe_commerciale_ess": 0.0}
    assert c["salaries"] == 100 and c["estime"] is False
    assert (c["part_femmes"], c["part_cdi"], c["part_contrats_aides"],
            c["part_temps_complet"]) == (0.58, 0.54, 0.08, 0.5)
    assert c["salaries_ess_territoire"] == 300
    assert c["part_emploi_ess_en_qpv"] == 0.3333
    assert c["employeurs_sans_donnee_emploi"] == 0
    assert c["secret"] == {} and r["secret"] == []
    assert _secteur(r, "Action sociale") == {
        "secteur": "Action sociale", "salaries_qpv": 40, "part_qpv": 0.4, "part_france": 0.8,
        "ecart_points": -40.0, "secret": {}}
    assert _secteur(r, "Enseignement")["ecart_points"] == 40.0
    ens = r["tableau_secteurs"][-1]
    assert ens["secteur"] == "Ensemble" and ens["salaries_qpv"] == 100
    publiees = [x["part_qpv"] for x in r["tableau_secteurs"][:-1] if x["part_qpv"] is not None]
    assert abs(sum(publiees) - 1) < 0.001
    assert r["familles_en_qpv"]["non_employeurs"]["association"] == 1
    assert r["etablissements_en_qpv"] == 8 and r["non_employeurs_en_qpv"] == 1
    assert r["taille_employeurs_en_qpv"] == {"1 à 5": 0, "6 à 9": 0, "10 à 19": 4,
                                             "20 et plus": 3, "inconnue": 0}
    assert r["creations_en_qpv"]["total"] == 1
    assert r["evolution"] is None
    assert "regions" not in r


def test_qpv_comme_territoire(base_sans_secret):
    r = indicateurs(base_sans_secret, "QPV:QP093001")
    assert r["territoire"]["niveau"] == "qpv"
    assert r["chiffres_cles"]["salaries"] == 100
    assert r["chiffres_cles"]["part_emploi_ess_en_qpv"] is None
    qpv = {q["code_qp"]: q for q in indicateurs_qpv(base_sans_secret, territoire="DEP:93")}
    assert qpv["QP093001"]["etablissements_employeurs"] == 7
    assert qpv["QP093001"]["salaries"] == 100
    assert len(qpv) == 63  # Seine-Saint-Denis: 63 QPV in pop_qp_2013.csv (INSEE)


def test_secret_primaire_et_secondaire(base_avec_secret):
    r = indicateurs(base_avec_secret, "DEP:93")
    commerce = _secteur(r, "Commerce")
    assert commerce["salaries_qpv"] is None and commerce["secret"]["salaries_qpv"] == "primaire"
    assert commerce["part_qpv"] is None and commerce["ecart_points"] is None
    statuts = {(s["ligne"], s["colonne"]): s["statut"] for s in r["secret"]}
    assert statuts[("Commerce", "salaries_qpv")] == "primaire"
    assert "secondaire" in statuts.values()
    # the lone secret cell of the QPV column cannot be recovered: another sector is hidden
    caches = [x for x in r["tableau_secteurs"][:-1] if x["salaries_qpv"] is None]
    assert len(caches) >= 2
    publies = sum(x["salaries_qpv"] for x in r["tableau_secteurs"][:-1]
                  if x["salaries_qpv"] is not None)
    ens = r["tableau_secteurs"][-1]["salaries_qpv"]
    assert ens is None or ens - publies > 5  # never exactly the hidden 5
    c = r["chiffres_cles"]
    assert c["etablissements_employeurs"] == 8  # counts are public, never suppressed
    assert r["familles_en_qpv"]["employeurs"]["cooperative"] == 1


def test_sans_fichier_emplois_estimation(base_avec_secret):
    r = indicateurs(base_avec_secret, "DEP:93", millesime="2023-01")
    c = r["chiffres_cles"]
    assert c["estime"] is True
    assert c["part_femmes"] is None and c["part_cdi"] is None
    assert c["employeurs_effectif_inconnu"] == 0
    assert any("estimés" in a for a in r["avertissements"])
    r2 = indicateurs(base_avec_secret, "DEP:93")
    assert r2["evolution"]["millesime_precedent"] == "2023-01"
    assert r2["evolution"]["etablissements_employeurs"] == {"precedent": 8, "actuel": 8,
                                                           "variation": 0}


def test_france_porte_le_tableau_regional(base_sans_secret):
    r = indicateurs(base_sans_secret, "FR")
    regions = {x["region"]: x for x in r["regions"]}
    assert regions["11"]["etablissements_employeurs"] == 7
    assert regions["11"]["salaries"] == 100 and regions["11"]["salaries_ess_territoire"] == 300
    assert r["chiffres_cles"]["salaries_ess_territoire"] == 300


def test_perimetre_tampon_et_erreurs(base_sans_secret):
    r = indicateurs(base_sans_secret, "Seine-Saint-Denis", perimetre="300m")
    assert r["perimetre"] == "300m" and r["chiffres_cles"]["etablissements_employeurs"] == 7
    with pytest.raises(ParametreInvalide, match="300m"):
        indicateurs(base_sans_secret, "DEP:93", perimetre="500m")
    with pytest.raises(TerritoireInconnu, match="Seine-Saint-Denis"):
        indicateurs(base_sans_secret, "Seine St Denis")


def test_cli_json_est_l_objet_de_la_bibliotheque(base_sans_secret):
    res = CliRunner().invoke(app, ["indicateurs", "--base", str(base_sans_secret),
                                   "--territoire", "DEP:93", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == json.loads(json.dumps(
        indicateurs(base_sans_secret, "DEP:93"), ensure_ascii=False))
    res = CliRunner().invoke(app, ["indicateurs", "--base", str(base_sans_secret),
                                   "--territoire", "DEP:93"])
    assert res.exit_code == 0 and "Action sociale" in res.output


def test_un_qpv_masque_l_est_dans_toutes_les_reponses(base_demo):
    """A QPV's cell has one status in the plan, and every answer showing it carries that
    status: its own page, the listings of France, of its département and of its commune."""
    import duckdb
    con = duckdb.connect(str(base_demo), read_only=True)
    try:
        statuts = dict(con.execute(
            "SELECT territoire, statut FROM publication_cellules WHERE tableau = 'salaries' "
            "AND niveau = 'qpv' AND perimetre = 'strict' AND ligne = 'Ensemble' "
            "AND publiee").fetchall())
    finally:
        con.close()
    secondaires = sorted(c for c, st in statuts.items() if st == "secondaire")
    primaires = sorted(c for c, st in statuts.items() if st == "primaire")
    assert secondaires and primaires, "the test base should have both kinds"
    france = {q["code_qp"]: q for q in indicateurs_qpv(base_demo, territoire="FR")}
    for code in (secondaires[0], primaires[0]):
        r = indicateurs(base_demo, code)
        assert r["chiffres_cles"]["salaries"] is None
        assert r["chiffres_cles"]["secret"]["salaries"] == statuts[code]
        assert r["tableau_secteurs"][-1]["salaries_qpv"] is None
        dep = france[code[4:]]["departement"]
        for liste in (france, {q["code_qp"]: q for q in indicateurs_qpv(
                base_demo, territoire=f"DEP:{dep}")}):
            assert liste[code[4:]]["salaries"] is None
            assert liste[code[4:]]["secret"] == {"salaries": statuts[code]}
    for code, q in france.items():
        if not q.get("hors_champ_sirene"):
            assert q["secret"].get("salaries") == statuts[f"QPV:{code}"]
