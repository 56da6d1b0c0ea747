"""Relying parties on other origins, on OpenID Connect libraries we did not write (test_round_trip.py)."""
