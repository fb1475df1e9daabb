"""The territorial report: self-contained HTML, A4 PDF and a 16:9 slide deck.

Three steps, each usable on its own:

- :func:`rassembler` reads the stored answers of the protected publication plan for the
  territory and for France (indicators, QPV listing), the public list of establishments and
  the directory;
- :func:`rendre` turns that bundle into HTML (figures inline as SVG, CSS inline);
- :func:`rapport` writes the file (WeasyPrint for ``pdf`` and ``diapos``).

Every figure is a stored answer of the publication plan (:mod:`essqpv.indicators.reponses`),
maps' classes included; the report never computes a statistic from raw tables.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import duckdb
import jinja2

from essqpv import __version__, reference
from essqpv.config import LICENCE_DONNEES, MARQUE_SYNTHETIQUE, confidentialite
from essqpv.errors import ParametreInvalide
from essqpv.outputs import charts, maps, transition
from essqpv.outputs._format import MARQUE_SECRET, nombre, points, pourcentage, valeur

__all__ = ["FORMATS_RAPPORT", "nom_fichier", "rapport", "rassembler", "rendre",
           "section_du_rapport"]

_SECTIONS: list = []


def section_du_rapport(fonction):
    """Register an extra section of the report and the deck (a linked table).

    ``fonction(base, indicateurs)`` returns None (nothing to show for this territory) or a
    dict ``{"id", "titre", "texte", "table": {"titre", "entetes", "lignes", "classe"},
    "note"}`` built from the stored answers of its table
    (:func:`essqpv.indicators.reponses.reponse_texte` with its genre), ``s`` in the cells the
    plan suppresses. Optional keys: ``graphique`` (``f(largeur) -> Figure``, drawn under the
    text, SVG in HTML and PNG in PDF), ``titre_diapo`` and ``message_diapo`` (the deck's slide;
    a slide with a chart shows the chart instead of the table). Sections are shown, in the
    order registered, after the standard ones and before the methodology.
    """
    if fonction not in _SECTIONS:
        _SECTIONS.append(fonction)
    return fonction


FORMATS_RAPPORT = ("html", "pdf", "diapos")
TITRE = "L'économie sociale et solidaire dans les quartiers prioritaires"
LIEN_METHODOLOGIE = "docs/methodologie.md"
NIVEAUX_LOCAUX = ("region", "departement", "epci", "commune", "qpv")
MAX_POINTS = 20_000  # establishments drawn on the map (pages of 1,000)
LIBELLES_MODELES = {
    "intitule": "Intitulé", "caracteristiques": "Caractéristiques",
    "modele_economique": "Modèle économique", "environnement": "Environnement",
    "partenaires_cles": "Partenaires clés", "exemples": "Exemples",
}
COLONNES_INITIATIVES = [(("nom",), "Initiative"), (("nom_commune", "commune"), "Commune"),
                        (("libelles_categories", "categories"), "Besoins"),
                        (("libelle_modele", "modele"), "Modèle"), (("qpv",), "QPV"),
                        (("siret",), "SIRET")]
LIBELLES_TAILLES = {"inconnue": "taille inconnue"}


# --- gathering ---------------------------------------------------------------------------

def rassembler(base: str | Path, territoire: str, perimetre: str = "strict",
               millesime: str | None = None) -> dict:
    """Everything the report shows, from the library's protected functions.

    Returns a dict with ``indicateurs`` (the territory), ``france`` (``FR``, with
    ``regions``), ``metadonnees``, and for a local territory ``qpv`` (per-QPV indicators),
    ``geometries_qpv`` (code → WKB), ``etablissements`` (public attributes),
    ``etablissements_total``; plus ``modeles`` and ``initiatives`` from the directory when
    it is installed.
    """
    from essqpv.base import lister_etablissements, metadonnees, ouvrir
    from essqpv.indicators import indicateurs, indicateurs_qpv

    ind = indicateurs(base, territoire, perimetre=perimetre, millesime=millesime)
    millesime = ind.get("millesime") or millesime
    niveau = ind["territoire"]["niveau"]
    fr = ind if niveau == "france" else indicateurs(base, "FR", perimetre=perimetre,
                                                    millesime=millesime)
    donnees: dict = {"indicateurs": ind, "france": fr,
                     "metadonnees": metadonnees(base, millesime)}
    if niveau in NIVEAUX_LOCAUX:
        code = ind["territoire"]["code"]
        lignes = indicateurs_qpv(base, perimetre=perimetre, millesime=millesime,
                                 territoire=code)
        donnees["qpv"] = lignes
        codes = [r["code_qp"] for r in lignes]
        donnees["geometries_qpv"] = _geometries_qpv(ouvrir, base, millesime, codes)
        etabs, total, page = [], 0, 1
        while len(etabs) < MAX_POINTS:
            p = lister_etablissements(base, code, millesime=millesime, perimetre=perimetre,
                                      page=page, taille=1000)
            etabs.extend(p["etablissements"])
            total = p["total"]
            if page * 1000 >= total:
                break
            page += 1
        donnees["etablissements"] = etabs
        donnees["etablissements_total"] = total
    donnees["modeles"] = _modeles()
    donnees["initiatives"] = _initiatives(base, ind["territoire"]["code"])
    donnees["transition"] = transition.rassembler(base, ind["territoire"]["code"], millesime)
    donnees["sections_liees"] = [x for x in (f(base, ind) for f in _SECTIONS) if x]
    return donnees


def _geometries_qpv(ouvrir, base, millesime, codes: list[str]) -> dict[str, bytes]:
    """QPV contours (WKB, EPSG:4326) from the base, else from the embedded files."""
    if not codes:
        return {}
    try:
        con = ouvrir(base)
        try:
            rows = con.execute(
                "SELECT code_qp, geometrie FROM qpv WHERE millesime = ? AND code_qp IN "
                f"({', '.join('?' * len(codes))})", [millesime, *codes]).fetchall()
        finally:
            con.close()
        geoms = {c: bytes(g) for c, g in rows if g is not None}
    except duckdb.Error:  # a base without QPV geometry: fall back on the embedded contours
        geoms = {}
    if len(geoms) < len(codes):  # embedded contours of either geography (QN… 2024, QP… 2015)
        for ref in (reference.qpv2024(), reference.qpv2015()):
            for c, g in zip(ref["code_qp"], ref["geometrie"]):
                if c in codes and c not in geoms:
                    geoms[c] = g
    return geoms


def _modeles() -> list[dict] | None:
    try:
        from essqpv.directory import modeles
    except ImportError:
        try:
            from essqpv.directory._reference import modeles
        except ImportError:
            return None
    lignes = modeles()
    if hasattr(lignes, "to_dicts"):
        lignes = lignes.to_dicts()
    return [dict(x) for x in lignes] or None


def _initiatives(base, territoire: str) -> list[dict] | None:
    try:
        from essqpv.directory import lister
    except ImportError:
        return None
    try:
        res = lister(base, territoire)
    except Exception:  # noqa: BLE001 — the directory is optional in a report
        return None
    if isinstance(res, dict):
        res = res.get("initiatives") or res.get("resultats") or []
    if hasattr(res, "to_dicts"):
        res = res.to_dicts()
    return list(res) or None


# --- rendering ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _environnement() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("essqpv.outputs", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined,
    )
    env.filters["nombre"] = nombre
    env.filters["pourcentage"] = pourcentage
    env.filters["points"] = points
    env.filters["valeur"] = valeur
    return env


def _css(nom: str) -> str:
    return files("essqpv.outputs").joinpath("templates", nom).read_text("utf-8")


def _evolution(evo: dict | None) -> dict | None:
    """Texts of the change since the previous vintage (``s`` where a value is secret)."""
    if not evo:
        return None

    def variation(cle: str) -> str:
        v = (evo.get(cle) or {}).get("variation")
        if v is None:
            return "s"
        return ("+" if v > 0 else "") + nombre(v)

    return {"precedent": evo.get("millesime_precedent"),
            "employeurs": variation("etablissements_employeurs"),
            "salaries": variation("salaries")}


def _secret(ligne: dict | None, colonne: str) -> bool:
    return bool(ligne) and colonne in (ligne.get("secret") or {})


def _cle_secrete(ind: dict, cle: str) -> bool:
    """Whether a key figure was suppressed (row-level ``secret`` or the top-level list)."""
    cc = ind.get("chiffres_cles") or {}
    if cle in (cc.get("secret") or {}):
        return True
    return any(s.get("colonne") == cle and s.get("tableau") in ("chiffres_cles", None)
               for s in ind.get("secret") or [] if isinstance(s, dict))


def _texte_cle(ind: dict, cle: str, genre: str) -> str:
    if _cle_secrete(ind, cle):
        return MARQUE_SECRET
    v = (ind.get("chiffres_cles") or {}).get(cle)
    return pourcentage(v) if genre == "part" else nombre(v)


def _tuiles(ind: dict, fr: dict, local: bool) -> list[dict]:
    cc = ind.get("chiffres_cles") or {}
    ccf = fr.get("chiffres_cles") or {}
    estime = bool(cc.get("estime"))

    def part_de_france(cle):
        a, b = cc.get(cle), ccf.get(cle)
        if not local or _cle_secrete(ind, cle) or _cle_secrete(fr, cle) or not a or not b:
            return None
        return f"soit {pourcentage(a / b)} du total des QPV de France ({nombre(b)})"

    def comparaison(cle):
        if not local:
            return None  # France is the territory: nothing to compare with
        return f"France : {_texte_cle(fr, cle, 'part')}"

    tuiles = [
        {"cle": "etablissements_employeurs", "libelle": "établissements employeurs de l'ESS",
         "valeur": _texte_cle(ind, "etablissements_employeurs", "nombre"),
         "comparaison": part_de_france("etablissements_employeurs")},
        {"cle": "part_associations", "libelle": "sont des associations",
         "valeur": _texte_cle(ind, "part_associations", "part"),
         "comparaison": comparaison("part_associations")},
        {"cle": "salaries", "libelle": "salariés" + (" (estimation)" if estime else ""),
         "valeur": _texte_cle(ind, "salaries", "nombre"),
         "comparaison": part_de_france("salaries")},
        {"cle": "part_emploi_ess_en_qpv", "libelle": "de l'emploi ESS du territoire est en QPV",
         "valeur": _texte_cle(ind, "part_emploi_ess_en_qpv", "part"),
         "comparaison": comparaison("part_emploi_ess_en_qpv")},
    ]
    for cle, libelle in (("part_femmes", "de femmes"), ("part_cdi", "en CDI"),
                         ("part_contrats_aides", "en contrats aidés"),
                         ("part_temps_complet", "à temps complet")):
        tuiles.append({"cle": cle, "libelle": libelle, "valeur": _texte_cle(ind, cle, "part"),
                       "comparaison": comparaison(cle) if cc.get(cle) is not None
                       or _cle_secrete(ind, cle) else "non disponible sans fichier d'emploi"})
    if not local:
        tuiles[2]["comparaison"] = (f"sur {nombre(cc.get('salaries_ess_territoire'))} salariés "
                                    "de l'ESS en France" if cc.get("salaries_ess_territoire")
                                    else None)
    if ind["territoire"].get("niveau") == "qpv":
        tuiles = [t for t in tuiles if t["cle"] != "part_emploi_ess_en_qpv"]
    return tuiles


def _avertissements(ind: dict, meta: dict) -> list[str]:
    out: list[str] = []
    for a in [*(ind.get("avertissements") or []), *(meta.get("avertissements") or [])]:
        if a and a not in out:
            out.append(a)
    cc = ind.get("chiffres_cles") or {}
    if cc.get("estime") and not any("estim" in a.lower() for a in out):
        out.append("Effectifs salariés estimés au centre de la tranche d'effectif Sirene "
                   "(aucun fichier d'emploi) : ordres de grandeur.")
    if meta.get("synthetique") and not any(MARQUE_SYNTHETIQUE.lower() in a.lower() for a in out):
        out.insert(0, f"Base construite à partir de {MARQUE_SYNTHETIQUE}.")
    return out


def _perimetre(ind: dict, meta: dict) -> tuple[str, str]:
    p = ind.get("perimetre") or "strict"
    if p == "strict":
        return "strict", "l'établissement est situé dans le contour du QPV (limite comprise)"
    m = re.fullmatch(r"(\d+)m", p)
    d = m.group(1) if m else str(meta.get("tampon_m") or "")
    return (f"QPV + {d} m",
            f"l'établissement est situé à moins de {d} m du contour du QPV (le plus proche)")


def _familles(ind: dict) -> list[dict]:
    fq = ind.get("familles_en_qpv") or {}
    emp, nonemp = fq.get("employeurs") or {}, fq.get("non_employeurs") or {}
    parts = (ind.get("chiffres_cles") or {}).get("parts_familles") or {}
    return [{"famille": f, "libelle": charts.LIBELLES_FAMILLES.get(f, f),
             "employeurs": emp.get(f), "part": parts.get(f), "non_employeurs": nonemp.get(f)}
            for f in reference.FAMILLES]


def _premier(d: dict, cles: tuple[str, ...]):
    for c in cles:
        if c in d and d[c] is not None:
            return d[c]
    return None


def _tailles(ind: dict) -> list[tuple[str, int | None]] | None:
    """Size distribution of employer establishments if the indicators carry it."""
    t = _premier(ind, ("taille_employeurs_en_qpv", "tailles"))
    if t is None:
        return None
    if isinstance(t, dict):
        # an unknown size is shown only when there is one
        return [(LIBELLES_TAILLES.get(k, f"{k} salariés"), v) for k, v in t.items()
                if k != "secret" and not (k == "inconnue" and not v)]
    return [(str(_premier(r, ("groupe_taille", "taille", "libelle"))),
             _premier(r, ("etablissements_employeurs", "etablissements"))) for r in t]


def _creations(ind: dict) -> dict | None:
    """Creations in QPV over the 12 months before the vintage: total, period, by family."""
    c = _premier(ind, ("creations_en_qpv", "creations"))
    if c is None:
        return None
    if not isinstance(c, dict):
        return {"total": c}
    return c


def _periode(creations: dict | None) -> str:
    if not creations or not creations.get("debut"):
        return "sur les 12 mois précédant le millésime"
    d, f = (dt.date.fromisoformat(x) for x in (creations["debut"], creations["fin"]))
    return f"du {d.strftime('%d/%m/%Y')} au {(f - dt.timedelta(days=1)).strftime('%d/%m/%Y')}"


def _par_famille(creations: dict | None) -> str:
    pf = (creations or {}).get("par_famille") or {}
    morceaux = [f"{nombre(v)} {charts.LIBELLES_FAMILLES.get(k, k).lower()}"
                for k, v in pf.items() if v]
    return ", ".join(morceaux)


def _table_modeles(modeles: list[dict] | None) -> dict | None:
    """The seed's table of the three models, one column per model."""
    if not modeles:
        return None
    entetes = [""] + [f"Modèle {m.get('modele', i + 1)}" for i, m in enumerate(modeles)]
    lignes = []
    for cle, lib in LIBELLES_MODELES.items():
        if any(cle in m for m in modeles):
            lignes.append([lib] + [_texte(m.get(cle)) for m in modeles])
    return {"titre": None, "classe": "modeles", "entetes": entetes, "lignes": lignes}


def _texte(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v).replace("|", ", ")


def _table_initiatives(initiatives: list[dict] | None) -> dict | None:
    if not initiatives:
        return None
    lignes = []
    for i in initiatives:
        ligne = []
        for cles, _ in COLONNES_INITIATIVES:
            ligne.append(_texte(_premier(i, cles)))
        lignes.append(ligne)
    # columns nobody filled in (a starter directory without communes) are left out
    garder = [j for j in range(len(COLONNES_INITIATIVES)) if any(lg[j] for lg in lignes)]
    return {"titre": None, "classe": "initiatives",
            "entetes": [COLONNES_INITIATIVES[j][1] for j in garder],
            "lignes": [[lg[j] for j in garder] for lg in lignes]}


def _table_sources(ind: dict, meta: dict) -> dict:
    lignes, vus = [], set()
    for s in [*(meta.get("sources") or []), *(ind.get("sources") or [])]:
        if not isinstance(s, dict):
            s = {"fichier": str(s)}
        cle = (s.get("role"), s.get("fichier"))
        if cle in vus:
            continue
        vus.add(cle)
        empreinte = s.get("sha256") or s.get("empreinte") or ""
        lignes.append([s.get("role") or "", s.get("fichier") or s.get("nom") or "",
                       s.get("producteur") or "", (s.get("modifie_le") or s.get("date") or
                                                   "")[:10],
                       s.get("licence") or LICENCE_DONNEES, empreinte[:12]])
    return {"titre": None, "classe": "sources",
            "entetes": ["Rôle", "Fichier", "Producteur", "Date", "Licence", "Empreinte"],
            "lignes": lignes}


def _methodo() -> dict:
    fam = reference.regles_familles()
    familles = []
    for (ordre, famille, regle), g in fam.group_by(["ordre", "famille", "regle"],
                                                   maintain_order=True):
        valeurs = g["valeur"].to_list()
        familles.append([str(ordre), charts.LIBELLES_FAMILLES.get(famille, famille),
                         _libelle_regle(regle), ", ".join(valeurs), g["statut"][0]])
    exc = reference.exclusions_activite()
    exclusions = [[r["niveau"], r["code"], r["libelle"], r["statut"]] for r in exc.to_dicts()]
    sect = reference.regles_secteurs()
    secteurs = [[r["secteur"], r["niveau"], r["codes"].replace("|", ", "), r["statut"]]
                for r in sect.to_dicts()]
    return {
        "familles": {"titre": "Familles de l'ESS (première règle satisfaite)",
                     "classe": "regles-familles",
                     "entetes": ["Ordre", "Famille", "Règle", "Valeurs", "Statut"],
                     "lignes": familles},
        "exclusions": {"titre": "Activités exclues (NAF rév. 2 de l'établissement)",
                       "classe": "exclusions",
                       "entetes": ["Niveau", "Code", "Libellé", "Statut"], "lignes": exclusions},
        "exclusions_texte": ", ".join(f"{r[1]} ({r[2].lower()})" for r in exclusions),
        "secteurs": {"titre": "Secteurs : première règle satisfaite sur la NAF rév. 2",
                     "classe": "regles-secteurs",
                     "entetes": ["Secteur", "Niveau", "Codes", "Statut"], "lignes": secteurs},
    }


def _libelle_regle(regle: str) -> str:
    return {"categorie_juridique": "catégorie juridique",
            "ess_et_nom": "ESS = O et jeton du nom", "ess": "ESS = O"}.get(regle, regle)


def _messages(ind: dict, fr: dict, regions: list[dict] | None, qpv: list[dict] | None,
              tailles) -> dict:
    cc = ind.get("chiffres_cles") or {}
    lib = ind["territoire"]["libelle"]
    chiffres = (f"{_texte_cle(ind, 'etablissements_employeurs', 'nombre')} établissements "
                f"employeurs et {_texte_cle(ind, 'salaries', 'nombre')} salariés de l'ESS "
                f"dans les QPV ({lib}).")
    lignes = [r for r in (ind.get("tableau_secteurs") or [])
              if r.get("secteur") != "Ensemble" and r.get("ecart_points") is not None
              and not _secret(r, "ecart_points")]
    if lignes:
        haut = max(lignes, key=lambda r: r["ecart_points"])
        bas = min(lignes, key=lambda r: r["ecart_points"])
        secteurs_titre = f"En QPV, l'ESS pèse davantage dans « {haut['secteur']} »"
        secteurs = (f"{haut['secteur']} : {points(haut['ecart_points'])} par rapport à la "
                    f"France ; {bas['secteur']} : {points(bas['ecart_points'])}.")
    else:
        secteurs_titre, secteurs = "La structure sectorielle de l'ESS en QPV", ""
    msg_regions = ""
    publiees = [r for r in regions or [] if r.get("part_emploi_ess_en_qpv") is not None]
    if publiees:
        top = max(publiees, key=lambda r: r["part_emploi_ess_en_qpv"])
        msg_regions = (f"Part de l'emploi ESS situé en QPV : "
                       f"{_texte_cle(fr, 'part_emploi_ess_en_qpv', 'part')} en France ; "
                       f"la plus forte en {top['libelle']} "
                       f"({pourcentage(top['part_emploi_ess_en_qpv'])}).")
    msg_qpv = ""
    if qpv is not None:
        avec = sum(1 for r in qpv if (r.get("etablissements_employeurs") or 0) > 0)
        msg_qpv = (f"{nombre(len(qpv))} quartiers prioritaires, dont {nombre(avec)} avec au "
                   f"moins un employeur de l'ESS.")
    msg_tailles = ""
    if tailles:
        total = sum(v or 0 for _, v in tailles)
        if total:
            lib0, v0 = tailles[0]
            msg_tailles = (f"{pourcentage((v0 or 0) / total)} des employeurs ESS en QPV ont "
                           f"{lib0}.")
    del cc
    return {"chiffres": chiffres, "secteurs_titre": secteurs_titre, "secteurs": secteurs,
            "regions": msg_regions, "qpv": msg_qpv, "tailles": msg_tailles}


def _echapper_css(texte: str) -> str:
    return texte.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _departements_fond(ind: dict, qpv: list[dict] | None, etabs: list[dict] | None
                       ) -> list[str]:
    t = ind["territoire"]
    valeur_code = t["code"].split(":", 1)[-1]
    if t["niveau"] == "region":
        return maps.departements_de_region(valeur_code)
    if t["niveau"] == "departement":
        return [valeur_code]
    deps = {r.get("departement") for r in qpv or [] if r.get("departement")}
    deps |= {e.get("departement") for e in etabs or [] if e.get("departement")}
    return sorted(deps)


def _ordre_qpv(lignes: list[dict]) -> list[dict]:
    return sorted(lignes, key=lambda r: (-(r.get("etablissements_employeurs") or 0),
                                         r.get("code_qp") or ""))


def rendre(donnees: dict, format: str = "html") -> str:
    """The report (``html``/``pdf``) or the deck (``diapos``) as an HTML document.

    ``donnees`` is the bundle of :func:`rassembler`.
    """
    if format not in FORMATS_RAPPORT:
        raise ParametreInvalide(f"Format de rapport inconnu : {format} (attendu : "
                                f"{', '.join(FORMATS_RAPPORT)}).")
    ind, fr = donnees["indicateurs"], donnees["france"]
    meta = donnees.get("metadonnees") or {}
    t = ind["territoire"]
    local = t.get("niveau") != "france"
    millesime = ind.get("millesime") or meta.get("millesime")
    synthetique = bool(meta.get("synthetique"))
    marque = MARQUE_SYNTHETIQUE if synthetique else None
    source = (f"Source : Sirene (INSEE), millésime {millesime}, QPV {ind.get('geographie_qpv')}"
              f" ; traitement essqpv.{'  ' + MARQUE_SYNTHETIQUE.upper() if synthetique else ''}")
    perimetre_libelle, perimetre_regle = _perimetre(ind, meta)
    regions = fr.get("regions") or []
    qpv = donnees.get("qpv")
    etabs = donnees.get("etablissements")
    tailles = _tailles(ind)

    large = 10.5 if format == "diapos" else 7.2

    def balise(fig):
        return charts.en_balise(fig, "svg" if format == "html" else "png")

    figures = {
        "carte_regions": _carte_regions(json.dumps(regions, sort_keys=True), source,
                                        "svg" if format == "html" else "png"),
        "ecarts": balise(charts.barres_ecarts(ind.get("tableau_secteurs") or [], source,
                                              largeur=large)),
        "familles": balise(charts.barres_familles(ind.get("familles_en_qpv") or {}, source)),
        "tailles": balise(charts.barres_tailles(tailles, source, largeur=large))
        if tailles else None,
        "carte_qpv": None, "carte_etablissements": None,
    }
    # the linked tables' sections, their charts drawn in this format
    sections_liees = [{**x, "figure": balise(x["graphique"](large))} if x.get("graphique")
                      else x for x in donnees.get("sections_liees") or []]
    if qpv is not None:
        deps = _departements_fond(ind, qpv, etabs)
        epsg = maps.epsg_departement(deps[0]) if deps else 2154
        geoms = donnees.get("geometries_qpv") or {}
        recadrer = t["niveau"] in ("epci", "commune", "qpv")
        figures["carte_qpv"] = balise(maps.carte_qpv(
            qpv, geoms, deps, epsg, source, recadrer=recadrer,
            titre=f"Salariés ESS par quartier prioritaire — {t['libelle']}"))
        figures["carte_etablissements"] = balise(maps.carte_etablissements(
            etabs or [], geoms, deps, epsg, source, recadrer=recadrer,
            titre=f"Établissements de l'ESS — {t['libelle']}"))
    total_etabs = donnees.get("etablissements_total")
    etab_note = ""
    if etabs is not None:
        n_qpv = sum(1 for e in etabs if e.get("qpv"))
        etab_note = (f"{nombre(total_etabs)} établissements ESS actifs (employeurs ou non), "
                     f"dont {nombre(n_qpv)} en QPV (cerclés) parmi les {nombre(len(etabs))} "
                     "représentés ; positions publiques de Sirene.")
    a_secret = bool(ind.get("secret")) or bool(fr.get("secret"))
    pied = (f"essqpv {__version__} · Sirene (INSEE) {millesime} · QPV {ind.get('geographie_qpv')}"
            f" · {LICENCE_DONNEES}")
    creations = _creations(ind)
    contexte = {
        "version": __version__, "titre": TITRE, "mode": format, "territoire": t,
        "millesime": millesime, "geographie_qpv": ind.get("geographie_qpv"),
        "perimetre_libelle": perimetre_libelle, "perimetre_regle": perimetre_regle,
        "marque": marque, "marque_css": _echapper_css(marque or ""),
        "pied": pied, "pied_css": _echapper_css(pied),
        "avertissements": _avertissements(ind, meta),
        "tuiles": _tuiles(ind, fr, local), "figures": figures, "local": local,
        "secteurs": ind.get("tableau_secteurs") or [],
        "familles": _familles(ind),
        "dynamisme": {"etablissements": ind.get("etablissements_en_qpv"),
                      "non_employeurs": ind.get("non_employeurs_en_qpv"),
                      "creations_texte": nombre(creations.get("total")) if creations
                      else "n.d.",
                      "creations_periode": _periode(creations),
                      "creations_familles": _par_famille(creations)},
        "evolution": _evolution(ind.get("evolution")),
        "sections_liees": sections_liees,
        "regions": regions,
        "regions_top": sorted([r for r in regions if r.get("part_emploi_ess_en_qpv")
                               is not None], key=lambda r: -r["part_emploi_ess_en_qpv"])[:6],
        "qpv": _ordre_qpv(qpv) if qpv is not None else None,
        "limite_qpv": None if format == "html" else 25,
        "etablissements_note": etab_note,
        "modeles": _table_modeles(donnees.get("modeles")),
        "initiatives": _table_initiatives(donnees.get("initiatives")),
        "limite_initiatives": 200 if format == "html" else 30,
        "methodo": _methodo(), "sources": _table_sources(ind, meta),
        "seuils": confidentialite(), "a_secret": a_secret,
        "nombre_secret": len(ind.get("secret") or []),
        "licence": LICENCE_DONNEES, "lien_methodologie": LIEN_METHODOLOGIE,
        "date_production": dt.date.today().isoformat(),
        "messages": _messages(ind, fr, regions, qpv, tailles),
    }
    contexte.update(transition.contexte(donnees, format, source))  # 2015 → 2024
    env = _environnement()
    if format == "diapos":
        return env.get_template("diapos.html").render(css=_css("diapos.css"), **contexte)
    return env.get_template("rapport.html").render(css=_css("rapport.css"), **contexte)


@lru_cache(maxsize=8)
def _carte_regions(regions_json: str, source: str, format: str) -> str:
    """The regional map is the same in every report of a vintage: draw it once."""
    return charts.en_balise(maps.carte_regions(json.loads(regions_json), source), format)


def _slug(texte: str) -> str:
    t = unicodedata.normalize("NFKD", texte).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", t).strip("-")


def nom_fichier(territoire: dict, millesime: str | None, perimetre: str, format: str) -> str:
    """File name of a report: ``rapport-ess-qpv-dep-93-2024-01-strict.pdf``."""
    prefixe = "diapos-ess-qpv" if format == "diapos" else "rapport-ess-qpv"
    ext = "html" if format == "html" else "pdf"
    return f"{prefixe}-{_slug(territoire['code'])}-{millesime or ''}-{perimetre}.{ext}"


def ecrire(html: str, chemin: Path, format: str) -> Path:
    """Write the HTML or print it to PDF (WeasyPrint) atomically."""
    chemin.parent.mkdir(parents=True, exist_ok=True)
    tmp = chemin.with_name(f".{chemin.name}.tmp")
    if format == "html":
        tmp.write_text(html, encoding="utf-8")
    else:
        import logging

        import weasyprint
        logging.getLogger("weasyprint").setLevel(logging.ERROR)
        logging.getLogger("fontTools").setLevel(logging.ERROR)
        weasyprint.HTML(string=html, base_url=str(chemin.parent)).write_pdf(tmp)
    tmp.replace(chemin)
    return chemin


def rapport(base: str | Path, territoire: str, perimetre: str = "strict",
            millesime: str | None = None, format: str = "html",
            sortie: str | Path = Path(".")) -> Path:
    """Write the territorial report and return its path.

    Parameters
    ----------
    base : path of the DuckDB base.
    territoire : ``FR``, ``REG:11``, ``DEP:93``, ``EPCI:…``, ``COM:…``, ``QPV:…`` or a name.
    perimetre : ``"strict"`` or the base's buffer perimeter (``"300m"``).
    millesime : vintage (newest by default).
    format : ``html`` (one self-contained file), ``pdf`` (A4) or ``diapos`` (16:9 PDF).
    sortie : a folder (the file name is built from the territory) or a file path.

    Raises
    ------
    ParametreInvalide
        Unknown format. Errors of the indicators (unknown territory, vintage) pass through.
    """
    if format not in FORMATS_RAPPORT:
        raise ParametreInvalide(f"Format de rapport inconnu : {format} (attendu : "
                                f"{', '.join(FORMATS_RAPPORT)}).")
    donnees = rassembler(base, territoire, perimetre, millesime)
    html = rendre(donnees, format)
    sortie = Path(sortie)
    ind = donnees["indicateurs"]
    if sortie.suffix.lower() in (".html", ".htm", ".pdf"):
        chemin = sortie
    else:
        chemin = sortie / nom_fichier(ind["territoire"], ind.get("millesime"),
                                      ind.get("perimetre") or perimetre, format)
    return ecrire(html, chemin, format)
