"""Commands ``historique`` (build the series from INSEE's historical stocks) and
``evolution`` (print the protected series of a territory)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from essqpv.cli._commun import console, json_texte, sortie


def _nombre(x) -> str:
    return "s" if x is None else f"{x:,}".replace(",", "\u202f")


def _afficher_controle(r: dict) -> None:
    t = Table(title=f"Séries historiques — millésime {r['millesime']} "
                    f"(géographies QPV {', '.join(r['geographies'])})", title_justify="left")
    t.add_column("Fichier / étape")
    t.add_column("Lignes", justify="right")
    for role, libelle in (("etablissements_historique", "historique des établissements"),
                          ("unites_legales_historique", "historique des unités légales")):
        f = r[role]
        t.add_row(f"Lignes lues ({libelle})", _nombre(f["lignes_lues"]))
        t.add_row("  rejetées", _nombre(f["lignes_rejetees"]))
        for motif, n in f["rejets_par_motif"].items():
            t.add_row(f"    {motif}", _nombre(n))
        t.add_row("  acceptées", _nombre(f["acceptees"]))
        t.add_row("    périodes utiles (ESS)", _nombre(f["periodes_utiles"]))
    t.add_row("Établissements dans le champ au moins une fois",
              _nombre(r["etablissements_dans_le_champ_une_fois_au_moins"]))
    t.add_row("  sans position (non localisés)", _nombre(r["etablissements_sans_position"]))
    t.add_row(f"Dernier point ({r['millesime']}) : établissements",
              _nombre(r["dernier_point"]["etablissements"]))
    t.add_row("  millésime de la base", _nombre(r["millesime_de_la_base"]["etablissements"]))
    sortie.print(t)


def historique(
    etablissements_historique: Path = typer.Option(
        ..., "--etablissements-historique", "-E",
        help="Historique des établissements (StockEtablissementHistorique, CSV ou ZIP)."),
    unites_legales_historique: Path = typer.Option(
        ..., "--unites-legales-historique", "-U",
        help="Historique des unités légales (StockUniteLegaleHistorique, CSV ou ZIP)."),
    base: Path = typer.Option(Path("observatoire.duckdb"), "--base", "-b",
                              help="Base construite par « essqpv construire » ; les séries y "
                                   "sont enregistrées (elles remplacent les précédentes)."),
    millesime: Optional[str] = typer.Option(
        None, "--millesime", "-m", help="Millésime de la base dont les positions servent "
                                        "(par défaut : le plus récent)."),
    qpv: Optional[Path] = typer.Option(
        None, "--qpv", help="Contours de l'autre géographie QPV que celle du millésime "
                            "(par défaut : les contours 2015 embarqués quand le millésime "
                            "est en géographie 2024)."),
    etablissements: Optional[Path] = typer.Option(
        None, "--etablissements", "-e",
        help="Stock des établissements du millésime : place les établissements fermés "
             "depuis (sans lui, ils sont « non localisés »)."),
    geolocalisation: Optional[Path] = typer.Option(
        None, "--geolocalisation", "-g",
        help="Fichier de géolocalisation Insee du millésime (avec --etablissements)."),
    table_naf: Optional[Path] = typer.Option(
        None, "--table-naf", help="Table de passage NAF rév. 1 → rév. 2 de l'Insee (CSV, "
                                  "deux colonnes) ; sans elle, les périodes en NAF rév. 1 "
                                  "sont « Non classé »."),
    forcer: bool = typer.Option(
        False, "--forcer", help="Écrire les séries même si leur dernier point s'écarte de "
                                "plus de 5 % du millésime de la base (refusé sinon)."),
    format: str = typer.Option("texte", "--format", help="texte ou json."),
) -> None:
    """Construire les séries au 1er janvier de chaque année depuis 2008 (établissements de
    l'ESS en QPV et dans chaque territoire, employeurs, familles, secteurs, créations et
    fermetures) à partir des fichiers historiques de Sirene.

    Les effectifs salariés ne sont pas historisés par l'Insee : les séries comptent des
    établissements.
    """
    from essqpv.errors import ParametreInvalide
    from essqpv.historique import construire_historique
    if format not in ("texte", "json"):
        raise ParametreInvalide(f"Format inconnu : {format} (attendu : texte ou json).")
    if geolocalisation is not None and etablissements is None:
        raise ParametreInvalide("--geolocalisation demande aussi --etablissements (le stock "
                                "du millésime).")
    debut = time.perf_counter()
    with console.status("Séries historiques…") as statut:
        def etape(texte: str) -> None:
            console.print(f"[dim]{time.perf_counter() - debut:6.1f} s[/]  {texte}…")
            statut.update(texte + "…")
        r = construire_historique(
            base=base, etablissements_historique=etablissements_historique,
            unites_legales_historique=unites_legales_historique, millesime=millesime, qpv=qpv,
            table_naf=table_naf, etablissements=etablissements,
            geolocalisation=geolocalisation, forcer=forcer, progression=etape)
    for a in r.pop("avertissements", []):
        console.print(f"[yellow]Avertissement :[/] {a}")
    if format == "json":
        sortie.print(json_texte(r), highlight=False, soft_wrap=True)
    else:
        _afficher_controle(r)
        console.print(f"Séries écrites dans [bold]{base}[/] en "
                      f"{time.perf_counter() - debut:.1f} s.")


def evolution(
    territoire: str = typer.Argument("FR", help="Territoire : FR, REG:11, DEP:93, EPCI:…, "
                                                "COM:93013, QPV:QP093001 ou un nom."),
    base: Path = typer.Option(Path("observatoire.duckdb"), "--base", "-b", help="Fichier de la base."),
    geographie: Optional[str] = typer.Option(None, "--geographie",
                                             help="Géographie QPV : 2024 ou 2015."),
    format: str = typer.Option("texte", "--format", help="texte ou json."),
) -> None:
    """Afficher l'évolution de l'ESS du territoire au 1er janvier de chaque année (la
    réponse publiée : des nombres d'établissements, publics, qu'aucune case secrète ne
    masque ; pas de série des salariés, non historisés par l'Insee)."""
    from essqpv.errors import ParametreInvalide
    from essqpv.historique import evolution as calculer
    if format not in ("texte", "json"):
        raise ParametreInvalide(f"Format inconnu : {format} (attendu : texte ou json).")
    s = calculer(base, territoire, geographie)
    if format == "json":
        sortie.print(json_texte(s), highlight=False, soft_wrap=True)
        return
    t = Table(title=f"Évolution de l'ESS — {s['territoire']['libelle']} — géographie QPV "
                    f"{s['geographie_qpv']} (fixe sur toute la série)", title_justify="left")
    t.add_column("Au")
    t.add_column("En QPV", justify="right")
    t.add_column("dont employeurs", justify="right")
    avec_t = "ensemble" in s
    if avec_t:
        t.add_column("Territoire", justify="right")
    t.add_column("Part localisée", justify="right")
    t.add_column("France entière", justify="right")
    for i, p in enumerate(s["points"]):
        part = s["part_localisee"][i]
        ligne = [p, _nombre(s["qpv"]["etablissements"][i]), _nombre(s["qpv"]["employeurs"][i])]
        if avec_t:
            ligne.append(_nombre(s["ensemble"]["etablissements"][i]))
        ligne += ["s" if part is None else f"{100 * part:.1f} %",
                  _nombre(s["france"]["etablissements"][i])]
        t.add_row(*ligne)
    sortie.print(t)
    for a in s["avertissements"]:
        sortie.print(f"[yellow]{a}[/]")
    if s["synthetique"]:
        from essqpv.config import MARQUE_SYNTHETIQUE
        sortie.print(f"[bold yellow]⚠ {MARQUE_SYNTHETIQUE}[/]")


def register(app: typer.Typer) -> None:
    app.command("historique")(historique)
    app.command("evolution")(evolution)
