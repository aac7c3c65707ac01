"""aioiroh: peer-to-peer QUIC connections dialed by public key, wire-compatible with Rust iroh.

Quick use::

    ep = await aioiroh.Endpoint.bind(alpns=[b"my/proto/0"])
    conn = await ep.connect(ticket_or_addr, b"my/proto/0")
    send, recv = await conn.open_bi()
"""

from ._version import __version__ as __version__
from .address_lookup.base import AddressLookupError
from .base import (
    AddrParseError,
    EndpointAddr,
    EndpointId,
    EndpointTicket,
    PublicKey,
    RelayUrl,
    RelayUrlParseError,
    SecretKey,
    Signature,
    TicketParseError,
    TransportAddr,
)
from .dns.resolver import DnsLookupError
from .endpoint import Connection, Endpoint, PathInfo, RecvStream, SendStream
from .endpoint.relay_mode import RelayMode
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .protocol import AcceptError, ProtocolHandler, Router, RouterBuilder
from .relay.relay_map import RelayConfig, RelayMap
from .socket.qad import QadError

__all__ = [
    "AcceptError",
    "AddrParseError",
    "AddressLookupError",
    "Connection",
    "DnsLookupError",
    "Endpoint",
    "EndpointAddr",
    "EndpointId",
    "EndpointTicket",
    "PathInfo",
    "ProtocolHandler",
    "PublicKey",
    "QadError",
    "RecvStream",
    "RelayConfig",
    "RelayMap",
    "RelayMode",
    "RelayUrl",
    "RelayUrlParseError",
    "Router",
    "RouterBuilder",
    "SecretKey",
    "SendStream",
    "Signature",
    "TicketParseError",
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
