"""relay.protocol layer."""
