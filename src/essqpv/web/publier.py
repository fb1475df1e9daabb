"""The dashboard as static files: the stored JSON answers per territory, served by any
static host.

Every JSON file of figures is the stored answer of the publication plan, written as it is
stored (the same bytes as the API): the site publishes exactly the territories of the plan.

Layout of a published site (``essqpv publier --sortie site/``)::

    index.html, static/…                     the dashboard (same page and JavaScript)
    donnees/territoires.json                 the territories of the search box
    donnees/carte/regions.json, departements.json
    donnees/<millesime>/carte/qpv.json
    donnees/<millesime>/<perimetre>/indicateurs/<code>.json    (= GET /api/indicateurs/<code>)
    donnees/<millesime>/<perimetre>/quartiers/<code>.json      (= GET /api/quartiers)
    donnees/<millesime>/<perimetre>/points/<code>.json         (establishments in QPV, map)
    donnees/<millesime>/<perimetre>/etablissements/<code>/qpv-<n>.json  (list, in QPV)
    donnees/<millesime>/telechargements.json, telechargements/…   (PDF report, Excel, CSV)
    donnees/initiatives/<code>.json          (when the directory module is installed)
    donnees/<millesime>/transition/<code>.json  (= GET /api/transition/<code>, 2015 → 2024)

``<code>`` is the territory code with ``:`` replaced by ``_`` (``DEP_93``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

from essqpv.errors import ParametreInvalide, SortieRefusee, cause_os
from essqpv.web._donnees import (TAILLE_PAGE_MAX, Donnees, json_compact, json_octets,
                                 nom_fichier)

__all__ = ["publier", "NIVEAUX_FICHIERS", "POINTS_MAX", "PAGES_LISTE_MAX", "TAILLE_LISTE"]

NIVEAUX_FICHIERS = ("tous", "departements", "aucun")
POINTS_MAX = 5000          # establishments drawn on the map of one territory
TAILLE_LISTE = 20          # rows of a page of the establishments list (as the dashboard)
PAGES_LISTE_MAX = 50       # pages of the list published per territory and filter
_NIVEAUX_DEPARTEMENTS = ("france", "metropole", "drom", "region", "departement")


MARQUE_SITE = ".essqpv-site.json"   # the list of the files of a site this tool wrote


def _verifier_sortie(sortie: Path) -> Path:
    """The folder to publish into, if replacing it loses nothing this tool did not write.

    Accepted: a new folder, an empty one, or one holding an earlier site of essqpv and
    nothing else (every file listed in its :data:`MARQUE_SITE`). A symbolic link is
    followed (the site replaces the folder it points to; the link stays).
    """
    sortie = Path(os.path.abspath(sortie))
    if sortie.is_symlink():
        sortie = sortie.resolve()
    if not sortie.exists():
        return sortie
    if not sortie.is_dir():
        raise SortieRefusee(f"{sortie} est un fichier : le site statique s'écrit dans un "
                            "dossier (nouveau, vide ou contenant un site publié par essqpv).")
    presents = sorted(p.relative_to(sortie).as_posix() for p in sortie.rglob("*")
                      if not p.is_dir() or p.is_symlink())
    if not presents and not any(sortie.iterdir()):
        return sortie
    try:
        connus = set(json.loads((sortie / MARQUE_SITE).read_text("utf-8"))["fichiers"])
    except (OSError, ValueError, KeyError, TypeError):
        raise SortieRefusee(
            f"{sortie} n'est pas vide et ne contient pas de site publié par essqpv (fichier "
            f"{MARQUE_SITE} absent) : rien n'a été écrit ni supprimé. Choisissez un dossier "
            "nouveau ou vide.") from None
    etrangers = [p for p in presents if p not in connus and p != MARQUE_SITE]
    if etrangers:
        raise SortieRefusee(
            f"{sortie} contient {len(etrangers)} fichier(s) qu'essqpv n'a pas écrit(s) "
            f"({', '.join(etrangers[:3])}{'…' if len(etrangers) > 3 else ''}) : rien n'a été "
            "écrit ni supprimé. Déplacez-les ou choisissez un autre dossier.")
    return sortie


def _droits_publics(racine: Path) -> list[str]:
    """Folders 755, files 644 (a web server running as another user reads them); returns
    the files, relative to ``racine``."""
    fichiers = []
    os.chmod(racine, 0o755)
    for dossier, sous, noms in os.walk(racine):
        for n in sous:
            os.chmod(os.path.join(dossier, n), 0o755)
        for n in noms:
            chemin = os.path.join(dossier, n)
            os.chmod(chemin, 0o644)
            fichiers.append(Path(chemin).relative_to(racine).as_posix())
    return sorted(fichiers)


def _nettoyer_restes(sortie: Path) -> None:
    """Remove the temporary folders of earlier publications of ``sortie`` that died."""
    from essqpv.garde_fous import processus_vivant
    motif = re.compile(r"\." + re.escape(sortie.name) + r"\.(tmp|ancien)-(?P<pid>[0-9]+)")
    if not sortie.parent.is_dir():
        return
    for p in sortie.parent.iterdir():
        m = motif.fullmatch(p.name)
        if m and p.is_dir() and not p.is_symlink() and not processus_vivant(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True)


def _ecrire(chemin: Path, contenu: bytes) -> None:
    chemin.parent.mkdir(parents=True, exist_ok=True)
    chemin.write_bytes(contenu)


def _tous_les_etablissements(donnees: Donnees, code: str, perimetre: str, millesime: str,
                             en_qpv: bool | None, limite: int) -> tuple[int, list[dict]]:
    """Total and the first ``limite`` establishments (pages of the base's maximum size)."""
    lignes: list[dict] = []
    page, total = 1, 0
    while len(lignes) < limite:
        r = donnees.etablissements(code, perimetre, millesime, en_qpv, page, TAILLE_PAGE_MAX)
        total = r["total"]
        lignes.extend(r["etablissements"])
        if len(r["etablissements"]) < TAILLE_PAGE_MAX:
            break
        page += 1
    return total, lignes[:limite]


def _territoires(donnees: Donnees, millesimes: list[str], perimetres: dict[str, list[str]],
                 racines: list[str]) -> list[dict]:
    """The territories to publish, all of the publication plan: France always, then for each
    root territory itself and the territories of the plan it contains (régions and
    départements for France, its EPCI and communes with QPV, its QPV)."""
    from essqpv.territoires import DROM, table_communes
    publies: dict[str, dict] = {}
    for m in millesimes:
        for t in donnees.territoires_publies(m):
            publies.setdefault(t["code"], t)
    codes: list[str] = ["FR"]
    table = table_communes().select("commune", "departement", "region", "epci").unique(
        "commune")
    for racine in racines:
        t = donnees.territoire_publie(racine, millesimes[0])
        codes.append(t["code"])
        niveau, valeur = t["niveau"], t["code"].split(":", 1)[-1]
        if niveau == "france":
            codes += list(publies)
            continue
        if niveau == "qpv":
            continue
        if niveau == "region":
            from essqpv import reference
            codes += [f"DEP:{d['code']}" for d in reference.departements()
                      if d.get("region") == valeur]
        for m in millesimes:
            for p in perimetres[m]:
                if donnees.publication().publie(t["code"], m):
                    codes += [f"QPV:{r['code_qp']}" for r in donnees.quartiers(t["code"], p, m)]
        colonne = {"metropole": None, "drom": None, "region": "region",
                   "departement": "departement", "epci": "epci", "commune": "commune"}[niveau]
        for commune, dep, reg, epci in table.iter_rows():
            if niveau == "metropole":
                dedans = bool(dep) and not dep.startswith(("97", "98"))
            elif niveau == "drom":
                dedans = dep in DROM
            else:
                dedans = {"region": reg, "departement": dep, "epci": epci,
                          "commune": commune}[colonne] == valeur
            if dedans and f"COM:{commune}" in publies:
                codes.append(f"COM:{commune}")
                if epci:
                    codes.append(f"EPCI:{epci}")
    sortie, vus = [], set()
    for code in codes:
        if code in publies and code not in vus:
            vus.add(code)
            sortie.append(publies[code])
    return sortie


def publier(base: Path | str, sortie: Path | str, millesimes: list[str] | None = None,
            territoires: list[str] | None = None, fichiers: str = "departements",
            rapports: bool = True,
            progression: Callable[[int, int, str], None] | None = None,
            processus: int = 4) -> dict:
    """Write the dashboard as a static site (no server needed to read it).

    Parameters
    ----------
    base : Path
        The DuckDB base.
    sortie : Path
        Folder of the site: new, empty, or holding an earlier site of essqpv and nothing
        else (anything else is refused, nothing deleted); written in a temporary sibling
        folder, then swapped in. Folders 755, files 644.
    millesimes : list of str, optional
        Vintages to publish (default: every vintage of the base).
    territoires : list of str, optional
        Publish these territories and what they contain (EPCI and communes with QPV, QPV;
        régions and départements for France) — default ``["FR"]``, the whole country.
        France entière is always published (the dashboard compares with it).
    fichiers : str
        Which territories get their PDF report and exports: ``"tous"``, ``"departements"``
        (France, METRO, DROM, régions, départements) or ``"aucun"``.
    rapports : bool
        Include the PDF reports (a few seconds each); False keeps the exports only.
    progression : callable, optional
        Called with (done, total, message) as territories are written.
    processus : int
        Threads computing the JSON of the territories (the base is read-only).

    Returns
    -------
    dict
        ``dossier``, ``territoires``, ``fichiers`` (count), ``taille_mo``.

    Raises
    ------
    ParametreInvalide
        Unknown ``fichiers`` level or vintage. Errors of the base pass through.
    SortieRefusee
        ``sortie`` holds files this tool did not write, or cannot be written.
    """
    from essqpv.web.app import STATIQUE, environnement_gabarits
    if fichiers not in NIVEAUX_FICHIERS:
        raise ParametreInvalide(f"Niveau de fichiers inconnu : « {fichiers} » ; attendu "
                                f"{', '.join(NIVEAUX_FICHIERS)}.")
    donnees = Donnees(base, taille_cache=512)
    tous = [str(m["millesime"]) for m in donnees.millesimes()]
    choisis = [donnees.millesime(m) for m in millesimes] if millesimes else tous
    choisis = [m for m in tous if m in choisis]  # newest first, no duplicates
    perimetres = {m: donnees.contexte(m)["perimetres"] for m in choisis}
    signaler = progression or (lambda fait, total, message: None)

    sortie = _verifier_sortie(Path(sortie))
    try:
        sortie.parent.mkdir(parents=True, exist_ok=True)
        _nettoyer_restes(sortie)
        travail = sortie.with_name(f".{sortie.name}.tmp-{os.getpid()}")
        if travail.exists():
            shutil.rmtree(travail)
        travail.mkdir()
    except OSError as exc:
        raise SortieRefusee(f"Impossible d'écrire le site dans {sortie.parent} : "
                            f"{cause_os(exc)}.") from None
    try:
        signaler(0, 1, "Liste des territoires")
        territoires = _territoires(donnees, choisis, perimetres, territoires or ["FR"])
        d = travail / "donnees"
        _ecrire(d / "territoires.json", json_octets(territoires))
        for niveau in ("regions", "departements"):
            _ecrire(d / "carte" / f"{niveau}.json", json_compact(donnees.contours(niveau)))
        fait = 0
        avec_initiatives = donnees.initiatives_disponibles()
        from essqpv.web import transition as _transition  # what the 2024 map changes
        avec_transition = _transition.avec_transition(donnees)
        # stored answers of the linked tables without a publisher of their own, as they are
        # (the transition has its own: essqpv.web.transition)
        genres_lies = sorted(donnees.publication().genres()
                             - {"indicateurs", "quartiers", "transition"})
        def un_territoire(t: dict, m: str) -> None:
            code, f = t["code"], nom_fichier(t["code"])
            if not donnees.publication().publie(code, m):
                return  # not in this vintage's plan (a QPV of another geography)
            for p in perimetres[m]:
                racine = d / m / p
                _ecrire(racine / "indicateurs" / f"{f}.json",
                        donnees.indicateurs_octets(code, p, m))
                _ecrire(racine / "quartiers" / f"{f}.json",
                        donnees.quartiers_octets(code, p, m))
                for genre in genres_lies:  # the linked tables' stored answers, as they are
                    corps = donnees.publication().octets(genre, code, p, m)
                    if corps is not None:
                        _ecrire(racine / genre / f"{f}.json", corps)
                _publier_etablissements(donnees, racine, code, f, p, m)
            if avec_transition:
                _transition.publier(donnees, d / m / "transition", t, m, _ecrire)
            if avec_initiatives and m == choisis[0]:
                _ecrire(d / "initiatives" / f"{f}.json",
                        json_octets(donnees.initiatives(code) or []))

        avec_fichiers = [t for t in territoires if fichiers == "tous" or (
            fichiers == "departements" and t["niveau"] in _NIVEAUX_DEPARTEMENTS)]
        total = len(territoires) * len(choisis) + len(avec_fichiers) * len(choisis)
        for m in choisis:
            _ecrire(d / m / "carte" / "qpv.json", json_compact(donnees.contours_qpv(m)))
            with ThreadPoolExecutor(max_workers=max(1, processus)) as pool:
                travaux = {pool.submit(un_territoire, t, m): t for t in territoires}
                for fini in as_completed(travaux):
                    fini.result()
                    fait += 1
                    signaler(fait, total, f"{m} · {travaux[fini]['libelle']}")
            # reports and exports one at a time (matplotlib is not thread-safe)
            manifeste: dict[str, dict] = {}
            for t in avec_fichiers:
                manifeste[t["code"]] = _publier_fichiers(
                    donnees, travail, t["code"], nom_fichier(t["code"]), m,
                    perimetres[m] if rapports else [], m == tous[0])
                fait += 1
                signaler(fait, total, f"{m} · fichiers · {t['libelle']}")
            _ecrire(d / m / "telechargements.json", json_octets(manifeste))
        # the series since 2008, when the base holds them (essqpv.web.historique: their
        # stored answers are written above, with the other linked tables)
        from essqpv.web.historique import publier_evolution
        avec_evolution = publier_evolution(donnees, d, territoires, choisis)
        # the dashboard page and its assets
        ctx = {**donnees.contexte(choisis[0]), "millesimes": choisis}
        page = environnement_gabarits().get_template("index.html").render(
            ctx=ctx, territoire=donnees.territoire("FR"), perimetre="strict", mode="statique",
            racine="", lien_json=f"donnees/{choisis[0]}/strict/indicateurs/FR.json",
            avec_initiatives=avec_initiatives, avec_transition=avec_transition,
            avec_evolution=avec_evolution)
        (travail / "index.html").write_text(page, encoding="utf-8")
        shutil.copytree(STATIQUE, travail / "static")
        ecrits = _droits_publics(travail)
        (travail / MARQUE_SITE).write_text(json.dumps(
            {"outil": "essqpv", "fichiers": ecrits}, ensure_ascii=False), "utf-8")
        os.chmod(travail / MARQUE_SITE, 0o644)
        if sortie.exists():
            _verifier_sortie(sortie)  # (again: files may have been added meanwhile)
            ancien = sortie.with_name(f".{sortie.name}.ancien-{os.getpid()}")
            sortie.rename(ancien)
            travail.rename(sortie)
            shutil.rmtree(ancien)
        else:
            travail.rename(sortie)
    except BaseException:
        shutil.rmtree(travail, ignore_errors=True)
        raise
    signaler(total, total, "Publication terminée")
    compte = [p for p in sortie.rglob("*") if p.is_file()]
    return {"dossier": str(sortie), "territoires": len(territoires), "fichiers": len(compte),
            "taille_mo": sum(p.stat().st_size for p in compte) / 1e6}


def _publier_etablissements(donnees: Donnees, racine: Path, code: str, f: str, p: str,
                            m: str) -> None:
    """Map points and the first pages of the list of the establishments in QPV.

    The published list holds the establishments in QPV only (the subject of the
    observatory); the API also lists the others.
    """
    limite = max(POINTS_MAX, TAILLE_LISTE * PAGES_LISTE_MAX)
    t = donnees.territoire(code)
    total, lignes = _tous_les_etablissements(donnees, code, p, m, True, limite)
    points = lignes[:POINTS_MAX]
    _ecrire(racine / "points" / f"{f}.json", json_compact(
        {"territoire": t, "millesime": m, "perimetre": p, "total": total, "page": 1,
         "taille": max(len(points), 1), "etablissements": points}))
    pages = max(1, min(PAGES_LISTE_MAX, -(-total // TAILLE_LISTE)))
    for n in range(1, pages + 1):
        morceau = lignes[(n - 1) * TAILLE_LISTE:n * TAILLE_LISTE]
        _ecrire(racine / "etablissements" / f / f"qpv-{n}.json", json_octets(
            {"territoire": t, "millesime": m, "perimetre": p, "total": total, "page": n,
             "taille": TAILLE_LISTE, "pages_publiees": pages, "etablissements": morceau}))


def _publier_fichiers(donnees: Donnees, travail: Path, code: str, f: str, m: str,
                      perimetres: list[str], exports: bool) -> dict:
    """PDF reports (one per perimeter) and, for the newest vintage, the exports."""
    from essqpv.web.app import produire_export, produire_rapport
    dossier = travail / "telechargements" / m
    entree: dict = {"rapport": {}}
    for p in perimetres:
        with tempfile.TemporaryDirectory() as tmp:
            chemin = produire_rapport(donnees.base, code, p, m, Path(tmp))
            cible = dossier / p / f"essqpv-{f}-{p}-{m}.pdf"
            cible.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(chemin), cible)
        entree["rapport"][p] = cible.relative_to(travail).as_posix()
    if exports:
        for fmt in ("xlsx", "csv"):
            with tempfile.TemporaryDirectory() as tmp:
                chemin = produire_export(donnees.base, code, fmt, Path(tmp))
                cible = dossier / f"essqpv-{f}-{m}{chemin.suffix}"
                cible.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(chemin), cible)
            entree[fmt] = cible.relative_to(travail).as_posix()
    return entree
