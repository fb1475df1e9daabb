"""French Polynesia (outside Sirene): its QPV say "non couvert par Sirene", never zero; the
national totals say what they exclude."""
from __future__ import annotations

from essqpv.couverture import NON_COUVERT
from essqpv.indicators import indicateurs, indicateurs_qpv


def test_qpv_de_polynesie_non_couvert(base_demo):
    r = indicateurs(base_demo, "QPV:QN98701M")
    assert r["territoire"]["libelle"] == "Ahititera - Arahiri"
    assert r["couverture"] == NON_COUVERT
    assert r["chiffres_cles"]["etablissements_employeurs"] is None
    assert r["chiffres_cles"]["salaries"] is None
    assert any(NON_COUVERT in a for a in r["avertissements"])


def test_liste_des_qpv_ne_donne_pas_zero(base_demo):
    lignes = {q["code_qp"]: q for q in indicateurs_qpv(base_demo, territoire="FR")}
    p = lignes["QN98701M"]
    assert p["hors_champ_sirene"] and p["couverture"] == NON_COUVERT
    assert p["etablissements_employeurs"] is None and p["salaries"] is None
    assert sum(1 for q in lignes.values() if q.get("couverture") == NON_COUVERT) == 88
    assert lignes["QN09301I"].get("couverture") is None


def test_totaux_nationaux_disent_ce_qu_ils_excluent(base_demo):
    av = indicateurs(base_demo, "FR")["avertissements"]
    assert any("Totaux hors des 88 QPV de Polynésie française" in a for a in av)
    assert not any("Polynésie" in a for a in indicateurs(base_demo, "DEP:93")["avertissements"])
