"""Multipath and n0 NAT traversal in the native engine, on virtual time (milestones M3-M6).

Two engines start on a "relay" path; each has one direct address. The server advertises its
address (ADD_ADDRESS), the client starts a round (REACH_OUT + probes), a probe answer makes the
client open a direct path, which both sides validate. Then the direct path is cut and the
connection falls back to the relay with its streams intact.
"""

from __future__ import annotations

from typing import Any

from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic.packet import pull_quic_header

from aioiroh.base.key import SecretKey
from aioiroh.quic.connection import IrohConnection
from aioiroh.quic.paths import PathAbandoned, PathOpened

from .support import app_reads

ALPN = b"aioiroh/mp/0"
RELAY_AT_CLIENT = ("relay-to-server", 1)
RELAY_AT_SERVER = ("relay-to-client", 2)
CLIENT_IP = ("10.0.0.1", 1000)
SERVER_IP = ("10.0.0.2", 2000)
# A second direct route (another interface pair) for a second IP path.
CLIENT_IP2 = ("10.0.0.1", 1001)
SERVER_IP2 = ("10.0.0.2", 2001)
DELAY_RELAY = 0.020
DELAY_DIRECT = 0.002


class Net:
    """Two engines, a relay route and a direct route between their direct addresses."""

    def __init__(self, *, client_max_path_id: int = 7, server_max_path_id: int = 7) -> None:
        self.now = 0.0
        self.server_key = SecretKey.generate()
        self.server_max_path_id = server_max_path_id
        self.client = IrohConnection(
            secret_key=SecretKey.generate(),
            is_client=True,
            alpns=[ALPN],
            expected_peer=self.server_key.public(),
            max_path_id=client_max_path_id,
        )
        self.server: IrohConnection | None = None
        self.direct_up = True
        # A port-restricted NAT in front of the server: the client's direct datagrams pass
        # only once the server has sent one to the client's direct address.
        self.server_nat = False
        self.server_nat_open = False
        self.relay_delay_to_server = DELAY_RELAY
        self.queue: list[tuple[float, str, bytes, Any]] = []  # (due, receiver, data, src)
        self.events: dict[str, list[events.QuicEvent]] = {"client": [], "server": []}
        self.direct_datagrams = {"client": 0, "server": 0}
        self.client.connect(RELAY_AT_CLIENT, self.now)

    def _route(self, sender: str, dst: Any) -> tuple[str, Any, float] | None:
        if sender == "client":
            if dst == RELAY_AT_CLIENT:
                return "server", RELAY_AT_SERVER, self.relay_delay_to_server
            if dst == SERVER_IP and self.server_nat and not self.server_nat_open:
                return None
            if dst == SERVER_IP and self.direct_up:
                return "server", CLIENT_IP, DELAY_DIRECT
            if dst == SERVER_IP2:
                return "server", CLIENT_IP2, DELAY_DIRECT
        else:
            if dst == RELAY_AT_SERVER:
                return "client", RELAY_AT_CLIENT, DELAY_RELAY
            if dst == CLIENT_IP and self.direct_up:
                self.server_nat_open = True
                return "client", SERVER_IP, DELAY_DIRECT
            if dst == CLIENT_IP2:
                return "client", SERVER_IP2, DELAY_DIRECT
        return None

    def conns(self) -> list[tuple[str, IrohConnection]]:
        out = [("client", self.client)]
        if self.server is not None:
            out.append(("server", self.server))
        return out

    def flush(self) -> None:
        for name, conn in self.conns():
            while (ev := conn.next_event()) is not None:
                self.events[name].append(ev)
                app_reads(conn, ev, self.now)
            for data, dst in conn.datagrams_to_send(self.now):
                if dst in (SERVER_IP, CLIENT_IP):
                    self.direct_datagrams[name] += 1
                route = self._route(name, dst)
                if route is not None:
                    receiver, src, delay = route
                    self.queue.append((self.now + delay, receiver, data, src))
            while (ev := conn.next_event()) is not None:
                self.events[name].append(ev)
                app_reads(conn, ev, self.now)

    def step(self) -> bool:
        self.flush()
        timers = [(t, c) for _, c in self.conns() if (t := c.get_timer()) is not None]
        next_rx = min((q[0] for q in self.queue), default=None)
        next_timer = min((t for t, _ in timers), default=None)
        if next_rx is None and next_timer is None:
            return False
        if next_rx is not None and (next_timer is None or next_rx <= next_timer):
            self.now = max(self.now, next_rx)
            due = [q for q in self.queue if q[0] <= self.now]
            self.queue = [q for q in self.queue if q[0] > self.now]
            for _, receiver, data, src in due:
                if receiver == "server":
                    if self.server is None:
                        header = pull_quic_header(Buffer(data=data), host_cid_length=8)
                        self.server = IrohConnection(
                            secret_key=self.server_key,
                            is_client=False,
                            alpns=[ALPN],
                            original_destination_connection_id=header.destination_cid,
                            max_path_id=self.server_max_path_id,
                        )
                    self.server.receive_datagram(data, src, self.now)
                else:
                    self.client.receive_datagram(data, src, self.now)
        else:
            assert next_timer is not None
            self.now = max(self.now, next_timer)
            for t, c in timers:
                if t <= self.now:
                    c.handle_timer(self.now)
        return True

    def run_until(self, cond: Any, max_steps: int = 200_000) -> None:
        for _ in range(max_steps):
            if cond():
                return
            if not self.step():
                break
        assert cond(), "condition not reached"

    def of(self, name: str, kind: type) -> list[Any]:
        self.flush()
        return [e for e in self.events[name] if isinstance(e, kind)]

    def received(self, name: str, stream_id: int) -> bytes:
        return b"".join(
            e.data for e in self.of(name, events.StreamDataReceived) if e.stream_id == stream_id
        )


def _upgrade(net: Net) -> None:
    net.run_until(lambda: len(net.of("client", events.HandshakeCompleted)) == 1)
    net.run_until(lambda: net.server is not None and net.server.nat_traversal_negotiated)
    server = net.server
    assert server is not None and net.client.nat_traversal_negotiated
    server.add_nat_address(*SERVER_IP)
    net.client.add_nat_address(*CLIENT_IP)
    net.run_until(lambda: net.client.nat_remote_addresses() == [SERVER_IP])
    net.client.initiate_nat_traversal_round(net.now)
    net.run_until(lambda: bool(net.of("client", PathOpened)) and bool(net.of("server", PathOpened)))
    (opened,) = net.of("client", PathOpened)
    assert opened.remote == SERVER_IP
    assert [e.remote for e in net.of("server", PathOpened)] == [CLIENT_IP]
    # Select the direct path, as iroh's path manager would.
    net.client.set_path_status(opened.path_id, True)
    net.client.set_path_status(0, False)
    net.run_until(lambda: any(p.carries_data and p.remote == SERVER_IP for p in _snap(net.client)))


def _snap(conn: IrohConnection) -> list[Any]:
    return conn.path_snapshots()


def test_relay_to_direct_upgrade_and_fallback() -> None:
    net = Net()
    _upgrade(net)
    server = net.server
    assert server is not None
    # The server follows the client's selection once its own status says so.
    server.set_path_status(0, False)
    before = dict(net.direct_datagrams)
    payload = bytes(range(256)) * 400
    net.client.send_stream_data(0, payload, end_stream=True)
    net.run_until(lambda: net.received("server", 0) == payload)
    assert net.direct_datagrams["client"] - before["client"] > 50
    assert server.remote_address == CLIENT_IP

    # Cut the direct path mid-transfer: the idle path is abandoned and the relay takes over.
    net.client.path_idle_timeout = lambda addr: 1.0
    server.path_idle_timeout = lambda addr: 1.0
    net.client.send_stream_data(4, payload[:50_000])
    net.run_until(lambda: len(net.received("server", 4)) > 10_000)
    net.direct_up = False
    net.client.send_stream_data(4, payload[50_000:], end_stream=True)
    net.run_until(lambda: bool(net.of("client", PathAbandoned)))
    net.run_until(lambda: net.received("server", 4) == payload)
    assert net.client.remote_address == RELAY_AT_CLIENT
    assert not net.client.is_closing and not server.is_closing

    # Restore it: a new round opens a fresh path id.
    net.direct_up = True
    net.run_until(lambda: net.now > 6.0)
    net.client.initiate_nat_traversal_round(net.now)
    net.run_until(lambda: len(net.of("client", PathOpened)) == 2)
    second = net.of("client", PathOpened)[1]
    assert second.path_id > 1 and second.remote == SERVER_IP


def test_client_close_path_frees_a_path_id() -> None:
    net = Net()
    _upgrade(net)
    (opened,) = net.of("client", PathOpened)
    # Let the holepunch round end first: a probe answered later would open a path again.
    server = net.server
    assert server is not None
    net.run_until(lambda: all(c._nat.next_deadline() is None for c in (net.client, server)))
    assert net.client.close_path(opened.path_id, net.now)
    net.run_until(lambda: bool(net.of("server", PathAbandoned)))
    net.run_until(lambda: net.client.remote_address == RELAY_AT_CLIENT)
    # The last path cannot be closed.
    assert not net.client.close_path(0, net.now)
    net.client.send_stream_data(0, b"still here", end_stream=True)
    net.run_until(lambda: net.received("server", 0) == b"still here")


def test_unknown_path_id_from_server_is_dropped() -> None:
    net = Net()
    _upgrade(net)
    # A packet for a path id the client never opened (only clients open paths) is ignored.
    before = net.client.dropped_packets
    net.client.receive_datagram(b"\x40" + b"\x00" * 40, SERVER_IP, net.now)
    assert net.client.dropped_packets == before + 1


def test_paths_blocked_once_then_open_after_max_path_id() -> None:
    # The server allows path ids up to 1 only: the direct path takes it.
    net = Net(server_max_path_id=1)
    _upgrade(net)
    server = net.server
    assert server is not None
    assert net.client.open_path(SERVER_IP2, net.now) is None
    # Blocked: PATHS_BLOCKED(1) goes out once, however often the engine retries (every 333 ms).
    until = net.now + 2.0
    net.run_until(lambda: net.now >= until)
    assert server.peer_paths_blocked == 1
    assert not any(e.remote == SERVER_IP2 for e in net.of("client", PathOpened))
    # Closing path 1 makes the server raise MAX_PATH_ID to 2 (ids are never reused), and the
    # pending open goes through on its own.
    (first,) = net.of("client", PathOpened)
    assert net.client.close_path(first.path_id, net.now)
    net.run_until(lambda: any(e.remote == SERVER_IP2 for e in net.of("client", PathOpened)))
    opened = next(e for e in net.of("client", PathOpened) if e.remote == SERVER_IP2)
    assert opened.path_id == 2
    net.run_until(lambda: any(e.remote == CLIENT_IP2 for e in net.of("server", PathOpened)))
    assert server.peer_paths_blocked == 1


def test_path_cids_blocked_once_then_open_after_new_cids() -> None:
    # The client allows path ids up to 1: the server issued CIDs for path 1 only.
    net = Net(client_max_path_id=1)
    _upgrade(net)
    server = net.server
    assert server is not None
    (first,) = net.of("client", PathOpened)
    # Closing path 1 raises our MAX_PATH_ID to 2; the server's CIDs for path 2 are a relay
    # round trip away, so the open right after it is blocked on CIDs.
    assert net.client.close_path(first.path_id, net.now)
    assert net.client.open_path(SERVER_IP2, net.now) is None
    net.run_until(lambda: any(e.remote == SERVER_IP2 for e in net.of("client", PathOpened)))
    opened = next(e for e in net.of("client", PathOpened) if e.remote == SERVER_IP2)
    assert opened.path_id == 2
    until = net.now + 2.0
    net.run_until(lambda: net.now >= until)
    assert server.peer_path_cids_blocked == 1
    assert server.peer_paths_blocked == 0


def test_late_server_probe_is_challenged_back() -> None:
    """The server's probes arrive after the client's round is over (its REACH_OUT was stuck
    behind bulk data on the relay) and its NAT dropped all our probes: answering its probe
    with a challenge of our own still opens the direct path."""
    net = Net()
    net.server_nat = True
    net.run_until(lambda: len(net.of("client", events.HandshakeCompleted)) == 1)
    net.run_until(lambda: net.server is not None and net.server.nat_traversal_negotiated)
    server = net.server
    assert server is not None
    server.add_nat_address(*SERVER_IP)
    net.client.add_nat_address(*CLIENT_IP)
    net.run_until(lambda: net.client.nat_remote_addresses() == [SERVER_IP])
    net.relay_delay_to_server = 10.0
    start = net.now
    net.client.initiate_nat_traversal_round(net.now)
    # All of the client's probes hit the server's NAT before the server hears of the round.
    net.run_until(lambda: net.now >= start + 9.0)
    assert not net.of("client", PathOpened) and not net.server_nat_open
    net.relay_delay_to_server = DELAY_RELAY
    net.run_until(lambda: bool(net.of("client", PathOpened)) or net.now > start + 30.0)
    (opened,) = net.of("client", PathOpened)
    assert opened.remote == SERVER_IP
    net.run_until(lambda: bool(net.of("server", PathOpened)) or net.now > start + 30.0)
    assert [e.remote for e in net.of("server", PathOpened)] == [CLIENT_IP]
