"""The relay transport: QUIC datagrams to and from endpoints through iroh relays (wire doc §4.4).

:class:`RelayTransport` is what the socket talks to for every relay path:

* **Home relay.** On :meth:`~RelayTransport.start` every relay in the map is probed with
  ``GET /ping`` (3 probes each, concurrently across relays); the fastest wins and is
  published on :attr:`~RelayTransport.home_relay`. The home connection is kept up,
  reconnecting with exponential backoff (10 ms … 16 s, jittered).
  :meth:`~RelayTransport.online` resolves once it is connected and authenticated.
* **Re-probing.** Like iroh's net report, the relays are probed again every 20-26 s and
  at once after :meth:`~RelayTransport.network_changed`; :class:`HomeRelaySelector` moves
  home only to a relay that is clearly better (iroh's hysteresis), or away from a home that
  stopped answering. A former home is just another relay connection: peers that still
  address us there reach us, until it has been idle for 60 s.
* **Other relays on demand.** :meth:`~RelayTransport.send` to a relay we are not connected
  to (a peer's own relay) opens a connection there; it is closed again after 60 s without
  writes, like iroh's ``RELAY_INACTIVE_CLEANUP_TIME``.
* **Sending never blocks.** Datagrams go into a bounded per-relay queue (full → dropped and
  counted). While a relay is (re)connecting they wait at most 3 s (about three QUIC PTOs),
  then they are dropped. A flush writes up to 20 frames (at most 32 KiB of datagrams),
  coalescing consecutive datagrams to the same destination into GSO-style batch frames
  when their sizes allow it.
* **Bounded queueing delay.** The relay client keeps the buffers below us small and we
  flush only while it is writable, so on a slow link the backlog builds up here, where we
  can act on it: a datagram that waited longer than 200 ms is dropped instead of sent.
  QUIC takes that as congestion and slows down, so its packets (ACKs and path probes too)
  never sit behind seconds of bulk data. Small datagrams may overtake datagrams for other
  destinations, never those for their own (see :class:`_SendQueue`).
* **Receiving.** Batches are split by segment size and handed to ``on_recv`` one datagram
  at a time; the ECN byte is ignored on receive, as iroh does.
* ``Restarting`` from a relay makes us reconnect after the advised delay.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from ...base.key import EndpointId, SecretKey
from ...base.relay_url import RelayUrl
from ...errors import RelayAuthError, RelayError
from ...relay.client import CONNECT_TIMEOUT, PING_INTERVAL, RelayClient
from ...relay.protocol.frames import (
    MAX_PACKET_SIZE,
    ClientToRelayDatagrams,
    Datagrams,
    EndpointGone,
    Health,
    RelayToClientDatagrams,
    Restarting,
    Status,
    encode_client_msg,
)
from ...relay.protocol.ping import DEFAULT_PING_TIMEOUT
from ...relay.protocol.version import PROBE_PATH, SUBPROTOCOLS
from ...relay.relay_map import RelayMap
from ...util.backoff import DEFAULT_BACKOFF, Backoff
from ...util.watch import Watchable, Watcher

__all__ = [
    "HomeRelaySelector",
    "RelayRecvCallback",
    "RelayTransport",
    "RelayTransportConfig",
    "RelayTransportMetrics",
    "choose_home_relay",
    "probe_relay",
]

logger = logging.getLogger(__name__)

RelayRecvCallback = Callable[[RelayUrl, EndpointId, bytes], None]
"""``on_recv(relay_url, src, datagram)``: called once per received datagram; must not block."""

# Datagrams queued per relay connection before new ones are dropped.
SEND_QUEUE_MAX: Final = 512
# Frames written per flush (iroh SEND_DATAGRAM_BATCH_SIZE): keeps pings and pongs from
# waiting behind a long burst.
SEND_BATCH_FRAMES: Final = 20
# Datagram bytes per flush (one datagram may exceed it): with the small buffers under us,
# this is about what a datagram may find ahead of it once it leaves our queue.
SEND_BATCH_BYTES: Final = 32 * 1024
# Longest a datagram may wait in the queue of a connected relay. Older ones are dropped:
# the loss makes QUIC back off, which keeps the queue (and every packet's delay) short.
# Long enough to ride out QUIC's rate halving on paths up to ~0.4 s RTT without idling.
MAX_QUEUE_DELAY: Final = 0.2
# Datagrams up to this size (QUIC ACK-only packets, bare probes) may overtake others.
SMALL_DATAGRAM_MAX: Final = 128
# How long datagrams wait for a relay that is (re)connecting: ~3 QUIC initial PTOs (iroh).
UNDELIVERABLE_TIMEOUT: Final = 3.0
# Non-home relay connections are closed after this long without writes (iroh).
INACTIVE_TIMEOUT: Final = 60.0
# Relays we keep connections to at once (home + peers' relays); more → datagrams dropped.
MAX_ACTIVE_RELAYS: Final = 64
# /ping probes per relay when choosing the home relay (iroh's net_report sends 3).
PROBES_PER_RELAY: Final = 3
PROBE_TIMEOUT: Final = 3.0
# Re-probing when no relay answered at all: start at 1 s, back off to 30 s.
PROBE_RETRY_BACKOFF: Final = Backoff(min_delay=1.0, max_delay=30.0)
# Once there is a home: probe every relay again after a random 20..26 s, like iroh's periodic
# net report (iroh/src/socket.rs, new_re_stun_timer: just under a common 30 s NAT timeout).
REPROBE_INTERVAL: Final = (20.0, 26.0)
# How long a relay's best latency is remembered when ranking relays, and the factor by which
# another relay must beat the home's current latency to take over (iroh/src/net_report.rs,
# add_report_history_and_set_preferred_relay: 5 min of reports, "2/3").
REPORT_HISTORY: Final = 300.0
HOME_SWITCH_RATIO: Final = 2 / 3
# Frame overhead of a batch: type tag, dst id, ECN, segment size.
_BATCH_OVERHEAD: Final = 1 + 32 + 1 + 2
# Largest datagram payload one frame can carry.
MAX_DATAGRAM_PAYLOAD: Final = MAX_PACKET_SIZE - (_BATCH_OVERHEAD - 1)
# Segment sizes travel as a u16.
_MAX_SEGMENT_SIZE: Final = 0xFFFF


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayTransportConfig:
    """Tuning knobs of :class:`RelayTransport`; the defaults are iroh's."""

    send_queue_max: int = SEND_QUEUE_MAX
    """Datagrams queued per relay before dropping."""
    send_batch_frames: int = SEND_BATCH_FRAMES
    """Frames written per flush."""
    send_batch_bytes: int = SEND_BATCH_BYTES
    """Datagram bytes written per flush (at least one datagram)."""
    max_queue_delay: float = MAX_QUEUE_DELAY
    """Seconds a datagram may wait for a connected relay before it is dropped."""
    small_datagram_max: int = SMALL_DATAGRAM_MAX
    """Datagrams up to this many bytes may overtake those for other destinations (0: never)."""
    undeliverable_timeout: float = UNDELIVERABLE_TIMEOUT
    """Seconds a queued datagram may wait for a connection."""
    inactive_timeout: float = INACTIVE_TIMEOUT
    """Seconds without writes after which a non-home relay connection is closed."""
    max_active_relays: int = MAX_ACTIVE_RELAYS
    """Relay connections kept at once."""
    connect_timeout: float = CONNECT_TIMEOUT
    """Dial, upgrade and handshake timeout per connection attempt."""
    ping_interval: float = PING_INTERVAL
    """Keep-alive ping period of each relay connection."""
    ping_timeout: float = DEFAULT_PING_TIMEOUT
    """How long a keep-alive ping may go unanswered."""
    backoff: Backoff = DEFAULT_BACKOFF
    """Reconnect schedule."""
    probes_per_relay: int = PROBES_PER_RELAY
    """``/ping`` probes per relay when choosing the home relay."""
    probe_timeout: float = PROBE_TIMEOUT
    """Timeout of one ``/ping`` probe."""
    probe_retry_backoff: Backoff = PROBE_RETRY_BACKOFF
    """Schedule for re-probing when no relay answered."""
    reprobe_interval: tuple[float, float] | None = REPROBE_INTERVAL
    """Uniform random range (seconds) between re-probes once a home is chosen; None: never."""
    report_history: float = REPORT_HISTORY
    """Seconds a relay's best probe latency counts when ranking relays (see HomeRelaySelector)."""
    protocols: tuple[str, ...] = SUBPROTOCOLS
    """Relay protocol versions offered, preferred first."""
    home_relay: RelayUrl | None = None
    """Use this relay as home instead of probing (it need not be in the map)."""


@dataclass(slots=True)
class RelayTransportMetrics:
    """Counters of one :class:`RelayTransport` (monotonic)."""

    datagrams_sent: int = 0
    """Datagrams written to a relay."""
    bytes_sent: int = 0
    """Datagram payload bytes written to a relay."""
    frames_sent: int = 0
    """Datagram frames written (a batch frame counts once)."""
    datagrams_received: int = 0
    """Datagrams delivered to ``on_recv``."""
    bytes_received: int = 0
    """Datagram payload bytes delivered to ``on_recv``."""
    send_dropped_queue_full: int = 0
    """Datagrams dropped because the relay's send queue was full."""
    send_dropped_undeliverable: int = 0
    """Datagrams dropped after waiting too long for a connection (or lost with one)."""
    send_dropped_delay: int = 0
    """Datagrams dropped after waiting longer than ``max_queue_delay`` for a busy relay."""
    send_dropped_invalid: int = 0
    """Datagrams dropped as too large, or while closed, or over the relay limit."""
    recv_dropped: int = 0
    """Received datagrams dropped (``on_recv`` raised, or the client's queue overflowed)."""
    connects: int = 0
    """Successful relay connections (including reconnects)."""
    connect_failures: int = 0
    """Failed connection attempts."""
    endpoints_gone: int = 0
    """EndpointGone notices received."""


@dataclass(slots=True)
class _Queued:
    dst: EndpointId
    contents: bytes
    ecn: int
    segment_size: int | None
    enqueued_at: float


class _SendQueue:
    """Datagrams waiting for one relay connection, in two FIFO lanes; sans-I/O.

    Small datagrams go to the ``small`` lane, which is sent first, unless datagrams for the
    same destination wait in the ``bulk`` lane: per destination the order is kept. QUIC
    declares a packet lost once three later packets of its path are acknowledged, so a
    peer's small packets (its ACKs, its probes) jumping ahead of our data for it would look
    like loss of that data and halve its rate (measured over a 1 MB/s relay: 0.96 → 0.38
    MB/s). Overtaking another destination's data is harmless (another connection, its own
    packet numbers) and keeps one bulk transfer from delaying every other peer's control
    traffic behind the same relay.
    """

    __slots__ = ("_bulk_dsts", "bulk", "small", "small_max")

    def __init__(self, small_max: int) -> None:
        self.small_max = small_max
        self.small: deque[_Queued] = deque()
        self.bulk: deque[_Queued] = deque()
        # Datagrams in the bulk lane per destination.
        self._bulk_dsts: dict[EndpointId, int] = {}

    def __len__(self) -> int:
        return len(self.small) + len(self.bulk)

    def push(self, item: _Queued) -> None:
        if len(item.contents) <= self.small_max and item.dst not in self._bulk_dsts:
            self.small.append(item)
        else:
            self.bulk.append(item)
            self._bulk_dsts[item.dst] = self._bulk_dsts.get(item.dst, 0) + 1

    def lane(self) -> deque[_Queued] | None:
        """The lane to send from next (peek ``lane[0]``, take with :meth:`pop`), or None."""
        if self.small:
            return self.small
        return self.bulk if self.bulk else None

    def pop(self, lane: deque[_Queued]) -> _Queued:
        item = lane.popleft()
        if lane is self.bulk:
            left = self._bulk_dsts[item.dst] - 1
            if left:
                self._bulk_dsts[item.dst] = left
            else:
                del self._bulk_dsts[item.dst]
        return item

    def oldest(self) -> float | None:
        """When the longest-waiting datagram was queued, or None if empty."""
        heads = [lane[0].enqueued_at for lane in (self.small, self.bulk) if lane]
        return min(heads) if heads else None

    def drop_queued_before(self, limit: float) -> int:
        """Drop datagrams queued at or before ``limit``; returns how many."""
        dropped = 0
        for lane in (self.small, self.bulk):
            while lane and lane[0].enqueued_at <= limit:
                self.pop(lane)
                dropped += 1
        return dropped

    def clear(self) -> int:
        """Drop everything; returns how many datagrams that was."""
        count = len(self)
        self.small.clear()
        self.bulk.clear()
        self._bulk_dsts.clear()
        return count


def _segments(size: int, segment_size: int | None) -> int:
    """How many datagrams ``size`` bytes cut at ``segment_size`` make."""
    if not segment_size:
        return 1
    return max(-(-size // segment_size), 1)


# --- home relay selection --------------------------------------------------------------------


def _probe_url(url: RelayUrl) -> str:
    scheme = "https" if url.is_secure else "http"
    port = f":{url.explicit_port}" if url.explicit_port is not None else ""
    return f"{scheme}://{url.host_str}{port}{PROBE_PATH}"


async def probe_relay(
    session: aiohttp.ClientSession,
    url: RelayUrl,
    *,
    count: int = PROBES_PER_RELAY,
    timeout: float = PROBE_TIMEOUT,
) -> list[float]:
    """Latencies in seconds of ``count`` sequential ``GET /ping`` probes that got a 2xx.

    Failed probes are left out, so an unreachable relay gives an empty list.
    """
    loop = asyncio.get_running_loop()
    target = _probe_url(url)
    latencies: list[float] = []
    for _ in range(count):
        started = loop.time()
        try:
            async with asyncio.timeout(timeout), session.get(target) as resp:
                await resp.read()
                ok = 200 <= resp.status < 300
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.debug("relay probe %s failed: %s", target, exc)
            continue
        if ok:
            latencies.append(loop.time() - started)
    return latencies


def choose_home_relay(latencies: Mapping[RelayUrl, Iterable[float]]) -> RelayUrl | None:
    """The relay with the lowest median latency; ties go to the earlier one; None if none."""
    best: tuple[float, RelayUrl] | None = None
    for url, samples in latencies.items():
        values = list(samples)
        if not values:
            continue
        median = statistics.median(values)
        if best is None or median < best[0]:
            best = (median, url)
    return None if best is None else best[1]


class HomeRelaySelector:
    """Which relay is home, report after report (sans-I/O; iroh's rule, described below).

    Each :meth:`update` takes one round of probe results. A relay's latency in a round is its
    fastest probe; relays without an answer are absent from the round. Then, in the spirit of
    iroh's ``add_report_history_and_set_preferred_relay`` (``iroh/src/net_report.rs``):

    * Rounds older than :data:`REPORT_HISTORY` are forgotten; each relay is ranked by its best
      latency over the rounds remembered, so one slow sample does not demote a good relay.
    * Only relays that answered in this round are candidates; the best ranked one wins.
    * Hysteresis: if the current home answered in this round, it stays home unless the winner's
      ranked latency is below :data:`HOME_SWITCH_RATIO` (2/3) of the home's latency *in this
      round*. A home that did not answer is replaced by the winner.
    * A round in which no relay answered changes nothing (iroh's socket keeps its relay when
      a report names none: ``handle_net_report_report`` in ``iroh/src/socket.rs``).
    """

    def __init__(
        self, *, history: float = REPORT_HISTORY, switch_ratio: float = HOME_SWITCH_RATIO
    ) -> None:
        self.history = history
        self.switch_ratio = switch_ratio
        self.home: RelayUrl | None = None
        """The current choice (None before any relay answered)."""
        self._rounds: deque[tuple[float, dict[RelayUrl, float]]] = deque()

    def update(self, latencies: Mapping[RelayUrl, Iterable[float]], now: float) -> RelayUrl | None:
        """Feed one probing round taken at ``now`` (seconds); returns the home relay."""
        current: dict[RelayUrl, float] = {}
        for url, samples in latencies.items():
            values = list(samples)
            if values:
                current[url] = min(values)
        rounds = self._rounds
        while rounds and now - rounds[0][0] > self.history:
            rounds.popleft()
        rounds.append((now, current))
        if not current:
            return self.home
        best: dict[RelayUrl, float] = {}
        for _, seen in rounds:
            for url, latency in seen.items():
                if url not in best or latency < best[url]:
                    best[url] = latency
        winner = min(current, key=lambda url: best[url])  # first in map order on ties
        home = self.home
        if (
            home is not None
            and winner != home
            and home in current
            and best[winner] > current[home] * self.switch_ratio
        ):
            winner = home
        self.home = winner
        return winner


# --- the transport ---------------------------------------------------------------------------


class RelayTransport:
    """Sends and receives QUIC datagrams through relays; see the module docstring."""

    def __init__(
        self,
        secret_key: SecretKey,
        relay_map: RelayMap | Iterable[RelayUrl | str],
        on_recv: RelayRecvCallback,
        *,
        config: RelayTransportConfig | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Prepare the transport; nothing happens on the network before :meth:`start`.

        ``relay_map`` is a :class:`RelayMap` or an iterable of relay URLs (auth tokens come
        from the map's :class:`RelayConfig` entries). ``rng`` feeds the reconnect jitter.
        """
        self.secret_key = secret_key
        self.relay_map = relay_map if isinstance(relay_map, RelayMap) else RelayMap(relay_map)
        self.config = config or RelayTransportConfig()
        self.metrics = RelayTransportMetrics()
        """Counters; read them, don't write them."""
        self.home_relay: Watchable[RelayUrl | None] = Watchable(None)
        """The chosen home relay (None until chosen)."""
        self.connected_relays: Watchable[frozenset[RelayUrl]] = Watchable(frozenset())
        """Relays with a live, authenticated connection right now."""
        self.relay_latencies: Watchable[dict[RelayUrl, list[float]]] = Watchable({})
        """The latest probing round: each relay's ``/ping`` latencies (empty: no answer)."""
        self._on_recv = on_recv
        self._rng = rng
        self._online: Watchable[bool] = Watchable(False)
        self._relays: dict[RelayUrl, _ActiveRelay] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        self._closed = False
        self._selector = HomeRelaySelector(history=self.config.report_history)
        self._reprobe = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin choosing a home relay and connecting to it; returns immediately."""
        if self._started:
            raise RuntimeError("RelayTransport already started")
        if self._closed:
            raise RelayError("RelayTransport is closed")
        self._started = True
        self._session = aiohttp.ClientSession()
        self._spawn(self._select_home(), "relay-home-select")

    async def online(self) -> None:
        """Wait until connected and authenticated to the home relay."""
        await self._online.wait_for(bool)

    @property
    def is_online(self) -> bool:
        """True while the home relay connection is up."""
        return self._online.get()

    def watch_online(self) -> Watcher[bool]:
        """Follow whether the home relay connection is up."""
        return self._online.watch()

    def network_changed(self) -> None:
        """The local network changed: probe the relays again now (iroh re-runs its report)."""
        self._reprobe.set()

    async def close(self) -> None:
        """Close every relay connection and stop all tasks. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        try:
            if tasks:
                # asyncio.wait, not await: a cancelled close() must still raise CancelledError.
                await asyncio.wait(tasks)
        finally:
            self._relays.clear()
            if self._session is not None:
                await self._session.close()
        self._online.set(False)
        self._online.close()
        self.home_relay.close()
        self.connected_relays.close()
        self.relay_latencies.close()

    async def __aenter__(self) -> RelayTransport:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        home = self.home_relay.get()
        return (
            f"<RelayTransport {self.secret_key.public().fmt_short()} home={home} "
            f"relays={len(self._relays)} online={self.is_online}>"
        )

    # --- sending ------------------------------------------------------------------------------

    def send(
        self,
        url: RelayUrl,
        dst: EndpointId,
        data: bytes,
        segment_size: int | None = None,
        ecn: int = 0,
    ) -> bool:
        """Queue ``data`` for ``dst`` via relay ``url``; False if it was dropped (and counted).

        With ``segment_size``, ``data`` holds several datagrams of that size (the last may be
        shorter). Connects to ``url`` if needed. Never blocks.
        """
        m = self.metrics
        if self._closed or not self._started:
            m.send_dropped_invalid += 1
            return False
        if len(data) > MAX_DATAGRAM_PAYLOAD or not 0 <= ecn <= 3:
            m.send_dropped_invalid += 1
            return False
        if segment_size is not None and (
            segment_size <= 0 or segment_size > _MAX_SEGMENT_SIZE or segment_size >= len(data)
        ):
            segment_size = None
        relay = self._relays.get(url)
        if relay is None:
            if len(self._relays) >= self.config.max_active_relays:
                m.send_dropped_invalid += 1
                return False
            relay = self._add_relay(url, is_home=False)
        return relay.enqueue(dst, bytes(data), ecn, segment_size)

    # --- internals ----------------------------------------------------------------------------

    def _auth_token(self, url: RelayUrl) -> str | None:
        config = self.relay_map.get(url)
        return None if config is None else config.auth_token

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _add_relay(self, url: RelayUrl, *, is_home: bool) -> _ActiveRelay:
        relay = _ActiveRelay(self, url, is_home=is_home)
        self._relays[url] = relay
        self._spawn(relay.run(), f"relay-active {url}")
        return relay

    def _relay_done(self, relay: _ActiveRelay) -> None:
        if self._relays.get(relay.url) is relay:
            del self._relays[relay.url]

    def _set_connected(self, relay: _ActiveRelay, connected: bool) -> None:
        if self._closed:
            return
        if relay.is_home:
            self._online.set(connected)
        current = self.connected_relays.get()
        self.connected_relays.set(current | {relay.url} if connected else current - {relay.url})

    def _deliver(self, url: RelayUrl, msg: RelayToClientDatagrams) -> None:
        m = self.metrics
        for datagram in msg.datagrams.split():
            try:
                self._on_recv(url, msg.src, datagram)
            except Exception:
                m.recv_dropped += 1
                logger.exception("relay on_recv callback failed")
                continue
            m.datagrams_received += 1
            m.bytes_received += len(datagram)

    async def _select_home(self) -> None:
        """Pick the home relay, retrying while none answers; then re-probe periodically."""
        cfg = self.config
        if cfg.home_relay is not None:
            self._make_home(cfg.home_relay)
            return
        attempt = 0
        while await self._probe_round() is None:
            delay = cfg.probe_retry_backoff.delay(attempt, self._rng)
            attempt += 1
            logger.info("no relay answered /ping; probing again in %.1f s", delay)
            await self._wait_reprobe(delay)
        if cfg.reprobe_interval is None:
            return
        low, high = cfg.reprobe_interval
        while True:
            await self._wait_reprobe(low + (high - low) * self._rng())
            if len(self.relay_map.urls()) < 2:
                continue  # nothing to compare the home with
            await self._probe_round()

    async def _wait_reprobe(self, timeout: float) -> None:
        """Sleep ``timeout`` seconds, or until :meth:`network_changed` is called."""
        try:
            async with asyncio.timeout(timeout):
                await self._reprobe.wait()
        except TimeoutError:
            pass
        self._reprobe.clear()

    async def _probe_round(self) -> RelayUrl | None:
        """Probe every relay once, let the selector decide, move home if it says so."""
        cfg = self.config
        assert self._session is not None
        urls = self.relay_map.urls()
        results = await asyncio.gather(
            *(
                probe_relay(self._session, u, count=cfg.probes_per_relay, timeout=cfg.probe_timeout)
                for u in urls
            )
        )
        latencies = dict(zip(urls, results))
        logger.debug("relay probe results: %s", latencies)
        home = self._selector.update(latencies, asyncio.get_running_loop().time())
        self.relay_latencies.set(latencies)
        if home is not None and home != self.home_relay.get():
            self._make_home(home)
        return home

    def _make_home(self, url: RelayUrl) -> None:
        previous = self.home_relay.get()
        if previous == url:
            return
        old = self._relays.get(previous) if previous is not None else None
        if old is not None:
            # No longer home, still connected: peers that address us there (our published
            # relay until they learn the new one) still reach us. It is now closed like any
            # other relay connection after the inactive timeout, counted from now.
            old.is_home = False
            old.last_write = max(old.last_write, old.loop.time())
            old.wake.set()
        relay = self._relays.get(url)
        if relay is None or relay.closing:
            relay = self._add_relay(url, is_home=True)
        else:
            relay.is_home = True
        self._online.set(relay.client is not None)
        self.home_relay.set(url)
        if previous is None:
            logger.info("home relay is %s", url)
        else:
            logger.info("home relay is now %s, was %s", url, previous)


class _ActiveRelay:
    """One relay: its send queue and the task that keeps a connection to it."""

    def __init__(self, transport: RelayTransport, url: RelayUrl, *, is_home: bool) -> None:
        self.transport = transport
        self.url = url
        self.is_home = is_home
        self.client: RelayClient | None = None
        # When the current connection came up; queueing delay counts from then at the earliest.
        self.connected_at = 0.0
        self.queue = _SendQueue(transport.config.small_datagram_max)
        self.wake = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.last_write = self.loop.time()
        self.closing = False
        # Set by the reader when the connection ends, or when the relay asks us to reconnect.
        self._reader_done = False
        self._restart_delay: float | None = None

    def enqueue(self, dst: EndpointId, data: bytes, ecn: int, segment_size: int | None) -> bool:
        m = self.transport.metrics
        now = self.loop.time()
        if self.client is None:
            self._drop_expired(now)
        if len(self.queue) >= self.transport.config.send_queue_max or self.closing:
            m.send_dropped_queue_full += 1
            return False
        self.queue.push(_Queued(dst, data, ecn, segment_size, now))
        self.last_write = now
        self.wake.set()
        return True

    def _drop_expired(self, now: float) -> None:
        limit = now - self.transport.config.undeliverable_timeout
        self.transport.metrics.send_dropped_undeliverable += self.queue.drop_queued_before(limit)

    def _idle_deadline(self) -> float | None:
        if self.is_home:
            return None
        return self.last_write + self.transport.config.inactive_timeout

    async def _wait(self, timeout: float | None) -> None:
        """Wait for a wake-up (new datagrams, reader finished) or ``timeout`` seconds."""
        if timeout is not None and timeout <= 0:
            return
        self.wake.clear()
        # A timer that sets the event, rather than asyncio.timeout: no cancellation involved.
        handle = None if timeout is None else self.loop.call_later(timeout, self.wake.set)
        try:
            await self.wake.wait()
        finally:
            if handle is not None:
                handle.cancel()

    async def run(self) -> None:
        transport = self.transport
        cfg = transport.config
        attempt = 0
        try:
            while True:
                try:
                    client = await RelayClient.connect(
                        self.url,
                        transport.secret_key,
                        protocols=cfg.protocols,
                        auth_token=transport._auth_token(self.url),
                        timeout=cfg.connect_timeout,
                        ping_interval=cfg.ping_interval,
                        ping_timeout=cfg.ping_timeout,
                        session=transport._session,
                    )
                except RelayError as exc:
                    transport.metrics.connect_failures += 1
                    level = logging.WARNING if isinstance(exc, RelayAuthError) else logging.DEBUG
                    logger.log(level, "relay %s: connect failed: %s", self.url, exc)
                    delay = cfg.backoff.delay(attempt, transport._rng)
                    attempt += 1
                    if not await self._backoff(delay):
                        return
                    continue
                attempt = 0
                transport.metrics.connects += 1
                reconnect_in = await self._serve(client)
                if reconnect_in is None:
                    return  # idle non-home relay
                if not await self._backoff(reconnect_in):
                    return
        finally:
            self.closing = True
            transport.metrics.send_dropped_undeliverable += self.queue.clear()
            transport._relay_done(self)

    async def _backoff(self, delay: float) -> bool:
        """Sleep before reconnecting, dropping stale datagrams; False if we should stop (idle)."""
        end = self.loop.time() + delay
        while True:
            now = self.loop.time()
            self._drop_expired(now)
            idle = self._idle_deadline()
            if idle is not None and now >= idle and not self.queue:
                return False
            if now >= end:
                return True
            # Wake early only to expire datagrams; new ones simply wait in the queue.
            next_check = end
            oldest = self.queue.oldest()
            if oldest is not None:
                next_check = min(next_check, oldest + self.transport.config.undeliverable_timeout)
            await asyncio.sleep(max(next_check - now, 0))

    async def _serve(self, client: RelayClient) -> float | None:
        """Run one connection; returns the reconnect delay, or None to stop (idle)."""
        transport = self.transport
        self.client = client
        self.connected_at = self.loop.time()
        self._reader_done = False
        self._restart_delay = None
        transport._set_connected(self, True)
        reader = asyncio.create_task(self._read(client), name=f"relay-recv {self.url}")
        try:
            while True:
                if self._reader_done:
                    break
                if self.queue:
                    try:
                        if not client.writable:
                            await self._wait_writable(client, reader)
                            continue
                        await self._flush(client)
                    except RelayError as exc:
                        logger.debug("relay %s: send failed: %s", self.url, exc)
                        break
                    continue
                idle = self._idle_deadline()
                now = self.loop.time()
                if idle is not None and now >= idle:
                    # Stop taking datagrams now; a later send() starts a fresh connection.
                    self.closing = True
                    transport._relay_done(self)
                    return None
                await self._wait(None if idle is None else idle - now)
        finally:
            self.client = None
            transport._set_connected(self, False)
            reader.cancel()
            try:
                await asyncio.wait({reader})  # never swallows our own cancellation
            finally:
                await client.close()
        if self._restart_delay is not None:
            return self._restart_delay
        # A connection that worked is retried at once (first backoff step), as iroh does.
        return self.transport.config.backoff.delay(0, self.transport._rng)

    async def _wait_writable(self, client: RelayClient, reader: asyncio.Task[None]) -> None:
        """Wait until ``client`` is writable or the reader ended (the loop then notices)."""
        waiter = asyncio.ensure_future(client.wait_writable())
        try:
            await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if waiter.done() and not waiter.cancelled():
            waiter.result()  # raises RelayError if the connection failed

    async def _flush(self, client: RelayClient) -> None:
        """Write up to ``send_batch_frames`` frames from the queue, coalescing batches."""
        cfg = self.transport.config
        m = self.transport.metrics
        queue = self.queue
        now = self.loop.time()
        self._drop_expired(now)
        # Only time spent waiting for this connection counts: what waited for it to come up
        # is the undeliverable timeout's business.
        limit = now - cfg.max_queue_delay
        if self.connected_at <= limit:
            m.send_dropped_delay += queue.drop_queued_before(limit)
        frames: list[bytes] = []
        datagrams = 0
        payload = 0
        budget = cfg.send_batch_bytes
        while len(frames) < cfg.send_batch_frames and payload < budget:
            lane = queue.lane()
            if lane is None:
                break
            first = queue.pop(lane)
            seg = first.segment_size or len(first.contents)
            parts = [first.contents]
            total = len(first.contents)
            count = _segments(total, first.segment_size)
            # A batch can only grow while its last datagram is full-sized (GSO rule).
            full = 0 < seg <= _MAX_SEGMENT_SIZE and total % seg == 0
            while lane and full:
                nxt = lane[0]
                if nxt.dst != first.dst or nxt.ecn != first.ecn:
                    break
                size = len(nxt.contents)
                fits = size <= seg if nxt.segment_size is None else nxt.segment_size == seg
                if not fits or total + size > MAX_DATAGRAM_PAYLOAD or payload + total >= budget:
                    break
                queue.pop(lane)
                parts.append(nxt.contents)
                total += size
                count += _segments(size, seg)
                full = size % seg == 0
            contents = parts[0] if len(parts) == 1 else b"".join(parts)
            segment_size = seg if total > seg else None
            msg = ClientToRelayDatagrams(first.dst, Datagrams(first.ecn, segment_size, contents))
            frames.append(encode_client_msg(msg))
            datagrams += count
            payload += total
        if not frames:
            return
        try:
            await client.send_frames(frames)
        except RelayError:
            m.send_dropped_undeliverable += datagrams
            raise
        m.frames_sent += len(frames)
        m.datagrams_sent += datagrams
        m.bytes_sent += payload

    async def _read(self, client: RelayClient) -> None:
        transport = self.transport
        try:
            while True:
                msg = await client.recv()
                if isinstance(msg, RelayToClientDatagrams):
                    transport._deliver(self.url, msg)
                elif isinstance(msg, EndpointGone):
                    transport.metrics.endpoints_gone += 1
                    logger.debug("relay %s: %s is gone", self.url, msg.endpoint_id.fmt_short())
                elif isinstance(msg, Restarting):
                    logger.info(
                        "relay %s is restarting; reconnecting in %d ms",
                        self.url,
                        msg.reconnect_in_ms,
                    )
                    self._restart_delay = msg.reconnect_in_ms / 1000
                    return
                elif isinstance(msg, Status | Health):
                    logger.info("relay %s reports %s", self.url, msg)
        except RelayError as exc:
            logger.debug("relay %s: connection lost: %s", self.url, exc)
        finally:
            transport.metrics.recv_dropped += client.dropped_recv
            self._reader_done = True
            self.wake.set()
