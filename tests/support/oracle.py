"""Test fixtures: oracle."""
