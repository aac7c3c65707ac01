"""Identity and addressing: keys, relay URLs, endpoint addresses, tickets (iroh-base)."""

from .endpoint_addr import AddrParseError, EndpointAddr, SocketAddr, TransportAddr
from .key import EndpointId, PublicKey, SecretKey, Signature
from .relay_url import RelayUrl, RelayUrlParseError
from .ticket import EndpointTicket, TicketParseError

__all__ = [
    "AddrParseError",
    "EndpointAddr",
    "EndpointId",
    "EndpointTicket",
    "PublicKey",
    "RelayUrl",
    "RelayUrlParseError",
    "SecretKey",
    "Signature",
    "SocketAddr",
    "TicketParseError",
    "TransportAddr",
]
