"""Reuse of a stored protection when a rebuild produces the same plan (issue 18, issue 21).

Protecting the plan is the costly part of a build (linear programs for every sensitive
cell); a rebuild from the cache (same register, other settings that do not change the plan,
a repeated build) produces the same cells and relations. The build's cache folder
(``<base>.travail/``) then keeps, for each plan it protected, one file
``protection-<empreinte>.npz``: the statuses (``primaire``, ``secondaire``), the sensitive
marks and the certificates.

The *empreinte* (:func:`empreinte`) is the SHA-256 of everything the protection reads: every
cell (key, level, establishment count, headcount, largest establishment, published or not),
every relation, the rules of ``reference/confidentialite.csv``, the tables of public counts
and the source of the protection's code. It does not depend on the order in which the plan
lists its cells (the build's grouping does not keep one): the stored protection is written in
the order of the sorted keys and mapped back to the new plan's indices.

A stored protection is **never trusted**: :func:`reprendre` recomputes the sensitive cells
from the new plan (primary rule and identical cells) and requires the stored marks to be the
same, a primary status on every published sensitive cell and nothing else, secondary
statuses only on published cells some certificate moves; the caller then verifies every
certificate against every relation of the plan and checks every protection interval (the
same verification as after a full protection, :func:`essqpv.indicators.protection.auditer`).
Any difference, a damaged file or a failed verification → the plan is protected afresh.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from essqpv.config import Confidentialite
from essqpv.indicators import protection as _protection
from essqpv.indicators.protection import Certificat

#: bump when the stored format changes
VERSION = 1
PREFIXE = "protection-"
#: stored protections kept in the cache folder (the newest ones)
GARDER = 4


def _ordre(plan) -> np.ndarray:
    """Indices of the plan's cells in the order of their sorted keys (keys are unique)."""
    from essqpv.indicators.publication import ordre_cles
    return ordre_cles(plan.cles)


def _code() -> bytes:
    return Path(_protection.__file__).read_bytes()


def empreinte(plan, regles: Confidentialite, exclus: frozenset,
              ordre: np.ndarray | None = None) -> str:
    """SHA-256 of what the protection of ``plan`` depends on (see the module doc)."""
    ordre = _ordre(plan) if ordre is None else ordre
    rang = np.empty(len(plan), dtype=np.int64)
    rang[ordre] = np.arange(len(plan))
    h = hashlib.sha256()
    h.update(f"v{VERSION}\x00".encode())
    h.update(hashlib.sha256(_code()).digest())
    h.update(json.dumps(dataclasses.asdict(regles), sort_keys=True).encode())
    h.update(json.dumps(sorted(exclus)).encode())
    h.update(str(len(plan)).encode() + b"\x00")
    cles = [plan.cles[i] for i in ordre]
    niveaux = [plan.niveaux[i] for i in ordre]
    h.update("\x1e".join("\x1f".join(map(str, k)) + "\x1f" + nv
                         for k, nv in zip(cles, niveaux)).encode("utf-8"))
    h.update(np.asarray(plan.nombre, dtype=np.int64)[ordre].tobytes())
    h.update(np.asarray(plan.valeur, dtype=np.float64)[ordre].tobytes())
    h.update(np.asarray(plan.maximum, dtype=np.float64)[ordre].tobytes())
    h.update(np.asarray(plan.publiee, dtype=bool)[ordre].tobytes())
    h.update(_relations(plan, rang))
    return h.hexdigest()


def _relations(plan, rang: np.ndarray) -> bytes:
    """The relations in a canonical form: cells as ranks of their keys, members sorted,
    relations sorted by (total, size, an order-free mix of the members), as bytes."""
    if not plan.relations:
        return b""
    tailles = np.fromiter((len(m) for _, m in plan.relations), dtype=np.int64,
                          count=len(plan.relations))
    totaux = rang[np.fromiter((t for t, _ in plan.relations), dtype=np.int64,
                              count=len(plan.relations))]
    membres = rang[np.fromiter((m for _, ms in plan.relations for m in ms), dtype=np.int64,
                               count=int(tailles.sum()))]
    rel = np.repeat(np.arange(len(tailles)), tailles)
    o = np.lexsort((membres, rel))
    membres = membres[o]
    with np.errstate(over="ignore"):
        x = (membres.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(29)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        debuts = np.concatenate([[0], np.cumsum(tailles)[:-1]])
        melange = np.add.reduceat(x, debuts)
    ordre = np.lexsort((melange, tailles, totaux))
    t = tailles[ordre]
    decalage = np.repeat(debuts[ordre] - np.concatenate([[0], np.cumsum(t)[:-1]]), t)
    membres = membres[np.arange(int(t.sum())) + decalage]
    return totaux[ordre].tobytes() + t.tobytes() + membres.tobytes()


def _controle(tableaux: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for nom in sorted(tableaux):
        a = np.ascontiguousarray(tableaux[nom])
        h.update(nom.encode() + str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def chemin(cache: Path, cle: str) -> Path:
    return Path(cache) / f"{PREFIXE}{cle}.npz"


def garder(cache: Path, cle: str, plan, bilan: dict, ordre: np.ndarray) -> Path:
    """Store the protection of ``plan`` (statuses, marks, certificates) under its empreinte,
    written to a temporary file then renamed; keeps the :data:`GARDER` newest."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    rang = np.empty(len(plan), dtype=np.int64)
    rang[ordre] = np.arange(len(plan))
    codes = {None: 0, "primaire": 1, "secondaire": 2}
    statut = np.asarray([codes[s] for s in plan.statuts], dtype=np.int8)[ordre]
    sensible = np.asarray(plan.sensible, dtype=bool)[ordre]
    certs = plan.certificats
    tailles = np.asarray([len(c.cellules) for c in certs], dtype=np.int64)
    cellules = (rang[np.concatenate([c.cellules for c in certs]).astype(np.int64)] if certs
                else np.zeros(0, dtype=np.int64))
    delta = (np.concatenate([c.delta for c in certs]).astype(np.float64) if certs
             else np.zeros(0))
    tableaux = {"statut": statut, "sensible": sensible, "tailles": tailles,
                "cellules": cellules, "delta": delta,
                "bilan": np.frombuffer(json.dumps(bilan, default=str).encode(), dtype=np.uint8),
                "empreinte": np.frombuffer(cle.encode(), dtype=np.uint8)}
    tableaux["controle"] = np.frombuffer(_controle(tableaux).encode(), dtype=np.uint8)
    final = chemin(cache, cle)
    partiel = final.with_name(final.name + f".partiel-{os.getpid()}")
    try:
        with open(partiel, "wb") as f:
            np.savez(f, **tableaux)
        os.replace(partiel, final)
    finally:
        partiel.unlink(missing_ok=True)
    anciens = sorted(cache.glob(f"{PREFIXE}*.npz"), key=lambda p: p.stat().st_mtime,
                     reverse=True)
    for p in anciens[GARDER:]:
        p.unlink(missing_ok=True)
    return final


def reprendre(cache: Path, cle: str, plan, regles: Confidentialite, exclus: frozenset,
              ordre: np.ndarray) -> tuple[dict | None, str]:
    """Load the stored protection of empreinte ``cle`` into ``plan`` when it is consistent
    with it (see the module doc); returns ``(bilan, raison)``: the stored counts (None when
    nothing was reused) and why (``absente``, ``illisible``, ``incohérente : …``, ``reprise``).

    The caller must still verify the certificates (:func:`protection.auditer`) before
    trusting it, and protect afresh if they fail."""
    f = chemin(cache, cle)
    if not f.exists():
        return None, "absente"
    try:
        with np.load(f, allow_pickle=False) as z:
            tableaux = {k: z[k] for k in z.files}
    except Exception:  # damaged file (truncated, not a zip, bad CRC): not trusted
        return None, "illisible"
    attendus = {"statut", "sensible", "tailles", "cellules", "delta", "bilan", "empreinte",
                "controle"}
    if set(tableaux) != attendus:
        return None, "illisible"
    controle = tableaux.pop("controle").tobytes().decode("ascii", "replace")
    if controle != _controle(tableaux):
        return None, "incohérente : somme de contrôle"
    if tableaux["empreinte"].tobytes().decode("ascii", "replace") != cle:
        return None, "incohérente : empreinte"
    N = len(plan)
    statut_c, sensible_c = tableaux["statut"], tableaux["sensible"]
    tailles, cellules_c, delta = tableaux["tailles"], tableaux["cellules"], tableaux["delta"]
    if (statut_c.shape != (N,) or sensible_c.shape != (N,) or tailles.ndim != 1
            or (tailles < 1).any() or int(tailles.sum()) != len(cellules_c)
            or len(delta) != len(cellules_c) or not np.isin(statut_c, (0, 1, 2)).all()
            or ((cellules_c < 0) | (cellules_c >= N)).any()):
        return None, "incohérente : dimensions"
    # back to the new plan's indices
    statut = np.empty(N, dtype=np.int8)
    statut[ordre] = statut_c
    sensible = np.empty(N, dtype=bool)
    sensible[ordre] = sensible_c
    cellules = ordre[cellules_c]
    # the sensitive cells recomputed from the new plan, never read from the file
    attendu = _protection.sensibilite(plan, regles, exclus)
    if not np.array_equal(sensible, attendu):
        return None, "incohérente : cases sensibles"
    publiee = np.asarray(plan.publiee, dtype=bool)
    if not np.array_equal(statut == 1, sensible & publiee):
        return None, "incohérente : secrets primaires"
    deplacees = np.zeros(N, dtype=bool)
    deplacees[cellules[delta != 0]] = True
    secondaires = statut == 2
    if (secondaires & ~(publiee & ~sensible & deplacees)).any():
        return None, "incohérente : secrets secondaires"
    try:
        bilan = json.loads(tableaux["bilan"].tobytes().decode("utf-8"))
    except ValueError:
        return None, "illisible"
    debuts = np.concatenate([[0], np.cumsum(tailles)])
    certificats = []
    for a, b in zip(debuts[:-1], debuts[1:]):
        idx, val = cellules[a:b], delta[a:b]
        o = np.argsort(idx, kind="stable")
        certificats.append(Certificat(idx[o].astype(np.int64), val[o].astype(np.float64)))
    noms = {0: None, 1: "primaire", 2: "secondaire"}
    plan.sensible = sensible.tolist()
    plan.statuts = [noms[int(s)] for s in statut]
    plan.certificats = certificats
    return bilan, "reprise"
