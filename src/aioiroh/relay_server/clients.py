"""Client registry (sans-I/O): who is connected under which EndpointId, and who hears what.

Rules (iroh ``server/clients.rs``, wire doc §5.6):

* Several connections may claim one EndpointId. The newest is *active* and receives datagrams;
  older ones are *inactive*: they get ``Status(SameEndpointIdConnected)`` and nothing else.
  When the active one leaves, the most recent inactive one takes over and gets
  ``Status(Healthy)``.
* When an EndpointId's last connection leaves, every endpoint it had sent datagrams to gets
  ``EndpointGone``.
* Datagrams to an EndpointId with no connection are dropped silently.

Methods return :data:`Action` lists; the driver performs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from ..base.key import EndpointId
from ..relay.protocol.frames import StatusCode

__all__ = ["Action", "ClientRegistry", "SendEndpointGone", "SendStatus"]


@dataclass(frozen=True, slots=True)
class SendStatus:
    """Send ``Status(code)`` to connection ``conn_id``."""

    conn_id: int
    """Receiving connection."""
    code: StatusCode
    """Status to send."""


@dataclass(frozen=True, slots=True)
class SendEndpointGone:
    """Send ``EndpointGone(endpoint_id)`` to connection ``conn_id``."""

    conn_id: int
    """Receiving connection."""
    endpoint_id: EndpointId
    """The endpoint that left."""


Action: TypeAlias = SendStatus | SendEndpointGone


@dataclass(slots=True)
class _Entry:
    active: int
    inactive: list[int] = field(default_factory=list)


class ClientRegistry:
    """EndpointId → connections, plus who-sent-to-whom for EndpointGone."""

    def __init__(self, *, max_sent_to: int = 4096) -> None:
        self.max_sent_to = max_sent_to
        #: Destinations not remembered because a sender hit :attr:`max_sent_to`.
        self.sent_to_overflow = 0
        self._entries: dict[EndpointId, _Entry] = {}
        self._ids: dict[int, EndpointId] = {}
        self._sent_to: dict[EndpointId, set[EndpointId]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def endpoint_count(self) -> int:
        """Distinct EndpointIds connected (what ``max_clients`` counts)."""
        return len(self._entries)

    def inactive_conns(self, endpoint_id: EndpointId) -> list[int]:
        """Older connections of ``endpoint_id``, oldest first."""
        entry = self._entries.get(endpoint_id)
        return [] if entry is None else list(entry.inactive)

    def endpoint_of(self, conn_id: int) -> EndpointId | None:
        """The EndpointId connection ``conn_id`` authenticated as."""
        return self._ids.get(conn_id)

    def active_conn(self, endpoint_id: EndpointId) -> int | None:
        """The connection that receives datagrams for ``endpoint_id``."""
        entry = self._entries.get(endpoint_id)
        return None if entry is None else entry.active

    def is_active(self, conn_id: int) -> bool:
        """True if ``conn_id`` is the active connection of its EndpointId."""
        endpoint_id = self._ids.get(conn_id)
        return endpoint_id is not None and self._entries[endpoint_id].active == conn_id

    def register(self, conn_id: int, endpoint_id: EndpointId) -> list[Action]:
        """A connection finished its handshake; newest wins."""
        if conn_id in self._ids:
            raise ValueError(f"connection {conn_id} already registered")
        self._ids[conn_id] = endpoint_id
        entry = self._entries.get(endpoint_id)
        if entry is None:
            self._entries[endpoint_id] = _Entry(conn_id)
            return []
        old = entry.active
        entry.inactive.append(old)
        entry.active = conn_id
        return [SendStatus(old, StatusCode.SAME_ENDPOINT_ID_CONNECTED)]

    def unregister(self, conn_id: int) -> list[Action]:
        """A connection ended. Unknown ids are ignored (the handshake may not have finished)."""
        endpoint_id = self._ids.pop(conn_id, None)
        if endpoint_id is None:
            return []
        entry = self._entries[endpoint_id]
        if entry.active != conn_id:
            entry.inactive.remove(conn_id)
            return []
        if entry.inactive:
            entry.active = entry.inactive.pop()
            return [SendStatus(entry.active, StatusCode.HEALTHY)]
        del self._entries[endpoint_id]
        actions: list[Action] = []
        for peer in self._sent_to.pop(endpoint_id, ()):
            peer_entry = self._entries.get(peer)
            if peer_entry is not None:
                actions.append(SendEndpointGone(peer_entry.active, endpoint_id))
        return actions

    def route(self, src: EndpointId, dst: EndpointId) -> int | None:
        """The connection to deliver ``src``'s datagrams for ``dst`` to, or None to drop.

        Remembers that ``src`` sent to ``dst`` so ``dst`` hears when ``src`` leaves.
        """
        entry = self._entries.get(dst)
        if entry is None:
            return None
        peers = self._sent_to.get(src)
        if peers is None:
            self._sent_to[src] = {dst}
        elif dst not in peers:
            if len(peers) < self.max_sent_to:
                peers.add(dst)
            else:
                self.sent_to_overflow += 1
        return entry.active

    def connections(self) -> list[int]:
        """Every registered connection id."""
        return list(self._ids)
