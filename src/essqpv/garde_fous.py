"""What keeps a build from losing or overwriting data: gates, lock, leftovers, rejects swap.

:func:`essqpv.base.construire` calls these around its stages:

* **one build per base** (:class:`Verrou`): ``<base>.verrou`` is locked with ``flock`` and
  holds the owner's pid; a second build names that process and stops; a lock left by a
  killed process is released by the kernel and taken over;
* **leftovers of dead builds** (:func:`nettoyer_restes`): the files this tool writes with
  a pid in their name (``<base>.tmp-<pid>``, ``<base>.travail/[extraits/]*.partiel-<pid>``,
  ``<base>.rejets/<millesime>.tmp-<pid>``) are removed when that process no longer exists;
  nothing else is touched;
* **gates** (:func:`verifier_contours`, :func:`verifier_plausibilite`): a new vintage that
  looks implausible (empty stock, many rejects, few establishments placed, none in a QPV,
  contours whose coordinates do not fit their declared CRS) is refused before it replaces
  anything, unless ``forcer``; the figures that pass but deserve attention become warnings
  stored with the vintage;
* **rejects swapped with the base** (:func:`preparer_rejets`, :func:`echanger_rejets`,
  :func:`reparer_rejets`): the rejects folder of a vintage is written beside the final one,
  checked, and swapped in right after the base; its signature (count and hash of
  ``fichier, ligne, motif``) is the one of the base's ``rejets`` table, so a build killed
  between the two swaps is finished (or undone) at the next start.

Fault injection: ``ESSQPV_ARRET_TEST=<etape>`` kills the process (SIGKILL) when it reaches
that stage boundary (``<etape>:pause`` stops it instead), for the tests of these guarantees.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from essqpv.errors import BaseOccupee, ConstructionRefusee

__all__ = ["Seuils", "Verrou", "nettoyer_restes", "verifier_contours", "verifier_plausibilite",
           "preparer_rejets", "echanger_rejets", "reparer_rejets", "signature_base",
           "signature_dossier", "point_arret", "processus_vivant"]

MARQUE_REJETS = ".essqpv-rejets.json"


@dataclass(frozen=True)
class Seuils:
    """Thresholds of the gates (documented in docs/fiabilite.md).

    Attributes
    ----------
    rejets_max : float
        Share of rejected lines of one input above which the build is refused.
    rejets_avertissement : float
        Share above which a warning is stored.
    part_precedente_min : float
        Accepted establishment lines, as a share of the previous vintage's, below which
        the stock is "near-empty".
    localisees_min : float
        Floor of the share of in-scope establishments placed.
    localisees_baisse_max : float
        Largest drop (in points of share) of the placed share from the previous vintage.
    effectif_minimum : int
        Below this many lines (or establishments), a share is noise: its gate warns only.
    """

    rejets_max: float = 0.02
    rejets_avertissement: float = 0.001
    part_precedente_min: float = 0.5
    localisees_min: float = 0.5
    localisees_baisse_max: float = 0.15
    effectif_minimum: int = 100


# --------------------------------------------------------------------------- processes


def processus_vivant(pid: int) -> bool:
    """True when a process of this id exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def est_duckdb(chemin: Path) -> bool:
    """True when the file starts like a DuckDB database (magic ``DUCK`` at byte 8); an
    empty file counts as one (DuckDB creates its base in it)."""
    try:
        with open(chemin, "rb") as f:
            debut = f.read(12)
    except OSError:
        return False
    return not debut or debut[8:12] == b"DUCK"


def point_arret(etape: str) -> None:
    """Fault-injection hook: kill (or stop) this process at ``etape`` when asked to."""
    demande = os.environ.get("ESSQPV_ARRET_TEST", "")
    if not demande:
        return
    nom, _, mode = demande.partition(":")
    if nom == etape:
        os.kill(os.getpid(), signal.SIGSTOP if mode == "pause" else signal.SIGKILL)
        if mode == "pause":  # resumed: a signal sent while stopped may have reached another
            time.sleep(0.5)  # thread; its Python handler runs here, before the next step


# --------------------------------------------------------------------------- lock


class Verrou:
    """Exclusive lock of one base for a build: ``<base>.verrou`` (``flock``, owner's pid).

    The kernel releases a ``flock`` when its process dies, so a lock left by a killed build
    is taken over by the next one (:attr:`repris` is then the dead owner's pid).
    """

    def __init__(self, base: Path):
        self.chemin = base.with_name(base.name + ".verrou")
        self.base = base
        self.fd: int | None = None
        self.repris: int | None = None

    def __enter__(self) -> "Verrou":
        import fcntl
        while True:
            fd = os.open(self.chemin, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                proprietaire = _lire_proprietaire(fd)
                os.close(fd)
                qui = (f"le processus {proprietaire['pid']}"
                       + (f" ({proprietaire['hote']})" if proprietaire.get("hote") else "")
                       + (f", depuis {proprietaire['depuis']}" if proprietaire.get("depuis")
                          else "")) if proprietaire else "un autre processus"
                raise BaseOccupee(
                    f"La base {self.base} est déjà en cours de construction par {qui} "
                    f"(verrou {self.chemin.name}) ; attendez la fin de cette construction "
                    "puis relancez.") from None
            # The file may have been removed (released) between open and flock: retry.
            try:
                meme = os.stat(self.chemin).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                meme = False
            if meme:
                break
            os.close(fd)
        ancien = _lire_proprietaire(fd)
        if ancien and ancien.get("pid") != os.getpid():
            self.repris = ancien.get("pid")
        contenu = json.dumps({"pid": os.getpid(), "hote": socket.gethostname(),
                              "depuis": dt.datetime.now().isoformat(timespec="seconds")})
        os.ftruncate(fd, 0)
        os.pwrite(fd, contenu.encode() + b"\n", 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.chemin)  # while still holding it (see the inode check above)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


def _lire_proprietaire(fd: int) -> dict | None:
    try:
        brut = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        d = json.loads(brut) if brut.startswith("{") else {"pid": int(brut.split()[0])}
        return d if isinstance(d.get("pid"), int) else None
    except (ValueError, IndexError, OSError):
        return None


# --------------------------------------------------------------------------- leftovers


def _pid_mort(nom: str, motif: re.Pattern) -> bool:
    m = motif.fullmatch(nom)
    return bool(m) and not processus_vivant(int(m.group("pid")))


def avertissements_du_verrou(verrou: Verrou, restes: list[str]) -> list[str]:
    """The warnings a build reports after :class:`Verrou` and :func:`nettoyer_restes`: a
    lock taken over from a killed process, the leftovers removed."""
    sortie = []
    if verrou.repris:
        sortie.append(f"Verrou laissé par le processus {verrou.repris} (arrêté) repris.")
    if restes:
        sortie.append("Restes de constructions interrompues supprimés : "
                      + ", ".join(restes) + ".")
    return sortie


def nettoyer_restes(base: Path) -> list[str]:
    """Remove what dead builds of ``base`` left (only names this tool writes, dead pids).

    Returns the names removed, with their size (for a warning). Call it with the lock held.
    """
    supprimes: list[str] = []

    def supprimer(p: Path) -> None:
        try:
            taille = (sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                      if p.is_dir() and not p.is_symlink() else p.lstat().st_size)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            return
        supprimes.append(f"{p.name} ({taille / 1e6:.1f} Mo)")

    temporaire = re.compile(re.escape(base.name) + r"\.tmp-(?P<pid>[0-9]+)(\.wal)?")
    if base.parent.is_dir():
        for p in base.parent.iterdir():
            if _pid_mort(p.name, temporaire) and not p.is_dir():
                supprimer(p)
    travail = base.with_name(base.name + ".travail")
    partiel = re.compile(r".+\.partiel-(?P<pid>[0-9]+)")
    for dossier in (travail, travail / "extraits"):  # (caches; zip members extracted)
        if dossier.is_dir() and not dossier.is_symlink():
            for p in dossier.iterdir():
                if _pid_mort(p.name, partiel) and not p.is_dir():
                    supprimer(p)
    supprimes += reparer_rejets(base)
    return supprimes


# --------------------------------------------------------------------------- gates


def _nombre(n: float) -> str:
    return f"{n:,.0f}".replace(",", "\u202f")


def _part(x: float) -> str:
    """A share in French: ``12,5 %``, ``0,13 %`` (two decimals below 1 %)."""
    return (f"{x * 100:.2f}" if x < 0.01 else f"{x * 100:.1f}").replace(".", ",") + "\u00a0%"


def _refuser_ou_avertir(refus: list[str], forcer: bool) -> list[str]:
    """Raise :class:`ConstructionRefusee` for ``refus`` unless ``forcer`` (then: warnings)."""
    if not refus:
        return []
    if forcer:
        return [f"Construction forcée (--forcer) malgré : {r}" for r in refus]
    raise ConstructionRefusee(
        " ".join(refus) + " La base n'a pas été modifiée ; corrigez les fichiers ou relancez "
        "avec --forcer pour construire ce millésime quand même.")


# Where the QPV are (lon min, lat min, lon max, lat max, with a margin): metropolitan France
# and Corsica, the Antilles and Saint-Martin, Guyane, La Réunion and Mayotte, Saint-Pierre,
# French Polynesia, New Caledonia, Wallis-and-Futuna.
EMPRISES_QPV = {
    "France métropolitaine": (-6.0, 41.0, 10.0, 51.6),
    "Antilles": (-63.6, 14.0, -60.5, 18.6),
    "Guyane": (-54.9, 2.0, -51.4, 6.0),
    "La Réunion et Mayotte": (44.8, -21.6, 56.0, -12.4),
    "Saint-Pierre-et-Miquelon": (-56.6, 46.6, -55.9, 47.3),
    "Polynésie française": (-155.0, -28.5, -134.0, -7.5),
    "Nouvelle-Calédonie": (163.0, -23.0, 169.0, -19.0),
    "Wallis-et-Futuna": (-178.5, -14.6, -175.9, -13.0),
}


def verifier_contours(couche, forcer: bool = False) -> list[str]:
    """Gate on QPV contours: their coordinates (read in their declared CRS, then put in
    EPSG:4326) must fall where the QPV are (:data:`EMPRISES_QPV`). Lambert-93 metres
    labelled EPSG:4326, for one, give "longitudes" in the hundreds of thousands."""
    import numpy as np
    import shapely

    limites = shapely.bounds(couche.geometries)
    finies = np.isfinite(limites).all(axis=1)
    dedans = np.zeros(len(limites), dtype=bool)
    for x0, y0, x1, y1 in EMPRISES_QPV.values():
        dedans |= finies & (limites[:, 0] >= x0) & (limites[:, 2] <= x1) \
            & (limites[:, 1] >= y0) & (limites[:, 3] <= y1)
    hors = int((~dedans).sum())
    if hors == 0:
        return []
    i = int(np.flatnonzero(~dedans)[0])
    x0, y0, x1, y1 = (float(v) for v in limites[i])
    crs = _crs_declare(couche.fichier)
    indice = ""
    if finies[i] and max(abs(x0), abs(x1), abs(y0), abs(y1)) > 1000:
        indice = (" Ces valeurs ressemblent à des mètres (Lambert-93, EPSG:2154 ?) et non à "
                  "des degrés : le système de coordonnées déclaré est sans doute faux.")
    return _refuser_ou_avertir([
        f"Contours des QPV ({Path(str(couche.fichier)).name}) incohérents avec leur système "
        f"de coordonnées déclaré{f' ({crs})' if crs else ''} : {_nombre(hors)} polygone(s) "
        f"sur {_nombre(len(limites))} hors de l'emprise des territoires à QPV (France "
        f"métropolitaine, outre-mer) ; le premier, {couche.codes[i]}, s'étend de "
        f"x = {x0:.6g} à {x1:.6g}, y = {y0:.6g} à {y1:.6g} (en degrés après "
        f"lecture).{indice}"], forcer)


def _crs_declare(fichier) -> str:
    try:
        import pyogrio
        import pyproj
        crs = pyogrio.read_info(str(fichier)).get("crs")
        if not crs:
            return ""
        c = pyproj.CRS.from_user_input(crs)
        code = c.to_epsg()
        return f"EPSG:{code}" if code else c.name
    except Exception:  # an embedded layer, or a file the reader already accepted
        return ""


def _ressemble_latin1(lignes: list[bytes]) -> bool:
    """True when most of these rejected lines are not UTF-8 but read as cp1252."""
    echantillon = lignes[:1000]
    if not echantillon:
        return False
    n = 0
    for b in echantillon:
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            try:
                b.decode("cp1252")
                n += 1
            except UnicodeDecodeError:
                pass
    return n * 2 > len(echantillon)


ROLES_LIBELLES = {"etablissements": "stock des établissements",
                  "unites_legales": "stock des unités légales",
                  "geolocalisation": "fichier de géolocalisation",
                  "emplois": "fichier des emplois"}


def verifier_plausibilite(rapport: dict, precedent: dict | None, rejets: list,
                          forcer: bool = False, seuils: Seuils | None = None) -> list[str]:
    """Gates on a new vintage's reconciliation before it replaces anything.

    Parameters
    ----------
    rapport : dict
        The new reconciliation (:func:`essqpv.base.construire`).
    precedent : dict or None
        The reconciliation of the vintage replaced, else of the newest other vintage.
    rejets : list of (role, ligne, motif, contenu)
        The rejected lines (for the encoding hint).

    Returns
    -------
    list of str
        Warnings (figures that pass the gates but deserve attention).

    Raises
    ------
    ConstructionRefusee
        Naming each figure and its threshold, unless ``forcer``.
    """
    s = seuils or Seuils()
    refus: list[str] = []
    avert: list[str] = []

    def seuil(condition: bool, message: str, taille: int) -> None:
        if condition:
            (refus if taille >= s.effectif_minimum else avert).append(message)

    # Empty or near-empty stock.
    for role, compte in (("etablissements", rapport),
                         ("unites_legales", rapport.get("unites_legales") or {})):
        if compte and compte.get("acceptees", 0) == 0:
            refus.append(f"Le {ROLES_LIBELLES[role]} ne contient aucune ligne acceptée "
                         f"({_nombre(compte.get('lignes_lues', 0))} ligne(s) lue(s), "
                         f"{_nombre(compte.get('lignes_rejetees', 0))} rejetée(s)) : "
                         "fichier vide ou réduit à son en-tête ?")
    if precedent and rapport.get("acceptees", 0) > 0:
        avant = int(precedent.get("acceptees") or 0)
        if avant and rapport["acceptees"] < s.part_precedente_min * avant:
            refus.append(
                f"Stock des établissements presque vide : {_nombre(rapport['acceptees'])} "
                f"ligne(s) acceptée(s) contre {_nombre(avant)} dans le millésime "
                f"{precedent.get('millesime')} ({_part(rapport['acceptees'] / avant)} ; "
                f"seuil : {_part(s.part_precedente_min)}).")

    # Share of rejected lines, file by file.
    for role in ROLES_LIBELLES:
        compte = rapport if role == "etablissements" else rapport.get(role)
        if not compte or not compte.get("lignes_lues"):
            continue
        lues, rejetees = int(compte["lignes_lues"]), int(compte["lignes_rejetees"])
        part = rejetees / lues
        if part <= s.rejets_avertissement:
            continue
        indice = ""
        if _ressemble_latin1([r[3] for r in rejets if r[0] == role]):
            indice = (" Les lignes rejetées ne sont pas en UTF-8 mais se lisent en latin-1 / "
                      "Windows-1252 : convertissez le fichier en UTF-8 (par exemple "
                      "iconv -f CP1252 -t UTF-8) ou téléchargez sa version utf8.")
        motifs = ", ".join(f"{m} {_nombre(n)}" for m, n in sorted(
            (compte.get("rejets_par_motif") or {}).items(), key=lambda x: -x[1])[:3])
        message = (f"{_part(part)} des lignes du {ROLES_LIBELLES[role]} rejetées "
                   f"({_nombre(rejetees)} sur {_nombre(lues)}"
                   + (f" : {motifs}" if motifs else "") + ")")
        if part > s.rejets_max:
            seuil(True, message + f" ; seuil : {_part(s.rejets_max)}.{indice}", lues)
        else:
            avert.append(message + f" (au-dessus de {_part(s.rejets_avertissement)}).{indice}")

    # Share of in-scope establishments placed, and the establishments in QPV.
    dans = int(rapport.get("dans_perimetre") or 0)
    if dans:
        part = rapport["localisees"] / dans
        seuil(part < s.localisees_min,
              f"Seulement {_part(part)} des établissements du périmètre localisés "
              f"({_nombre(rapport['localisees'])} sur {_nombre(dans)} ; seuil : "
              f"{_part(s.localisees_min)}) : coordonnées dans un mauvais système (EPSG) ou "
              "fichier de géolocalisation d'un autre millésime ?", dans)
        if precedent and precedent.get("dans_perimetre"):
            avant = precedent["localisees"] / precedent["dans_perimetre"]
            seuil(avant - part > s.localisees_baisse_max,
                  f"Part des établissements localisés en forte baisse : {_part(part)} contre "
                  f"{_part(avant)} dans le millésime {precedent.get('millesime')} (baisse "
                  f"maximale admise : {s.localisees_baisse_max * 100:.0f} points).", dans)
        localisees = int(rapport["localisees"])
        seuil(localisees > 0 and rapport.get("en_qpv", 0) == 0,
              f"Aucun établissement en QPV sur {_nombre(localisees)} localisés : contours des "
              "QPV dans un mauvais système de coordonnées, ou d'un autre territoire ?",
              localisees)
    refuses = _refuser_ou_avertir(refus, forcer)
    return refuses + avert


# --------------------------------------------------------------------------- rejects


def _signature(lignes: list[tuple[str, int, str]]) -> dict:
    h = hashlib.sha256()
    for fichier, ligne, motif in sorted(lignes):
        h.update(f"{fichier}\t{ligne}\t{motif}\n".encode())
    return {"lignes": len(lignes), "empreinte": h.hexdigest()}


def signature_base(base: Path, millesime: str) -> dict | None:
    """Signature of the rejects of one vintage as the base stores them (None: no vintage);
    ``millesime="historique"``: those of the historical series (None: no series)."""
    import duckdb
    try:
        con = duckdb.connect(str(base), read_only=True)
    except duckdb.Error:
        return None
    try:
        if millesime == "historique":
            presente = con.execute("SELECT count(*) FROM historique_meta")
        else:
            presente = con.execute("SELECT count(*) FROM millesimes WHERE millesime = ?",
                                   [millesime])
        if not presente.fetchone()[0]:
            return None
        return _signature([tuple(r) for r in con.execute(
            "SELECT fichier, ligne, motif FROM rejets WHERE millesime = ?",
            [millesime]).fetchall()])
    except duckdb.Error:
        return None
    finally:
        con.close()


_LIGNE_REJET = re.compile(rb"([0-9]+)\t([a-z0-9_]+)\t")


def signature_dossier(dossier: Path) -> dict | None:
    """Signature of a rejects folder, read back from its files (None: no folder)."""
    if not dossier.is_dir():
        return None
    lignes = []
    for f in sorted(dossier.glob("*.txt")):
        with open(f, "rb") as flux:
            next(flux, None)  # header
            for brut in flux:
                m = _LIGNE_REJET.match(brut)
                if m:  # (a rejected line holding a line break continues on the next one)
                    lignes.append((f.stem, int(m.group(1)), m.group(2).decode()))
    return _signature(lignes)


def _dossier_rejets(base: Path, millesime: str) -> Path:
    return base.with_name(base.name + ".rejets") / millesime


def preparer_rejets(base: Path, millesime: str, rejets: list) -> Path:
    """Write the rejects files of a vintage beside the final folder, check them, return it.

    One text file per input: ``ligne<TAB>motif<TAB>`` then the line's bytes, unchanged; the
    marker :data:`MARQUE_REJETS` holds their signature.
    """
    final = _dossier_rejets(base, millesime)
    tmp = final.with_name(f"{millesime}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for role in sorted({r[0] for r in rejets}):
        attendus = 0
        with open(tmp / f"{role}.txt", "wb") as f:
            attendus += f.write(b"# essqpv - lignes rejetees : ligne<TAB>motif<TAB>contenu inchange\n")
            for r in rejets:
                if r[0] == role:
                    attendus += f.write(f"{r[1]}\t{r[2]}\t".encode() + r[3] + b"\n")
            f.flush()
            os.fsync(f.fileno())
        if (tmp / f"{role}.txt").stat().st_size != attendus:  # the check before the swap
            raise OSError(f"Écriture incomplète de {tmp / (role + '.txt')}.")
    signature = _signature([(r[0], int(r[1]), r[2]) for r in rejets])
    (tmp / MARQUE_REJETS).write_text(json.dumps({"millesime": millesime, **signature}), "utf-8")
    return tmp


def _marque(dossier: Path) -> dict | None:
    try:
        d = json.loads((dossier / MARQUE_REJETS).read_text("utf-8"))
        return {"lignes": d["lignes"], "empreinte": d["empreinte"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def echanger_rejets(base: Path, millesime: str, tmp: Path) -> None:
    """Swap the checked rejects folder ``tmp`` in (call it right after the base swap)."""
    final = _dossier_rejets(base, millesime)
    ancien = final.with_name(f"{millesime}.ancien-{os.getpid()}")
    if final.exists():
        if ancien.exists():
            shutil.rmtree(ancien)
        final.rename(ancien)
    point_arret("rejets_anciens_ecartes")
    tmp.rename(final)
    if ancien.exists():
        shutil.rmtree(ancien)


def reparer_rejets(base: Path) -> list[str]:
    """Finish or undo the rejects swap of builds killed in it (dead pids only).

    A ``<millesime>.tmp-<pid>`` folder whose signature is the base's for that vintage
    replaces the final folder (the base was swapped, not yet the rejects); otherwise it is
    removed. A ``<millesime>.ancien-<pid>`` folder is removed, or put back when the final
    folder is missing and it matches the base.
    """
    racine = base.with_name(base.name + ".rejets")
    if not racine.is_dir():
        return []
    faits: list[str] = []
    motif = re.compile(r"(?P<m>[0-9]{4}-[0-9]{2}|historique)\.(?P<sorte>tmp|ancien)"
                       r"-(?P<pid>[0-9]+)")
    restes = sorted((m.group("sorte") != "tmp", m.group("m"), p) for p in racine.iterdir()
                    if (m := motif.fullmatch(p.name)) and p.is_dir() and not p.is_symlink()
                    and not processus_vivant(int(m.group("pid"))))
    for _, millesime, p in restes:
        final = racine / millesime
        attendue = signature_base(base, millesime)
        if attendue is not None and _marque(p) == attendue and (
                not final.exists() or _marque(final) != attendue):
            if final.exists():
                shutil.rmtree(final)
            p.rename(final)
            faits.append(f"rejets {millesime} remis en accord avec la base ({p.name})")
        else:
            shutil.rmtree(p)
            faits.append(f"{p.name} (reste d'une construction interrompue)")
    return faits



def controle_precedent(base: Path, millesime: str) -> dict | None:
    """The reconciliation the gates compare with: the vintage being replaced, else the
    newest other vintage of the base (None for a new or unreadable base)."""
    import duckdb
    if not base.is_file():
        return None
    try:
        con = duckdb.connect(str(base), read_only=True)
    except duckdb.Error:
        return None
    try:
        ligne = con.execute(
            "SELECT controle FROM millesimes ORDER BY millesime = ? DESC, millesime DESC "
            "LIMIT 1", [millesime]).fetchone()
        return json.loads(ligne[0]) if ligne and ligne[0] else None
    except (duckdb.Error, ValueError):
        return None
    finally:
        con.close()
