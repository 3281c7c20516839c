"""Tests of `runner adopt` (runner/adoption/) on a reference-built database (tests/reference_db.py)."""
