"""Indicators of the observatory: compute first (compute.py), suppress second (confidentiality.py)."""
