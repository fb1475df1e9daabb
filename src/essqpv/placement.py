"""Placing points in QPV: CRS handling, strict and buffer perimeters (METHODOLOGY 5).

The only geometry module of essqpv. Points are never turned into shapely objects for the
strict test: they are sorted by longitude, each QPV takes the slice of points inside its
bounding box (``np.searchsorted``) and tests them with ``shapely.intersects_xy`` on the
prepared polygon (for a polygon, *intersects* a point = *covers* it: the boundary counts as
inside). The buffer uses the same prefilter with boxes widened by the distance, then exact
distances in the metric CRS of the QPV's territory, for the few candidate pairs only.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import polars as pl
import pyproj
import shapely

from essqpv.config import Reglages
from essqpv.sources.qpv import CoucheQPV

__all__ = ["vers_wgs84", "IndexQPV", "localiser_etablissements", "ordre_par_longitude",
           "DISTANCE_MAX_M",
           "MOTIFS_NON_LOCALISE"]

#: Distance search limit of ``distance_qpv_m``: beyond it (or beyond the buffer, if larger)
#: the distance is null. Exact distances cost one GEOS call per candidate pair, whose number
#: grows with the square of the radius: 500 m keeps 3 M establishments within seconds.
DISTANCE_MAX_M = 500

#: Reasons why an establishment is not placed (METHODOLOGY 5), in the order they are tested.
MOTIFS_NON_LOCALISE = ("sans_coordonnees", "non_diffusible", "qualite_xy_33",
                       "coordonnees_invalides", "hors_zone_crs")

_M_PAR_DEGRE_LAT = 110_574.0
_M_PAR_DEGRE_LON_EQUATEUR = 111_320.0


# --------------------------------------------------------------------------- CRS

@lru_cache(maxsize=64)
def _crs_info(epsg: int):
    """(transformer to WGS84, widened area of use) of an EPSG code, or None if unknown."""
    try:
        crs = pyproj.CRS.from_epsg(int(epsg))
    except (pyproj.exceptions.CRSError, ValueError, OverflowError):
        return None
    zone = crs.area_of_use
    e = Reglages().elargissement_crs_deg
    if zone is None:
        boite = (-180.0, -90.0, 180.0, 90.0)
    else:
        boite = (max(zone.west - e, -180.0), max(zone.south - e, -90.0),
                 min(zone.east + e, 180.0), min(zone.north + e, 90.0))
    tr = None if int(epsg) == 4326 else pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
    return tr, boite


def crs_connu(epsg: int) -> bool:
    """True when pyproj knows this EPSG code."""
    return _crs_info(int(epsg)) is not None


def vers_wgs84(x, y, epsg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert coordinates to WGS84 longitude/latitude, one CRS per row.

    Parameters
    ----------
    x, y : array-like of float
        Coordinates in their CRS (easting/longitude first).
    epsg : int or array-like of int
        EPSG code of each row (or one for all).

    Returns
    -------
    lon, lat : numpy.ndarray of float
        NaN where the input is not finite or the CRS is unknown.
    dans_zone : numpy.ndarray of bool
        False when the point falls outside the CRS area of use widened by
        ``Reglages.elargissement_crs_deg`` on every side (``hors_zone_crs``), or could not be
        converted.

    Examples
    --------
    >>> lon, lat, ok = vers_wgs84([652_000.0], [6_862_000.0], 2154)
    >>> bool(ok[0]), round(float(lon[0]), 2), round(float(lat[0]), 2)
    (True, 2.35, 48.86)
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    epsg = np.broadcast_to(np.asarray(epsg, dtype=np.int64), x.shape)
    lon = np.full(x.shape, np.nan)
    lat = np.full(x.shape, np.nan)
    dans_zone = np.zeros(x.shape, dtype=bool)
    fini = np.isfinite(x) & np.isfinite(y)
    for code in np.unique(epsg[fini]):
        m = fini & (epsg == code)
        info = _crs_info(int(code))
        if info is None:
            continue
        tr, (w, s, e, n) = info
        if tr is None:
            lo, la = x[m], y[m]
        else:
            with np.errstate(all="ignore"):
                lo, la = tr.transform(x[m], y[m], errcheck=False)
            lo, la = np.asarray(lo, dtype=float), np.asarray(la, dtype=float)
        ok = np.isfinite(lo) & np.isfinite(la)
        lon[m] = np.where(ok, lo, np.nan)
        lat[m] = np.where(ok, la, np.nan)
        dans_zone[m] = ok & (lo >= w) & (lo <= e) & (la >= s) & (la <= n)
    return lon, lat, dans_zone


# --------------------------------------------------------------------------- index

def ordre_par_longitude(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Indices of the finite points, sorted by longitude (shared by strict and buffer)."""
    fini = np.flatnonzero(np.isfinite(lon) & np.isfinite(lat))
    return fini[np.argsort(lon[fini])]


class IndexQPV:
    """Spatial index of a QPV layer, built once, queried many times.

    Parameters
    ----------
    couche : CoucheQPV
        The QPV (valid polygons in EPSG:4326).

    Attributes
    ----------
    couche : CoucheQPV
    multiples : int
        Points of the last ``strict`` call that lay in (or on the boundary of) two QPV or
        more — typically on the shared edge of two adjacent quartiers. They went to the
        smallest QPV by metric area, then the smallest code.
    """

    def __init__(self, couche: CoucheQPV):
        self.couche = couche
        self.codes = np.asarray(couche.codes, dtype=object)
        self._geoms = np.array(couche.geometries, dtype=object)
        shapely.prepare(self._geoms)
        self._boites = shapely.bounds(self._geoms)
        self._metriques = np.array(couche.geometries_metriques(), dtype=object)
        self._epsg = np.asarray(couche.epsg_metriques, dtype=np.int64)
        self._groupes = np.unique(self._epsg)
        self._boites_metriques = shapely.bounds(self._metriques)
        surfaces = shapely.area(self._metriques)
        # priority of a QPV when a point is in (or at the same distance of) several:
        # smallest metric area first, then smallest code
        ordre = sorted(range(len(self.codes)), key=lambda i: (surfaces[i], self.codes[i]))
        self._rang = np.empty(len(ordre), dtype=np.int64)
        self._rang[ordre] = np.arange(len(ordre))
        self._ordre_inverse = np.array(ordre[::-1], dtype=np.int64)
        self._arbres: dict[int, tuple[shapely.STRtree, np.ndarray]] = {}
        self.multiples = 0

    def __len__(self) -> int:
        return len(self.codes)

    # -- strict ---------------------------------------------------------------
    def strict_indices(self, lon, lat, ordre: np.ndarray | None = None) -> np.ndarray:
        """Index of the QPV covering each point (-1 for none); see :meth:`strict`.

        ``ordre`` (from :func:`ordre_par_longitude`) saves a sort when given.
        """
        lon = np.asarray(lon, dtype=float).ravel()
        lat = np.asarray(lat, dtype=float).ravel()
        resultat = np.full(lon.shape, -1, dtype=np.int64)
        self.multiples = 0
        if ordre is None:
            ordre = ordre_par_longitude(lon, lat)
        if len(ordre) == 0:
            return resultat
        xs, ys = lon[ordre], lat[ordre]
        b = self._boites
        debut = np.searchsorted(xs, b[:, 0], side="left")
        fin = np.searchsorted(xs, b[:, 2], side="right")
        trouve = np.full(len(xs), -1, dtype=np.int64)
        touches = np.zeros(len(xs), dtype=np.int8)
        # worst priority first, so that the best QPV of a point is written last
        for j in self._ordre_inverse:
            d, f = debut[j], fin[j]
            if f <= d:
                continue
            yy = ys[d:f]
            c = np.flatnonzero((yy >= b[j, 1]) & (yy <= b[j, 3]))
            if len(c) == 0:
                continue
            c += d
            c = c[shapely.intersects_xy(self._geoms[j], xs[c], ys[c])]
            trouve[c] = j
            touches[c] += 1
        self.multiples = int(np.count_nonzero(touches > 1))
        resultat[ordre] = trouve
        return resultat

    def strict(self, lon, lat) -> np.ndarray:
        """QPV code of each point in the strict perimeter, or None.

        A point on a QPV boundary is inside (*covers*). A point in several QPV goes to the
        smallest by metric area, then the smallest code; ``multiples`` counts them.

        Parameters
        ----------
        lon, lat : array-like of float
            WGS84 coordinates (NaN = no point).

        Returns
        -------
        numpy.ndarray of object
        """
        return self._codes(self.strict_indices(lon, lat))

    def serie_codes(self, nom: str, idx: np.ndarray) -> pl.Series:
        """A polars String series of the codes of QPV indices (-1 → null)."""
        if "_serie" not in self.__dict__:
            self._serie = pl.Series(self.codes.tolist(), dtype=pl.String)
        idx = np.asarray(idx, dtype=np.int64)
        valeurs = self._serie.gather(np.where(idx >= 0, idx, 0))
        return valeurs.zip_with(pl.Series(idx >= 0), pl.Series([None], dtype=pl.String)
                                ).alias(nom)

    def _codes(self, idx: np.ndarray) -> np.ndarray:
        sortie = np.full(idx.shape, None, dtype=object)
        m = idx >= 0
        sortie[m] = self.codes[idx[m]]
        return sortie

    # -- buffer ---------------------------------------------------------------
    def proches_indices(self, lon, lat, metres: float, strict_idx: np.ndarray | None = None,
                        ordre: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Nearest QPV within ``metres`` of each point: (index or -1, distance in m or NaN).

        Distances are measured in the metric CRS of the QPV's territory; a point inside
        (strict) is at distance 0 of its strict QPV.
        """
        lon = np.asarray(lon, dtype=float).ravel()
        lat = np.asarray(lat, dtype=float).ravel()
        if ordre is None:
            ordre = ordre_par_longitude(lon, lat)
        if strict_idx is None:
            strict_idx = self.strict_indices(lon, lat, ordre)
        idx = strict_idx.copy()
        dist = np.where(idx >= 0, 0.0, np.nan)
        ordre = ordre[idx[ordre] < 0]  # still sorted by longitude
        if len(ordre) == 0 or metres < 0:
            return idx, dist
        xs, ys = lon[ordre], lat[ordre]
        # boxes widened by `metres` in degrees, on the safe side (x 1.02 + 1e-6°)
        b = self._boites
        dlat = metres / _M_PAR_DEGRE_LAT * 1.02 + 1e-6
        lat_max = np.minimum(np.maximum(np.abs(b[:, 1]), np.abs(b[:, 3])) + dlat, 89.0)
        dlon = metres / (_M_PAR_DEGRE_LON_EQUATEUR * np.cos(np.radians(lat_max))) * 1.02 + 1e-6
        debut = np.searchsorted(xs, b[:, 0] - dlon, side="left")
        fin = np.searchsorted(xs, b[:, 2] + dlon, side="right")
        points, qpv = [], []
        for j in np.flatnonzero(fin > debut):
            yy = ys[debut[j]:fin[j]]
            c = np.flatnonzero((yy >= b[j, 1] - dlat) & (yy <= b[j, 3] + dlat))
            if len(c):
                points.append(c + debut[j])
                qpv.append(np.full(len(c), j, dtype=np.int64))
        if not points:
            return idx, dist
        p = np.concatenate(points)
        q = np.concatenate(qpv)
        # metric coordinates of the candidate points, in the CRS of each candidate QPV
        mx = np.empty(len(p))
        my = np.empty(len(p))
        for epsg in np.unique(self._epsg[q]):
            m = self._epsg[q] == epsg if len(self._groupes) > 1 else slice(None)
            uniques, inverse = np.unique(p[m], return_inverse=True)
            x, y = _vers_metrique(int(epsg), xs[uniques], ys[uniques])
            mx[m], my[m] = x[inverse], y[inverse]
        # cheap bounds from the metric bounding box before any exact distance: the polygon
        # lies in its box (lower bound) and touches each side of it (upper bound)
        bm = self._boites_metriques[q]
        dx0, dx1 = mx - bm[:, 0], mx - bm[:, 2]
        dy0, dy1 = my - bm[:, 1], my - bm[:, 3]
        bas = np.hypot(np.maximum(np.maximum(-dx0, dx1), 0), np.maximum(np.maximum(-dy0, dy1), 0))
        c00, c10 = np.hypot(dx0, dy0), np.hypot(dx1, dy0)
        c01, c11 = np.hypot(dx0, dy1), np.hypot(dx1, dy1)
        haut = np.minimum(np.minimum(np.maximum(c00, c10), np.maximum(c01, c11)),
                          np.minimum(np.maximum(c00, c01), np.maximum(c10, c11)))
        meilleur_haut = np.full(len(xs), np.inf)
        np.minimum.at(meilleur_haut, p, haut)
        garde = (bas <= metres) & (bas <= meilleur_haut[p] + 1e-6)
        p, q, mx, my = p[garde], q[garde], mx[garde], my[garde]
        d = shapely.distance(self._metriques[q], shapely.points(mx, my))
        garde = d <= metres
        p, q, d = p[garde], q[garde], d[garde]
        if len(p) == 0:
            return idx, dist
        tri = np.lexsort((self._rang[q], d, p))  # by point, then distance, then priority
        p, q, d = p[tri], q[tri], d[tri]
        premier = np.ones(len(p), dtype=bool)
        premier[1:] = p[1:] != p[:-1]
        cible = ordre[p[premier]]
        idx[cible] = q[premier]
        dist[cible] = d[premier]
        return idx, dist

    def tampon(self, lon, lat, metres: float) -> tuple[np.ndarray, np.ndarray]:
        """Nearest QPV within ``metres`` of each point (buffer perimeter).

        Parameters
        ----------
        lon, lat : array-like of float
            WGS84 coordinates.
        metres : float
            Buffer distance, measured in the metric CRS of the QPV's territory
            (EPSG:2154 in metropolitan France, 5490, 2972, 2975, 4471, 3297 overseas).

        Returns
        -------
        codes : numpy.ndarray of object
            Code of the nearest QPV within ``metres`` (ties: smallest area, then code), or None.
        distances_m : numpy.ndarray of float
            Distance to that QPV (0 inside), NaN when none is within ``metres``.
        """
        idx, dist = self.proches_indices(lon, lat, metres)
        return self._codes(idx), dist

    def plus_proche(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Nearest QPV of each point, however far, and the distance in metres.

        A point is measured in the metric CRS of the territory whose QPV are nearest in
        degrees (bounding boxes); for bulk work prefer :meth:`tampon`, which is faster.
        """
        lon = np.asarray(lon, dtype=float).ravel()
        lat = np.asarray(lat, dtype=float).ravel()
        idx = self.strict_indices(lon, lat)
        dist = np.where(idx >= 0, 0.0, np.nan)
        libres = np.flatnonzero((idx < 0) & np.isfinite(lon) & np.isfinite(lat))
        if len(libres) == 0:
            return self._codes(idx), dist
        groupes = np.unique(self._epsg)
        ecarts = np.empty((len(libres), len(groupes)))
        for k, epsg in enumerate(groupes):
            b = self._boites[self._epsg == epsg]
            w, s, e, n = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
            dx = np.maximum(np.maximum(w - lon[libres], lon[libres] - e), 0)
            dy = np.maximum(np.maximum(s - lat[libres], lat[libres] - n), 0)
            ecarts[:, k] = np.hypot(dx, dy)
        choix = np.argmin(ecarts, axis=1)
        for k, epsg in enumerate(groupes):
            sel = libres[choix == k]
            if len(sel) == 0:
                continue
            arbre, membres = self._arbre(int(epsg))
            x, y = _vers_metrique(int(epsg), lon[sel], lat[sel])
            (ip, iq), dd = arbre.query_nearest(shapely.points(x, y), return_distance=True,
                                                all_matches=True)
            q = membres[iq]
            tri = np.lexsort((self._rang[q], dd, ip))
            ip, q, dd = ip[tri], q[tri], dd[tri]
            premier = np.ones(len(ip), dtype=bool)
            premier[1:] = ip[1:] != ip[:-1]
            idx[sel[ip[premier]]] = q[premier]
            dist[sel[ip[premier]]] = dd[premier]
        return self._codes(idx), dist

    def _arbre(self, epsg: int):
        if epsg not in self._arbres:
            membres = np.flatnonzero(self._epsg == epsg)
            self._arbres[epsg] = (shapely.STRtree(self._metriques[membres]), membres)
        return self._arbres[epsg]


@lru_cache(maxsize=16)
def _transformateur_metrique(epsg: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(4326, epsg, always_xy=True)


def _vers_metrique(epsg: int, lon: np.ndarray, lat: np.ndarray):
    x, y = _transformateur_metrique(epsg).transform(lon, lat)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


# --------------------------------------------------------------------------- establishments

_ENTREES = ("siret", "departement", "geo_present", "geo_x", "geo_y", "geo_epsg", "geo_qualite",
            "etalab_lon", "etalab_lat", "lambert_x", "lambert_y")

# state of a coordinate value read from text
_OK, _VIDE, _ND, _INVALIDE = 0, 1, 2, 3
_SANS, _NONDIFF, _Q33, _INVAL, _HORS = range(1, 6)  # indices in MOTIFS_NON_LOCALISE + 1
_SOURCES = {1: "geolocalisation", 2: "etalab", 3: "stock"}


def _colonne(df: pl.DataFrame, nom: str, lignes: np.ndarray) -> pl.Series:
    if nom not in df.columns:
        return pl.Series(nom, [None] * len(lignes), dtype=pl.String)
    return df[nom].cast(pl.String).gather(lignes)


def _nombres(s: pl.Series, entier: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Text → (float values, state): fast cast first, careful re-read of the failures only."""
    v = s.cast(pl.Float64, strict=False).to_numpy().astype(float)
    etat = np.zeros(len(s), dtype=np.int8)
    nul = s.is_null().to_numpy()
    etat[nul] = _VIDE
    revoir = np.flatnonzero(~nul & ~np.isfinite(v))
    if len(revoir):
        t = s.gather(revoir).str.strip_chars()
        if entier:
            t = t.str.replace(r"(?i)^epsg:", "")
        w = t.str.replace(",", ".", literal=True).cast(pl.Float64, strict=False).to_numpy()
        w = w.astype(float)
        e = np.where(np.isfinite(w), _OK, _INVALIDE).astype(np.int8)
        e[(t == "").to_numpy()] = _VIDE
        e[(t.str.to_uppercase() == "[ND]").to_numpy()] = _ND
        v[revoir] = np.where(e == _OK, w, np.nan)
        etat[revoir] = e
    if entier:
        entiers = np.isfinite(v) & (v == np.round(v))
        etat[(etat == _OK) & ~entiers] = _INVALIDE
    return v, etat


@lru_cache(maxsize=1)
def _crs_lambert() -> tuple[dict[str, int | None], int]:
    from essqpv import reference
    t = reference.crs_departements()
    table = {d: (int(e) if e else None) for d, e in zip(t["departement"], t["epsg_lambert_sirene"])}
    return {d: e for d, e in table.items() if d != "*"}, int(table["*"])


def localiser_etablissements(df: pl.DataFrame, index: IndexQPV | None, tampon_m: int = 300,
                             distance_max_m: int = DISTANCE_MAX_M) -> pl.DataFrame:
    """Place establishments: choose their coordinates, convert them, find their QPV.

    Parameters
    ----------
    df : polars.DataFrame
        Columns ``siret, departement, geo_present`` (Boolean: the geolocation file has a row
        for this siret), ``geo_x, geo_y, geo_epsg, geo_qualite, etalab_lon, etalab_lat,
        lambert_x, lambert_y`` (text, any may be null; a missing column counts as null).
    index : IndexQPV or None
        None: the coordinates only (``qpv``, ``qpv_tampon`` and ``distance_qpv_m`` null),
        for a caller that places the points in its own contours.
    tampon_m : int
        Buffer perimeter in metres.
    distance_max_m : int
        Search limit of ``distance_qpv_m`` (null beyond; at least ``tampon_m``).

    Returns
    -------
    polars.DataFrame
        The input plus ``lon, lat`` (WGS84, null when not placed), ``source_coordonnees``
        (``geolocalisation``/``etalab``/``stock``, null when not placed), ``localise``,
        ``motif_non_localise``, ``qpv``, ``qpv_tampon``, ``distance_qpv_m``.

    Notes
    -----
    METHODOLOGY 5. When ``geo_present`` the geolocation row decides, without fall-back:
    ``[ND]`` → ``non_diffusible``; no x/y → ``sans_coordonnees``; ``qualite_xy`` 33 →
    ``qualite_xy_33``; x, y or epsg not a number or an unknown EPSG → ``coordonnees_invalides``;
    outside the widened CRS area of use → ``hors_zone_crs``. Otherwise Etalab's WGS84
    longitude/latitude, otherwise the stock's Lambert coordinates in the CRS of the
    département (``reference/crs_departements.csv``), with the same reasons.
    """
    n = df.height
    tous = np.arange(n)

    def present(nom: str) -> np.ndarray:
        if nom not in df.columns:
            return np.zeros(n, dtype=bool)
        c = df[nom].cast(pl.String)
        return (c.is_not_null() & (c.str.len_bytes() > 0)).to_numpy()

    geo = (df["geo_present"].cast(pl.Boolean).fill_null(False).to_numpy()
           if "geo_present" in df.columns else np.zeros(n, dtype=bool))
    source = np.zeros(n, dtype=np.int8)
    source[geo] = 1
    source[(source == 0) & (present("etalab_lon") | present("etalab_lat"))] = 2
    source[(source == 0) & (present("lambert_x") | present("lambert_y"))] = 3

    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    epsg = np.zeros(n, dtype=np.int64)
    motif = np.zeros(n, dtype=np.int8)
    motif[source == 0] = _SANS
    lambert, defaut = _crs_lambert()
    for k, (cx, cy) in {1: ("geo_x", "geo_y"), 2: ("etalab_lon", "etalab_lat"),
                        3: ("lambert_x", "lambert_y")}.items():
        lignes = tous[source == k]
        if len(lignes) == 0:
            continue
        vx, ex = _nombres(_colonne(df, cx, lignes))
        vy, ey = _nombres(_colonne(df, cy, lignes))
        if k == 1:
            ve, ee = _nombres(_colonne(df, "geo_epsg", lignes), entier=True)
            q33 = (_colonne(df, "geo_qualite", lignes).str.strip_chars() == "33"
                   ).fill_null(False).to_numpy()
        elif k == 2:
            ve, ee = np.full(len(lignes), 4326.0), np.zeros(len(lignes), dtype=np.int8)
            q33 = np.zeros(len(lignes), dtype=bool)
        else:
            deps = _colonne(df, "departement", lignes).str.strip_chars()
            crs = deps.replace_strict({d: (e if e else -1) for d, e in lambert.items()},
                                      default=defaut, return_dtype=pl.Int64)
            ve = crs.fill_null(defaut).to_numpy().astype(float)
            ee = np.where(ve < 0, _INVALIDE, _OK).astype(np.int8)  # no Sirene CRS (987)
            q33 = np.zeros(len(lignes), dtype=bool)
        m = np.zeros(len(lignes), dtype=np.int8)
        regles = [((ex == _ND) | (ey == _ND) | (ee == _ND), _NONDIFF),
                  ((ex == _VIDE) | (ey == _VIDE), _SANS),
                  (q33, _Q33),
                  ((ex == _INVALIDE) | (ey == _INVALIDE) | (ee != _OK), _INVAL)]
        for condition, code in regles:
            m[(m == 0) & condition] = code
        motif[lignes] = m
        x[lignes], y[lignes] = vx, vy
        epsg[lignes] = np.where(ee == _OK, np.nan_to_num(ve), 0).astype(np.int64)

    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    a_convertir = np.flatnonzero(motif == 0)
    if len(a_convertir):
        codes = np.unique(epsg[a_convertir])
        inconnus = codes[[not crs_connu(int(c)) for c in codes]]
        lo, la, ok = vers_wgs84(x[a_convertir], y[a_convertir], epsg[a_convertir])
        mauvais = np.isin(epsg[a_convertir], inconnus)
        motif[a_convertir[mauvais]] = _INVAL
        motif[a_convertir[~ok & ~mauvais]] = _HORS
        lon[a_convertir[ok]] = lo[ok]
        lat[a_convertir[ok]] = la[ok]
    place = motif == 0
    if index is None:
        qpv = [pl.lit(None, dtype=pl.String).alias("qpv"),
               pl.lit(None, dtype=pl.String).alias("qpv_tampon"),
               pl.lit(None, dtype=pl.Float64).alias("distance_qpv_m")]
    else:
        ordre = ordre_par_longitude(lon, lat)
        strict_idx = index.strict_indices(lon, lat, ordre)
        rayon = max(int(tampon_m), int(distance_max_m))
        proche_idx, distance = index.proches_indices(lon, lat, rayon, strict_idx, ordre)
        tampon_idx = np.where(distance <= tampon_m, proche_idx, -1)
        qpv = [index.serie_codes("qpv", strict_idx),
               index.serie_codes("qpv_tampon", tampon_idx),
               pl.Series("distance_qpv_m", distance, dtype=pl.Float64).fill_nan(None)]
    source[~place] = 0
    noms_motifs = {0: None, **{i + 1: m for i, m in enumerate(MOTIFS_NON_LOCALISE)}}
    return df.with_columns(
        pl.Series("lon", lon, dtype=pl.Float64).fill_nan(None),
        pl.Series("lat", lat, dtype=pl.Float64).fill_nan(None),
        pl.Series("source_coordonnees", source).replace_strict(
            {0: None, **_SOURCES}, return_dtype=pl.String),
        pl.Series("localise", place, dtype=pl.Boolean),
        pl.Series("motif_non_localise", motif).replace_strict(noms_motifs,
                                                              return_dtype=pl.String),
        *qpv,
    )
