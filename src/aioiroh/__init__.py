"""aioiroh: peer-to-peer QUIC connections dialed by public key, wire-compatible with Rust iroh."""

from .base import EndpointId, PublicKey, SecretKey, Signature
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all

__version__ = "0.1.0"

__all__ = [
    "EndpointId",
    "PublicKey",
    "SecretKey",
    "Signature",
    *_errors_all,
]
