"""The directory of initiatives: validate, import into the base, list, export.

The base is the project's DuckDB file. This module owns the tables ``initiatives`` and
``initiatives_rejets`` (created when missing, written in one transaction) and only reads
``etablissements`` and ``millesimes``.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import polars as pl

from essqpv.config import MARQUE_SYNTHETIQUE
from essqpv.directory._reference import axes, categories, lire_csv, modeles, schema
from essqpv.directory.lecture import Lecture, format_de, lire_fichier
from essqpv.directory.schema import CHAMPS, valider_enregistrement
from essqpv.errors import BaseInvalide, TerritoireInconnu

__all__ = [
    "COLONNES_EXPORT",
    "ResultatValidation",
    "annuaire_initial",
    "exporter",
    "importer",
    "importer_annuaire_initial",
    "lister",
    "valider",
]

_TYPES_SQL = {"texte": "VARCHAR", "siret": "VARCHAR", "commune": "VARCHAR", "url": "VARCHAR",
              "nombre": "DOUBLE", "montant": "DOUBLE", "entier": "INTEGER", "modele": "INTEGER",
              "booleen": "BOOLEAN", "axe": "VARCHAR", "categorie": "VARCHAR"}
_MULTIPLES = {r["champ"] for r in schema() if r["multiple"] == "oui"}
#: Columns of the exports and of :func:`lister`, in order (the schema's fields).
COLONNES_EXPORT: tuple[str, ...] = CHAMPS
_COLONNES_TABLE: tuple[tuple[str, str], ...] = tuple(
    [(r["champ"], _TYPES_SQL[r["type"]] + ("[]" if r["champ"] in _MULTIPLES else ""))
     for r in schema()]
    + [("nom_normalise", "VARCHAR"),
       ("fichier", "VARCHAR"), ("ligne", "INTEGER"), ("date_import", "TIMESTAMP")])
_POLARS = {"VARCHAR": pl.Utf8, "DOUBLE": pl.Float64, "INTEGER": pl.Int32,
           "BOOLEAN": pl.Boolean, "VARCHAR[]": pl.List(pl.Utf8), "TIMESTAMP": pl.Datetime("us")}
_REJETS = (("fichier", "VARCHAR"), ("ligne", "INTEGER"), ("motif", "VARCHAR"),
           ("message", "VARCHAR"), ("contenu", "VARCHAR"), ("date_import", "TIMESTAMP"))


# --------------------------------------------------------------------------- validation

@dataclass
class ResultatValidation:
    """Outcome of :func:`valider`: accepted initiatives, rejects with their reasons."""

    fichier: str
    format: str
    lignes_lues: int = 0
    initiatives: list[dict] = field(default_factory=list)
    rejets: list[dict] = field(default_factory=list)
    avertissements: list[str] = field(default_factory=list)

    @property
    def lignes_rejetees(self) -> int:
        return len({r["ligne"] for r in self.rejets})

    def resume(self) -> dict:
        """JSON-able summary (French keys): counts, rejects by reason, warnings, rejects."""
        par_motif: dict[str, int] = {}
        for r in self.rejets:
            par_motif[r["motif"]] = par_motif.get(r["motif"], 0) + 1
        return {
            "fichier": self.fichier, "format": self.format, "lignes_lues": self.lignes_lues,
            "acceptees": len(self.initiatives), "rejetees": self.lignes_rejetees,
            "rejets_par_motif": dict(sorted(par_motif.items())),
            "avertissements": self.avertissements,
            "rejets": [{k: r[k] for k in ("ligne", "motif", "message")} for r in self.rejets],
        }


def _cle_commune(ini: dict) -> str:
    return ini.get("commune") or ""


def _valider_lecture(lecture: Lecture, source: str | None = None) -> ResultatValidation:
    res = ResultatValidation(lecture.fichier, lecture.format,
                             avertissements=list(lecture.avertissements))
    vus_siret: dict[str, int] = {}
    vus_nom: dict[tuple[str, str], int] = {}
    vus_id: dict[str, int] = {}
    for ligne, brut, contenu, erreurs in lecture.enregistrements:
        res.lignes_lues += 1
        ini, err, avert = valider_enregistrement(brut, lecture.strict_categories)
        err = list(erreurs) + err
        if not err:
            doublon = None
            if ini["siret"] and ini["siret"] in vus_siret:
                doublon = f"même SIRET {ini['siret']} que la ligne {vus_siret[ini['siret']]}"
            elif (ini["nom_normalise"], _cle_commune(ini)) in vus_nom:
                doublon = (f"même nom normalisé « {ini['nom_normalise']} » et même commune que la "
                           f"ligne {vus_nom[(ini['nom_normalise'], _cle_commune(ini))]}")
            elif ini["identifiant"] in vus_id:
                doublon = (f"même identifiant « {ini['identifiant']} » que la ligne "
                           f"{vus_id[ini['identifiant']]}")
            if doublon:
                err.append(("doublon", doublon))
        if err:
            for motif, message in err:
                res.rejets.append({"ligne": ligne, "motif": motif, "message": message,
                                   "contenu": contenu})
            continue
        if ini["siret"]:
            vus_siret[ini["siret"]] = ligne
        vus_nom[(ini["nom_normalise"], _cle_commune(ini))] = ligne
        vus_id[ini["identifiant"]] = ligne
        if ini["source"] is None:
            ini["source"] = source or lecture.fichier
        ini["fichier"], ini["ligne"] = lecture.fichier, ligne
        res.avertissements.extend(f"ligne {ligne} : {a}" for a in avert)
        res.initiatives.append(ini)
    return res


def valider(chemin: str | Path, format: str | None = None,
            source: str | None = None) -> ResultatValidation:
    """Read and validate an initiative file without writing anything.

    Parameters
    ----------
    chemin : path
        CSV, XLSX or GoGoCarto-style JSON file.
    format : str, optional
        ``csv``, ``xlsx`` or ``json``; from the extension by default.
    source : str, optional
        Provenance written on rows that have none (default: the file name).

    Returns
    -------
    ResultatValidation
        ``initiatives`` (typed, model chosen), ``rejets`` (one per line and reason, with the
        French message), ``avertissements``.
    """
    return _valider_lecture(lire_fichier(chemin, format), source)


# --------------------------------------------------------------------------- base

def _connexion(base: str | Path, ecriture: bool, creer: bool = False):
    """A DuckDB connection on the base: read-write, or a read-only cursor.

    Reads go through :func:`essqpv.base.ouvrir` (cached connection) when the file is an
    essqpv base; writes first close the cached read-only connections of this process
    (DuckDB refuses a second configuration on the same file).
    """
    import duckdb

    base = Path(base)
    if not base.exists() and not creer:
        raise BaseInvalide(f"Base introuvable : {base} (construire la base d'abord, "
                           f"ou utiliser --creer).")
    try:
        from essqpv import base as module_base
    except ImportError:  # pragma: no cover - the base module is part of the project
        module_base = None
    if ecriture:
        if module_base is not None:
            module_base.fermer_connexions(base)
    elif module_base is not None:
        try:
            return module_base.ouvrir(base)
        except BaseInvalide:
            pass  # not a full essqpv base (no etablissements table): plain connection
    try:
        return duckdb.connect(str(base), read_only=not ecriture)
    except duckdb.Error as exc:
        raise BaseInvalide(f"Base illisible ou verrouillée par un autre processus (serveur "
                           f"web ?) : {base} ({exc}).") from exc


def _tables(con) -> set[str]:
    # duckdb_tables() answers in < 1 ms where information_schema takes ~50 ms
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}


def _colonnes(con, table: str) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ?",
        [table]).fetchall()}


def millesime_et_marque(con) -> tuple[str | None, bool]:
    """Newest vintage of ``etablissements`` and whether it is synthetic demo data."""
    tables = _tables(con)
    if "etablissements" not in tables:
        return None, False
    millesime = None
    if "millesime" in _colonnes(con, "etablissements"):
        millesime = con.execute("SELECT max(millesime) FROM etablissements").fetchone()[0]
    synthetique = False
    if millesime and "millesimes" in tables and "synthetique" in _colonnes(con, "millesimes"):
        r = con.execute("SELECT synthetique FROM millesimes WHERE millesime = ?",
                        [millesime]).fetchone()
        synthetique = bool(r and r[0])
    return millesime, synthetique


def etablissements_par_siret(con, sirets: list[str], millesime: str | None) -> dict[str, dict]:
    """In-scope establishments of the base for these SIRET (newest vintage)."""
    if not sirets or "etablissements" not in _tables(con):
        return {}
    cols = _colonnes(con, "etablissements")
    voulues = [c for c in ("siret", "famille", "employeur", "tranche", "effectif_estime",
                           "commune", "departement", "region", "epci", "qpv", "qpv_tampon")
               if c in cols]
    cles = pl.DataFrame({"siret": sorted(set(sirets))})  # noqa: F841 (used by DuckDB)
    filtre = "AND e.millesime = ?" if millesime and "millesime" in cols else ""
    params = [millesime] if filtre else []
    lignes = con.execute(
        f"SELECT {', '.join('e.' + c for c in voulues)} FROM etablissements e "
        f"JOIN cles USING (siret) WHERE true {filtre}", params).fetchall()
    return {r[0]: dict(zip(voulues, r)) for r in lignes}


@lru_cache(maxsize=2)
def _index_qpv(geographie: str | None = None):
    from essqpv.placement import IndexQPV
    from essqpv.sources.qpv import lire_qpv

    return IndexQPV(lire_qpv(geographie=geographie))


def _geographie_de_la_base(con, millesime: str | None) -> str | None:
    """The priority geography the vintage was built with (2024 by default)."""
    if con is None or not millesime or "millesimes" not in _tables(con) \
            or "geographie_qpv" not in _colonnes(con, "millesimes"):
        return None
    r = con.execute("SELECT geographie_qpv FROM millesimes WHERE millesime = ?",
                    [millesime]).fetchone()
    return r[0] if r and r[0] in ("2015", "2024") else None


def qpv_par_coordonnees(lon: list[float], lat: list[float],
                        geographie: str | None = None) -> list[str | None] | None:
    """Strict QPV of each point (the project's placement module), in ``geographie`` (2024
    by default); None if unavailable."""
    import numpy as np

    try:
        index = _index_qpv(geographie)
    except ImportError:
        return None
    codes = index.strict(np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64"))
    return [None if c is None or c == "" or (isinstance(c, float) and math.isnan(c))
            else str(c) for c in list(codes)]


def enrichir(initiatives: list[dict], con=None) -> dict:
    """Attach each initiative to the base (by SIRET) or to a QPV (by coordinates).

    Fills ``famille, employeur, tranche_effectif, effectif_estime, qpv, qpv_tampon,
    rattachement, motif_rattachement, millesime`` and, when the initiative has no commune,
    ``commune, departement, region, epci`` from the base. The establishment's headcount
    from the employment file (``effectif``) is never copied: it is not public data.
    Returns counts.
    """
    from essqpv.directory.schema import _index_communes

    millesime, synthetique = millesime_et_marque(con) if con is not None else (None, False)
    suffixe = f" — {MARQUE_SYNTHETIQUE}" if synthetique else ""
    trouves = etablissements_par_siret(
        con, [i["siret"] for i in initiatives if i["siret"]], millesime) if con else {}
    a_placer = []
    for ini in initiatives:
        for k in ("famille", "employeur", "tranche_effectif", "effectif_estime", "qpv",
                  "qpv_tampon", "rattachement", "motif_rattachement", "millesime"):
            ini[k] = None
        e = trouves.get(ini["siret"]) if ini["siret"] else None
        if e is not None:
            ini.update(famille=e.get("famille"), employeur=e.get("employeur"),
                       tranche_effectif=e.get("tranche"), effectif_estime=e.get("effectif_estime"),
                       qpv=e.get("qpv"), qpv_tampon=e.get("qpv_tampon"), rattachement="siret",
                       millesime=millesime,
                       motif_rattachement=f"SIRET trouvé dans la base (millésime {millesime})"
                       + suffixe)
            if ini["commune"] is None and e.get("commune"):
                row = _index_communes()[0].get(e["commune"])
                ini.update(commune=e.get("commune"), departement=e.get("departement"),
                           region=e.get("region"), epci=e.get("epci"),
                           nom_commune=row["nom_commune"] if row else None)
            continue
        raisons = []
        if ini["siret"]:
            raisons.append("SIRET absent de la base (hors périmètre ESS ou base absente)"
                           if con is not None and millesime else "pas de base pour le SIRET")
        if ini["longitude"] is not None:
            a_placer.append((ini, raisons))
        else:
            raisons.append("sans coordonnées")
            ini["motif_rattachement"] = " ; ".join(raisons)
    if a_placer:
        geographie = _geographie_de_la_base(con, millesime)  # the base's map, else 2024
        codes = qpv_par_coordonnees([i["longitude"] for i, _ in a_placer],
                                    [i["latitude"] for i, _ in a_placer], geographie)
        geo = _index_qpv(geographie).couche.geographie if codes is not None else None
        for k, (ini, raisons) in enumerate(a_placer):
            if codes is None:
                raisons.append("placement QPV indisponible (module essqpv.placement absent)")
            else:
                ini["qpv"] = codes[k]
                ini["rattachement"] = "coordonnees"
                raisons.append(f"QPV par coordonnées (périmètre strict, géographie {geo})"
                               if codes[k] else
                               f"coordonnées hors QPV (périmètre strict, géographie {geo})")
            ini["motif_rattachement"] = " ; ".join(raisons)
    return {
        "rattachees_siret": sum(1 for i in initiatives if i["rattachement"] == "siret"),
        "rattachees_coordonnees": sum(1 for i in initiatives if i["rattachement"] == "coordonnees"),
        "non_rattachees": sum(1 for i in initiatives if i["rattachement"] is None),
        "en_qpv": sum(1 for i in initiatives if i["qpv"]),
        "millesime_base": millesime,
        "base_synthetique": synthetique,
    }


def _creer_tables(con) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS initiatives ("
                + ", ".join(f"{c} {t}" for c, t in _COLONNES_TABLE) + ")")
    con.execute("CREATE TABLE IF NOT EXISTS initiatives_rejets ("
                + ", ".join(f"{c} {t}" for c, t in _REJETS) + ")")


def _ecrire(con, res: ResultatValidation) -> tuple[int, int]:
    """Upsert the accepted initiatives and append the rejects, in one transaction."""
    maintenant = datetime.now().replace(microsecond=0)
    _creer_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        existants = con.execute(
            "SELECT identifiant, siret, nom_normalise, coalesce(commune, '') FROM initiatives"
        ).fetchall()
        par_id = {r[0] for r in existants}
        par_siret = {r[1]: r[0] for r in existants if r[1]}
        par_nom = {(r[2], r[3]): r[0] for r in existants}
        a_supprimer, mises_a_jour = set(), 0
        for ini in res.initiatives:
            cibles = set()
            if ini["identifiant"] in par_id:
                cibles.add(ini["identifiant"])
            if ini["siret"] and ini["siret"] in par_siret:
                cibles.add(par_siret[ini["siret"]])
            cle = (ini["nom_normalise"], _cle_commune(ini))
            if cle in par_nom:
                cibles.add(par_nom[cle])
            mises_a_jour += bool(cibles)
            a_supprimer |= cibles
        # bulk writes through Arrow: executemany costs ~8 ms a row in DuckDB
        if a_supprimer:
            con.register("_initiatives_suppr",
                         pl.DataFrame({"identifiant": sorted(a_supprimer)}).to_arrow())
            con.execute("DELETE FROM initiatives WHERE identifiant IN "
                        "(SELECT identifiant FROM _initiatives_suppr)")
            con.unregister("_initiatives_suppr")
        colonnes = [c for c, _ in _COLONNES_TABLE]
        if res.initiatives:
            cadre = pl.DataFrame(
                {c: [ini.get(c) if c != "date_import" else maintenant for ini in res.initiatives]
                 for c in colonnes},
                schema={c: _POLARS[t] for c, t in _COLONNES_TABLE})
            con.register("_initiatives_a_ecrire", cadre.to_arrow())
            con.execute(f"INSERT INTO initiatives ({', '.join(colonnes)}) "
                        f"SELECT {', '.join(colonnes)} FROM _initiatives_a_ecrire")
            con.unregister("_initiatives_a_ecrire")
        if res.rejets:
            cadre = pl.DataFrame(
                {"fichier": [res.fichier] * len(res.rejets),
                 "ligne": [r["ligne"] for r in res.rejets],
                 "motif": [r["motif"] for r in res.rejets],
                 "message": [r["message"] for r in res.rejets],
                 "contenu": [r["contenu"] for r in res.rejets],
                 "date_import": [maintenant] * len(res.rejets)},
                schema={c: _POLARS[t] for c, t in _REJETS})
            con.register("_initiatives_rejets", cadre.to_arrow())
            con.execute("INSERT INTO initiatives_rejets SELECT * FROM _initiatives_rejets")
            con.unregister("_initiatives_rejets")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return len(res.initiatives) - mises_a_jour, mises_a_jour


def importer(base: str | Path, chemin: str | Path, format: str | None = None,
             source: str | None = None, creer: bool = False) -> dict:
    """Validate a file, attach each initiative to the base, store it in ``initiatives``.

    An initiative already in the base (same identifier, same SIRET, or same normalised
    name and commune) is replaced; rejects go to ``initiatives_rejets``.

    Returns
    -------
    dict
        :meth:`ResultatValidation.resume` plus ``nouvelles``, ``mises_a_jour``,
        ``rattachees_siret``, ``rattachees_coordonnees``, ``non_rattachees``, ``en_qpv``,
        ``millesime_base``.
    """
    res = valider(chemin, format, source)
    return _importer_resultat(base, res, creer)


def _importer_resultat(base, res: ResultatValidation, creer: bool = False) -> dict:
    con = _connexion(base, ecriture=True, creer=creer)
    try:
        comptes = enrichir(res.initiatives, con)
        nouvelles, maj = _ecrire(con, res)
    finally:
        con.close()
    return {**res.resume(), "nouvelles": nouvelles, "mises_a_jour": maj, **comptes}


# --------------------------------------------------------------------------- starter

def _lecture_initiale() -> Lecture:
    lecture = Lecture("annuaire_initial.csv", "csv")
    for i, r in enumerate(lire_csv("annuaire_initial.csv"), start=2):
        lecture.enregistrements.append((i, {k: (v or None) for k, v in r.items()},
                                        json.dumps(r, ensure_ascii=False), []))
    return lecture


def annuaire_initial() -> list[dict]:
    """The starter directory: the initiatives the seed deck names, by model (not attached)."""
    res = _valider_lecture(_lecture_initiale())
    if res.rejets:  # package data: a reject is a bug
        raise ValueError(res.rejets)
    enrichir(res.initiatives, None)
    initiatives = sorted(res.initiatives, key=lambda i: (i["modele"], i["nom_normalise"]))
    return [_publique(i) for i in initiatives]


def importer_annuaire_initial(base: str | Path, creer: bool = False) -> dict:
    """Store the starter directory in the base (idempotent)."""
    return _importer_resultat(base, _valider_lecture(_lecture_initiale()), creer)


# --------------------------------------------------------------------------- listing

def _publique(ini: dict) -> dict:
    out = {c: ini.get(c) for c in COLONNES_EXPORT}
    for c in _MULTIPLES:
        out[c] = list(out[c] or [])
    libelles = {r["categorie"]: r["libelle_categorie"] for r in categories()}
    out["libelles_axes"] = [axes()[a] for a in out["axes"]]
    out["libelles_categories"] = [libelles[c] for c in out["categories"]]
    intitules = {int(m["modele"]): m["intitule"] for m in modeles()}
    out["libelle_modele"] = intitules.get(out["modele"]) if out["modele"] else None
    return out


_DROM = ("971", "972", "973", "974", "976")


def _filtre_territoire(territoire) -> tuple[str | None, str | None]:
    """(column, value) of the filter; column ``"*"`` = all, ``"METRO"``/``"DROM"`` special."""
    if territoire is None:
        return "*", None
    code = str(getattr(territoire, "code", territoire)).strip()
    if ":" not in code and code.upper() not in ("FR", "METRO", "DROM"):
        try:
            from essqpv.territoires import resoudre
        except ImportError:
            pass
        else:
            code = resoudre(code).code
    prefixe, _, valeur = code.partition(":")
    prefixe = prefixe.upper()
    if prefixe == "FR" and not valeur:
        return "*", None
    if prefixe in ("METRO", "DROM") and not valeur:
        return prefixe, None
    colonne = {"REG": "region", "DEP": "departement", "EPCI": "epci", "COM": "commune",
               "QPV": "qpv"}.get(prefixe)
    if colonne is None or not valeur:
        raise TerritoireInconnu(
            f"Territoire « {code} » inconnu : attendu FR, METRO, DROM, REG:<code>, DEP:<code>, "
            f"EPCI:<siren>, COM:<code> ou QPV:<code>.")
    return colonne, (valeur.upper() if colonne == "qpv" else valeur)


def _dans(ini: dict, colonne: str, valeur: str | None) -> bool:
    if colonne == "*":
        return True
    dep = ini.get("departement")
    if colonne == "METRO":
        return bool(dep) and not dep.startswith(("97", "98"))
    if colonne == "DROM":
        return dep in _DROM
    return ini.get(colonne) == valeur


def lister(base: str | Path | None, territoire=None) -> list[dict]:
    """Initiatives of a territory, as plain JSON-able dicts (French keys).

    Parameters
    ----------
    base : path or None
        The DuckDB base. When it is None, absent, or has no ``initiatives`` table, the
        starter directory (package data) is listed instead.
    territoire : str or Territoire, optional
        ``FR``, ``METRO``, ``DROM``, ``REG:11``, ``DEP:93``, ``EPCI:…``, ``COM:93066``,
        ``QPV:QP093001`` (or a name the territories module resolves); filters on the
        initiative's région, département, EPCI, commune or (strict) QPV.

    Returns
    -------
    list of dict
        The schema's fields (``COLONNES_EXPORT``) plus ``libelles_axes``,
        ``libelles_categories``, ``libelle_modele``; sorted by model then name.
    """
    colonne, valeur = _filtre_territoire(territoire)
    lignes = None
    if base is not None and Path(base).exists():
        con = _connexion(base, ecriture=False)
        try:
            if "initiatives" in _tables(con):
                cur = con.execute(
                    f"SELECT {', '.join(COLONNES_EXPORT)} FROM initiatives "
                    f"ORDER BY modele NULLS LAST, nom_normalise, identifiant")
                lignes = [dict(zip(COLONNES_EXPORT, r)) for r in cur.fetchall()]
        finally:
            con.close()
    if lignes is None:
        lignes = annuaire_initial()
    return [_publique(r) for r in lignes if _dans(r, colonne, valeur)]


# --------------------------------------------------------------------------- export

def _valeur_texte(v) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return "|".join(v)
    if isinstance(v, bool):
        return "oui" if v else "non"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    return str(v)


def _element_gogocarto(i: dict) -> dict:
    libelles = {r["categorie"]: r["libelle_categorie"] for r in categories()}
    el: dict = {"id": i["identifiant"], "name": i["nom"]}
    if i["latitude"] is not None:
        el["geo"] = {"latitude": i["latitude"], "longitude": i["longitude"]}
    adresse = {k: v for k, v in (("streetAddress", i["adresse"]), ("postalCode", i["code_postal"]),
                                 ("addressLocality", i["nom_commune"])) if v}
    if adresse:
        el["address"] = {**adresse, "addressCountry": "FR"}
    el["categories"] = [libelles[c] for c in i["categories"]] + list(
        i.get("categories_source") or [])
    for cle, champ in (("description", "description"), ("website", "site_web")):
        if i[champ]:
            el[cle] = i[champ]
    for c in COLONNES_EXPORT:
        if c in ("identifiant", "nom", "latitude", "longitude", "adresse", "code_postal",
                 "categories", "description", "site_web"):
            continue
        v = i.get(c)
        if v not in (None, []) or c == "modele_declare":
            el[c] = v
    return el


def exporter(base: str | Path | None, chemin: str | Path, format: str | None = None,
             territoire=None) -> dict:
    """Write the directory (optionally one territory) as CSV, XLSX or GoGoCarto-style JSON.

    The CSV and XLSX have one column per schema field (lists joined with ``|``); the JSON
    is ``{"licence", "ontology", "sources", "avertissements", "data": [elements]}`` as in
    GoGoCarto's API export. Each file re-imports unchanged.

    Returns
    -------
    dict
        ``fichier``, ``format``, ``initiatives`` (count).
    """
    chemin = Path(chemin)
    f = format_de(chemin, format)
    rows = lister(base, territoire)
    synthetique = False
    if base is not None and Path(base).exists():
        con = _connexion(base, ecriture=False)
        try:
            synthetique = millesime_et_marque(con)[1]
        finally:
            con.close()
    sources = sorted({r["source"] for r in rows if r["source"]})
    avertissements = [MARQUE_SYNTHETIQUE] if synthetique else []
    chemin.parent.mkdir(parents=True, exist_ok=True)
    if f == "csv":
        tampon = io.StringIO()
        from essqpv.csv_sur import ecrivain
        w = ecrivain(tampon, lineterminator="\n")  # no formula runs (csv_sur)
        w.writerow(COLONNES_EXPORT)
        for r in rows:
            w.writerow([_valeur_texte(r[c]) for c in COLONNES_EXPORT])
        chemin.write_text(tampon.getvalue(), encoding="utf-8")
    elif f == "xlsx":
        import xlsxwriter

        classeur = xlsxwriter.Workbook(str(chemin))
        gras = classeur.add_format({"bold": True})
        feuille = classeur.add_worksheet("initiatives")
        feuille.write_row(0, 0, COLONNES_EXPORT, gras)
        for n, r in enumerate(rows, start=1):
            for k, c in enumerate(COLONNES_EXPORT):
                v = r[c]
                if isinstance(v, list):
                    v = "|".join(v)
                if v is None:
                    continue
                if c in ("siret", "code_postal", "commune") or isinstance(v, str):
                    feuille.write_string(n, k, str(v))
                else:
                    feuille.write(n, k, v)
        feuille.freeze_panes(1, 0)
        apropos = classeur.add_worksheet("a_propos")
        infos = [("Contenu", "Annuaire des initiatives de l'ESS dans les quartiers prioritaires "
                  "(essqpv)"), ("Date", datetime.now().strftime("%Y-%m-%d")),
                 ("Sources", " ; ".join(sources)),
                 ("Schéma", "docs/initiatives.md")] + [("Avertissement", a) for a in avertissements]
        for n, (k, v) in enumerate(infos):
            apropos.write_string(n, 0, k, gras)
            apropos.write_string(n, 1, v)
        classeur.close()
    else:
        doc = {"licence": "voir les sources de chaque élément", "ontology": "gogofull",
               "producteur": "essqpv", "sources": sources, "avertissements": avertissements,
               "data": [_element_gogocarto(r) for r in rows]}
        chemin.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return {"fichier": str(chemin), "format": f, "initiatives": len(rows)}
