"""The data the dashboard shows: the stored answers of the protected publication.

Both the FastAPI application and the static publication use :class:`Donnees`, so that an API
answer and a published JSON file are the same bytes for the same question. Every figure is a
stored answer of the publication plan (:class:`essqpv.indicators.reponses.Publication`, every
answer of the base held in memory as bytes): nothing is computed on the fly, and a territory
the plan does not hold gets a 404 saying which territories exist. Beyond those answers, this
module reads only public data: territories, the public Sirene attributes of establishments,
the directory, and one constant, parameterised query for the QPV contours of the base.
"""
from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl

import shapely

from essqpv.config import LICENCE_DONNEES, MARQUE_SYNTHETIQUE
from essqpv.errors import BaseInvalide, ParametreInvalide

__all__ = ["Donnees", "json_octets", "servir_genre", "PREFIXES_STOCKES", "json_compact", "nom_fichier", "valider_perimetre", "valider_millesime",
           "TAILLE_PAGE_MAX", "MOTIF_PERIMETRE", "MOTIF_MILLESIME"]

TAILLE_PAGE_MAX = 1000
MOTIF_PERIMETRE = re.compile(r"^(strict|[0-9]{1,5}m)$")
MOTIF_MILLESIME = re.compile(r"^[0-9]{4}-[0-9]{2}$")
# Territory codes and names: letters (accents included), digits, a few separators.
MOTIF_TERRITOIRE = re.compile(r"^[\w :'’.()\-]{1,120}$")

# Simplification of the map contours (degrees) and rounding of their coordinates.
TOLERANCE_CONTOURS = 0.01
DECIMALES_CONTOURS = 3
TOLERANCE_QPV = 0.0002
DECIMALES_QPV = 4

_REQUETE_QPV = ("SELECT code_qp, nom_qp, geometrie FROM qpv "
                "WHERE millesime = ? ORDER BY code_qp")


#: Stored answers of the linked tables served by the API's fast path: URL prefix → genre of
#: ``publication_reponses`` (``GET <prefixe><territoire>?perimetre=…&millesime=…``, the
#: territory given by its code). Added with :func:`servir_genre`.
PREFIXES_STOCKES: dict[str, str] = {}


def servir_genre(prefixe: str, genre: str) -> None:
    """Serve the stored answers of ``genre`` (registered with
    :func:`essqpv.indicators.reponses.genre_de_reponses`) at ``<prefixe><territoire>`` by a
    key lookup, like the indicators: e.g. ``servir_genre("/api/transition/", "transition")``
    in the module adding the route (which answers names and errors with
    :meth:`Donnees.reponse_octets`). The static site writes them as
    ``donnees/<millesime>/<perimetre>/<genre>/<code>.json``."""
    if not prefixe.startswith("/api/") or not prefixe.endswith("/"):
        raise ValueError(f"préfixe d'URL invalide : {prefixe}")
    PREFIXES_STOCKES[prefixe] = genre


def json_octets(obj: Any) -> bytes:
    """JSON bytes as the CLI writes them (``json_texte``): UTF-8, keys in order."""
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str).encode("utf-8")


def json_compact(obj: Any) -> bytes:
    """Compact JSON bytes, for the map contours (no indentation: a third of the size)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def nom_fichier(code: str) -> str:
    """File name of a territory code in the published site (``DEP:93`` → ``DEP_93``).

    A colon in a relative URL would read as a scheme, and is not allowed on every file
    system, hence the underscore.
    """
    return code.replace(":", "_")


def valider_perimetre(perimetre: str) -> str:
    """Check the form of a perimeter (``strict`` or ``<N>m``); the base checks the value."""
    if not MOTIF_PERIMETRE.match(perimetre or ""):
        raise ParametreInvalide(
            f"Périmètre invalide : « {perimetre[:40]} » ; attendu « strict » ou une distance "
            "en mètres comme « 300m ».")
    return perimetre


def valider_millesime(millesime: str | None) -> str | None:
    """Check the form of a vintage (``AAAA-MM``) when one is given."""
    if millesime is None or millesime == "":
        return None
    if not MOTIF_MILLESIME.match(millesime):
        raise ParametreInvalide(
            f"Millésime invalide : « {millesime[:40]} » ; attendu la forme AAAA-MM.")
    return millesime


def _arrondir(coords: Any, decimales: int) -> Any:
    if isinstance(coords[0], (int, float)):
        return [round(coords[0], decimales), round(coords[1], decimales)]
    return [_arrondir(c, decimales) for c in coords]


def _entite(wkb: bytes, tolerance: float, decimales: int, proprietes: dict) -> dict | None:
    geom = shapely.from_wkb(wkb)
    simple = shapely.simplify(geom, tolerance, preserve_topology=True)
    if simple.is_empty:
        simple = geom
    forme = json.loads(shapely.to_geojson(simple))
    if forme.get("type") == "GeometryCollection":
        polygones = [g for g in getattr(simple, "geoms", []) if g.geom_type.endswith("Polygon")]
        if not polygones:
            return None
        forme = json.loads(shapely.to_geojson(shapely.multipolygons(
            [p for g in polygones for p in getattr(g, "geoms", [g])])))
    forme["coordinates"] = _arrondir(forme["coordinates"], decimales)
    return {"type": "Feature", "properties": proprietes, "geometry": forme}


class Donnees:
    """Read-only access to one base, with answers cached per question.

    Parameters
    ----------
    base : Path
        The DuckDB base (opened read-only through :func:`essqpv.base.ouvrir`).
    taille_cache : int
        Number of answers kept (least recently used answers are dropped first).

    The cache is emptied when the base file changes on disk (a rebuild replaces it
    atomically), so a long-running server never mixes two builds.
    """

    def __init__(self, base: Path | str, taille_cache: int = 4096) -> None:
        self.base = Path(base)
        if not self.base.is_file():
            raise BaseInvalide(f"Base introuvable : {self.base}")
        self._taille = taille_cache
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._verrou = threading.Lock()
        self._signature = self._signature_base()
        self._publication = None
        self._verrou_publication = threading.Lock()

    # -- the stored answers ------------------------------------------------------------
    def publication(self):
        """Every stored answer of the base (loaded once; again when the base is replaced)."""
        pub = self._publication
        if pub is None:
            from essqpv.indicators.reponses import Publication
            with self._verrou_publication:
                pub = self._publication
                if pub is None:
                    pub = Publication(self.base)
                    pub.defaut = self.millesime(None)
                    self._publication = pub
        return pub

    def cle_rapide(self, chemin: str, requete: bytes) -> tuple | None:
        """Key of a stored answer asked by ``chemin`` + query string, when it is given by
        its code (the fast path of the API); None for anything else (the router answers)."""
        if chemin.startswith("/api/indicateurs/"):
            genre, terr = "indicateurs", chemin[17:]
        elif chemin.startswith("/api/qpv/"):
            code = chemin[9:].upper()
            genre, terr = "indicateurs", code if code.startswith("QPV:") else "QPV:" + code
        elif chemin == "/api/quartiers":
            genre, terr = "quartiers", "FR"
        else:
            for prefixe, g in PREFIXES_STOCKES.items():
                if chemin.startswith(prefixe):
                    genre, terr = g, chemin[len(prefixe):]
                    break
            else:
                return None
        perimetre, millesime = "strict", None
        if requete:
            for cle, valeur in parse_qsl(requete.decode("latin-1"), keep_blank_values=True):
                if cle == "perimetre":
                    perimetre = valeur
                elif cle == "millesime":
                    millesime = valeur or None
                elif cle == "territoire" and genre == "quartiers":
                    terr = valeur
                else:
                    return None
        pub = self.publication()
        return (genre, terr, perimetre, millesime or pub.defaut)

    def territoire_publie(self, texte: str, millesime: str | None = None) -> dict:
        """:meth:`territoire`, and :class:`HorsPlan` (404) when the plan does not hold it."""
        t = self.territoire(texte)
        m = self.millesime(millesime)
        pub = self.publication()
        if not pub.publie(t["code"], m):
            if not len(pub):
                from essqpv.indicators.reponses import _sans_publication
                raise _sans_publication(self.base, m)
            raise pub.hors_plan(t["code"], t["libelle"], m)
        return t

    def reponse_octets(self, genre: str, territoire: str, perimetre: str = "strict",
                       millesime: str | None = None) -> tuple[bytes, bytes | None]:
        """A stored answer (and its gzipped copy, or None) for a code or a name."""
        perimetre = valider_perimetre(perimetre)
        m = self.millesime(millesime)
        if perimetre not in self.contexte(m)["perimetres"]:
            raise ParametreInvalide(
                f"Périmètre inconnu : « {perimetre} » (attendu : "
                f"{' ou '.join(self.contexte(m)['perimetres'])} pour ce millésime).")
        code = self.territoire_publie(territoire, m)["code"]
        pub = self.publication()
        corps = pub.octets(genre, code, perimetre, m)
        if corps is None:
            raise pub.hors_plan(code, self.territoire(code)["libelle"], m)
        return corps, pub.octets_gzip(genre, code, perimetre, m)

    def territoires_publies(self, millesime: str | None = None) -> list[dict]:
        """The territories of the plan (code, niveau, libelle), in the order of the index."""
        from essqpv.territoires import _ORDRE
        m = self.millesime(millesime)

        def calcul() -> list[dict]:
            liste = self.publication().territoires.get(m, {})
            return [{"code": c, "niveau": n, "libelle": lib} for c, (n, lib) in sorted(
                liste.items(), key=lambda x: (_ORDRE.get(x[1][0], 9), x[0]))]
        return self.memo(("territoires_publies", m), calcul)

    # -- cache -----------------------------------------------------------------------
    def _signature_base(self) -> tuple[float, int]:
        st = self.base.stat()
        return (st.st_mtime, st.st_size)

    def verifier_fraicheur(self) -> None:
        """Empty the cache when the base file was replaced."""
        try:
            signature = self._signature_base()
        except OSError:
            return
        if signature != self._signature:
            with self._verrou:
                self._cache.clear()
                self._signature = signature
                self._publication = None

    def memo(self, cle: tuple, calcul: Callable[[], Any]) -> Any:
        """Cached value of ``calcul()`` under ``cle`` (errors are not cached)."""
        with self._verrou:
            if cle in self._cache:
                self._cache.move_to_end(cle)
                return self._cache[cle]
        valeur = calcul()
        with self._verrou:
            self._cache[cle] = valeur
            while len(self._cache) > self._taille:
                self._cache.popitem(last=False)
        return valeur

    def en_cache(self, cle: tuple) -> Any | None:
        """The cached value for ``cle`` or None (no computation)."""
        with self._verrou:
            valeur = self._cache.get(cle)
            if valeur is not None:
                self._cache.move_to_end(cle)
            return valeur

    # -- vintages and metadata ------------------------------------------------------
    def millesimes(self) -> list[dict]:
        from essqpv import base as _base
        return self.memo(("millesimes",), lambda: _base.millesimes(self.base))

    def millesime(self, millesime: str | None) -> str:
        """The vintage asked for, or the newest one; BaseInvalide when it does not exist."""
        millesime = valider_millesime(millesime)
        disponibles = [str(m["millesime"]) for m in self.millesimes()]
        if not disponibles:
            raise BaseInvalide(f"La base {self.base.name} ne contient aucun millésime.")
        if millesime is None:
            return disponibles[0]
        if millesime not in disponibles:
            raise ParametreInvalide(
                f"Millésime absent de la base : {millesime} ; disponibles : "
                f"{', '.join(disponibles)}.")
        return millesime

    def metadonnees(self, millesime: str | None = None) -> dict:
        from essqpv import base as _base
        m = self.millesime(millesime)
        return self.memo(("metadonnees", m), lambda: _base.metadonnees(self.base, m))

    def contexte(self, millesime: str | None = None) -> dict:
        """What every page shows: vintages, perimeters, sources, licence, synthetic mark."""
        m = self.millesime(millesime)

        def calcul() -> dict:
            meta = self.metadonnees(m)
            tampon = meta.get("tampon_m")
            sources = meta.get("sources") or []
            if isinstance(sources, str):
                sources = json.loads(sources)
            return {
                "millesime": m,
                "millesimes": [str(x["millesime"]) for x in self.millesimes()],
                "geographie_qpv": str(meta.get("geographie_qpv", "")),
                "perimetres": ["strict"] + ([f"{tampon}m"] if tampon else []),
                "synthetique": bool(meta.get("synthetique")),
                "marque_synthetique": MARQUE_SYNTHETIQUE if meta.get("synthetique") else None,
                "avec_emplois": bool(meta.get("avec_emplois")),
                "licence": LICENCE_DONNEES,
                "sources": [
                    {k: s.get(k) for k in ("role", "fichier", "producteur", "licence",
                                           "modifie_le") if k in s}
                    for s in sources if isinstance(s, dict)],
            }
        return self.memo(("contexte", m), calcul)

    # -- territories -----------------------------------------------------------------
    def territoire(self, texte: str) -> dict:
        """Resolve a code or a name into ``{code, niveau, libelle}`` (TerritoireInconnu)."""
        from essqpv.territoires import resoudre
        if not MOTIF_TERRITOIRE.match(texte or ""):
            raise ParametreInvalide(
                "Territoire invalide : attendu un code comme « DEP:93 », « QPV:QP093001 » "
                "ou un nom de 120 caractères au plus.")

        def calcul() -> dict:
            t = resoudre(texte, self.qpv_de_la_base())
            return {"code": t.code, "niveau": t.niveau, "libelle": t.libelle}
        return self.memo(("territoire", texte), calcul)

    def qpv_de_la_base(self) -> dict[str, str]:
        """QPV codes → names of every vintage of the base (names of the newest win)."""
        from essqpv.base import qpv_de_la_base

        def calcul() -> dict[str, str]:
            noms: dict[str, str] = {}
            for m in reversed(self.millesimes()):
                noms.update(qpv_de_la_base(self.base, str(m["millesime"])))
            return noms
        return self.memo(("qpv_de_la_base",), calcul)

    def rechercher(self, q: str, limite: int = 10) -> list[dict]:
        from essqpv.territoires import rechercher
        q = (q or "").strip()[:80]
        if not q:
            return []

        def calcul() -> list[dict]:
            # only the territories the plan publishes (the others would answer 404)
            publies = self.publication().territoires.get(self.millesime(None), {})
            trouves = rechercher(q, limite=max(50, 5 * limite), qpv_base=self.qpv_de_la_base())
            return [_territoire_dict(t) for t in trouves if t.code in publies][:limite]
        return self.memo(("rechercher", q.casefold(), limite), calcul)

    # -- indicators ------------------------------------------------------------------
    def indicateurs(self, territoire: str, perimetre: str = "strict",
                    millesime: str | None = None) -> dict:
        """The stored indicators answer (a parsed copy of its bytes)."""
        return json.loads(self.indicateurs_octets(territoire, perimetre, millesime))

    def indicateurs_octets(self, territoire: str, perimetre: str = "strict",
                           millesime: str | None = None) -> bytes:
        """The stored indicators answer as JSON bytes (the hot path of the API)."""
        return self.reponse_octets("indicateurs", territoire, perimetre, millesime)[0]

    def quartiers_octets(self, territoire: str, perimetre: str = "strict",
                         millesime: str | None = None) -> bytes:
        """The stored QPV listing of a territory (``{territoire, perimetre, millesime,
        quartiers}``) as JSON bytes."""
        return self.reponse_octets("quartiers", territoire, perimetre, millesime)[0]

    def quartiers(self, territoire: str, perimetre: str = "strict",
                  millesime: str | None = None) -> list[dict]:
        """One row per QPV of the territory, as stored."""
        return json.loads(self.quartiers_octets(territoire, perimetre, millesime))["quartiers"]

    def etablissements(self, territoire: str, perimetre: str = "strict",
                       millesime: str | None = None, en_qpv: bool | None = None,
                       page: int = 1, taille: int = 50) -> dict:
        """A page of establishments (public Sirene attributes only)."""
        from essqpv.base import lister_etablissements
        perimetre = valider_perimetre(perimetre)
        if not 1 <= taille <= TAILLE_PAGE_MAX:
            raise ParametreInvalide(
                f"Taille de page invalide : {taille} ; attendu entre 1 et {TAILLE_PAGE_MAX}.")
        if page < 1:
            raise ParametreInvalide(f"Numéro de page invalide : {page} ; attendu 1 ou plus.")
        code = self.territoire(territoire)["code"]
        m = self.millesime(millesime)
        return self.memo(
            ("etablissements", code, perimetre, m, en_qpv, page, taille),
            lambda: lister_etablissements(self.base, code, millesime=m, perimetre=perimetre,
                                          en_qpv=en_qpv, page=page, taille=taille))

    @staticmethod
    def initiatives_disponibles() -> bool:
        """Whether the directory module (``essqpv.directory.lister``) is installed."""
        try:
            from essqpv.directory import lister  # noqa: F401
        except ImportError:
            return False
        return True

    def initiatives(self, territoire: str) -> list[dict] | None:
        """Initiatives of the directory for the territory, or None without the module."""
        if not self.initiatives_disponibles():
            return None
        from essqpv.directory import lister
        code = self.territoire(territoire)["code"]
        # Only what the directory publishes about an initiative; never a headcount
        # estimated from Sirene for one establishment.
        return self.memo(("initiatives", code), lambda: [
            {k: v for k, v in i.items() if k not in ("effectif_estime",)}
            for i in lister(self.base, code)])

    # -- map contours ----------------------------------------------------------------
    def contours(self, niveau: str) -> dict:
        """Simplified GeoJSON of the régions or départements (overseas at true places)."""
        from essqpv.reference import contours
        if niveau not in ("regions", "departements"):
            raise ParametreInvalide(
                f"Découpage inconnu : « {niveau[:40]} » ; attendu « regions » ou "
                "« departements ».")

        def calcul() -> dict:
            table = contours(niveau)
            entites = [
                _entite(row["geometrie"], TOLERANCE_CONTOURS, DECIMALES_CONTOURS,
                        {"code": row["code"], "nom": row["nom"]})
                for row in table.iter_rows(named=True)]
            return {"type": "FeatureCollection", "features": [e for e in entites if e]}
        return self.memo(("contours", niveau), calcul)

    def contours_qpv(self, millesime: str | None = None) -> dict:
        """Simplified GeoJSON of every QPV of the vintage's geography."""
        from essqpv.base import ouvrir
        m = self.millesime(millesime)

        def calcul() -> dict:
            con = ouvrir(self.base)
            try:
                lignes = con.execute(_REQUETE_QPV, [m]).fetchall()
            finally:
                con.close()
            entites = [
                _entite(bytes(wkb), TOLERANCE_QPV, DECIMALES_QPV,
                        {"code": code, "nom": nom})
                for code, nom, wkb in lignes if wkb is not None]
            return {"type": "FeatureCollection", "features": [e for e in entites if e]}
        return self.memo(("contours_qpv", m), calcul)

    def octets(self, cle: tuple, calcul: Callable[[], Any]) -> bytes:
        """JSON bytes of any answer, cached under ``("octets",) + cle``."""
        return self.memo(("octets",) + cle, lambda: json_octets(calcul()))


def _territoire_dict(t: Any) -> dict:
    if isinstance(t, dict):
        return {k: t.get(k) for k in ("code", "niveau", "libelle")}
    return {"code": t.code, "niveau": t.niveau, "libelle": t.libelle}
