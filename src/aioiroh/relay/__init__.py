"""relay layer."""
