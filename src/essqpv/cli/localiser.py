"""``essqpv localiser``: is this SIRET, point or file in a QPV?"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from essqpv.cli._commun import console, json_texte, sortie
from essqpv.errors import ParametreInvalide
from essqpv.placement import DISTANCE_MAX_M


def _perimetre(texte: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*(m)?\s*", texte or "")
    if not m:
        raise ParametreInvalide(f"Périmètre invalide : « {texte} » (par exemple 300m).")
    return int(m.group(1))


def _n(v: int) -> str:
    """French thousands separator (narrow no-break space)."""
    return f"{v:,}".replace(",", "\u202f")


def _texte_resultat(r: dict, tampon_m: int) -> list[str]:
    cle = f"qpv_code_{tampon_m}m"
    statut = r.get("statut")
    if statut != "localise":
        motifs = {"hors_zone": "le point est hors des territoires couverts (zone d'usage du "
                               "système de coordonnées)",
                  "sans_coordonnees": "coordonnées absentes",
                  "coordonnees_invalides": "coordonnées invalides",
                  "siret_absent": "SIRET absent de la base (pas un établissement ESS actif "
                                  "du millésime)",
                  "non_diffusible": "coordonnées non diffusibles ([ND])",
                  "qualite_xy_33": "point placé au hasard dans la commune (qualité 33)",
                  "hors_zone_crs": "coordonnées hors de la zone de leur système"}
        return [f"Non localisé : {motifs.get(statut, statut)}."]
    lignes = []
    if r.get("qpv_code"):
        lignes.append(f"Dans le QPV {r['qpv_code']} « {r.get('qpv_nom') or ''} » "
                      f"({r.get('qpv_communes') or ''}).")
    else:
        lignes.append("Hors QPV (périmètre strict).")
    if r.get(cle):
        d = r.get("distance_qpv_m")
        lignes.append(f"Périmètre {tampon_m} m : {r[cle]} (distance {d:g} m).")
    else:
        d = r.get("distance_qpv_m")
        lignes.append(f"Périmètre {tampon_m} m : aucun QPV" + (
            f" (le plus proche à {d:g} m)." if d is not None
            else f" à moins de {max(tampon_m, DISTANCE_MAX_M)} m."))
    return lignes


def register(app: typer.Typer) -> None:
    """Register ``essqpv localiser``."""

    @app.command("localiser")
    def localiser(
        siret: Optional[str] = typer.Option(None, "--siret", help="SIRET (14 chiffres) à "
                                            "chercher dans la base."),
        base: Optional[Path] = typer.Option(None, "--base", help="Base essqpv (fichier DuckDB) "
                                            "pour --siret ou un fichier de SIRET."),
        millesime: Optional[str] = typer.Option(None, "--millesime",
                                                help="Millésime de la base (AAAA-MM)."),
        lon: Optional[str] = typer.Option(None, "--lon", help="Longitude WGS84 (degrés)."),
        lat: Optional[str] = typer.Option(None, "--lat", help="Latitude WGS84 (degrés)."),
        x: Optional[str] = typer.Option(None, "--x", help="Abscisse dans le système --epsg."),
        y: Optional[str] = typer.Option(None, "--y", help="Ordonnée dans le système --epsg."),
        epsg: Optional[int] = typer.Option(None, "--epsg", help="Code EPSG de --x/--y ou des "
                                           "colonnes x/y d'un fichier (ex. 2154, 2975)."),
        adresse: Optional[str] = typer.Option(None, "--adresse", help="Adresse postale à "
                                              "géocoder (géocodeur installé par « essqpv "
                                              "geocodeur installer »)."),
        fichier: Optional[Path] = typer.Option(None, "--fichier", help="Fichier CSV ou XLSX "
                                               "à compléter."),
        sortie_fichier: Optional[Path] = typer.Option(None, "--sortie", help="Fichier produit "
                                                      "(.csv ou .xlsx ; par défaut "
                                                      "<fichier>_qpv)."),
        colonne_siret: Optional[str] = typer.Option(None, "--colonne-siret",
                                                    help="Nom de la colonne des SIRET."),
        colonne_lon: Optional[str] = typer.Option(None, "--colonne-lon",
                                                  help="Nom de la colonne des longitudes."),
        colonne_lat: Optional[str] = typer.Option(None, "--colonne-lat",
                                                  help="Nom de la colonne des latitudes."),
        colonne_x: Optional[str] = typer.Option(None, "--colonne-x", help="Nom de la colonne x."),
        colonne_y: Optional[str] = typer.Option(None, "--colonne-y", help="Nom de la colonne y."),
        colonne_epsg: Optional[str] = typer.Option(None, "--colonne-epsg",
                                                   help="Nom de la colonne du code EPSG."),
        colonne_adresse: Optional[str] = typer.Option(None, "--colonne-adresse",
                                                      help="Nom de la colonne des adresses "
                                                           "complètes."),
        colonne_numero: Optional[str] = typer.Option(None, "--colonne-numero",
                                                     help="Nom de la colonne du numéro."),
        colonne_voie: Optional[str] = typer.Option(None, "--colonne-voie",
                                                   help="Nom de la colonne de la voie."),
        colonne_code_postal: Optional[str] = typer.Option(None, "--colonne-code-postal",
                                                          help="Nom de la colonne du code "
                                                               "postal."),
        colonne_commune: Optional[str] = typer.Option(None, "--colonne-commune",
                                                      help="Nom de la colonne de la commune."),
        geocodeur: Optional[Path] = typer.Option(None, "--geocodeur", help="Dossier du "
                                                 "géocodeur d'adresses (par défaut celui "
                                                 "d'« essqpv geocodeur installer »)."),
        score_min: float = typer.Option(0.6, "--score-min", help="Score addok minimal d'une "
                                        "adresse trouvée au numéro (0 à 1) ; en dessous : "
                                        "à vérifier."),
        qpv: Optional[Path] = typer.Option(None, "--qpv", help="Autre fichier de contours des "
                                           "QPV (ex. le fichier officiel de l'ANCT à pleine "
                                           "précision) ; par défaut les contours intégrés de "
                                           "--geographie."),
        geographie: Optional[str] = typer.Option(None, "--geographie", help="Géographie "
                                                 "prioritaire des contours intégrés : 2024 (en "
                                                 "vigueur, par défaut) ou 2015 (historique)."),
        perimetre: str = typer.Option("300m", "--perimetre", help="Périmètre élargi (tampon), "
                                      "en mètres : 300m par défaut."),
        format_: str = typer.Option("texte", "--format", help="Format de sortie : texte ou "
                                    "json."),
    ) -> None:
        """Dire si un SIRET, un point ou chaque ligne d'un fichier est dans un QPV."""
        from essqpv import lookup

        if format_ not in ("texte", "json"):
            raise ParametreInvalide(f"Format inconnu : {format_} (texte ou json).")
        tampon = _perimetre(perimetre)
        if geographie is not None:
            from essqpv.sources.qpv import verifier_geographie
            geographie = verifier_geographie(geographie)
            if qpv is not None:
                raise ParametreInvalide("--qpv et --geographie s'excluent : la géographie d'un "
                                        "fichier de contours est celle de ses codes.")
            qpv = geographie  # an embedded geography: lookup reads "2015" / "2024" as such
        modes = [fichier is not None, siret is not None,
                 lon is not None or lat is not None, x is not None or y is not None,
                 adresse is not None]
        if sum(modes) != 1:
            raise ParametreInvalide("Indiquez une seule question : --siret, --lon/--lat, "
                                    "--x/--y/--epsg, --adresse ou --fichier.")
        if adresse is not None:
            _adresse(adresse, geocodeur, qpv, tampon, score_min, format_)
            return
        if fichier is not None:
            colonnes = {k: v for k, v in {"siret": colonne_siret, "lon": colonne_lon,
                                          "lat": colonne_lat, "x": colonne_x, "y": colonne_y,
                                          "epsg": colonne_epsg, "adresse": colonne_adresse,
                                          "numero": colonne_numero, "voie": colonne_voie,
                                          "code_postal": colonne_code_postal,
                                          "commune": colonne_commune}.items() if v}
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )
            with Progress(TextColumn("Localisation"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("lignes"),
                          TimeElapsedColumn(), console=console, transient=True) as barre:
                tache = barre.add_task("localiser", total=None)

                def avancer(fait: int, total: int) -> None:
                    barre.update(tache, completed=fait, total=total)

                resume = lookup.localiser_fichier(
                    fichier, sortie_fichier, colonnes=colonnes, couche=qpv, tampon_m=tampon,
                    base=base, millesime=millesime, epsg=epsg, progression=avancer,
                    geocodeur=geocodeur, score_min=score_min)
            if format_ == "json":
                sortie.print(json_texte(resume), highlight=False, soft_wrap=True)
                return
            p = resume["par_statut"]
            sortie.print(f"{_n(resume['lignes'])} lignes lues dans {fichier.name} "
                         f"(colonnes {', '.join(resume['colonnes'].values())}) ; "
                         f"{_n(resume['localisees'])} localisées, {_n(resume['dans_qpv'])} dans "
                         f"un QPV, {_n(resume['dans_tampon'])} à moins de {tampon} m.",
                         highlight=False)
            autres = {k: v for k, v in p.items() if k != "localise"}
            if autres:
                sortie.print("Non localisées : " + ", ".join(f"{k} {v}" for k, v in
                                                            autres.items()) + ".",
                             highlight=False)
            if resume.get("a_verifier"):
                sortie.print(f"{_n(resume['a_verifier'])} adresse(s) à vérifier (trouvées à la "
                             "voie ou à la commune, score bas ou ambiguës) : jamais déclarées "
                             "dans un QPV ; voir la colonne remarque.", highlight=False)
            sortie.print(f"Résultat écrit dans {resume['sortie']} ; sources et licences : "
                         f"{resume['sources']}.", highlight=False)
            if resume.get("source_adresses"):
                sortie.print(resume["source_adresses"], highlight=False, style="dim")
            _pied(resume["geographie_qpv"], resume["contours"], resume["avertissements"])
            return
        if siret is not None:
            if base is None:
                raise ParametreInvalide("--siret demande la base essqpv (--base).")
            r = lookup.localiser_siret(base, siret, millesime, couche=qpv)
            tampon_r = int(r["perimetre"].rstrip("m"))
            if format_ == "json":
                sortie.print(json_texte(r), highlight=False, soft_wrap=True)
                return
            e = r.get("etablissement") or {}
            sortie.print(f"SIRET {r['siret']}" + (f" — {e.get('denomination')}"
                                                  if e.get("denomination") else "")
                         + f" (millésime {r['millesime']})", highlight=False)
            for ligne in _texte_resultat(r, tampon_r):
                sortie.print(ligne, highlight=False)
            _pied(r["geographie_qpv"], "base essqpv", r["avertissements"])
            return
        for option, valeur in (("--lon", lon), ("--lat", lat), ("--x", x), ("--y", y)):
            _verifier_fini(option, valeur)
        if lon is not None or lat is not None:
            df = lookup.localiser_points(lon, lat, couche=qpv, tampon_m=tampon)
        else:
            if epsg is None:
                raise ParametreInvalide("--x/--y demandent --epsg (par exemple 2154).")
            df = lookup.localiser_xy(x, y, epsg, couche=qpv, tampon_m=tampon)
        r = df.to_dicts()[0]
        prov = lookup.provenance(qpv)
        if format_ == "json":
            sortie.print(json_texte({**r, "perimetre": f"{tampon}m", **prov}), highlight=False,
                         soft_wrap=True)
            return
        if r.get("lon") is not None:
            sortie.print(f"Point ({r['lon']:.6f}, {r['lat']:.6f})", highlight=False)
        for ligne in _texte_resultat(r, tampon):
            sortie.print(ligne, highlight=False)
        _pied(prov["geographie_qpv"], prov["contours"],
              [prov["avertissement_contours"]] if prov["avertissement_contours"] else [])


def _adresse(adresse: str, dossier, qpv, tampon: int, score_min: float, format_: str) -> None:
    from essqpv.geocodage.localisation import PRECISIONS, localiser_adresse

    r = localiser_adresse(adresse, dossier=dossier, couche=qpv, tampon_m=tampon,
                          score_min=score_min)
    if format_ == "json":
        sortie.print(json_texte(r), highlight=False, soft_wrap=True)
        return
    sortie.print(f"Adresse : « {adresse} »", highlight=False)
    if r.get("adresse_ban"):
        sortie.print(f"Trouvée : {r['adresse_ban']} (précision : "
                     f"{PRECISIONS.get(r['type_ban'], r['type_ban'])}, score "
                     f"{r['score_ban']:.2f}".replace(".", ",")
                     + (", écrite comme dans la BAN" if r.get("methode_ban") == "exacte"
                        else ", moteur addok") + f") — point "
                     f"({r['lon_ban']:.6f}, {r['lat_ban']:.6f})", highlight=False)
    if r["statut"] == "localise":
        for ligne in _texte_resultat(r, tampon):
            sortie.print(ligne, highlight=False)
    else:
        sortie.print(f"[bold]Pas de réponse QPV[/] ({r['statut']}) : {r['remarque']}",
                     highlight=False)
    sortie.print(r["source_adresses"], highlight=False, style="dim")
    from essqpv import lookup
    precision = lookup.provenance(qpv)["avertissement_contours"]
    _pied(r["geographie_qpv"], r["contours"], [precision] if precision else [])


def _verifier_fini(option: str, valeur: str | None) -> None:
    """A coordinate given on the command line must be a finite number (not nan, not inf)."""
    import math

    from essqpv.errors import ParametreInvalide
    if valeur is None:
        return
    try:
        nombre = float(str(valeur).strip().replace(",", "."))
    except ValueError:
        raise ParametreInvalide(f"Coordonnée invalide ({option}) : « {valeur} » n'est pas un "
                                "nombre.") from None
    if not math.isfinite(nombre):
        raise ParametreInvalide(f"Coordonnée invalide ({option}) : « {valeur} » n'est pas un "
                                "nombre fini (nan et inf ne sont pas des coordonnées).")


def _pied(geographie: str, contours: str, avertissements: list[str]) -> None:
    for a in avertissements:
        sortie.print(f"[bold]{a}[/]", highlight=False)
    sortie.print(f"Géographie {geographie} des quartiers prioritaires — contours : {contours} "
                 "(ANCT, Licence "
                 "Ouverte). Un point sur la limite d'un QPV compte comme dedans. Résultat "
                 "indicatif, pas une attestation officielle.", highlight=False, style="dim")
