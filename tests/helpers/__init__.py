"""Helpers shared by the test modules (fixtures stay in conftest.py, which re-exports the
names tests used to import from it)."""
