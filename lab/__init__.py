"""NAT lab: a small internet in network namespaces for end-to-end tests."""
