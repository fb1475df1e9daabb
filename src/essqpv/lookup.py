""""Is this point / SIRET / file in a QPV?" — the lookup functions of the CLI and the web API.

They return plain data (polars frames, dicts) and raise :mod:`essqpv.errors` for bad
parameters; a row of a file that cannot be placed is kept with its ``statut``:

``localise``               placed (in a QPV or not: see ``dans_qpv``)
``sans_coordonnees``       empty coordinate
``coordonnees_invalides``  text that is not a number, latitude out of range, unknown EPSG
``hors_zone``              outside every territory with QPV (area of use of its metric CRS
                           widened by 0.5°), e.g. a point in the middle of the ocean
``siret_invalide``         not 14 digits; ``sans_siret`` empty
``siret_absent``           the SIRET is not in the base (not an in-scope ESS establishment)
``non_diffusible``, ``qualite_xy_33``, ``hors_zone_crs`` : the base could not place it
(METHODOLOGY 5).
"""
from __future__ import annotations

import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from essqpv.config import LICENCE_DONNEES, MARQUE_SYNTHETIQUE
from essqpv.errors import ColonneManquante, FichierIntrouvable, FichierInvalide, ParametreInvalide
from essqpv.placement import (
    _ND,
    _OK,
    _VIDE,
    DISTANCE_MAX_M,
    IndexQPV,
    _nombres,
    crs_connu,
    ordre_par_longitude,
    vers_wgs84,
)
from essqpv.sources.qpv import GEOGRAPHIES, CoucheQPV, lire_qpv

__all__ = ["localiser_points", "localiser_xy", "localiser_siret", "localiser_fichier",
           "index_qpv", "provenance", "colonnes_resultat", "STATUTS"]

STATUTS = ("localise", "sans_coordonnees", "coordonnees_invalides", "hors_zone", "sans_siret",
           "siret_invalide", "siret_absent", "non_diffusible", "qualite_xy_33", "hors_zone_crs",
           # addresses (essqpv.geocodage.localisation)
           "a_verifier", "adresse_vide", "adresse_introuvable", "departement_non_installe")

NOMS_COLONNES = {
    "siret": ("siret",),
    "lon": ("longitude", "lon", "lng", "long", "x_longitude"),
    "lat": ("latitude", "lat", "y_latitude"),
    "x": ("x", "coord_x", "coordonnee_x"),
    "y": ("y", "coord_y", "coordonnee_y"),
    "epsg": ("epsg", "srid", "crs"),
    # addresses: one column, or its parts
    "adresse": ("adresse", "adresse_complete", "adresse_postale", "address"),
    "numero": ("numero", "numero_voie", "num", "no", "n°"),
    "voie": ("voie", "rue", "libelle_voie", "nom_voie", "adresse_voie"),
    "code_postal": ("code_postal", "codepostal", "cp", "postcode"),
    "commune": ("commune", "ville", "libelle_commune", "nom_commune", "city"),
}
#: added columns written as numbers
_NOMBRES = {"distance_qpv_m", "score_ban", "lon_ban", "lat_ban"}

_TAILLE_LOT = 25_000
#: Largest buffer perimeter accepted, in metres.
TAMPON_MAX_M = 2000
_index_par_couche: "weakref.WeakKeyDictionary[CoucheQPV, IndexQPV]" = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- layer, index

@lru_cache(maxsize=4)
def _couche_fichier(chemin: str, _mtime: float) -> CoucheQPV:
    return lire_qpv(chemin)


def index_qpv(couche: CoucheQPV | IndexQPV | str | Path | None = None) -> IndexQPV:
    """The (cached) index of a layer: ``None`` = embedded 2024 contours, ``"2024"`` /
    ``"2015"`` = an embedded geography, or a contour file."""
    if isinstance(couche, IndexQPV):
        return couche
    if couche is None or (isinstance(couche, str) and couche.strip() in GEOGRAPHIES):
        couche = lire_qpv(geographie=couche)
    elif isinstance(couche, (str, Path)):
        p = Path(couche)
        if not p.exists():
            raise FichierIntrouvable(f"Fichier introuvable : {p} (contours des QPV).")
        couche = _couche_fichier(str(p.resolve()), p.stat().st_mtime)
    if couche not in _index_par_couche:
        _index_par_couche[couche] = IndexQPV(couche)
    return _index_par_couche[couche]


def provenance(couche: CoucheQPV | IndexQPV | str | Path | None = None) -> dict:
    """Where the QPV answer comes from: geography, file, producer, licence, caveat."""
    c = index_qpv(couche).couche
    return {"geographie_qpv": c.geographie, "contours": Path(c.fichier).name
            if not c.fichier.startswith(("qpv2015.parquet", "qpv2024.parquet")) else c.fichier,
            "avertissement_contours": c.avertissement,
            "producteur": "ANCT (ex-CGET), contours officiels des QPV",
            "licence": LICENCE_DONNEES, "polygones_repares": c.reparees,
            "avertissement": "Résultat indicatif calculé sur les contours publiés : ce n'est pas "
                             "une attestation officielle d'appartenance à un QPV."}


def colonnes_resultat(tampon_m: int) -> list[str]:
    """Names of the columns the lookup adds."""
    return ["qpv_code", "qpv_nom", "qpv_communes", "dans_qpv", f"qpv_code_{tampon_m}m",
            "distance_qpv_m", "statut"]


def _verifier_tampon(tampon_m) -> int:
    try:
        t = int(tampon_m)
    except (TypeError, ValueError):
        raise ParametreInvalide(f"Périmètre invalide : {tampon_m!r} (nombre entier de mètres "
                                "attendu, par exemple 300).") from None
    if not 0 <= t <= TAMPON_MAX_M or t != float(tampon_m):
        raise ParametreInvalide(f"Périmètre invalide : {tampon_m} m (entier de 0 à "
                                f"{TAMPON_MAX_M} m attendu).")
    return t


@lru_cache(maxsize=1)
def _zones() -> np.ndarray:
    """Widened areas of use of the metric CRS of every territory with QPV or Sirene."""
    from essqpv import reference
    from essqpv.placement import _crs_info
    codes = {int(e) for e in reference.crs_departements()["epsg_metrique"]}
    return np.array([_crs_info(e)[1] for e in sorted(codes)])


def _dans_territoire(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    z = _zones()
    ok = np.zeros(lon.shape, dtype=bool)
    for w, s, e, n in z:
        ok |= (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
    return ok


# --------------------------------------------------------------------------- core

def _placer(lon: np.ndarray, lat: np.ndarray, statut: np.ndarray, index: IndexQPV,
            tampon_m: int, progression: Callable[[int, int], None] | None = None
            ) -> dict[str, Any]:
    """Columns of the answer for points already in WGS84 (``statut`` None = to place)."""
    n = len(lon)
    a_placer = np.array([s is None for s in statut], dtype=bool) if n else np.zeros(0, bool)
    a_placer &= np.isfinite(lon) & np.isfinite(lat)
    hors = a_placer & ~_dans_territoire(lon, lat)
    statut = statut.copy()
    statut[hors] = "hors_zone"
    a_placer &= ~hors
    statut[a_placer] = "localise"
    strict = np.full(n, -1, dtype=np.int64)
    proche = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, np.nan)
    lignes = np.flatnonzero(a_placer)
    for debut in range(0, max(len(lignes), 1), _TAILLE_LOT):
        lot = lignes[debut:debut + _TAILLE_LOT]
        if len(lot):
            x, y = lon[lot], lat[lot]
            o = ordre_par_longitude(x, y)
            s = index.strict_indices(x, y, o)
            p, d = index.proches_indices(x, y, max(tampon_m, DISTANCE_MAX_M), s, o)
            strict[lot], proche[lot], distance[lot] = s, p, d
        if progression is not None:
            progression(min(debut + _TAILLE_LOT, len(lignes)), len(lignes))
    tampon = np.where(distance <= tampon_m, proche, -1)
    c = index.couche
    noms = np.asarray(c.noms, dtype=object)
    communes = np.asarray(c.communes, dtype=object)

    def prendre(valeurs, idx):
        out = np.full(n, None, dtype=object)
        m = idx >= 0
        out[m] = valeurs[idx[m]]
        return out.tolist()

    dans = np.where(a_placer, strict >= 0, False)
    return {
        "qpv_code": prendre(index.codes, strict),
        "qpv_nom": prendre(noms, strict),
        "qpv_communes": prendre(communes, strict),
        "dans_qpv": [v if p else None for v, p in zip(dans.tolist(), a_placer.tolist())],
        f"qpv_code_{tampon_m}m": prendre(index.codes, tampon),
        "distance_qpv_m": [None if v != v else round(v, 1) for v in distance.tolist()],
        "statut": statut.tolist(),
    }


def _frame(debut: dict[str, Any], resultat: dict[str, Any], tampon_m: int) -> pl.DataFrame:
    schema = {"qpv_code": pl.String, "qpv_nom": pl.String, "qpv_communes": pl.String,
              "dans_qpv": pl.Boolean, f"qpv_code_{tampon_m}m": pl.String,
              "distance_qpv_m": pl.Float64, "statut": pl.String}
    df = pl.DataFrame({**debut, **resultat},
                      schema={**{k: pl.Float64 if k != "epsg" else pl.Int64 for k in debut},
                              **schema})
    return df.with_columns(pl.col(k).fill_nan(None) for k in debut if k != "epsg")


def _flottants(valeurs, nom: str) -> np.ndarray:
    if np.isscalar(valeurs) or valeurs is None:
        valeurs = [valeurs]
    sortie = []
    for v in valeurs:
        if v is None:
            sortie.append(np.nan)
            continue
        try:
            sortie.append(float(str(v).strip().replace(",", ".")) if isinstance(v, str)
                          else float(v))
        except (TypeError, ValueError):
            raise ParametreInvalide(f"Coordonnée invalide ({nom}) : {v!r} n'est pas un nombre."
                                    ) from None
    return np.asarray(sortie, dtype=float)


# --------------------------------------------------------------------------- public

def localiser_points(lon, lat, couche=None, tampon_m: int = 300) -> pl.DataFrame:
    """QPV of WGS84 points.

    Parameters
    ----------
    lon, lat : float or sequence of float
        Longitude and latitude in decimal degrees (WGS84). ``None``/NaN = no point.
    couche : CoucheQPV, IndexQPV or path, optional
        QPV contours (or ``"2015"``); the embedded 2024 geography by default.
    tampon_m : int
        Buffer perimeter in metres (0 to 2,000).

    Returns
    -------
    polars.DataFrame
        ``lon, lat, qpv_code, qpv_nom, qpv_communes, dans_qpv, qpv_code_<N>m,
        distance_qpv_m`` (null beyond 500 m or the buffer), ``statut``.

    Raises
    ------
    ParametreInvalide
        A coordinate is not a number, a latitude is outside [-90, 90] or a longitude outside
        [-180, 180], the two lists differ in length, or the perimeter is not allowed.
    """
    tampon_m = _verifier_tampon(tampon_m)
    x = _flottants(lon, "longitude")
    y = _flottants(lat, "latitude")
    if x.shape != y.shape:
        raise ParametreInvalide(f"Autant de longitudes que de latitudes attendues "
                                f"({len(x)} et {len(y)}).")
    if np.any(np.abs(y[np.isfinite(y)]) > 90):
        raise ParametreInvalide(f"Latitude hors de [-90, 90] : {y[np.abs(y) > 90][0]:g}.")
    if np.any(np.abs(x[np.isfinite(x)]) > 180):
        raise ParametreInvalide(f"Longitude hors de [-180, 180] : {x[np.abs(x) > 180][0]:g}.")
    statut = np.full(len(x), None, dtype=object)
    statut[~(np.isfinite(x) & np.isfinite(y))] = "sans_coordonnees"
    index = index_qpv(couche)
    return _frame({"lon": x, "lat": y}, _placer(x, y, statut, index, tampon_m), tampon_m)


def localiser_xy(x, y, epsg, couche=None, tampon_m: int = 300) -> pl.DataFrame:
    """QPV of projected points (``epsg`` for all rows or one per row).

    Returns ``x, y, epsg, lon, lat`` then the columns of :func:`localiser_points`; a point
    outside the area of use of its CRS (widened by 0.5°) gets ``statut = hors_zone``.

    Raises
    ------
    ParametreInvalide
        A coordinate is not a number or an EPSG code is unknown.
    """
    tampon_m = _verifier_tampon(tampon_m)
    xs = _flottants(x, "x")
    ys = _flottants(y, "y")
    if xs.shape != ys.shape:
        raise ParametreInvalide(f"Autant de x que de y attendus ({len(xs)} et {len(ys)}).")
    try:
        codes = np.broadcast_to(np.asarray(
            [int(str(e).strip().upper().removeprefix("EPSG:"))
             for e in (np.atleast_1d(np.asarray(epsg, dtype=object)))], dtype=np.int64),
            xs.shape).copy()
    except (TypeError, ValueError):
        raise ParametreInvalide(f"Code EPSG invalide : {epsg!r} (un entier attendu, "
                                "par exemple 2154).") from None
    for c in np.unique(codes):
        if not crs_connu(int(c)):
            raise ParametreInvalide(f"Code EPSG inconnu : {c} (par exemple 2154 en métropole, "
                                    "2975 à La Réunion).")
    lon, lat, ok = vers_wgs84(xs, ys, codes)
    statut = np.full(len(xs), None, dtype=object)
    fini = np.isfinite(xs) & np.isfinite(ys)
    statut[~fini] = "sans_coordonnees"
    statut[fini & ~ok] = "hors_zone"
    lon = np.where(ok, lon, np.nan)
    lat = np.where(ok, lat, np.nan)
    index = index_qpv(couche)
    return _frame({"x": xs, "y": ys, "epsg": codes, "lon": lon, "lat": lat},
                  _placer(lon, lat, statut, index, tampon_m), tampon_m)


def _normaliser_siret(s) -> str:
    return "".join(str(s if s is not None else "").split())


def _etat_siret(s: str) -> str | None:
    if not s:
        return "sans_siret"
    if len(s) != 14 or not s.isdigit():
        return "siret_invalide"
    return None


def _depuis_base(base_path, sirets: list[str], millesime: str | None):
    """(rows by siret, metadata, qpv names) from the base, read-only."""
    from essqpv import base as module_base
    meta = module_base.metadonnees(base_path, millesime)
    m = meta["millesime"]
    con = module_base.ouvrir(base_path)
    try:
        dispo = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'etablissements'").fetchall()}
        voulues = ["siret", "denomination", "enseigne", "famille", "adresse", "code_commune",
                   "commune", "lon", "lat", "source_coordonnees", "localise",
                   "motif_non_localise", "qpv", "qpv_tampon", "distance_qpv_m"]
        cols = [c for c in voulues if c in dispo]
        demandes = pl.DataFrame({"siret": sorted(set(sirets))}, schema={"siret": pl.String})
        con.register("demandes", demandes.to_arrow())
        lignes = con.execute(
            f"SELECT {', '.join('e.' + c for c in cols)} FROM etablissements e "
            "JOIN demandes d USING (siret) WHERE e.millesime = ?", [m]).fetchall()
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        noms = {}
        if "qpv" in tables:
            noms = {c: (n, co) for c, n, co in con.execute(
                "SELECT code_qp, nom_qp, communes FROM qpv WHERE millesime = ?", [m]
            ).fetchall()}
    finally:
        con.close()
    return {r[0]: dict(zip(cols, r)) for r in lignes}, meta, noms


def _avertissements(meta: dict) -> list[str]:
    av = [MARQUE_SYNTHETIQUE] if meta.get("synthetique") else []
    return av + [a for a in meta.get("avertissements", []) if a not in av]


def localiser_siret(base_path, siret: str, millesime: str | None = None,
                    couche=None) -> dict:
    """QPV of one establishment of the base (table ``etablissements``, read-only).

    Parameters
    ----------
    base_path : path
        The essqpv DuckDB base.
    siret : str
        14 digits (spaces are ignored).
    millesime : str, optional
        Vintage ``AAAA-MM``; the newest by default.
    couche : optional
        Other QPV contours: the establishment's coordinates from the base are then placed
        again in them (otherwise the base's own answer is returned).

    Returns
    -------
    dict
        ``siret, millesime, geographie_qpv, perimetre, trouve, statut, etablissement,
        lon, lat, source_coordonnees, qpv_code, qpv_nom, qpv_communes, dans_qpv,
        qpv_code_<N>m, distance_qpv_m, sources, avertissements``.

    Raises
    ------
    ParametreInvalide
        The SIRET is not 14 digits.
    BaseInvalide
        Missing base or vintage.
    """
    s = _normaliser_siret(siret)
    if _etat_siret(s):
        raise ParametreInvalide(f"SIRET invalide : « {siret} » (14 chiffres attendus).")
    lignes, meta, noms = _depuis_base(base_path, [s], millesime)
    return _reponses_siret([s], lignes, meta, noms, couche)[0]


def _reponses_siret(sirets: list[str], lignes: dict, meta: dict, noms: dict,
                    couche) -> list[dict]:
    recalcul = couche is not None
    if recalcul:
        index = index_qpv(couche)
        tampon = int(meta.get("tampon_m") or 300)
        geographie = index.couche.geographie
        lon = np.array([(lignes.get(s) or {}).get("lon") or np.nan for s in sirets], float)
        lat = np.array([(lignes.get(s) or {}).get("lat") or np.nan for s in sirets], float)
        statut = np.array([None if s in lignes else "x" for s in sirets], dtype=object)
        calc = _placer(lon, lat, statut, index, tampon)
    else:
        tampon = int(meta.get("tampon_m") or 300)
        geographie = meta.get("geographie_qpv")
    sources = [x for x in meta.get("sources", []) if isinstance(x, dict)]
    reponses = []
    for k, s in enumerate(sirets):
        etat = _etat_siret(s)
        ligne = lignes.get(s) if not etat else None
        r: dict[str, Any] = {"siret": s, "millesime": meta["millesime"],
                             "geographie_qpv": geographie, "perimetre": f"{tampon}m",
                             "trouve": ligne is not None}
        if ligne is None:
            r.update(statut=etat or "siret_absent", etablissement=None, lon=None, lat=None,
                     source_coordonnees=None, qpv_code=None, qpv_nom=None, qpv_communes=None,
                     dans_qpv=None, **{f"qpv_code_{tampon}m": None}, distance_qpv_m=None)
        else:
            localise = bool(ligne.get("localise")) and ligne.get("lon") is not None
            if recalcul:
                code, tamp = calc["qpv_code"][k], calc[f"qpv_code_{tampon}m"][k]
                dist = calc["distance_qpv_m"][k]
                nom, communes = calc["qpv_nom"][k], calc["qpv_communes"][k]
                statut_k = calc["statut"][k] if localise else None
            else:
                code, tamp, dist = ligne.get("qpv"), ligne.get("qpv_tampon"), \
                    ligne.get("distance_qpv_m")
                nom, communes = noms.get(code, (None, None)) if code else (None, None)
                statut_k = "localise" if localise else None
            r.update(
                statut=statut_k or ligne.get("motif_non_localise") or "sans_coordonnees",
                etablissement={c: ligne.get(c) for c in ("denomination", "enseigne", "famille",
                                                         "adresse", "commune", "code_commune")
                               if c in ligne},
                lon=ligne.get("lon"), lat=ligne.get("lat"),
                source_coordonnees=ligne.get("source_coordonnees"),
                qpv_code=code, qpv_nom=nom, qpv_communes=communes,
                dans_qpv=(code is not None) if localise else None,
                **{f"qpv_code_{tampon}m": tamp},
                distance_qpv_m=None if dist is None else round(float(dist), 1))
        r["sources"] = sources
        r["avertissements"] = _avertissements(meta)
        reponses.append(r)
    return reponses


# --------------------------------------------------------------------------- files

def _lire_csv(chemin: Path) -> tuple[pl.DataFrame, str]:
    brut = chemin.read_bytes()
    try:
        texte = brut.decode("utf-8-sig")
    except UnicodeDecodeError:
        texte = brut.decode("cp1252")
    premiere = texte.split("\n", 1)[0]
    separateur = max([";", ",", "\t", "|"], key=premiere.count)
    if not premiere.strip():
        raise FichierInvalide(f"{chemin.name} : fichier vide ou sans ligne d'en-tête.")
    try:
        df = pl.read_csv(texte.encode("utf-8"), separator=separateur, infer_schema=False,
                         truncate_ragged_lines=True, raise_if_empty=False)
    except pl.exceptions.PolarsError as exc:
        ou = _guillemet_fautif(texte, separateur)
        if ou:
            ligne, colonne = ou
            raise FichierInvalide(
                f"{chemin.name}, ligne {ligne}" + (f", colonne « {colonne} »" if colonne else "")
                + " : guillemet mal placé ou non fermé (un champ entre guillemets doit "
                "commencer et finir par un guillemet, ceux du texte étant doublés : \"\") ; "
                "corrigez la ligne ou ôtez ses guillemets.") from None
        raise FichierInvalide(f"{chemin.name} n'est pas un CSV lisible : "
                              f"{str(exc).splitlines()[0]}") from None
    return df, separateur


def _guillemet_fautif(texte: str, separateur: str) -> tuple[int, str | None] | None:
    """(physical line, column name) where a quoted field goes wrong, or None."""
    import csv
    import io
    lecteur = csv.reader(io.StringIO(texte, newline=""), delimiter=separateur, strict=True)
    entete: list[str] = []
    debut = 1
    try:
        for champs in lecteur:
            entete = entete or champs
            debut = lecteur.line_num + 1
    except csv.Error:
        lignes = texte.splitlines()
        fautive = lignes[debut - 1] if debut - 1 < len(lignes) else ""
        avant = fautive.split('"', 1)[0]
        k = avant.count(separateur)
        return debut, (entete[k] if k < len(entete) else None)
    return None


def _lire_xlsx(chemin: Path) -> tuple[pl.DataFrame, list[list]]:
    import openpyxl
    try:
        classeur = openpyxl.load_workbook(chemin, read_only=True, data_only=True)
    except Exception as exc:  # zipfile / openpyxl errors
        raise FichierInvalide(f"{chemin.name} n'est pas un classeur Excel lisible : "
                              f"{exc}") from None
    feuille = classeur.worksheets[0]
    lignes = [list(r) for r in feuille.iter_rows(values_only=True)]
    classeur.close()
    if not lignes:
        raise FichierInvalide(f"{chemin.name} : feuille vide, ligne d'en-tête attendue.")
    entete = [str(v) if v is not None else f"colonne_{i + 1}" for i, v in enumerate(lignes[0])]
    corps = [(r + [None] * len(entete))[:len(entete)] for r in lignes[1:]]

    def texte(v):
        if v is None:
            return None
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return str(v)

    df = pl.DataFrame({c: [texte(r[i]) for r in corps] for i, c in enumerate(entete)},
                      schema={c: pl.String for c in entete})
    return df, [entete] + corps


def _trouver(colonnes: list[str], cle: str, impose: dict) -> str | None:
    if impose.get(cle):
        nom = impose[cle]
        if nom not in colonnes:
            raise ColonneManquante(f"Colonne « {nom} » absente (colonnes : "
                                   f"{', '.join(colonnes)}).")
        return nom
    bas = {c.strip().lower(): c for c in colonnes}
    return next((bas[n] for n in NOMS_COLONNES[cle] if n in bas), None)


def localiser_fichier(entree, sortie=None, colonnes: dict | None = None, couche=None,
                      tampon_m: int = 300, base=None, millesime: str | None = None,
                      epsg: int | None = None,
                      progression: Callable[[int, int], None] | None = None,
                      geocodeur=None, score_min: float = 0.6) -> dict:
    """Add the QPV of every row of a CSV or XLSX file, keeping every row and column in order.

    Parameters
    ----------
    entree : path
        ``.csv`` (separator ``;``, ``,``, tab or ``|``, UTF-8 or Windows-1252) or ``.xlsx``
        (first sheet, header on the first row).
    sortie : path, optional
        ``.csv`` or ``.xlsx``; by default ``<entree>_qpv.<ext>`` next to the input.
    colonnes : dict, optional
        Column names to use, keys ``siret``, ``lon``, ``lat``, ``x``, ``y``, ``epsg``,
        ``adresse``, ``numero``, ``voie``, ``code_postal``, ``commune``.
        Without it: ``longitude``/``latitude`` (or ``lon``/``lat``), then ``x``/``y``/``epsg``,
        then ``siret`` (with a base), then ``adresse`` or ``voie`` (+ ``numero``,
        ``code_postal``, ``commune``), geocoded with the installed geocoder.
    couche : optional
        QPV contours (or ``"2015"``); the embedded 2024 geography by default.
    tampon_m : int
        Buffer perimeter in metres.
    base, millesime : optional
        The essqpv base, needed for a file of SIRET.
    epsg : int, optional
        CRS of ``x``/``y`` when the file has no ``epsg`` column.
    progression : callable, optional
        Called with (rows done, rows to place).
    geocodeur : path, optional
        Folder of the address geocoder (``essqpv geocodeur installer``) for address files.
    score_min : float
        Address mode: minimum addok score of a house number (see docs/localiser.md).

    Returns
    -------
    dict
        Summary: ``fichier, sortie, mode, colonnes, lignes, localisees, dans_qpv,
        dans_tampon, perimetre, par_statut, geographie_qpv, contours, avertissements,
        sources`` (where the sources and licences are written: ``<sortie>_sources.csv``
        beside a CSV, the ``sources`` sheet of an XLSX), ``lignes_sources`` (their rows),
        ``synthetique``.
        Columns added to the file: ``qpv_code, qpv_nom, qpv_communes, dans_qpv`` (oui/non),
        ``qpv_code_<N>m, distance_qpv_m, statut`` (and ``avertissement`` on every row when
        the base is synthetic).
    """
    tampon_m = _verifier_tampon(tampon_m)
    entree = Path(entree)
    if not entree.exists():
        raise FichierIntrouvable(f"Fichier introuvable : {entree}.")
    ext = entree.suffix.lower()
    if ext not in (".csv", ".txt", ".tsv", ".xlsx"):
        raise FichierInvalide(f"{entree.name} : format non pris en charge "
                              f"({ext or 'sans extension'}) ; CSV ou XLSX attendu.")
    sortie = Path(sortie) if sortie else entree.with_name(
        f"{entree.stem}_qpv{'.xlsx' if ext == '.xlsx' else '.csv'}")
    if sortie.suffix.lower() not in (".csv", ".xlsx"):
        raise ParametreInvalide(f"Fichier de sortie {sortie.name} : extension .csv ou .xlsx "
                                "attendue.")
    if sortie.resolve() == entree.resolve():
        raise ParametreInvalide(f"Le fichier de sortie doit être différent de l'entrée "
                                f"({entree.name}).")
    if sortie.suffix.lower() == ".csv" and fichier_sources(sortie).resolve() == entree.resolve():
        raise ParametreInvalide(f"Le fichier des sources de {sortie.name} serait l'entrée "
                                f"({entree.name}) : choisissez un autre nom de sortie.")
    separateur, valeurs_xlsx = ";", None
    if ext == ".xlsx":
        df, valeurs_xlsx = _lire_xlsx(entree)
    else:
        df, separateur = _lire_csv(entree)
    impose = colonnes or {}
    noms = list(df.columns)
    c_lon, c_lat = _trouver(noms, "lon", impose), _trouver(noms, "lat", impose)
    c_x, c_y = _trouver(noms, "x", impose), _trouver(noms, "y", impose)
    c_epsg, c_siret = _trouver(noms, "epsg", impose), _trouver(noms, "siret", impose)
    c_adresse = {k: _trouver(noms, k, impose)
                 for k in ("adresse", "numero", "voie", "code_postal", "commune")}
    par_adresse = bool(c_adresse["adresse"] or c_adresse["voie"])
    adresse_imposee = any(impose.get(k) for k in c_adresse)
    n = df.height
    statut = np.full(n, None, dtype=object)
    avertissements: list[str] = []

    def lire(col: str, libelle: str) -> np.ndarray:
        v, etat = _nombres(df[col])
        statut[(statut == None) & (etat == _VIDE)] = "sans_coordonnees"  # noqa: E711
        statut[(statut == None) & (etat == _ND)] = "non_diffusible"  # noqa: E711
        statut[(statut == None) & (etat != _OK)] = "coordonnees_invalides"  # noqa: E711
        return v

    if c_lon and c_lat and not (impose.get("siret") or impose.get("x") or adresse_imposee):
        mode, utilisees = "lonlat", {"lon": c_lon, "lat": c_lat}
        lon, lat = lire(c_lon, "longitude"), lire(c_lat, "latitude")
        faux = (statut == None) & ((np.abs(lat) > 90) | (np.abs(lon) > 180))  # noqa: E711
        statut[faux] = "coordonnees_invalides"
    elif c_x and c_y and not (impose.get("siret") or adresse_imposee):
        mode, utilisees = "xy", {"x": c_x, "y": c_y}
        x, y = lire(c_x, "x"), lire(c_y, "y")
        if c_epsg:
            utilisees["epsg"] = c_epsg
            e, etat = _nombres(df[c_epsg], entier=True)
            statut[(statut == None) & (etat != _OK)] = "coordonnees_invalides"  # noqa: E711
            codes = np.where(np.isfinite(e), e, 0).astype(np.int64)
        elif epsg is not None:
            codes = np.full(n, int(epsg), dtype=np.int64)
        else:
            raise ColonneManquante(f"{entree.name} : colonne epsg absente ; précisez le système "
                                   "de coordonnées de x/y (option --epsg, par exemple 2154).")
        connus = {int(c): crs_connu(int(c)) for c in np.unique(codes)}
        statut[(statut == None) & ~np.array([connus[int(c)] for c in codes],  # noqa: E711
                                            dtype=bool)] = "coordonnees_invalides"
        lon, lat, ok = vers_wgs84(x, y, np.where(statut == None, codes, 4326))  # noqa: E711
        statut[(statut == None) & ~ok] = "hors_zone"  # noqa: E711
    elif c_siret and not adresse_imposee and (base is not None or not par_adresse):
        if base is None:
            raise ParametreInvalide(f"{entree.name} contient des SIRET sans coordonnées : "
                                    "précisez la base essqpv (option --base).")
        mode, utilisees = "siret", {"siret": c_siret}
        sirets = [_normaliser_siret(s) for s in df[c_siret].to_list()]
        valides = [s for s in sirets if not _etat_siret(s)]
        lignes, meta, noms_qpv = _depuis_base(base, valides, millesime)
        rep = _reponses_siret(sirets, lignes, meta, noms_qpv, couche)
        tampon_m = int(meta.get("tampon_m") or 300) if couche is None else tampon_m
        avertissements = _avertissements(meta)
        resultat = {k: [r[k] for r in rep] for k in colonnes_resultat(tampon_m)}
        if progression is not None:
            progression(n, n)
        geographie = rep[0]["geographie_qpv"] if rep else meta.get("geographie_qpv")
        contours = (provenance(couche)["contours"] if couche is not None
                    else f"base {Path(base).name}, millésime {meta['millesime']}")
    elif par_adresse:
        from essqpv.geocodage.localisation import adresses_du_fichier
        mode = "adresse"
        utilisees, resultat, source_adresses = adresses_du_fichier(
            df, c_adresse, geocodeur, couche, tampon_m, score_min, progression)
        index = index_qpv(couche)
        geographie, contours = index.couche.geographie, provenance(index)["contours"]
    else:
        raise ColonneManquante(
            f"{entree.name} : aucune colonne reconnue (longitude/latitude, x/y/epsg, siret "
            f"ou adresse attendues ; colonnes lues : {', '.join(noms)}).")
    if mode not in ("siret", "adresse"):
        index = index_qpv(couche)
        resultat = _placer(lon, lat, statut, index, tampon_m, progression)
        geographie, contours = index.couche.geographie, provenance(index)["contours"]
        if index.couche.avertissement:
            avertissements = [*avertissements, index.couche.avertissement]
    synthetique = mode == "siret" and bool(meta.get("synthetique"))
    if synthetique:  # visible on every row of the file opened alone (as the exports do)
        resultat = {**resultat, "avertissement": [MARQUE_SYNTHETIQUE] * n}
    lignes_sources = sources_du_fichier(
        entree, mode, geographie, contours, avertissements, synthetique,
        source_adresses if mode == "adresse" else None,
        (base, meta) if mode == "siret" else None)
    ou_sources = _ecrire(sortie, df, valeurs_xlsx, resultat, separateur, tampon_m,
                              lignes_sources)
    statuts = resultat["statut"]
    par_statut = {s: statuts.count(s) for s in STATUTS if statuts.count(s)}
    return {
        "fichier": str(entree), "sortie": str(sortie), "mode": mode, "colonnes": utilisees,
        "lignes": n, "localisees": par_statut.get("localise", 0),
        "dans_qpv": sum(1 for v in resultat["dans_qpv"] if v),
        "dans_tampon": sum(1 for v in resultat[f"qpv_code_{tampon_m}m"] if v),
        "perimetre": f"{tampon_m}m", "par_statut": par_statut, "geographie_qpv": geographie,
        "contours": contours, "avertissements": avertissements,
        "sources": ou_sources, "lignes_sources": lignes_sources,
        "synthetique": synthetique,
        **({"a_verifier": par_statut.get("a_verifier", 0),
            "source_adresses": source_adresses} if mode == "adresse" else {}),
    }


PORTEE = ("Résultat indicatif calculé sur les contours publiés des quartiers prioritaires : "
          "ce n'est pas une attestation officielle d'appartenance à un QPV. Un point sur la "
          "limite d'un QPV compte comme dedans.")


def fichier_sources(sortie: str | Path) -> Path:
    """The sources file written beside a CSV result: ``x_qpv.csv`` → ``x_qpv_sources.csv``."""
    sortie = Path(sortie)
    return sortie.with_name(f"{sortie.stem}_sources.csv")


def sources_du_fichier(entree: Path, mode: str, geographie, contours: str,
                       avertissements: list[str], synthetique: bool,
                       source_adresses: str | None = None,
                       base_meta: tuple | None = None) -> list[tuple[str, str]]:
    """(key, value) rows saying where a file's answers come from and under which licence:
    the ``_sources.csv`` file beside a CSV result, the ``sources`` sheet of an XLSX one."""
    import datetime as dt

    from essqpv import __version__
    lignes = [("Produit par", f"essqpv {__version__}, le {dt.date.today().isoformat()}"),
              ("Fichier complété", entree.name),
              ("Contours des QPV", f"géographie prioritaire {geographie} — {contours} ; "
                                   f"producteur ANCT ; {LICENCE_DONNEES}")]
    if source_adresses:
        lignes.append(("Adresses", source_adresses.removeprefix("Adresses : ")))
    if base_meta is not None:
        base, meta = base_meta
        fichiers = [f"{s.get('fichier')} ({s.get('producteur') or '?'}, "
                    f"{s.get('licence') or LICENCE_DONNEES})"
                    for s in meta.get("sources") or []
                    if isinstance(s, dict) and s.get("role") != "qpv"]
        lignes.append(("Établissements", f"base essqpv {Path(base).name}, millésime "
                       f"{meta.get('millesime')}" + (" : " + " ; ".join(fichiers)
                                                     if fichiers else "")))
    lignes.append(("Données synthétiques", MARQUE_SYNTHETIQUE if synthetique else "non"))
    for a in avertissements:
        if a != MARQUE_SYNTHETIQUE:
            lignes.append(("Avertissement", a))
    lignes.append(("Portée", PORTEE))
    lignes.append(("Colonnes ajoutées", "voir docs/localiser.md (dépôt essqpv) : statut de "
                   "chaque ligne, QPV, distance, et pour les adresses le résultat du "
                   "géocodage"))
    return lignes


def _ecrire(sortie: Path, df: pl.DataFrame, valeurs_xlsx, resultat: dict, separateur: str,
            tampon_m: int, sources: list[tuple[str, str]]) -> str:
    """Write the result; return where its sources are (the sidecar CSV, or the sheet)."""
    ajout = dict(resultat)
    ajout["dans_qpv"] = [None if v is None else ("oui" if v else "non")
                         for v in resultat["dans_qpv"]]
    noms_ajout = list(ajout)
    originales = [c for c in df.columns if c not in ajout]
    sortie.parent.mkdir(parents=True, exist_ok=True)
    if sortie.suffix.lower() == ".csv":
        out = df.select(originales).with_columns(
            [pl.Series(k, v, dtype=pl.Float64 if k in _NOMBRES else pl.String)
             for k, v in ajout.items()])
        from essqpv.csv_sur import neutraliser_frame
        neutraliser_frame(out).write_csv(sortie, separator=separateur, null_value="")
        # the sources beside the result (a comment line would break CSV readers)
        chemin = fichier_sources(sortie)
        with open(chemin, "wb") as f:
            f.write("\ufeff".encode())  # BOM: spreadsheet software reads UTF-8
            neutraliser_frame(pl.DataFrame(sources, schema=["cle", "valeur"], orient="row")
                              ).write_csv(f, separator=separateur)
        return str(chemin)
    entete = originales + noms_ajout
    if valeurs_xlsx is not None:  # the input's own cells, typed as they were
        indices = [valeurs_xlsx[0].index(c) for c in originales]
        colonnes = [_cellules([r[i] for r in valeurs_xlsx[1:]]) for i in indices]
    else:
        colonnes = [(None, df[c]) for c in originales]
    for k in noms_ajout:
        if k in _NOMBRES:
            colonnes.append((pl.Series(ajout[k], dtype=pl.Float64), None))
        else:
            colonnes.append((None, pl.Series(ajout[k], dtype=pl.String)))
    ecrire_xlsx(sortie, "qpv", entete, colonnes, sources=sources)
    return f"{sortie} (feuille sources)"


# --------------------------------------------------------------------------- XLSX in bulk

def _cellules(valeurs: list) -> tuple[pl.Series | None, pl.Series | None]:
    """(numbers, texts) of a column of typed cells (one of the two set per cell, or none)."""
    import datetime as dt
    nombres = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
               else None for v in valeurs]
    textes = [None if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
              else ("VRAI" if v else "FAUX") if isinstance(v, bool)
              else v.isoformat() if isinstance(v, (dt.date, dt.datetime, dt.time))
              else str(v) for v in valeurs]
    return pl.Series(nombres, dtype=pl.Float64), pl.Series(textes, dtype=pl.String)


def _lettres(j: int) -> str:
    s = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        s = chr(65 + r) + s
    return s


_XML_INTERDITS = "".join(chr(c) for c in range(32) if c not in (9, 10, 13))
_A_ECHAPPER = f"[&<>{_XML_INTERDITS}]"  # (a text column without any is written as it is)


def _texte_xml(x: pl.Expr) -> pl.Expr:
    """Text escaped for an XML text node (control characters XML forbids: dropped)."""
    x = (x.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True)
         .str.replace_all(">", "&gt;", literal=True))
    return x.str.replace_all(f"[{_XML_INTERDITS}]", "")


def ecrire_xlsx(sortie: Path, feuille: str, entete: list[str],
                colonnes: list[tuple[pl.Series | None, pl.Series | None]],
                lot: int = 50_000, sources: list[tuple[str, str]] | None = None) -> None:
    """Write one worksheet (bold, frozen header row) as an XLSX file, in bulk.

    Each column is ``(numbers, texts)``: per row, a number cell where ``numbers`` is set,
    else a text cell (inline string: never a formula) where ``texts`` is set, else nothing.
    The sheet's XML is built by polars string expressions, ``lot`` rows at a time, and
    streamed into the ZIP package (the per-cell Python calls of a cell-by-cell writer cost
    ~40 µs a row; this ~3 µs). ``sources``: (key, value) rows of a second sheet, ``sources``.
    """
    import zipfile
    from xml.sax.saxutils import escape
    n = max((len(x) for c in colonnes for x in c if x is not None), default=0)
    lettres = [_lettres(j) for j in range(len(entete))]
    tete = "".join(f'<c r="{lettres[j]}1" t="inlineStr" s="1"><is><t xml:space="preserve">'
                   f"{escape(_sans_interdits(str(c)))}</t></is></c>"
                   for j, c in enumerate(entete))
    fin = _lettres(len(entete) - 1) if entete else "A"
    debut = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
             '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
             f'<dimension ref="A1:{fin}{n + 1}"/>'
             '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
             'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
             f'<sheetData><row r="1">{tete}</row>')
    with zipfile.ZipFile(sortie, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        feuilles = [feuille[:31]] + (["sources"] if sources else [])
        for nom, contenu in _PARTIES_XLSX.items():
            z.writestr(nom, contenu.replace("{feuilles}", "".join(
                f'<sheet name="{escape(f)}" sheetId="{k}" r:id="rId{10 + k}"/>'
                for k, f in enumerate(feuilles, 1))).replace("{types}", "".join(
                    f'<Override PartName="/xl/worksheets/sheet{k}.xml" ContentType="application/'
                    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                    for k in range(1, len(feuilles) + 1))).replace("{liens}", "".join(
                        f'<Relationship Id="rId{10 + k}" Type="http://schemas.openxmlformats.org/'
                        'officeDocument/2006/relationships/worksheet" '
                        f'Target="worksheets/sheet{k}.xml"/>'
                        for k in range(1, len(feuilles) + 1))))
        if sources:
            z.writestr("xl/worksheets/sheet2.xml", _feuille_textes([("cle", "valeur"),
                                                                    *sources]))
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            f.write(debut.encode())
            for a in range(0, n, lot):
                m = min(lot, n - a)
                cadre = {"r": pl.Series("r", np.arange(a + 2, a + 2 + m)).cast(pl.String)}
                cellules = []
                for j, (nombres, textes) in enumerate(colonnes):
                    ref = pl.concat_str([pl.lit(f'<c r="{lettres[j]}'), pl.col("r")])
                    cellule = pl.lit("")
                    if textes is not None:
                        t = textes.slice(a, m)
                        cadre[f"t{j}"] = t
                        x = pl.col(f"t{j}")
                        if t.str.contains(_A_ECHAPPER).any():
                            x = _texte_xml(x)
                        cellule = pl.when(pl.col(f"t{j}").is_not_null()).then(pl.concat_str([
                            ref, pl.lit('" t="inlineStr"><is><t xml:space="preserve">'), x,
                            pl.lit("</t></is></c>")])).otherwise(cellule)
                    if nombres is not None:
                        cadre[f"n{j}"] = nombres.slice(a, m)
                        fini = pl.col(f"n{j}").is_not_null() & pl.col(f"n{j}").is_finite()
                        x = pl.col(f"n{j}")
                        entier = fini & (x == x.round()) & (x.abs() < 1e15)
                        texte = pl.when(entier).then(x.cast(pl.Int64).cast(pl.String)) \
                            .otherwise(x.cast(pl.String))
                        cellule = pl.when(fini).then(pl.concat_str([
                            ref, pl.lit('"><v>'), texte, pl.lit("</v></c>")])
                        ).otherwise(cellule)
                    cellules.append(cellule)
                lignes = pl.DataFrame(cadre).select(pl.concat_str(
                    [pl.lit('<row r="'), pl.col("r"), pl.lit('">'), *cellules, pl.lit("</row>")]
                )).to_series().to_arrow()
                assert lignes.null_count == 0
                # (the rows' UTF-8 bytes straight from the Arrow buffer: no Python string)
                bornes = np.frombuffer(lignes.buffers()[1], np.int64)[
                    lignes.offset:lignes.offset + len(lignes) + 1]
                f.write(memoryview(lignes.buffers()[2])[int(bornes[0]):int(bornes[-1])])
            f.write(b"</sheetData></worksheet>")


def _feuille_textes(lignes: list[tuple[str, ...]]) -> str:
    """A small worksheet of text cells (inline strings, first row bold)."""
    from xml.sax.saxutils import escape
    gras = ' s="1"'
    corps = "".join(
        f'<row r="{i}">' + "".join(
            f'<c r="{_lettres(j)}{i}" t="inlineStr"{gras if i == 1 else ""}><is>'
            f'<t xml:space="preserve">{escape(_sans_interdits(str(v)))}</t></is></c>'
            for j, v in enumerate(ligne)) + "</row>"
        for i, ligne in enumerate(lignes, 1))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<cols><col min="1" max="1" width="24" customWidth="1"/>'
            '<col min="2" max="2" width="120" customWidth="1"/></cols>'
            f"<sheetData>{corps}</sheetData></worksheet>")


def _sans_interdits(texte: str) -> str:
    return texte.translate({ord(c): None for c in _XML_INTERDITS})


_PARTIES_XLSX = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '{types}'
        '<Override PartName="/xl/styles.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        '</Types>'),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets>{feuilles}</sheets></workbook>'),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '{liens}'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/styles" Target="styles.xml"/></Relationships>'),
    "xl/styles.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
        '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        '</cellStyleXfs>'
        '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        '</styleSheet>'),
}
