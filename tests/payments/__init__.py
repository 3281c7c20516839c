"""Tests of checkout and webhooks."""
