"""aioiroh: peer-to-peer QUIC connections dialed by public key, wire-compatible with Rust iroh.

Quick use::

    ep = await aioiroh.Endpoint.bind(alpns=[b"my/proto/0"])
    conn = await ep.connect(ticket_or_addr, b"my/proto/0")
    send, recv = await conn.open_bi()
"""

from .base import (
    EndpointAddr,
    EndpointId,
    EndpointTicket,
    PublicKey,
    RelayUrl,
    SecretKey,
    Signature,
    TransportAddr,
)
from .endpoint import Connection, Endpoint, PathInfo, RecvStream, SendStream
from .endpoint.relay_mode import RelayMode
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .protocol import AcceptError, ProtocolHandler, Router, RouterBuilder
from .relay.relay_map import RelayConfig, RelayMap

__version__ = "0.1.0"

__all__ = [
    "AcceptError",
    "Connection",
    "Endpoint",
    "EndpointAddr",
    "EndpointId",
    "EndpointTicket",
    "PathInfo",
    "ProtocolHandler",
    "PublicKey",
    "RecvStream",
    "RelayConfig",
    "RelayMap",
    "RelayMode",
    "RelayUrl",
    "Router",
    "RouterBuilder",
    "SecretKey",
    "SendStream",
    "Signature",
    "TransportAddr",
    *_errors_all,
]

# Public objects report themselves as aioiroh.X (httpx habit): tracebacks and reprs read well.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("aioiroh."):
        try:
            _obj.__module__ = "aioiroh"
        except (AttributeError, TypeError):
            pass
del _name, _obj
