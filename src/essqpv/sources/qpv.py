"""QPV contours: the embedded 2024 (default) and 2015 geographies, or any official file.

``lire_qpv()`` returns a :class:`CoucheQPV`: codes, names, communes, départements and valid
shapely polygons in EPSG:4326, whatever the format (shapefile, GeoJSON, GeoPackage) and the
CRS of the file. Invalid polygons are repaired with ``shapely.make_valid`` (METHODOLOGY 5:
not ``buffer(0)``, which drops a 2.4 ha part of QP084012) and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import pyproj
import shapely

from essqpv.errors import ColonneManquante, FichierIntrouvable, FichierInvalide

__all__ = ["CoucheQPV", "lire_qpv", "departement_du_code", "epsg_metrique", "GEOGRAPHIES",
           "GEOGRAPHIE_DEFAUT", "AVERTISSEMENT_2024", "verifier_geographie"]

#: The two priority geographies embedded in the package; 2024 is the legal one since
#: 1 January 2024 (décret n° 2023-1314) and the default of every command.
GEOGRAPHIES = ("2024", "2015")
GEOGRAPHIE_DEFAUT = "2024"
#: Caveat carried by every result computed on the embedded 2024 contours.
AVERTISSEMENT_2024 = ("Contours QPV 2024 intégrés : copie de la couche de l'ANCT aux coordonnées "
                      "arrondies à 4 décimales (≈ 11 m) ; un point à moins d'une dizaine de "
                      "mètres d'une limite peut être classé différemment qu'avec le fichier "
                      "officiel (essqpv telecharger --sources qpv2024).")

#: Columns of the two official schemas (lower-cased).
COLONNES_2015 = ("code_qp", "nom_qp", "commune_qp")
COLONNES_2024 = ("code_qp", "lib_qp", "insee_reg", "lib_reg", "insee_dep", "lib_dep",
                 "insee_com", "lib_com", "siren_epci")

_POLYGONAUX = (3, 6)  # shapely type ids of Polygon and MultiPolygon


@dataclass(frozen=True, eq=False)
class CoucheQPV:
    """The QPV of one geography, one row per QPV, geometries valid in EPSG:4326.

    Attributes
    ----------
    codes, noms, communes, departements : numpy.ndarray of str
        Official code (``QP093001``, ``QN07511M``), name, communes (names in the embedded
        layers, INSEE codes such as ``02571; 02691`` in an official 2024 file) and département
        (``93``, ``2A``, ``971``).
    geometries : numpy.ndarray of shapely (Multi)Polygon
        Valid polygons, EPSG:4326 (lon, lat).
    geographie : str
        ``"2015"`` or ``"2024"``.
    reparees : int
        Number of polygons that were not valid in the file and were repaired.
    fichier : str
        The file read (``"qpv2015.parquet (intégré)"`` for the embedded contours).
    hors_champ_sirene : numpy.ndarray of bool
        QPV of a territory without Sirene coverage (French Polynesia, METHODOLOGY 5).
    repares : numpy.ndarray of bool
        Per QPV: its polygon was repaired.
    epsg_metriques : numpy.ndarray of int
        Per QPV: the metric CRS of its territory (``reference/crs_departements.csv``).
    avertissement : str
        Caveat on the precision of the contours (the embedded 2024 copy is rounded to ≈ 11 m),
        empty when there is none; every output depending on the layer must show it.
    """

    codes: np.ndarray
    noms: np.ndarray
    communes: np.ndarray
    departements: np.ndarray
    geometries: np.ndarray
    geographie: str
    reparees: int
    fichier: str
    hors_champ_sirene: np.ndarray
    repares: np.ndarray
    epsg_metriques: np.ndarray
    avertissement: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.codes)

    def geometries_metriques(self) -> np.ndarray:
        """The polygons projected into the metric CRS of their territory (``epsg_metriques``)."""
        if "metriques" not in self._cache:
            sortie = np.empty(len(self), dtype=object)
            for epsg in np.unique(self.epsg_metriques):
                m = self.epsg_metriques == epsg
                sortie[m] = _projeter(self.geometries[m], 4326, int(epsg))
            self._cache["metriques"] = sortie
        return self._cache["metriques"]

    def surfaces_m2(self) -> np.ndarray:
        """Area of each QPV in m², measured in the metric CRS of its territory."""
        return shapely.area(self.geometries_metriques())

    def vers_frame(self) -> pl.DataFrame:
        """One row per QPV: code_qp, nom_qp, communes, departement, surface_m2, repare,
        hors_champ_sirene, geometrie (WKB, EPSG:4326)."""
        return pl.DataFrame({
            "code_qp": self.codes.astype(str), "nom_qp": self.noms.astype(str),
            "communes": self.communes.astype(str),
            "departement": self.departements.astype(str),
            "surface_m2": self.surfaces_m2().astype(float),
            "repare": self.repares.astype(bool),
            "hors_champ_sirene": self.hors_champ_sirene.astype(bool),
            "geometrie": shapely.to_wkb(self.geometries),
        })


def departement_du_code(code: str) -> str:
    """Département of a QPV code: ``QP093001`` → ``93``, ``QP02A001`` → ``2A``,
    ``QP971001`` → ``971``, ``QN07511M`` → ``75``.

    Examples
    --------
    >>> departement_du_code("QP02A001")
    '2A'
    """
    d = code[2:5]
    return d[1:] if d.startswith("0") else d


@lru_cache(maxsize=1)
def _table_crs() -> tuple[dict[str, int], int, frozenset[str]]:
    from essqpv import reference
    t = reference.crs_departements()
    metrique = {d: int(e) for d, e in zip(t["departement"], t["epsg_metrique"]) if d != "*"}
    defaut = int(t.filter(pl.col("departement") == "*")["epsg_metrique"][0])
    # A territory with no CRS for Sirene's Lambert coordinates is not covered by Sirene
    # (French Polynesia): its QPV are "hors champ Sirene" (METHODOLOGY 5).
    sans_sirene = frozenset(t.filter(pl.col("epsg_lambert_sirene").is_null())["departement"])
    return metrique, defaut, sans_sirene


def epsg_metrique(departement: str) -> int:
    """Metric CRS of a département's territory (EPSG:2154 for metropolitan France)."""
    metrique, defaut, _ = _table_crs()
    return metrique.get(departement, defaut)


@lru_cache(maxsize=16)
def _transformateur(source: int | str, cible: int | str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(source, cible, always_xy=True)


def _projeter(geometries: np.ndarray, source, cible) -> np.ndarray:
    tr = _transformateur(source, cible)

    def f(c: np.ndarray) -> np.ndarray:
        x, y = tr.transform(c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometries, f)


def _polygonal(g):
    """Keep only the polygonal parts of a repaired geometry."""
    if shapely.get_type_id(g) in _POLYGONAUX:
        return g
    parties = shapely.get_parts(g)
    parties = parties[np.isin(shapely.get_type_id(parties), _POLYGONAUX)]
    return shapely.union_all(parties) if len(parties) else None


def _reparer(geometries: np.ndarray) -> np.ndarray:
    """Indices of the invalid geometries, repaired in place (polygonal parts only)."""
    invalides = np.flatnonzero(~shapely.is_valid(geometries))
    for i in invalides:
        geometries[i] = _polygonal(shapely.make_valid(geometries[i]))
    return invalides


def _couche(codes, noms, communes, departements, geometries, geographie, repares,
            fichier, avertissement: str = "") -> CoucheQPV:
    _, _, sans_sirene = _table_crs()
    departements = np.asarray(departements, dtype=object)
    return CoucheQPV(
        codes=np.asarray(codes, dtype=object), noms=np.asarray(noms, dtype=object),
        communes=np.asarray(communes, dtype=object), departements=departements,
        geometries=np.asarray(geometries, dtype=object), geographie=geographie,
        reparees=int(np.sum(repares)), fichier=fichier,
        hors_champ_sirene=np.array([d in sans_sirene for d in departements], dtype=bool),
        repares=np.asarray(repares, dtype=bool),
        epsg_metriques=np.array([epsg_metrique(d) for d in departements], dtype=np.int64),
        avertissement=avertissement,
    )


def verifier_geographie(geographie: str | int | None) -> str:
    """``"2024"`` or ``"2015"`` (``None`` gives the default, 2024); anything else is refused."""
    from essqpv.errors import ParametreInvalide
    if geographie is None:
        return GEOGRAPHIE_DEFAUT
    g = str(geographie).strip()
    if g not in GEOGRAPHIES:
        raise ParametreInvalide(f"Géographie prioritaire inconnue : « {geographie} » (2024, la "
                                "géographie en vigueur, ou 2015 attendue).")
    return g


@lru_cache(maxsize=2)
def _couche_integree(geographie: str = GEOGRAPHIE_DEFAUT) -> CoucheQPV:
    from essqpv import reference
    if geographie == "2015":
        t = reference.qpv2015()
        codes = t["code_qp"].to_list()
        return _couche(codes, t["nom_qp"].to_list(), t["commune_qp"].to_list(),
                       [departement_du_code(c) for c in codes],
                       shapely.from_wkb(t["geometrie"].to_numpy()), "2015",
                       t["repare"].to_numpy(), "qpv2015.parquet (contours 2015 intégrés)")
    t = reference.qpv2024()
    # commune names, as in the 2015 copy (the INSEE codes are in reference.qpv2024())
    return _couche(t["code_qp"].to_list(), t["nom_qp"].to_list(), t["noms_communes"].to_list(),
                   t["departement"].to_list(), shapely.from_wkb(t["geometrie"].to_numpy()),
                   "2024", t["repare"].to_numpy(),
                   "qpv2024.parquet (contours 2024 intégrés, arrondis à ≈ 11 m)",
                   AVERTISSEMENT_2024)


def lire_qpv(chemin: str | Path | None = None, geographie: str | None = None) -> CoucheQPV:
    """Read QPV contours.

    Parameters
    ----------
    chemin : path, optional
        A shapefile, GeoJSON or GeoPackage of QPV in any CRS, with the 2015 schema
        (``CODE_QP, NOM_QP, COMMUNE_QP``, any case) or the 2024 one (``code_qp, lib_qp,
        insee_dep, insee_com``...). ``None`` gives the embedded contours of ``geographie``.
    geographie : ``"2024"`` or ``"2015"``, optional
        Embedded geography read when ``chemin`` is ``None``: 2024 by default (1,584 QPV,
        ANCT copy rounded to ≈ 11 m, 586 polygons made valid after the rounding), 2015 for
        history (1,514 QPV, 34 repaired). With a file, the geography is read from the file
        and must agree with ``geographie`` if both are given.

    Returns
    -------
    CoucheQPV
        One row per QPV code (rows sharing a code are merged), valid polygons in EPSG:4326.

    Raises
    ------
    FichierIntrouvable
        The file does not exist.
    FichierInvalide
        Not a vector file, no CRS, no polygon, empty geometry.
    ColonneManquante
        No QPV code column.
    """
    if chemin is None:
        return _couche_integree(verifier_geographie(geographie))
    import pyogrio
    from pyogrio.errors import DataSourceError

    geographie_demandee = None if geographie is None else verifier_geographie(geographie)
    chemin = Path(chemin)
    nom = chemin.name
    if not chemin.exists():
        raise FichierIntrouvable(f"Fichier introuvable : {chemin} (contours des QPV).")
    try:
        meta, table = pyogrio.read_arrow(chemin)
    except (DataSourceError, Exception) as exc:  # GDAL errors have several classes
        premiere = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FichierInvalide(f"{nom} n'est pas un fichier vectoriel lisible (shapefile, GeoJSON "
                              f"ou GeoPackage attendu) : {premiere}") from None
    if meta.get("crs") is None:
        raise FichierInvalide(f"{nom} n'a pas de système de coordonnées (fichier .prj absent "
                              "ou CRS non défini) : impossible de placer ses polygones.")
    colonnes = {str(c).lower(): str(c) for c in meta["fields"]}
    if "code_qp" not in colonnes:
        raise ColonneManquante(f"{nom} : colonne du code QPV absente (CODE_QP ou code_qp "
                               f"attendue ; colonnes lues : {', '.join(meta['fields'])}).")
    df = pl.from_arrow(table)
    if not isinstance(df, pl.DataFrame) or df.height == 0:
        raise FichierInvalide(f"{nom} ne contient aucun polygone de QPV.")

    def col(nom_min: str) -> list:
        if nom_min not in colonnes:
            return [""] * df.height
        return [("" if v is None else str(v).strip()) for v in df[colonnes[nom_min]].to_list()]

    codes = [c.upper() for c in col("code_qp")]
    if any(not c for c in codes):
        ligne = codes.index("") + 1
        raise FichierInvalide(f"{nom} : code QPV vide à l'entité n° {ligne}.")
    geographie = "2024" if ("lib_qp" in colonnes or "insee_com" in colonnes
                            or codes[0].startswith("QN")) else "2015"
    if geographie == "2024":
        noms, communes = col("lib_qp"), col("insee_com")
        deps = col("insee_dep")
        deps = [d if d else departement_du_code(c) for d, c in zip(deps, codes)]
    else:
        noms, communes = col("nom_qp"), col("commune_qp")
        deps = [departement_du_code(c) for c in codes]

    geom_col = meta.get("geometry_name") or "wkb_geometry"
    if geom_col not in df.columns:
        geom_col = df.columns[-1]
    wkb = df[geom_col].to_numpy()
    vides = [i for i, w in enumerate(wkb) if w is None]
    if vides:
        raise FichierInvalide(f"{nom} : géométrie vide pour {codes[vides[0]]} "
                              f"({len(vides)} entité(s) sans géométrie).")
    geoms = shapely.force_2d(shapely.from_wkb(wkb))
    types = shapely.get_type_id(geoms)
    if not np.isin(types, _POLYGONAUX).all():
        i = int(np.flatnonzero(~np.isin(types, _POLYGONAUX))[0])
        raise FichierInvalide(f"{nom} : {codes[i]} n'est pas un polygone "
                              f"({shapely.get_type_id(geoms[i])} au lieu de Polygon).")
    repares = np.zeros(len(geoms), dtype=bool)
    repares[_reparer(geoms)] = True

    crs = pyproj.CRS.from_user_input(meta["crs"])
    if not crs.equals(pyproj.CRS.from_epsg(4326), ignore_axis_order=True):
        geoms = _projeter(geoms, crs.to_wkt(), 4326)
        repares[_reparer(geoms)] = True  # reprojection may create tiny self-intersections
    if any(g is None or shapely.is_empty(g) for g in geoms):
        i = next(i for i, g in enumerate(geoms) if g is None or shapely.is_empty(g))
        raise FichierInvalide(f"{nom} : le polygone de {codes[i]} est vide après réparation.")

    # A file split by commune may hold one QPV in several rows: merge them.
    if len(set(codes)) != len(codes):
        groupes: dict[str, list[int]] = {}
        for i, c in enumerate(codes):
            groupes.setdefault(c, []).append(i)
        ordre = list(groupes)
        fusion = [shapely.union_all(geoms[groupes[c]]) for c in ordre]
        noms = [noms[groupes[c][0]] for c in ordre]
        communes = ["; ".join(dict.fromkeys(communes[i] for i in groupes[c] if communes[i]))
                    for c in ordre]
        deps = [deps[groupes[c][0]] for c in ordre]
        repares = np.array([repares[groupes[c]].any() for c in ordre])
        geoms = np.array(fusion, dtype=object)
        codes = ordre
    if geographie_demandee is not None and geographie_demandee != geographie:
        raise FichierInvalide(f"{nom} contient des QPV de la géographie {geographie} (codes "
                              f"{codes[0][:2]}…), pas de la géographie {geographie_demandee} "
                              "demandée.")
    return _couche(codes, noms, communes, deps, geoms, geographie, repares, str(chemin))
