"""QUIC: the engine seam, iroh transport parameters, frames and packet protection."""
