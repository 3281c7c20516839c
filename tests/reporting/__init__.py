"""Tests of reports, doctor, metrics, dashboard."""
