"""relay_server layer."""
