"""Reference implementation of the national build, written the way an analyst would.

pandas ``read_csv`` of the three official files (every column as text), merges, the
METHODOLOGY rules with ``isin``/regex, coordinates converted with geopandas ``to_crs`` and
the QPV found with ``geopandas.sjoin``. It computes what the benchmark compares: the in-scope
establishments counted by family × région × in/out QPV (strict perimeter).

It is deliberately *not* optimised (that is the point of the comparison) and does less than
``essqpv construire``: no buffer perimeter, no distances, no employment join, no DuckDB file,
no reconciliation table, no rejects file. The ratio it gives is therefore favourable to it.

Run: ``.venv/bin/python benchmarks/reference_pandas.py --donnees DIR --sortie comptes.json``
(``DIR`` holds the files written by ``essqpv.synthese.generer``, the establishments CSV
extracted from its ZIP). Prints a JSON object: the counts and the time of each stage.
"""
from __future__ import annotations

import argparse
import json
import re
import time
import unicodedata
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from essqpv import reference
from essqpv.sources.qpv import lire_qpv
from essqpv.territoires import table_communes

ETAB = "StockEtablissement_utf8.csv"
UL = "StockUniteLegale_utf8.csv"
GEO = "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.csv"


def _sans_accents(s: str) -> str:
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--donnees", type=Path, required=True)
    ap.add_argument("--sortie", type=Path)
    a = ap.parse_args()
    d = a.donnees
    etapes: dict[str, float] = {}
    t0 = time.perf_counter()

    def etape(nom: str) -> None:
        nonlocal t0
        t = time.perf_counter()
        etapes[nom] = round(t - t0, 3)
        t0 = t

    lire = {"dtype": str, "keep_default_na": False, "na_values": [""],
            "on_bad_lines": "skip", "encoding_errors": "replace"}
    etab = pd.read_csv(d / ETAB, usecols=[
        "siren", "siret", "etatAdministratifEtablissement", "codeCommuneEtablissement",
        "activitePrincipaleEtablissement", "nomenclatureActivitePrincipaleEtablissement",
        "coordonneeLambertAbscisseEtablissement", "coordonneeLambertOrdonneeEtablissement"],
        **lire)
    etape("lecture_etablissements")
    ul = pd.read_csv(d / UL, usecols=["siren", "categorieJuridiqueUniteLegale",
                                      "economieSocialeSolidaireUniteLegale",
                                      "denominationUniteLegale", "sigleUniteLegale"], **lire)
    etape("lecture_unites_legales")
    geo = pd.read_csv(d / GEO, sep=";", usecols=["siret", "x", "y", "qualite_xy", "epsg"],
                      **lire)
    etape("lecture_geolocalisation")

    # ESS family of each legal unit (METHODOLOGY 3), first matching rule wins.
    regles = reference.regles_familles().to_pandas().sort_values("ordre")
    par_cj = dict(regles.loc[regles.regle == "categorie_juridique", ["valeur", "famille"]]
                  .itertuples(index=False))
    jetons = set(regles.loc[regles.regle == "ess_et_nom", "valeur"])
    fam_nom = regles.loc[regles.regle == "ess_et_nom", "famille"].iloc[0]
    fam_ess = regles.loc[regles.regle == "ess", "famille"].iloc[0]
    val_ess = set(regles.loc[regles.regle == "ess", "valeur"])
    ul = ul.drop_duplicates("siren", keep="first")
    ul["famille"] = ul["categorieJuridiqueUniteLegale"].map(par_cj)
    est_ess = ul["economieSocialeSolidaireUniteLegale"].isin(val_ess)

    def a_nom(texte) -> bool:
        if not isinstance(texte, str):
            return False
        mots = re.split(r"[^A-Z0-9]+", _sans_accents(texte.upper()))
        return any(m in jetons for m in mots)

    a_tester = ul.famille.isna() & est_ess  # the name rule only matters there
    nom = (ul.loc[a_tester, "denominationUniteLegale"].map(a_nom)
           | ul.loc[a_tester, "sigleUniteLegale"].map(a_nom))
    ul.loc[nom[nom].index, "famille"] = fam_nom
    ul.loc[ul.famille.isna() & est_ess, "famille"] = fam_ess
    ul = ul[ul.famille.notna()][["siren", "famille"]]
    etape("familles")

    # In scope: active, ESS family, activity not excluded (METHODOLOGY 2, 3.2).
    etab = etab[etab.etatAdministratifEtablissement == "A"]
    etab = etab.merge(ul, on="siren", how="inner")
    ex = reference.exclusions_activite().to_pandas()
    naf = etab.activitePrincipaleEtablissement.fillna("")
    exclue = (etab.nomenclatureActivitePrincipaleEtablissement == "NAFRev2") & (
        naf.str[:2].isin(ex.loc[ex.niveau == "division", "code"])
        | naf.isin(ex.loc[ex.niveau == "sous_classe", "code"]))
    etab = etab[~exclue]
    communes = table_communes().to_pandas().rename(columns={"code": "codeCommuneEtablissement"})
    etab = etab.merge(communes[["codeCommuneEtablissement", "region", "departement"]],
                      on="codeCommuneEtablissement", how="left")
    etape("perimetre_communes")

    # Coordinates: the geolocation row decides when there is one; else the stock's Lambert.
    geo = geo.drop_duplicates("siret", keep="first")
    etab = etab.merge(geo, on="siret", how="left", indicator="_geo")
    a_geo = etab["_geo"] == "both"
    num = {c: pd.to_numeric(etab[c], errors="coerce") for c in
           ("x", "y", "epsg", "coordonneeLambertAbscisseEtablissement",
            "coordonneeLambertOrdonneeEtablissement")}
    code = etab.codeCommuneEtablissement.fillna("")
    dep = etab.departement.fillna(pd.Series(np.where(
        code.str[:2].isin(["97", "98"]), code.str[:3], code.str[:2]), index=etab.index))
    crs = reference.crs_departements().to_pandas()
    par_dep = dict(zip(crs.departement, crs.epsg_lambert_sirene))
    epsg_stock = pd.to_numeric(dep.map(par_dep).fillna(par_dep["*"]), errors="coerce")
    x = np.where(a_geo, num["x"], num["coordonneeLambertAbscisseEtablissement"])
    y = np.where(a_geo, num["y"], num["coordonneeLambertOrdonneeEtablissement"])
    epsg = np.where(a_geo, num["epsg"], epsg_stock)
    valide = np.isfinite(x) & np.isfinite(y) & np.isfinite(epsg) & ~(
        a_geo & (etab.qualite_xy.fillna("").str.strip() == "33"))
    etab["qpv"] = None
    qpv = lire_qpv()
    polygones = gpd.GeoDataFrame({"code_qp": qpv.codes}, geometry=list(qpv.geometries),
                                 crs=4326)
    etape("coordonnees")
    for code_epsg in np.unique(epsg[valide]):
        m = valide & (epsg == code_epsg)
        points = gpd.GeoDataFrame(index=etab.index[m], geometry=gpd.points_from_xy(
            x[m], y[m], crs=int(code_epsg))).to_crs(4326)
        joint = gpd.sjoin(points, polygones, predicate="intersects", how="inner")
        # a point on the shared edge of two QPV: the smallest one (METHODOLOGY 5)
        surfaces = polygones.to_crs(2154).area if len(joint.index.unique()) < len(joint) \
            else None
        if surfaces is not None:
            joint["_s"] = surfaces.loc[joint["index_right"]].to_numpy()
            joint = joint.sort_values(["_s", "code_qp"])
        joint = joint[~joint.index.duplicated(keep="first")]
        etab.loc[joint.index, "qpv"] = joint["code_qp"]
    etape("sjoin_qpv")

    comptes = (etab.assign(en_qpv=etab.qpv.notna()).groupby(
        ["famille", "region", "en_qpv"], dropna=False).size())
    resultat = {
        "dans_perimetre": len(etab),
        "en_qpv": int(etab.qpv.notna().sum()),
        "comptes": [[f, None if pd.isna(r) else r, bool(q), int(n)]
                    for (f, r, q), n in comptes.items()],
        "etapes_s": etapes,
    }
    texte = json.dumps(resultat, ensure_ascii=False)
    if a.sortie:
        a.sortie.write_text(texte, "utf-8")
    print(texte)


if __name__ == "__main__":
    main()
