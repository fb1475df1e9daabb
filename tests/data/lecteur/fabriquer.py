"""Builds the reader's quirk files (tests/test_lecteur.py) from the first lines of the real
Sirene extract ``StockEtablissement_utf8_sample_trackdechets.csv`` (see tests/data/SOURCES.md).

Run once, from the repository root: ``python tests/data/lecteur/fabriquer.py SAMPLE.csv``.
Each file is the real header and 30 real lines, with one family of quirks planted at known
lines (comments below). The geolocation file follows INSEE's published header, with rows of
the same form as the real file (no real extract of it is published in small size).
"""
from __future__ import annotations

import sys
from pathlib import Path

ICI = Path(__file__).resolve().parent


def champs(ligne: bytes) -> list[bytes]:
    return ligne.split(b",")


def main(echantillon: Path) -> None:
    lignes = echantillon.read_bytes().split(b"\n")
    entete, donnees = lignes[0], [x for x in lignes[1:31]]
    nom = entete.split(b",")
    i_voie = nom.index(b"libelleVoieEtablissement")
    i_commune = nom.index(b"libelleCommuneEtablissement")
    i_enseigne = nom.index(b"enseigne1Etablissement")

    def avec(k: int, i: int, valeur: bytes) -> bytes:
        c = champs(donnees[k])
        c[i] = valeur
        return b",".join(c)

    fichiers: dict[str, bytes] = {}
    # accents (UTF-8), the euro sign, an apostrophe
    a = list(donnees)
    a[2] = avec(2, i_commune, "SAINT-ÉTIENNE".encode())
    a[4] = avec(4, i_enseigne, "CAFÉ DES ÂGES – 5 €".encode())
    a[6] = avec(6, i_voie, "DE L'ÉGLISE SAINT-JÉRÔME".encode())
    fichiers["accents.csv"] = b"\n".join([entete, *a]) + b"\n"
    # separators and doubled quotes inside quoted fields
    s = list(donnees)
    s[1] = avec(1, i_voie, b'"DE LA PAIX, BIS"')
    s[3] = avec(3, i_enseigne, b'"LE ""FOYER"""')
    s[5] = avec(5, i_enseigne, b'"A,B,""C"",D"')
    fichiers["separateurs_cites.csv"] = b"\n".join([entete, *s]) + b"\n"
    # a quoted field spanning two lines (line 5-6), then a line with a missing field
    n = list(donnees)
    n[3] = avec(3, i_voie, b'"BATIMENT A\nESCALIER 2"')
    n[10] = b",".join(champs(donnees[10])[:20])
    fichiers["saut_de_ligne_cite.csv"] = b"\n".join([entete, *n]) + b"\n"
    # stray quotes: inside a field (a literal quote), and one opening a field that is never
    # closed (line 9), then a too-long line (line 16)
    g = list(donnees)
    g[2] = avec(2, i_enseigne, b'CHEZ "MOMO')
    g[7] = avec(7, i_voie, b'"DU MOULIN')
    g[14] = donnees[14] + b",en_trop"
    fichiers["guillemet_isole.csv"] = b"\n".join([entete, *g]) + b"\n"
    # CR LF line ends throughout, one line with undecodable bytes (line 5)
    c = list(donnees)
    c[3] = avec(3, i_commune, b"SAINT-\xc9TIENNE")  # latin-1
    fichiers["crlf.csv"] = b"\r\n".join([entete, *c]) + b"\r\n"
    # a byte order mark before the header
    fichiers["bom.csv"] = b"\xef\xbb\xbf" + b"\n".join([entete, *donnees]) + b"\n"
    # the last line cut in the middle (no line end)
    t = list(donnees)
    t[-1] = t[-1][:60]
    fichiers["derniere_ligne_tronquee.csv"] = b"\n".join([entete, *t])
    # the last line cut inside a quoted field
    q = list(donnees)
    q[-1] = avec(len(q) - 1, i_voie, b'"RUE DU')[:]
    q[-1] = q[-1][:q[-1].index(b'"RUE DU') + 7]
    fichiers["derniere_ligne_tronquee_guillemet.csv"] = b"\n".join([entete, *q])
    for nom_f, contenu in fichiers.items():
        (ICI / nom_f).write_bytes(contenu)
        print(nom_f, len(contenu))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
