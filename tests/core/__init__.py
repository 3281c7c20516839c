"""Tests of the core: migrations, the embedded server."""
