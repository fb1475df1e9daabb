"""Command ``demo``: the whole observatory on the embedded data, in one command."""
from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from essqpv.cli._commun import console, sortie
from essqpv.config import MARQUE_SYNTHETIQUE

DEPARTEMENT_DEMO = "DEP:93"


def demo(
    sortie_dossier: Path = typer.Option(Path("demo"), "--sortie", "-s",
                                        help="Dossier où tout est écrit."),
    graine: int = typer.Option(2024, "--graine", help="Graine du registre synthétique."),
    millesime: str = typer.Option("2024-01", "--millesime", "-m", help="Millésime AAAA-MM."),
    departement: str = typer.Option(DEPARTEMENT_DEMO, "--departement",
                                    help="Territoire du second rapport."),
) -> None:
    """Démonstration : registre synthétique, base, indicateurs, rapports et exports.

    Tout est construit à partir des données embarquées, sans réseau ; chaque sortie porte
    la mention « données synthétiques de démonstration — ne pas citer ».
    """
    from essqpv.base import construire
    from essqpv.indicators import indicateurs
    from essqpv.synthese import generer

    debut = time.perf_counter()
    d = sortie_dossier
    d.mkdir(parents=True, exist_ok=True)
    registre = d / "registre"
    base = d / "observatoire.duckdb"
    ecrits: list[tuple[str, Path]] = []

    def etape(texte: str) -> None:
        console.print(f"[dim]{time.perf_counter() - debut:6.1f} s[/]  {texte}")

    etape("Génération du registre synthétique (schémas officiels Sirene)…")
    fichiers = generer(registre, profil="demo", graine=graine, millesime=millesime)["fichiers"]
    etape("Construction de la base…")
    rapport = construire(
        etablissements=fichiers["etablissements"], unites_legales=fichiers["unites_legales"],
        geolocalisation=fichiers["geolocalisation"], emplois=fichiers["emplois"],
        millesime=millesime, base=base, synthetique=True,
        progression=lambda t: etape(f"  {t}…"))
    ecrits.append(("Base DuckDB", base))

    etape("Séries historiques depuis 2008 (fichiers historiques synthétiques)…")
    from essqpv.historique import construire_historique
    from essqpv.synthese import generer_historiques
    historiques = generer_historiques(fichiers, millesime, graine)["fichiers"]
    construire_historique(
        base=base, etablissements_historique=historiques["etablissements_historique"],
        unites_legales_historique=historiques["unites_legales_historique"],
        etablissements=fichiers["etablissements"], geolocalisation=fichiers["geolocalisation"],
        progression=lambda t: etape(f"  {t}…"))

    etape("Annuaire des initiatives…")
    try:
        from essqpv.directory import importer_annuaire_initial, importer_relais
        importer_annuaire_initial(base)
        importer_relais(base)
    except ImportError:
        pass

    etape("Indicateurs…")
    for t in ("FR", departement):
        r = indicateurs(base, t)
        f = d / f"indicateurs_{t.replace(':', '_')}.json"
        f.write_text(json.dumps(r, ensure_ascii=False, indent=2), "utf-8")
        ecrits.append((f"Indicateurs {r['territoire']['libelle']} (JSON)", f))

    try:
        from essqpv.outputs import exporter
        from essqpv.outputs import rapport as ecrire_rapport
    except ImportError:
        exporter = ecrire_rapport = None
    if ecrire_rapport is not None:
        etape("Rapports (HTML, PDF, diapositives)…")
        for t, formats in (("FR", ("html", "pdf", "diapos")), (departement, ("html", "pdf"))):
            for fmt in formats:
                p = ecrire_rapport(base, t, format=fmt, sortie=d / "rapports")
                ecrits.append((f"Rapport {t} ({fmt})", p))
        etape("Exports (Excel, GeoPackage, CSV)…")
        for fmt in ("xlsx", "gpkg", "csv"):
            chemins = exporter(base, territoire=None, format=fmt, sortie=d / "exports")
            if fmt == "csv":
                ecrits.append((f"Exports CSV ({len(chemins)} tableaux)", d / "exports"))
            else:
                ecrits.extend((f"Export {fmt}", p) for p in chemins)

    duree = time.perf_counter() - debut
    sortie.print()
    sortie.print(f"[bold yellow]⚠ {MARQUE_SYNTHETIQUE.upper()}[/]")
    def n(x: int) -> str:
        return f"{x:,}".replace(",", "\u202f")
    sortie.print(f"[bold]Démonstration terminée en {duree:.0f} s.[/] "
                 f"{n(rapport['dans_perimetre'])} établissements de l'ESS dans le périmètre, "
                 f"dont {n(rapport['en_qpv'])} en QPV.")
    for libelle, chemin in ecrits:
        sortie.print(f"  • {libelle} : {chemin}")
    sortie.print("\nPour ouvrir le tableau de bord :\n"
                 f"  essqpv servir --base {base}\n"
                 "puis ouvrez http://127.0.0.1:8000 dans un navigateur.")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
