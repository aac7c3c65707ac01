"""The birthday hard-NAT attempt: a bounded many-socket / many-port punch (aioiroh's own).

iroh's NAT traversal (n0 rounds of probes between advertised addresses) cannot connect two
endpoints when one of them sits behind an endpoint-dependent ("strict", symmetric) NAT that
picks random ports and the other behind a NAT that filters by address and port: the strict side's
mapping towards the peer is a port nobody has seen, and the other side's filter drops it. This
module is the sans-I/O core of a bounded attempt on those cells, in the spirit of the birthday
paradox (two random sets of ports collide far sooner than one port is guessed):

- **many sockets**: we open ``sockets`` extra UDP sockets and send one small probe from each to
  every public candidate of the peer. Behind a strict NAT each socket gets its own random public
  port; behind a port-keeping NAT they are harmless;
- **many ports**: from our main socket we send ``spray`` probes to random ports of each public
  IP of the peer, which opens our own NAT's filter for those ports.

If one of the peer's sockets got a public port that is among the ports we sprayed (or the other
way round), a probe gets through. With ``M`` sockets on one side, ``N`` sprayed ports on the
other and ``R`` = 64512 possible ports, a miss has probability about ``exp(-M*N/R)``: with the
defaults (384 sockets, 2048 ports) about 5e-6. Two strict NATs need a double coincidence, which
this does not attempt to beat (such cells stay on the relay).

Neither side needs to know which NAT it is behind: both play both roles. The whole attempt is
bounded: ``sockets`` x targets + ``spray`` x IPs probes, sent in :data:`WINDOW` seconds, once per
connection. Probes are not QUIC (first byte 0, so the fixed bit is clear) and carry the
connection's original destination CID as a token, so the socket routes them to the right
connection; a probe that gets through is answered from the socket it arrived on, and the
four-tuple it proves is handed to QUIC, which validates the path with its own encrypted
challenge. A forged probe can make us try a path, never accept one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from typing import Final

__all__ = [
    "DEFAULT_SOCKETS",
    "DEFAULT_SPRAY",
    "MAGIC",
    "BirthdayPunch",
    "HardNatStats",
    "Probe",
    "Send",
    "decode_probe",
    "encode_probe",
    "is_probe",
    "public_ipv4",
    "select_targets",
]

MAGIC: Final = b"\x00aioBday"
"""Probe prefix: a zero first byte can never start a QUIC v1 packet (fixed bit 0x40)."""
KIND_PROBE: Final = 0
KIND_ACK: Final = 1
MAX_TOKEN: Final = 20
DEFAULT_SOCKETS: Final = 384
DEFAULT_SPRAY: Final = 2048
PORT_MIN: Final = 1024
"""Linux NATs draw random ports from 1024..65535 when the original port is unprivileged."""
PORT_MAX: Final = 65535
SPRAY_DELAY: Final = 0.1
"""Sockets first (their NAT mappings must exist before the peer's spray arrives)."""
SPRAY_CHUNK: Final = 256
SPRAY_INTERVAL: Final = 0.02
"""Pacing: 256 probes every 20 ms, ~12,800 probes/s."""
REPEAT_AT: Final = 1.0
"""The sockets probe again: if the peer's spray came first, its NAT's filter is now open."""
WINDOW: Final = 5.0
"""After this, unused sockets are closed and the attempt is over."""
MAX_TARGETS: Final = 2
"""At most this many public peer addresses are probed (each costs ``sockets`` probes)."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` from socket ``local`` (0 = the endpoint's main socket) to ``addr``."""

    local: int
    addr: tuple[str, int]
    data: bytes


@dataclass(frozen=True, slots=True)
class HardNatStats:
    """What a birthday attempt did (``Connection.hard_nat_attempt()``)."""

    sockets: int
    """Extra sockets opened."""
    targets: list[tuple[str, int]]
    """The peer's public candidates probed."""
    sent: int
    """Probes and answers sent."""
    received: int
    """Probes and answers for this connection received."""
    matched: list[tuple[int, tuple[str, int]]]
    """Four-tuples a probe got through: (our socket id, 0 = main; the peer's address)."""


@dataclass(frozen=True, slots=True)
class Probe:
    kind: int
    token: bytes


def encode_probe(kind: int, token: bytes) -> bytes:
    if len(token) > MAX_TOKEN:
        raise ValueError("token too long")
    return MAGIC + bytes([kind, len(token)]) + token


def is_probe(data: bytes) -> bool:
    return data[:8] == MAGIC


def decode_probe(data: bytes) -> Probe | None:
    """The probe in ``data``, or None for anything malformed."""
    if len(data) < 10 or not is_probe(data):
        return None
    kind, n = data[8], data[9]
    if kind not in (KIND_PROBE, KIND_ACK) or n > MAX_TOKEN or len(data) != 10 + n:
        return None
    return Probe(kind, bytes(data[10:]))


def public_ipv4(host: str) -> bool:
    """Whether ``host`` may be a NAT's public side: IPv4 and not RFC 1918 / loopback /
    link-local / unspecified (the addresses behind a NAT). Other special ranges are kept:
    a carrier NAT's 100.64/10 or a lab's 198.18/15 can be the side the peer sees."""
    try:
        ip = ip_address(host)
    except ValueError:
        return False
    if not isinstance(ip, IPv4Address):
        return False
    first, second = ip.packed[0], ip.packed[1]
    rfc1918 = first == 10 or (first == 172 and 16 <= second <= 31) or (first, second) == (192, 168)
    return not (rfc1918 or ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def select_targets(candidates: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The peer candidates worth an attempt: public IPv4 ones, at most :data:`MAX_TARGETS`."""
    seen: dict[tuple[str, int], None] = {}
    for host, port in candidates:
        if public_ipv4(host) and len(seen) < MAX_TARGETS:
            seen[(host, port)] = None
    return list(seen)


class BirthdayPunch:
    """One bounded attempt for one connection. Feed it time and probes; it returns sends.

    ``targets`` are the peer's candidate addresses (filtered with :func:`select_targets`).
    ``sockets`` are the ids of the extra sockets the driver opened for the attempt (the main
    socket is id 0); the driver closes those :meth:`unused_sockets` names when it is over.
    """

    def __init__(
        self,
        token: bytes,
        targets: list[tuple[str, int]],
        now: float,
        *,
        sockets: list[int],
        spray: int = DEFAULT_SPRAY,
        rng: random.Random | None = None,
    ) -> None:
        self.token = token
        self.targets = select_targets(targets)
        self.sockets = list(sockets) if self.targets else []
        self.started = now
        self.ends = now + WINDOW
        rng = rng or random.Random()
        ips = list(dict.fromkeys(host for host, _ in self.targets))
        self._spray: list[tuple[str, int]] = []
        span = PORT_MAX - PORT_MIN + 1
        for ip in ips:
            ports = rng.sample(range(PORT_MIN, PORT_MAX + 1), min(spray, span))
            self._spray.extend((ip, p) for p in ports)
        rng.shuffle(self._spray)
        self._probe = encode_probe(KIND_PROBE, token)
        self._ack = encode_probe(KIND_ACK, token)
        self._socket_rounds = [now, now + REPEAT_AT]
        self._spray_at = now + SPRAY_DELAY
        self._spray_pos = 0
        self.matched: dict[tuple[int, tuple[str, int]], None] = {}
        """Four-tuples (our socket, peer address) a probe came through, in arrival order."""
        self.sent = 0
        self.received = 0

    @property
    def active(self) -> bool:
        return bool(self.targets)

    def next_deadline(self) -> float | None:
        if not self.active:
            return None
        times = list(self._socket_rounds)
        if self._spray_pos < len(self._spray):
            times.append(self._spray_at)
        return min(times) if times else None

    def poll(self, now: float) -> list[Send]:
        """The probes due at ``now``."""
        out: list[Send] = []
        if not self.active:
            return out
        while self._socket_rounds and self._socket_rounds[0] <= now:
            self._socket_rounds.pop(0)
            for local in self.sockets:
                out.extend(Send(local, addr, self._probe) for addr in self.targets)
        while self._spray_pos < len(self._spray) and self._spray_at <= now:
            chunk = self._spray[self._spray_pos : self._spray_pos + SPRAY_CHUNK]
            self._spray_pos += len(chunk)
            self._spray_at += SPRAY_INTERVAL
            out.extend(Send(0, addr, self._probe) for addr in chunk)
        self.sent += len(out)
        return out

    def stop(self) -> None:
        """Send nothing more (a direct path exists)."""
        self._socket_rounds.clear()
        self._spray_pos = len(self._spray)

    def on_probe(self, local: int, addr: tuple[str, int], probe: Probe) -> tuple[list[Send], bool]:
        """A probe for our token came in on socket ``local`` from ``addr``: it proved that
        four-tuple. Returns the answer to send (a probe is acked once per four-tuple, so its
        sender learns the four-tuple too) and whether the four-tuple is new."""
        if probe.token != self.token:
            return [], False
        self.received += 1
        key = (local, addr)
        if key in self.matched:
            return [], False
        self.matched[key] = None
        if probe.kind != KIND_PROBE:
            return [], True
        self.sent += 1
        return [Send(local, addr, self._ack)], True

    def stats(self) -> HardNatStats:
        return HardNatStats(
            len(self.sockets), list(self.targets), self.sent, self.received, list(self.matched)
        )

    def finished(self, now: float) -> bool:
        return now >= self.ends

    def used_sockets(self) -> set[int]:
        return {local for local, _ in self.matched if local}

    def unused_sockets(self) -> list[int]:
        used = self.used_sockets()
        return [i for i in self.sockets if i not in used]
