"""n0 NAT traversal ("QNT") state machines for both QUIC roles (wire doc §3.4). Sans-I/O.

The **server** advertises its candidate addresses (ADD_ADDRESS / REMOVE_ADDRESS, numbered by
sequence) and, when a REACH_OUT of a newer round arrives, forgets the old round and probes every
address the client reaches out from. The **client** stores the server's addresses, starts rounds
(REACH_OUT for each of its own candidates) and probes the server's addresses. A probe is an
off-path PATH_CHALLENGE; the engine builds and sends it, this module only says where to, with
which challenge bytes, and when to retry. When the client gets a matching PATH_RESPONSE from the
probed address it should open a new multipath path to that address.

Time is a float in seconds passed in by the caller; challenge bytes come from a caller-supplied
``random_bytes(n)`` callable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final, TypeAlias

from aioiroh.errors import IrohError
from aioiroh.quic.frames import (
    AddAddressFrame,
    ReachOutFrame,
    RemoveAddressFrame,
    canonical_ip,
)

__all__ = [
    "MAX_NAT_PROBE_ATTEMPTS",
    "Addr",
    "NatTraversalClient",
    "NatTraversalError",
    "NatTraversalServer",
    "NotEnoughAddresses",
    "TooManyAddresses",
    "canonical_addr",
    "is_probeable",
    "probe_retry_delay",
]

Addr: TypeAlias = tuple[IPv4Address | IPv6Address, int]
RandomBytes: TypeAlias = Callable[[int], bytes]

# Probes per address and round: the first send plus 8 retries (noq n0_nat_traversal.rs).
MAX_NAT_PROBE_ATTEMPTS: Final = 9
# Retry backoff: base = initial_rtt / 10, doubled per attempt, exponent capped, interval ≤ 2 s.
MAX_BACKOFF_EXPONENT: Final = 8
MAX_RETRY_INTERVAL: Final = 2.0
DEFAULT_INITIAL_RTT: Final = 0.333
CHALLENGE_SIZE: Final = 8
# Challenges bundled with answers to the peer's probes (peer-reflexive addresses) kept at once.
MAX_REFLEXIVE_CHALLENGES: Final = 64
# Upper bound for either side's address sets, whatever the peer's TP says (it is one byte).
MAX_ADDRESSES: Final = 255
# Probes sent per second over all rounds: a peer starting round after round (REACH_OUT with a
# new round number each time) cannot make us spray its chosen addresses faster than this.
MAX_PROBES_PER_SECOND: Final = 32
# Networks a peer may not name as a candidate: nothing unicast answers there, or a probe would
# hit a whole segment (RFC 6890: "this network", multicast, reserved incl. broadcast).
_REFUSED_NETWORKS: Final = tuple(
    IPv4Network(n) for n in ("0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4")
) + tuple(IPv6Network(n) for n in ("::/128", "ff00::/8", "100::/64"))


class NatTraversalError(IrohError):
    """A NAT traversal operation could not be done."""


class NotEnoughAddresses(NatTraversalError):
    """A round needs at least one local candidate address."""


class TooManyAddresses(NatTraversalError):
    """An address set would exceed the limit the other side advertised (its QNT TP)."""


def canonical_addr(addr: Addr) -> Addr:
    """``addr`` with an IPv4-mapped IPv6 address turned into IPv4."""
    return canonical_ip(addr[0]), addr[1]


def is_probeable(addr: Addr) -> bool:
    """Whether a peer-named candidate may be probed: a unicast host address and a real port.

    Unspecified, multicast, broadcast, reserved and discard-only (100::/64) addresses and port
    0 are refused; loopback, private and documentation ranges stay allowed (local and LAN
    candidates; the latter are what test networks use).
    """
    ip, port = canonical_addr(addr)
    if not 0 < port < 65536:
        return False
    return not any(ip in net for net in _REFUSED_NETWORKS if net.version == ip.version)


def probe_retry_delay(attempt: int, initial_rtt: float = DEFAULT_INITIAL_RTT) -> float:
    """Delay after probe attempt ``attempt``: base, then base·2^(attempt-1), capped at 2 s."""
    base = initial_rtt / 10
    attempt = min(attempt, MAX_BACKOFF_EXPONENT)
    interval = base if attempt == 0 else base * 2 ** (attempt - 1)
    return min(interval, MAX_RETRY_INTERVAL)


class _Prober:
    """Probe bookkeeping shared by both roles: retries, challenges, the retry deadline."""

    def __init__(self, random_bytes: RandomBytes, initial_rtt: float) -> None:
        self._random_bytes = random_bytes
        self._initial_rtt = initial_rtt
        # addr -> probes left after the pending one; None once the address answered.
        self._remaining: dict[Addr, int | None] = {}
        self._pending: dict[Addr, None] = {}  # insertion-ordered set
        self._pending_at: float | None = None
        self._retry_at: float | None = None
        self._attempt = 0
        # challenge -> probed address; bounded by addresses x attempts, cleared per round.
        self._challenges: dict[bytes, Addr] = {}
        # Send times of the probes of the last second (kept across rounds on purpose).
        self._sent_times: deque[float] = deque()

    def _reset_probes(self) -> None:
        self._remaining.clear()
        self._pending.clear()
        self._challenges.clear()
        self._pending_at = None
        self._retry_at = None
        self._attempt = 0

    def _queue(self, addr: Addr, now: float) -> None:
        self._remaining[addr] = MAX_NAT_PROBE_ATTEMPTS - 1
        self._pending[addr] = None
        if self._pending_at is None:
            self._pending_at = now

    def _queue_retries(self) -> None:
        self._attempt += 1
        for addr, remaining in self._remaining.items():
            if remaining:
                self._remaining[addr] = remaining - 1
                self._pending[addr] = None

    def next_deadline(self) -> float | None:
        """When :meth:`poll_probes` has work next (None = nothing scheduled)."""
        if self._pending_at is not None:
            if self._retry_at is None:
                return self._pending_at
            return min(self._pending_at, self._retry_at)
        return self._retry_at

    def poll_probes(self, now: float) -> list[tuple[Addr, bytes]]:
        """Probes due now: ``(address, 8 challenge bytes)`` pairs to send as PATH_CHALLENGE."""
        retried = False
        if self._retry_at is not None and now >= self._retry_at:
            self._queue_retries()
            retried = True
        if not self._pending:
            if retried:
                self._retry_at = None
            return []
        first_send = self._retry_at is None
        sent = self._sent_times
        while sent and sent[0] + 1.0 <= now:
            sent.popleft()
        probes: list[tuple[Addr, bytes]] = []
        for addr in list(self._pending):
            if len(sent) >= MAX_PROBES_PER_SECOND:
                break
            challenge = self._random_bytes(CHALLENGE_SIZE)
            self._challenges[challenge] = addr
            probes.append((addr, challenge))
            sent.append(now)
            del self._pending[addr]
        # Over the per-second budget: the rest wait until the oldest send leaves the window.
        self._pending_at = sent[0] + 1.0 if self._pending else None
        if retried or first_send:
            if any(self._remaining.values()):
                self._retry_at = now + probe_retry_delay(self._attempt, self._initial_rtt)
            else:
                self._retry_at = None
        return probes

    def reflexive_challenge(self, addr: Addr) -> bytes:
        """A challenge to bundle with our answer to a probe that came from ``addr``.

        Behind an endpoint-dependent (symmetric) NAT the peer's probes come from a port it
        never advertised; challenging that peer-reflexive address lets its answer open a
        path there, like any probed address.
        """
        challenge = self._random_bytes(CHALLENGE_SIZE)
        if len(self._challenges) >= MAX_REFLEXIVE_CHALLENGES:
            del self._challenges[next(iter(self._challenges))]
        self._challenges[challenge] = canonical_addr(addr)
        return challenge

    def on_path_response(self, data: bytes, from_addr: Addr) -> Addr | None:
        """A PATH_RESPONSE arrived; returns the probed address if it answers one of our probes.

        Only a response from the very address that was probed counts.
        """
        addr = self._challenges.get(data)
        if addr is None or addr != canonical_addr(from_addr):
            return None
        del self._challenges[data]
        self._remaining[addr] = None
        self._pending.pop(addr, None)
        return addr


class NatTraversalClient(_Prober):
    """Client side: remote candidates from ADD_ADDRESS, rounds of REACH_OUT and probes."""

    def __init__(
        self,
        *,
        max_remote_addresses: int,
        max_local_addresses: int,
        random_bytes: RandomBytes,
        initial_rtt: float = DEFAULT_INITIAL_RTT,
    ) -> None:
        """``max_remote_addresses`` is our QNT TP; ``max_local_addresses`` the peer's."""
        super().__init__(random_bytes, initial_rtt)
        self._max_remote = min(max_remote_addresses, MAX_ADDRESSES)
        self._max_local = min(max_local_addresses, MAX_ADDRESSES)
        self._local: dict[Addr, None] = {}
        self._remote: dict[int, Addr] = {}
        self.round = 0
        """Current round (0 = none started yet)."""

    @property
    def local_addresses(self) -> list[Addr]:
        """Our candidate addresses, in insertion order."""
        return list(self._local)

    @property
    def remote_addresses(self) -> dict[int, Addr]:
        """The server's advertised addresses by sequence number."""
        return dict(self._remote)

    def add_local_address(self, addr: Addr) -> None:
        """Register a local candidate; it is announced in the next round's REACH_OUT."""
        addr = canonical_addr(addr)
        if addr not in self._local and len(self._local) >= self._max_local:
            raise TooManyAddresses(f"peer accepts at most {self._max_local} addresses")
        self._local[addr] = None

    def remove_local_address(self, addr: Addr) -> None:
        """Forget a local candidate."""
        self._local.pop(canonical_addr(addr), None)

    def on_add_address(self, frame: AddAddressFrame) -> Addr | None:
        """Handle ADD_ADDRESS; returns the address if it is new or changed."""
        addr = canonical_addr((frame.ip, frame.port))
        if not is_probeable(addr):
            return None  # never probed; the sequence stays unknown (REMOVE_ADDRESS: no-op)
        old = self._remote.get(frame.sequence)
        if old == addr:
            return None
        if old is None and len(self._remote) >= self._max_remote:
            raise TooManyAddresses(f"server advertised more than {self._max_remote} addresses")
        if old is not None:
            self._remaining.pop(old, None)
        self._remote[frame.sequence] = addr
        if self.round:
            # Probed at the next retry of the running round, if it still runs.
            self._remaining[addr] = MAX_NAT_PROBE_ATTEMPTS
        return addr

    def on_remove_address(self, frame: RemoveAddressFrame) -> Addr | None:
        """Handle REMOVE_ADDRESS; returns the removed address if it was known."""
        addr = self._remote.pop(frame.sequence, None)
        if addr is not None:
            self._remaining.pop(addr, None)
            self._pending.pop(addr, None)
        return addr

    def initiate_round(self, now: float) -> list[ReachOutFrame]:
        """Start a new round: REACH_OUT frames to send, and probes of every server address."""
        if not self._local:
            raise NotEnoughAddresses("no local candidate addresses")
        self.round += 1
        self._reset_probes()
        for addr in self._remote.values():
            self._queue(addr, now)
        return [ReachOutFrame(self.round, ip, port) for ip, port in self._local]


class NatTraversalServer(_Prober):
    """Server side: local candidates as ADD/REMOVE_ADDRESS, probing REACH_OUT addresses."""

    def __init__(
        self,
        *,
        max_remote_addresses: int,
        max_local_addresses: int,
        random_bytes: RandomBytes,
        initial_rtt: float = DEFAULT_INITIAL_RTT,
    ) -> None:
        """``max_remote_addresses`` is our QNT TP; ``max_local_addresses`` the peer's."""
        super().__init__(random_bytes, initial_rtt)
        self._max_remote = min(max_remote_addresses, MAX_ADDRESSES)
        self._max_local = min(max_local_addresses, MAX_ADDRESSES)
        self._local: dict[Addr, int] = {}
        self._next_sequence = 0
        self.round = 0
        """Round of the latest REACH_OUT seen."""

    @property
    def local_addresses(self) -> dict[Addr, int]:
        """Our advertised addresses with their sequence numbers."""
        return dict(self._local)

    def add_local_address(self, addr: Addr) -> AddAddressFrame | None:
        """Register a candidate; returns the ADD_ADDRESS to send (None if already known)."""
        addr = canonical_addr(addr)
        if addr in self._local:
            return None
        if len(self._local) >= self._max_local:
            raise TooManyAddresses(f"peer accepts at most {self._max_local} addresses")
        sequence = self._next_sequence
        self._next_sequence += 1
        self._local[addr] = sequence
        return AddAddressFrame(sequence, addr[0], addr[1])

    def remove_local_address(self, addr: Addr) -> RemoveAddressFrame | None:
        """Withdraw a candidate; returns the REMOVE_ADDRESS to send (None if unknown)."""
        sequence = self._local.pop(canonical_addr(addr), None)
        return None if sequence is None else RemoveAddressFrame(sequence)

    def on_reach_out(self, frame: ReachOutFrame, now: float) -> bool:
        """Handle REACH_OUT; returns True if a new address is now queued for probing.

        Older rounds are ignored, a newer round discards the previous one, and retransmitted
        frames are deduplicated.
        """
        if frame.round < self.round:
            return False
        addr = canonical_addr((frame.ip, frame.port))
        if not is_probeable(addr):
            return False
        if frame.round > self.round:
            self.round = frame.round
            self._reset_probes()
        elif addr in self._remaining:
            return False
        elif len(self._remaining) >= self._max_remote:
            raise TooManyAddresses(f"client reached out from more than {self._max_remote}")
        self._queue(addr, now)
        return True
