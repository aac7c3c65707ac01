"""quic layer."""
