"""Command ``indicateurs``: the protected indicators of a territory."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from essqpv.cli._commun import json_texte, sortie


def _nombre(v, decimales: int = 0) -> str:
    if v is None:
        return "s"
    texte = f"{v:,.{decimales}f}".replace(",", "\u202f").replace(".", ",")
    return texte[1:] if texte.startswith("-") and not texte.strip("-0,\u202f") else texte


def _pct(v) -> str:
    return "s" if v is None else _nombre(100 * v, 1) + " %"


def afficher_texte(r: dict) -> None:
    """Readable French tables of an answer."""
    t = r["territoire"]
    sortie.print(f"[bold]{t['libelle']}[/] ({t['code']}) — millésime {r['millesime']}, "
                 f"périmètre {r['perimetre']}, géographie QPV {r['geographie_qpv']}")
    for a in r["avertissements"]:
        sortie.print(f"[yellow]⚠ {a}[/]")
    c = r["chiffres_cles"]
    k = Table(title="Chiffres clés de l'ESS en QPV", title_justify="left")
    k.add_column("Indicateur")
    k.add_column("Valeur", justify="right")
    k.add_row("Établissements employeurs de l'ESS en QPV", _nombre(c["etablissements_employeurs"]))
    for fam, part in c["parts_familles"].items():
        k.add_row(f"  part : {fam.replace('_', ' ')}", "–" if part is None else _pct(part))
    suffixe = " (estimation)" if c["estime"] else ""
    k.add_row("Salariés" + suffixe, _nombre(c["salaries"]))
    for cle, lib in (("part_femmes", "Part des femmes"), ("part_cdi", "Part des CDI"),
                     ("part_contrats_aides", "Part des contrats aidés"),
                     ("part_temps_complet", "Part des temps complets")):
        v = c[cle]
        k.add_row(lib, "n.d." if v is None and cle not in c["secret"] else _pct(v))
    if c["part_emploi_ess_en_qpv"] is not None or "part_emploi_ess_en_qpv" in c["secret"]:
        k.add_row("Part de l'emploi ESS du territoire située en QPV",
                  _pct(c["part_emploi_ess_en_qpv"]))
    k.add_row("Salariés de l'ESS du territoire", _nombre(c["salaries_ess_territoire"]))
    k.add_row("Établissements en QPV (employeurs ou non)", _nombre(r["etablissements_en_qpv"]))
    sortie.print(k)
    s = Table(title="Tableau 3 — Salariés par secteur, QPV et France", title_justify="left")
    for col, just in (("Secteur", "left"), ("Salariés en QPV", "right"), ("Part QPV", "right"),
                      ("Part France", "right"), ("Écart (points)", "right")):
        s.add_column(col, justify=just)
    for ligne in r["tableau_secteurs"]:
        s.add_row(ligne["secteur"], _nombre(ligne["salaries_qpv"]), _pct(ligne["part_qpv"]),
                  _pct(ligne["part_france"]),
                  "s" if ligne["ecart_points"] is None else _nombre(ligne["ecart_points"], 1))
    sortie.print(s)
    if "regions" in r:
        g = Table(title="Carte 1 — Salariés de l'ESS en QPV par région", title_justify="left")
        for col in ("Région", "Employeurs en QPV", "Salariés en QPV", "Part en QPV"):
            g.add_column(col, justify="left" if col == "Région" else "right")
        for ligne in r["regions"]:
            g.add_row(ligne["libelle"], _nombre(ligne["etablissements_employeurs"]),
                      _nombre(ligne["salaries"]), _pct(ligne["part_emploi_ess_en_qpv"]))
        sortie.print(g)
    if r["secret"]:
        sortie.print("s : secret statistique (règles de l'Insee : moins de 3 établissements, ou un "
                     "établissement de plus de 85 % de l'effectif ; secret secondaire).")
    sortie.print("[dim]Sources : " + ", ".join(
        f"{x.get('fichier')} ({x.get('producteur', '')})" for x in r["sources"]) + "[/]")


def en_csv(r: dict) -> str:
    """The sector table and key figures as CSV (one table after the other)."""
    f = io.StringIO()
    from essqpv.csv_sur import ecrivain
    w = ecrivain(f)  # no formula runs (csv_sur)
    w.writerow(["tableau", "ligne", "indicateur", "valeur", "secret"])
    for cle, v in r["chiffres_cles"].items():
        if isinstance(v, dict):
            continue
        w.writerow(["chiffres_cles", "", cle, "" if v is None else v,
                    r["chiffres_cles"]["secret"].get(cle, "")])
    for ligne in r["tableau_secteurs"]:
        for cle in ("salaries_qpv", "part_qpv", "part_france", "ecart_points"):
            v = ligne[cle]
            w.writerow(["tableau_secteurs", ligne["secteur"], cle, "" if v is None else v,
                        ligne["secret"].get(cle, "")])
    for ligne in r.get("regions", []):
        for cle in ("etablissements_employeurs", "salaries", "part_emploi_ess_en_qpv",
                    "salaries_ess_territoire"):
            v = ligne[cle]
            w.writerow(["regions", ligne["region"], cle, "" if v is None else v,
                        ligne["secret"].get(cle, "")])
    return f.getvalue()


def indicateurs(
    territoire: str = typer.Option("FR", "--territoire", "-t",
                                   help="Territoire : FR, METRO, DROM, REG:11, DEP:93, "
                                        "EPCI:200054781, COM:93066, QPV:QP093001 ou un nom."),
    base: Path = typer.Option(Path("observatoire.duckdb"), "--base", "-b", help="Fichier de la base."),
    perimetre: str = typer.Option("strict", "--perimetre", "-p",
                                  help="strict, ou le périmètre élargi de la base (ex. 300m)."),
    millesime: Optional[str] = typer.Option(None, "--millesime", "-m",
                                            help="Millésime (par défaut : le plus récent)."),
    format: str = typer.Option("texte", "--format", "-f", help="texte, json ou csv."),
) -> None:
    """Indicateurs d'un territoire : la réponse stockée de la publication protégée par le
    secret statistique (calculée à la construction de la base, pour les territoires du plan
    de publication)."""
    from essqpv.errors import ParametreInvalide
    from essqpv.indicators import indicateurs as calculer
    if format not in ("texte", "json", "csv"):
        raise ParametreInvalide(f"Format inconnu : {format} (attendu : texte, json ou csv).")
    r = calculer(base, territoire, perimetre, millesime)
    if format == "json":
        sortie.print(json_texte(r), highlight=False, soft_wrap=True, markup=False)
    elif format == "csv":
        sortie.print(en_csv(r), end="", highlight=False, soft_wrap=True, markup=False)
    else:
        afficher_texte(r)


def register(app: typer.Typer) -> None:
    app.command("indicateurs")(indicateurs)
