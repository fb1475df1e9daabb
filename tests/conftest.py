"""Shared fixtures: paths to the real reference data of ../shared/data."""
from __future__ import annotations

from pathlib import Path

import pytest

RACINE = Path(__file__).resolve().parents[1]
PARTAGE = RACINE.parent / "shared" / "data"
DONNEES_TESTS = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def partage() -> Path:
    """The real reference data folder (../shared/data); skip if it is absent."""
    if not PARTAGE.exists():
        pytest.skip("../shared/data absent")
    return PARTAGE
