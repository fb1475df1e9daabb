"""Commands ``construire`` and ``controle``: build the base, print its reconciliation."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from essqpv.cli._commun import console, json_texte, sortie


def _afficher_controle(rapport: dict) -> None:
    t = Table(title=f"Réconciliation — millésime {rapport['millesime']}", title_justify="left")
    t.add_column("Étape")
    t.add_column("Lignes", justify="right")

    def ligne(libelle: str, valeur, retrait: int = 0) -> None:
        t.add_row("  " * retrait + libelle, f"{valeur:,}".replace(",", "\u202f"))

    ligne("Lignes lues (établissements)", rapport["lignes_lues"])
    ligne("rejetées", rapport["lignes_rejetees"], 1)
    for motif, n in rapport["rejets_par_motif"].items():
        ligne(motif, n, 2)
    ligne("acceptées", rapport["acceptees"], 1)
    ligne("fermées", rapport["fermees"], 2)
    ligne("actives", rapport["actives"], 2)
    ligne("hors ESS", rapport["non_ess"], 3)
    ligne("dont sans unité légale", rapport["etablissements_sans_unite_legale"], 4)
    ligne("ESS", rapport["ess"], 3)
    ligne("exclues (activité)", rapport["exclues_activite"], 4)
    ligne("dans le périmètre", rapport["dans_perimetre"], 4)
    ligne("non localisées", rapport["non_localisees"], 5)
    for motif, n in rapport["non_localisees_par_motif"].items():
        ligne(motif, n, 6)
    ligne("localisées", rapport["localisees"], 5)
    if "geocodage_ban" in rapport:  # placed from their address (BAN geocoder)
        ligne("dont placées par leur adresse (BAN)", rapport["geocodage_ban"]["localisees"], 6)
    ligne("hors QPV", rapport["hors_qpv"], 6)
    ligne("en QPV (périmètre strict)", rapport["en_qpv"], 6)
    for fichier in ("unites_legales", "geolocalisation", "emplois"):
        if fichier in rapport:
            f = rapport[fichier]
            ligne(f"Lignes lues ({fichier.replace('_', ' ')})", f["lignes_lues"])
            ligne("rejetées", f["lignes_rejetees"], 1)
            for motif, n in f["rejets_par_motif"].items():
                ligne(motif, n, 2)
    sortie.print(t)
    for a in rapport.get("avertissements") or []:
        sortie.print(f"Avertissement : {a}", highlight=False, soft_wrap=True)
    if "accord_qpv_insee" in rapport:
        a = rapport["accord_qpv_insee"]
        taux = a["concordantes"] / a["comparees"] if a["comparees"] else 1
        sortie.print(f"Accord avec le code QPV de l'Insee ({a['colonne']}) : "
                     f"{a['concordantes']:,} / {a['comparees']:,} ({taux:.1%}), "
                     f"{a['discordantes']:,} discordances".replace(",", "\u202f"))


def construire(
    etablissements: Path = typer.Option(..., "--etablissements", "-e",
                                        help="Stock des établissements (StockEtablissement, CSV ou ZIP)."),
    unites_legales: Path = typer.Option(..., "--unites-legales", "-u",
                                        help="Stock des unités légales (StockUniteLegale, CSV ou ZIP)."),
    millesime: str = typer.Option(..., "--millesime", "-m", help="Millésime AAAA-MM (ex. 2024-01)."),
    base: Path = typer.Option(Path("observatoire.duckdb"), "--base", "-b",
                              help="Fichier de la base DuckDB (créé ou complété)."),
    qpv: Optional[Path] = typer.Option(None, "--qpv",
                                       help="Contours des QPV (shapefile, GeoJSON, GeoPackage) ; "
                                            "par défaut les contours intégrés de la géographie "
                                            "choisie (--geographie)."),
    geographie: Optional[str] = typer.Option(None, "--geographie",
                                   help="Géographie prioritaire : 2024 (en vigueur, par défaut) "
                                        "ou 2015 (historique, comparaison avec les études "
                                        "publiées) ; avec --qpv, celle du fichier."),
    geolocalisation: Optional[Path] = typer.Option(
        None, "--geolocalisation", "-g", help="Fichier de géolocalisation Insee (facultatif)."),
    emplois: Optional[Path] = typer.Option(None, "--emplois",
                                           help="Fichier des emplois par établissement (facultatif)."),
    tampon: int = typer.Option(300, "--tampon", min=1, max=5000,
                               help="Distance du périmètre élargi, en mètres."),
    format: str = typer.Option("texte", "--format", help="texte ou json."),
    forcer: bool = typer.Option(False, "--forcer",
                                help="Construire même si le millésime paraît invraisemblable "
                                     "(stock vide, trop de rejets, trop peu d'établissements "
                                     "localisés…) ; les contrôles deviennent des "
                                     "avertissements enregistrés."),
) -> None:
    """Construire (ou remplacer) un millésime de la base à partir des fichiers officiels."""
    from essqpv.base import construire as construire_base
    from essqpv.config import Reglages

    debut = time.perf_counter()
    with console.status("Construction…") as statut:
        def etape(texte: str) -> None:
            console.print(f"[dim]{time.perf_counter() - debut:6.1f} s[/]  {texte}…")
            statut.update(texte + "…")
        rapport = construire_base(
            etablissements=etablissements, unites_legales=unites_legales, millesime=millesime,
            base=base, qpv=qpv, geolocalisation=geolocalisation, emplois=emplois,
            reglages=Reglages(tampon_m=tampon), progression=etape, forcer=forcer,
            geographie=geographie)
    if format == "json":
        for a in rapport.get("avertissements", []):
            console.print(f"[yellow]Avertissement :[/] {a}", highlight=False, soft_wrap=True)
        sortie.print_json(json_texte(rapport))
    else:
        _afficher_controle(rapport)
        console.print(f"Base écrite : [bold]{base}[/] en {time.perf_counter() - debut:.1f} s.")


def controle(
    base: Path = typer.Option(Path("observatoire.duckdb"), "--base", "-b", help="Fichier de la base."),
    millesime: Optional[str] = typer.Option(None, "--millesime", "-m",
                                            help="Un millésime (par défaut : tous)."),
    format: str = typer.Option("texte", "--format", help="texte ou json."),
    secret: bool = typer.Option(
        False, "--secret",
        help="Audit du secret statistique du plan de publication enregistré : les certificats "
             "de protection vérifiés sur toutes les relations d'additivité, et pour chaque "
             "case supprimée ou sensible l'intervalle qu'un attaquant ne peut pas réduire "
             "(exact par programmation linéaire sur les petits blocs) ; code de sortie 1 si "
             "une case est sous-protégée ou un certificat invalide."),
    pires: int = typer.Option(
        20, "--pires", min=1, max=10_000,
        help="Avec --secret : nombre de cases les moins protégées affichées."),
) -> None:
    """Afficher la réconciliation (lignes lues, rejetées, ESS, en QPV…) ou l'audit du secret."""
    from essqpv.base import controle as lire_controle
    from essqpv.errors import ParametreInvalide
    if format not in ("texte", "json"):
        raise ParametreInvalide(f"Format inconnu : {format} (attendu : texte ou json).")
    if secret:
        _controle_secret(base, millesime, format, pires)
        return
    rapports = lire_controle(base, millesime)
    if format == "json":
        sortie.print(json_texte(rapports if millesime is None else rapports[0]),
                     highlight=False, soft_wrap=True)
        return
    for r in rapports:
        _afficher_controle(r)


def _controle_secret(base: Path, millesime: Optional[str], format: str, pires: int) -> None:
    from essqpv.indicators.publication import audit_base, marge
    plan, intervalles, bilan = audit_base(base, millesime)
    sous = [iv for iv in intervalles if not iv.protegee]

    def ligne(iv) -> dict:
        tableau, territoire, perimetre, zone, ligne_ = plan.cles[iv.cellule]
        return {"tableau": tableau, "territoire": territoire, "perimetre": perimetre,
                "zone": zone, "ligne": ligne_, "publiee": bool(plan.publiee[iv.cellule]),
                "statut": plan.statuts[iv.cellule], "sensible": iv.sensible,
                "valeur": iv.valeur, "bas": iv.bas,
                "haut": None if iv.haut == float("inf") else iv.haut,
                "requis_bas": iv.requis_bas, "requis_haut": iv.requis_haut,
                "exact": iv.exact, "protegee": iv.protegee, "marge": marge(iv)}

    rapport = {"millesime": plan.millesime, "cellules": len(plan),
               "relations": len(plan.relations),
               "primaires": sum(1 for s in plan.statuts if s == "primaire"),
               "secondaires": sum(1 for s in plan.statuts if s == "secondaire"),
               "certificats": bilan["certificats"],
               "certificats_invalides": bilan["certificats_invalides"],
               "auditees": len(intervalles), "exactes": bilan["exactes"],
               "sous_protegees": len(sous),
               "pires": [ligne(iv) for iv in intervalles[:pires]]}
    if format == "json":
        sortie.print(json_texte(rapport), highlight=False, soft_wrap=True)
    else:
        t = Table(title=f"Secret statistique — millésime {plan.millesime} : les "
                        f"{min(pires, len(intervalles))} cases les moins protégées",
                  title_justify="left")
        for col in ("Territoire", "Périmètre", "Zone", "Ligne", "Statut", "Intervalle déduit",
                    "Intervalle requis"):
            t.add_column(col)
        for iv in intervalles[:pires]:
            d = ligne(iv)
            haut = "∞" if d["haut"] is None else f"{d['haut']:.1f}"
            t.add_row(d["territoire"], d["perimetre"], d["zone"], d["ligne"],
                      d["statut"] or ("non publiée" if not d["publiee"] else "publiée"),
                      f"[{d['bas']:.1f} ; {haut}]" + ("" if d["exact"] else " (au moins)"),
                      f"[{d['requis_bas']:.1f} ; {d['requis_haut']:.1f}]"
                      if d["sensible"] else "non réduit à une valeur")
        sortie.print(t)

        def nb(x: int) -> str:
            return f"{x:,}".replace(",", "\u202f")
        sortie.print(f"{nb(len(plan))} cases, {nb(len(plan.relations))} relations ; "
                     f"{nb(rapport['primaires'])} secrets primaires, "
                     f"{nb(rapport['secondaires'])} secondaires ; "
                     f"{nb(rapport['certificats'])} certificats vérifiés sur toutes les "
                     f"relations, {nb(rapport['certificats_invalides'])} invalides ; "
                     f"{nb(len(intervalles))} cases auditées ({nb(rapport['exactes'])} à "
                     f"l'intervalle exact), {nb(len(sous))} sous-protégées.")
        sortie.print("« (au moins) » : intervalle garanti par un certificat (l'attaquant ne "
                     "peut pas exclure ces valeurs) ; sans mention : intervalle exact "
                     "(programme linéaire de l'attaquant).")
    if sous or rapport["certificats_invalides"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("construire")(construire)
    app.command("controle")(controle)
