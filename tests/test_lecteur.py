"""The fast reader against DuckDB's strict CSV reader, line for line.

:func:`essqpv.sources.sirene.convertir` reads normal lines with the compiled scanner of
:mod:`essqpv.sources.lecteur` and hands every other line to DuckDB. Whatever the file, the
result must be the one DuckDB gives reading the whole file alone (``moteur="duckdb"``): the
same rows in the same order, the same rejects (line number, reason, bytes), the same thinning.
"""
from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from essqpv.errors import FichierInvalide
from essqpv.sources import lecteur, sirene
from essqpv.sources.lecteur import Condition

TEXTE = st.text(alphabet="abzAZ09 -'./éàÉ€", max_size=6)


def _champ() -> st.SearchStrategy[bytes]:
    # (long fields too: a line then spans many 8-byte words of the scanner)
    simple = st.one_of(TEXTE, TEXTE, st.text(alphabet="ab,é", min_size=9, max_size=40)
                       .map(lambda t: t.replace(",", ""))).map(lambda t: t.encode())
    cite = st.text(alphabet='ab,; "\n', max_size=6).map(
        lambda t: b'"' + t.replace('"', '""').encode() + b'"')
    bizarre = st.sampled_from([b'a"b', b' "x" ', b'"x" ', b' "x"', b'"x"y', b'"', b'""',
                               b'"a""b"', b'ab""', b'\xff', b'\xc3', b'\xed\xa0\x80',
                               b'\xf0\x9f\x98\x80', b'\xc3\xa9', b'\x00', b'\t', b' '])
    # sirens, well formed or nearly (a siren is stored as a number: lecteur.CLES_NUMERIQUES)
    siren = st.sampled_from([b"123456789", b"012345678", b"000000000", b"12345678",
                             b"1234567890", b"+12345678", b"-12345678", b'"123456789"',
                             b"12345678\xc3\xa9", b" 12345678", b"\xd9\xa1\xd9\xa2345678"])
    return st.one_of(simple, simple, cite, bizarre, siren)


def _ligne(n: int) -> st.SearchStrategy[bytes]:
    nombre = st.one_of(st.just(n), st.just(n), st.just(n), st.integers(0, n + 2))
    champs = nombre.flatmap(lambda m: st.lists(_champ(), min_size=m, max_size=m))
    normale = st.tuples(champs, st.booleans()).map(
        lambda x: b",".join(x[0]) + (b"," if x[1] and not x[0] else b""))
    return st.one_of(normale, normale, normale, st.sampled_from([b"", b"   ", b",", b'"']))


@st.composite
def _fichier(draw) -> tuple[int, bytes]:
    n = draw(st.integers(1, 5))
    lignes = draw(st.lists(_ligne(n), min_size=0, max_size=25))
    fin = draw(st.sampled_from([b"\n", b"\r\n"]))
    dernier = draw(st.booleans())
    entete = ",".join(f"c{i}" for i in range(n)).encode()
    corps = fin.join([entete, *lignes]) + (fin if dernier else b"")
    return n, corps


def _source(chemin, n: int) -> sirene.FichierSource:
    return sirene.FichierSource(role="etablissements", chemin=chemin, csv=chemin,
                                colonnes=[f"c{i}" for i in range(n)], separateur=",",
                                variante="test", taille=chemin.stat().st_size)


def _lire(source, colonnes, chemin, moteur, garder=None, toujours=(), numeroter=False):
    try:
        conv = sirene.convertir(source, colonnes, chemin, garder=garder, toujours=toujours,
                                moteur=moteur, numeroter=numeroter)
    except FichierInvalide:
        return "illisible"
    return (conv.cadre().collect().rows(), conv.lignes_lues,
            [(r.ligne, r.motif, r.contenu) for r in conv.rejets])


@pytest.fixture
def petits_blocs(monkeypatch):
    """Blocks of a few lines, so that block boundaries fall everywhere."""
    monkeypatch.setattr(lecteur, "TAILLE_BLOC", 97)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_fichier(), st.sampled_from(["non", "c0", "siren"]))
# A stray quote that DuckDB reads as opening a field running into the next line.
@example((5, b'c0,c1,c2,c3,c4\n\n,,,a"b,"\n,,,,'), "non")
@example((2, b'c0,c1\r\n\r\n   '), "non")
@example((1, b'c0\n\n'), "non")
@example((2, b'c0,c1\n"x"y,"x"y'), "non")
# A CR LF file whose quoted field holds a bare LF: DuckDB does not end a line there.
@example((5, b'c0,c1,c2,c3,c4\r\n\r\n,,,","\n;"'), "non")
# Sirens: numbers (quoted or not), nearly numbers, empty; kept or not.
@example((2, (b'c0,c1\n123456789,a\n"123456789",b\n012345678,c\n12345678,d\n,e\n'
              b'+12345678,f\n000000000,g\n"+12345678",h')), "siren")
def test_comme_duckdb(petits_blocs, tmp_path_factory, fichier, amincir):
    n, contenu = fichier
    dossier = tmp_path_factory.mktemp("lecteur")
    chemin = dossier / "f.csv"
    # Thinned on the first column, named c0 or siren (then read as a number where it is one).
    premiere = "siren" if amincir == "siren" else "c0"
    contenu = premiere.encode() + contenu.removeprefix(b"c0")
    chemin.write_bytes(contenu)
    source = _source(chemin, n)
    source.colonnes[0] = premiere
    colonnes = [premiere] + [f"c{i}" for i in range(1, n)] + ["absente"]
    garder = toujours = None
    if amincir != "non":
        garder = Condition(pl.col(premiere).str.len_bytes() > 1, dans=(premiere, pl.Series(
            ["ab", "zz", "é", "a,b", 'a"b', "123456789", "000000000", "+12345678"])))
        toujours = (premiere,)
    # Row numbers too, where DuckDB's are right (it cannot see blank lines, which it skips).
    physiques = contenu.split(b"\n")
    numeroter = not any(x in (b"", b"\r") for x in physiques[1:-1]) and not (
        len(physiques) > 1 and physiques[-1] in (b"", b"\r") and contenu.endswith(b"\n\n"))
    rapide = _lire(source, colonnes, dossier / "r.arrow", "rapide", garder, toujours or (),
                   numeroter)
    reference = _lire(source, colonnes, dossier / "d.arrow", "duckdb", garder,
                      toujours or (), numeroter)
    if reference == "illisible":
        assert rapide == reference
        return
    # Same rows, same counts, same rejects (line, reason)...
    assert rapide[:2] == reference[:2]
    assert [r[:2] for r in rapide[2]] == [r[:2] for r in reference[2]]
    # ...and each reject keeps the bytes of its physical line (DuckDB's own byte offsets
    # are not always those of the line start: the reference is not used for this).
    if b'"' not in contenu:
        for ligne, _, octets in rapide[2]:
            assert octets == physiques[ligne - 1].removesuffix(b"\r")


def test_champ_sur_deux_lignes_lu_par_duckdb(tmp_path):
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b'c0,c1\n1,"deux\nlignes"\n2,b\n3,"x\n')
    conv = sirene.convertir(_source(chemin, 2), ["c0", "c1"], tmp_path / "p.arrow")
    assert conv.lire().collect().rows() == [("1", "deux\nlignes"), ("2", "b")]
    assert [(r.ligne, r.motif) for r in conv.rejets] == [(5, "guillemets_invalides")] or \
        len(conv.rejets) == 1


def test_rejets_exacts_a_travers_les_blocs(petits_blocs, tmp_path):
    lignes = [b"c0,c1,c2"] + [f"{i},x{i},y".encode() for i in range(2, 400)]
    lignes[57] = b"57,trop,de,champs"
    lignes[123] = b"123,manque"
    lignes[300] = b"300,\xff\xfe,y"
    lignes[301] = b'301,"ok, virgule",y'
    lignes[302] = b'302,a"b,y'
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b"\n".join(lignes) + b"\n")
    conv = sirene.convertir(_source(chemin, 3), ["c0", "c1"], tmp_path / "p.arrow")
    rejets = [(r.ligne, r.motif, r.contenu) for r in conv.rejets]
    assert rejets == [(58, "champs_en_trop", lignes[57]), (124, "champs_manquants", lignes[123]),
                      (301, "octets_non_decodables", lignes[300])]
    df = conv.lire().collect()
    assert df.height == 398 - 3 and conv.lignes_lues == 398
    assert df.filter(pl.col("c0") == "301")["c1"].to_list() == ["ok, virgule"]
    assert df.filter(pl.col("c0") == "302")["c1"].to_list() == ['a"b']
    assert df["c0"].cast(pl.Int64).is_sorted()


def test_lignes_tres_longues(tmp_path):
    """Lines of 64 KiB and more (the scanner's per-word counts are kept modulo 2^16: such
    lines are read field by field) are read as DuckDB reads them."""
    long = b"x" * 70000
    lignes = [b"c0,c1,c2", b"1,a,b", b"2," + long + b",b", b"3," + long, b'4,"' + long + b'",b',
              b"5," + long + b",b,c", b'6,"a,' + long + b'""z",' + "é".encode() * 9,
              b"7,\xff" + long + b",b", b"8,a,b"]
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b"\n".join(lignes) + b"\n")
    source = _source(chemin, 3)
    rapide = _lire(source, ["c0", "c1", "c2"], tmp_path / "r.arrow", "rapide")
    reference = _lire(source, ["c0", "c1", "c2"], tmp_path / "d.arrow", "duckdb")
    assert rapide[:2] == reference[:2]
    assert [r[:2] for r in rapide[2]] == [r[:2] for r in reference[2]]
    assert [r[0][0] for r in rapide[0]] == ["1", "2", "4", "6", "8"]
    assert [(r[0], r[1]) for r in rapide[2]] == [(4, "champs_manquants"), (6, "champs_en_trop"),
                                                 (8, "octets_non_decodables")]


@pytest.mark.parametrize("contenu", [b"c0,c1\r\n1,a\n2,b\n", b"c0,c1\n1,a\r\n2,b\n",
                                     b'c0,c1\r\n1,"a,b"\r\n\r\n2,b\r\n3,c'])
def test_fins_de_ligne_comme_l_entete(tmp_path, contenu):
    """Lines end as the header does (CR LF or LF); a line ending otherwise makes DuckDB read
    the whole file, which it reads its own way (here: not at all)."""
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(contenu)
    source = _source(chemin, 2)
    rapide = _lire(source, ["c0", "c1"], tmp_path / "r.arrow", "rapide")
    assert rapide == _lire(source, ["c0", "c1"], tmp_path / "d.arrow", "duckdb")
    if contenu.count(b"\r\n") == contenu.count(b"\n"):  # CR LF throughout
        assert rapide[0] == [("1", "a,b"), ("2", "b"), ("3", "c")]
    else:
        assert rapide == "illisible"
        # ... with a one-line French message naming the first such line
        with pytest.raises(FichierInvalide, match="la ligne 2 ne se termine pas comme l'en-tête"):
            sirene.convertir(source, ["c0", "c1"], tmp_path / "e.arrow")


def test_blocs_de_lignes_tres_courtes(tmp_path):
    """A block holding more lines than the scanner expected is scanned again with more
    room (the room is learnt from block to block)."""
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b"c0,c1\n" + b"".join(f"{i},{i % 7}\n".encode() for i in range(30000)))
    conv = sirene.convertir(_source(chemin, 2), ["c0", "c1"], tmp_path / "p.arrow")
    df = conv.lire().collect()
    assert conv.lignes_lues == df.height == 30000 and conv.rejets == []
    assert df["c0"].cast(pl.Int64).to_list() == list(range(30000))


def test_numeros_de_ligne_malgre_les_lignes_vides(tmp_path):
    """``numeroter`` gives each row its physical line, blank lines and rejects included."""
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b"c0,c1\n1,a\n\n3,b\n4,c,x\n\n\n7,d\n")
    conv = sirene.convertir(_source(chemin, 2), ["c0"], tmp_path / "p.arrow",
                            numeroter=True)
    assert conv.lire().collect().rows() == [("1", 2), ("3", 4), ("7", 8)]
    assert [r.ligne for r in conv.rejets] == [5]
