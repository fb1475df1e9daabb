"""Readers of initiative files: CSV, XLSX and GoGoCarto-style JSON.

Each reader returns a :class:`Lecture`: one record per data row, keyed by the canonical
field names of ``schema.csv`` (columns are matched through the ``alias`` column), with its
physical line number (header = line 1; for JSON, the element's rank in the ``data`` array)
and its original content for the rejects table.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from essqpv.directory._reference import cle_colonne, schema
from essqpv.directory.schema import alias_colonnes
from essqpv.errors import ColonneManquante, FichierIntrouvable, FichierInvalide, ParametreInvalide

__all__ = ["FORMATS", "Lecture", "lire_fichier"]

FORMATS = ("csv", "xlsx", "json")
_CALCULES = {cle_colonne(r["champ"]) for r in schema() if r["role"] == "calcule"}


@dataclass
class Lecture:
    """What a reader found in a file."""

    fichier: str
    format: str
    #: (line, record with canonical keys, original content as text, reader errors)
    enregistrements: list[tuple[int, dict, str, list[tuple[str, str]]]] = field(default_factory=list)
    avertissements: list[str] = field(default_factory=list)
    strict_categories: bool = True


def format_de(chemin: Path, format: str | None) -> str:
    """The format of a file: given, or from its extension."""
    if format:
        f = format.lower().lstrip(".")
    else:
        f = chemin.suffix.lower().lstrip(".")
        f = {"geojson": "json", "xls": "xlsx", "txt": "csv", "tsv": "csv"}.get(f, f)
    if f not in FORMATS:
        raise ParametreInvalide(
            f"Format « {f or chemin.name} » non pris en charge pour {chemin.name} : "
            f"attendu {', '.join(FORMATS)}.")
    return f


def _correspondance(entetes: list[str]) -> tuple[dict[str, int], list[str]]:
    """Canonical field → column index (the column named like the field wins), unknown headers."""
    alias = alias_colonnes()
    candidats: dict[str, list[int]] = {}
    inconnues = []
    for i, h in enumerate(entetes):
        cle = cle_colonne(h or "")
        champ = alias.get(cle)
        if champ is None:
            if cle and cle not in _CALCULES:
                inconnues.append(h)
            continue
        candidats.setdefault(champ, []).append(i)
    choix = {}
    for champ, idx in candidats.items():
        exact = [i for i in idx if cle_colonne(entetes[i]) == champ]
        choix[champ] = exact[0] if exact else idx[0]
    return choix, inconnues


def _tabulaire(lecture: Lecture, entetes: list, lignes) -> Lecture:
    entetes = ["" if h is None else str(h) for h in entetes]
    choix, inconnues = _correspondance(entetes)
    if "nom" not in choix:
        raise ColonneManquante(
            f"{lecture.fichier} : colonne « nom » introuvable (en-têtes lus : "
            f"{', '.join(h for h in entetes if h) or 'aucun'}).")
    if inconnues:
        lecture.avertissements.append("colonnes ignorées : " + ", ".join(inconnues))
    for numero, valeurs in lignes:
        if all(v is None or str(v).strip() == "" for v in valeurs):
            continue
        erreurs = []
        if len(valeurs) > len(entetes):
            erreurs.append(("ligne_mal_formee",
                            f"{len(valeurs)} champs pour {len(entetes)} colonnes d'en-tête"))
        brut = {c: (valeurs[i] if i < len(valeurs) else None) for c, i in choix.items()}
        contenu = json.dumps(dict(zip(entetes, [None if v is None else str(v) for v in valeurs])),
                             ensure_ascii=False)
        lecture.enregistrements.append((numero, brut, contenu, erreurs))
    return lecture


def _texte_csv(chemin: Path) -> str:
    donnees = chemin.read_bytes()
    try:
        return donnees.decode("utf-8-sig")
    except UnicodeDecodeError:
        return donnees.decode("cp1252")


def lire_csv(chemin: Path) -> Lecture:
    """CSV with a header line; separator ``,``, ``;`` or tab; UTF-8 (or Windows-1252)."""
    texte = _texte_csv(chemin)
    premiere = texte.split("\n", 1)[0]
    sep = max([",", ";", "\t"], key=premiere.count)
    lecteur = csv.reader(io.StringIO(texte, newline=""), delimiter=sep)
    try:
        entetes = next(lecteur)
    except StopIteration:
        raise FichierInvalide(f"{chemin.name} : fichier vide (une ligne d'en-tête attendue).")

    def lignes():
        debut = lecteur.line_num + 1
        for valeurs in lecteur:
            yield debut, valeurs
            debut = lecteur.line_num + 1

    return _tabulaire(Lecture(chemin.name, "csv"), entetes, lignes())


def lire_xlsx(chemin: Path) -> Lecture:
    """First sheet (or the sheet named « initiatives ») of an Excel workbook; header on row 1."""
    import openpyxl

    try:
        classeur = openpyxl.load_workbook(chemin, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, InvalidFileException...
        raise FichierInvalide(f"{chemin.name} : classeur Excel illisible ({exc}).") from exc
    try:
        feuille = (classeur["initiatives"] if "initiatives" in classeur.sheetnames
                   else classeur.worksheets[0])
        rangees = feuille.iter_rows(values_only=True)
        try:
            entetes = list(next(rangees))
        except StopIteration:
            raise FichierInvalide(f"{chemin.name} : feuille vide (une ligne d'en-tête attendue).")
        while entetes and entetes[-1] is None:
            entetes.pop()
        lignes = []
        for i, r in enumerate(rangees, start=2):
            r = list(r)
            while len(r) > len(entetes) and r[-1] is None:
                r.pop()
            lignes.append((i, r))
        return _tabulaire(Lecture(chemin.name, "xlsx"), entetes, lignes)
    finally:
        classeur.close()


def _element(el: dict) -> dict:
    """A GoGoCarto element → record with canonical keys."""
    alias = alias_colonnes()
    brut: dict = {}
    exacts: set[str] = set()
    for k, v in el.items():
        if isinstance(v, dict):
            continue
        champ = alias.get(cle_colonne(k))
        if champ is None:
            continue
        exact = cle_colonne(k) == champ
        if champ not in brut or (exact and champ not in exacts):
            brut[champ] = v
            if exact:
                exacts.add(champ)
    geo = el.get("geo")
    if isinstance(geo, dict):
        brut.setdefault("latitude", geo.get("latitude", geo.get("lat")))
        brut.setdefault("longitude", geo.get("longitude", geo.get("lng", geo.get("lon"))))
    adresse = el.get("address")
    if isinstance(adresse, dict):
        brut["adresse"] = adresse.get("streetAddress") or adresse.get("customFormatedAddress")
        if adresse.get("postalCode") and not brut.get("code_postal"):
            brut["code_postal"] = adresse.get("postalCode")
        if adresse.get("addressLocality") and not brut.get("commune"):
            brut["commune"] = adresse.get("addressLocality")
    if not brut.get("categories") and el.get("categoriesFull"):
        brut["categories"] = [c.get("name") for c in el["categoriesFull"] if isinstance(c, dict)]
    if el.get("descriptionMore"):
        brut["description"] = "\n\n".join(
            x for x in (brut.get("description"), el["descriptionMore"]) if x)
    return brut


def lire_json(chemin: Path) -> Lecture:
    """GoGoCarto-style JSON: ``{"data": [elements]}`` (API export) or a bare list of elements."""
    try:
        doc = json.loads(_texte_csv(chemin))
    except json.JSONDecodeError as exc:
        raise FichierInvalide(f"{chemin.name} : JSON invalide (ligne {exc.lineno}, "
                              f"colonne {exc.colno} : {exc.msg}).") from exc
    if isinstance(doc, dict):
        elements = doc.get("data", doc.get("elements"))
    else:
        elements = doc
    if not isinstance(elements, list):
        raise FichierInvalide(
            f"{chemin.name} : tableau d'éléments introuvable (attendu une liste, ou un objet "
            f"avec une clé « data » comme l'export de l'API GoGoCarto).")
    lecture = Lecture(chemin.name, "json", strict_categories=False)
    for i, el in enumerate(elements, start=1):
        contenu = json.dumps(el, ensure_ascii=False)
        if not isinstance(el, dict):
            lecture.enregistrements.append(
                (i, {}, contenu, [("ligne_mal_formee", "élément JSON : objet attendu")]))
            continue
        lecture.enregistrements.append((i, _element(el), contenu, []))
    return lecture


def lire_fichier(chemin: str | Path, format: str | None = None) -> Lecture:
    """Read an initiative file in any accepted format.

    Raises
    ------
    FichierIntrouvable, FichierInvalide, ColonneManquante, ParametreInvalide
    """
    chemin = Path(chemin)
    if not chemin.exists():
        raise FichierIntrouvable(f"Fichier introuvable : {chemin}")
    f = format_de(chemin, format)
    return {"csv": lire_csv, "xlsx": lire_xlsx, "json": lire_json}[f](chemin)
