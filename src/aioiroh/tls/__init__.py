"""TLS 1.3 with raw public keys (RFC 7250), as iroh uses it."""
