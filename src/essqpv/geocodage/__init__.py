"""Offline address geocoding: the Base Adresse Nationale (BAN) in addok, with essqpv's Redis.

``installation`` downloads the BAN's per-département addok files and builds the index;
``geocodeur.Geocodeur`` opens it (starts essqpv's own Redis, connects addok) and geocodes;
``localisation`` turns addresses into QPV answers, with the precision rules of
``docs/localiser.md`` (a street or commune centroid is never declared inside a QPV).
"""
from essqpv.geocodage.geocodeur import Geocodeur, geocodeur_installe
from essqpv.geocodage.installation import dossier_par_defaut, etat, installer

__all__ = ["Geocodeur", "geocodeur_installe", "installer", "etat", "dossier_par_defaut"]
