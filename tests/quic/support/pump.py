"""Drive two sans-I/O QUIC engines against each other on virtual time (no sockets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aioquic.quic import events

from aioiroh.base.key import SecretKey
from aioiroh.quic.connection import IrohConnection

from . import app_reads

CLIENT_ADDR = ("127.0.0.1", 1111)
SERVER_ADDR = ("127.0.0.1", 2222)
ALPN = b"aioiroh/pump/0"


class Pump:
    """A client and a server engine wired back to back with a fixed one-way delay.

    ``drop`` may decide per datagram (direction, index) whether it is lost.
    """

    def __init__(
        self,
        *,
        delay: float = 0.005,
        client_kwargs: dict[str, Any] | None = None,
        server_kwargs: dict[str, Any] | None = None,
        drop: Callable[[str, int, bytes], bool] | None = None,
    ) -> None:
        self.now = 0.0
        self.delay = delay
        self.client_key = SecretKey.generate()
        self.server_key = SecretKey.generate()
        self.client = IrohConnection(
            secret_key=self.client_key,
            is_client=True,
            alpns=[ALPN],
            expected_peer=self.server_key.public(),
            **(client_kwargs or {}),
        )
        self.server: IrohConnection | None = None
        self._server_kwargs = server_kwargs or {}
        self.drop = drop
        self.in_flight: list[tuple[float, str, bytes]] = []
        self.events: dict[str, list[events.QuicEvent]] = {"client": [], "server": []}
        self.sent = {"client": 0, "server": 0}
        self.client.connect(SERVER_ADDR, self.now)

    def _flush(self, name: str, conn: IrohConnection) -> None:
        while (ev := conn.next_event()) is not None:
            self.events[name].append(ev)
            app_reads(conn, ev, self.now)
        for data, _addr in conn.datagrams_to_send(self.now):
            index = self.sent[name]
            self.sent[name] += 1
            if self.drop is not None and self.drop(name, index, data):
                continue
            self.in_flight.append((self.now + self.delay, name, data))
        while (ev := conn.next_event()) is not None:
            self.events[name].append(ev)
            app_reads(conn, ev, self.now)

    def step(self) -> bool:
        """Deliver everything due next (or fire the next timer); False when idle."""
        self._flush("client", self.client)
        if self.server is not None:
            self._flush("server", self.server)
        timers = [
            (t, c)
            for c in (self.client, self.server)
            if c is not None and (t := c.get_timer()) is not None
        ]
        next_rx = min((t for t, _, _ in self.in_flight), default=None)
        next_timer = min((t for t, _ in timers), default=None)
        if next_rx is None and next_timer is None:
            return False
        if next_rx is not None and (next_timer is None or next_rx <= next_timer):
            self.now = max(self.now, next_rx)
            due = [p for p in self.in_flight if p[0] <= self.now]
            self.in_flight = [p for p in self.in_flight if p[0] > self.now]
            for _, sender, data in due:
                if sender == "client":
                    if self.server is None:
                        from aioquic.buffer import Buffer
                        from aioquic.quic.packet import pull_quic_header

                        header = pull_quic_header(Buffer(data=data), host_cid_length=8)
                        self.server = IrohConnection(
                            secret_key=self.server_key,
                            is_client=False,
                            alpns=[ALPN],
                            original_destination_connection_id=header.destination_cid,
                            **self._server_kwargs,
                        )
                    self.server.receive_datagram(data, CLIENT_ADDR, self.now)
                else:
                    self.client.receive_datagram(data, SERVER_ADDR, self.now)
        else:
            assert next_timer is not None
            self.now = max(self.now, next_timer)
            for t, c in timers:
                if t <= self.now:
                    c.handle_timer(self.now)
        return True

    def run_until(self, cond: Callable[[], bool], max_steps: int = 200_000) -> None:
        for _ in range(max_steps):
            if cond():
                return
            if not self.step():
                break
        assert cond(), "condition not reached"

    def of(self, name: str, kind: type) -> list[Any]:
        """Events of ``kind`` seen so far by ``name`` ("client"/"server")."""
        for side, conn in (("client", self.client), ("server", self.server)):
            while conn is not None and (ev := conn.next_event()) is not None:
                self.events[side].append(ev)
                app_reads(conn, ev, self.now)
        return [e for e in self.events[name] if isinstance(e, kind)]
