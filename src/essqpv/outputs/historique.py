"""The series since 2008 in the report, the deck and the exports (issue: the ESS in the QPV
over time): the stored, published series of :func:`essqpv.historique.evolution`, registered
with the outputs' linked-table hooks (:func:`essqpv.outputs.report.section_du_rapport`,
:func:`essqpv.outputs.exports.table_liee`). Nothing is shown for a base without series or a
vintage other than the series'. Headcounts are not in INSEE's historical files: each output
says so where a reader would look for an employment series.
"""
from __future__ import annotations

import polars as pl

from essqpv.config import MARQUE_SYNTHETIQUE
from essqpv.outputs import charts
from essqpv.outputs._format import MARQUE_SECRET, nombre
from essqpv.outputs.exports import table_liee
from essqpv.outputs.report import section_du_rapport

__all__ = ["section_evolution", "tables_evolution", "table_evolution", "tables_des_series"]

FEUILLES_EVOLUTION = {"evolution": "Évolution", "evolution_flux": "Créations et fermetures"}


def _serie(base, ind: dict) -> dict | None:
    """The published series of the territory of ``ind`` in the vintage's QPV geography (None:
    the base has no series, or they are of another vintage)."""
    from essqpv.historique import disponible, evolution
    info = disponible(base)
    if info is None or info["millesime"] != ind.get("millesime", info["millesime"]):
        return None
    geo = ind.get("geographie_qpv")
    return evolution(base, ind["territoire"]["code"],
                     geo if geo in info["geographies"] else None)


def _note_sources() -> str:
    from essqpv.historique import AVERTISSEMENT_EFFECTIFS
    return ("Fichiers historiques de Sirene ; géographie des QPV fixe sur toute la série. "
            + AVERTISSEMENT_EFFECTIFS)


def table_evolution(h: dict | None) -> dict | None:
    """The table of the Évolution section: one row per point (``s`` = secret)."""
    if h is None:
        return None
    local = "ensemble" in h
    def n(v) -> str:
        return MARQUE_SECRET if v is None else nombre(v)
    entetes = ["Au 1er janvier", "ESS en QPV", "dont employeurs"]
    if local:
        entetes.append(h["territoire"]["libelle"])
    entetes += ["Part localisée", "France entière", "Créations en QPV (année)",
                "Fermetures en QPV (année)"]
    annees = h["flux"]["annees"]
    lignes = []
    for i, p in enumerate(h["points"]):
        part = h["part_localisee"][i]
        ligne = [p[:4] if p.endswith("-01-01") else f"millésime {p}",
                 n(h["qpv"]["etablissements"][i]), n(h["qpv"]["employeurs"][i])]
        if local:
            ligne.append(n(h["ensemble"]["etablissements"][i]))
        ligne += [MARQUE_SECRET if part is None else f"{100 * part:.1f} %".replace(".", ","),
                  n(h["france"]["etablissements"][i])]
        annee = int(p[:4]) if p.endswith("-01-01") else None
        k = annees.index(annee) if annee in annees else None
        ligne += [n(h["flux"]["qpv"]["creations"][k]) if k is not None else "",
                  n(h["flux"]["qpv"]["fermetures"][k]) if k is not None else ""]
        lignes.append(ligne)
    return {"titre": f"Établissements de l'ESS au 1er janvier — géographie QPV "
                     f"{h['geographie_qpv']}, fixe sur toute la série",
            "entetes": entetes, "lignes": lignes, "classe": "historique"}


@section_du_rapport
def section_evolution(base, ind: dict) -> dict | None:
    """The « Évolution depuis 2008 » section of the report and its slide: a line chart (QPV
    against France entière, index 2015 = 100 or counts) and the table, from the stored
    series."""
    h = _serie(base, ind)
    if h is None:
        return None
    synthetique = bool(h.get("synthetique"))
    source = (f"Source : Sirene (INSEE), fichiers historiques, millésime {h['millesime']}, "
              f"QPV {h['geographie_qpv']} ; traitement "
              f"essqpv.{'  ' + MARQUE_SYNTHETIQUE.upper() if synthetique else ''}")
    return {
        "id": "evolution", "titre": "Évolution depuis 2008",
        "texte": ("Établissements de l'ESS en activité au 1er janvier de chaque année, d'après "
                  "les fichiers historiques de Sirene (chaque période d'activité, d'activité "
                  "principale, de caractère employeur et de catégorie juridique des unités "
                  f"légales). La géographie des QPV ({h['geographie_qpv']}) est la même sur "
                  "toute la série ; la position d'un établissement est celle du millésime."),
        "graphique": lambda largeur: charts.courbe_evolution(h, source, largeur=largeur),
        "table": table_evolution(h),
        "note": ("Pas de série des salariés : les effectifs ne sont pas historisés par "
                 f"l'Insee ; les salariés ne sont donnés que pour le millésime {h['millesime']} "
                 "(chiffres clés ci-dessus). Part localisée : part des établissements du "
                 "territoire dont la position est connue (les autres ne sont dans aucun QPV). "
                 + h.get("regle_secret", "")).strip(),
        "titre_diapo": "L'ESS en QPV depuis 2008",
        "message_diapo": (f"Établissements de l'ESS au 1er janvier, géographie QPV "
                          f"{h['geographie_qpv']} fixe sur toute la série. Pas de série des "
                          "salariés : les effectifs ne sont pas historisés par l'Insee."),
    }


@table_liee(FEUILLES_EVOLUTION, notes={n: _note_sources() for n in FEUILLES_EVOLUTION})
def tables_evolution(base, code: str, ind: dict) -> dict[str, pl.DataFrame]:
    """The exports' two tables of the series (none without series)."""
    h = _serie(base, {**ind, "territoire": {**ind["territoire"], "code": code}})
    return {} if h is None else tables_des_series(h)


def tables_des_series(s: dict) -> dict[str, pl.DataFrame]:
    """A published series (:func:`essqpv.historique.evolution`) as two tables: one row per
    point, one row per year of creations and closures (``secret``: ``colonne:statut``)."""
    secret_par_point: dict[str, list[str]] = {}
    noms = {("qpv", "etablissements"): "etablissements_qpv", ("qpv", "employeurs"):
            "employeurs_qpv", ("qpv", "non_employeurs"): "non_employeurs_qpv",
            ("ensemble", "etablissements"): "etablissements_territoire",
            ("france", "etablissements"): "etablissements_france",
            ("localisation", "localises"): "part_localisee",
            ("qpv", "creations"): "creations_qpv", ("qpv", "fermetures"): "fermetures_qpv",
            ("ensemble", "creations"): "creations_territoire",
            ("ensemble", "fermetures"): "fermetures_territoire"}
    for c in s["secret"]:
        col = noms.get((c["zone"], c["indicateur"]))
        if col:
            secret_par_point.setdefault(c["point"], []).append(f"{col}:{c['secret']}")
    ind = s.get("indice_2015") or {}
    lignes = []
    for i, p in enumerate(s["points"]):
        lignes.append({
            "point": p, "geographie_qpv": s["geographie_qpv"],
            "etablissements_qpv": s["qpv"]["etablissements"][i],
            "employeurs_qpv": s["qpv"]["employeurs"][i],
            "non_employeurs_qpv": s["qpv"]["non_employeurs"][i],
            "etablissements_territoire": (s["ensemble"]["etablissements"][i]
                                          if "ensemble" in s else None),
            "part_localisee": s["part_localisee"][i],
            "etablissements_france": s["france"]["etablissements"][i],
            "indice_qpv_2015": (ind.get("qpv") or [None] * len(s["points"]))[i],
            "indice_france_2015": (ind.get("france") or [None] * len(s["points"]))[i],
            "secret": "; ".join(secret_par_point.get(p, [])) or None})
    flux = []
    for k, a in enumerate(s["flux"]["annees"]):
        z = s["flux"]
        flux.append({"annee": a, "geographie_qpv": s["geographie_qpv"],
                     "creations_qpv": z["qpv"]["creations"][k],
                     "fermetures_qpv": z["qpv"]["fermetures"][k],
                     "creations_territoire": z["ensemble"]["creations"][k]
                     if "ensemble" in z else None,
                     "fermetures_territoire": z["ensemble"]["fermetures"][k]
                     if "ensemble" in z else None,
                     "secret": "; ".join(secret_par_point.get(str(a), [])) or None})
    entiers = {c: pl.Int64 for c in ("etablissements_qpv", "employeurs_qpv",
                                     "non_employeurs_qpv", "etablissements_territoire",
                                     "etablissements_france")}
    return {
        "evolution": pl.DataFrame(lignes, schema={
            "point": pl.String, "geographie_qpv": pl.String, **entiers,
            "part_localisee": pl.Float64, "indice_qpv_2015": pl.Float64,
            "indice_france_2015": pl.Float64, "secret": pl.String}).select(
            "point", "geographie_qpv", "etablissements_qpv", "employeurs_qpv",
            "non_employeurs_qpv", "etablissements_territoire", "part_localisee",
            "etablissements_france", "indice_qpv_2015", "indice_france_2015", "secret"),
        "evolution_flux": pl.DataFrame(flux, schema={
            "annee": pl.Int64, "geographie_qpv": pl.String, "creations_qpv": pl.Int64,
            "fermetures_qpv": pl.Int64, "creations_territoire": pl.Int64,
            "fermetures_territoire": pl.Int64, "secret": pl.String}),
    }



