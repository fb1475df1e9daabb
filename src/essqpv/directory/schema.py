"""The schema of an initiative and the validation of one record.

A record is a dict ``field → raw value`` whose keys are already the canonical field names
of ``schema.csv`` (the readers map the columns). :func:`valider_enregistrement` returns the
typed initiative, the errors (each a ``(motif, message)`` pair in French) and warnings.
"""
from __future__ import annotations

import hashlib
import math
import re
from functools import lru_cache

from essqpv.directory._reference import (
    axes,
    categories,
    cle_colonne,
    emprises,
    normaliser,
    ressources,
    schema,
)
from essqpv.directory.modele import choisir_modele

__all__ = [
    "CHAMPS",
    "CHAMPS_SAISIE",
    "MOTIFS",
    "alias_colonnes",
    "identifiant_calcule",
    "siret_valide",
    "valider_enregistrement",
]

CHAMPS: tuple[str, ...] = tuple(r["champ"] for r in schema())
CHAMPS_SAISIE: tuple[str, ...] = tuple(r["champ"] for r in schema() if r["role"] == "saisie")
_TYPES = {r["champ"]: r["type"] for r in schema()}
_MULTIPLES = {r["champ"] for r in schema() if r["multiple"] == "oui"}
_RESSOURCES = tuple(r["ressource"] for r in ressources())

#: Reject reasons (code → short French title), in the order of the documentation.
MOTIFS = {
    "nom_manquant": "nom manquant",
    "siret_invalide": "SIRET mal formé",
    "siret_cle_invalide": "clé de contrôle du SIRET invalide",
    "code_postal_invalide": "code postal mal formé",
    "commune_inconnue": "commune inconnue",
    "commune_ambigue": "commune ambiguë",
    "coordonnees_incompletes": "coordonnées incomplètes",
    "coordonnees_invalides": "coordonnées non numériques ou hors bornes",
    "coordonnees_hors_france": "coordonnées hors de France",
    "url_invalide": "site internet mal formé",
    "axe_inconnu": "axe inconnu",
    "categorie_inconnue": "catégorie inconnue",
    "modele_invalide": "modèle socio-économique invalide",
    "nombre_invalide": "nombre de bénévoles ou de salarié·es invalide",
    "montant_invalide": "ressource invalide",
    "ligne_mal_formee": "ligne mal formée",
    "doublon": "doublon",
}


@lru_cache(maxsize=1)
def alias_colonnes() -> dict[str, str]:
    """Normalised column header → canonical field, from the ``alias`` column of the schema."""
    table: dict[str, str] = {}
    for r in schema():
        if r["role"] != "saisie":
            continue
        for a in [r["champ"], *r["alias"].split("|")]:
            if a:
                table.setdefault(cle_colonne(a), r["champ"])
    return table


def siret_valide(siret: str) -> bool:
    """Luhn check of a 14-digit SIRET (La Poste's establishments: digit sum divisible by 5).

    >>> siret_valide("77554402601284"), siret_valide("77554402601285")
    (True, False)
    """
    if siret.startswith("356000000"):
        return sum(int(c) for c in siret) % 5 == 0
    total = 0
    for i, c in enumerate(reversed(siret)):
        n = int(c) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def identifiant_calcule(nom_normalise: str, commune: str | None) -> str:
    """Stable identifier from the normalised name and the commune (code or normalised name)."""
    cle = f"{nom_normalise}|{commune or ''}".encode()
    return "INI-" + hashlib.sha1(cle).hexdigest()[:12]


# --------------------------------------------------------------------------- helpers

def _texte(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            v = int(v)
    t = str(v).strip()
    return t or None


def _code(v, largeur: int) -> str | None:
    """A code that a spreadsheet may have turned into a number (leading zeros lost)."""
    if isinstance(v, bool):
        return _texte(v)
    if (isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))
            and float(v).is_integer()):
        return str(int(v)).zfill(largeur)
    t = _texte(v)
    return re.sub(r"[\s\u00a0\u202f.]", "", t) if t else None


def _nombre(v) -> float | None:
    """Parse a number, French or English notation; raise ValueError when not a number."""
    if v is None or isinstance(v, bool):
        if isinstance(v, bool):
            raise ValueError(v)
        return None
    if isinstance(v, (int, float)):
        if isinstance(v, float) and math.isnan(v):
            return None
        return float(v)
    t = re.sub(r"[\s\u00a0\u202f€]", "", str(v))
    if not t:
        return None
    if "," in t:
        t = t.replace(".", "").replace(",", ".")
    x = float(t)
    if math.isnan(x) or math.isinf(x):
        raise ValueError(v)
    return x


def _liste(v) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        items = []
        for x in v:
            if isinstance(x, dict):
                x = x.get("name") or x.get("nom") or x.get("id")
            t = _texte(x)
            if t:
                items.append(t)
        return items
    t = _texte(v)
    if not t:
        return []
    return [p.strip() for p in re.split(r"[|;\n]", t) if p.strip()]


@lru_cache(maxsize=1)
def _index_categories() -> tuple[dict, dict]:
    cat: dict[str, str] = {}
    axe: dict[str, str] = {}
    for r in categories():
        cat[normaliser(r["categorie"])] = r["categorie"]
        cat[normaliser(r["libelle_categorie"])] = r["categorie"]
        axe[normaliser(r["axe"])] = r["axe"]
        axe[normaliser(r["libelle_axe"])] = r["axe"]
    # the acronyms in brackets (CAE, CJS, SCIC) alone are accepted too
    for r in categories():
        m = re.search(r"\(([^)]+)\)", r["libelle_categorie"])
        if m:
            cat[normaliser(m.group(1))] = r["categorie"]
    return cat, axe


@lru_cache(maxsize=1)
def _axe_de_categorie() -> dict[str, str]:
    return {r["categorie"]: r["axe"] for r in categories()}


@lru_cache(maxsize=1)
def _index_communes() -> tuple[dict, dict]:
    """COG code → row (deleguée/associée/arrondissement → parent), name → current communes."""
    from essqpv.reference import communes, epci

    cog = communes().to_dicts()
    epcis = {r["code_commune"]: r["code_epci"] for r in epci().to_dicts()}
    actuelles = {r["code_commune"]: r for r in cog if r["type"] == "commune-actuelle"}
    par_code: dict[str, dict] = {}
    for r in cog:
        cible = r if r["type"] == "commune-actuelle" else actuelles.get(r["commune_parente"] or "")
        if cible is None:
            continue
        par_code.setdefault(r["code_commune"], cible)
        for ancien in (r.get("anciens_codes") or "").split("|"):
            if ancien:
                par_code.setdefault(ancien, cible)
    for code, r in actuelles.items():
        par_code[code] = r
    par_nom: dict[str, list[dict]] = {}
    for r in actuelles.values():
        par_nom.setdefault(normaliser(r["nom_commune"]), []).append(r)
    resultat = {k: {**v, "epci": epcis.get(v["code_commune"])} for k, v in par_code.items()}
    noms = {k: [{**v, "epci": epcis.get(v["code_commune"])} for v in vs]
            for k, vs in par_nom.items()}
    return resultat, noms


def _departements_du_code_postal(cp: str) -> set[str]:
    if cp.startswith(("97", "98")):
        return {cp[:3]}
    if cp.startswith("20"):
        return {"2A", "2B"}
    return {cp[:2]}


def resoudre_commune(valeur: str, code_postal: str | None) -> tuple[dict | None, str | None]:
    """COG row of a commune given by code or name; or (None, French reason)."""
    par_code, par_nom = _index_communes()
    v = valeur.strip()
    if re.fullmatch(r"[0-9][0-9AaBb][0-9]{3}", v):
        r = par_code.get(v.upper())
        if r is None:
            return None, f"commune « {v} » : code absent du COG 2026"
        return r, None
    candidats = par_nom.get(normaliser(v), [])
    if code_postal and len(candidats) > 1:
        deps = _departements_du_code_postal(code_postal)
        candidats = [c for c in candidats if c["code_departement"] in deps] or candidats
    if not candidats:
        return None, f"commune « {v} » : nom absent du COG 2026"
    if len(candidats) > 1:
        codes = ", ".join(sorted(c["code_commune"] for c in candidats)[:5])
        return None, (f"commune « {v} » : {len(candidats)} communes portent ce nom ({codes}) ; "
                      f"donner le code postal ou le code commune")
    return candidats[0], None


def _en_france(lon: float, lat: float) -> bool:
    for z in emprises():
        if (float(z["lon_min"]) <= lon <= float(z["lon_max"])
                and float(z["lat_min"]) <= lat <= float(z["lat_max"])):
            return True
    return False


# --------------------------------------------------------------------------- validation

def valider_enregistrement(brut: dict, strict_categories: bool = True
                           ) -> tuple[dict, list[tuple[str, str]], list[str]]:
    """Validate and type one record.

    Parameters
    ----------
    brut : dict
        Canonical field → raw value (text, number, list or None).
    strict_categories : bool
        True: an unknown category is an error (tabular files). False: it is kept in
        ``categories_source`` with a warning (GoGoCarto exports use their own taxonomy).

    Returns
    -------
    (initiative, erreurs, avertissements)
        ``erreurs`` is a list of ``(motif, message)``; the record is rejected when it is
        not empty.
    """
    err: list[tuple[str, str]] = []
    avert: list[str] = []
    out: dict = {}

    nom = _texte(brut.get("nom"))
    if not nom:
        err.append(("nom_manquant", "nom : valeur obligatoire manquante"))
    out["nom"] = nom
    out["nom_normalise"] = normaliser(nom)

    siret = _code(brut.get("siret"), 14)
    if siret:
        if not re.fullmatch(r"[0-9]{14}", siret):
            err.append(("siret_invalide", f"siret « {siret} » : 14 chiffres attendus"))
        elif not siret_valide(siret):
            err.append(("siret_cle_invalide",
                        f"siret « {siret} » : clé de contrôle (formule de Luhn) invalide"))
    out["siret"] = siret

    for champ in ("adresse", "description", "source", "remarque"):
        out[champ] = _texte(brut.get(champ))

    cp = _code(brut.get("code_postal"), 5)
    if cp and not re.fullmatch(r"[0-9]{5}", cp):
        err.append(("code_postal_invalide", f"code_postal « {cp} » : 5 chiffres attendus"))
        cp_ok = None
    else:
        cp_ok = cp
    out["code_postal"] = cp

    commune = brut.get("commune")
    commune = _code(commune, 5) if isinstance(commune, (int, float)) else _texte(commune)
    out.update(commune=None, nom_commune=None, departement=None, region=None, epci=None)
    if commune:
        row, raison = resoudre_commune(commune, cp_ok)
        if row is None:
            motif = "commune_ambigue" if "portent ce nom" in (raison or "") else "commune_inconnue"
            err.append((motif, raison))
        else:
            out.update(commune=row["code_commune"], nom_commune=row["nom_commune"],
                       departement=row["code_departement"], region=row["code_region"],
                       epci=row["epci"])

    lon_b, lat_b = brut.get("longitude"), brut.get("latitude")
    out["longitude"] = out["latitude"] = None
    try:
        lon, lat = _nombre(lon_b), _nombre(lat_b)
    except ValueError:
        err.append(("coordonnees_invalides",
                    f"longitude « {lon_b} », latitude « {lat_b} » : nombres décimaux attendus"))
    else:
        if (lon is None) != (lat is None):
            err.append(("coordonnees_incompletes",
                        "longitude et latitude : les deux sont nécessaires, ou aucune"))
        elif lon is not None:
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                err.append(("coordonnees_invalides",
                            f"longitude {lon}, latitude {lat} : hors des bornes WGS84"))
            elif not _en_france(lon, lat):
                indice = " (latitude et longitude inversées ?)" if _en_france(lat, lon) else ""
                err.append(("coordonnees_hors_france",
                            f"longitude {lon}, latitude {lat} : point hors de France{indice}"))
            else:
                out["longitude"], out["latitude"] = lon, lat

    url = _texte(brut.get("site_web"))
    if url:
        if re.fullmatch(r"www\.[^\s]+\.[^\s]+", url, flags=re.IGNORECASE):
            url = "https://" + url
            avert.append(f"site_web : « https:// » ajouté devant « {url[8:]} »")
        if not re.fullmatch(r"https?://[^\s/]+\.[^\s]+", url, flags=re.IGNORECASE):
            err.append(("url_invalide", f"site_web « {url} » : adresse http:// ou https:// attendue"))
    out["site_web"] = url

    index_cat, index_axe = _index_categories()
    cats: list[str] = []
    sources_cat: list[str] = []
    for c in _liste(brut.get("categories")):
        code = index_cat.get(normaliser(c))
        if code is None:
            if strict_categories:
                err.append(("categorie_inconnue", f"categories « {c} » : catégorie du webinaire "
                            f"attendue (code ou libellé, voir docs/initiatives.md)"))
            else:
                sources_cat.append(c)
        elif code not in cats:
            cats.append(code)
    for c in _liste(brut.get("categories_source")):
        if c not in sources_cat:
            sources_cat.append(c)
    if sources_cat and not brut.get("categories_source"):
        avert.append("catégories non reconnues, gardées dans categories_source : "
                     + ", ".join(sources_cat))
    axes_ok: list[str] = []
    for a in _liste(brut.get("axes")):
        code = index_axe.get(normaliser(a))
        if code is None:
            err.append(("axe_inconnu", f"axes « {a} » : attendu l'un de "
                        + ", ".join(axes())))
        elif code not in axes_ok:
            axes_ok.append(code)
    for c in cats:
        a = _axe_de_categorie()[c]
        if a not in axes_ok:
            axes_ok.append(a)
    ordre_axes = list(axes())
    out["axes"] = sorted(axes_ok, key=ordre_axes.index)
    ordre_cats = [r["categorie"] for r in categories()]
    out["categories"] = sorted(cats, key=ordre_cats.index)
    out["categories_source"] = sources_cat

    m = brut.get("modele_declare")
    declare = None
    try:
        x = _nombre(m)
        if x is not None:
            if x not in (1, 2, 3):
                raise ValueError(m)
            declare = int(x)
    except ValueError:
        err.append(("modele_invalide", f"modele « {m} » : 1, 2 ou 3 attendu"))
    out["modele_declare"] = declare

    for champ in ("benevoles", "salaries"):
        v = brut.get(champ)
        out[champ] = None
        try:
            x = _nombre(v)
            if x is not None:
                if x < 0 or not float(x).is_integer():
                    raise ValueError(v)
                out[champ] = int(x)
        except ValueError:
            err.append(("nombre_invalide", f"{champ} « {v} » : entier positif ou nul attendu"))

    out["partenaires"] = _liste(brut.get("partenaires"))

    for champ in _RESSOURCES:
        v = brut.get(champ)
        out[champ] = None
        try:
            x = _nombre(v)
            if x is not None:
                if x < 0:
                    raise ValueError(v)
                out[champ] = x
        except ValueError:
            err.append(("montant_invalide", f"{champ} « {v} » : nombre positif ou nul attendu"))

    out["modele"], out["motif_modele"] = choisir_modele(
        declare, {k: out[k] for k in _RESSOURCES})

    ident = _texte(brut.get("identifiant"))
    out["identifiant"] = ident or identifiant_calcule(
        out["nom_normalise"], out["commune"] or normaliser(commune))
    return out, err, avert
