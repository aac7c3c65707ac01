"""UDP self-checks that prove the lab's NAT routers behave as named.

Everything runs in the calling process: sockets are created inside the right namespaces
(:meth:`Node.socket`) and driven with asyncio, so no helper processes are needed.

- :func:`natcheck` classifies one device's NAT: mapping (endpoint-independent or not),
  filtering (which outside senders get in) and whether an unsolicited packet that arrives
  *before* the device sends disturbs its later mapping.
- :func:`punch_pair` runs a rendezvous plus a simultaneous-open UDP hole punch between two
  devices, the way a p2p stack would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .batch import gather_all
from .topology import Device, Host

Addr = tuple[str, int]
# How long to wait for a packet that should arrive; a packet that should *not* arrive is
# declared missing after NEGATIVE_WAIT_S.
POSITIVE_WAIT_S = 2.0
NEGATIVE_WAIT_S = 0.4
# Hole punching: probe cadence, give-up time, registration retry cadence.
PROBE_INTERVAL_S = 0.05
PUNCH_TIMEOUT_S = 3.0
REGISTER_INTERVAL_S = 0.2
MAX_DATAGRAM = 2048
# The rendezvous serves at most this many pairs at once (bounded state).
MAX_RENDEZVOUS_PAIRS = 256


async def recv_from(sock: socket.socket, timeout: float) -> tuple[bytes, Addr] | None:
    """One datagram from ``sock``, or None after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    try:
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, MAX_DATAGRAM), timeout)
    except TimeoutError:
        return None
    return data, (addr[0], addr[1])


async def send_to(sock: socket.socket, data: bytes, addr: Addr) -> None:
    """Send one datagram (the lab's sockets are non-blocking)."""
    await asyncio.get_running_loop().sock_sendto(sock, data, addr)


@contextlib.contextmanager
def _closing(*socks: socket.socket) -> Iterator[None]:
    try:
        yield
    finally:
        for s in socks:
            s.close()


@dataclass
class NatCheck:
    """What :func:`natcheck` observed for one device."""

    mapped: list[Addr]  # source address seen by X1, Y1, X2 for one device socket
    same_ip_other_port: bool  # X2 reached a socket that had only talked to X1
    other_ip: bool  # Y1 reached it
    unsolicited: bool  # Y1 reached a socket that had sent nothing at all
    inbound_first_consistent: bool  # mappings equal after an early unsolicited packet

    @property
    def endpoint_independent_mapping(self) -> bool:
        """All three servers saw the same public address."""
        return len(set(self.mapped)) == 1

    @property
    def verdict(self) -> str:
        """The NAT kind these observations match ("none", "open", ...), or "unknown"."""
        eim = self.endpoint_independent_mapping
        if eim and self.same_ip_other_port and self.other_ip and self.unsolicited:
            return "none"
        if eim and self.same_ip_other_port and self.other_ip and not self.unsolicited:
            return "open"
        if eim and not (self.same_ip_other_port or self.other_ip or self.unsolicited):
            return "moderate"
        if not eim and not (self.same_ip_other_port or self.other_ip or self.unsolicited):
            return "strict"
        return "unknown"


async def natcheck(device: Device, server: Host, port: int = 40000) -> NatCheck:
    """Classify ``device``'s NAT with servers on ``server`` (which needs two addresses).

    X1 = ip0:port, X2 = ip0:port+1, Y1 = ip1:port.
    """
    ip0, ip1 = server.ips[0], server.ips[1]
    x1 = server.socket(bind=(ip0, port))
    x2 = server.socket(bind=(ip0, port + 1))
    y1 = server.socket(bind=(ip1, port))
    with _closing(x1, x2, y1):
        # (a) mapping: one device socket talks to all three servers.
        mapped: list[Addr] = []
        s = device.socket(bind=("0.0.0.0", 0))
        with _closing(s):
            for srv, addr in ((x1, (ip0, port)), (y1, (ip1, port)), (x2, (ip0, port + 1))):
                await send_to(s, b"map", addr)
                got = await recv_from(srv, POSITIVE_WAIT_S)
                if got is None:
                    raise AssertionError(f"{device.name}: outbound probe to {addr} lost")
                mapped.append(got[1])
        # (b) filtering: a fresh socket talks only to X1; who else can reach its mapping?
        s = device.socket(bind=("0.0.0.0", 0))
        with _closing(s):
            await send_to(s, b"hello", (ip0, port))
            got = await recv_from(x1, POSITIVE_WAIT_S)
            if got is None:
                raise AssertionError(f"{device.name}: outbound probe to X1 lost")
            pub = got[1]
            await send_to(x1, b"from-x1", pub)
            if await recv_from(s, POSITIVE_WAIT_S) is None:
                raise AssertionError(f"{device.name}: X1's reply did not come back")
            await send_to(x2, b"from-x2", pub)
            same_ip_other_port = await recv_from(s, NEGATIVE_WAIT_S) is not None
            await send_to(y1, b"from-y1", pub)
            other_ip = await recv_from(s, NEGATIVE_WAIT_S) is not None
        # (c) unsolicited: a bound socket that never sent; Y1 aims at the same port publicly.
        s = device.socket(bind=("0.0.0.0", 0))
        with _closing(s):
            local_port = s.getsockname()[1]
            await send_to(y1, b"unsolicited", (device.public_ip, local_port))
            unsolicited = await recv_from(s, NEGATIVE_WAIT_S) is not None
            # (d) inbound first: now the device sends from that port to X1 and Y1.
            seen = []
            for srv, addr in ((x1, (ip0, port)), (y1, (ip1, port))):
                await send_to(s, b"after", addr)
                got = await recv_from(srv, POSITIVE_WAIT_S)
                if got is None:
                    raise AssertionError(f"{device.name}: probe after unsolicited lost")
                seen.append(got[1])
            inbound_first_consistent = seen[0] == seen[1]
    return NatCheck(mapped, same_ip_other_port, other_ip, unsolicited, inbound_first_consistent)


# -- hole punching ---------------------------------------------------------------------------


class Rendezvous:
    """A UDP rendezvous on a public host that also reflects observed addresses.

    A client sends ``{"reg": PAIR, "side": "a"|"b"}`` from its punch socket every
    REGISTER_INTERVAL_S until answered; once both sides of PAIR are known the server answers
    each registration with ``{"go": [peer_ip, peer_port], "you": [ip, port]}``.
    """

    def __init__(self, host: Host, port: int = 3478) -> None:
        self.addr: Addr = (host.ip, port)
        self._sock = host.socket(bind=self.addr)
        self._pairs: dict[str, dict[str, Addr]] = {}
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # malformed or over-limit registrations

    async def __aenter__(self) -> Rendezvous:
        self._task = asyncio.create_task(self._serve(), name="natlab-rendezvous")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sock.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data, raw = await loop.sock_recvfrom(self._sock, MAX_DATAGRAM)
            src: Addr = (raw[0], raw[1])
            try:
                msg = json.loads(data)
                pair, side = str(msg["reg"]), str(msg["side"])
            except (ValueError, KeyError, TypeError):
                self.dropped += 1
                continue
            if side not in ("a", "b") or (
                pair not in self._pairs and len(self._pairs) >= MAX_RENDEZVOUS_PAIRS
            ):
                self.dropped += 1
                continue
            sides = self._pairs.setdefault(pair, {})
            sides[side] = src
            other = sides.get("b" if side == "a" else "a")
            if other is not None:
                for me, peer in ((src, other), (other, src)):
                    reply = json.dumps({"go": list(peer), "you": list(me)}).encode()
                    await loop.sock_sendto(self._sock, reply, me)


@dataclass
class PunchSide:
    """One side's view of a hole punch."""

    observed: Addr | None = None  # own address as the rendezvous saw it
    peer_observed: Addr | None = None  # the peer's, from the rendezvous
    acked: bool = False  # the peer acknowledged one of our probes
    peer_seen_from: set[Addr] = field(default_factory=set)  # where peer probes came from
    elapsed: float | None = None  # seconds from "go" to acked


@dataclass
class PunchResult:
    """Outcome of :func:`punch_pair`."""

    a: PunchSide
    b: PunchSide

    @property
    def ok(self) -> bool:
        """Both sides got an acknowledgement from the other."""
        return self.a.acked and self.b.acked


async def _punch_side(
    sock: socket.socket,
    rdv: Addr,
    pair: str,
    side: str,
    st: PunchSide,
    done: asyncio.Event,
    on_ack: Callable[[], None],
) -> None:
    loop = asyncio.get_running_loop()
    reg = json.dumps({"reg": pair, "side": side}).encode()
    deadline = loop.time() + PUNCH_TIMEOUT_S
    # Register until the rendezvous says go.
    while st.peer_observed is None:
        if loop.time() > deadline:
            return
        await send_to(sock, reg, rdv)
        got = await recv_from(sock, REGISTER_INTERVAL_S)
        if got is None or got[1] != rdv:
            continue
        msg = json.loads(got[0])
        st.observed = (msg["you"][0], msg["you"][1])
        st.peer_observed = (msg["go"][0], msg["go"][1])
    started = time.monotonic()
    deadline = loop.time() + PUNCH_TIMEOUT_S
    targets: set[Addr] = {st.peer_observed}
    next_probe = loop.time()
    # Keep answering until both sides are done, so the slower side can finish too.
    while not done.is_set() and loop.time() < deadline:
        now = loop.time()
        if now >= next_probe and not st.acked:
            for t in targets:
                await send_to(sock, b"probe", t)
            next_probe = now + PROBE_INTERVAL_S
        got = await recv_from(sock, max(0.001, min(next_probe, deadline) - loop.time()))
        if got is None:
            continue
        data, src = got
        if data == b"probe":
            # Answer to where it came from: a strict NAT's real port differs from the one
            # the rendezvous saw (peer-reflexive address).
            st.peer_seen_from.add(src)
            targets.add(src)
            await send_to(sock, b"ack", src)
        elif data == b"ack" and not st.acked:
            st.acked = True
            st.elapsed = time.monotonic() - started
            on_ack()
        elif data.startswith(b"{"):
            continue  # a repeated "go" from the rendezvous


async def punch_pair(a: Device, b: Device, rendezvous: Rendezvous, pair: str) -> PunchResult:
    """Hole-punch between ``a`` and ``b`` through ``rendezvous``; both sides run here."""
    sa = a.socket(bind=("0.0.0.0", 0))
    sb = b.socket(bind=("0.0.0.0", 0))
    res = PunchResult(PunchSide(), PunchSide())
    done = asyncio.Event()
    with _closing(sa, sb):

        def on_ack() -> None:
            if res.ok:
                done.set()

        await gather_all(
            _punch_side(sa, rendezvous.addr, pair, "a", res.a, done, on_ack),
            _punch_side(sb, rendezvous.addr, pair, "b", res.b, done, on_ack),
        )
    return res


# Expected hole-punch outcome (recipe §5): only a strict side facing moderate/strict fails.
def punch_expected(kind_a: str, kind_b: str) -> bool:
    """Whether a UDP hole punch between NAT kinds ``kind_a`` and ``kind_b`` should work."""
    hard = {("moderate", "strict"), ("strict", "moderate"), ("strict", "strict")}
    return (kind_a, kind_b) not in hard
