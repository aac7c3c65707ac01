"""Test fixtures: dns."""
