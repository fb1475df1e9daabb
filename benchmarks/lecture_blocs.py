"""The cost of cutting a CSV file into blocks of whole lines (``lecteur._blocs``), against a
plain read of the same file: CPU time and minor page faults of each pass, best of
``--repetitions`` (the machine is shared: the best pass is the least disturbed one).

With ``--colonnes a,b``: also the parse of one block (16 MiB from the middle of the file,
whole lines) into those columns, every value as text, single-threaded, by pyarrow's CSV
reader (what the reader uses; with and without quote handling) and by polars': CPU ms of the
best pass and bytes per second (the floor of a read that must see every byte). With
``--pandas``: the CPU time of importing pandas once numpy, pyarrow and polars are loaded (in
a fresh process each time: what a build paid when the reader imported it).

Run (``PYTHONPATH`` picks the code measured, to alternate two versions)::

    nice .venv/bin/python benchmarks/lecture_blocs.py <fichier.csv> [--repetitions 5] \
        [--colonnes siren,etatAdministratifEtablissement] [--separateur ,]

Prints one line per pass kind: CPU s, minor faults, bytes given.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path


def _mesurer(passe) -> tuple[float, int, int]:
    avant = resource.getrusage(resource.RUSAGE_SELF)
    c = time.process_time()
    n = passe()
    apres = resource.getrusage(resource.RUSAGE_SELF)
    return time.process_time() - c, apres.ru_minflt - avant.ru_minflt, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("fichier", type=Path)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--colonnes", default="")
    ap.add_argument("--separateur", default=",")
    ap.add_argument("--pandas", action="store_true")
    a = ap.parse_args()
    from essqpv.sources import lecteur

    def blocs() -> int:
        return sum(len(b) for b, _ in lecteur._blocs(a.fichier, lecteur.TAILLE_BLOC))

    def lecture() -> int:
        n = 0
        with open(a.fichier, "rb", buffering=0) as flux:
            while morceau := flux.read(lecteur.TAILLE_BLOC):
                n += len(morceau)
        return n

    for nom, passe in (("lecture simple", lecture), ("blocs du lecteur", blocs)):
        mesures = [_mesurer(passe) for _ in range(a.repetitions)]
        cpu, fautes, n = min(mesures)
        print(f"{nom}\t{cpu:.3f} s CPU\t{fautes} fautes de page\t{n} octets")
    if a.colonnes:
        _analyseurs(a.fichier, a.colonnes.split(","), a.separateur, a.repetitions)
    if a.pandas:
        _import_pandas(a.repetitions)


def _import_pandas(repetitions: int) -> None:
    import subprocess
    import sys
    code = ("import time, numpy, pyarrow, polars\n"
            "c = time.process_time()\nimport pandas\nprint(time.process_time() - c)")
    cpu = min(float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                   text=True, check=True).stdout)
              for _ in range(repetitions))
    print(f"import de pandas (numpy, pyarrow et polars chargés)\t{cpu:.3f} s CPU")


def _analyseurs(fichier: Path, voulues: list[str], sep: str, repetitions: int) -> None:
    """pyarrow's and polars' CSV readers on one block, into ``voulues`` only."""
    import os
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    import polars as pl
    import pyarrow as pa
    import pyarrow.csv as pacsv
    with open(fichier, "rb") as flux:
        entete = flux.readline().decode("utf-8-sig").rstrip("\r\n").split(sep)
        flux.seek(max(0, fichier.stat().st_size // 2 - (8 << 20)))
        flux.readline()
        bloc = flux.read(16 << 20)
    bloc = bloc[:bloc.rfind(b"\n") + 1]
    indices = [entete.index(c) for c in voulues]

    def arrow(guillemets) -> int:
        return pacsv.read_csv(
            pa.BufferReader(bloc),
            read_options=pacsv.ReadOptions(column_names=entete, use_threads=False,
                                           block_size=len(bloc) + 1),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=guillemets,
                                             double_quote=True, escape_char=False,
                                             invalid_row_handler=lambda r: "skip"),
            convert_options=pacsv.ConvertOptions(
                include_columns=voulues, column_types={c: pa.large_string() for c in entete},
                strings_can_be_null=True, quoted_strings_can_be_null=True)).num_rows

    def polars() -> int:
        return pl.read_csv(bloc, has_header=False, columns=indices, infer_schema=False,
                           separator=sep, truncate_ragged_lines=True).height

    for nom, passe in (("pyarrow", lambda: arrow('"')),
                       ("pyarrow sans guillemets", lambda: arrow(False)),
                       ("polars", polars)):
        cpu = min(_mesurer(passe)[0] for _ in range(repetitions))
        print(f"{nom} ({', '.join(voulues)})\t{cpu * 1000:.1f} ms CPU\t"
              f"{len(bloc) / cpu / 1e6:.0f} Mo/s")


if __name__ == "__main__":
    main()
