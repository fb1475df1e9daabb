"""Installation on a machine without a C compiler (slow: ≈ 1 min; marked ``installation``).

The project is installed with pip into a fresh virtual environment whose PATH holds no
compiler (no ``cc``, ``gcc``, ``clang``; ``CC``/``CXX`` point to nothing), then that
environment's ``essqpv`` writes the synthetic register (profile ``test``) and builds its base.
Nothing of the project is compiled: every dependency comes as a wheel, the address
geocoder's (addok and its plugins) included.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import duckdb
import pytest

RACINE = Path(__file__).resolve().parents[1]


@pytest.mark.installation
def test_installation_sans_compilateur_puis_base_de_demo(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    vide = tmp_path / "bin-sans-compilateur"
    vide.mkdir()
    chemin = os.pathsep.join([str(env_dir / "bin"), str(vide)])
    for outil in ("cc", "gcc", "clang", "c++", "g++", "cython"):
        assert shutil.which(outil, path=chemin) is None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=chemin, CC="/inexistant/cc", CXX="/inexistant/c++", HOME=str(tmp_path),
               XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME",
                                             str(Path.home() / ".cache")))
    # (a copy of the sources, without any local build or virtual environment)
    source = tmp_path / "essqpv"
    shutil.copytree(RACINE, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "demo", "work", "__pycache__", ".pytest_cache",
        "*.so"))
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # the project with its address geocoder, as make install does (addok without its pin on a
    # source-only python-geohash: see pyproject.toml)
    r = subprocess.run([*pip, f"{source}[adresses]"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([*pip, "--no-deps", "-r", str(source / "requirements-addok.txt")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([str(env_dir / "bin" / "python"), "-c",
                        "import addok.core, addok_fr, addok_france, addok_sqlite_store, geohash;"
                        "print(geohash.encode(48.9, 2.36, 5))"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "u09wj", r.stderr[-3000:]
    assert not list((env_dir / "lib").rglob("essqpv/**/*.so"))
    essqpv = str(env_dir / "bin" / "essqpv")
    registre, base = tmp_path / "registre", tmp_path / "demo.duckdb"
    r = subprocess.run([essqpv, "synthese", "--dossier", str(registre), "--profil", "test"],
                       env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(
        [essqpv, "construire", "-e", str(registre / "StockEtablissement_utf8.zip"),
         "-u", str(registre / "StockUniteLegale_utf8.csv"),
         "-g", str(registre / "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.csv"),
         "-m", "2024-01", "-b", str(base)], env=env, capture_output=True, text=True,
        timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    con = duckdb.connect(str(base), read_only=True)
    try:
        n, synthetique = con.execute(
            "SELECT (SELECT count(*) FROM etablissements), synthetique FROM millesimes"
        ).fetchone()
    finally:
        con.close()
    assert n > 10_000 and synthetique is True
