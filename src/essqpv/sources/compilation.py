"""Compile the reader's kernels once, at installation (``make`` runs this module).

numba compiles the kernels of :mod:`essqpv.sources._noyaux` on their first use and keeps
them in its cache (next to the module, or in the user's cache when that is not writable):
≈ 10 s, once. Doing it here, on a small file read through the very calls a build makes,
keeps that wait out of the first ``essqpv construire`` (or ``essqpv demo``).

``python -m essqpv.sources.compilation``
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

__all__ = ["compiler"]


def compiler() -> float:
    """Read a small CSV (normal lines, quoted fields, a malformed line) with and without
    thinning, and count legal units both ways (sorted, unsorted): every kernel is then
    compiled for the types a build gives it. Returns the seconds taken."""
    import polars as pl

    from essqpv.base import _cles_siren, _compter_sans_unite_legale
    from essqpv.sources import sirene
    from essqpv.sources.lecteur import Condition

    debut = time.perf_counter()
    lignes = [b"siren,etat,nom"] + [f"{100000000 + i},{'AF'[i % 2]},n{i}".encode()
                                    for i in range(200)]
    lignes[5] = b'100000004,A,"nom, avec virgule"'
    lignes[7] = b"100000006,A"
    with tempfile.TemporaryDirectory() as dossier:
        chemin = Path(dossier) / "essai.csv"
        chemin.write_bytes(b"\n".join(lignes) + b"\n")
        source = sirene.FichierSource(role="etablissements", chemin=chemin, csv=chemin,
                                      colonnes=["siren", "etat", "nom"], separateur=",",
                                      variante="compilation", taille=chemin.stat().st_size)
        garder = Condition(pl.col("etat") == "A",
                           dans=("siren", pl.Series([f"{100000000 + i}" for i in range(0, 200, 3)])))
        sirene.convertir(source, ["siren", "etat", "nom"], Path(dossier) / "a.parquet",
                         garder=garder, toujours=("siren", "etat"))
        sirene.convertir(source, ["siren", "nom"], Path(dossier) / "b.parquet", numeroter=True)
    sirens = pl.LazyFrame({"siren": ["100000001", "100000002", "12", None]})
    for ordre in (sirens, sirens.reverse()):
        u, a = pl.collect_all([_cles_siren(ordre), _cles_siren(sirens)])
        _compter_sans_unite_legale(u, a)
    return time.perf_counter() - debut


if __name__ == "__main__":
    print("Compilation des noyaux de lecture des fichiers Sirene (une seule fois)…", flush=True)
    print(f"  faite en {compiler():.1f} s")
