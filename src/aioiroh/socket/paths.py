"""Network paths as the magic socket names them.

A QUIC connection never sees real addresses chosen by the socket layer on the dialing side: it
sees one :class:`DialTarget` per connection (iroh's "mixed" mapped address), and the socket
decides which real path(s) carry its datagrams. On the accepting side, the engine sees the real
path each datagram came on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..base.key import PublicKey
    from ..base.relay_url import RelayUrl

__all__ = ["DialTarget", "IpPath", "NetworkPath", "RelayPath"]


@dataclass(frozen=True, slots=True)
class IpPath:
    """A UDP path to ``(host, port)``, from our socket ``local``.

    ``local`` 0 is the endpoint's own socket; other values name the extra sockets of a
    birthday hard-NAT attempt (socket/hard_nat.py), whose NAT mappings differ from the main one.
    """

    host: str
    port: int
    local: int = 0

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def sockaddr(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __str__(self) -> str:
        # The remote address only: which of our sockets carries it is not part of its name.
        return f"[{self.host}]:{self.port}" if self.is_ipv6 else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RelayPath:
    """A path through relay ``url`` to the endpoint ``endpoint_id``."""

    url: RelayUrl
    endpoint_id: PublicKey

    def __str__(self) -> str:
        return f"relay:{self.url}"


NetworkPath = IpPath | RelayPath


class DialTarget:
    """The single address a dialing QUIC connection sends to; compared by identity."""

    __slots__ = ("endpoint_id",)

    def __init__(self, endpoint_id: PublicKey) -> None:
        self.endpoint_id = endpoint_id

    def __repr__(self) -> str:
        return f"DialTarget({self.endpoint_id.fmt_short()})"
