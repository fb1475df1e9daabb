"""Charts of the report (matplotlib, Agg, no pyplot state).

Every function takes the protected indicators (plain JSON-able data) and returns a
:class:`matplotlib.figure.Figure` with a title, axis labels with units and a source line;
:func:`en_svg` and :func:`en_png` turn it into text or bytes for the report. Suppressed
cells are drawn as an ``s`` mark, never as a value.
"""
from __future__ import annotations

import base64
import io
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from essqpv.outputs._format import MARQUE_SECRET, nombre, points

__all__ = [
    "COULEURS",
    "COULEURS_FAMILLES",
    "LIBELLES_FAMILLES",
    "STYLE",
    "barres_ecarts",
    "barres_familles",
    "barres_tailles",
    "courbe_evolution",
    "en_balise",
    "en_data_uri",
    "en_png",
    "en_svg",
    "ligne_source",
    "style",
]

# Print-friendly palette: a deep teal for the QPV, an orange accent, greys for context.
COULEURS = {
    "qpv": "#1b5e7a",
    "france": "#9aa5ad",
    "positif": "#1b7a5e",
    "negatif": "#c2562b",
    "secret": "#d9d9d9",
    "texte": "#222222",
    "discret": "#666666",
}
COULEURS_FAMILLES = {
    "association": "#1b5e7a",
    "fondation": "#8e5ea2",
    "mutuelle": "#d1495b",
    "cooperative": "#edae49",
    "societe_commerciale_ess": "#66a182",
}
LIBELLES_FAMILLES = {
    "association": "Associations",
    "fondation": "Fondations",
    "mutuelle": "Mutuelles",
    "cooperative": "Coopératives",
    "societe_commerciale_ess": "Sociétés commerciales de l'ESS",
}

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#888888",
    "axes.labelcolor": COULEURS["texte"],
    "xtick.color": COULEURS["texte"],
    "ytick.color": COULEURS["texte"],
    "svg.fonttype": "none",
    "svg.hashsalt": "essqpv",
    "hatch.color": "#8a8a8a",
}


@contextmanager
def style():
    """Apply the project's matplotlib style for the duration of a block."""
    with plt.rc_context(STYLE):
        yield


def ligne_source(source: str | None) -> str:
    """The source line printed under each chart."""
    return source or "Source : Sirene (INSEE), traitement essqpv."


def _source(fig: Figure, source: str | None) -> None:
    fig.text(0.01, 0.01, ligne_source(source), fontsize=6.5, color=COULEURS["discret"],
             ha="left", va="bottom")


def en_svg(fig: Figure) -> str:
    """The figure as an SVG document (text stays text), without the XML prolog."""
    with style():
        tampon = io.StringIO()
        fig.savefig(tampon, format="svg", metadata={"Date": None})
    texte = tampon.getvalue()
    debut = texte.find("<svg")
    return texte[debut:]


def en_png(fig: Figure, dpi: int = 150) -> bytes:
    """The figure as PNG bytes: 8-bit palette, no alpha (small, and quick for WeasyPrint)."""
    from PIL import Image
    with style():
        tampon = io.BytesIO()
        fig.savefig(tampon, format="png", dpi=dpi, facecolor="white")
    image = Image.open(io.BytesIO(tampon.getvalue())).convert("RGB")
    image = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    sortie = io.BytesIO()
    image.save(sortie, format="PNG", optimize=False, compress_level=6)
    return sortie.getvalue()


def en_balise(fig: Figure, format: str = "svg", dpi: int = 180) -> str:
    """Markup of a figure for a self-contained document.

    ``svg``: the inline SVG (browsers; text stays text). ``png``: an ``<img>`` with a base64
    PNG (WeasyPrint draws large SVG slowly; 180 dpi prints sharply on A4).
    """
    titre = fig._suptitle.get_text() if fig._suptitle is not None else ""
    if format == "svg":
        svg = en_svg(fig)
        return svg.replace("<svg ", f'<svg role="img" aria-label="{_attr(titre)}" ', 1)
    donnees = base64.b64encode(en_png(fig, dpi)).decode("ascii")
    return f'<img class="graphique" alt="{_attr(titre)}" src="data:image/png;base64,{donnees}">'


def _attr(texte: str) -> str:
    return (texte.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def en_data_uri(svg: str) -> str:
    """A ``data:`` URI for an SVG document (for ``<img>`` in self-contained files)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _secret(ligne: dict, colonne: str) -> bool:
    return colonne in (ligne.get("secret") or {})


def barres_ecarts(tableau_secteurs: list[dict], source: str | None = None,
                  titre: str = "Écart de structure sectorielle de l'emploi ESS : QPV − France",
                  largeur: float = 7.2) -> Figure:
    """Diverging horizontal bars of ``ecart_points`` by sector (tableau 3).

    The ``Ensemble`` row is left out (its gap is 0 by construction); sectors are sorted
    by gap, suppressed gaps are drawn as ``s`` on the zero line.
    """
    lignes = [r for r in tableau_secteurs if r.get("secteur") != "Ensemble"]
    connues = sorted((r for r in lignes if not _secret(r, "ecart_points")
                      and r.get("ecart_points") is not None),
                     key=lambda r: r["ecart_points"])
    inconnues = [r for r in lignes if r not in connues]
    ordre = inconnues + connues
    with style():
        hauteur = 1.1 + 0.24 * max(len(ordre), 1)
        fig = Figure(figsize=(largeur, hauteur))
        gauche = 2.75 / largeur
        ax = fig.add_axes((gauche, 0.95 / hauteur, 0.93 - gauche, 1 - (1.5 / hauteur)))
        ys = range(len(ordre))
        valeurs = [0.0 if r in inconnues else r["ecart_points"] for r in ordre]
        couleurs = [COULEURS["positif"] if v >= 0 else COULEURS["negatif"] for v in valeurs]
        ax.barh(list(ys), valeurs, color=couleurs, height=0.65)
        ax.axvline(0, color="#444444", lw=0.8)
        etendue = max([abs(v) for v in valeurs] + [1.0])
        ax.set_xlim(-etendue * 1.6, etendue * 1.6)  # room for the value labels
        for y, r, v in zip(ys, ordre, valeurs):
            if r in inconnues:
                ax.text(etendue * 0.02, y, f"{MARQUE_SECRET} (secret statistique)",
                        va="center", ha="left", fontsize=7.5, color=COULEURS["texte"],
                        style="italic")
                continue
            decal = etendue * 0.03
            ax.text(v + (decal if v >= 0 else -decal), y, points(v), va="center",
                    ha="left" if v >= 0 else "right", fontsize=7.5)
        ax.set_yticks(list(ys), [_court(r["secteur"]) for r in ordre], fontsize=7.5,
                      linespacing=0.95)
        ax.set_xlabel("Écart en points de pourcentage (part QPV − part France)")
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.xaxis.set_major_formatter(lambda x, _: nombre(x, 0))
        fig.suptitle(titre, x=0.01, ha="left", fontsize=11, fontweight="bold")
        _source(fig, source)
    return fig


def _court(secteur: str) -> str:
    """Wrap long sector names on two lines."""
    if len(secteur) <= 40:
        return secteur
    mots, lignes, courante = secteur.split(), [], ""
    for mot in mots:
        if len(courante) + len(mot) + 1 > 40 and courante:
            lignes.append(courante)
            courante = mot
        else:
            courante = f"{courante} {mot}".strip()
    lignes.append(courante)
    return "\n".join(lignes)


def barres_familles(familles_en_qpv: dict, source: str | None = None,
                    titre: str = "Établissements ESS en QPV par famille",
                    largeur: float = 7.2) -> Figure:
    """Horizontal bars: employer and non-employer establishments in QPV by family."""
    employeurs = familles_en_qpv.get("employeurs") or {}
    non_employeurs = familles_en_qpv.get("non_employeurs") or {}
    familles = [f for f in LIBELLES_FAMILLES if f in employeurs or f in non_employeurs]
    with style():
        fig = Figure(figsize=(largeur, 2.9))
        gauche = 2.6 / largeur
        ax = fig.add_axes((gauche, 0.22, 0.92 - gauche, 0.62))
        ys = list(range(len(familles)))[::-1]
        e = [employeurs.get(f) or 0 for f in familles]
        n = [non_employeurs.get(f) or 0 for f in familles]
        ax.barh([y + 0.18 for y in ys], e, height=0.36, color=COULEURS["qpv"], label="employeurs")
        ax.barh([y - 0.18 for y in ys], n, height=0.36, color="#8fb9c9",
                label="non employeurs")
        maxi = max(e + n + [1])
        for y, a, b in zip(ys, e, n):
            ax.text(a + maxi * 0.01, y + 0.18, nombre(a), va="center", fontsize=7.5)
            ax.text(b + maxi * 0.01, y - 0.18, nombre(b), va="center", fontsize=7.5)
        ax.set_xlim(0, maxi * 1.15)
        ax.set_yticks(ys, [LIBELLES_FAMILLES[f] for f in familles], fontsize=8)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel("Nombre d'établissements")
        ax.xaxis.set_major_formatter(lambda x, _: nombre(x, 0))
        ax.legend(loc="lower right", frameon=False, fontsize=8)
        fig.suptitle(titre, x=0.01, ha="left", fontsize=11, fontweight="bold")
        _source(fig, source)
    return fig


def barres_tailles(tailles: list[tuple[str, int | None]], source: str | None = None,
                   titre: str = "Établissements employeurs ESS en QPV par taille",
                   largeur: float = 7.2) -> Figure:
    """Vertical bars of employer establishments by size group (``(label, count)`` pairs)."""
    with style():
        fig = Figure(figsize=(largeur, 2.8))
        ax = fig.add_axes((0.09, 0.22, 0.88, 0.6))
        xs = list(range(len(tailles)))
        vals = [v or 0 for _, v in tailles]
        ax.bar(xs, vals, color=COULEURS["qpv"], width=0.6)
        maxi = max(vals + [1])
        for x, (_, v) in zip(xs, tailles):
            ax.text(x, (v or 0) + maxi * 0.02, nombre(v), ha="center", fontsize=8)
        ax.set_ylim(0, maxi * 1.18)
        ax.set_xticks(xs, [lib for lib, _ in tailles])
        ax.set_ylabel("Établissements")
        ax.yaxis.set_major_formatter(lambda x, _: nombre(x, 0))
        fig.suptitle(titre, x=0.01, ha="left", fontsize=11, fontweight="bold")
        _source(fig, source)
    return fig


def courbe_evolution(serie: dict, source: str | None = None, largeur: float = 7.2) -> Figure:
    """Lines of the ESS establishments since 2008 (protected series of
    :func:`essqpv.historique.evolution`): the territory's QPV against France entière, as an
    index (1 January 2015 = 100) when both 2015 values are published, else as counts.
    The QPV geography, held fixed over the whole series, is in the title."""
    points_ = serie["points"]
    etiquettes = [p[:4] if p.endswith("-01-01") else p for p in points_]
    indices = serie.get("indice_2015") or {}
    local = serie["territoire"]["niveau"] != "france"
    en_indice = bool(indices) and indices.get("qpv") and \
        any(v is not None for v in indices["qpv"]) and \
        any(v is not None for v in indices.get("france") or [])
    if en_indice:
        lignes = [(f"QPV de {serie['territoire']['libelle']}" if local else "ESS en QPV",
                   indices["qpv"], COULEURS["qpv"]),
                  ("France entière (toute l'ESS)", indices["france"], COULEURS["france"])]
        unite = "Indice (1er janvier 2015 = 100)"
    else:
        lignes = [(f"QPV de {serie['territoire']['libelle']}" if local else "ESS en QPV",
                   serie["qpv"]["etablissements"], COULEURS["qpv"])]
        unite = "Établissements"
    with style():
        fig = Figure(figsize=(largeur, 3.3))
        ax = fig.add_axes((0.09, 0.22, 0.88, 0.56))
        xs = list(range(len(points_)))
        for libelle, valeurs, couleur in lignes:
            ys = [float("nan") if v is None else v for v in valeurs]
            ax.plot(xs, ys, color=couleur, lw=2, marker="o", ms=3, label=libelle)
            for x, v in zip(xs, valeurs):
                if v is None:
                    ax.annotate(MARQUE_SECRET, (x, 0), xycoords=("data", "axes fraction"),
                                ha="center", va="bottom", fontsize=7, color=COULEURS["discret"])
        ax.set_xticks(xs, etiquettes, fontsize=7, rotation=45)
        ax.set_ylabel(unite)
        ax.yaxis.set_major_formatter(lambda x, _: nombre(x, 0))
        ax.legend(loc="upper left", frameon=False, fontsize=8)
        fig.suptitle("Établissements de l'ESS au 1er janvier, depuis 2008\n"
                     f"géographie QPV {serie['geographie_qpv']}, fixe sur toute la série",
                     x=0.01, ha="left", fontsize=10, fontweight="bold")
        _source(fig, source)
    return fig
