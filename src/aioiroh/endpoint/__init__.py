"""endpoint layer."""
