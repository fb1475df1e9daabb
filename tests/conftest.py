"""Shared fixtures: paths to the real reference data shipped in tests/data/partage."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

DONNEES_TESTS = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def partage() -> Path:
    """The real reference files the tests read, shipped in tests/data/partage (byte-identical
    copies of the official files; provenance in its LISEZMOI.md and SOURCES.md)."""
    return DONNEES_TESTS / "partage"


def _construire_demo(dossier: Path, avec_emplois: bool) -> Path:
    from essqpv.base import construire
    from essqpv.synthese import generer
    registre = dossier / "registre"
    if not (registre / "LISEZMOI.txt").exists():
        r = generer(registre, profil="test", graine=2024, millesime="2024-01")
        (dossier / "malformees.json").write_text(json.dumps(r["malformees"]), "utf-8")
    f = {p.name: p for p in registre.iterdir()}
    base = dossier / ("demo.duckdb" if avec_emplois else "demo_sans_emplois.duckdb")
    construire(etablissements=f["StockEtablissement_utf8.zip"],
               unites_legales=f["StockUniteLegale_utf8.csv"],
               geolocalisation=f["GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.csv"],
               emplois=f["emplois.csv"] if avec_emplois else None,
               millesime="2024-01", base=base)
    return base


@pytest.fixture(scope="session")
def dossier_demo(tmp_path_factory) -> Path:
    """A folder holding the synthetic register of profile ``test`` (seed 2024)."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="session")
def base_demo(dossier_demo) -> Path:
    """A real base built from the synthetic register (profile ``test``), with employment file.

    Read-only for the tests: copy it before writing into it.
    """
    return _construire_demo(dossier_demo, avec_emplois=True)


@pytest.fixture(scope="session")
def base_sans_emplois(dossier_demo) -> Path:
    """The same register built without the employment file (estimated headcounts)."""
    return _construire_demo(dossier_demo, avec_emplois=False)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches Debian's Chromium (its own browser download does not work
    here), headless, without the services that would reach the network."""
    from tests._serveur import ARGUMENTS_CHROMIUM, CHROMIUM
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM),
            "args": ARGUMENTS_CHROMIUM}
