"""Loaders of the official Sirene files: schemas, zips, errors, rejects with line numbers."""
from __future__ import annotations

import zipfile

import polars as pl
import pytest

from essqpv.errors import ColonneManquante, FichierIntrouvable, FichierInvalide
from essqpv.sources import sirene

ETAB = "sirene/StockEtablissement_utf8_sample_trackdechets.csv"
UL = "sirene/StockUniteLegale_utf8_sample_trackdechets.csv"


def test_vrai_stock_etablissements_53_colonnes(partage, tmp_path):
    src = sirene.preparer(partage / ETAB, "etablissements", tmp_path)
    assert src.variante == "insee-53" and len(src.colonnes) == 53
    assert src.avertissements == []
    conv = sirene.convertir(src, ["siret", "nic", "codeCommuneEtablissement", "longitude"],
                            tmp_path / "e.arrow")
    assert (conv.lignes_lues, conv.lignes_acceptees, conv.rejets) == (299, 299, [])
    df = conv.lire().collect()
    assert df.schema == {"siret": pl.String, "nic": pl.String,
                         "codeCommuneEtablissement": pl.String, "longitude": pl.String}
    assert df["siret"][0] == "00032517500016" and df["nic"][0] == "00016"
    assert df["longitude"].is_null().all()


def test_vrai_stock_unites_legales_33_colonnes(partage, tmp_path):
    src = sirene.preparer(partage / UL, "unites_legales", tmp_path)
    assert src.variante == "insee-33"
    conv = sirene.convertir(src, ["siren", "economieSocialeSolidaireUniteLegale"],
                            tmp_path / "u.arrow")
    assert conv.lignes_lues == 3999 and conv.rejets == []
    df = conv.lire().collect()
    assert (df["economieSocialeSolidaireUniteLegale"] == "O").sum() == 6


def test_zip_lu_comme_le_csv(partage, tmp_path):
    archive = tmp_path / "StockEtablissement_utf8.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(partage / ETAB, "StockEtablissement_utf8.csv")
    src = sirene.preparer(archive, "etablissements", tmp_path / "x")
    conv = sirene.convertir(src, ["siret"], tmp_path / "z.arrow")
    assert conv.lignes_lues == 299


def _entete_48(partage) -> list[str]:
    officielles = sirene.colonnes_officielles("etablissements")
    return [c for c, d in officielles.select("colonne", "depuis").iter_rows()
            if d == "2019"]


def test_schema_2019_sans_coordonnees_avertit(partage, tmp_path):
    colonnes = _entete_48(partage)
    assert len(colonnes) == 48
    f = tmp_path / "stock2019.csv"
    f.write_text(",".join(colonnes) + "\n", "utf-8")
    src = sirene.preparer(f, "etablissements", tmp_path)
    assert src.variante == "insee-48"
    assert any("coordonneeLambertAbscisseEtablissement" in a for a in src.avertissements)


def test_fichier_unites_legales_donne_pour_etablissements(partage, tmp_path):
    with pytest.raises(FichierInvalide, match="unités légales"):
        sirene.preparer(partage / UL, "etablissements", tmp_path)
    with pytest.raises(FichierInvalide, match="établissements"):
        sirene.preparer(partage / ETAB, "unites_legales", tmp_path)


def test_colonne_obligatoire_absente(partage, tmp_path):
    lignes = (partage / ETAB).read_text("utf-8").splitlines()
    entete = lignes[0].replace("etatAdministratifEtablissement", "etat")
    f = tmp_path / "e.csv"
    f.write_text("\n".join([entete, *lignes[1:]]) + "\n", "utf-8")
    with pytest.raises(ColonneManquante) as exc:
        sirene.preparer(f, "etablissements", tmp_path)
    assert "etatAdministratifEtablissement" in str(exc.value) and "e.csv" in str(exc.value)


def test_fichier_absent_et_zip_corrompu(tmp_path):
    with pytest.raises(FichierIntrouvable, match="absent.csv"):
        sirene.preparer(tmp_path / "absent.csv", "etablissements", tmp_path)
    bad = tmp_path / "stock.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    with pytest.raises(FichierInvalide, match="ZIP corrompue"):
        sirene.preparer(bad, "etablissements", tmp_path)


def test_lignes_malformees_rejetees_avec_numero_et_octets_intacts(partage, tmp_path):
    lignes = (partage / ETAB).read_bytes().split(b"\n")
    entete, donnees = lignes[0], [x for x in lignes[1:] if x]
    trop = donnees[3] + b",en_trop"
    court = b",".join(donnees[5].split(b",")[:10])
    octets = donnees[7].replace(b"MANIHI", b"MAN\xff\xfeHI") if b"MANIHI" in donnees[7] \
        else donnees[7][:20] + b"\xff\xfe" + donnees[7][20:]
    corps = [entete, *donnees[:3], trop, donnees[4], court, donnees[6], octets, *donnees[8:]]
    f = tmp_path / "stock.csv"
    f.write_bytes(b"\n".join(corps) + b"\n")
    src = sirene.preparer(f, "etablissements", tmp_path)
    conv = sirene.convertir(src, ["siret"], tmp_path / "p.arrow")
    assert conv.lignes_lues == 299
    assert conv.lignes_acceptees == 296
    assert [(r.ligne, r.motif) for r in conv.rejets] == [
        (5, "champs_en_trop"), (7, "champs_manquants"), (9, "octets_non_decodables")]
    assert [r.contenu for r in conv.rejets] == [trop, court, octets]
    assert conv.rejets_par_motif == {"champs_en_trop": 1, "champs_manquants": 1,
                                     "octets_non_decodables": 1}


def test_guillemets_rfc4180(tmp_path):
    colonnes = sirene.colonnes_officielles("etablissements")["colonne"].to_list()[:53]
    valeurs = [""] * 53
    valeurs[colonnes.index("siret")] = "12345678900011"
    valeurs[colonnes.index("libelleVoieEtablissement")] = '"DE LA PAIX, ""BIS"""'
    f = tmp_path / "q.csv"
    f.write_text(",".join(colonnes) + "\n" + ",".join(valeurs) + "\n", "utf-8")
    src = sirene.preparer(f, "etablissements", tmp_path)
    conv = sirene.convertir(src, ["siret", "libelleVoieEtablissement"], tmp_path / "q.arrow")
    assert conv.lire().collect().row(0) == ("12345678900011", 'DE LA PAIX, "BIS"')


# --------------------------------------------------------------------------- whole builds

def _registre(d, n: int = 300):
    """``n`` active establishments of associations, each with a geolocation row."""
    from tests import _fabrique as F
    lon, lat = F.point_interieur("QP093001")
    etabs, uls, geo = [], [], []
    for i in range(n):
        siren = f"{i + 1:09d}"
        siret = siren + "00017"
        etabs.append(F.etab(siret, "93013"))
        uls.append(F.ul(siren, "9220", "O", f"ASSOCIATION {i}"))
        geo.append({"siret": siret, "x": f"{lon:.7f}", "y": f"{lat:.7f}", "epsg": "4326",
                    "qualite_xy": "11", "plg_qp15": "QP093001"})
    fe = F.ecrire(d / "e.csv", "etablissements", etabs)
    fu = F.ecrire(d / "u.csv", "unites_legales", uls)
    fg = F.ecrire(d / "g.csv", "geolocalisation", geo, sep=";")
    return fe, fu, fg


def _planter(chemin, ligne: int, avant: bytes = b'"') -> bytes:
    lignes = chemin.read_bytes().split(b"\n")
    lignes[ligne - 1] = avant + lignes[ligne - 1]
    chemin.write_bytes(b"\n".join(lignes))
    return lignes[ligne - 1]


def test_guillemet_isole_dans_les_etablissements_et_la_geolocalisation(tmp_path):
    """A stray quote at the start of line 101 of the geolocation file and of line 165 of the
    establishment file rejects those two lines only, at their physical line numbers; every
    other line is read and the reconciliation balances."""
    from essqpv import base as B
    from tests import _fabrique as F
    fe, fu, fg = _registre(tmp_path)
    brut_g = _planter(fg, 101)
    brut_e = _planter(fe, 165)
    r = B.construire(etablissements=fe, unites_legales=fu, geolocalisation=fg,
                     millesime="2024-01", base=tmp_path / "b.duckdb")
    assert r["geolocalisation"]["lignes_lues"] == 300
    assert r["geolocalisation"]["rejets_par_motif"] == {"guillemets_invalides": 1}
    assert r["geolocalisation"]["acceptees"] == 299
    assert (r["lignes_lues"], r["lignes_rejetees"]) == (300, 1)
    assert r["rejets_par_motif"] == {"guillemets_invalides": 1}
    F.verifier_reconciliation(r)
    assert r["dans_perimetre"] == 299 and r["en_qpv"] == 298  # (one has no geolocation row)
    import duckdb
    con = duckdb.connect(str(tmp_path / "b.duckdb"), read_only=True)
    lignes = con.execute("SELECT fichier, ligne, motif, contenu FROM rejets ORDER BY 1").fetchall()
    con.close()
    assert lignes == [("etablissements", 165, "guillemets_invalides", brut_e.decode()),
                      ("geolocalisation", 101, "guillemets_invalides", brut_g.decode())]
    fichier = B.dossier_rejets(tmp_path / "b.duckdb", "2024-01") / "geolocalisation.txt"
    assert fichier.read_bytes().split(b"\n")[1] == b"101\tguillemets_invalides\t" + brut_g


def test_siret_et_siren_en_double_rejetes(tmp_path):
    """Rows repeating a siret (establishments) or a siren (legal units) are rejected with
    ``siret_en_double`` / ``siren_en_double``; the first is kept and counted once."""
    from essqpv import base as B
    from tests import _fabrique as F
    fe, fu, fg = _registre(tmp_path, 120)
    lignes_e = fe.read_bytes().rstrip(b"\n").split(b"\n")
    fe.write_bytes(b"\n".join(lignes_e + lignes_e[1:51]) + b"\n")  # lines 122-171
    lignes_u = fu.read_bytes().rstrip(b"\n").split(b"\n")
    fu.write_bytes(b"\n".join(lignes_u[:11] + lignes_u[5:8] + lignes_u[11:]) + b"\n")
    # (29 % of the lines rejected: past the reject-share gate, hence forcer)
    r = B.construire(etablissements=fe, unites_legales=fu, geolocalisation=fg,
                     millesime="2024-01", base=tmp_path / "b.duckdb", forcer=True)
    assert r["rejets_par_motif"] == {"siret_en_double": 50}
    assert (r["lignes_lues"], r["acceptees"], r["dans_perimetre"]) == (170, 120, 120)
    assert r["unites_legales"]["rejets_par_motif"] == {"siren_en_double": 3}
    F.verifier_reconciliation(r)
    import duckdb
    con = duckdb.connect(str(tmp_path / "b.duckdb"), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT siret) FROM etablissements"
                       ).fetchone() == (120, 120)
    rejets = con.execute("SELECT fichier, ligne, contenu FROM rejets ORDER BY 1, 2").fetchall()
    con.close()
    assert [x[1] for x in rejets if x[0] == "etablissements"] == list(range(122, 172))
    assert [x[1] for x in rejets if x[0] == "unites_legales"] == [12, 13, 14]
    assert [x[2] for x in rejets if x[0] == "unites_legales"] == [
        b.decode() for b in lignes_u[5:8]]


def test_lignes_en_latin1_rejetees_avec_un_indice(tmp_path):
    """A line re-saved in Windows-1252 (an accented name): rejected for its bytes, at its
    physical line, and the build warns that it reads as Latin-1 (below the reject-share gate,
    which refuses a stock with many such lines)."""
    from essqpv import base as B
    from tests import _fabrique as F
    fe, fu, fg = _registre(tmp_path, 100)
    lignes = fe.read_bytes().rstrip(b"\n").split(b"\n")
    for i in (10,):
        c = lignes[i].split(b",")
        c[F.colonnes("etablissements").index("libelleVoieEtablissement")] = \
            "DE L'ÉGLISE".encode("cp1252")
        lignes[i] = b",".join(c)
    fe.write_bytes(b"\n".join(lignes) + b"\n")
    r = B.construire(etablissements=fe, unites_legales=fu, geolocalisation=fg,
                     millesime="2024-01", base=tmp_path / "b.duckdb")
    assert r["rejets_par_motif"] == {"octets_non_decodables": 1}
    assert r["acceptees"] == 99 and r["lignes_lues"] == 100
    assert any("e.csv" in a and "Windows-1252" in a for a in r["avertissements"])
