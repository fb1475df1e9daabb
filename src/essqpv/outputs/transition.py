"""The "Ce que change la nouvelle carte" section of the report and slides, and its export.

Everything comes from the stored, protected answers of the publication (genre
``transition``, :func:`essqpv.transition.tableau`): counts of establishments are public,
headcounts are ``s`` where the plan suppressed them, ``—`` where they are not published at
the territory's level (by family and sector for EPCI and communes), ``n.c.`` for a territory
outside Sirene (French Polynesia: not zero, not counted). The map is public geography (the
contours of both maps) for a département, an EPCI or a commune, and the public counts of
establishments that entered and left the map per département for France and a région.

Hooks: :func:`rassembler` (called by :func:`essqpv.outputs.report.rassembler`),
:func:`contexte` (by :func:`essqpv.outputs.report.rendre`, for ``_transition.html`` and
``_transition_diapo.html``), :func:`tables` (by :func:`essqpv.outputs.exports.tables`).
"""
from __future__ import annotations

import numpy as np
import polars as pl
import shapely

from essqpv.outputs._format import MARQUE_SECRET, nombre

__all__ = ["rassembler", "contexte", "tables", "carte", "FEUILLES_TRANSITION",
           "ENTETES_TRANSITION", "NOTE_TRANSITION", "ZONES"]

ZONES = ("entrant", "sortant", "maintenu", "qpv2015", "qpv2024")
TITRES = {"entrant": "Entrés", "sortant": "Sortis", "maintenu": "Maintenus",
          "qpv2015": "En QPV 2015", "qpv2024": "En QPV 2024"}
SOUS_TITRES = {"entrant": "en QPV 2024, pas en 2015", "sortant": "en QPV 2015, plus en 2024",
               "maintenu": "dans les deux", "qpv2015": "carte 2015", "qpv2024": "carte 2024"}
MESURES = (("etablissements", "Établissements ESS (employeurs ou non)"),
           ("employeurs", "Établissements employeurs"), ("salaries", "Salariés"))
NON_PUBLIE = "—"
NON_COUVERT = "n.c."
#: sheet of the workbook (exports)
FEUILLES_TRANSITION = {"transition": "Nouvelle carte 2024"}
ENTETES_TRANSITION = {"dimension": "Détail", **{
    f"{m}_{z}": f"{lib} — {t}"
    for m, lib in (("etablissements", "Établissements"), ("employeurs", "Employeurs"),
                   ("salaries", "Salariés"))
    for z, t in (("entrant", "entrés (en QPV 2024, pas en 2015)"),
                 ("sortant", "sortis (en QPV 2015, plus en 2024)"),
                 ("maintenu", "maintenus (dans les deux)"), ("qpv2015", "en QPV 2015"),
                 ("qpv2024", "en QPV 2024"))}, "couverture": "Couverture"}
NOTE_TRANSITION = ("Entrés : en QPV 2024 et dans aucun QPV 2015 ; sortis : en QPV 2015 et dans "
                   "aucun QPV 2024 ; maintenus : dans un QPV des deux cartes (périmètre strict, "
                   "établissements localisés). Salariés par famille et par secteur publiés pour "
                   "la France, les régions et les départements seulement (vide ailleurs). "
                   "Établissements : nombres publics.")
COULEURS = {"2024": "#1b5e7a", "2015": "#c2562b", "nouveau": "#1b7a5e", "fond": "#f3f3f1"}


# --- data ----------------------------------------------------------------------------------

def rassembler(base, territoire: str, millesime: str | None) -> dict | None:
    """The stored answer of the territory (None for a QPV or a base without it), with the
    per-département answers the national and regional map needs."""
    from essqpv.errors import ParametreInvalide
    from essqpv.transition import tableau, tableaux
    try:
        r = tableau(base, territoire, millesime)
    except ParametreInvalide:
        return None
    niveau = r["territoire"]["niveau"]
    if niveau in ("france", "region"):
        from essqpv import reference
        deps = [d["code"] for d in reference.departements()
                if niveau == "france" or d.get("region") == r["territoire"]["code"][4:]]
        r = dict(r)
        stockees = tableaux(base, [f"DEP:{d}" for d in deps], r["millesime"])
        r["departements"] = {c[4:]: x["lignes"][0]["etablissements"]
                             for c, x in stockees.items()}
    return r


def _texte(ligne: dict, mesure: str, zone: str) -> str:
    valeurs = ligne.get(mesure)
    if valeurs is None:
        return NON_PUBLIE
    if mesure == "salaries" and zone in (ligne.get("secret") or {}):
        return MARQUE_SECRET
    v = valeurs.get(zone)
    return NON_COUVERT if v is None else nombre(v)


def table_ensemble(r: dict) -> dict:
    total = r["lignes"][0]
    return {"titre": f"Ce que change la nouvelle carte — {r['territoire']['libelle']}",
            "entetes": [""] + [TITRES[z] for z in ZONES],
            "sous_titres": [""] + [SOUS_TITRES[z] for z in ZONES],
            "lignes": [[lib] + [_texte(total, m, z) for z in ZONES] for m, lib in MESURES]}


def table_detail(r: dict, dimension: str) -> dict:
    zones = ("entrant", "sortant", "maintenu")
    lignes = [li for li in r["lignes"] if li["dimension"] == dimension]
    if dimension == "secteur":  # sectors with nothing in either map are left out
        lignes = [li for li in lignes if any(v for v in li["etablissements"].values())]
    entetes = ["Famille" if dimension == "famille" else "Secteur"]
    for z in zones:
        entetes += [f"{TITRES[z]} : étab.", "salariés"]
    return {"titre": ("Par famille" if dimension == "famille" else "Par secteur d'activité"),
            "entetes": entetes,
            "lignes": [[li["libelle"]] + [t for z in zones for t in (
                _texte(li, "etablissements", z), _texte(li, "salaries", z))] for li in lignes]}


def _phrase(r: dict) -> str:
    """The one-sentence message of the section, from the public counts."""
    e = r["lignes"][0]["etablissements"]
    if r.get("couverture"):
        return (f"{r['territoire']['libelle']} : {r['couverture']} — aucun chiffre n'est "
                "calculé (ce n'est pas zéro).")
    return (f"Avec la carte 2024, {nombre(e['entrant'])} établissements de l'ESS entrent dans "
            f"un quartier prioritaire, {nombre(e['sortant'])} en sortent et "
            f"{nombre(e['maintenu'])} restent dans un quartier des deux cartes : "
            f"{nombre(e['qpv2015'])} en QPV selon la carte 2015, {nombre(e['qpv2024'])} selon "
            "la carte 2024.")


def contexte(donnees: dict, format: str, source: str) -> dict:
    """Template variables of the section (``transition`` is None when there is none)."""
    r = donnees.get("transition")
    if not r:
        return {"transition": None}
    from essqpv.outputs import charts
    fig = carte(r, source)
    return {"transition": {
        "phrase": _phrase(r), "ensemble": table_ensemble(r),
        "familles": table_detail(r, "famille"), "secteurs": table_detail(r, "secteur"),
        "carte": charts.en_balise(fig, "svg" if format == "html" else "png") if fig else None,
        "salaries_par_ligne": r.get("salaries_par_ligne", True),
        "nouveaux": r["qpv_nouveaux"], "sortis": r["qpv_sortis"],
        "avertissements": r.get("avertissements") or [],
        "secret": any(li.get("secret") for li in r["lignes"]),
        "marque_s": MARQUE_SECRET, "non_publie": NON_PUBLIE, "non_couvert": NON_COUVERT,
    }}


def tables(base, territoire: str, millesime: str | None) -> dict[str, pl.DataFrame]:
    """The export table (one row per line: total, families, sectors; columns per measure and
    zone; ``secret`` = ``colonne:statut`` pairs), or nothing without a stored answer."""
    from essqpv.errors import ParametreInvalide
    from essqpv.transition import tableau
    try:
        r = tableau(base, territoire, millesime)
    except ParametreInvalide:
        return {}
    lignes = []
    for li in r["lignes"]:
        ligne = {"dimension": li["dimension"], "libelle": li["libelle"]}
        for m, _ in MESURES:
            for z in ZONES:
                ligne[f"{m}_{z}"] = None if li.get(m) is None else li[m].get(z)
        secret = [f"salaries_{z}:{st}" for z, st in (li.get("secret") or {}).items()]
        ligne["secret"] = "; ".join(secret) or None
        ligne["couverture"] = r.get("couverture")
        lignes.append(ligne)
    schema = {"dimension": pl.String, "libelle": pl.String,
              **{f"{m}_{z}": pl.Int64 for m, _ in MESURES for z in ZONES},
              "secret": pl.String, "couverture": pl.String}
    return {"transition": pl.DataFrame(lignes, schema=schema)}


# --- map -----------------------------------------------------------------------------------

def carte(r: dict, source: str | None = None):
    """The section's map: contours of both maps (département, EPCI, commune), or the
    establishments that entered and left per département (France, région)."""
    niveau = r["territoire"]["niveau"]
    if r.get("couverture"):
        return None
    if niveau in ("france", "region"):
        return _carte_departements(r, source)
    return _carte_contours(r, source)


def _qpv_du_territoire(r: dict) -> tuple[dict, dict, list[str]]:
    """WKB of the QPV of both maps in the territory, and the départements to draw."""
    from essqpv import reference
    from essqpv.sources.qpv import departement_du_code
    from essqpv.transition import communes_des_qpv
    from essqpv.territoires import table_communes
    t = r["territoire"]
    v = t["code"].split(":", 1)[1]
    if t["niveau"] == "departement":
        dedans = lambda code, geo: departement_du_code(code) == v  # noqa: E731
    else:
        if t["niveau"] == "commune":
            communes = {v}
        else:
            tc = table_communes()
            communes = set(tc.filter(pl.col("epci") == v)["commune"].to_list())
        dedans = lambda code, geo: bool(communes & communes_des_qpv(geo).get(code, set()))  # noqa: E731
    out = []
    for geo, ref in (("2024", reference.qpv2024()), ("2015", reference.qpv2015())):
        out.append({c: g for c, g in zip(ref["code_qp"], ref["geometrie"]) if dedans(c, geo)})
    deps = sorted({departement_du_code(c) for d in out for c in d})
    return out[0], out[1], deps


def _carte_contours(r: dict, source: str | None):
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from essqpv.outputs import maps
    from essqpv.outputs.charts import _source, style
    q24, q15, deps = _qpv_du_territoire(r)
    epsg = maps.epsg_departement(deps[0]) if deps else 2154
    nouveaux = {q["code_qp"] for q in r["qpv_nouveaux"]}
    sortis = {q["code_qp"] for q in r["qpv_sortis"]}
    with style():
        fig = Figure(figsize=(7.2, 6.2))
        ax = fig.add_axes((0.02, 0.15, 0.96, 0.77))
        _, fond = maps._fond(deps, epsg)
        if len(fond):
            maps._polygones(ax, fond, COULEURS["fond"], bords="#9a9a9a", lw=0.6, zorder=0)
        g24 = maps.projeter(shapely.from_wkb(list(q24.values())), epsg) if q24 else np.array([])
        g15 = maps.projeter(shapely.from_wkb(list(q15.values())), epsg) if q15 else np.array([])
        if len(g24):
            faces = [COULEURS["nouveau"] if c in nouveaux else "#9fc9d6" for c in q24]
            maps._polygones(ax, g24, faces, bords=COULEURS["2024"], lw=0.6, zorder=2)
        if len(g15):
            bords = ["none"] * len(g15)
            maps._polygones(ax, g15, bords, bords=COULEURS["2015"], lw=0.9, zorder=3,
                            hachures=["////" if c in sortis else None for c in q15])
        contenu = [g for g in (g24, g15) if len(g)]
        if contenu and (r["territoire"]["niveau"] != "departement" or not len(fond)):
            maps._cadrer(ax, np.concatenate(contenu), 0.12)
        elif len(fond):
            maps._cadrer(ax, fond, 0.03)
        else:
            ax.set_axis_off()
        poignees = [Patch(facecolor="#9fc9d6", edgecolor=COULEURS["2024"], lw=0.6,
                          label="QPV 2024"),
                    Patch(facecolor=COULEURS["nouveau"], edgecolor=COULEURS["2024"], lw=0.6,
                          label="QPV 2024 sans prédécesseur"),
                    Patch(facecolor="none", edgecolor=COULEURS["2015"], lw=0.9,
                          label="contour QPV 2015"),
                    Patch(facecolor="none", edgecolor=COULEURS["2015"], hatch="////", lw=0.9,
                          label="QPV 2015 sorti de la carte")]
        fig.legend(handles=poignees, loc="lower center", bbox_to_anchor=(0.5, 0.035),
                   fontsize=7, frameon=False, ncol=2, columnspacing=1.8)
        e = r["lignes"][0]["etablissements"]
        fig.text(0.02, 0.925, f"Établissements ESS : {nombre(e['entrant'])} entrés, "
                              f"{nombre(e['sortant'])} sortis, {nombre(e['maintenu'])} maintenus",
                 fontsize=8, color="#444444")
        fig.suptitle(f"Quartiers prioritaires 2015 et 2024 — {r['territoire']['libelle']}",
                     x=0.01, ha="left", fontsize=11, fontweight="bold")
        _source(fig, source)
    return fig


def _carte_departements(r: dict, source: str | None):
    """Choropleth of the establishments that entered minus those that left, per
    département (metropolitan France in EPSG:2154; overseas listed alongside)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from essqpv.outputs import maps
    from essqpv.outputs.charts import _source, style
    contours = maps._contours("departements")
    valeurs = r.get("departements") or {}
    region = r["territoire"]["niveau"] == "region"
    codes = [d for d in valeurs if d in contours]
    outre_mer = [] if region else [d for d in codes if d.startswith(("97", "98"))]
    dessines = [d for d in codes if d not in outre_mer]
    epsg = maps.epsg_region(r["territoire"]["code"][4:]) if region else 2154

    def solde(d: str) -> int | None:
        v = valeurs[d]
        if v.get("entrant") is None:
            return None
        return int(v["entrant"]) - int(v["sortant"])
    soldes = [s for s in (solde(d) for d in dessines) if s is not None]
    borne = max([abs(s) for s in soldes] + [1])
    classes = ["#c2562b", "#eaa98a", "#f2f2f2", "#8cc0cf", "#1b5e7a"]

    def couleur(s: int | None) -> str:
        if s is None:
            return "white"
        if s == 0:
            return classes[2]
        k = min(int(abs(s) / borne * 2 + 0.999), 2)
        return classes[2 + k] if s > 0 else classes[2 - k]
    with style():
        fig = Figure(figsize=(7.2, 6.6))
        ax = fig.add_axes((0.02 if region else 0.24, 0.12, 0.96 if region else 0.74, 0.80))
        if dessines:
            g = shapely.simplify(maps.projeter(np.array([contours[d][1] for d in dessines]),
                                               epsg), 500)
            maps._polygones(ax, g, [couleur(solde(d)) for d in dessines], bords="#9a9a9a",
                            lw=0.4)
            maps._cadrer(ax, g, 0.02)
            if region:
                for d, geom in zip(dessines, g):
                    p = geom.representative_point()
                    s = solde(d)
                    ax.text(p.x, p.y, f"{d}\n{'' if s is None else ('+' if s > 0 else '') + nombre(s)}",
                            ha="center", va="center", fontsize=7, path_effects=maps.HALO)
        else:
            ax.set_axis_off()
        for i, d in enumerate(sorted(outre_mer)):
            v = valeurs[d]
            texte = (NON_COUVERT if v.get("entrant") is None
                     else f"+{nombre(v['entrant'])} / −{nombre(v['sortant'])}")
            fig.text(0.02, 0.86 - i * 0.05, f"{contours[d][0]} : {texte}", fontsize=7,
                     color="#333333")
        if outre_mer:
            fig.text(0.02, 0.9, "Outre-mer (entrés / sortis)", fontsize=7.5, fontweight="bold")
        poignees = [Patch(facecolor=classes[4], label="plus d'entrées que de sorties"),
                    Patch(facecolor=classes[2], edgecolor="#cccccc", label="autant"),
                    Patch(facecolor=classes[0], label="plus de sorties que d'entrées")]
        fig.legend(handles=poignees, loc="lower right", bbox_to_anchor=(0.99, 0.035),
                   fontsize=7, frameon=False, ncol=3, title_fontsize=7.5,
                   title=f"Établissements ESS entrés − sortis (jusqu'à ±{nombre(borne)})")
        fig.suptitle(f"Entrées et sorties de la carte des QPV, par département — "
                     f"{r['territoire']['libelle']}", x=0.01, ha="left", fontsize=11,
                     fontweight="bold")
        _source(fig, source)
    return fig
