"""Test fixtures: relay."""
