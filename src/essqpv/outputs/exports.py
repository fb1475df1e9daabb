"""Exports of the protected tables: Excel, CSV, Parquet, GeoPackage, GeoJSON.

:func:`tables` flattens the protected indicators of a territory into polars frames whose
column names are the JSON keys (METHODOLOGY 9); a suppressed cell is null and its status is
written in the row's ``secret`` column (``colonne:statut`` pairs). :func:`exporter` writes
them. Nothing is computed from raw tables: the figures are the stored answers of the
publication plan (:func:`essqpv.indicators.indicateurs` and
:func:`essqpv.indicators.indicateurs_qpv`, key lookups), the establishments those of
:func:`essqpv.base.lister_etablissements` (public attributes only).
"""
from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from pathlib import Path

import numpy as np
import polars as pl
import shapely

from essqpv import __version__, reference
from essqpv.config import LICENCE_DONNEES, MARQUE_SYNTHETIQUE, confidentialite
from essqpv.csv_sur import neutraliser_frame
from essqpv.errors import ParametreInvalide
from essqpv.outputs._format import MARQUE_SECRET
from essqpv.outputs.transition import ENTETES_TRANSITION, FEUILLES_TRANSITION, NOTE_TRANSITION

__all__ = ["ENTETES", "FEUILLES", "FORMATS_EXPORT", "exporter", "tables", "table_liee"]

FORMATS_EXPORT = ("xlsx", "csv", "parquet", "gpkg", "geojson")
CRS_EXPORT = (4326, 2154)
PAGE = 1000

#: Sheet name of each table in the workbook, in order.
FEUILLES = {
    "chiffres_cles": "Chiffres clés", "secteurs": "Secteurs", "familles": "Familles",
    "tailles": "Tailles", "regions": "Régions", "qpv": "QPV",
    "etablissements": "Établissements", "secret": "Secret",
}
#: Sheets of the linked tables registered with :func:`table_liee` (table name → sheet name).
FEUILLES_LIEES: dict[str, str] = {}
#: Notes written under a linked table's sheet (table name → text), given to table_liee.
NOTES_LIEES: dict[str, str] = {}
_TABLES_LIEES: list = []


def table_liee(feuilles: dict[str, str], notes: dict[str, str] | None = None):
    """Register the export tables of a linked table: ``feuilles`` maps each table name to its
    sheet name; the decorated ``f(base, code, indicateurs)`` returns ``{table: polars frame}``
    (possibly empty) built from the stored answers of its genre, a suppressed cell null with
    its status in the row's ``secret`` column (``colonne:statut``). The tables are written in
    every format (a sheet each in the workbook, a file each in CSV and Parquet); ``notes``
    (table name → text) are written under their sheet."""
    def enregistrer(fonction):
        FEUILLES_LIEES.update(feuilles)
        NOTES_LIEES.update(notes or {})
        if fonction not in _TABLES_LIEES:
            _TABLES_LIEES.append(fonction)
        return fonction
    return enregistrer
#: French headers of the workbook (column → header).
ENTETES = {
    "indicateur": "Indicateur", "libelle": "Libellé", "territoire": "Territoire",
    "france": "France entière", "unite": "Unité",
    "secteur": "Secteur", "salaries_qpv": "Salariés en QPV", "part_qpv": "Part en QPV",
    "part_france": "Part en France", "ecart_points": "Écart (points)",
    "famille": "Famille", "employeurs": "Employeurs en QPV",
    "part_employeurs": "Part des employeurs", "non_employeurs": "Non employeurs",
    "creations": "Créations (12 mois)", "groupe_taille": "Taille (salariés)",
    "etablissements_employeurs": "Employeurs ESS en QPV", "region": "Code région",
    "salaries": "Salariés ESS en QPV", "part_emploi_ess_en_qpv": "Part de l'emploi ESS en QPV",
    "salaries_ess_territoire": "Salariés ESS du territoire", "code_qp": "Code QPV",
    "nom_qp": "Nom du QPV", "departement": "Département", "hors_champ_sirene":
    "Hors champ Sirene", "siret": "SIRET", "denomination": "Dénomination",
    "enseigne": "Enseigne", "naf": "NAF rév. 2", "tranche": "Tranche d'effectif",
    "employeur": "Employeur", "commune": "Commune", "adresse": "Adresse",
    "qpv": "QPV (strict)", "qpv_tampon": "QPV (tampon)", "lon": "Longitude",
    "lat": "Latitude", "secret": "Secret statistique", "tableau": "Tableau",
    "ligne": "Ligne", "colonne": "Colonne", "statut": "Statut",
    "point": "Au 1er janvier (ou millésime)", "geographie_qpv": "Géographie QPV (fixe)",
    "etablissements_qpv": "Établissements ESS en QPV", "employeurs_qpv": "dont employeurs",
    "non_employeurs_qpv": "dont non employeurs",
    "etablissements_territoire": "Établissements ESS du territoire",
    "part_localisee": "Part localisée", "etablissements_france": "Établissements ESS (France)",
    "indice_qpv_2015": "Indice QPV (2015 = 100)", "indice_france_2015": "Indice France (2015 = 100)",
    "annee": "Année", "creations_qpv": "Créations en QPV", "fermetures_qpv": "Fermetures en QPV",
    "creations_territoire": "Créations (territoire)",
    "fermetures_territoire": "Fermetures (territoire)",
    **ENTETES_TRANSITION,
}
COLONNES_PARTS = {"part_qpv", "part_france", "part_employeurs", "part_emploi_ess_en_qpv",
                  "part_localisee"}
COLONNES_POINTS = {"ecart_points"}
COLONNES_TEXTE = {"siret", "code_qp", "region", "departement", "commune", "naf", "tranche",
                  "qpv", "qpv_tampon", "point", "geographie_qpv"}
LIBELLES_CLES = {
    "etablissements_employeurs": ("Établissements employeurs ESS en QPV", "nombre"),
    "part_associations": ("Part des associations", "part"),
    "salaries": ("Salariés ESS en QPV", "nombre"),
    "part_femmes": ("Part des femmes", "part"),
    "part_cdi": ("Part des CDI", "part"),
    "part_contrats_aides": ("Part des contrats aidés", "part"),
    "part_temps_complet": ("Part des temps complets", "part"),
    "part_emploi_ess_en_qpv": ("Part de l'emploi ESS du territoire situé en QPV", "part"),
    "salaries_ess_territoire": ("Salariés ESS du territoire", "nombre"),
    "employeurs_sans_donnee_emploi": ("Employeurs en QPV sans donnée d'emploi", "nombre"),
    "employeurs_effectif_inconnu": ("Employeurs en QPV à effectif inconnu", "nombre"),
    "etablissements_en_qpv": ("Établissements ESS en QPV (employeurs ou non)", "nombre"),
    "non_employeurs_en_qpv": ("Établissements ESS sans salarié en QPV", "nombre"),
}


# --- tables ------------------------------------------------------------------------------
def _tables_transition(base, code: str, millesime: str) -> dict[str, pl.DataFrame]:
    from essqpv.outputs.transition import tables as tables_transition
    return tables_transition(base, code, millesime)


def _secret_texte(secret: dict | None) -> str | None:
    if not secret:
        return None
    return "; ".join(f"{c}:{s}" for c, s in secret.items())


def _cles(ind: dict) -> dict[str, tuple[float | None, str | None]]:
    """Key figures of one answer: key → (value, secret status)."""
    cc = ind.get("chiffres_cles") or {}
    secret = cc.get("secret") or {}
    out = {}
    for cle in LIBELLES_CLES:
        if cle in cc or cle in secret:
            out[cle] = (cc.get(cle), secret.get(cle))
        elif cle in ind:
            out[cle] = (ind.get(cle), None)
    for famille, v in (cc.get("parts_familles") or {}).items():
        out[f"part_{famille}"] = (v, secret.get(f"part_{famille}"))
    return out


def _table_cles(ind: dict, fr: dict) -> pl.DataFrame:
    a, b = _cles(ind), _cles(fr)
    lignes = []
    for cle in dict.fromkeys([*a, *b]):
        if cle == "part_association":
            continue  # the same figure as part_associations
        libelle, unite = LIBELLES_CLES.get(cle, (None, "part"))
        if libelle is None:
            famille = cle.removeprefix("part_")
            libelle = f"Part des {_libelle_famille(famille).lower()}"
        (va, sa), (vb, sb) = a.get(cle, (None, None)), b.get(cle, (None, None))
        secret = {k: v for k, v in (("territoire", sa), ("france", sb)) if v}
        lignes.append({"indicateur": cle, "libelle": libelle, "unite": unite,
                       "territoire": None if va is None else float(va),
                       "france": None if vb is None else float(vb),
                       "secret": _secret_texte(secret)})
    return pl.DataFrame(lignes, schema={"indicateur": pl.String, "libelle": pl.String,
                                        "unite": pl.String, "territoire": pl.Float64,
                                        "france": pl.Float64, "secret": pl.String})


def _libelle_famille(f: str) -> str:
    from essqpv.outputs.charts import LIBELLES_FAMILLES
    return LIBELLES_FAMILLES.get(f, f)


def _table_secteurs(ind: dict) -> pl.DataFrame:
    return pl.DataFrame(
        [{"secteur": r["secteur"], "salaries_qpv": r.get("salaries_qpv"),
          "part_qpv": r.get("part_qpv"), "part_france": r.get("part_france"),
          "ecart_points": r.get("ecart_points"), "secret": _secret_texte(r.get("secret"))}
         for r in ind.get("tableau_secteurs") or []],
        schema={"secteur": pl.String, "salaries_qpv": pl.Float64, "part_qpv": pl.Float64,
                "part_france": pl.Float64, "ecart_points": pl.Float64, "secret": pl.String})


def _table_familles(ind: dict) -> pl.DataFrame:
    fq = ind.get("familles_en_qpv") or {}
    parts = (ind.get("chiffres_cles") or {}).get("parts_familles") or {}
    creations = ((ind.get("creations_en_qpv") or {}).get("par_famille")) or {}
    return pl.DataFrame(
        [{"famille": f, "libelle": _libelle_famille(f),
          "employeurs": (fq.get("employeurs") or {}).get(f),
          "part_employeurs": parts.get(f),
          "non_employeurs": (fq.get("non_employeurs") or {}).get(f),
          "creations": creations.get(f) if "creations_en_qpv" in ind else None}
         for f in reference.FAMILLES],
        schema={"famille": pl.String, "libelle": pl.String, "employeurs": pl.Int64,
                "part_employeurs": pl.Float64, "non_employeurs": pl.Int64,
                "creations": pl.Int64})


def _table_tailles(ind: dict) -> pl.DataFrame:
    t = ind.get("taille_employeurs_en_qpv") or {}
    return pl.DataFrame([{"groupe_taille": k, "etablissements_employeurs": v}
                         for k, v in t.items() if k != "secret"],
                        schema={"groupe_taille": pl.String,
                                "etablissements_employeurs": pl.Int64})


def _table_regions(fr: dict) -> pl.DataFrame:
    return pl.DataFrame(
        [{"region": r.get("region"), "libelle": r.get("libelle"),
          "etablissements_employeurs": r.get("etablissements_employeurs"),
          "salaries": r.get("salaries"), "salaries_ess_territoire":
          r.get("salaries_ess_territoire"), "part_emploi_ess_en_qpv":
          r.get("part_emploi_ess_en_qpv"), "secret": _secret_texte(r.get("secret"))}
         for r in fr.get("regions") or []],
        schema={"region": pl.String, "libelle": pl.String,
                "etablissements_employeurs": pl.Int64, "salaries": pl.Float64,
                "salaries_ess_territoire": pl.Float64, "part_emploi_ess_en_qpv": pl.Float64,
                "secret": pl.String})


def _table_qpv(lignes: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"code_qp": r["code_qp"], "nom_qp": r.get("nom_qp"),
          "departement": r.get("departement"), "region": r.get("region"),
          "etablissements_employeurs": r.get("etablissements_employeurs"),
          "non_employeurs": r.get("non_employeurs"), "salaries": r.get("salaries"),
          "hors_champ_sirene": r.get("hors_champ_sirene"),
          "secret": _secret_texte(r.get("secret")),
          # geo2024: "non couvert par Sirene" (empty figures, never zero)
          "couverture": r.get("couverture")} for r in lignes],
        schema={"code_qp": pl.String, "nom_qp": pl.String, "departement": pl.String,
                "region": pl.String, "etablissements_employeurs": pl.Int64,
                "non_employeurs": pl.Int64, "salaries": pl.Float64,
                "hors_champ_sirene": pl.Boolean, "secret": pl.String,
                "couverture": pl.String})


def _table_secret(ind: dict, fr: dict) -> pl.DataFrame:
    lignes = []
    for origine, d in (("territoire", ind), ("france", fr) if fr is not ind else (None, None)):
        if d is None:
            continue
        for s in d.get("secret") or []:
            lignes.append({"territoire": d["territoire"]["code"], "tableau": s.get("tableau"),
                           "ligne": None if s.get("ligne") is None else str(s.get("ligne")),
                           "colonne": s.get("colonne"), "statut": s.get("statut")})
        del origine
    return pl.DataFrame(lignes, schema={"territoire": pl.String, "tableau": pl.String,
                                        "ligne": pl.String, "colonne": pl.String,
                                        "statut": pl.String})


def _etablissements(base, territoire: str, perimetre: str, millesime: str) -> pl.DataFrame:
    from essqpv.base import COLONNES_PUBLIQUES, etablissements_publics
    df = etablissements_publics(base, territoire, millesime=millesime, perimetre=perimetre)
    schema = {c: pl.String for c in COLONNES_PUBLIQUES}
    schema.update(employeur=pl.Boolean, lon=pl.Float64, lat=pl.Float64)
    return df.select([pl.col(c).cast(t) for c, t in schema.items()])


def tables(base: str | Path, territoire: str | None = None, perimetre: str = "strict",
           millesime: str | None = None) -> tuple[dict[str, pl.DataFrame], dict]:
    """The protected tables of a territory (``FR`` by default) as polars frames.

    Returns
    -------
    (tables, contexte)
        ``tables`` maps a table name (keys of :data:`FEUILLES`) to a frame whose columns
        are the JSON keys; ``contexte`` holds the indicators answers, the vintage metadata and
        the names of the export files.
    """
    from essqpv.base import metadonnees
    from essqpv.indicators import indicateurs, indicateurs_qpv

    ind = indicateurs(base, territoire or "FR", perimetre=perimetre, millesime=millesime)
    m = ind["millesime"]
    fr = ind if ind["territoire"]["niveau"] == "france" else indicateurs(
        base, "FR", perimetre=perimetre, millesime=m)
    code = ind["territoire"]["code"]
    out = {
        "chiffres_cles": _table_cles(ind, fr),
        "secteurs": _table_secteurs(ind),
        "familles": _table_familles(ind),
        "tailles": _table_tailles(ind),
        "regions": _table_regions(fr),
        "qpv": _table_qpv(indicateurs_qpv(base, perimetre=perimetre, millesime=m,
                                          territoire=code)),
        "etablissements": _etablissements(base, code, perimetre, m),
        "secret": _table_secret(ind, fr),
        **_tables_transition(base, code, m),  # what the 2024 map changes
    }
    for fonction in _TABLES_LIEES:
        out.update(fonction(base, code, ind))
    return out, {"indicateurs": ind, "france": fr, "metadonnees": metadonnees(base, m)}


# --- writers -----------------------------------------------------------------------------

def _slug(texte: str) -> str:
    t = unicodedata.normalize("NFKD", texte).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", t).strip("-")


def _prefixe(ctx: dict) -> str:
    ind = ctx["indicateurs"]
    return f"ess-qpv-{_slug(ind['territoire']['code'])}-{ind['millesime']}-{ind['perimetre']}"


def _provenance(ctx: dict) -> list[tuple[str, str]]:
    ind, meta = ctx["indicateurs"], ctx["metadonnees"]
    lignes = [
        ("Territoire", f"{ind['territoire']['libelle']} ({ind['territoire']['code']})"),
        ("Millésime", str(ind["millesime"])),
        ("Géographie des QPV", str(ind.get("geographie_qpv"))),
        ("Périmètre", str(ind.get("perimetre"))),
        ("Licence des données", LICENCE_DONNEES),
        ("Producteur", f"essqpv {__version__}, le {dt.date.today().isoformat()}"),
        ("Données synthétiques", MARQUE_SYNTHETIQUE if meta.get("synthetique") else "non"),
        ("Effectifs", "estimés au centre de la tranche Sirene" if
         (ind.get("chiffres_cles") or {}).get("estime") else "fichier des emplois"),
        ("Secret statistique", _regle_secret()),
        ("Méthodologie", "docs/methodologie.md (dépôt essqpv)"),
    ]
    for a in ind.get("avertissements") or []:
        lignes.append(("Avertissement", a))
    return lignes


def _regle_secret() -> str:
    c = confidentialite()
    return (f"{MARQUE_SECRET} = case masquée : moins de {c.nombre_minimum} établissements ou un "
            f"établissement au-delà de {round(c.dominance_maximum * 100)} % de l'effectif "
            "(primaire), ou masquage complémentaire (secondaire)")


def _fichiers_sources(ctx: dict) -> list[dict]:
    vus, out = set(), []
    for s in [*(ctx["metadonnees"].get("sources") or []),
              *(ctx["indicateurs"].get("sources") or [])]:
        if not isinstance(s, dict):
            s = {"fichier": str(s)}
        cle = (s.get("role"), s.get("fichier"))
        if cle not in vus:
            vus.add(cle)
            out.append(s)
    return out


def _ecrire_xlsx(tabs: dict[str, pl.DataFrame], ctx: dict, chemin: Path) -> None:
    import xlsxwriter

    classeur = xlsxwriter.Workbook(str(chemin), {"nan_inf_to_errors": True})
    classeur.set_properties({"title": "ESS dans les QPV", "author": f"essqpv {__version__}",
                             "comments": LICENCE_DONNEES})
    f_entete = classeur.add_format({"bold": True, "font_color": "white", "bg_color": "#1b5e7a",
                                    "text_wrap": True, "valign": "top", "border": 1})
    f_nombre = classeur.add_format({"num_format": "#,##0"})
    f_decimal = classeur.add_format({"num_format": "#,##0.0"})
    f_part = classeur.add_format({"num_format": "0.0%"})
    f_points = classeur.add_format({"num_format": "+0.0;-0.0;0.0"})
    f_secret = classeur.add_format({"italic": True, "font_color": "#666666", "align": "right"})
    f_marque = classeur.add_format({"bold": True, "font_color": "#b00020"})
    f_gras = classeur.add_format({"bold": True})
    synthetique = bool(ctx["metadonnees"].get("synthetique"))

    colonne_qpv = "qpv" if ctx["indicateurs"].get("perimetre", "strict") == "strict" \
        else "qpv_tampon"
    for nom, feuille_nom in {**FEUILLES, **FEUILLES_TRANSITION, **FEUILLES_LIEES}.items():
        if nom not in tabs:  # a linked table the base does not have
            continue
        df = tabs[nom]
        if nom == "etablissements":
            # The workbook is about the QPV: its list holds the establishments in QPV (the
            # full list of the territory is in the CSV, Parquet and GeoPackage exports).
            df = df.filter(pl.col(colonne_qpv).is_not_null())
        ws = classeur.add_worksheet(feuille_nom)
        colonnes = [c for c in df.columns if not (nom == "chiffres_cles" and c == "unite")]
        ws.write_row(0, 0, [ENTETES.get(c, c) for c in colonnes], f_entete)
        ws.freeze_panes(1, 0)
        unites = df["unite"].to_list() if nom == "chiffres_cles" else None
        secrets = df["secret"].to_list() if "secret" in df.columns else [None] * df.height
        for j, c in enumerate(colonnes):
            valeurs = df[c].to_list()
            largeur = max([len(ENTETES.get(c, c))] + [len(str(v)) for v in valeurs[:200]
                                                      if v is not None])
            ws.set_column(j, j, min(max(largeur + 2, 9), 60))
            for i, v in enumerate(valeurs):
                sec = secrets[i] or ""
                if v is None and re.search(rf"(^|; ){re.escape(c)}:", sec):
                    ws.write_string(i + 1, j, MARQUE_SECRET, f_secret)
                    continue
                if v is None:
                    continue
                if isinstance(v, bool):
                    ws.write_boolean(i + 1, j, v)
                elif isinstance(v, (int, float)) and c not in COLONNES_TEXTE:
                    if unites is not None:
                        fmt = f_part if unites[i] == "part" else f_nombre
                    elif c in COLONNES_PARTS:
                        fmt = f_part
                    elif c in COLONNES_POINTS:
                        fmt = f_points
                    elif c in ("lon", "lat"):
                        fmt = None
                    elif isinstance(v, float) and not float(v).is_integer():
                        fmt = f_decimal
                    else:
                        fmt = f_nombre
                    ws.write_number(i + 1, j, v, fmt)
                else:
                    ws.write_string(i + 1, j, str(v))
        pied = df.height + 2
        if any(secrets):
            ws.write_string(pied, 0, _regle_secret())
            pied += 1
        if nom in NOTES_LIEES:
            ws.write_string(pied, 0, NOTES_LIEES[nom])
            pied += 1
        if nom in FEUILLES_TRANSITION:
            ws.write_string(pied, 0, NOTE_TRANSITION)
            pied += 1
        if synthetique:
            ws.write_string(pied, 0, MARQUE_SYNTHETIQUE, f_marque)
        if df.width:
            ws.autofilter(0, 0, max(df.height, 1), len(colonnes) - 1)

    ws = classeur.add_worksheet("Sources")
    ws.set_column(0, 0, 26)
    ws.set_column(1, 1, 70)
    ws.set_column(2, 5, 18)
    ligne = 0
    if synthetique:
        ws.write_string(0, 0, MARQUE_SYNTHETIQUE, f_marque)
        ligne = 2
    for cle, val in _provenance(ctx):
        ws.write_string(ligne, 0, cle, f_gras)
        ws.write_string(ligne, 1, val)
        ligne += 1
    ligne += 1
    entetes = ["Rôle", "Fichier", "Taille (octets)", "Modifié le", "Empreinte SHA-256",
               "Producteur", "Licence"]
    ws.write_row(ligne, 0, entetes, f_entete)
    for s in _fichiers_sources(ctx):
        ligne += 1
        ws.write_row(ligne, 0, [str(s.get("role") or ""), str(s.get("fichier") or "")])
        if s.get("taille") is not None:
            ws.write_number(ligne, 2, s["taille"], f_nombre)
        ws.write_row(ligne, 3, [str(s.get("modifie_le") or ""),
                                str(s.get("sha256") or s.get("empreinte") or ""),
                                str(s.get("producteur") or ""),
                                str(s.get("licence") or LICENCE_DONNEES)])
    classeur.close()


def _geometries(tabs: dict, ctx: dict, base) -> tuple[list, list]:
    from essqpv.base import ouvrir
    m = ctx["indicateurs"]["millesime"]
    codes = tabs["qpv"]["code_qp"].to_list()
    geoms: dict[str, bytes] = {}
    if codes:
        con = ouvrir(base)
        try:
            for c, g in con.execute(
                    "SELECT code_qp, geometrie FROM qpv WHERE millesime = ? AND code_qp IN "
                    f"({', '.join('?' * len(codes))})", [m, *codes]).fetchall():
                if g is not None:
                    geoms[c] = bytes(g)
        finally:
            con.close()
    qpv = [geoms.get(c) for c in codes]
    return qpv, codes


def _couches(tabs: dict, ctx: dict, base, crs: int) -> dict[str, tuple[pl.DataFrame, str]]:
    from essqpv.outputs.maps import projeter
    qpv_wkb, _ = _geometries(tabs, ctx, base)
    g = shapely.from_wkb(np.array(qpv_wkb, dtype=object))
    g = np.array([None if x is None else (x if x.geom_type == "MultiPolygon" else
                                          shapely.multipolygons([x]) if x.geom_type == "Polygon"
                                          else x) for x in g], dtype=object)
    if crs != 4326 and len(g):
        g = projeter(g, crs)
    qpv = tabs["qpv"].with_columns(pl.Series("geometrie", shapely.to_wkb(g).tolist()
                                             if len(g) else [], dtype=pl.Binary))
    e = tabs["etablissements"].filter(pl.col("lon").is_not_null() & pl.col("lat").is_not_null())
    if e.height:
        x, y = e["lon"].to_numpy(), e["lat"].to_numpy()
        if crs != 4326:
            from essqpv.outputs.maps import projeter_points
            x, y = projeter_points(x, y, crs)
        pts = shapely.to_wkb(shapely.points(np.column_stack([x, y])))
    else:
        pts = np.array([], dtype=object)
    etab = e.with_columns(pl.Series("geometrie", list(pts), dtype=pl.Binary))
    if ctx["metadonnees"].get("synthetique"):  # visible in the attribute table of each layer
        qpv = qpv.with_columns(pl.lit(MARQUE_SYNTHETIQUE).alias("avertissement"))
        etab = etab.with_columns(pl.lit(MARQUE_SYNTHETIQUE).alias("avertissement"))
    return {"qpv": (qpv, "MultiPolygon"), "etablissements": (etab, "Point")}


def _arrow(df: pl.DataFrame):
    """Arrow table with classic string and binary types (GDAL does not read views)."""
    return df.to_arrow(compat_level=pl.CompatLevel.oldest())


def _metadonnees_couche(ctx: dict) -> dict[str, str]:
    return {k: v for k, v in _provenance(ctx)}


def exporter(base: str | Path, territoire: str | None = None, format: str = "xlsx",
             sortie: str | Path = Path("."), perimetre: str = "strict",
             millesime: str | None = None, crs: int = 4326) -> list[Path]:
    """Export the protected tables of a territory (``FR`` by default).

    Parameters
    ----------
    format : ``xlsx`` (one formatted sheet per table and a ``Sources`` sheet), ``csv`` and
        ``parquet`` (one file per table), ``gpkg`` (layers ``qpv`` and ``etablissements``),
        ``geojson`` (one file per layer, EPSG:4326).
    sortie : the folder to write into (created if needed).
    crs : 4326 (default) or 2154, for ``gpkg``.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ParametreInvalide
        Unknown format or CRS.
    """
    if format not in FORMATS_EXPORT:
        raise ParametreInvalide(f"Format d'export inconnu : {format} (attendu : "
                                f"{', '.join(FORMATS_EXPORT)}).")
    if int(crs) not in CRS_EXPORT:
        raise ParametreInvalide(f"Système de coordonnées non proposé : EPSG:{crs} (attendu : "
                                "4326 ou 2154).")
    if format == "geojson" and int(crs) != 4326:
        raise ParametreInvalide("Le GeoJSON s'écrit en EPSG:4326 (RFC 7946).")
    tabs, ctx = tables(base, territoire, perimetre, millesime)
    dossier = Path(sortie)
    dossier.mkdir(parents=True, exist_ok=True)
    prefixe = _prefixe(ctx)
    ecrits: list[Path] = []
    if format == "xlsx":
        chemin = dossier / f"{prefixe}.xlsx"
        _ecrire_xlsx(tabs, ctx, chemin)
        ecrits.append(chemin)
    elif format in ("csv", "parquet"):
        synthetique = bool(ctx["metadonnees"].get("synthetique"))
        for nom, df in tabs.items():
            chemin = dossier / f"{prefixe}-{nom}.{format}"
            if synthetique:  # visible in every file opened alone, on every row
                df = df.with_columns(pl.lit(MARQUE_SYNTHETIQUE).alias("avertissement"))
            if format == "csv":
                with open(chemin, "wb") as f:
                    f.write("\ufeff".encode())  # BOM: spreadsheet software reads UTF-8
                    neutraliser_frame(df).write_csv(f)  # no formula runs (csv_sur)
            else:
                meta = {"essqpv": json.dumps(dict(_provenance(ctx)), ensure_ascii=False)}
                df.write_parquet(chemin, metadata=meta)
            ecrits.append(chemin)
        chemin = dossier / f"{prefixe}-sources.{format}"
        sources = pl.DataFrame(_provenance(ctx), schema=["cle", "valeur"], orient="row")
        if format == "csv":
            with open(chemin, "wb") as f:
                f.write("\ufeff".encode())
                neutraliser_frame(sources).write_csv(f)
        else:
            sources.write_parquet(chemin)
        ecrits.append(chemin)
    else:
        from pyogrio import write_arrow
        couches = _couches(tabs, ctx, base, int(crs))
        meta = _metadonnees_couche(ctx)
        if format == "gpkg":
            chemin = dossier / f"{prefixe}.gpkg"
            chemin.unlink(missing_ok=True)
            for nom, (df, type_geom) in couches.items():
                write_arrow(_arrow(df), chemin, layer=nom, driver="GPKG",
                            geometry_name="geometrie",
                            geometry_type=type_geom, crs=f"EPSG:{crs}", append=chemin.exists(),
                            layer_metadata=meta)
            ecrits.append(chemin)
        else:
            for nom, (df, type_geom) in couches.items():
                chemin = dossier / f"{prefixe}-{nom}.geojson"
                chemin.unlink(missing_ok=True)
                write_arrow(_arrow(df), chemin, layer=nom, driver="GeoJSON",
                            geometry_name="geometrie",
                            geometry_type=type_geom, crs="EPSG:4326")
                ecrits.append(chemin)
    return ecrits
