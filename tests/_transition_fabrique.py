"""A small register across the 2015 → 2024 redrawing of Seine-Saint-Denis (real contours).

Points are the ``point_on_surface`` of real QPV contours: QP093038 Pleyel (Saint-Denis, a
QPV 2015 that left the map), QN09365N Calon (Saint-Denis, a new QPV 2024), QP093001 /
QN09301I (Le Bourget, in both maps), QN09366N (Drancy, new). The register is placed on the
2024 map by default (``construire``), the transition reads the 2015 contours.
"""
from __future__ import annotations

import shapely

from essqpv import reference
from tests import _fabrique as F

SAINT_DENIS, LE_BOURGET, DRANCY = "93066", "93013", "93029"


def point(code: str) -> tuple[float, float]:
    ref = reference.qpv2024() if code.startswith("QN") else reference.qpv2015()
    ligne = ref.filter(ref["code_qp"] == code)
    p = shapely.point_on_surface(shapely.from_wkb(ligne["geometrie"][0]))
    return p.x, p.y


#: (commune, QPV whose point it is or None, legal category, NAF, employees, how many)
ETABLISSEMENTS = [
    (SAINT_DENIS, "QP093038", "9220", "88.10A", 12, 1),    # sortant: one employer
    (SAINT_DENIS, "QN09365N", "9220", "85.59A", 10, 4),    # entrant
    (SAINT_DENIS, "QN09365N", "5458", "47.11A", 30, 1),    # entrant, one cooperative
    (LE_BOURGET, "QP093001", "9220", "88.10A", 8, 5),      # maintenu
    (DRANCY, "QN09366N", "9220", "93.12Z", 6, 3),          # entrant
    (SAINT_DENIS, None, "9220", "88.10A", 40, 2),          # in a QPV of neither map
    (LE_BOURGET, None, "9220", "88.10A", 15, 3),
]
#: points of each commune in a QPV of neither map (checked by the tests)
HORS_QPV = {SAINT_DENIS: (2.3490, 48.9262), LE_BOURGET: (2.4200, 48.9300),
            DRANCY: (2.4350, 48.9180)}


def registre(d):
    """Write the stock, legal units and employment files; returns their paths."""
    e, u, emplois = [], [], ["siret,effectif,femmes,cdi,contrats_aides,temps_complet"]
    n = 0
    for commune, qpv, cj, naf, effectif, combien in ETABLISSEMENTS:
        for _ in range(combien):
            n += 1
            siret = f"{n:09d}00011"
            ligne = F.etab(siret, commune, naf=naf, tranche="11" if effectif < 20 else "12")
            lon, lat = point(qpv) if qpv else HORS_QPV[commune]
            ligne["longitude"], ligne["latitude"] = f"{lon:.7f}", f"{lat:.7f}"
            e.append(ligne)
            u.append(F.ul(siret[:9], cj))
            emplois.append(f"{siret},{effectif},{effectif // 2},{effectif // 2},0,{effectif // 2}")
    # a non-employer association that left the map
    n += 1
    siret = f"{n:09d}00011"
    ligne = F.etab(siret, SAINT_DENIS, naf="94.99Z", tranche="NN", employeur="N")
    lon, lat = point("QP093038")
    ligne["longitude"], ligne["latitude"] = f"{lon:.7f}", f"{lat:.7f}"
    e.append(ligne)
    u.append(F.ul(siret[:9], "9220"))
    return F.ecrire_registre(d, e, u, emplois)


def construire(d, forcer: bool = True):
    from essqpv import base as B
    etab, ul, emp = registre(d)
    b = d / "obs.duckdb"
    B.construire(etablissements=etab, unites_legales=ul, emplois=emp, millesime="2024-01",
                 base=b, forcer=forcer)
    return b


def bases(tmp_path_factory):
    """(the base as an older version built it, without its publication; the base as the
    build writes it, with its protected publication), built once per session (used by the
    test modules of the transition)."""
    import shutil

    import duckdb

    from essqpv.indicators.publication import TABLES_PUBLICATION
    d = tmp_path_factory.getbasetemp() / "transition-2015-2024"
    brute, publiee = d / "brute.duckdb", d / "obs.duckdb"
    if not brute.exists():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        construire(d)
        travail = d / "brute.tmp.duckdb"
        shutil.copyfile(publiee, travail)
        con = duckdb.connect(str(travail))
        try:
            for table in TABLES_PUBLICATION:
                con.execute(f"DROP TABLE {table}")
        finally:
            con.close()
        travail.rename(brute)
    return brute, publiee
