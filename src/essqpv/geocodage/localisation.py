"""Addresses → BAN point → QPV answer, with the precision rules.

A row is declared in (or out of) a QPV only when the geocoder found the **house number**
with a score at least :data:`SCORE_MIN`, and no other commune has the same address at a
close score. Anything else (a street, lieu-dit or commune centroid, a low score, an
ambiguous address) is ``a_verifier``: its QPV columns stay empty — it is **never** declared
inside a QPV on a centroid — and ``remarque`` says why and where the approximate point
falls.

Statuses added to those of :mod:`essqpv.lookup`:

``a_verifier``                 found, but not precisely enough to answer (see above)
``adresse_vide``               empty address
``adresse_introuvable``        nothing in the BAN of the installed départements
``departement_non_installe``   the address's postcode is in a département not installed
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import numpy as np

from essqpv.errors import ParametreInvalide

__all__ = ["SCORE_MIN", "ECART_AMBIGU", "COLONNES_ADRESSE", "STATUTS_ADRESSE",
           "departement_du_code_postal", "localiser_adresses", "localiser_adresse",
           "phrase_qpv", "requete", "ecart_de_voie", "source_adresses"]

#: minimum addok score for a house number to be trusted (docs/localiser.md)
SCORE_MIN = 0.6
#: a second result in another commune within this score of the first: ambiguous
ECART_AMBIGU = 0.03
COLONNES_ADRESSE = ["adresse_ban", "score_ban", "type_ban", "methode_ban", "code_commune_ban",
                    "lon_ban", "lat_ban"]
STATUTS_ADRESSE = ("a_verifier", "adresse_vide", "adresse_introuvable",
                   "departement_non_installe")
PRECISIONS = {"housenumber": "numéro", "street": "voie (centre de la voie)",
              "locality": "lieu-dit (centre du lieu-dit)",
              "municipality": "commune (centre de la commune)"}

_CP = re.compile(r"(?<!\d)(\d{5})(?!\d)")
#: street types as written in addresses → one name
_TYPES_VOIE = {
    "rue": "rue", "r": "rue", "avenue": "avenue", "av": "avenue", "ave": "avenue",
    "boulevard": "boulevard", "bd": "boulevard", "bld": "boulevard", "place": "place",
    "pl": "place", "allee": "allee", "all": "allee", "impasse": "impasse", "imp": "impasse",
    "chemin": "chemin", "che": "chemin", "ch": "chemin", "chem": "chemin", "quai": "quai",
    "cours": "cours", "crs": "cours", "square": "square", "sq": "square", "route": "route",
    "rte": "route", "passage": "passage", "pass": "passage", "sentier": "sentier",
    "villa": "villa", "cite": "cite", "voie": "voie", "parvis": "parvis", "esplanade":
    "esplanade", "promenade": "promenade", "residence": "residence", "res": "residence",
    "hameau": "hameau", "ham": "hameau", "lotissement": "lotissement", "lot": "lotissement",
    "faubourg": "faubourg", "fg": "faubourg", "sente": "sente", "ruelle": "ruelle",
    "carrefour": "carrefour", "rond": "rond-point", "rpt": "rond-point",
}
_ABREGES = {"st": "saint", "ste": "sainte", "gal": "general", "gen": "general",
            "mal": "marechal", "pdt": "president", "pres": "president", "dr": "docteur",
            "prof": "professeur", "cdt": "commandant", "lt": "lieutenant", "ns": "notre",
            "n": "notre", "d": "de"}
_VIDES = {"de", "la", "du", "des", "l", "le", "les", "d", "et", "a", "aux", "au", "en",
          "sur", "sous"}


@functools.lru_cache(maxsize=65_536)
def _mots(texte: str) -> tuple[str, ...]:
    from unidecode import unidecode
    return tuple(re.findall(r"[a-z0-9]+", unidecode(texte or "").lower()))


def _proche(mot: str, candidats: set[str]) -> bool:
    import editdistance
    tolere = 0 if len(mot) <= 3 else 1 if len(mot) <= 6 else 2
    return any(editdistance.eval(mot, c) <= tolere for c in candidats)


def ecart_de_voie(q: str, r: dict) -> str | None:
    """Why the street found is not the one asked (another name or another type), or None.

    addok scores the whole text: a query whose street does not exist in the commune can still
    match another street of that commune with the same number, postcode and city at a fair
    score. The words of the street name found must each be in the query (one typo allowed
    from 4 letters, two from 7), and a street type written in the query must be the one
    found.
    """
    if r.get("type") not in ("housenumber", "street") or not r.get("name"):
        return None
    demandes = {_ABREGES.get(m, m) for m in _mots(q)}
    nom = _mots(r["name"])
    type_trouve = _TYPES_VOIE.get(nom[0]) if nom else None
    noyau = [m for m in (nom[1:] if type_trouve else nom) if m not in _VIDES]
    manquants = [m for m in noyau if not _proche(m, demandes)]
    if manquants:
        return f"la voie trouvée, « {r['name']} », n'est pas celle de l'adresse"
    types_demandes = {_TYPES_VOIE[m] for m in _mots(q) if m in _TYPES_VOIE}
    if type_trouve and types_demandes and type_trouve not in types_demandes:
        return (f"type de voie différent : « {r['name']} » trouvée pour une adresse en "
                f"{' / '.join(sorted(types_demandes))}")
    return None


def departement_du_code_postal(cp: str) -> str | None:
    """``93200`` → ``93``; ``20000``-``20199`` → ``2A``, ``20200``+ → ``2B``; ``97411`` →
    ``974``; ``None`` for what no département has (``00xxx``, ``98xxx`` Monaco...)."""
    cp = (cp or "").strip()
    if not re.fullmatch(r"\d{5}", cp):
        return None
    if cp.startswith("97"):
        return cp[:3] if cp[:3] in ("971", "972", "973", "974", "976") else None
    if cp.startswith("20"):
        return "2A" if int(cp) < 20200 else "2B"
    if cp.startswith(("00", "96", "98", "99")):
        return None
    return cp[:2]


def requete(adresse: str | None = None, numero: str | None = None, voie: str | None = None,
            code_postal: str | None = None, commune: str | None = None) -> str:
    """One search text from an address, or from its parts."""
    morceaux = [adresse] if adresse is not None else [numero, voie, code_postal, commune]
    return " ".join(" ".join(str(m).split()) for m in morceaux if m is not None and
                    str(m).strip())


def phrase_qpv(dans_qpv, qpv_code, qpv_nom, distance_m, statut: str) -> str:
    """"dans le QPV …", "à N m du QPV …" or "hors QPV" (or why there is no answer)."""
    if statut != "localise":
        return ""
    if dans_qpv:
        return f"dans le QPV {qpv_code} « {qpv_nom} »"
    if distance_m is not None:
        return f"à {distance_m:.0f} m du QPV {qpv_code} « {qpv_nom} »"
    return "hors QPV (aucun QPV à moins de 500 m)"


def _geocoder(geocodeur, requetes: list[str], progression) -> list[list[dict]]:
    """Best two results per query (two to see an ambiguity), unique queries once."""
    uniques = list(dict.fromkeys(q for q in requetes if q))
    resultats = geocodeur.geocoder(uniques, limite=2, progression=progression)
    par_requete = dict(zip(uniques, resultats))
    return [par_requete.get(q) or [] for q in requetes]


def localiser_adresses(requetes: Sequence[str | None], geocodeur, couche=None,
                       tampon_m: int = 300, score_min: float = SCORE_MIN,
                       codes_postaux: Sequence[str | None] | None = None,
                       progression: Callable[[int, int], None] | None = None) -> dict:
    """Geocode and place every query; every row kept, in order.

    Parameters
    ----------
    requetes : sequence of str
        Search texts (``None`` or blank: ``adresse_vide``).
    geocodeur : Geocodeur
        An open geocoder.
    couche, tampon_m
        As :func:`essqpv.lookup.localiser_points`.
    score_min : float
        Threshold below which a house number is ``a_verifier``.
    codes_postaux : sequence, optional
        Postcode of each row when it is a column of its own (else read in the text).

    Returns
    -------
    dict of lists
        :data:`COLONNES_ADRESSE`, then the columns of :func:`essqpv.lookup.colonnes_resultat`
        (``statut`` included), then ``reponse`` (the sentence) and ``remarque``.
    """
    from essqpv.lookup import _placer, _verifier_tampon, index_qpv
    tampon_m = _verifier_tampon(tampon_m)
    if not 0 <= float(score_min) <= 1:
        raise ParametreInvalide(f"Score minimal invalide : {score_min} (entre 0 et 1).")
    requetes = [" ".join(str(q).split()) if q is not None else "" for q in requetes]
    n = len(requetes)
    installes = list(geocodeur.departements)
    statut = np.full(n, None, dtype=object)
    remarque: list[str | None] = [None] * n
    a_chercher = []
    for i, q in enumerate(requetes):
        if not q:
            statut[i], remarque[i] = "adresse_vide", "Ligne sans adresse."
            continue
        cp = (codes_postaux[i] if codes_postaux is not None else None) or None
        if cp is None:
            trouves = _CP.findall(q)
            cp = trouves[-1] if trouves else None
        dep = departement_du_code_postal(str(cp).strip()) if cp else None
        if dep is not None and dep not in installes:
            statut[i] = "departement_non_installe"
            remarque[i] = (f"Code postal {cp} : département {dep} non installé dans le "
                           f"géocodeur (installés : {', '.join(installes)}) ; « essqpv "
                           f"geocodeur installer --departements {dep} » l'ajoute.")
            continue
        a_chercher.append(i)
    trouves = _geocoder(geocodeur, [requetes[i] for i in a_chercher], progression)
    colonnes = {k: [None] * n for k in COLONNES_ADRESSE}
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    a_verifier = np.zeros(n, dtype=bool)
    for i, res in zip(a_chercher, trouves):
        if not res:
            statut[i] = "adresse_introuvable"
            remarque[i] = ("Aucune adresse correspondante dans la BAN des départements "
                           f"installés ({', '.join(installes)}).")
            continue
        r = res[0]
        colonnes["adresse_ban"][i] = r["label"]
        colonnes["score_ban"][i] = r["score"]
        colonnes["type_ban"][i] = r["type"]
        colonnes["methode_ban"][i] = r.get("methode")
        colonnes["code_commune_ban"][i] = r["citycode"]
        colonnes["lon_ban"][i], colonnes["lat_ban"][i] = r["lon"], r["lat"]
        lon[i], lat[i] = r["lon"], r["lat"]
        motifs = []
        if r["type"] != "housenumber":
            motifs.append(f"précision : {PRECISIONS.get(r['type'], r['type'])}, pas le numéro "
                          "— essqpv ne déclare jamais une adresse dans un QPV sur le centre "
                          "d'une voie, d'un lieu-dit ou d'une commune")
        if r["score"] < score_min:
            motifs.append(f"score {_virgule(r['score'])} sous le seuil {_virgule(score_min)} "
                          ": correspondance peu sûre")
        # (an exact match is the street of the query, by construction)
        ecart = ecart_de_voie(requetes[i], r) if r.get("methode") != "exacte" else None
        if ecart:
            motifs.append(ecart)
        autres = [a for a in res[1:] if a["citycode"] != r["citycode"]
                  and r["score"] - a["score"] <= ECART_AMBIGU]
        if autres:
            motifs.append(f"adresse ambiguë : « {autres[0]['label']} » a presque le même score "
                          "(précisez le code postal ou la commune)")
        if motifs:
            a_verifier[i] = True
            remarque[i] = "À vérifier : " + " ; ".join(motifs) + "."
    index = index_qpv(couche)
    res = _placer(lon, lat, statut, index, tampon_m, None)
    cle_tampon = f"qpv_code_{tampon_m}m"
    # the nearest QPV within 500 m of the points whose buffer column does not hold it
    # (rows to check, and rows outside every buffer), all at once
    sans_code = [i for i in range(n) if res["statut"][i] == "localise"
                 and res["distance_qpv_m"][i] is not None and not res[cle_tampon][i]
                 and (a_verifier[i] and not res["qpv_code"][i]
                      or not a_verifier[i] and not res["dans_qpv"][i])]
    proches = dict(zip(sans_code, _codes_proches(index, lon[sans_code], lat[sans_code])))
    # where the approximate point of a row to check falls: said, never declared
    for i in np.flatnonzero(a_verifier):
        if res["statut"][i] == "localise":
            if res["qpv_code"][i]:
                ou = f"le point approché tombe dans le QPV {res['qpv_code'][i]}"
            elif res["distance_qpv_m"][i] is not None:
                ou = (f"le point approché est à {res['distance_qpv_m'][i]:.0f} m du QPV "
                      f"{res[cle_tampon][i] or proches[i]}")
            else:
                ou = "le point approché est loin de tout QPV"
            remarque[i] = remarque[i][:-1] + f" ({ou}, sans valeur d'attestation)."
        for k in ("qpv_code", "qpv_nom", "qpv_communes", "dans_qpv", cle_tampon,
                  "distance_qpv_m"):
            res[k][i] = None
        res["statut"][i] = "a_verifier"
    noms = np.asarray(index.couche.noms, dtype=object)
    rang: dict = {}
    for j, c in enumerate(index.codes):
        rang.setdefault(c, j)  # (the first QPV of that code)
    reponse = []
    for i in range(n):
        s = res["statut"][i]
        if s == "localise" and not res["dans_qpv"][i] and res["distance_qpv_m"][i] is not None:
            code = res[cle_tampon][i] or proches[i]
            j = rang[code] if code else -1
            reponse.append(phrase_qpv(False, code, noms[j] if j >= 0 else "",
                                      res["distance_qpv_m"][i], s))
        else:
            reponse.append(phrase_qpv(res["dans_qpv"][i], res["qpv_code"][i],
                                      res["qpv_nom"][i], res["distance_qpv_m"][i], s))
    return {**colonnes, **res, "reponse": reponse, "remarque": remarque}


def _virgule(v: float) -> str:
    return f"{v:.2f}".replace(".", ",")


def _codes_proches(index, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
    """Code of the nearest QPV within 500 m of each point (the buffer column only holds it
    within the buffer)."""
    from essqpv.lookup import ordre_par_longitude
    from essqpv.placement import DISTANCE_MAX_M
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if not len(x):
        return []
    o = ordre_par_longitude(x, y)
    s = index.strict_indices(x, y, o)
    p, _ = index.proches_indices(x, y, DISTANCE_MAX_M, s, o)
    return [str(index.codes[k]) if k >= 0 else None for k in p]


def source_adresses(geocodeur) -> str:
    """The sentence naming the address source of an answer."""
    dates = sorted({d["date_ban"] for d in geocodeur.etat["departements"]})
    return (f"Adresses : Base Adresse Nationale (BAN) du {', '.join(dates)}, départements "
            f"{', '.join(geocodeur.departements)}, Licence Ouverte 2.0 ; géocodage hors ligne "
            + ("(adresses écrites comme dans la BAN : index exact ; les autres : addok)."
               if getattr(geocodeur, "exactes", None) is not None else "(addok)."))


def localiser_adresse(adresse: str, geocodeur=None, dossier=None, couche=None,
                      tampon_m: int = 300, score_min: float = SCORE_MIN) -> dict:
    """One address: the columns of :func:`localiser_adresses` for it, plus the provenance
    (``geographie_qpv``, ``contours``, ``source_adresses``, ``perimetre``, ``score_min``)."""
    from essqpv.geocodage.geocodeur import Geocodeur
    from essqpv.lookup import provenance
    propre = geocodeur is None
    g = geocodeur or Geocodeur(dossier).ouvrir()
    try:
        r = localiser_adresses([adresse], g, couche=couche, tampon_m=tampon_m,
                               score_min=score_min)
        source = source_adresses(g)
    finally:
        if propre:
            g.fermer()
    ligne = {k: v[0] for k, v in r.items()}
    return {"adresse": adresse, **ligne, "perimetre": f"{tampon_m}m", "score_min": score_min,
            "source_adresses": source, **provenance(couche)}


def adresses_du_fichier(df, colonnes: dict, dossier, couche, tampon_m: int, score_min: float,
                        progression=None) -> tuple[dict, dict, str]:
    """Address mode of :func:`essqpv.lookup.localiser_fichier`: (columns used, added
    columns, source sentence)."""
    from essqpv.geocodage.geocodeur import Geocodeur

    def valeurs(cle):
        return df[colonnes[cle]].to_list() if colonnes.get(cle) else [None] * df.height

    cp = valeurs("code_postal") if colonnes.get("code_postal") else None
    if colonnes.get("adresse"):
        utilisees = {"adresse": colonnes["adresse"]}
        parties = {"adresse": valeurs("adresse")}
        if colonnes.get("code_postal"):
            utilisees["code_postal"] = colonnes["code_postal"]
            # the postcode column completes the address when the text lacks it
            parties["code_postal"] = cp
        if colonnes.get("commune"):
            utilisees["commune"] = colonnes["commune"]
            parties["commune"] = valeurs("commune")
        qs = []
        # the columns that complete the text (none: the text alone)
        completer = [parties[cle] for cle in ("code_postal", "commune") if cle in parties]
        for i, a in enumerate(parties["adresse"]):
            if a is None or not str(a).strip():
                qs.append("")
                continue
            texte = str(a)
            for colonne in completer:
                v = colonne[i]
                if v and str(v).strip() and str(v).strip().lower() not in texte.lower():
                    texte += " " + str(v).strip()
            qs.append(requete(texte))
    else:
        utilisees = {k: colonnes[k] for k in ("numero", "voie", "code_postal", "commune")
                     if colonnes.get(k)}
        qs = [requete(numero=n, voie=v, code_postal=c, commune=m) if v and str(v).strip()
              else "" for n, v, c, m in zip(valeurs("numero"), valeurs("voie"), valeurs(
                  "code_postal"), valeurs("commune"))]
    with Geocodeur(dossier) as g:
        resultat = localiser_adresses(qs, g, couche=couche, tampon_m=tampon_m,
                                      score_min=score_min, codes_postaux=cp,
                                      progression=progression)
        source = source_adresses(g)
    return utilisees, resultat, source
