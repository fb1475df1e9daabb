"""Commands ``rapport`` (HTML, PDF, slides) and ``exporter`` (Excel, CSV, Parquet, GeoPackage)."""
from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from essqpv.cli._commun import console


class FormatRapport(str, Enum):
    html = "html"
    pdf = "pdf"
    diapos = "diapos"


class FormatExport(str, Enum):
    xlsx = "xlsx"
    csv = "csv"
    parquet = "parquet"
    gpkg = "gpkg"
    geojson = "geojson"


def register(app: typer.Typer) -> None:
    """Add ``rapport`` and ``exporter`` to the command line."""

    @app.command("rapport")
    def rapport(
        base: Path = typer.Option(..., "--base", "-b", help="Base DuckDB construite par "
                                  "« essqpv construire »."),
        territoire: str = typer.Option(..., "--territoire", "-t", help="Territoire : FR, METRO, "
                                       "DROM, REG:11, DEP:93, EPCI:…, COM:93066, QPV:QP093001 "
                                       "ou un nom (« Seine-Saint-Denis »)."),
        perimetre: str = typer.Option("strict", "--perimetre", "-p", help="Périmètre : "
                                      "« strict » (dans le QPV) ou « 300m » (QPV + tampon)."),
        millesime: str | None = typer.Option(None, "--millesime", "-m",
                                                help="Millésime AAAA-MM (le plus récent par "
                                                "défaut)."),
        format: FormatRapport = typer.Option(FormatRapport.html, "--format", "-f",
                                             help="html (un seul fichier autonome), pdf (A4) "
                                             "ou diapos (PDF 16:9)."),
        sortie: Path = typer.Option(Path("."), "--sortie", "-o",
                                    help="Dossier (ou fichier) de sortie."),
    ) -> None:
        """Écrire le rapport territorial : chiffres clés, cartes, secteurs, modèles, sources."""
        from essqpv.outputs import rapport as ecrire_rapport
        with console.status(f"Rapport {format.value} pour {territoire}…"):
            chemin = ecrire_rapport(base, territoire, perimetre=perimetre, millesime=millesime,
                                    format=format.value, sortie=sortie)
        console.print(f"Rapport écrit : [bold]{chemin}[/]")

    @app.command("exporter")
    def exporter(
        base: Path = typer.Option(..., "--base", "-b", help="Base DuckDB construite par "
                                  "« essqpv construire »."),
        territoire: str | None = typer.Option(None, "--territoire", "-t",
                                                 help="Territoire (FR par défaut)."),
        format: FormatExport = typer.Option(FormatExport.xlsx, "--format", "-f",
                                            help="xlsx (classeur mis en forme), csv et parquet "
                                            "(un fichier par tableau), gpkg (couches QPV et "
                                            "établissements), geojson."),
        perimetre: str = typer.Option("strict", "--perimetre", "-p",
                                      help="Périmètre : « strict » ou « 300m »."),
        millesime: str | None = typer.Option(None, "--millesime", "-m",
                                                help="Millésime AAAA-MM (le plus récent par "
                                                "défaut)."),
        crs: int = typer.Option(4326, "--crs", help="Système de coordonnées du GeoPackage : "
                                "4326 (WGS84) ou 2154 (Lambert-93)."),
        sortie: Path = typer.Option(Path("."), "--sortie", "-o", help="Dossier de sortie."),
    ) -> None:
        """Exporter les tableaux protégés par le secret statistique (Excel, CSV, Parquet, SIG)."""
        from essqpv.outputs.exports import exporter as exporter_tables
        with console.status(f"Export {format.value}…"):
            chemins = exporter_tables(base, territoire, format=format.value, sortie=sortie,
                                      perimetre=perimetre, millesime=millesime, crs=crs)
        for chemin in chemins:
            console.print(f"Écrit : [bold]{chemin}[/]")
