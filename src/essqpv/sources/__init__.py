"""Readers of the official input files (Sirene, geolocation, employment, QPV contours, downloads)."""
