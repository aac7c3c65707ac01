"""socket layer."""
