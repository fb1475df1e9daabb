"""Series over time from the historical stocks (issue 20), on small official-schema files.

The register: a stock of establishments and of legal units (vintage 2024-01) and the two
historical files that go with it, written in INSEE's official schemas
(``reference/colonnes_sources.csv``); the QPV are the embedded 2015 contours and, for the
2024 geography, a GeoJSON in the 2024 schema holding one real polygon (QP093002's, recoded
``QN09300M``), so that the two geographies differ.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
import shapely

from essqpv import base as B
from essqpv import historique as HI
from essqpv.errors import BaseInvalide, ColonneManquante, FichierInvalide
from essqpv.sources import historique as H
from essqpv.territoires import Territoire
from tests import _fabrique as F

COMMUNE = "93013"  # Le Bourget (QP093001 and QP093002)
DANS_1 = F.point_interieur("QP093001")
DANS_2 = F.point_interieur("QP093002")
DEHORS = (2.35, 48.85)  # Paris, outside any QPV
M = "2024-01"


def _eh(siret, debut, fin, etat="A", naf="88.10A", nom="NAFRev2", emp="O"):
    return {"siren": siret[:9], "nic": siret[9:], "siret": siret, "dateDebut": debut,
            "dateFin": fin, "etatAdministratifEtablissement": etat,
            "activitePrincipaleEtablissement": naf,
            "nomenclatureActivitePrincipaleEtablissement": nom,
            "caractereEmployeurEtablissement": emp,
            "changementEtatAdministratifEtablissement": "false"}


def _uh(siren, debut, fin, cj="9220", ess="", nom="ASSOCIATION DU QUARTIER"):
    return {"siren": siren, "dateDebut": debut, "dateFin": fin,
            "etatAdministratifUniteLegale": "A", "categorieJuridiqueUniteLegale": cj,
            "economieSocialeSolidaireUniteLegale": ess, "denominationUniteLegale": nom}


# siret -> (stock row, geolocation point, historical periods)
FERMEE = "100000001" + "00011"      # opened 2008-06-01, closed 2012-07-01
ACTIVITE = "100000002" + "00012"    # social action until 2015-03-31, then education
EMPLOYEUR = "100000003" + "00013"   # non-employer until 2017-12-31, employer since
ESS2020 = "100000004" + "00014"     # SAS whose ESS flag switches on on 2020-01-01
DEHORS_QPV = "100000005" + "00015"  # association outside any QPV, since 2009
CHEVAUCHE = "100000006" + "00016"   # overlapping periods
A_L_ENVERS = "100000007" + "00017"  # dateFin < dateDebut
AUTRE_QPV = "100000008" + "00018"   # in QP093002 (both geographies)


def _registre(d: Path) -> dict[str, Path]:
    etabs = [
        F.etab(FERMEE, COMMUNE, etat="F", dateCreationEtablissement="2008-06-01"),
        F.etab(ACTIVITE, COMMUNE, naf="85.59A", dateCreationEtablissement="2010-01-01"),
        F.etab(EMPLOYEUR, COMMUNE, dateCreationEtablissement="2012-01-01"),
        F.etab(ESS2020, COMMUNE, naf="56.10A", dateCreationEtablissement="2012-05-01"),
        F.etab(DEHORS_QPV, "75101", dateCreationEtablissement="2009-02-01"),
        F.etab(CHEVAUCHE, COMMUNE), F.etab(A_L_ENVERS, COMMUNE),
        F.etab(AUTRE_QPV, COMMUNE, dateCreationEtablissement="2014-01-01"),
    ]
    uls = [F.ul("100000001", "8210", nom="MUTUELLE DU BOURGET"), F.ul("100000002", "9220"), F.ul("100000003", "9220"),
           F.ul("100000004", "5710", "O", "RESTAURANT SOLIDAIRE"), F.ul("100000005", "9220"),
           F.ul("100000006", "9220"), F.ul("100000007", "9220"), F.ul("100000008", "9300")]
    points = {FERMEE: DANS_1, ACTIVITE: DANS_1, EMPLOYEUR: DANS_1, ESS2020: DANS_1,
              DEHORS_QPV: DEHORS, CHEVAUCHE: DANS_1, A_L_ENVERS: DANS_1, AUTRE_QPV: DANS_2}
    geo = [{"siret": s, "x": f"{x:.7f}", "y": f"{y:.7f}", "epsg": "4326", "qualite_xy": "11",
            "plg_qp15": "HZ"} for s, (x, y) in points.items()]
    eh = [
        _eh(FERMEE, "2012-07-01", "", etat="F"), _eh(FERMEE, "2008-06-01", "2012-06-30"),
        _eh(ACTIVITE, "2010-01-01", "2015-03-31"),
        _eh(ACTIVITE, "2015-04-01", "", naf="85.59A"),
        _eh(EMPLOYEUR, "2012-01-01", "2017-12-31", emp="N"),
        _eh(EMPLOYEUR, "2018-01-01", ""),
        _eh(ESS2020, "2012-05-01", "", naf="56.10A"),
        _eh(DEHORS_QPV, "2009-02-01", ""),
        _eh(CHEVAUCHE, "2010-01-01", "2016-12-31"), _eh(CHEVAUCHE, "2015-01-01", "2016-12-31"),
        _eh(CHEVAUCHE, "2017-01-01", ""),
        _eh(A_L_ENVERS, "2010-01-01", "2012-12-31"), _eh(A_L_ENVERS, "2019-05-01", "2011-01-01"),
        _eh(A_L_ENVERS, "2013-01-01", ""),
        _eh(AUTRE_QPV, "2014-01-01", ""),
    ]
    uh = [_uh("100000001", "2008-06-01", "", "8210", nom="MUTUELLE DU BOURGET"), _uh("100000002", "2010-01-01", ""),
          _uh("100000003", "2012-01-01", ""),
          _uh("100000004", "2012-05-01", "2019-12-31", "5710", "N", "RESTAURANT SOLIDAIRE"),
          _uh("100000004", "2020-01-01", "", "5710", "O", "RESTAURANT SOLIDAIRE"),
          _uh("100000005", "", ""), _uh("100000006", "2010-01-01", ""),
          _uh("100000007", "2010-01-01", ""), _uh("100000008", "2014-01-01", "", "9300")]
    return {
        "etablissements": F.ecrire(d / "StockEtablissement_utf8.csv", "etablissements", etabs),
        "unites_legales": F.ecrire(d / "StockUniteLegale_utf8.csv", "unites_legales", uls),
        "geolocalisation": F.ecrire(d / "geo.csv", "geolocalisation", geo, sep=";"),
        "eh": F.ecrire(d / "StockEtablissementHistorique_utf8.csv", H.ETABLISSEMENTS, eh),
        "uh": F.ecrire(d / "StockUniteLegaleHistorique_utf8.csv", H.UNITES_LEGALES, uh),
    }


def _qpv2024(d: Path) -> Path:
    """A 2024-schema GeoJSON with one real polygon (QP093002's), coded QN09300M."""
    geom = shapely.geometry.mapping(F.polygone("QP093002"))
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "code_qp": "QN09300M", "lib_qp": "Quartier d'essai", "insee_reg": "11",
        "lib_reg": "Île-de-France", "insee_dep": "93", "lib_dep": "Seine-Saint-Denis",
        "insee_com": COMMUNE, "lib_com": "Le Bourget", "siren_epci": "200054781"},
        "geometry": geom}]}
    chemin = d / "qpv2024.geojson"
    chemin.write_text(json.dumps(doc), "utf-8")
    return chemin


@pytest.fixture(scope="module")
def registre(tmp_path_factory) -> tuple[Path, dict, dict]:
    d = tmp_path_factory.mktemp("historique")
    f = _registre(d)
    base = d / "b.duckdb"
    B.construire(etablissements=f["etablissements"], unites_legales=f["unites_legales"],
                 geolocalisation=f["geolocalisation"], millesime=M, base=base,
                 geographie="2015")  # the vintage on the 2015 map, the 2024 file beside it
    r = HI.construire_historique(base=base, etablissements_historique=f["eh"],
                                 unites_legales_historique=f["uh"], qpv=_qpv2024(d),
                                 etablissements=f["etablissements"],
                                 geolocalisation=f["geolocalisation"])
    return base, f, r


def _indice(points: list[str], annee: int) -> int:
    return points.index(f"{annee}-01-01")


def test_fermee_en_2012_comptee_de_2009_a_2012(registre):
    base, _, _ = registre
    s = HI.serie(base, "QPV:QP093001", "2015")
    pts = s["points"]
    assert pts[0] == "2008-01-01" and pts[-1] == M
    # FERMEE is the only mutuelle
    assert s["qpv"]["familles"]["mutuelle"] == [int(2009 <= int(p[:4]) <= 2012) if
                                               p.endswith("-01-01") else 0 for p in pts]
    assert s["qpv"]["etablissements"][_indice(pts, 2009)] == 1
    # closure counted in 2012
    flux = s["flux"]
    assert flux["qpv"]["fermetures"][2012 - 2008] == 1
    assert sum(flux["qpv"]["fermetures"]) == 1


def test_changement_activite_change_de_secteur_a_la_bonne_date(registre):
    base, _, _ = registre
    s = HI.serie(base, "QPV:QP093001", "2015")
    pts, sec = s["points"], s["qpv"]["secteurs"]
    ens = sec["Enseignement"]
    assert [ens[_indice(pts, a)] for a in (2015, 2016)] == [0, 1]
    assert ens[-1] == 1
    sociale = sec["Action sociale"]
    # 2015-01-01: ACTIVITE still in social action (change on 2015-04-01)
    assert sociale[_indice(pts, 2015)] - sociale[_indice(pts, 2016)] == 1


def test_changement_caractere_employeur(registre):
    base, _, _ = registre
    s = HI.serie(base, "QPV:QP093001", "2015")
    pts, q = s["points"], s["qpv"]
    # EMPLOYEUR: non-employer on 2013-01-01 .. 2017-01-01, employer from 2018-01-01
    d17, d18 = _indice(pts, 2017), _indice(pts, 2018)
    assert q["non_employeurs"][d17] - q["non_employeurs"][d18] == 1
    assert q["employeurs"][d18] - q["employeurs"][d17] == 1
    assert all(q["employeurs"][i] + q["non_employeurs"][i] == q["etablissements"][i]
               for i in range(len(pts)))


def test_drapeau_ess_2020_entre_dans_l_ess_en_2020(registre):
    base, _, _ = registre
    s = HI.serie(base, "QPV:QP093001", "2015")
    pts, soc = s["points"], s["qpv"]["familles"].get("societe_commerciale_ess")
    assert soc is not None
    assert [soc[_indice(pts, a)] for a in (2019, 2020, 2021)] == [0, 1, 1]
    assert soc[-1] == 1


def test_periodes_invalides_rejetees_avec_motif(registre, tmp_path):
    base, f, r = registre
    rec = r["etablissements_historique"]
    assert rec["rejets_par_motif"] == {"date_fin_avant_debut": 1, "periodes_chevauchantes": 1}
    assert rec["lignes_lues"] == rec["lignes_rejetees"] + rec["acceptees"] == 15
    # rejects file: physical line (header = 1), reason, the line unchanged
    fichier = HI.dossier_rejets(base) / "etablissements_historique.txt"
    lignes = fichier.read_text("utf-8").splitlines()[1:]
    motifs = {l.split("\t")[1]: int(l.split("\t")[0]) for l in lignes}
    brut = f["eh"].read_text("utf-8").splitlines()
    assert A_L_ENVERS in brut[motifs["date_fin_avant_debut"] - 1]
    assert "2015-01-01" in brut[motifs["periodes_chevauchantes"] - 1]
    for l in lignes:
        n, _, contenu = l.split("\t", 2)
        assert brut[int(n) - 1] == contenu
    con = duckdb.connect(str(base), read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM rejets WHERE millesime = 'historique'").fetchone()
    finally:
        con.close()
    assert n[0] == 2


def test_fichier_echange_refuse(registre, tmp_path):
    _, f, _ = registre
    with pytest.raises(ColonneManquante, match="siret"):
        H.charger(f["uh"], H.ETABLISSEMENTS, tmp_path)
    with pytest.raises(ColonneManquante, match="dateFin"):
        H.charger(f["etablissements"], H.ETABLISSEMENTS, tmp_path)


def _photo(base: Path, geo_col: str = "qpv") -> dict:
    con = duckdb.connect(str(base), read_only=True)
    try:
        lignes = con.execute(
            f"SELECT famille, secteur, employeur, {geo_col} IS NOT NULL, count(*) "
            "FROM etablissements GROUP BY ALL").fetchall()
    finally:
        con.close()
    return {tuple(l[:4]): l[4] for l in lignes}


def _dernier(base: Path, geographie: str) -> dict:
    con = duckdb.connect(str(base), read_only=True)
    try:
        lignes = con.execute(
            "SELECT famille, secteur, employeur, qpv IS NOT NULL, sum(n) FROM historique_stock "
            "WHERE geographie = ? AND ordre = ? GROUP BY ALL",
            [geographie, len(HI.points_de(M)) - 1]).fetchall()
    finally:
        con.close()
    return {tuple(l[:4]): l[4] for l in lignes}


def test_dernier_point_egal_au_stock_dans_les_deux_geographies(registre, tmp_path):
    base, f, r = registre
    assert r["dernier_point"] == r["millesime_de_la_base"]
    assert _dernier(base, "2015") == _photo(base)
    # the same stock built on the 2024 contours: its picture is the 2024 series' last point
    base24 = tmp_path / "b24.duckdb"
    B.construire(etablissements=f["etablissements"], unites_legales=f["unites_legales"],
                 geolocalisation=f["geolocalisation"], millesime=M, base=base24,
                 qpv=_qpv2024(tmp_path))
    assert _dernier(base, "2024") == _photo(base24)
    assert sum(v for k, v in _photo(base24).items() if k[3]) == 1  # AUTRE_QPV only


def test_fermee_placee_par_le_stock(registre):
    base, _, r = registre
    # FERMEE is not in the vintage (closed): its position comes from the stock files
    assert r["etablissements_places_par_le_stock"]["trouves"] == 1
    assert r["etablissements_sans_position"] == 0
    s = HI.serie(base, "DEP:93", "2015")
    assert s["localises"] == s["etablissements_territoire"]


def test_sans_le_stock_les_fermes_sont_non_localises(registre, tmp_path):
    _, f, _ = registre
    base = tmp_path / "b.duckdb"
    B.construire(etablissements=f["etablissements"], unites_legales=f["unites_legales"],
                 geolocalisation=f["geolocalisation"], millesime=M, base=base,
                 geographie="2015")  # the vintage on the 2015 map, the 2024 file beside it
    r = HI.construire_historique(base=base, etablissements_historique=f["eh"],
                                 unites_legales_historique=f["uh"])
    assert r["geographies"] == ["2015"]
    # an implausible history (here: empty) never replaces good series
    vide_e, vide_u = tmp_path / "eh.csv", tmp_path / "uh.csv"
    vide_e.write_text(f["eh"].read_text("utf-8").split("\n", 1)[0] + "\n", "utf-8")
    vide_u.write_text(f["uh"].read_text("utf-8").split("\n", 1)[0] + "\n", "utf-8")
    with pytest.raises(FichierInvalide, match="Séries non écrites"):
        HI.construire_historique(base=base, etablissements_historique=vide_e,
                                 unites_legales_historique=vide_u)
    assert HI.disponible(base)["controle"]["dernier_point"] == r["dernier_point"]
    assert r["etablissements_sans_position"] == 1
    s = HI.serie(base, "FR", "2015")
    i = _indice(s["points"], 2010)
    assert s["ensemble"]["etablissements"][i] - s["localises"][i] == 1
    assert r["part_localisee_par_point"]["2010-01-01"] < 1
    assert r["part_localisee_par_point"][M] == 1
    # series of an earlier version, in another schema (a column the cube no longer has):
    # replaced, and the series read as the new ones
    B.fermer_connexions()
    con = duckdb.connect(str(base))
    try:
        con.execute("ALTER TABLE historique_stock ADD COLUMN departement VARCHAR")
    finally:
        con.close()
    HI.construire_historique(base=base, etablissements_historique=f["eh"],
                             unites_legales_historique=f["uh"])
    assert HI.serie(base, "FR", "2015") == s
    info = HI.disponible(base)
    B.fermer_connexions()
    con = duckdb.connect(str(base))
    try:
        en_bloc = HI.series_en_bloc(con, info, "2015", [Territoire("FR", "france", "France")])
        assert en_bloc["FR"]["qpv"] == s["qpv"]
    finally:
        con.close()


def test_correspondance_naf_rev1_biunivoque(tmp_path):
    t = tmp_path / "passage.csv"
    t.write_text("NAF rev1,NAF rev2\n85.3K,88.99B\n85.3K,88.99A\n80.4C,85.59A\n"
                 "55.3A,56.10A\n55.3B,56.10A\n92.6A,93.12Z\n", "utf-8")
    c = HI.correspondance_naf(t)
    # 85.3K splits, 56.10A merges two codes: only the one-to-one pairs are kept
    assert c == {"80.4C": "85.59A", "92.6A": "93.12Z"}
    assert HI.correspondance_naf(None) == {}


def test_publication_ne_masque_pas_les_comptes(registre):
    """The series count establishments, public in Sirene: nothing is masked, the rule is
    said, and the headcount caveat is there."""
    base, _, _ = registre
    brute = HI.serie(base, "QPV:QP093001", "2015")
    pub = HI.evolution(base, "QPV:QP093001", "2015")
    assert pub["protege"] and pub["secret"] == [] and pub["regle_secret"] == HI.REGLE_SECRET
    i = _indice(pub["points"], 2009)
    assert brute["qpv"]["etablissements"][i] == pub["qpv"]["etablissements"][i] == 1
    assert pub["qpv"] == brute["qpv"] and pub["flux"] == brute["flux"]
    assert HI.AVERTISSEMENT_EFFECTIFS in pub["avertissements"]
    # where one looks for the employees: none, and why
    assert pub["salaries"] is None and pub["note_salaries"] == HI.AVERTISSEMENT_EFFECTIFS


def test_reponses_stockees_avec_le_plan(registre, tmp_path):
    """With the vintage's publication plan stored (ecrire_plan), the series answers of every
    territory of the plan are stored with it (genre ``evolution`` for the vintage's QPV
    geography, ``evolution_<géographie>`` for the other; a QPV in the vintage's only;
    perimeter ``strict``), computed in bulk equal to the per-territory series, and read back
    by their key by every output (evolution); a territory outside the plan is refused."""
    import shutil

    from essqpv.indicators.publication import ecrire_plan
    from essqpv.indicators.reponses import HorsPlan
    base, _, _ = registre
    copie = tmp_path / "copie.duckdb"
    shutil.copyfile(base, copie)
    con = duckdb.connect(str(copie))
    try:
        ecrire_plan(con, M)
        lignes = con.execute("SELECT genre, territoire, perimetre, json FROM "
                             "publication_reponses WHERE genre LIKE 'evolution%'").fetchall()
        territoires = {t for (t,) in con.execute(
            "SELECT DISTINCT territoire FROM publication_cellules WHERE publiee AND niveau IN "
            "('france', 'region', 'departement', 'epci', 'commune', 'qpv')").fetchall()}
        geo_m = con.execute("SELECT geographie_qpv FROM millesimes").fetchone()[0]
    finally:
        con.close()
    B.fermer_connexions()
    autre = "2024" if geo_m == "2015" else "2015"
    assert {p for _, _, p, _ in lignes} == {"strict"}
    stockees = {(g, t): json.loads(j) for g, t, _, j in lignes}
    assert {g for g, _ in stockees} == {"evolution", f"evolution_{autre}"}
    assert {t for _, t in stockees} >= territoires and "QPV:QP093001" in territoires
    assert ("evolution", "QPV:QP093001") in stockees
    assert (f"evolution_{autre}", "QPV:QP093001") not in stockees
    assert ("evolution", "DEP:93") in stockees and (f"evolution_{autre}", "FR") in stockees
    for (g, t), r in stockees.items():
        geo = geo_m if g == "evolution" else autre
        assert r["geographie_qpv"] == geo
        assert r == json.loads(json.dumps(HI.publier(HI.serie(copie, t, geo)))), (t, geo)
        assert HI.evolution(copie, t, geo) == r
    assert HI.evolution(copie, "DEP:93") == stockees[("evolution", "DEP:93")]
    # a territory the plan does not publish: refused, not computed
    B.fermer_connexions()
    con = duckdb.connect(str(copie))
    try:
        con.execute("DELETE FROM publication_reponses WHERE territoire = 'DEP:93'")
        con.execute("DELETE FROM publication_cellules WHERE territoire = 'DEP:93'")
    finally:
        con.close()
    B.fermer_connexions()
    with pytest.raises(HorsPlan):
        HI.evolution(copie, "DEP:93")
    # after ``essqpv historique`` again, the answers are rewritten, not duplicated
    n = len(stockees) - sum(1 for _, t in stockees if t == "DEP:93")
    B.fermer_connexions()
    assert HI.ecrire_reponses_evolution(copie, M) == n
    con = duckdb.connect(str(copie), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM publication_reponses WHERE genre LIKE "
                           "'evolution%'").fetchone()[0] == n
    finally:
        con.close()


def test_commande_historique_et_evolution(registre, tmp_path):
    from typer.testing import CliRunner

    from essqpv.cli import app
    _, f, _ = registre
    base = tmp_path / "b.duckdb"
    B.construire(etablissements=f["etablissements"], unites_legales=f["unites_legales"],
                 geolocalisation=f["geolocalisation"], millesime=M, base=base)
    run = CliRunner().invoke(app, ["historique", "-E", str(f["eh"]), "-U", str(f["uh"]),
                                   "--base", str(base), "-e", str(f["etablissements"]),
                                   "-g", str(f["geolocalisation"]), "--format", "json"])
    assert run.exit_code == 0, run.output
    r = json.loads(run.stdout[run.stdout.index("{"):])
    assert r["etablissements_historique"]["rejets_par_motif"]["periodes_chevauchantes"] == 1
    run = CliRunner().invoke(app, ["evolution", "DEP:93", "--base", str(base)])
    assert run.exit_code == 0, run.output
    assert "2008-01-01" in run.stdout and "géographie QPV 2024" in run.stdout  # the default map
    assert "pas historisés" in run.stdout


def test_registre_synthetique_ecrit_des_historiques_coherents(tmp_path):
    import polars as pl

    from essqpv.sources.sirene import colonnes_officielles
    from essqpv.synthese import generer, generer_historiques
    r = generer(tmp_path / "reg", profil="test", millesime=M)
    h = generer_historiques(r["fichiers"], M)
    fe, fu = (Path(h["fichiers"][k]) for k in (H.ETABLISSEMENTS, H.UNITES_LEGALES))
    for f, role in ((fe, H.ETABLISSEMENTS), (fu, H.UNITES_LEGALES)):
        entete = f.read_text("utf-8").split("\n", 1)[0].split(",")
        assert entete == colonnes_officielles(role)["colonne"].to_list()
    e = pl.read_csv(fe, infer_schema=False)
    chg = e.filter(pl.col("dateDebut") > "2008-01-01")
    assert chg.filter(pl.col("changementActivitePrincipaleEtablissement") == "true").height
    assert chg.filter(pl.col("changementCaractereEmployeurEtablissement") == "true").height
    assert chg.filter(pl.col("changementEtatAdministratifEtablissement") == "true").height
    u = pl.read_csv(fu, infer_schema=False)
    assert u.filter(pl.col("changementEconomieSocialeSolidaireUniteLegale") == "true").height
    assert u.filter(pl.col("changementCategorieJuridiqueUniteLegale") == "true").height
    base = tmp_path / "b.duckdb"
    f = r["fichiers"]
    B.construire(etablissements=f["etablissements"], unites_legales=f["unites_legales"],
                 geolocalisation=f["geolocalisation"], millesime=M, base=base)
    c = HI.construire_historique(base=base, etablissements_historique=fe,
                                 unites_legales_historique=fu,
                                 etablissements=f["etablissements"],
                                 geolocalisation=f["geolocalisation"])
    # periods that end where the stock says closed: the last point is the stock's picture
    assert c["dernier_point"] == c["millesime_de_la_base"]
    assert c["etablissements_historique"]["lignes_rejetees"] == 0
    s = HI.evolution(base, "FR")
    assert s["synthetique"] and len(s["points"]) == 2024 - 2008 + 2
    assert s["france"]["etablissements"][0] < s["france"]["etablissements"][-1]


def test_qpv_dans_l_autre_geographie_refuse(registre):
    """A QPV's series exists in its vintage's geography only (2015 here): asked in the
    other, a clear refusal, not a series of zeros."""
    from essqpv.errors import ParametreInvalide
    base, _, _ = registre
    for fonction in (HI.serie, HI.evolution):
        with pytest.raises(ParametreInvalide, match="géographie de son millésime"):
            fonction(base, "QPV:QP093001", "2024")
    assert HI.evolution(base, "QPV:QP093001")["geographie_qpv"] == "2015"


def test_evenements_refusent_une_annee_hors_de_la_cle():
    """Events are joined on siret × 2¹⁵ + day since the eve of 2008: a year the key cannot
    hold is refused with a message, not by an assertion that ``python -O`` would drop."""
    import datetime as dt

    import polars as pl

    from essqpv.errors import ParametreInvalide
    etab = pl.DataFrame({"siret": [10000000100011], "debut": [dt.date(2010, 1, 1)],
                         "etat": ["A"]})
    inter = pl.DataFrame({"siret": [10000000100011], "famille": ["association"],
                          "secteur": ["S"], "employeur": [True],
                          "debut": [dt.date(2010, 1, 1)], "fin": [dt.date(2011, 1, 1)]})
    assert HI._evenements(etab, inter, 2096).height == 1  # (its creation in 2010)
    with pytest.raises(ParametreInvalide, match="2096 au plus"):
        HI._evenements(etab, inter, 2097)


def test_series_et_construction_ne_se_croisent_pas(registre, tmp_path):
    """The series take the base's build lock: while a build (or other series) holds it, they
    stop naming the holder, and the base's series and rejects stay as they were (before: the
    second writer stopped on DuckDB's internal lock error, or wrote into a file the build
    was about to replace)."""
    import shutil

    from essqpv import garde_fous
    from essqpv.errors import BaseOccupee
    base, f, _ = registre
    copie = tmp_path / "b.duckdb"
    shutil.copy(base, copie)
    shutil.copytree(HI.dossier_rejets(base).parent, HI.dossier_rejets(copie).parent)
    avant = copie.read_bytes(), sorted(p.name for p in HI.dossier_rejets(copie).iterdir())
    with garde_fous.Verrou(copie):
        with pytest.raises(BaseOccupee, match=f"processus {os.getpid()}"):
            HI.construire_historique(base=copie, etablissements_historique=f["eh"],
                                     unites_legales_historique=f["uh"])
    assert (copie.read_bytes(), sorted(p.name for p in HI.dossier_rejets(copie).iterdir())
            ) == avant
    with pytest.raises(BaseInvalide, match="Base introuvable"):
        HI.construire_historique(base=tmp_path / "absente" / "b.duckdb",
                                 etablissements_historique=f["eh"],
                                 unites_legales_historique=f["uh"])
    assert not (tmp_path / "absente").exists()


def test_series_tuees_entre_la_base_et_les_rejets_sont_reparees(registre, tmp_path):
    """Killed (SIGKILL) once the series are committed and the old rejects folder set aside,
    before the new one is swapped in: the next start puts the checked folder in place, in
    accord with the base (the same machinery as the stocks' rejects)."""
    import shutil
    import subprocess
    import sys

    base, f, _ = registre
    copie = tmp_path / "b.duckdb"
    shutil.copy(base, copie)
    shutil.copytree(HI.dossier_rejets(base).parent, HI.dossier_rejets(copie).parent)
    code = ("from essqpv.historique import construire_historique as c; "
            f"c(base={str(copie)!r}, etablissements_historique={str(f['eh'])!r}, "
            f"unites_legales_historique={str(f['uh'])!r})")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       env={**os.environ, "ESSQPV_ARRET_TEST": "rejets_anciens_ecartes"})
    assert p.returncode == -9, p.stderr.decode()[-2000:]
    racine = HI.dossier_rejets(copie).parent
    assert not HI.dossier_rejets(copie).exists()
    assert {q.name.split("-")[0] for q in racine.iterdir() if q.name.startswith("historique.")
            } == {"historique.tmp", "historique.ancien"}
    from essqpv import garde_fous
    faits = garde_fous.nettoyer_restes(copie)
    assert any("remis en accord" in x for x in faits), faits
    assert sorted(q.name for q in racine.iterdir() if q.name.startswith("historique")) == [
        "historique"]
    assert garde_fous.signature_dossier(HI.dossier_rejets(copie)) == \
        garde_fous.signature_base(copie, "historique")
    assert garde_fous.signature_base(copie, "historique")["lignes"] == 2
