"""Write small registers in the official schemas, for hand-built test cases."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyproj
import shapely

from essqpv import reference
from essqpv.sources.sirene import colonnes_officielles


def colonnes(role: str, n: int | None = None) -> list[str]:
    cols = colonnes_officielles(role)
    if role == "etablissements":
        cols = cols.filter(cols["depuis"] != "etalab")
    liste = cols["colonne"].to_list()
    if role == "geolocalisation":
        liste = [c for c in liste if c != "plg_qp"]
    return liste[:n] if n else liste


def ecrire(chemin: Path, role: str, lignes: list[dict], sep: str = ",",
           n: int | None = None, extra: list[str] | None = None) -> Path:
    cols = colonnes(role, n) + (extra or [])
    with open(chemin, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=sep, lineterminator="\n")
        w.writerow(cols)
        for ligne in lignes:
            inconnues = set(ligne) - set(cols)
            assert not inconnues, inconnues
            w.writerow([ligne.get(c, "") for c in cols])
    return chemin


def ecrire_registre(d: Path, etablissements: list[dict], unites_legales: list[dict],
                    emplois: list[str]) -> tuple[Path, Path, Path]:
    """The three files of a small register in ``d``: establishments (with the coordinates of
    the geolocation file as extra columns), legal units, and the employment file's lines."""
    etab_ = ecrire(d / "etab.csv", "etablissements", etablissements,
                   extra=["longitude", "latitude"])
    ul_ = ecrire(d / "ul.csv", "unites_legales", unites_legales)
    emp = d / "emplois.csv"
    emp.write_text("\n".join(emplois) + "\n", "utf-8")
    return etab_, ul_, emp


def etab(siret: str, commune: str, naf: str = "88.10A", etat: str = "A", tranche: str = "12",
         employeur: str = "O", nomenclature: str = "NAFRev2", **autres) -> dict:
    d = {"siren": siret[:9], "nic": siret[9:], "siret": siret,
         "etatAdministratifEtablissement": etat, "codeCommuneEtablissement": commune,
         "activitePrincipaleEtablissement": naf,
         "nomenclatureActivitePrincipaleEtablissement": nomenclature,
         "trancheEffectifsEtablissement": tranche, "caractereEmployeurEtablissement": employeur,
         "dateCreationEtablissement": "2010-01-01"}
    d.update(autres)
    return d


def ul(siren: str, cj: str, ess: str = "", nom: str = "STRUCTURE") -> dict:
    return {"siren": siren, "categorieJuridiqueUniteLegale": cj,
            "economieSocialeSolidaireUniteLegale": ess, "denominationUniteLegale": nom,
            "etatAdministratifUniteLegale": "A"}


def polygone(code: str):
    q = reference.qpv2015()
    ligne = q.filter(q["code_qp"] == code)
    return shapely.from_wkb(ligne["geometrie"][0])


def point_interieur(code: str) -> tuple[float, float]:
    p = shapely.point_on_surface(polygone(code))
    return p.x, p.y


def points_bord(code: str, metres: float, epsg: int = 2154):
    """(lon, lat) of a point ``metres`` inside and one ``metres`` outside the boundary."""
    vers = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    retour = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)
    poly = shapely.transform(polygone(code), lambda c: np.column_stack(
        vers.transform(c[:, 0], c[:, 1])))
    bord = poly.exterior if poly.geom_type == "Polygon" else max(poly.geoms, key=lambda g: g.area).exterior
    a = bord.interpolate(0.37, normalized=True)
    b = bord.interpolate(0.37 * bord.length + 1.0)
    dx, dy = b.x - a.x, b.y - a.y
    norme = (dx * dx + dy * dy) ** 0.5
    nx, ny = -dy / norme, dx / norme
    p1 = shapely.Point(a.x + nx * metres, a.y + ny * metres)
    p2 = shapely.Point(a.x - nx * metres, a.y - ny * metres)
    dedans, dehors = (p1, p2) if poly.covers(p1) else (p2, p1)
    assert poly.covers(dedans) and not poly.covers(dehors)
    return retour.transform(dedans.x, dedans.y), retour.transform(dehors.x, dehors.y), \
        (dedans.x, dedans.y), (dehors.x, dehors.y)


def verifier_reconciliation(r: dict) -> None:
    """Every line of a reconciliation adds up exactly (METHODOLOGY 8)."""
    assert r["lignes_rejetees"] == sum(r["rejets_par_motif"].values())
    # (physical lines: blank lines and continuation lines of multi-line records counted)
    assert r["lignes_lues"] == (r["lignes_rejetees"] + r["acceptees"] + r.get("lignes_vides", 0)
                                + r.get("lignes_de_continuation", 0))
    assert r["acceptees"] == r["actives"] + r["fermees"]
    assert r["actives"] == r["ess"] + r["non_ess"]
    assert r["ess"] == r["exclues_activite"] + r["dans_perimetre"]
    assert r["dans_perimetre"] == r["localisees"] + r["non_localisees"]
    assert r["non_localisees"] == sum(r["non_localisees_par_motif"].values())
    assert r["localisees"] == r["en_qpv"] + r["hors_qpv"]
    assert r["etablissements_sans_unite_legale"] <= r["non_ess"]
