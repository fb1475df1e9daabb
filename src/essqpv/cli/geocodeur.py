"""``essqpv geocodeur installer|etat``: the offline address geocoder (BAN + addok)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from essqpv.cli._commun import console, json_texte, sortie
from essqpv.errors import ParametreInvalide


def _octets(v: int) -> str:
    for unite, taille in (("Go", 1 << 30), ("Mo", 1 << 20), ("ko", 1 << 10)):
        if v >= taille:
            return f"{v / taille:.1f} {unite}".replace(".", ",")
    return f"{v} o"


def _n(v: int) -> str:
    return f"{v:,}".replace(",", "\u202f")


def _empreintes(valeurs: list[str] | None) -> dict[str, str]:
    out = {}
    for v in valeurs or []:
        dep, egal, sha = v.partition("=")
        if not egal or not dep.strip() or not sha.strip():
            raise ParametreInvalide(f"--empreinte attend departement=SHA256 (reçu : « {v} »).")
        out[dep.strip()] = sha.strip()
    return out


def _afficher_etat(e: dict) -> None:
    if not e["installe"]:
        sortie.print(f"Aucun géocodeur installé (dossier {e['dossier']}). Installez les "
                     "départements utiles : essqpv geocodeur installer --departements 93,94",
                     highlight=False)
        return
    sortie.print(f"Géocodeur d'adresses installé dans {e['dossier']} "
                 f"(index {_octets(e['taille_octets'])} sur disque, "
                 f"{_octets(e.get('memoire_redis_octets') or 0)} en mémoire Redis ; "
                 f"installé le {e.get('installe_le', '?')}).", highlight=False)
    for d in e["departements"]:
        c = d.get("documents") or {}
        sortie.print(f"  {d['code']} {d['nom']} : BAN du {d['date_ban']}"
                     + (" (date du téléchargement)" if d.get("date_ban_source") ==
                        "telechargement" else "")
                     + f", {_n(c.get('numeros', 0))} numéros, {_n(c.get('street', 0))} voies, "
                     f"{_n(c.get('locality', 0))} lieux-dits, {_n(c.get('municipality', 0))} "
                     f"communes ; fichier {d['fichier']} ({_octets(d['taille_fichier'])}, "
                     f"SHA-256 {d['sha256'][:16]}…)", highlight=False)
    if e.get("recherche_exacte"):
        sortie.print("  Index des adresses écrites comme dans la BAN : présent (réponses sans "
                     "addok, méthode « exacte »).", highlight=False)
    else:
        sortie.print("  Index des adresses écrites comme dans la BAN : absent (index installé "
                     "par une version antérieure ; « essqpv geocodeur installer "
                     "--departements … » le construit).", highlight=False)
    v = e.get("versions") or {}
    sortie.print("Source : Base Adresse Nationale (BAN), Licence Ouverte 2.0 ; moteur addok "
                 + ", ".join(f"{k} {x}" for k, x in v.items()) + ".", highlight=False,
                 style="dim")


def register(app: typer.Typer) -> None:
    """Register ``essqpv geocodeur``."""
    groupe = typer.Typer(help="Géocodeur d'adresses hors ligne (Base Adresse Nationale + "
                              "addok) : installer des départements, voir ce qui est installé.",
                         no_args_is_help=True)
    app.add_typer(groupe, name="geocodeur")

    @groupe.command("installer")
    def installer(
        departements: str = typer.Option(..., "--departements", "-d",
                                         help="Départements à installer, séparés par des "
                                              "virgules (ex. 93,94 ; 2A ; 974)."),
        dossier: Optional[Path] = typer.Option(None, "--dossier", help="Dossier du géocodeur "
                                               "(par défaut $ESSQPV_GEOCODEUR ou "
                                               "~/.local/share/essqpv/geocodeur)."),
        url: Optional[str] = typer.Option(None, "--url", help="Adresse des fichiers avec "
                                          "{departement} (miroir ou dossier daté de la BAN) ; "
                                          "par défaut le dernier export addok de la BAN."),
        empreinte: Optional[list[str]] = typer.Option(None, "--empreinte",
                                                      help="Empreinte SHA-256 attendue : "
                                                           "93=… (répétable)."),
        remplacer: bool = typer.Option(False, "--remplacer", help="Installer exactement ces "
                                       "départements (par défaut : les ajouter à ceux déjà "
                                       "installés)."),
        forcer: bool = typer.Option(False, "--forcer", help="Télécharger de nouveau les "
                                    "fichiers déjà présents."),
        format_: str = typer.Option("texte", "--format", help="texte ou json."),
    ) -> None:
        """Télécharger les fichiers addok de la BAN des départements et construire l'index.

        Les fichiers sont repris s'ils ont été interrompus, leur taille est vérifiée (et leur
        empreinte si --empreinte) ; l'index est construit à côté de l'ancien et ne le
        remplace qu'une fois complet. essqpv démarre et arrête lui-même son serveur Redis.
        """
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from essqpv.geocodage import installer as installer_

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as barre:
            taches: dict[str, int] = {}

            def avancer(etape: str, fait: int, total: int | None) -> None:
                if etape == "index exact":
                    barre.add_task("Index des adresses écrites comme dans la BAN", total=None)
                    return
                if etape.startswith("import"):
                    if etape not in taches:
                        taches[etape] = barre.add_task(etape.replace("import", "Import"),
                                                       total=None)
                    barre.update(taches[etape], description=f"Import : {_n(fait)} documents "
                                 f"({etape.split(' ', 1)[1]})")
                    return
                if etape not in taches:
                    taches[etape] = barre.add_task(etape.replace("telechargement",
                                                                 "Téléchargement"), total=total)
                barre.update(taches[etape], completed=fait, total=total)

            r = installer_(departements, dossier, url=url, empreintes=_empreintes(empreinte),
                           remplacer=remplacer, forcer=forcer, progression=avancer)
        if format_ == "json":
            sortie.print(json_texte(r), highlight=False, soft_wrap=True)
            return
        for t in r["telechargements"]:
            etat = {"telecharge": "téléchargé", "repris": "téléchargement repris",
                    "deja_present": "déjà présent"}.get(t["statut"], t["statut"])
            sortie.print(f"{t['fichier']} : {etat} ({_octets(t['taille'])})", highlight=False)
        sortie.print(f"Index construit en {r['duree_s']:.1f} s.".replace(".", ",", 1),
                     highlight=False)
        _afficher_etat(r)

    @groupe.command("etat")
    def etat(
        dossier: Optional[Path] = typer.Option(None, "--dossier", help="Dossier du géocodeur."),
        format_: str = typer.Option("texte", "--format", help="texte ou json."),
    ) -> None:
        """Dire ce qui est installé : départements, date de la BAN, taille."""
        from essqpv.geocodage import etat as etat_

        e = etat_(dossier)
        if format_ == "json":
            sortie.print(json_texte(e), highlight=False, soft_wrap=True)
            return
        _afficher_etat(e)
