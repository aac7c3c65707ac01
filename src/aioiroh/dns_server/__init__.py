"""dns_server layer."""
