"""Tests of the scheduled jobs."""
