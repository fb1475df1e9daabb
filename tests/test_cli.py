"""The command line: help everywhere, one clear French line and exit 1 on user mistakes."""
from __future__ import annotations

import shutil
import sys

import click
import pytest
import typer

from essqpv.cli import app
from essqpv.cli._commun import executer
from tests import _fabrique as F


def _commandes(groupe: click.Group, prefixe=()):
    for nom, cmd in groupe.commands.items():
        yield (*prefixe, nom)
        if isinstance(cmd, click.Group):
            yield from _commandes(cmd, (*prefixe, nom))


def test_chaque_commande_a_une_aide(capsys, monkeypatch):
    groupe = typer.main.get_command(app)
    commandes = list(_commandes(groupe))
    assert {("construire",), ("controle",), ("indicateurs",), ("demo",)} <= set(commandes)
    for c in commandes:
        monkeypatch.setattr(sys, "argv", ["essqpv", *c, "--help"])
        assert executer(app) == 0, c
        texte = capsys.readouterr().out
        assert "Usage" in texte and len(texte) > 100, c


def _lancer(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["essqpv", *args])
    code = executer(app)
    sortie = capsys.readouterr()
    return code, sortie.out + sortie.err


@pytest.fixture()
def fichiers(tmp_path):
    e = F.ecrire(tmp_path / "etab.csv", "etablissements", [F.etab("10000000100011", "93013")])
    u = F.ecrire(tmp_path / "ul.csv", "unites_legales", [F.ul("100000001", "9220")])
    return tmp_path, e, u


@pytest.mark.parametrize("cas", ["fichier_absent", "mauvais_fichier", "colonne_absente",
                                 "zip_corrompu", "qpv_sans_crs"])
def test_erreurs_en_une_ligne(cas, fichiers, monkeypatch, capsys, partage):
    d, e, u = fichiers
    args = {"etab": e, "ul": u, "qpv": None}
    attendu = {"fichier_absent": "Fichier introuvable", "mauvais_fichier": "unités légales",
               "colonne_absente": "colonne obligatoire absente : siret",
               "zip_corrompu": "ZIP corrompue", "qpv_sans_crs": "système de coordonnées"}[cas]
    if cas == "fichier_absent":
        args["etab"] = d / "absent.csv"
    elif cas == "mauvais_fichier":
        args["etab"] = u
    elif cas == "colonne_absente":
        f = d / "sans_siret.csv"
        f.write_text(e.read_text("utf-8").replace("siret,", "identifiant,", 1), "utf-8")
        args["etab"] = f
    elif cas == "zip_corrompu":
        f = d / "stock.zip"
        f.write_bytes(b"PK\x03\x04 ceci n'est pas une archive")
        args["etab"] = f
    else:
        for ext in ("shp", "shx", "dbf"):
            shutil.copy(partage / f"qpv/2015/QP_METROPOLE_LB93.{ext}", d / f"qpv.{ext}")
        args["qpv"] = d / "qpv.shp"
    ligne = ["construire", "-e", str(args["etab"]), "-u", str(args["ul"]), "-m", "2024-01",
             "-b", str(d / "obs.duckdb")] + (["--qpv", str(args["qpv"])] if args["qpv"] else [])
    code, texte = _lancer(monkeypatch, capsys, *ligne)
    assert code == 1
    assert "Traceback" not in texte
    assert attendu.lower() in texte.lower().replace("\n", " "), texte
    assert texte.strip().splitlines()[-1].startswith("Erreur :")
    assert not (d / "obs.duckdb").exists()
    with pytest.raises(Exception):
        _lancer(monkeypatch, capsys, "--debug", *ligne)


def test_territoire_inconnu_suggere(base_demo, monkeypatch, capsys):
    code, texte = _lancer(monkeypatch, capsys, "indicateurs", "-b", str(base_demo), "-t",
                          "Seine St Denis")
    assert code == 1 and "Vouliez-vous dire" in texte and "DEP:93" in texte


def test_controle_json(base_demo, monkeypatch, capsys):
    import json
    code, texte = _lancer(monkeypatch, capsys, "controle", "-b", str(base_demo),
                          "--format", "json")
    assert code == 0
    r = json.loads(texte)[0]
    for cle in ("lignes_lues", "lignes_rejetees", "rejets_par_motif", "acceptees", "actives",
                "fermees", "ess", "non_ess", "exclues_activite", "dans_perimetre",
                "localisees", "non_localisees", "non_localisees_par_motif", "en_qpv",
                "hors_qpv", "etablissements_sans_unite_legale", "unites_legales",
                "geolocalisation", "emplois", "accord_qpv_insee"):
        assert cle in r, cle


def test_reference_des_commandes_a_jour():
    """docs/commandes.md is generated from the CLI: regenerate with scripts/reference_cli.py."""
    import importlib.util
    from pathlib import Path
    racine = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("reference_cli",
                                                  racine / "scripts" / "reference_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (racine / "docs" / "commandes.md").read_text("utf-8") == module.rendre(), \
        "docs/commandes.md est périmé : python scripts/reference_cli.py"
