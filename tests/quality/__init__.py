"""Tests of data tests, lint, docs site, demo."""
