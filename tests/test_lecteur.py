"""The CSV reader (:mod:`essqpv.sources.lecteur`, pyarrow): real-file quirks, physical lines.

The quirk files of ``tests/data/lecteur/`` were read by the project's former reader (a Cython
scanner with DuckDB judging doubtful lines) before it was replaced; what it gave is in
``attendu_ancien_lecteur.json`` and the new reader must give the same rows and rejects,
except where the former one was wrong (a stray quote swallowing the rest of the file; line
numbers counted in records, not physical lines, after a multi-line record): those two
differences are asserted explicitly.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from essqpv.sources import lecteur, sirene
from essqpv.sources.lecteur import Condition

DONNEES = Path(__file__).resolve().parent / "data" / "lecteur"
ANCIEN = json.loads((DONNEES / "attendu_ancien_lecteur.json").read_text("utf-8"))
COLONNES = ["siret", "siren", "libelleVoieEtablissement", "libelleCommuneEtablissement",
            "enseigne1Etablissement", "etatAdministratifEtablissement"]


def _lire_fichier(chemin: Path, dossier: Path) -> tuple[dict, sirene.Conversion]:
    src = sirene.preparer(chemin, "etablissements", dossier)
    conv = sirene.convertir(src, COLONNES, dossier / f"{chemin.stem}.arrow", numeroter=True)
    df = conv.lire().collect()
    return {"lignes_lues": conv.lignes_lues, "lignes": df["_ligne"].to_list(),
            "lignes_valeurs": [list(r) for r in df.drop("_ligne").rows()],
            "rejets": [[r.ligne, r.motif, r.contenu.decode("utf-8", "backslashreplace")]
                       for r in conv.rejets]}, conv


@pytest.mark.parametrize("nom", ["accents.csv", "separateurs_cites.csv", "crlf.csv", "bom.csv",
                                 "derniere_ligne_tronquee.csv",
                                 "derniere_ligne_tronquee_guillemet.csv"])
def test_memes_lignes_et_rejets_que_l_ancien_lecteur(nom, tmp_path):
    obtenu, conv = _lire_fichier(DONNEES / nom, tmp_path)
    assert obtenu == ANCIEN[nom]
    assert conv.equilibree


def test_valeurs_des_bizarreries(tmp_path):
    """A few values read back, as text, exactly."""
    lu = {n: _lire_fichier(DONNEES / n, tmp_path)[0]["lignes_valeurs"]
          for n in ("accents.csv", "separateurs_cites.csv", "bom.csv", "crlf.csv")}
    assert lu["accents.csv"][2][3] == "SAINT-ÉTIENNE"
    assert lu["accents.csv"][4][4] == "CAFÉ DES ÂGES – 5 €"
    assert lu["separateurs_cites.csv"][1][2] == "DE LA PAIX, BIS"
    assert lu["separateurs_cites.csv"][3][4] == 'LE "FOYER"'
    assert lu["separateurs_cites.csv"][5][4] == 'A,B,"C",D'
    assert lu["bom.csv"][0][0] == "00032517500016"  # the first column, despite the BOM
    assert all(not v.endswith("\r") for r in lu["crlf.csv"] for v in r if v)


def test_saut_de_ligne_cite_numeros_physiques(tmp_path):
    """A quoted field over lines 5-6 is one record; the later reject has its physical line
    (13: the former reader said 12, counting records)."""
    obtenu, conv = _lire_fichier(DONNEES / "saut_de_ligne_cite.csv", tmp_path)
    ancien = ANCIEN["saut_de_ligne_cite.csv"]
    assert obtenu["lignes_valeurs"] == ancien["lignes_valeurs"]
    assert obtenu["lignes_valeurs"][3][2] == "BATIMENT A\nESCALIER 2"
    assert [r[:2] for r in obtenu["rejets"]] == [[13, "champs_manquants"]]
    assert [r[:2] for r in ancien["rejets"]] == [[12, "champs_manquants"]]
    assert obtenu["rejets"][0][2] == ancien["rejets"][0][2]
    # 1 header + 29 kept + 1 rejected + 1 continuation line = 32 physical lines
    assert (conv.lignes_lues, conv.lignes_acceptees, conv.lignes_suites) == (31, 29, 1)
    assert obtenu["lignes"][:5] == [2, 3, 4, 5, 7]


def test_guillemet_isole_ne_perd_que_sa_ligne(tmp_path):
    """A quote opening a field never closed (line 9) rejects line 9 only; the former reader
    lost lines 10 to 31. A quote inside a field is a literal quote."""
    obtenu, conv = _lire_fichier(DONNEES / "guillemet_isole.csv", tmp_path)
    ancien = ANCIEN["guillemet_isole.csv"]
    assert ancien["lignes_lues"] == 8  # (the loss)
    assert obtenu["lignes_lues"] == 30 and conv.equilibree
    assert [r[:2] for r in obtenu["rejets"]] == [[9, "guillemets_invalides"],
                                                 [16, "champs_en_trop"]]
    assert obtenu["rejets"][0] == ancien["rejets"][0]
    assert obtenu["lignes_valeurs"][:7] == ancien["lignes_valeurs"]
    assert obtenu["lignes_valeurs"][2][4] == 'CHEZ "MOMO'
    assert obtenu["lignes"] == [n for n in range(2, 32) if n not in (9, 16)]


# --------------------------------------------------------------------------- property

_TEXTE = st.text(alphabet="abzAZ09 -'./éàÉ€", max_size=6)


def _champ_simple() -> st.SearchStrategy[str]:
    return _TEXTE


def _champ_cite() -> st.SearchStrategy[str]:
    return st.text(alphabet='ab,; "é', min_size=0, max_size=6)


def _champ_multiligne() -> st.SearchStrategy[str]:
    return st.lists(st.text(alphabet="ab é,", max_size=5), min_size=2, max_size=3).map(
        "\n".join)


def _encoder(valeur: str, cite: bool) -> str:
    if cite or any(c in valeur for c in ',"\n'):
        return '"' + valeur.replace('"', '""') + '"'
    return valeur


@st.composite
def _fichier(draw):
    """(bytes, expected rows with their physical line, expected rejects (line, reason)),
    for a file planted with every kind of fault."""
    n = draw(st.integers(2, 5))
    fin = draw(st.sampled_from(["\n", "\r\n"]))
    entete = ",".join(f"c{i}" for i in range(n))
    sorties: list[str] = [entete]
    lignes_attendues: list[tuple[int, tuple]] = []
    rejets: list[tuple[int, str]] = []
    numero = 2
    elements = draw(st.lists(st.sampled_from(
        ["simple"] * 6 + ["cite", "multiligne", "manque", "trop", "octets", "guillemet",
                          "milieu", "vide", "double_siret"]), max_size=30))
    vus: list[str] = []
    for e in elements:
        if e in ("simple", "cite", "multiligne", "double_siret"):
            valeurs = [draw(_champ_simple()) for _ in range(n)]
            valeurs[0] = f"{draw(st.integers(0, 10**6)):014d}"
            cites = [False] * n
            if e == "cite":
                valeurs[1] = draw(_champ_cite())
                cites[1] = True
            if e == "multiligne":
                valeurs[n - 1] = draw(_champ_multiligne())
            if e == "double_siret" and vus:
                valeurs[0] = vus[0]
            texte = ",".join(_encoder(v, c) for v, c in zip(valeurs, cites))
            sorties.append(texte)
            attendu = tuple(v if v != "" else None for v in valeurs)
            if valeurs[0] in vus:
                rejets.append((numero, "siret_en_double"))
            else:
                vus.append(valeurs[0])
                lignes_attendues.append((numero, attendu))
            numero += texte.count("\n") + 1
            continue
        if e == "vide":
            sorties.append("")
            numero += 1
            continue
        if e == "milieu":  # a literal quote inside an unquoted field
            valeurs = [f"{2 * 10**7 + numero:014d}"] + ['a"b'] + [f"x{i}" for i in range(2, n)]
            sorties.append(",".join(valeurs))
            vus.append(valeurs[0])
            lignes_attendues.append((numero, tuple(valeurs)))
            numero += 1
            continue
        brut = {"manque": ",".join(["m"] * (n - 1)), "trop": ",".join(["t"] * (n + 1)),
                "octets": "\udcff" + ",z" * (n - 1),
                "guillemet": '"' + ",g" * (n - 1)}[e]
        motif = {"manque": "champs_manquants", "trop": "champs_en_trop",
                 "octets": "octets_non_decodables", "guillemet": "guillemets_invalides"}[e]
        sorties.append(brut)
        rejets.append((numero, motif))
        numero += 1
        if e == "guillemet":  # followed by lines without quotes: it never closes
            for _ in range(lecteur.SUITE_MAX_LIGNES):
                valeurs = [f"{10**7 + numero:014d}"] + [f"s{i}" for i in range(1, n)]
                sorties.append(",".join(valeurs))
                vus.append(valeurs[0])
                lignes_attendues.append((numero, tuple(valeurs)))
                numero += 1
    dernier = draw(st.booleans())
    contenu = fin.join(sorties) + (fin if dernier else "")
    physiques = contenu.count("\n") + (1 if not contenu.endswith("\n") else 0)
    return (n, contenu.encode("utf-8", "surrogateescape"), lignes_attendues, rejets,
            physiques)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(_fichier(), st.sampled_from([64, 97, 1000, 1 << 20]), st.booleans())
def test_chaque_ligne_physique_comptee(monkeypatch, tmp_path_factory, fichier, bloc, amincir):
    """Random files with every fault planted, read in blocks of any size (boundaries fall
    inside multi-line records): exactly the rows and rejects expected, at their physical
    lines, and the lines add up."""
    n, contenu, attendues, rejets, physiques = fichier
    monkeypatch.setattr(lecteur, "TAILLE_BLOC", bloc)
    dossier = tmp_path_factory.mktemp("lecteur")
    chemin = dossier / "f.csv"
    chemin.write_bytes(contenu)
    source = sirene.FichierSource(role="etablissements", chemin=chemin, csv=chemin,
                                  colonnes=["siret"] + [f"c{i}" for i in range(1, n)],
                                  separateur=",", variante="test", taille=len(contenu))
    colonnes = ["siret"] + [f"c{i}" for i in range(1, n)]
    garder = Condition(pl.col("siret").is_not_null()) if amincir else None
    contenu = contenu.replace(b"c0,", b"siret,", 1)
    chemin.write_bytes(contenu)
    conv = sirene.convertir(source, colonnes, dossier / "r.arrow", garder=garder,
                            toujours=("siret",) if amincir else (), numeroter=not amincir)
    if not amincir:  # (duplicates are looked for among the kept rows of a thinned file)
        attendues = sorted(attendues + [(k, None) for k, m in rejets if m == "siret_en_double"])
        rejets = [r for r in rejets if r[1] != "siret_en_double"]
    assert [(r.ligne, r.motif) for r in conv.rejets] == rejets
    assert conv.lignes_lues == physiques - 1
    assert conv.equilibree
    lignes = contenu.split(b"\n")
    for r in conv.rejets:  # each reject keeps the bytes of its physical line
        assert r.contenu == lignes[r.ligne - 1].removesuffix(b"\r")
    df = conv.cadre().collect()
    if amincir:
        assert [tuple(r) for r in df.select(colonnes).rows()] == [v for _, v in attendues]
    else:
        assert df["_ligne"].to_list() == [k for k, _ in attendues]
        assert [tuple(r) for r, (_, v) in zip(df.select(colonnes).rows(), attendues)
                if v is not None] == [v for _, v in attendues if v is not None]


def test_enregistrement_trop_long_resynchronise(tmp_path):
    """A quoted field still open after SUITE_MAX_LIGNES lines: only its first line is
    rejected, and the lines after it are read (their quotes too)."""
    lignes = [b"c0,c1,c2", b'1,"ouvert,x'] + [f"{i},a,b".encode() for i in range(3, 12)] + \
        [b'12,"fin"",x",y', b'13,"deux\nlignes",z']
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b"\n".join(lignes) + b"\n")
    conv = sirene.convertir(_source(chemin, 3), ["c0", "c1"], tmp_path / "p.arrow",
                            numeroter=True)
    assert [(r.ligne, r.motif) for r in conv.rejets] == [(2, "guillemets_invalides")]
    df = conv.lire().collect()
    assert df["c0"].to_list() == [str(i) for i in range(3, 14)]
    assert df.filter(pl.col("c0") == "12")["c1"].item() == 'fin",x'
    assert df["_ligne"].to_list()[-1] == 13 and conv.lignes_suites == 1
    assert conv.equilibree


@pytest.mark.parametrize("taille", [None, 4096, 97])
@pytest.mark.parametrize("fin", [b"\n", b""])
def test_guillemet_ouvert_sur_la_derniere_ligne_d_un_grand_fichier(monkeypatch, tmp_path,
                                                                  taille, fin):
    """A file larger than the first read (64 KiB) whose last line opens a quoted field never
    closed: that line alone is rejected (the reader used to stop with an internal error,
    the block holding the end of the file not being said to be the last one)."""
    if taille:
        monkeypatch.setattr(lecteur, "TAILLE_BLOC", taille)
    lignes = [b"c0,c1,c2"] + [f"{i},x{i},y".encode() for i in range(2, 9002)] + [b'9002,"a,b']
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b"\n".join(lignes) + fin)
    assert chemin.stat().st_size > 1 << 16
    conv = sirene.convertir(_source(chemin, 3), ["c0", "c1"], tmp_path / "p.arrow",
                            numeroter=True)
    assert [(r.ligne, r.motif, r.contenu) for r in conv.rejets] == [
        (9002, "guillemets_invalides", b'9002,"a,b')]
    df = conv.lire().collect()
    assert df["_ligne"].to_list() == list(range(2, 9002)) and conv.equilibree


def test_blocs_tampons_reutilises_sans_ecraser(tmp_path):
    """The blocks' buffers are reused once released, never while a block is held: the
    blocks kept (all, or one in three with a NumPy view on it) stay as read, those dropped
    are refilled, and either way the blocks make up the file after its header, whole lines
    each, the last one alone said last."""
    import numpy as np
    lignes = [b"c0,c1"] + [f"{i},{'x' * (i % 37)}".encode() for i in range(2, 6000)]
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b"\n".join(lignes) + b"\n")
    corps = b"\n".join(lignes[1:]) + b"\n"
    gardes = list(lecteur._blocs(chemin, 1000))
    assert b"".join(bytes(b) for b, _ in gardes) == corps
    assert [d for _, d in gardes] == [False] * (len(gardes) - 1) + [True]
    assert all(bytes(b).endswith(b"\n") for b, _ in gardes)
    copies, vues, lus, ids = [], [], [], set()
    for i, (b, _) in enumerate(lecteur._blocs(chemin, 1000)):
        lus.append(bytes(b))
        ids.add(id(b))
        if i % 3 == 0:
            copies.append(bytes(b))
            vues.append(np.frombuffer(b, np.uint8))
    assert b"".join(lus) == corps
    assert [v.tobytes() for v in vues] == copies  # (held: never written over)
    assert len(ids) < len(lus)  # (the others' buffers were reused)


def _source(chemin, n: int) -> sirene.FichierSource:
    return sirene.FichierSource(role="etablissements", chemin=chemin, csv=chemin,
                                colonnes=[f"c{i}" for i in range(n)], separateur=",",
                                variante="test", taille=chemin.stat().st_size)


def test_rejets_exacts_a_travers_les_blocs(monkeypatch, tmp_path):
    monkeypatch.setattr(lecteur, "TAILLE_BLOC", 97)
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
    long = b"x" * 70000
    lignes = [b"c0,c1,c2", b"1,a,b", b"2," + long + b",b", b"3," + long, b'4,"' + long + b'",b',
              b"5," + long + b",b,c", b'6,"a,' + long + b'""z",' + "é".encode() * 9,
              b"7,\xff" + long + b",b", b"8,a,b"]
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b"\n".join(lignes) + b"\n")
    conv = sirene.convertir(_source(chemin, 3), ["c0", "c1", "c2"], tmp_path / "r.arrow")
    rows = conv.lire().collect().rows()
    assert [r[0] for r in rows] == ["1", "2", "4", "6", "8"]
    assert rows[3][1] == "a," + "x" * 70000 + '"z'
    assert [(r.ligne, r.motif) for r in conv.rejets] == [
        (4, "champs_manquants"), (6, "champs_en_trop"), (8, "octets_non_decodables")]


@pytest.mark.parametrize("contenu", [b"c0,c1\r\n1,a\n2,b\n", b"c0,c1\n1,a\r\n2,b\n",
                                     b'c0,c1\r\n1,"a,b"\r\n\r\n2,b\r\n3,c'])
def test_fins_de_ligne_cr_lf_et_lf(tmp_path, contenu):
    """CR LF and LF line ends, even mixed, end a line; the CR is not part of the value."""
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(contenu)
    conv = sirene.convertir(_source(chemin, 2), ["c0", "c1"], tmp_path / "r.arrow")
    rows = conv.lire().collect().rows()
    assert rows[:2] in ([("1", "a"), ("2", "b")], [("1", "a,b"), ("2", "b")])
    assert conv.rejets == [] and conv.equilibree


def test_retour_chariot_isole_rejete(tmp_path):
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b"c0,c1\n1,a\rb\n2,b\n")
    conv = sirene.convertir(_source(chemin, 2), ["c0", "c1"], tmp_path / "r.arrow")
    assert [(r.ligne, r.motif, r.contenu) for r in conv.rejets] == [
        (2, "retour_chariot_isole", b"1,a\rb")]
    assert conv.lire().collect().rows() == [("2", "b")]


def test_numeros_de_ligne_malgre_les_lignes_vides(tmp_path):
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(b"c0,c1\n1,a\n\n3,b\n4,c,x\n\n\n7,d\n")
    conv = sirene.convertir(_source(chemin, 2), ["c0"], tmp_path / "p.arrow",
                            numeroter=True)
    assert conv.lire().collect().rows() == [("1", 2), ("3", 4), ("7", 8)]
    assert [r.ligne for r in conv.rejets] == [5]
    assert (conv.lignes_lues, conv.lignes_vides) == (7, 3) and conv.equilibree


def test_lire_cadre_api(tmp_path):
    """The small-file API other loaders use: a frame with ``_ligne``, and the reading."""
    chemin = tmp_path / "h.csv"
    chemin.write_bytes("\ufeffa;b;c\n1;é;x\n2;\n3;\"q;r\";z\n".encode())
    cadre, lecture = lecteur.lire_cadre(chemin, ";", ["a", "c", "absente"])
    assert cadre.rows() == [("1", "x", None, 2), ("3", "z", None, 4)]
    assert [(r.ligne, r.motif) for r in lecture.rejets] == [(3, "champs_manquants")]
    assert lecture.equilibree and lecture.lignes == 4


def test_indice_encodage_latin1():
    rejets = [lecteur.Rejet(2, "octets_non_decodables", "DE L'ÉGLISE".encode("cp1252"))]
    assert "Windows-1252" in lecteur.indice_encodage(rejets)
    assert lecteur.indice_encodage([lecteur.Rejet(2, "champs_manquants", b"a")]) is None


def test_python_csv_strict_est_l_arbitre():
    """(the rule the reader applies to lines holding quotes, documented in the module)"""
    lire = lambda t: next(csv.reader(io.StringIO(t), strict=True))  # noqa: E731
    assert lire('a,b"c,d') == ["a", 'b"c', "d"]
    with pytest.raises(csv.Error):
        lire('a,"ab"c,d')


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet='a,;" ', max_size=12), min_size=1, max_size=30),
       st.sampled_from([",", ";"]), st.booleans())
def test_tri_vectorise_des_guillemets_comme_l_expression(lignes, sep, crlf):
    """The vectorised sorting of the lines holding quotes flags exactly the lines that the
    strict form's regular expression refuses (a CR inside a line is a reject of its own)."""
    import numpy as np
    if crlf:
        lignes = [x + "\r" for x in lignes]
    blk = "\n".join(lignes).encode() + b"\n"
    octets = np.frombuffer(blk, np.uint8)
    fins = np.flatnonzero(octets == 10)
    douteuses: dict[int, int] = {}
    lecteur._lignes_a_guillemets(blk, octets, fins, sep, douteuses)
    stricte = lecteur._forme_stricte(sep).fullmatch
    attendu, d = set(), 0
    for ligne in lignes:
        brut = ligne.encode()
        if b'"' in brut and not stricte(brut):
            attendu.add(d)
        d += len(brut) + 1
    assert set(douteuses) == attendu


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="0123456789a ٣é-", max_size=11),
                          st.integers(0, 10**9 - 1).map(lambda x: f"{x:09d}")), max_size=40))
def test_cle_numerique_comme_l_expression_polars(valeurs):
    """The numeric keys read from the Arrow buffers are those of :func:`cle_et_reste` (nine
    ASCII digits exactly; an Arabic-Indic digit, a space, an accent or a null: -1)."""
    s = pl.Series("siren", valeurs, dtype=pl.String)
    attendu = pl.DataFrame({"siren": s}).select(lecteur.cle_et_reste("siren", 9)[0])
    obtenu = lecteur.cle_numerique(s.to_arrow(), 9)
    assert obtenu.tolist() == attendu.to_series().to_list()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="0123456789/:", max_size=15)),
                min_size=1, max_size=30), st.integers(0, 29), st.sampled_from([9, 14]),
       st.sampled_from(["large_string", "string", "string_view", "morceaux"]))
def test_cle_numerique_tranches_morceaux_et_types(valeurs, debut, chiffres, genre):
    """The keys read from the buffers hold for a slice (an offset into the buffers), a
    chunked column, 32-bit offsets and string views (cast): the same as per value (the
    bytes just below '0' and above '9' are not digits)."""
    import pyarrow as pa
    attendu = [int(v) if v is not None and len(v) == chiffres and v.isascii() and v.isdigit()
               else -1 for v in valeurs][debut:]
    if genre == "morceaux":
        moitie = len(valeurs) // 2
        colonne = pa.chunked_array([pa.array(valeurs[:moitie], pa.large_string()),
                                    pa.array(valeurs[moitie:], pa.large_string())],
                                   pa.large_string())[debut:]
    else:
        colonne = pa.array(valeurs, getattr(pa, genre)())[debut:]
    assert lecteur.cle_numerique(colonne, chiffres).tolist() == attendu


def test_lecture_n_importe_pas_pandas(tmp_path):
    """Reading a thinned file (numeric keys, the condition's lookups, the rest of the keys)
    does not import pandas (≈ 0.2 s of CPU in a build that never uses it): no Arrow compute
    call with a Python value on the way."""
    import subprocess
    import sys
    pytest.importorskip("pandas")
    csv_ = tmp_path / "e.csv"
    csv_.write_text("siren,etatAdministratifEtablissement,x\n123456789,A,1\n12345678X,A,2\n"
                    "987654321,F,3\n", "utf-8")
    code = f"""
import sys
import polars as pl
from essqpv.sources import lecteur
cond = lecteur.Condition(pl.col("etatAdministratifEtablissement") == "A",
                         dans=("siren", pl.Series(["123456789", "12345678X"])))
tables = []
lu = lecteur.lire({str(csv_)!r}, ["siren", "etatAdministratifEtablissement", "x"],
                  ["siren", "etatAdministratifEtablissement", "x"], ",", cond,
                  ("siren", "etatAdministratifEtablissement"),
                  lambda t, g: tables.append((t, g)))
assert lu.acceptees == 3, lu
assert sum(g.num_rows for _, g in tables) == 2
aucune = lecteur.Condition(dans=("siren", pl.Series(["111111111"])))  # (no row kept)
lu = lecteur.lire({str(csv_)!r}, ["siren", "etatAdministratifEtablissement", "x"],
                  ["siren", "etatAdministratifEtablissement", "x"], ",", aucune, ("siren",),
                  lambda t, g: tables.append((t, g)))
assert lu.acceptees == 3 and tables[-1][1].num_rows == 0, lu
print("pandas" in sys.modules)
"""
    sortie = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert sortie == ["False"]


def test_condition_dans_nombres_et_textes():
    """``Condition(dans=...)`` on a column of identifiers: the values of digits are looked up
    as numbers, the others (malformed identifiers) as text; a null is never in the set."""
    import pyarrow as pa
    cond = Condition(dans=("siret", pl.Series(["00000000000042", "12345678901234", "A1", None])))
    table = pa.table({"siret": pa.array(["00000000000042", "42", "A1", "a1", None,
                                         "12345678901234", "1234567890123 "],
                                        pa.large_string())})
    assert cond.evaluer_table(table).tolist() == [True, False, True, False, False, True, False]
    etat = Condition(pl.col("etat") == "A", dans=("siren", pl.Series(["123456789"])))
    t2 = pa.table({"siren": pa.array(["123456789", "123456789", "987654321"], pa.large_string()),
                   "etat": pa.array(["A", "F", "A"], pa.large_string())})
    assert etat.evaluer_table(t2).tolist() == [True, False, False]
    assert etat.evaluer(pl.from_arrow(t2)).tolist() == [True, False, False]


def test_doublons_hors_ordre_et_textes_a_travers_les_blocs(monkeypatch, tmp_path):
    """Repeated identifiers are found across blocks whether the file is sorted or not, and
    for identifiers that are not of digits too (the first row kept, the others rejected)."""
    monkeypatch.setattr(lecteur, "TAILLE_BLOC", 64)
    sirets = ["00000000000009", "00000000000003", "X1", "00000000000009", "00000000000001",
              "X1", "00000000000003", "", "", "x1"]
    contenu = "siret,c1\n" + "".join(f"{s},v{i}\n" for i, s in enumerate(sirets))
    chemin = tmp_path / "f.csv"
    chemin.write_text(contenu)
    source = sirene.FichierSource(role="etablissements", chemin=chemin, csv=chemin,
                                  colonnes=["siret", "c1"], separateur=",", variante="test",
                                  taille=len(contenu))
    conv = sirene.convertir(source, ["siret", "c1"], tmp_path / "r.arrow",
                            garder=Condition(pl.lit(True)), toujours=("siret",))
    assert [(r.ligne, r.motif) for r in conv.rejets] == [
        (5, "siret_en_double"), (7, "siret_en_double"), (8, "siret_en_double")]
    assert conv.cadre().collect()["c1"].to_list() == ["v0", "v1", "v2", "v4", "v7", "v8",
                                                       "v9"]
    assert conv.equilibree


@pytest.mark.parametrize("part", [0.0, 0.3, 2.0])
def test_lecture_large_ou_en_deux_memes_lignes(monkeypatch, tmp_path, part):
    """A thinned block is parsed in two passes (narrow, then the kept lines) or whole at once
    after a block that kept many rows: the same rows, rejects and line numbers either way."""
    monkeypatch.setattr(lecteur, "TAILLE_BLOC", 300)
    lignes = ["siret,c1,c2"]
    for i in range(120):  # a dense run of kept rows, then sparse ones, with faults planted
        garde = "O" if i < 40 or i % 17 == 0 else "N"
        lignes.append(f"{i:014d},{garde},\"v, {i}\"" if i % 5 else f"{i:014d},{garde}")
    lignes[60] = '"ouvert,N,x'
    contenu = ("\n".join(lignes) + "\n").encode()
    chemin = tmp_path / "f.csv"
    chemin.write_bytes(contenu)
    source = sirene.FichierSource(role="etablissements", chemin=chemin, csv=chemin,
                                  colonnes=["siret", "c1", "c2"], separateur=",",
                                  variante="test", taille=len(contenu))
    resultats = []
    for p in (part, 2.0):
        monkeypatch.setattr(lecteur, "PART_LECTURE_LARGE", p)
        conv = sirene.convertir(source, ["siret", "c1", "c2"], tmp_path / f"r{p}.arrow",
                                garder=Condition(pl.col("c1") == "O"), toujours=("siret",))
        resultats.append(([(r.ligne, r.motif) for r in conv.rejets],
                          conv.cadre().collect().rows()))
    assert resultats[0] == resultats[1]
    rejets, rangees = resultats[0]
    assert {m for _, m in rejets} == {"champs_manquants", "guillemets_invalides"}
    # (the rows of two fields are rejected: every fifth one)
    assert sum(1 for r in rangees if r[1] == "O") == len(
        [i for i in range(120) if (i < 40 or i % 17 == 0) and i % 5])
