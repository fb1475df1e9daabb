"""The demo register, through the whole pipeline, looks like France (issue: make demo).

Generator (profile ``demo``) + ``construire`` + ``indicateurs``: the national figures must
come out within ±10 % of the seed deck's figures the generator is calibrated on.
"""
from __future__ import annotations

import pytest

from essqpv.base import construire
from essqpv.indicators import indicateurs
from essqpv.synthese import generer

# ANCT / ESS France / RTES webinar (2020): the ESS in QPV
SEED = {"etablissements_employeurs": 10_600, "part_associations": 0.892, "salaries": 103_900,
        "part_femmes": 0.68, "part_cdi": 0.58, "part_contrats_aides": 0.16,
        "part_temps_complet": 0.54}
EMPLOYEURS_ESS_FRANCE = 210_000


@pytest.fixture(scope="module")
def base_taille_demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("calibration")
    f = generer(d / "registre", profil="demo", graine=2024)["fichiers"]
    b = d / "demo.duckdb"
    construire(etablissements=f["etablissements"], unites_legales=f["unites_legales"],
               geolocalisation=f["geolocalisation"], emplois=f["emplois"],
               millesime="2024-01", base=b)
    return b


def test_chiffres_nationaux_a_10_pourcent_pres(base_taille_demo):
    r = indicateurs(base_taille_demo, "FR")
    c = r["chiffres_cles"]
    for cle, attendu in SEED.items():
        assert c[cle] == pytest.approx(attendu, rel=0.10), cle
    salaries_france = r["chiffres_cles"]["salaries_ess_territoire"]
    assert salaries_france > 10 * c["salaries"]
    employeurs_france = sum(x["etablissements_employeurs"] for x in r["regions"])
    assert employeurs_france == c["etablissements_employeurs"]
    assert "synthétiques" in r["avertissements"][0]


def test_employeurs_ess_en_france(base_taille_demo):
    from essqpv.base import ouvrir
    con = ouvrir(base_taille_demo)
    n = con.execute("SELECT count(*) FROM etablissements WHERE employeur").fetchone()[0]
    con.close()
    assert n == pytest.approx(EMPLOYEURS_ESS_FRANCE, rel=0.10)


def test_secteurs_proches_du_tableau_3(base_taille_demo):
    r = indicateurs(base_taille_demo, "FR")
    parts = {x["secteur"]: x for x in r["tableau_secteurs"]}
    assert parts["Action sociale"]["part_qpv"] == pytest.approx(0.485, abs=0.02)
    assert parts["Action sociale"]["part_france"] == pytest.approx(0.41, abs=0.02)
    assert parts["Enseignement"]["part_qpv"] == pytest.approx(0.12, abs=0.02)
