"""The dashboard's panel of the series since 2008, in a real Chromium."""
from __future__ import annotations

from essqpv import historique as HI
from tests._serveur import exiger_navigateur, servir, servir_dossier
from tests.test_historique_sorties import base_historique  # noqa: F401  (fixture)

exiger_navigateur()


def test_panneau_du_tableau_de_bord(base_historique, page):
    from essqpv.web import creer_application
    s = HI.evolution(base_historique, "DEP:93", "2024")
    with servir(creer_application(base_historique)) as url:
        erreurs: list[str] = []
        page.on("pageerror", lambda e: erreurs.append(str(e)))
        page.on("console", lambda m: erreurs.append(m.text) if m.type == "error" else None)
        page.goto(f"{url}/?territoire=DEP:93")
        page.locator("#bloc-evolution").wait_for(state="visible", timeout=20000)
        lignes = page.locator("#table-evolution tbody tr")
        assert lignes.count() == len(s["points"])
        premiere = lignes.nth(0).locator("td").nth(0).inner_text()
        assert premiere.replace("\u202f", "").replace("\xa0", "") == \
            str(s["qpv"]["etablissements"][0])
        assert page.locator("#graphique-evolution svg polyline").count() >= 2
        assert "géographie des quartiers 2024" in \
            page.locator("#evolution-geographie").inner_text().lower()
        assert "historisés" in page.locator("#evolution-effectifs").inner_text()
        assert not erreurs, erreurs


def test_panneau_du_site_statique(base_historique, page, tmp_path):
    """The static site (essqpv publier) has the series panel too: its files are the published
    answers, read by the same page without a server of essqpv."""
    import json

    from essqpv.web import publier
    sortie = tmp_path / "site"
    publier(base_historique, sortie, territoires=["DEP:93"], fichiers="aucun", rapports=False)
    s = HI.evolution(base_historique, "DEP:93")
    fichier = sortie / "donnees" / s["millesime"] / "strict" / "evolution" / "DEP_93.json"
    assert json.loads(fichier.read_text("utf-8")) == json.loads(json.dumps(s))
    assert 'data-evolution="oui"' in (sortie / "index.html").read_text("utf-8")

    with servir_dossier(sortie) as url:
        erreurs: list[str] = []
        page.on("pageerror", lambda e: erreurs.append(str(e)))
        page.goto(f"{url}/?territoire=DEP:93")
        page.locator("#bloc-evolution").wait_for(state="visible", timeout=20000)
        assert page.locator("#table-evolution tbody tr").count() == len(s["points"])
        assert "historisés" in page.locator("#evolution-effectifs").inner_text()
        assert not erreurs, erreurs
