"""Tools for the DBA beyond applying: data tests, lint, the documentation site, demo data."""
