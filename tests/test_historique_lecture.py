"""The fast reading of the historical files (:func:`essqpv.sources.historique.lire_filtre`):
lines filtered on their bytes, the others read by the project's reader. On a file with
every kind of awkward line, in small blocks (records across block boundaries), it keeps
exactly the rows and rejects exactly the lines the project's reader keeps and rejects."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from essqpv.sources import historique as H
from essqpv.sources import sirene

COLONNES = sirene.colonnes_officielles(H.ETABLISSEMENTS)["colonne"].to_list()
ESS = ["100000001", "100000003", "100000005"]


def _ligne(siren: str, k: int, **champs) -> str:
    v = {c: "" for c in COLONNES}
    v.update(siren=siren, nic=f"{k:05d}", siret=f"{siren}{k:05d}", dateDebut="2010-01-01",
             etatAdministratifEtablissement="A", activitePrincipaleEtablissement="88.10A",
             nomenclatureActivitePrincipaleEtablissement="NAFRev2", **champs)
    return ",".join(v[c] for c in COLONNES)


def _fichier(d, ouverts: bool) -> bytes:
    rng = np.random.default_rng(7)
    lignes = []
    for k in range(3000):
        siren = ESS[k % 3] if rng.random() < 0.2 else f"2{k:08d}"
        lignes.append(_ligne(siren, k))
        r = rng.random()
        if r < 0.02:  # a quoted enseigne holding a comma (ESS or not)
            lignes.append(_ligne(ESS[0] if k % 2 else "299999999", k,
                                 enseigne1Etablissement='"LA RUCHE, QUARTIER NORD"'))
        elif r < 0.03 and ouverts:  # a legitimate record on two lines
            lignes.append(_ligne(ESS[1], k, enseigne1Etablissement='"DEUX\nLIGNES"'))
        elif r < 0.04:  # one field missing, one too many
            lignes.append(_ligne(ESS[2], k).rsplit(",", 1)[0])
            lignes.append(_ligne("288888888", k) + ",en trop")
        elif r < 0.045:
            lignes.append("")  # blank line
        elif r < 0.05 and ouverts:  # a quote never closed (rejected alone)
            lignes.append(_ligne(ESS[0], k, enseigne1Etablissement='"OUVERT'))
        elif r < 0.055:  # undecodable bytes, a lone carriage return
            lignes.append(_ligne(ESS[1], k, enseigne1Etablissement="CAF\xe9"))
            lignes.append(_ligne(ESS[2], k, enseigne1Etablissement="A\rB"))
        elif r < 0.06:  # a siren of another length that starts like an ESS one
            lignes.append(_ligne(ESS[0] + "1", k))
        elif r < 0.065:  # every field quoted (as some exports write them)
            lignes.append(",".join(f'"{v}"' for v in _ligne(ESS[k % 3], k).split(",")))
    texte = (",".join(COLONNES) + "\n" + "\n".join(lignes) + "\n")
    brut = texte.encode("utf-8").replace("CAF\xe9".encode("utf-8"), b"CAF\xe9")
    (d / "h.csv").write_bytes(brut)
    return brut


def _filtre(genre: str, tout: pl.DataFrame) -> H.Filtre:
    """The filters of the reader: an identifier first on the line, after fixed-width digit
    fields, or anywhere (separators located), and codes."""
    sirets = tout.filter(pl.col("siren").is_in(ESS))["siret"].cast(pl.Int64, strict=False)
    sirets = sirets.drop_nulls().to_numpy()
    if genre == "siren":
        return H.Filtre(identifiant=("siren", 9, np.array([int(s) for s in ESS])))
    if genre == "siret_prefixe":
        return H.Filtre(identifiant=("siret", 14, sirets), prefixe=(9, 5))
    if genre == "siret":
        return H.Filtre(identifiant=("siret", 14, sirets))
    return H.Filtre(codes={"siren": ESS, "nomenclatureActivitePrincipaleEtablissement": ["X"]})


@pytest.mark.parametrize("taille,ouverts,genre", [
    (1 << 12, True, "siren"), (1 << 20, True, "siren"), (1 << 12, False, "siren"),
    (1 << 20, False, "siren"), (1 << 12, False, "siret_prefixe"), (1 << 12, False, "siret"),
    (1 << 12, True, "codes"), (1 << 20, False, "codes")])
def test_meme_resultat_que_le_lecteur_du_projet(tmp_path, taille, ouverts, genre):
    """``ouverts``: records on two lines and quotes never closed (their blocks are read
    whole by the project's reader); without them, every block is filtered on its bytes."""
    brut = _fichier(tmp_path, ouverts)
    source = sirene.preparer(tmp_path / "h.csv", H.ETABLISSEMENTS, tmp_path)
    colonnes = list(H.RENOMMAGE[H.ETABLISSEMENTS])
    conv = sirene.convertir(source, colonnes, tmp_path / "tout.arrow", numeroter=True)
    tout = conv.lire().collect()
    filtre = _filtre(genre, tout)
    cadre, lues, rejets, non_lues = H.lire_filtre(source, colonnes, filtre, taille=taille)
    # (every line of an ESS siren is kept: by siren, by its siret, by the siren as a code)
    attendu = tout.filter(pl.col("siren").is_in(ESS)).sort("_ligne")
    assert lues == conv.lignes_lues == brut.count(b"\n") - 1
    assert [(r.ligne, r.motif, r.contenu) for r in rejets] == \
        [(r.ligne, r.motif, r.contenu) for r in conv.rejets]
    assert {r.motif for r in rejets} >= {"champs_manquants", "champs_en_trop",
                                         "octets_non_decodables", "retour_chariot_isole"} | (
        {"guillemets_invalides"} if ouverts else set())
    assert cadre.sort("_ligne").select(attendu.columns).equals(attendu)
    # the lines not read are accepted lines of the reader that the filter does not keep
    autres = tout.filter(~pl.col("siren").is_in(ESS)).height
    assert non_lues <= autres
    if not ouverts:
        assert autres - 60 <= non_lues  # (the quoted lines are read whole)
    # each row's offset and length give its line back unchanged
    lignes = brut.split(b"\n")
    for n, o, k in cadre.select("_ligne", "_octet", "_longueur").iter_rows():
        if b'"' not in lignes[n - 1]:
            assert brut[o:o + k] == lignes[n - 1]


def test_recherche_sans_verifier_la_forme(tmp_path):
    """A look-up (the positions of a few establishments in the stock): the lines of the
    wanted sirets are read by the project's reader; the others are not examined (their
    form is the build's business)."""
    brut = _fichier(tmp_path, False)
    source = sirene.preparer(tmp_path / "h.csv", H.ETABLISSEMENTS, tmp_path)
    colonnes = list(H.RENOMMAGE[H.ETABLISSEMENTS])
    conv = sirene.convertir(source, colonnes, tmp_path / "tout.arrow", numeroter=True)
    tout = conv.lire().collect()
    voulus = tout.filter(pl.col("siren").is_in(ESS))["siret"].unique().sort()[::3]
    assert brut.count(b'\n"1') >= 10  # lines whose fields are all quoted, some wanted
    filtre = H.Filtre(identifiant=("siret", 14, voulus.cast(pl.Int64).to_numpy()),
                      prefixe=(9, 5), forme=False)
    cadre, lues, rejets, non_lues = H.lire_filtre(source, colonnes, filtre, taille=1 << 12)
    attendu = tout.filter(pl.col("siret").is_in(voulus.implode())).sort("_ligne")
    assert cadre.sort("_ligne").select(attendu.columns).equals(attendu)
    assert lues == brut.count(b"\n") - 1 and non_lues > lues * 0.9
    # the rejects are those of the lines read: a wanted siret on a malformed line
    lignes_voulues = set(attendu["_ligne"].to_list())
    assert all(r.ligne not in lignes_voulues for r in rejets)


def test_codes_compares_des_champs_entiers(tmp_path):
    """A code is kept when the whole field is one of the codes (compared as the field's
    bytes): not a longer field that starts with it, nor a shorter one that it starts with;
    and the fields of 1 byte (the ESS flag) and of other widths alike."""
    colonnes = sirene.colonnes_officielles(H.UNITES_LEGALES)["colonne"].to_list()
    valeurs = [("9210", "N"), ("92101", "N"), ("921", "N"), ("", "N"), ("5710", "O"),
               ("5710", "ON"), ("5710", ""), ("9220", "N"), ("92", "N"), ("9", "N")]
    lignes = []
    for k, (cj, ess) in enumerate(valeurs * 40):
        v = {c: "" for c in colonnes}
        v.update(siren=f"{100000000 + k}", dateDebut="2010-01-01",
                 categorieJuridiqueUniteLegale=cj, economieSocialeSolidaireUniteLegale=ess)
        lignes.append(",".join(v[c] for c in colonnes))
    (tmp_path / "u.csv").write_text(",".join(colonnes) + "\n" + "\n".join(lignes) + "\n")
    source = sirene.preparer(tmp_path / "u.csv", H.UNITES_LEGALES, tmp_path)
    for codes, gardes in [
            ({"categorieJuridiqueUniteLegale": ["9210", "9220"],
              "economieSocialeSolidaireUniteLegale": ["O"]}, {0, 4, 7}),
            ({"categorieJuridiqueUniteLegale": ["921", "9"]}, {2, 9}),
            ({"categorieJuridiqueUniteLegale": ["92101"]}, {1})]:
        cadre, lues, rejets, non_lues = H.lire_filtre(
            source, list(H.RENOMMAGE[H.UNITES_LEGALES]), H.Filtre(codes=codes), taille=1 << 12)
        assert lues == len(lignes) and not rejets and non_lues == lues - cadre.height
        assert {(n - 2) % len(valeurs) for n in cadre["_ligne"].to_list()} == gardes
        assert cadre.height == 40 * len(gardes)


def test_derniere_ligne_sans_fin_de_ligne(tmp_path):
    """A file whose last line has no line end, read in small blocks (buffers read into
    again): the last line is kept unchanged, as the project's reader keeps it."""
    lignes = [_ligne(ESS[k % 3] if k % 4 == 0 else f"2{k:08d}", k) for k in range(400)]
    lignes[-1] = _ligne(ESS[0], 399)
    brut = (",".join(COLONNES) + "\n" + "\n".join(lignes)).encode()
    (tmp_path / "h.csv").write_bytes(brut)
    source = sirene.preparer(tmp_path / "h.csv", H.ETABLISSEMENTS, tmp_path)
    colonnes = list(H.RENOMMAGE[H.ETABLISSEMENTS])
    conv = sirene.convertir(source, colonnes, tmp_path / "tout.arrow", numeroter=True)
    attendu = conv.lire().collect().filter(pl.col("siren").is_in(ESS)).sort("_ligne")
    filtre = H.Filtre(identifiant=("siren", 9, np.array([int(s) for s in ESS])))
    cadre, lues, rejets, _ = H.lire_filtre(source, colonnes, filtre, taille=1 << 12)
    assert lues == len(lignes) and not rejets and not conv.rejets
    assert cadre.sort("_ligne").select(attendu.columns).equals(attendu)
    assert cadre["_ligne"].max() == len(lignes) + 1
