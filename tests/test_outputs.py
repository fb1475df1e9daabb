"""Tests of the territorial report: HTML structure, PDF and slides read back, figures."""
from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from essqpv import reference
from essqpv.config import MARQUE_SYNTHETIQUE
from essqpv.outputs import report
from essqpv.outputs._format import nombre, points, pourcentage

# --- a hand-made bundle following METHODOLOGY 9, with known suppressed cells -------------

SECTEURS = list(reference.SECTEURS)


def _exemple() -> dict:
    """Indicators of a département and of France, hand-made (METHODOLOGY 9)."""
    salaries = [4100, 620, None, 900, 1300, 240, 150, 120, 260, 180, 90, 540, None]
    secteurs = []
    for i, s in enumerate(SECTEURS):
        v = salaries[i]
        ligne = {"secteur": s, "salaries_qpv": v, "part_qpv": None if v is None else v / 8500,
                 "part_france": 0.05, "ecart_points": None if v is None else
                 100 * (v / 8500 - 0.05), "secret": {}}
        if v is None:
            statut = "primaire" if s == "Activités financières et d'assurance" else "secondaire"
            ligne["secret"] = {c: statut for c in ("salaries_qpv", "part_qpv", "ecart_points")}
        secteurs.append(ligne)
    secteurs.append({"secteur": "Ensemble", "salaries_qpv": 8500, "part_qpv": 1.0,
                     "part_france": 1.0, "ecart_points": 0.0, "secret": {}})
    cc = {"etablissements_employeurs": 412, "part_associations": 0.8107,
          "parts_familles": {"association": 0.8107, "fondation": 0.0218, "mutuelle": 0.0316,
                             "cooperative": 0.0631, "societe_commerciale_ess": 0.0728},
          "salaries": 8500, "estime": False, "part_femmes": 0.6712, "part_cdi": 0.5835,
          "part_contrats_aides": 0.0412, "part_temps_complet": 0.6021,
          "part_emploi_ess_en_qpv": 0.2134, "salaries_ess_territoire": 39831,
          "employeurs_sans_donnee_emploi": 3}
    secret = [{"tableau": "tableau_secteurs", "ligne": r["secteur"], "colonne": c,
               "statut": st} for r in secteurs for c, st in r["secret"].items()]
    commun = {"perimetre": "strict", "millesime": "2024-01", "geographie_qpv": "2015",
              "sources": [{"role": "etablissements", "fichier": "StockEtablissement_utf8.csv",
                           "modifie_le": "2024-01-01"}],
              "avertissements": []}
    ind = {"territoire": {"code": "DEP:93", "niveau": "departement",
                          "libelle": "Seine-Saint-Denis"},
           **commun, "chiffres_cles": cc, "tableau_secteurs": secteurs,
           "familles_en_qpv": {"employeurs": {"association": 334, "fondation": 9, "mutuelle": 13,
                                              "cooperative": 26, "societe_commerciale_ess": 30},
                               "non_employeurs": {"association": 1210, "fondation": 4,
                                                  "mutuelle": 2, "cooperative": 11,
                                                  "societe_commerciale_ess": 7}},
           "etablissements_en_qpv": 1646, "non_employeurs_en_qpv": 1234,
           "taille_employeurs_en_qpv": {"1 à 5": 231, "6 à 9": 70, "10 à 19": 58,
                                        "20 et plus": 53, "inconnue": 0},
           "creations_en_qpv": {"debut": "2023-01-01", "fin": "2024-01-01", "total": 57,
                                "par_famille": {"association": 50, "cooperative": 7}},
           "secret": secret}
    regions = []
    for k, r in enumerate(x for x in reference.regions() if x["zone"] in ("metro", "drom")):
        ligne = {"region": r["code"], "libelle": r["nom"], "etablissements_employeurs": 100 + k,
                 "salaries": 1000 * (k + 1), "part_emploi_ess_en_qpv": 0.01 * (k + 1),
                 "salaries_ess_territoire": 100000, "secret": {}}
        if r["code"] == "06":  # Mayotte: suppressed
            ligne.update(salaries=None, part_emploi_ess_en_qpv=None,
                         secret={"salaries": "primaire", "part_emploi_ess_en_qpv": "primaire"})
        regions.append(ligne)
    fr = {"territoire": {"code": "FR", "niveau": "france", "libelle": "France entière"},
          **commun, "chiffres_cles": {**cc, "etablissements_employeurs": 10412,
                                      "salaries": 171000, "part_femmes": 0.6523,
                                      "part_associations": 0.7904},
          "tableau_secteurs": secteurs, "familles_en_qpv": ind["familles_en_qpv"],
          "etablissements_en_qpv": 40000, "non_employeurs_en_qpv": 29000,
          "secret": [], "regions": regions}
    ref = reference.qpv2015()
    codes = [c for c in ref["code_qp"].to_list() if c.startswith("QP093")][:12]
    qpv = [{"code_qp": c, "nom_qp": f"Quartier {i}", "departement": "93", "region": "11",
            "etablissements_employeurs": 5 * i, "non_employeurs": 7 * i,
            "salaries": 40 * i if i > 1 else None,
            "secret": {} if i > 1 else {"salaries": "primaire"}} for i, c in enumerate(codes)]
    geoms = dict(zip(ref["code_qp"], ref["geometrie"]))
    etabs = [{"siret": f"{i:014d}", "famille": reference.FAMILLES[i % 5], "qpv":
              codes[i % 12] if i % 3 == 0 else None, "lon": 2.35 + (i % 40) * 0.005,
              "lat": 48.90 + (i // 40) * 0.005, "departement": "93"} for i in range(400)]
    return {"indicateurs": ind, "france": fr,
            "metadonnees": {"millesime": "2024-01", "synthetique": True, "tampon_m": 300,
                            "sources": [{"role": "unites_legales",
                                         "fichier": "StockUniteLegale_utf8.csv"}]},
            "qpv": qpv, "geometries_qpv": {c: geoms[c] for c in codes},
            "etablissements": etabs, "etablissements_total": 400,
            "modeles": report._modeles(), "initiatives": None}


class _Structure(HTMLParser):
    """Collects titles, tables (cell texts) and the number of inline SVG figures."""

    def __init__(self):
        super().__init__()
        self.titres: list[tuple[str, str]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.svg = 0
        self._pile: list[str] = []
        self._titre: str | None = None
        self._table: str | None = None
        self._cellule: list[str] | None = None
        self._classe_table = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self._titre, self._texte = tag, []
        elif tag == "svg":
            self.svg += 1
        elif tag == "table":
            self._classe_table += 1
            self._table = a.get("class") or f"table{self._classe_table}"
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cellule = []

    def handle_endtag(self, tag):
        if tag == self._titre:
            self.titres.append((tag, "".join(self._texte).strip()))
            self._titre = None
        elif tag in ("td", "th") and self._cellule is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cellule).split()))
            self._cellule = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._titre:
            self._texte.append(data)
        if self._cellule is not None:
            self._cellule.append(data)


def _structure(html: str) -> _Structure:
    s = _Structure()
    s.feed(html)
    return s


def _norm(texte: str) -> str:
    return texte.replace("\u202f", " ").replace("\u00a0", " ")


# --- formatting --------------------------------------------------------------------------

def test_format_francais():
    assert nombre(10600) == "10\u202f600"
    assert nombre(1234567.891, 1) == "1\u202f234\u202f567,9"
    assert pourcentage(0.6712) == "67,1\u00a0%"
    assert pourcentage(None) == "–"
    assert points(-3.26) == "−3,3\u00a0pts"
    assert points(0.5) == "+0,5\u00a0pt"


# --- rendering from the hand-made bundle -------------------------------------------------

def test_html_structure_et_marques_secret():
    html = report.rendre(_exemple(), "html")
    s = _structure(html)
    h2 = [t for n, t in s.titres if n == "h2"]
    assert h2[0] == "L'ESS dans les quartiers prioritaires : chiffres clés"
    assert "Méthodologie et sources" in h2
    assert "Trois modèles socio-économiques" in h2
    assert "Les quartiers prioritaires de Seine-Saint-Denis" in h2
    # sector table: 13 sectors + Ensemble + header; suppressed cells read "s (s)"
    secteurs = s.tables["secteurs"]
    assert len(secteurs) == 1 + len(SECTEURS) + 1
    assert secteurs[0] == ["Secteur", "Salariés en QPV", "Part en QPV", "Part en France",
                           "Écart (points)"]
    par_secteur = {r[0]: r[1:] for r in secteurs[1:]}
    assert par_secteur["Activités financières et d'assurance"] == ["s", "s", "5,0 %", "s"]
    assert _norm(par_secteur["Action sociale"][0]) == "4 100"
    assert _norm(par_secteur["Action sociale"][1]) == "48,2 %"
    assert _norm(par_secteur["Ensemble"][0]) == "8 500"
    # exactly the suppressed cells carry the mark
    marques = sum(c == "s" for r in secteurs for c in r)
    assert marques == 6
    # regional table: Mayotte suppressed
    regions = {r[0]: r[1:] for r in s.tables["regions"][1:]}
    assert regions["Mayotte"][1] == "s" and regions["Mayotte"][3] == "s"
    # models: one column per model
    assert s.tables["modeles"][0] == ["", "Modèle 1", "Modèle 2", "Modèle 3"]
    # the footnote of the mark, the synthetic mark, the link to the methodology
    assert "secret statistique" in html
    assert MARQUE_SYNTHETIQUE in html
    assert 'href="docs/methodologie.md"' in html
    # self-contained: no external resource
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert s.svg >= 5  # regional map, QPV map, establishments map, gaps, families


def test_tuiles_et_comparaison_france():
    s = _structure(report.rendre(_exemple(), "html"))
    assert "Seine-Saint-Denis" in s.titres[0][1] or s.titres[0][0] == "h1"
    html = _norm(report.rendre(_exemple(), "html"))
    assert "412" in html and "81,1 %" in html and "France : 79,0 %" in html
    assert "France : 65,2 %" in html  # part des femmes, France
    assert "8 500" in html


def test_diapos_16_9_et_pdf(tmp_path):
    pypdf = pytest.importorskip("pypdf")
    donnees = _exemple()
    chemin = report.ecrire(report.rendre(donnees, "diapos"), tmp_path / "d.pdf", "diapos")
    lecteur = pypdf.PdfReader(chemin)
    largeur, hauteur = (float(x) for x in lecteur.pages[0].mediabox[2:])
    assert abs(largeur / hauteur - 16 / 9) < 0.01
    assert abs(largeur - 297 / 25.4 * 72) < 1
    for page in lecteur.pages:
        assert MARQUE_SYNTHETIQUE in _norm(page.extract_text())
    chemin = report.ecrire(report.rendre(donnees, "pdf"), tmp_path / "r.pdf", "pdf")
    lecteur = pypdf.PdfReader(chemin)
    largeur, hauteur = (float(x) for x in lecteur.pages[0].mediabox[2:])
    assert (round(largeur), round(hauteur)) == (595, 842)
    texte = _norm("\n".join(p.extract_text() for p in lecteur.pages))
    assert "8 500" in texte and "412" in texte
    for page in lecteur.pages:
        assert MARQUE_SYNTHETIQUE in _norm(page.extract_text())


def test_format_inconnu():
    from essqpv.errors import ParametreInvalide
    with pytest.raises(ParametreInvalide, match="Format de rapport inconnu"):
        report.rendre(_exemple(), "docx")


# --- the real base (synthetic register, profile test) -----------------------------------

def _texte_pdf(chemin: Path) -> list[str]:
    pypdf = pytest.importorskip("pypdf")
    return [_norm(p.extract_text()) for p in pypdf.PdfReader(chemin).pages]


@pytest.fixture(scope="module")
def rapports(base_demo, tmp_path_factory) -> dict[str, Path]:
    """The reports of France (PDF, slides) and Seine-Saint-Denis (HTML, PDF)."""
    from essqpv.outputs import rapport
    d = tmp_path_factory.mktemp("rapports")
    return {
        "fr_pdf": rapport(base_demo, "FR", format="pdf", sortie=d),
        "dep_html": rapport(base_demo, "DEP:93", format="html", sortie=d),
        "dep_pdf": rapport(base_demo, "Seine-Saint-Denis", format="pdf", sortie=d),
        "fr_diapos": rapport(base_demo, "FR", format="diapos", sortie=d),
    }


def test_rapport_pdf_france_chiffres_cles(base_demo, rapports):
    from essqpv.indicators import indicateurs
    ind = indicateurs(base_demo, "FR")
    cc = ind["chiffres_cles"]
    chemin = rapports["fr_pdf"]
    assert chemin.name == "rapport-ess-qpv-fr-2024-01-strict.pdf"
    pages = _texte_pdf(chemin)
    assert len(pages) == 12  # (with the section of the 2015 → 2024 transition)
    assert any("Ce que change la nouvelle carte" in p for p in pages)
    premiere = pages[0]
    assert "L'économie sociale et solidaire dans les" in premiere
    assert "France entière" in premiere
    # each key figure of the stored answer, in French formatting ("s" when suppressed), on
    # the first page
    for cle, format_ in (("etablissements_employeurs", nombre), ("salaries", nombre),
                         ("part_associations", pourcentage), ("part_femmes", pourcentage),
                         ("part_cdi", pourcentage), ("part_contrats_aides", pourcentage),
                         ("part_temps_complet", pourcentage),
                         ("part_emploi_ess_en_qpv", pourcentage)):
        attendu = "s" if cle in cc["secret"] else _norm(format_(cc[cle]))
        assert attendu in premiere, (cle, attendu)
    assert "535" in premiere and "89,5 %" in premiere  # employers and their families: public
    # the synthetic mark on every page; sources, licence, methodology link at the end
    assert all(MARQUE_SYNTHETIQUE in p for p in pages)
    texte = "\n".join(pages)
    assert "Méthodologie et sources" in texte
    assert "StockEtablissement_utf8.zip" in texte
    assert "Licence Ouverte / Open Licence 2.0" in texte
    assert "docs/methodologie.md" in texte
    assert "Trois modèles socio-économiques" in texte


def test_rapport_pdf_departement(base_demo, rapports):
    from essqpv.indicators import indicateurs
    pages = _texte_pdf(rapports["dep_pdf"])
    cc = indicateurs(base_demo, "DEP:93")["chiffres_cles"]
    assert "Seine-Saint-Denis" in pages[0]
    assert ("s" if "salaries" in cc["secret"] else _norm(nombre(cc["salaries"]))) in pages[0]
    assert _norm(nombre(cc["etablissements_employeurs"])) in pages[0]
    texte = "\n".join(pages)
    assert "Les quartiers prioritaires de Seine-Saint-Denis" in texte
    assert "Les établissements de l'ESS de Seine-Saint-Denis" in texte
    assert all(MARQUE_SYNTHETIQUE in p for p in pages)


def test_rapport_html_departement_tableaux_et_secret(base_demo, rapports):
    from essqpv.indicators import indicateurs, indicateurs_qpv
    html = rapports["dep_html"].read_text("utf-8")
    s = _structure(html)
    ind = indicateurs(base_demo, "DEP:93")
    assert [t for n, t in s.titres if n == "h1"] == [report.TITRE]
    h2 = [t for n, t in s.titres if n == "h2"]
    assert h2 == ["L'ESS dans les quartiers prioritaires : chiffres clés",
                  "Carte 1 — L'emploi ESS dans les QPV, par région",
                  "Les quartiers prioritaires de Seine-Saint-Denis",
                  "Les établissements de l'ESS de Seine-Saint-Denis",
                  "Tableau 3 — Les secteurs de l'ESS en QPV, comparés à la France",
                  "Un dynamisme qui ne se mesure pas seulement à travers l'emploi",
                  "Ce que change la nouvelle carte",
                  "Trois modèles socio-économiques", "Méthodologie et sources"]
    # the sector table is the JSON, cell by cell; "s" exactly where the JSON suppresses
    lignes = s.tables["secteurs"][1:]
    assert [r[0] for r in lignes] == [x["secteur"] for x in ind["tableau_secteurs"]]
    for cellules, x in zip(lignes, ind["tableau_secteurs"]):
        sec = x["secret"]
        assert cellules[1] == ("s" if "salaries_qpv" in sec else _norm(nombre(x["salaries_qpv"])))
        assert cellules[2] == ("s" if "part_qpv" in sec else _norm(pourcentage(x["part_qpv"])))
        assert cellules[3] == ("s" if "part_france" in sec
                               else _norm(pourcentage(x["part_france"])))
        assert cellules[4] == ("s" if "ecart_points" in sec else _norm(points(x["ecart_points"])))
    assert sum(c == "s" for r in lignes for c in r) == sum(len(x["secret"])
                                                          for x in ind["tableau_secteurs"])
    assert sum(c == "s" for r in lignes for c in r) > 0
    assert "s : secret statistique" in _norm(html)
    # one row per QPV of the département, in the HTML
    qpv = indicateurs_qpv(base_demo, territoire="DEP:93")
    table_qpv = s.tables["qpv"][1:]
    assert len(table_qpv) == len(qpv) == 75  # QPV 2024 of Seine-Saint-Denis
    secrets = sum(1 for r in qpv if r["secret"])
    assert sum(r[-1] == "s" for r in table_qpv) == secrets > 0
    # regions, the models (one column per model), the methodology tables
    assert len(s.tables["regions"]) == 1 + len(indicateurs(base_demo, "FR")["regions"])
    assert s.tables["modeles"][0] == ["", "Modèle 1", "Modèle 2", "Modèle 3"]
    assert len(s.tables["regles-secteurs"]) == 1 + len(reference.SECTEURS)
    assert len(s.tables["exclusions"]) == 1 + reference.exclusions_activite().height
    # five inline SVG figures (regional map, QPV map, establishments map, gaps, families)
    # plus the size distribution; nothing external
    assert s.svg == 7  # (with the map of the 2015 → 2024 transition)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert html.count(MARQUE_SYNTHETIQUE) >= 2


def test_diapos_france_16_9(base_demo, rapports):
    from essqpv.indicators import indicateurs
    pypdf = pytest.importorskip("pypdf")
    lecteur = pypdf.PdfReader(rapports["fr_diapos"])
    largeur, hauteur = (float(x) for x in lecteur.pages[0].mediabox[2:])
    assert abs(largeur / hauteur - 16 / 9) < 0.005
    pages = [_norm(p.extract_text()) for p in lecteur.pages]
    assert len(pages) == 12  # (with the slide of the 2015 → 2024 transition)
    assert any("Ce que change la nouvelle carte" in p for p in pages)
    assert all(MARQUE_SYNTHETIQUE in p for p in pages)
    cc = indicateurs(base_demo, "FR")["chiffres_cles"]
    salaries = "s" if "salaries" in cc["secret"] else _norm(nombre(cc["salaries"]))
    assert f"535 établissements employeurs et {salaries} salariés" in pages[1]
    assert any("Tableau 3" in p for p in pages)
    assert "Méthodologie et sources" in pages[-1]


def test_rapport_sans_emplois_avertit(base_sans_emplois, tmp_path):
    from essqpv.outputs import rapport
    chemin = rapport(base_sans_emplois, "DEP:93", format="html", sortie=tmp_path / "r.html")
    assert chemin == tmp_path / "r.html"
    html = _norm(unescape(chemin.read_text("utf-8")))
    assert "salariés (estimation)" in html
    assert "Salariés estimés au centre de la tranche d'effectif" in html
    assert html.count("non disponible sans fichier d'emploi") == 4


def test_cli_rapport(base_demo, tmp_path):
    from typer.testing import CliRunner

    from essqpv.cli import app
    r = CliRunner().invoke(app, ["rapport", "--base", str(base_demo), "--territoire", "DEP:93",
                                 "--format", "html", "--sortie", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rapport-ess-qpv-dep-93-2024-01-strict.html").exists()
    aide = CliRunner().invoke(app, ["rapport", "--help"])
    assert "Écrire le rapport territorial" in aide.output
    r = CliRunner().invoke(app, ["rapport", "--base", str(base_demo), "--territoire", "DEP:93",
                                 "--format", "docx"])
    assert r.exit_code != 0


# --- figures -----------------------------------------------------------------------------

def test_carte_regions_insets_et_secret():
    from essqpv.outputs import charts, maps
    regions = _exemple()["france"]["regions"]
    fig = maps.carte_regions(regions, "Source : test")
    assert len(fig.axes) == 1 + 5  # metropolitan France + one inset per DROM
    svg = charts.en_svg(fig)
    assert "s : secret statistique" in svg
    assert "Mayotte : s<" in svg  # both cells suppressed: one mark
    assert "Source : test" in svg
    assert maps.epsg_region("04") == 2975 and maps.epsg_departement("93") == 2154


def test_barres_ecarts_ordonnees_et_secret():
    from essqpv.outputs import charts
    lignes = _exemple()["indicateurs"]["tableau_secteurs"]
    fig = charts.barres_ecarts(lignes)
    ax = fig.axes[0]
    etiquettes = [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()]
    assert etiquettes[-1] == "Action sociale"  # largest gap on top
    assert "Ensemble" not in etiquettes
    assert len(etiquettes) == len(SECTEURS)
    textes = [t.get_text() for t in ax.texts]
    assert textes.count("s (secret statistique)") == 2
    assert ax.get_xlabel() == "Écart en points de pourcentage (part QPV − part France)"


def test_rapport_montre_l_evolution(tmp_path):
    """With two vintages in the base, the report shows the change since the previous one."""
    from essqpv.base import construire
    from essqpv.outputs import rapport
    from tests import _fabrique as F
    lon, lat = F.point_interieur("QP093001")
    lignes = []
    for i in range(4):
        e = F.etab(f"{i + 1:09d}00011", "93013", tranche="12")
        e["longitude"], e["latitude"] = f"{lon:.7f}", f"{lat:.7f}"
        lignes.append(e)
    etab = F.ecrire(tmp_path / "e.csv", "etablissements", lignes, extra=["longitude", "latitude"])
    ul = F.ecrire(tmp_path / "u.csv", "unites_legales",
                  [F.ul(f"{i + 1:09d}", "9220") for i in range(4)])
    base = tmp_path / "b.duckdb"
    construire(etablissements=etab, unites_legales=ul, millesime="2023-01", base=base)
    construire(etablissements=etab, unites_legales=ul, millesime="2024-01", base=base)
    html = rapport(base, "DEP:93", format="html", sortie=tmp_path / "r.html").read_text("utf-8")
    assert "Évolution depuis le millésime 2023-01" in html
    assert "établissements employeurs de l'ESS en QPV 0, salariés 0" in html


def test_section_liee_du_rapport(base_demo, tmp_path):
    """A linked table's section (registered with section_du_rapport) is rendered from what
    its function reads in the stored answers, in the report and in the deck."""
    from essqpv.indicators.reponses import reponse_texte
    from essqpv.outputs.report import _SECTIONS, rassembler, rendre, section_du_rapport

    def section(base, ind):
        r = json.loads(reponse_texte(base, "quartiers", ind["territoire"]["code"]))
        lignes = [[q["code_qp"], "s" if q["secret"] else str(q["salaries"])]
                  for q in r["quartiers"][:3]]
        return {"id": "essai-liee", "titre": "Section liée de test", "texte": "Lue du plan.",
                "table": {"titre": None, "entetes": ["QPV", "Salariés"], "lignes": lignes,
                          "classe": "liee"}, "note": "s : secret statistique"}

    section_du_rapport(section)
    try:
        donnees = rassembler(base_demo, "DEP:93")
        html = rendre(donnees, "html")
        assert '<section id="essai-liee"' in html and "Section liée de test" in html
        premier = donnees["qpv"][0]
        attendu = "s" if premier["secret"] else str(premier["salaries"])
        assert f"<td>{premier['code_qp']}</td><td>{attendu}</td>" in html
        assert 'id="d-essai-liee"' in rendre(donnees, "diapos")
    finally:
        _SECTIONS.remove(section)
