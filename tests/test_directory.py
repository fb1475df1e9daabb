"""Directory of initiatives, socio-economic models and the adult-relay layer."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
import shapely
from typer.testing import CliRunner

import essqpv.directory as annuaire
from essqpv.directory import _reference
from essqpv.directory.modele import choisir_modele, deduire_modele, parts_ressources
from essqpv.directory.schema import MOTIFS, alias_colonnes, siret_valide
from essqpv.errors import (
    BaseInvalide,
    ColonneManquante,
    FichierIntrouvable,
    FichierInvalide,
    ParametreInvalide,
    TerritoireInconnu,
)

DONNEES = Path(__file__).resolve().parent / "data" / "initiatives"
CSV_VALIDE = DONNEES / "initiatives.csv"
CSV_ERREURS = DONNEES / "erreurs.csv"
GOGOCARTO = DONNEES / "gogocarto.json"
POINT_QP093001 = (2.423922, 48.932411)  # representative point, rounded (see the data README)

COLONNES_ETAB = {
    "millesime": "VARCHAR", "siret": "VARCHAR", "siren": "VARCHAR", "denomination": "VARCHAR",
    "famille": "VARCHAR", "secteur": "VARCHAR", "employeur": "BOOLEAN", "tranche": "VARCHAR",
    "effectif_estime": "DOUBLE", "effectif": "INTEGER", "commune": "VARCHAR",
    "departement": "VARCHAR", "region": "VARCHAR", "epci": "VARCHAR", "lon": "DOUBLE",
    "lat": "DOUBLE", "qpv": "VARCHAR", "qpv_tampon": "VARCHAR",
}


def base_manuelle(chemin: Path, etablissements: list[dict], synthetique: bool = False,
                  millesime: str = "2024-01") -> Path:
    """A small base with the builder's tables ``etablissements`` and ``millesimes``."""
    con = duckdb.connect(str(chemin))
    con.execute("CREATE TABLE etablissements ("
                + ", ".join(f"{c} {t}" for c, t in COLONNES_ETAB.items()) + ")")
    con.execute("CREATE TABLE millesimes (millesime VARCHAR, geographie_qpv VARCHAR, "
                "tampon_m INTEGER, synthetique BOOLEAN)")
    con.execute("INSERT INTO millesimes VALUES (?, '2015', 300, ?)", [millesime, synthetique])
    for e in etablissements:
        ligne = {c: e.get(c) for c in COLONNES_ETAB}
        ligne["millesime"] = e.get("millesime", millesime)
        ligne["siren"] = ligne["siret"][:9]
        con.execute(f"INSERT INTO etablissements VALUES ({', '.join('?' for _ in ligne)})",
                    list(ligne.values()))
    con.close()
    return chemin


ETAB_CENTRE_SOCIAL = {
    "siret": "77554402601284", "denomination": "CENTRE SOCIAL EST - ASSOCIATION ALFA 3A",
    "famille": "association", "secteur": "Action sociale", "employeur": True, "tranche": "12",
    "effectif_estime": 14.5, "effectif": 17, "commune": "01053", "departement": "01",
    "region": "84", "epci": "200071751", "lon": 5.2425, "lat": 46.2065, "qpv": "QP001001",
    "qpv_tampon": "QP001001",
}


@pytest.fixture()
def base(tmp_path) -> Path:
    return base_manuelle(tmp_path / "base.duckdb", [
        ETAB_CENTRE_SOCIAL,
        # an older vintage of the same establishment must not be used
        {**ETAB_CENTRE_SOCIAL, "millesime": "2023-01", "famille": "fondation", "qpv": None},
    ])


def _sans(ini: dict, *cles) -> dict:
    return {k: v for k, v in ini.items() if k not in cles}


# --------------------------------------------------------------------------- reference data

def test_tables_de_reference():
    cats = _reference.categories()
    assert len(cats) == 16 and len({c["categorie"] for c in cats}) == 16
    assert list(_reference.axes()) == ["besoins_habitants", "creation_activites_emplois",
                                       "participation_citoyenne"]
    assert [sum(c["axe"] == a for c in cats) for a in _reference.axes()] == [5, 8, 3]
    m = annuaire.modeles()
    assert [x["modele"] for x in m] == [1, 2, 3]
    assert [x["intitule"] for x in m] == [
        "Soutien aux actions collectives / développement citoyen",
        "Intérêt général lié aux politiques publiques", "Vente de produits et services"]
    for x in m:
        for cle in ("caracteristiques", "modele_economique", "environnement", "partenaires_cles"):
            assert x[cle].strip()
        assert "2020" in x["source"]
    assert [len(x["exemples"]) for x in m] == [2, 6, 4]
    groupes = {r["groupe"] for r in _reference.ressources()}
    assert groupes == {r["groupe"] for r in _reference.regles_modele()}
    # no alias points at two fields; every schema field is a documented column
    vus = {}
    for r in _reference.schema():
        if r["role"] == "saisie":
            for a in filter(None, r["alias"].split("|")):
                cle = _reference.cle_colonne(a)
                assert vus.setdefault(cle, r["champ"]) == r["champ"], a
    assert alias_colonnes()["site_web"] == "site_web"
    doc = (Path(__file__).resolve().parents[1] / "docs" / "initiatives.md").read_text("utf-8")
    for r in _reference.schema():
        assert f"`{r['champ']}`" in doc, r["champ"]
    for motif in MOTIFS:
        assert f"`{motif}`" in doc, motif


def test_siret_luhn():
    assert siret_valide("77554402601284")
    assert not siret_valide("77554402601285")
    assert siret_valide("35600000000010")  # La Poste: digit sum divisible by 5
    assert not siret_valide("35600000000011")


# --------------------------------------------------------------------------- model rule

@pytest.mark.parametrize("ressources, modele, motif", [
    ({"ressources_ventes": 60, "ressources_financements_publics": 40}, 3,
     "modèle 3 déduit des ressources : les ventes de produits et services = 60,0 % des "
     "ressources valorisées (seuil 50,0 %)"),
    ({"ressources_ventes": 30, "ressources_financements_publics": 70}, 2,
     "modèle 2 déduit des ressources : les financements publics = 70,0 % des ressources "
     "valorisées (seuil 50,0 %)"),
    # 1,000 volunteer hours × 11.65 € = 11,650 € against 5,000 € of sales: 70.0 %
    ({"heures_benevoles": 1000, "ressources_ventes": 5000}, 1,
     "modèle 1 déduit des ressources : les cotisations, dons, financements privés et le "
     "bénévolat valorisé = 70,0 % des ressources valorisées (seuil 50,0 %)"),
    # exactly 50 % sales and 50 % public money: the first rule (sales) wins
    ({"ressources_ventes": 50, "ressources_financements_publics": 50}, 3,
     "modèle 3 déduit des ressources : les ventes de produits et services = 50,0 % des "
     "ressources valorisées (seuil 50,0 %)"),
    # no group reaches 50 %: the largest share decides
    ({"ressources_ventes": 40, "ressources_financements_publics": 35,
      "ressources_cotisations_dons": 25}, 3,
     "modèle 3 déduit des ressources : aucun seuil atteint, part la plus forte pour les ventes "
     "de produits et services (40,0 %)"),
    ({"ressources_ventes": 20, "ressources_financements_publics": 45,
      "ressources_financements_prives": 20, "ressources_cotisations_dons": 15}, 2,
     "modèle 2 déduit des ressources : aucun seuil atteint, part la plus forte pour les "
     "financements publics (45,0 %)"),
    ({}, None, "ressources non renseignées : modèle non déduit"),
    ({"ressources_ventes": 0, "heures_benevoles": 0}, None,
     "ressources non renseignées : modèle non déduit"),
])
def test_regle_du_modele(ressources, modele, motif):
    assert deduire_modele(ressources) == (modele, motif)


def test_modele_declare_prime():
    assert choisir_modele(2, {"ressources_ventes": 100}) == (
        2, "modèle déclaré (la règle des ressources donnerait le modèle 3)")
    assert choisir_modele(3, {"ressources_ventes": 100}) == (3, "modèle déclaré")
    assert choisir_modele(1, {}) == (1, "modèle déclaré")
    parts = parts_ressources({"ressources_ventes": 1, "ressources_financements_publics": 1,
                              "ressources_financements_prives": 1,
                              "ressources_cotisations_dons": 1, "heures_benevoles": 0})
    assert parts == {"marchand": 0.25, "public": 0.25, "citoyen_prive": 0.5}


# --------------------------------------------------------------------------- import formats

def _attendu_csv(initiatives: list[dict]) -> None:
    par_nom = {i["nom"]: i for i in initiatives}
    assert list(par_nom) == ["Épicerie solidaire du Bourget", "Centre social Est",
                             "Accorderie de test", "CIDFF test", "Coopérative jeunesse Nord"]
    e = par_nom["Épicerie solidaire du Bourget"]
    assert (e["commune"], e["nom_commune"], e["departement"], e["region"], e["epci"]) == (
        "93013", "Le Bourget", "93", "11", "200054781")
    assert (e["longitude"], e["latitude"]) == POINT_QP093001
    assert e["categories"] == ["alimentation", "circuits_courts"]
    assert e["axes"] == ["besoins_habitants", "participation_citoyenne"]
    assert e["partenaires"] == ["Bailleur social", "Centre social"]
    assert (e["benevoles"], e["salaries"], e["ressources_ventes"]) == (12, 2, 60000.0)
    assert (e["modele_declare"], e["modele"]) == (None, 3)
    c = par_nom["Centre social Est"]
    assert (c["siret"], c["modele"], c["commune"]) == ("77554402601284", 2, None)
    a = par_nom["Accorderie de test"]
    assert (a["modele"], a["motif_modele"]) == (1, "modèle déclaré")
    assert (a["commune"], a["nom_commune"]) == ("75056", "Paris")
    assert par_nom["CIDFF test"]["site_web"] == "https://www.cidff.example.org"
    assert par_nom["CIDFF test"]["commune"] == "75056"
    j = par_nom["Coopérative jeunesse Nord"]
    assert (j["commune"], j["categories"], j["axes"]) == (
        "93066", ["cjs"], ["creation_activites_emplois"])


def test_import_csv():
    r = annuaire.valider(CSV_VALIDE)
    s = r.resume()
    assert (s["format"], s["lignes_lues"], s["acceptees"], s["rejetees"]) == ("csv", 5, 5, 0)
    assert s["avertissements"] == [
        "colonnes ignorées : Couleur préférée",
        "ligne 5 : site_web : « https:// » ajouté devant « www.cidff.example.org »"]
    _attendu_csv(r.initiatives)
    assert [i["ligne"] for i in r.initiatives] == [2, 3, 4, 5, 6]
    assert {i["source"] for i in r.initiatives} == {"initiatives.csv"}


def _ecrire_xlsx(chemin: Path) -> Path:
    """The CSV fixture as a workbook, with numbers typed as numbers (as users' files are)."""
    import openpyxl

    with CSV_VALIDE.open(encoding="utf-8") as f:
        lignes = list(csv.reader(f, delimiter=";"))
    classeur = openpyxl.Workbook()
    feuille = classeur.active
    feuille.title = "Feuil1"
    feuille.append(lignes[0])
    for ligne in lignes[1:]:
        valeurs = []
        for entete, v in zip(lignes[0], ligne):
            if v and entete in ("SIRET", "Code postal", "Bénévoles", "Salariés", "Ventes",
                                "Financements publics", "Financements privés", "Modèle",
                                "Cotisations et dons", "Heures de bénévolat") and v.isdigit():
                v = int(v)
            elif v and entete in ("Longitude", "Latitude"):
                v = float(v.replace(",", "."))
            valeurs.append(v if v != "" else None)
        feuille.append(valeurs)
    classeur.save(chemin)
    return chemin


def test_import_xlsx(tmp_path):
    xlsx = _ecrire_xlsx(tmp_path / "initiatives.xlsx")
    r = annuaire.valider(xlsx)
    assert (r.format, r.lignes_lues, len(r.initiatives), r.rejets) == ("xlsx", 5, 5, [])
    _attendu_csv(r.initiatives)
    attendu = annuaire.valider(CSV_VALIDE).initiatives
    assert [_sans(i, "fichier", "source") for i in r.initiatives] == \
           [_sans(i, "fichier", "source") for i in attendu]


def test_xlsx_codes_numeriques(tmp_path):
    """A spreadsheet turns 01000 into 1000: codes get their leading zeros back."""
    import openpyxl

    classeur = openpyxl.Workbook()
    f = classeur.active
    f.append(["nom", "code_postal", "commune", "siret"])
    f.append(["Initiative de l'Ain", 1000, 1053, 77554402601284])
    classeur.save(tmp_path / "codes.xlsx")
    (i,) = annuaire.valider(tmp_path / "codes.xlsx").initiatives
    assert (i["code_postal"], i["commune"], i["nom_commune"], i["siret"]) == (
        "01000", "01053", "Bourg-en-Bresse", "77554402601284")


def test_import_gogocarto():
    r = annuaire.valider(GOGOCARTO)
    s = r.resume()
    assert (s["format"], s["lignes_lues"], s["acceptees"], s["rejetees"]) == ("json", 3, 2, 1)
    assert s["rejets"] == [{"ligne": 3, "motif": "nom_manquant",
                            "message": "nom : valeur obligatoire manquante"}]
    assert s["avertissements"] == [
        "ligne 1 : catégories non reconnues, gardées dans categories_source : Réemploi"]
    e, f = r.initiatives
    assert (e["identifiant"], e["nom"], e["source"]) == (
        "gogo-1", "Épicerie solidaire du Bourget", "Carte de test")
    assert (e["longitude"], e["latitude"]) == POINT_QP093001
    assert (e["adresse"], e["code_postal"], e["commune"]) == ("1 rue de l'Exemple", "93350", "93013")
    assert (e["categories"], e["categories_source"]) == (["alimentation"], ["Réemploi"])
    assert e["description"] == "Épicerie à petits prix\n\nOuverte le samedi"
    assert e["site_web"] == "https://epicerie.example.org"
    assert (f["identifiant"], f["nom"], f["siret"], f["source"]) == (
        "gogo-2", "Fablab du quartier", "31538511200026", "gogocarto.json")
    assert (f["longitude"], f["latitude"], f["categories"]) == (2.3499, 48.853, ["fablab"])
    assert (f["modele"], f["motif_modele"]) == (3, "modèle déclaré")


def test_gogocarto_liste_nue(tmp_path):
    p = tmp_path / "elements.json"
    p.write_text(json.dumps([{"name": "A", "lat": "48.93", "lng": "2.42"}]), encoding="utf-8")
    (i,) = annuaire.valider(p).initiatives
    assert (i["nom"], i["longitude"], i["latitude"]) == ("A", 2.42, 48.93)


# --------------------------------------------------------------------------- validation

ERREURS_ATTENDUES = {
    3: ["nom_manquant"], 4: ["siret_invalide"], 5: ["siret_cle_invalide"],
    6: ["code_postal_invalide"], 7: ["commune_inconnue"], 8: ["commune_ambigue"],
    9: ["coordonnees_incompletes"], 10: ["coordonnees_invalides"],
    11: ["coordonnees_hors_france"], 12: ["url_invalide"], 13: ["axe_inconnu"],
    14: ["categorie_inconnue"], 15: ["modele_invalide"], 16: ["nombre_invalide"],
    17: ["montant_invalide"], 18: ["doublon"], 19: ["doublon"], 20: ["ligne_mal_formee"],
    21: ["coordonnees_invalides"],
}


def test_chaque_erreur_de_validation():
    r = annuaire.valider(CSV_ERREURS)
    s = r.resume()
    assert (s["lignes_lues"], s["acceptees"], s["rejetees"]) == (20, 1, 19)
    obtenu: dict[int, list[str]] = {}
    for x in r.rejets:
        obtenu.setdefault(x["ligne"], []).append(x["motif"])
    assert obtenu == ERREURS_ATTENDUES
    assert {m for ms in obtenu.values() for m in ms} == set(MOTIFS)  # every reason is tested
    messages = {x["ligne"]: x["message"] for x in r.rejets}
    assert messages[5] == "siret « 77554402601285 » : clé de contrôle (formule de Luhn) invalide"
    assert messages[8] == ("commune « Saint-Denis » : 4 communes portent ce nom (11339, 30247, "
                           "93066, 97411) ; donner le code postal ou le code commune")
    assert messages[11] == ("longitude 48.85, latitude 2.35 : point hors de France (latitude et "
                            "longitude inversées ?)")
    assert messages[18] == "même SIRET 77554402601284 que la ligne 2"
    assert messages[19] == ("même nom normalisé « INITIATIVE VALIDE » et même commune que la "
                            "ligne 2")
    assert messages[20] == "13 champs pour 12 colonnes d'en-tête"
    assert s["rejets_par_motif"]["doublon"] == 2
    # the rejected line is kept unchanged
    assert json.loads(next(x["contenu"] for x in r.rejets if x["ligne"] == 4))["siret"] == "1234"


def test_erreurs_de_fichier(tmp_path):
    with pytest.raises(FichierIntrouvable, match="absent.csv"):
        annuaire.valider(tmp_path / "absent.csv")
    (tmp_path / "sans_nom.csv").write_text("siret,commune\n77554402601284,01053\n", "utf-8")
    with pytest.raises(ColonneManquante, match="colonne « nom » introuvable"):
        annuaire.valider(tmp_path / "sans_nom.csv")
    (tmp_path / "casse.json").write_text("{\"data\": [", "utf-8")
    with pytest.raises(FichierInvalide, match="JSON invalide"):
        annuaire.valider(tmp_path / "casse.json")
    (tmp_path / "objet.json").write_text("{\"features\": []}", "utf-8")
    with pytest.raises(FichierInvalide, match="clé « data »"):
        annuaire.valider(tmp_path / "objet.json")
    (tmp_path / "x.ods").write_text("", "utf-8")
    with pytest.raises(ParametreInvalide, match="attendu csv, xlsx, json"):
        annuaire.valider(tmp_path / "x.ods")
    (tmp_path / "faux.xlsx").write_text("pas un classeur", "utf-8")
    with pytest.raises(FichierInvalide, match="classeur Excel illisible"):
        annuaire.valider(tmp_path / "faux.xlsx")
    with pytest.raises(BaseInvalide, match="Base introuvable"):
        annuaire.importer(tmp_path / "pas_de_base.duckdb", CSV_VALIDE)


def test_csv_windows_1252(tmp_path):
    p = tmp_path / "excel.csv"
    p.write_bytes("nom;commune\nÉpicerie;Bobigny\n".encode("cp1252"))
    (i,) = annuaire.valider(p).initiatives
    assert (i["nom"], i["commune"]) == ("Épicerie", "93008")


# --------------------------------------------------------------------------- enrichment

def test_rattachement_par_siret(base):
    con = duckdb.connect(str(base))
    avant = con.execute("SELECT * FROM etablissements ORDER BY millesime").fetchall()
    con.close()
    s = annuaire.importer(base, CSV_VALIDE)
    assert (s["acceptees"], s["nouvelles"], s["mises_a_jour"]) == (5, 5, 0)
    assert (s["rattachees_siret"], s["millesime_base"]) == (1, "2024-01")
    par_nom = {i["nom"]: i for i in annuaire.lister(base)}
    c = par_nom["Centre social Est"]
    assert (c["famille"], c["employeur"], c["tranche_effectif"], c["effectif_estime"]) == (
        "association", True, "12", 14.5)
    assert (c["qpv"], c["qpv_tampon"], c["rattachement"], c["millesime"]) == (
        "QP001001", "QP001001", "siret", "2024-01")
    assert c["motif_rattachement"] == "SIRET trouvé dans la base (millésime 2024-01)"
    # the commune comes from the base when the file has none
    assert (c["commune"], c["nom_commune"], c["departement"], c["region"], c["epci"]) == (
        "01053", "Bourg-en-Bresse", "01", "84", "200071751")
    assert "effectif" not in c  # the employment file's headcount is never copied
    a = par_nom["Accorderie de test"]
    assert (a["rattachement"], a["motif_rattachement"]) == (None, "sans coordonnées")
    con = duckdb.connect(str(base), read_only=True)
    apres = con.execute("SELECT * FROM etablissements ORDER BY millesime").fetchall()
    tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    assert apres == avant
    assert tables == {"etablissements", "millesimes", "initiatives", "initiatives_rejets"}


def test_base_synthetique_marquee(tmp_path):
    from essqpv.config import MARQUE_SYNTHETIQUE

    b = base_manuelle(tmp_path / "demo.duckdb", [ETAB_CENTRE_SOCIAL], synthetique=True)
    annuaire.importer(b, CSV_VALIDE)
    c = next(i for i in annuaire.lister(b) if i["nom"] == "Centre social Est")
    assert c["motif_rattachement"].endswith(MARQUE_SYNTHETIQUE)
    annuaire.exporter(b, tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text("utf-8"))["avertissements"] == [
        MARQUE_SYNTHETIQUE]


def test_point_de_reference_dans_qp093001():
    from essqpv.reference import qpv2015

    q = qpv2015().filter(pl.col("code_qp") == "QP093001")
    geom = shapely.from_wkb(q["geometrie"][0])
    p = geom.representative_point()
    assert (round(p.x, 6), round(p.y, 6)) == POINT_QP093001
    assert geom.covers(shapely.Point(*POINT_QP093001))


def test_rattachement_par_coordonnees(base):
    pytest.importorskip("essqpv.placement")
    s = annuaire.importer(base, CSV_VALIDE)
    assert (s["rattachees_siret"], s["rattachees_coordonnees"], s["non_rattachees"],
            s["en_qpv"]) == (1, 2, 2, 2)
    par_nom = {i["nom"]: i for i in annuaire.lister(base)}
    e = par_nom["Épicerie solidaire du Bourget"]
    assert (e["qpv"], e["rattachement"], e["famille"]) == ("QP093001", "coordonnees", None)
    assert e["motif_rattachement"] == "QPV par coordonnées (périmètre strict, géographie 2015)"
    c = par_nom["CIDFF test"]  # SIRET not in the base: falls back on its coordinates
    assert (c["qpv"], c["rattachement"]) == (None, "coordonnees")
    assert c["motif_rattachement"] == ("SIRET absent de la base (hors périmètre ESS ou base "
                                       "absente) ; coordonnées hors QPV (périmètre strict, "
                                       "géographie 2015)")
    assert [i["nom"] for i in annuaire.lister(base, "QPV:QP093001")] == [
        "Épicerie solidaire du Bourget"]
    g = annuaire.importer(base, GOGOCARTO)
    assert (g["rattachees_coordonnees"], g["en_qpv"]) == (2, 1)


# --------------------------------------------------------------------------- base, listing

def test_reimport_remplace(base):
    annuaire.importer(base, CSV_VALIDE)
    s = annuaire.importer(base, CSV_VALIDE)
    assert (s["nouvelles"], s["mises_a_jour"]) == (0, 5)
    assert len(annuaire.lister(base)) == 5
    e = annuaire.importer(base, CSV_ERREURS)
    # "Initiative valide" has the centre social's SIRET: it replaces "Centre social Est"
    assert (e["acceptees"], e["rejetees"], e["nouvelles"], e["mises_a_jour"]) == (1, 19, 0, 1)
    noms = [i["nom"] for i in annuaire.lister(base)]
    assert len(noms) == 5 and "Initiative valide" in noms and "Centre social Est" not in noms
    con = duckdb.connect(str(base), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT ligne) FROM initiatives_rejets "
                       "WHERE fichier = 'erreurs.csv'").fetchone() == (19, 19)


def test_lister_par_territoire(base):
    annuaire.importer(base, CSV_VALIDE)
    noms = lambda t: sorted(i["nom"] for i in annuaire.lister(base, t))
    assert len(noms(None)) == len(noms("FR")) == len(noms("METRO")) == 5
    assert noms("DEP:93") == ["Coopérative jeunesse Nord", "Épicerie solidaire du Bourget"]
    assert noms("REG:11") == ["Accorderie de test", "CIDFF test", "Coopérative jeunesse Nord",
                              "Épicerie solidaire du Bourget"]
    assert noms("COM:75056") == ["Accorderie de test", "CIDFF test"]
    # the Métropole du Grand Paris holds Paris and the communes of Seine-Saint-Denis
    assert noms("EPCI:200054781") == noms("REG:11")
    assert noms("DEP:01") == ["Centre social Est"]  # commune from the base, by SIRET
    assert noms("DROM") == []
    with pytest.raises(TerritoireInconnu):
        annuaire.lister(base, "PAYS:FR")
    premiers = annuaire.lister(base)
    assert [i["modele"] for i in premiers] == [1, 2, 3, None, None]
    assert premiers[0]["libelle_modele"] == "Soutien aux actions collectives / développement citoyen"
    e = next(i for i in premiers if i["nom"].startswith("Épicerie"))
    assert e["libelles_categories"] == ["Alimentation", "Circuits courts alimentaires"]
    assert e["libelles_axes"] == ["Répondre aux besoins des habitant·es",
                                  "Encourager la participation des citoyen·nes"]
    json.dumps(premiers)  # JSON-able


# --------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
def test_aller_retour(tmp_path, fmt):
    b1 = base_manuelle(tmp_path / "b1.duckdb", [ETAB_CENTRE_SOCIAL])
    b2 = base_manuelle(tmp_path / "b2.duckdb", [ETAB_CENTRE_SOCIAL])
    annuaire.importer(b1, CSV_VALIDE)
    # the épicerie (same name and commune) and the fablab (same SIRET as « CIDFF test »)
    # replace two rows of the CSV
    g = annuaire.importer(b1, GOGOCARTO)
    assert (g["nouvelles"], g["mises_a_jour"]) == (0, 2)
    annuaire.importer_annuaire_initial(b1)
    export1 = tmp_path / f"export1.{fmt}"
    assert annuaire.exporter(b1, export1)["initiatives"] == 17
    s = annuaire.importer(b2, export1)
    assert (s["lignes_lues"], s["acceptees"], s["rejetees"]) == (17, 17, 0)
    assert annuaire.lister(b2) == annuaire.lister(b1)
    export2 = tmp_path / f"export2.{fmt}"
    annuaire.exporter(b2, export2)
    if fmt == "xlsx":
        import openpyxl

        lire = lambda p: list(openpyxl.load_workbook(p)["initiatives"].values)
        assert lire(export1) == lire(export2)
    else:
        assert export1.read_bytes() == export2.read_bytes()
    # re-importing the export into the first base changes nothing
    avant = annuaire.lister(b1)
    r = annuaire.importer(b1, export1)
    assert (r["nouvelles"], r["mises_a_jour"]) == (0, 17)
    assert annuaire.lister(b1) == avant


def test_export_par_territoire(tmp_path, base):
    annuaire.importer(base, CSV_VALIDE)
    r = annuaire.exporter(base, tmp_path / "dep93.csv", territoire="DEP:93")
    assert r == {"fichier": str(tmp_path / "dep93.csv"), "format": "csv", "initiatives": 2}
    lignes = list(csv.DictReader((tmp_path / "dep93.csv").open(encoding="utf-8")))
    assert list(lignes[0]) == list(annuaire.COLONNES_EXPORT)
    assert [x["nom"] for x in lignes] == ["Épicerie solidaire du Bourget",
                                          "Coopérative jeunesse Nord"]
    assert lignes[0]["categories"] == "alimentation|circuits_courts"
    assert lignes[0]["ressources_ventes"] == "60000"
    assert lignes[0]["longitude"] == "2.423922"


# --------------------------------------------------------------------------- starter directory

def test_annuaire_initial(tmp_path):
    a = annuaire.annuaire_initial()
    assert [(i["modele"], i["nom"]) for i in a] == [
        (1, "Accorderies"), (1, "KAPS"),
        (2, "APRES"), (2, "BicyclAide"), (2, "CJS"), (2, "EMCP"), (2, "PôleS"),
        (2, "Solidarauto"),
        (3, "Conciergerie solidaire"), (3, "La Ferme des Possibles"),
        (3, "Régie de quartier de Laxou"), (3, "Rues du Développement Durable")]
    for i in a:
        assert i["siret"] is None and i["adresse"] is None and i["longitude"] is None
        assert i["benevoles"] is None and i["salaries"] is None
        assert all(i[r["ressource"]] is None for r in _reference.ressources())
        assert "webinaire" in i["source"].lower() and "2020" in i["source"]
        assert i["remarque"] and i["motif_modele"] == "modèle déclaré"
    par_nom = {i["nom"]: i for i in a}
    assert par_nom["KAPS"]["categories"] == ["logement"]
    assert par_nom["CJS"]["categories"] == ["cjs"]
    assert par_nom["Solidarauto"]["categories"] == ["mobilite"]
    assert (par_nom["Régie de quartier de Laxou"]["commune"],
            par_nom["Régie de quartier de Laxou"]["departement"]) == ("54304", "54")
    assert [i["nom"] for i in a if i["commune"]] == ["Régie de quartier de Laxou"]
    # the examples of the models table are exactly the starter directory
    assert sorted(e for m in annuaire.modeles() for e in m["exemples"]) == sorted(par_nom)
    # without a base (or without the table), lister shows the starter directory
    assert annuaire.lister(None) == a
    assert [i["nom"] for i in annuaire.lister(None, "DEP:54")] == ["Régie de quartier de Laxou"]
    b = base_manuelle(tmp_path / "b.duckdb", [])
    assert annuaire.lister(b) == a
    s = annuaire.importer_annuaire_initial(b)
    assert (s["acceptees"], s["nouvelles"]) == (12, 12)
    assert annuaire.importer_annuaire_initial(b)["mises_a_jour"] == 12
    assert annuaire.lister(b) == a


# --------------------------------------------------------------------------- adult relays

def test_relais_couche_embarquee(partage):
    df = annuaire.relais_adultes()
    assert df.height == 5416
    assert df["siret"].n_unique() == 2839
    assert df["id_poste"].n_unique() == 5412
    assert round(float(df["montant"].sum()), 2) == 122161833.68
    assert df.filter(pl.col("departement").is_null()).height == 23
    original = annuaire.lire_relais(partage / "politique_ville" / "anct_adulte_relais_2023.json")
    assert original.equals(df)


def test_relais_par_departement_sans_base():
    lignes = annuaire.relais_par_departement(None)
    assert sum(r["postes"] for r in lignes) == 5416
    ain = lignes[0]
    assert (ain["departement"], ain["libelle"], ain["postes"], ain["employeurs"]) == (
        "01", "Ain", 29, 17)
    assert ain["employeurs_ess"] is None
    dernier = lignes[-1]
    assert (dernier["departement"], dernier["libelle"], dernier["postes"],
            dernier["employeurs"]) == (None, "Département non renseigné", 23, 8)
    assert "Licence Ouverte 2.0" in dernier["source"]


def test_relais_jointure(tmp_path):
    def etab(siret, famille, dep, qpv=None):
        return {"siret": siret, "famille": famille, "departement": dep, "qpv": qpv,
                "employeur": True}

    b = base_manuelle(tmp_path / "relais.duckdb", [
        etab("77554402601284", "association", "01", "QP001001"),   # 1 post in 01
        etab("31538511200026", "association", "01"),               # 2 posts in 01
        etab("50206238300018", "cooperative", "13", "QP013001"),   # 1 post in 13
        etab("77568879901845", "fondation", "06"),                 # 2 posts in 06
        etab("80896738400013", "association", None),              # 10 posts, no département
        etab("12345678900012", "association", "93"),               # not an adult-relay employer
    ])
    # before the import, the layer is joined on the fly
    a_la_volee = annuaire.relais_par_departement(b)
    s = annuaire.importer_relais(b)
    assert {k: s[k] for k in ("postes", "employeurs", "postes_ess", "employeurs_ess",
                              "employeurs_ess_par_famille", "employeurs_ess_en_qpv",
                              "postes_sans_departement", "millesime_base")} == {
        "postes": 5416, "employeurs": 2839, "postes_ess": 16, "employeurs_ess": 5,
        "employeurs_ess_par_famille": {"association": 3, "cooperative": 1, "fondation": 1},
        "employeurs_ess_en_qpv": 2, "postes_sans_departement": 23, "millesime_base": "2024-01"}
    assert s["base_synthetique"] is False
    assert all(not x["base_synthetique"] for x in a_la_volee)
    assert s["source"]["licence"] == "Licence Ouverte 2.0"
    lignes = annuaire.relais_par_departement(b)
    assert lignes == a_la_volee
    par_dep = {r["departement"]: r for r in lignes}
    assert {k: par_dep["01"][k] for k in ("postes", "employeurs", "postes_ess", "employeurs_ess",
                                          "part_employeurs_ess", "employeurs_ess_par_famille",
                                          "employeurs_ess_en_qpv")} == {
        "postes": 29, "employeurs": 17, "postes_ess": 3, "employeurs_ess": 2,
        "part_employeurs_ess": round(2 / 17, 4), "employeurs_ess_par_famille": {"association": 2},
        "employeurs_ess_en_qpv": 1}
    assert (par_dep["13"]["postes"], par_dep["13"]["employeurs"], par_dep["13"]["employeurs_ess"],
            par_dep["13"]["employeurs_ess_par_famille"]) == (321, 117, 1, {"cooperative": 1})
    assert (par_dep["06"]["postes_ess"], par_dep["06"]["employeurs_ess"]) == (2, 1)
    assert (par_dep[None]["postes_ess"], par_dep[None]["employeurs_ess"]) == (10, 1)
    assert par_dep["93"]["employeurs_ess"] == 0
    assert sum(r["postes"] for r in lignes) == 5416
    # importing again replaces the year: still 5,416 rows
    annuaire.importer_relais(b)
    con = duckdb.connect(str(b), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT siret) FROM relais_adultes").fetchone() \
        == (5416, 2839)
    assert con.execute("SELECT count(*) FROM etablissements").fetchone() == (6,)


def test_relais_fichier_invalide(tmp_path):
    p = tmp_path / "relais.json"
    p.write_text(json.dumps([{"id_poste": "X1", "code_tiers": "77554402601285",
                              "montant": 1.0}]), "utf-8")
    with pytest.raises(FichierInvalide, match="poste X1 : SIRET « 77554402601285 » invalide"):
        annuaire.lire_relais(p)
    p.write_text(json.dumps([{"id_poste": "X1", "montant": 1.0}]), "utf-8")
    with pytest.raises(ColonneManquante, match="code_tiers"):
        annuaire.lire_relais(p)


# --------------------------------------------------------------------------- command line

def test_cli(tmp_path, base):
    from essqpv.cli import app

    r = CliRunner()
    res = r.invoke(app, ["initiatives", "valider", str(CSV_VALIDE), "--sortie", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["acceptees"] == 5
    res = r.invoke(app, ["initiatives", "valider", str(CSV_ERREURS)])
    assert res.exit_code == 1
    assert "ligne 5 — siret_cle_invalide" in res.stdout
    res = r.invoke(app, ["initiatives", "importer", str(GOGOCARTO), "--base", str(base),
                         "--sortie", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["nouvelles"] == 2
    res = r.invoke(app, ["initiatives", "importer", "--annuaire-initial", "--base", str(base)])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["initiatives", "lister", "--base", str(base), "-t", "DEP:54",
                         "--sortie", "json"])
    assert [i["nom"] for i in json.loads(res.stdout)] == ["Régie de quartier de Laxou"]
    res = r.invoke(app, ["initiatives", "lister", "--base", str(base), "--modele", "2"])
    assert res.exit_code == 0 and "Solidarauto" in res.stdout and "KAPS" not in res.stdout
    res = r.invoke(app, ["initiatives", "exporter", str(tmp_path / "a.xlsx"), "--base", str(base)])
    assert res.exit_code == 0 and "14 initiatives" in res.stdout
    res = r.invoke(app, ["initiatives", "modeles", "--sortie", "json"])
    assert [m["modele"] for m in json.loads(res.stdout)] == [1, 2, 3]
    res = r.invoke(app, ["initiatives", "relais", "--base", str(base), "--sortie", "json"])
    assert res.exit_code == 0, res.output
    sortie = json.loads(res.stdout)
    assert (sortie["bilan"]["postes"], sortie["bilan"]["employeurs_ess"]) == (5416, 1)
    for commande in ("importer", "valider", "lister", "exporter", "modeles", "relais"):
        aide = r.invoke(app, ["initiatives", commande, "--help"])
        assert aide.exit_code == 0 and "Show this message" in aide.stdout


def test_cli_erreur_en_une_ligne(tmp_path, capsys, monkeypatch):
    import sys

    from essqpv.cli import main

    monkeypatch.setattr(sys, "argv", ["essqpv", "initiatives", "importer",
                                      str(tmp_path / "absent.csv"), "--base", str(tmp_path / "b")])
    with pytest.raises(SystemExit) as fin:
        main()
    assert fin.value.code == 1
    assert "Erreur :" in capsys.readouterr().err


# --------------------------------------------------------------------------- real base

def test_sur_la_base_de_demonstration(tmp_path, base_demo):
    """The builder's real base: attach by SIRET and by coordinates, agreeing on the QPV."""
    import shutil

    from essqpv.config import MARQUE_SYNTHETIQUE

    base = tmp_path / "demo.duckdb"
    shutil.copyfile(base_demo, base)
    con = duckdb.connect(str(base), read_only=True)
    etabs = con.execute(
        "SELECT siret, famille, qpv, qpv_tampon, lon, lat, commune FROM etablissements "
        "WHERE qpv IS NOT NULL AND lon IS NOT NULL ORDER BY siret LIMIT 3").fetchall()
    total = con.execute("SELECT count(*) FROM etablissements").fetchone()[0]
    con.close()
    assert len(etabs) == 3
    p = tmp_path / "demo.csv"
    with p.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["nom", "siret", "longitude", "latitude"])
        for k, (siret, _, _, _, lon, lat, _) in enumerate(etabs):
            w.writerow([f"Par SIRET {k}", siret, "", ""])
            w.writerow([f"Par coordonnées {k}", "", lon, lat])
    s = annuaire.importer(base, p)
    assert (s["acceptees"], s["rattachees_siret"], s["rattachees_coordonnees"], s["en_qpv"],
            s["base_synthetique"]) == (6, 3, 3, 6, True)
    par_nom = {i["nom"]: i for i in annuaire.lister(base)}
    for k, (siret, famille, qpv, qpv_tampon, _, _, commune) in enumerate(etabs):
        a, b = par_nom[f"Par SIRET {k}"], par_nom[f"Par coordonnées {k}"]
        assert (a["famille"], a["qpv"], a["qpv_tampon"], a["commune"]) == (
            famille, qpv, qpv_tampon, commune)
        assert a["motif_rattachement"].endswith(MARQUE_SYNTHETIQUE)
        assert b["qpv"] == qpv  # the same placement module decided both
    con = duckdb.connect(str(base), read_only=True)
    assert con.execute("SELECT count(*) FROM etablissements").fetchone()[0] == total
    con.close()
    r = annuaire.importer_relais(base)
    assert (r["postes"], r["employeurs"], r["millesime_base"], r["base_synthetique"]) == (
        5416, 2839, "2024-01", True)
    lignes = annuaire.relais_par_departement(base)
    assert sum(x["postes"] for x in lignes) == 5416
    assert all(x["base_synthetique"] for x in lignes)
    from essqpv.cli import app

    res = CliRunner().invoke(app, ["initiatives", "relais", "--base", str(base)])
    assert res.exit_code == 0 and MARQUE_SYNTHETIQUE in " ".join(res.stdout.split())
