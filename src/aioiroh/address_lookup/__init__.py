"""address_lookup layer."""
