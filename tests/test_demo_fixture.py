"""The synthetic register read back by the loaders, and the whole pipeline on it."""
from __future__ import annotations

from essqpv import base as B
from essqpv.indicators import indicateurs
from tests._fabrique import verifier_reconciliation


def test_registre_synthetique_relu_sans_autre_rejet(base_demo):
    r = B.controle(base_demo)[0]
    # the generator plants malformed lines on purpose: exactly those are rejected
    assert r["lignes_rejetees"] > 0
    verifier_reconciliation(r)
    assert B.metadonnees(base_demo)["synthetique"] is True


def test_indicateurs_marques_synthetiques(base_demo, base_sans_emplois):
    r = indicateurs(base_demo, "FR")
    assert "synthétiques" in r["avertissements"][0]
    assert r["chiffres_cles"]["estime"] is False
    r2 = indicateurs(base_sans_emplois, "FR")
    assert r2["chiffres_cles"]["estime"] is True and r2["chiffres_cles"]["part_femmes"] is None


def test_rejets_exactement_les_lignes_plantees(base_demo, dossier_demo):
    """The loaders reject exactly the malformed lines the generator plants, no other."""
    import json

    from essqpv.base import ouvrir
    plantees = json.loads((dossier_demo / "malformees.json").read_text("utf-8"))
    con = ouvrir(base_demo)
    lues = con.execute("SELECT fichier, ligne, motif FROM rejets ORDER BY fichier, ligne"
                       ).fetchall()
    con.close()
    attendu = sorted((f, m["ligne"], m["motif"]) for f, liste in plantees.items() for m in liste)
    assert sorted(lues) == attendu
    assert len(attendu) == 15
