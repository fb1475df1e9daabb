"""Maps of the report: matplotlib (Agg) + shapely + pyproj on the embedded contours.

No geopandas at run time. Every map is drawn in a metric CRS: metropolitan France in
EPSG:2154, each overseas département in its own metric CRS (``reference/crs_departements.csv``),
shown as an inset on national maps. Inputs are the protected indicators only; suppressed
values are hatched and marked ``s``.
"""
from __future__ import annotations

import math
from functools import cache

import numpy as np
import shapely
from matplotlib import patheffects
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path as MplPath
from pyproj import Transformer

from essqpv import reference
from essqpv.outputs._format import MARQUE_SECRET, nombre, pourcentage
from essqpv.outputs.charts import (
    COULEURS,
    COULEURS_FAMILLES,
    LIBELLES_FAMILLES,
    _source,
    style,
)

__all__ = [
    "carte_etablissements",
    "carte_qpv",
    "carte_regions",
    "epsg_departement",
    "epsg_region",
]

# Sequential classes for shares (light to dark teal), readable in print and greyscale.
CLASSES = ["#e3f0f2", "#a9d1d8", "#5fa8b8", "#2b7a93", "#12465c"]
HALO = [patheffects.withStroke(linewidth=2.2, foreground="white")]


# --- projections -------------------------------------------------------------------------

@cache
def _transformateur(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


def projeter(geometries, epsg: int):
    """Project shapely geometries (EPSG:4326) to ``epsg``."""
    tr = _transformateur(int(epsg))

    def f(xy):
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometries, f)


def projeter_points(lon, lat, epsg: int):
    """Project longitude/latitude arrays to ``epsg``."""
    return _transformateur(int(epsg)).transform(np.asarray(lon, float), np.asarray(lat, float))


@cache
def _crs_par_departement() -> dict[str, int]:
    t = reference.crs_departements()
    return {d: int(e) for d, e in zip(t["departement"], t["epsg_metrique"]) if e}


def epsg_departement(departement: str) -> int:
    """Metric CRS of a département (2154 for metropolitan France)."""
    crs = _crs_par_departement()
    return crs.get(str(departement), crs.get("*", 2154))


@cache
def _departements_de_region() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in reference.departements():
        if d.get("region"):
            out.setdefault(d["region"], []).append(d["code"])
    return out


def epsg_region(region: str) -> int:
    """Metric CRS of a région (its first département's)."""
    deps = _departements_de_region().get(str(region)) or ["*"]
    return epsg_departement(deps[0])


def departements_de_region(region: str) -> list[str]:
    """Codes of the départements of a région."""
    return list(_departements_de_region().get(str(region), []))


@cache
def _contours(niveau: str) -> dict[str, tuple[str, object]]:
    t = reference.contours(niveau)
    geoms = shapely.from_wkb(t["geometrie"].to_numpy())
    return {c: (n, g) for c, n, g in zip(t["code"], t["nom"], geoms)}


# --- drawing -----------------------------------------------------------------------------

def _chemin(geom) -> MplPath | None:
    """One compound matplotlib path for a (multi)polygon, holes included."""
    if geom is None or geom.is_empty:
        return None
    polys = getattr(geom, "geoms", [geom])
    sommets, codes = [], []
    for p in polys:
        if p.geom_type != "Polygon":
            continue
        for anneau in [p.exterior, *p.interiors]:
            xy = np.asarray(anneau.coords)[:, :2]
            if len(xy) < 3:
                continue
            sommets.append(xy)
            c = np.full(len(xy), MplPath.LINETO, dtype=np.uint8)
            c[0] = MplPath.MOVETO
            c[-1] = MplPath.CLOSEPOLY
            codes.append(c)
    if not sommets:
        return None
    return MplPath(np.concatenate(sommets), np.concatenate(codes))


def _polygones(ax, geoms, faces, bords="#ffffff", lw=0.5, hachures=None, zorder=1):
    patches = []
    for i, g in enumerate(geoms):
        chemin = _chemin(g)
        if chemin is None:
            continue
        patch = PathPatch(chemin, facecolor=faces[i] if isinstance(faces, list) else faces,
                          edgecolor=bords, lw=lw)
        if hachures and hachures[i]:
            # a collection carries a single hatch: hatched patches are drawn one by one
            patch.set_hatch(hachures[i])
            patch.set_zorder(zorder)
            ax.add_patch(patch)
        else:
            patches.append(patch)
    ax.add_collection(PatchCollection(patches, match_original=True, zorder=zorder))


def _cadrer(ax, geoms, marge=0.04):
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    dx, dy = (xmax - xmin) or 1000.0, (ymax - ymin) or 1000.0
    ax.set_xlim(xmin - dx * marge, xmax + dx * marge)
    ax.set_ylim(ymin - dy * marge, ymax + dy * marge)
    ax.set_aspect("equal")
    ax.set_axis_off()


def _bornes(valeurs: list[float], n: int = 5) -> list[float]:
    """``n`` equal classes from 0 to a round maximum (shares in [0, 1])."""
    maxi = max(valeurs) if valeurs else 0.0
    if maxi <= 0:
        return [i / n for i in range(n + 1)]
    pas_pct = maxi * 100 / n
    base = 10 ** math.floor(math.log10(pas_pct))
    for m in (1, 2, 2.5, 5, 10):
        if m * base >= pas_pct:
            pas_pct = m * base
            break
    return [i * pas_pct / 100 for i in range(n + 1)]


def _classe(v: float, bornes: list[float]) -> str:
    for i in range(len(bornes) - 1):
        if v <= bornes[i + 1] + 1e-12:
            return CLASSES[i]
    return CLASSES[-1]


def _legende_classes(bornes: list[float], secret: bool, absent: bool) -> list:
    elements = [Patch(facecolor=CLASSES[i], edgecolor="#999999", lw=0.4,
                      label=f"{pourcentage(bornes[i])} – {pourcentage(bornes[i + 1])}")
                for i in range(len(bornes) - 1)]
    if secret:
        elements.append(Patch(facecolor=COULEURS["secret"], edgecolor="#999999", hatch="////",
                              lw=0.4, label=f"{MARQUE_SECRET} : secret statistique"))
    if absent:
        elements.append(Patch(facecolor="white", edgecolor="#999999", lw=0.4,
                              label="non disponible"))
    return elements


def carte_regions(regions: list[dict], source: str | None = None,
                  titre: str = "Emploi salarié de l'ESS dans les QPV, par région") -> Figure:
    """Choropleth of ``part_emploi_ess_en_qpv`` by région with salariés labels (carte 1).

    Metropolitan régions in EPSG:2154, each DROM in its own metric CRS as an inset.
    """
    contours = _contours("regions")
    par_code = {r.get("region"): r for r in regions}
    zones = {r["code"]: r.get("zone") for r in reference.regions()}
    parts = [r["part_emploi_ess_en_qpv"] for r in regions
             if r.get("part_emploi_ess_en_qpv") is not None
             and "part_emploi_ess_en_qpv" not in (r.get("secret") or {})]
    bornes = _bornes(parts)
    vu_secret = vu_absent = False

    def style_region(code):
        nonlocal vu_secret, vu_absent
        r = par_code.get(code) or {}
        if "part_emploi_ess_en_qpv" in (r.get("secret") or {}):
            vu_secret = True
            return COULEURS["secret"], "////"
        v = r.get("part_emploi_ess_en_qpv")
        if v is None:
            vu_absent = True
            return "white", None
        return _classe(v, bornes), None

    def textes(code):
        r = par_code.get(code) or {}
        sec = r.get("secret") or {}
        part = MARQUE_SECRET if "part_emploi_ess_en_qpv" in sec else pourcentage(
            r.get("part_emploi_ess_en_qpv"))
        sal = MARQUE_SECRET if "salaries" in sec else nombre(r.get("salaries"))
        if part == sal == MARQUE_SECRET:
            return MARQUE_SECRET, ""
        return part, f"{sal} sal."

    def etiquette(ax, code, geom, couleur):
        part, sal = textes(code)
        p = geom.representative_point()
        xmin, _, xmax, _ = geom.bounds
        if xmax - xmin < 150_000:  # too narrow for its label (Corse): write it alongside
            ax.text(xmin - 8_000, p.y, f"{part}\n{sal}".strip(), ha="right", va="center",
                    fontsize=6.5, color=COULEURS["texte"], linespacing=1.1, path_effects=HALO)
            return
        fonce = couleur in CLASSES[3:]
        ax.text(p.x, p.y, f"{part}\n{sal}".strip(), ha="center", va="center",
                fontsize=8 if not sal else 6.5,
                color="white" if fonce else COULEURS["texte"], linespacing=1.1,
                path_effects=None if fonce else HALO)

    with style():
        fig = Figure(figsize=(7.2, 6.6))
        ax = fig.add_axes((0.22, 0.12, 0.77, 0.80))
        metro = [c for c in contours if zones.get(c) != "drom"]
        geoms = projeter(np.array([contours[c][1] for c in metro]), 2154)
        geoms = shapely.simplify(geoms, 800)
        styles = [style_region(c) for c in metro]
        _polygones(ax, geoms, [s[0] for s in styles], bords="white", lw=0.8,
                   hachures=[s[1] for s in styles])
        _cadrer(ax, geoms, 0.02)
        for c, g, s in zip(metro, geoms, styles):
            etiquette(ax, c, g, s[0])
        drom = [c for c in sorted(contours) if zones.get(c) == "drom"]
        pas = 0.80 / max(len(drom), 1)
        for i, c in enumerate(drom):
            haut = 0.91 - i * pas
            axi = fig.add_axes((0.02, haut - pas * 0.66, 0.17, pas * 0.66))
            g = projeter(np.array([contours[c][1]]), epsg_region(c))
            g = shapely.simplify(g, 300)
            s = style_region(c)
            _polygones(axi, g, [s[0]], bords="#777777", lw=0.4, hachures=[s[1]])
            _cadrer(axi, g, 0.12)
            axi.set_axis_on()
            axi.set_xticks([])
            axi.set_yticks([])
            for cote in axi.spines.values():
                cote.set_visible(True)
                cote.set_color("#bbbbbb")
                cote.set_linewidth(0.6)
            part, sal = textes(c)
            fig.text(0.02, haut - pas * 0.66 - 0.006,
                     f"{contours[c][0]} : {part}" + (f" · {sal}" if sal else ""),
                     fontsize=6.5, va="top", ha="left", color=COULEURS["texte"])
        fig.legend(handles=_legende_classes(bornes, vu_secret, vu_absent),
                   title="Part de l'emploi salarié ESS situé en QPV",
                   loc="lower right", bbox_to_anchor=(0.99, 0.04), fontsize=7,
                   title_fontsize=7.5, frameon=False, ncol=2)
        fig.text(0.22, 0.07, "Étiquettes : part en QPV, salariés ESS en QPV.", fontsize=7,
                 color=COULEURS["discret"])
        fig.suptitle(titre, x=0.01, ha="left", fontsize=11, fontweight="bold")
        _source(fig, source)
    return fig


def _fond(departements: list[str], epsg: int):
    contours = _contours("departements")
    codes = [d for d in departements if d in contours]
    if not codes:
        return [], np.array([])
    g = projeter(np.array([contours[d][1] for d in codes]), epsg)
    return codes, shapely.simplify(g, 100)


def carte_qpv(lignes_qpv: list[dict], geometries: dict[str, bytes], departements: list[str],
              epsg: int, source: str | None = None,
              titre: str = "Salariés ESS par quartier prioritaire",
              recadrer: bool = False) -> Figure:
    """QPV of a territory: outlines plus circles whose area is proportional to salariés.

    ``geometries`` maps ``code_qp`` to WKB (EPSG:4326); ``departements`` draws the
    administrative background; ``recadrer`` frames the QPV instead of the whole background
    (EPCI, commune). Suppressed salariés get a hollow ``s`` marker.
    """
    with style():
        fig = Figure(figsize=(7.2, 6.2))
        ax = fig.add_axes((0.02, 0.17, 0.96, 0.75))
        _, fond = _fond(departements, epsg)
        if len(fond):
            _polygones(ax, fond, "#f3f3f1", bords="#9a9a9a", lw=0.6, zorder=0)
        codes = [r["code_qp"] for r in lignes_qpv if r.get("code_qp") in geometries]
        geoms = projeter(shapely.from_wkb([geometries[c] for c in codes]), epsg) if codes \
            else np.array([])
        if len(geoms):
            _polygones(ax, geoms, "#cfe3e8", bords=COULEURS["qpv"], lw=0.5, zorder=2)
        par_code = {r["code_qp"]: r for r in lignes_qpv}
        valeurs = [par_code[c].get("salaries") or 0 for c in codes
                   if "salaries" not in (par_code[c].get("secret") or {})]
        maxi = max(valeurs + [1])
        centres = shapely.point_on_surface(geoms) if len(geoms) else []
        surface_max = 420.0  # points² of the largest circle
        vu_secret = False
        for c, p in zip(codes, centres):
            r = par_code[c]
            if "salaries" in (r.get("secret") or {}):
                vu_secret = True
                ax.scatter([p.x], [p.y], s=18, facecolor="white", edgecolor=COULEURS["discret"],
                           lw=0.8, zorder=4)
                ax.text(p.x, p.y, MARQUE_SECRET, fontsize=5.5, ha="center", va="center",
                        zorder=5, color=COULEURS["discret"])
                continue
            v = r.get("salaries") or 0
            if v > 0:
                ax.scatter([p.x], [p.y], s=surface_max * v / maxi, facecolor=COULEURS["negatif"],
                           alpha=0.75, edgecolor="white", lw=0.6, zorder=4)
        if len(geoms) and (recadrer or not len(fond)):
            _cadrer(ax, geoms, 0.15)
        elif len(fond):
            _cadrer(ax, fond, 0.03)
        else:
            ax.set_axis_off()
        poignees = []
        for v in sorted({maxi, round(maxi / 4) or 1}, reverse=True):
            poignees.append(Line2D([], [], ls="", marker="o", markersize=math.sqrt(
                surface_max * v / maxi), markerfacecolor=COULEURS["negatif"], alpha=0.75,
                markeredgecolor="white", label=f"{nombre(v)} salariés"))
        poignees.append(Patch(facecolor="#cfe3e8", edgecolor=COULEURS["qpv"], lw=0.5,
                              label="quartier prioritaire (QPV)"))
        if vu_secret:
            poignees.append(Line2D([], [], ls="", marker="o", markersize=5,
                                   markerfacecolor="white", markeredgecolor=COULEURS["discret"],
                                   label=f"{MARQUE_SECRET} : secret statistique"))
        fig.legend(handles=poignees, loc="lower center", bbox_to_anchor=(0.5, 0.035),
                   fontsize=7, frameon=False, ncol=len(poignees), columnspacing=1.8)
        fig.suptitle(titre, x=0.01, ha="left", fontsize=11, fontweight="bold")
        _source(fig, source)
    return fig


def carte_etablissements(etablissements: list[dict], geometries: dict[str, bytes],
                         departements: list[str], epsg: int, source: str | None = None,
                         titre: str = "Établissements de l'ESS", recadrer: bool = False
                         ) -> Figure:
    """Points of the ESS establishments by family; those in a QPV drawn larger and outlined."""
    with style():
        fig = Figure(figsize=(7.2, 6.2))
        ax = fig.add_axes((0.02, 0.17, 0.96, 0.75))
        _, fond = _fond(departements, epsg)
        if len(fond):
            _polygones(ax, fond, "#f3f3f1", bords="#9a9a9a", lw=0.6, zorder=0)
        if geometries:
            geoms = projeter(shapely.from_wkb(list(geometries.values())), epsg)
            _polygones(ax, geoms, "#cfe3e8", bords=COULEURS["qpv"], lw=0.4, zorder=1)
        pts = [e for e in etablissements if e.get("lon") is not None and e.get("lat") is not None]
        vus, projetes = [], []
        for famille, couleur in COULEURS_FAMILLES.items():
            for dans_qpv in (False, True):
                sel = [e for e in pts if e.get("famille") == famille and bool(e.get("qpv"))
                       == dans_qpv]
                if not sel:
                    continue
                if famille not in vus:
                    vus.append(famille)
                x, y = projeter_points([e["lon"] for e in sel], [e["lat"] for e in sel], epsg)
                projetes.append(shapely.multipoints(np.column_stack([x, y])))
                ax.scatter(x, y, s=12 if dans_qpv else 6, color=couleur,
                           edgecolor="#222222" if dans_qpv else "none", lw=0.35,
                           alpha=0.95 if dans_qpv else 0.55, zorder=3 if dans_qpv else 2)
        if recadrer and (projetes or geometries):
            contenu = list(projetes)
            if geometries:
                contenu.extend(geoms)
            _cadrer(ax, np.array(contenu), 0.08)
        elif len(fond):
            _cadrer(ax, fond, 0.03)
        else:
            ax.set_axis_off()
        poignees = [Line2D([], [], ls="", marker="o", markersize=5, color=COULEURS_FAMILLES[f],
                           label=LIBELLES_FAMILLES[f]) for f in vus]
        poignees.append(Line2D([], [], ls="", marker="o", markersize=5.5, color="#bbbbbb",
                               markeredgecolor="#222222", label="établissement en QPV"))
        poignees.append(Patch(facecolor="#cfe3e8", edgecolor=COULEURS["qpv"], lw=0.5,
                              label="quartier prioritaire (QPV)"))
        fig.legend(handles=poignees, loc="lower center", bbox_to_anchor=(0.5, 0.03),
                   fontsize=7, frameon=False, ncol=4, columnspacing=1.5)
        fig.suptitle(titre, x=0.01, ha="left", fontsize=11, fontweight="bold")
        _source(fig, source)
    return fig
