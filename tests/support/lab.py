"""Test fixtures: lab."""
