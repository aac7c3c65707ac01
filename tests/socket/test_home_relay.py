"""Home relay re-probing: the selection rule on virtual time, and the transport on loopback.

The rule (:class:`HomeRelaySelector`, iroh's net report): rank relays by their best latency
over the last 5 minutes, among those that answered now; stay home unless the winner beats
the home's current latency by a third, or the home stopped answering. The real tests run two
of our relay servers behind TCP proxies whose delay the test turns up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from aioiroh.base.key import EndpointId, SecretKey
from aioiroh.base.relay_url import RelayUrl
from aioiroh.relay.client import RelayClient
from aioiroh.relay.protocol.frames import Datagrams
from aioiroh.relay.relay_map import RelayMap
from aioiroh.relay_server import RelayServer, ServerConfig
from aioiroh.socket.transports.relay import (
    HOME_SWITCH_RATIO,
    REPORT_HISTORY,
    REPROBE_INTERVAL,
    HomeRelaySelector,
    RelayTransport,
    RelayTransportConfig,
)
from aioiroh.util.backoff import Backoff
from aioiroh.util.watch import Watchable

A = RelayUrl("https://relay-a.example")
B = RelayUrl("https://relay-b.example")
C = RelayUrl("https://relay-c.example")
FAST_BACKOFF = Backoff(min_delay=0.01, max_delay=0.2)
# Re-probe often in the loopback tests.
QUICK_REPROBE = (0.1, 0.2)


# --- the rule, on virtual time --------------------------------------------------------------


def test_iroh_constants() -> None:
    assert REPROBE_INTERVAL == (20.0, 26.0)
    assert REPORT_HISTORY == 300.0
    assert pytest.approx(2 / 3) == HOME_SWITCH_RATIO


def test_first_round_picks_the_fastest_probe() -> None:
    s = HomeRelaySelector()
    assert s.update({A: [], B: []}, now=0.0) is None
    assert s.home is None
    # A round's latency is a relay's fastest probe (iroh keeps the minimum), not the median.
    assert s.update({A: [0.050, 0.010, 0.060], B: [0.020, 0.020, 0.020]}, now=1.0) == A


def test_stays_home_unless_the_other_is_a_third_faster() -> None:
    s = HomeRelaySelector()
    assert s.update({A: [0.030], B: [0.040]}, now=0.0) == A
    # B now looks better, but 0.021 > 2/3 * 0.030: not worth moving.
    assert s.update({A: [0.030], B: [0.021]}, now=25.0) == A
    # 0.019 < 0.020: clearly better, move.
    assert s.update({A: [0.030], B: [0.019]}, now=50.0) == B
    # B slows down, but its 19 ms of t=50 still ranks it first for 5 minutes.
    assert s.update({A: [0.030], B: [0.050]}, now=75.0) == B
    # Then A (0.030 < 2/3 * 0.050) takes over.
    assert s.update({A: [0.030], B: [0.050]}, now=50.0 + REPORT_HISTORY + 1) == A


def test_home_that_stops_answering_is_replaced_without_hysteresis() -> None:
    s = HomeRelaySelector()
    assert s.update({A: [0.010], B: [0.100]}, now=0.0) == A
    assert s.update({A: [], B: [0.100]}, now=25.0) == B


def test_a_round_without_answers_changes_nothing() -> None:
    s = HomeRelaySelector()
    assert s.update({A: [0.010], B: [0.020]}, now=0.0) == A
    assert s.update({A: [], B: []}, now=25.0) == A
    assert s.update({}, now=50.0) == A


def test_relays_are_ranked_by_their_best_recent_latency() -> None:
    s = HomeRelaySelector()
    assert s.update({A: [0.050], B: [0.010], C: [0.060]}, now=0.0) == B
    # B answers slowly for a while: its best of the last 5 min (10 ms) still ranks it first,
    # and it is home, so it stays even though A answers faster right now.
    assert s.update({A: [0.040], B: [0.055], C: [0.060]}, now=60.0) == B
    # Once B's fast round is older than the history, A (0.040 < 2/3 * 0.070) takes over.
    assert s.update({A: [0.040], B: [0.070], C: [0.060]}, now=REPORT_HISTORY + 1.0) == A


def test_ranking_history_can_make_a_switch_worthwhile() -> None:
    s = HomeRelaySelector()
    assert s.update({A: [0.020], B: [0.040]}, now=0.0) == A
    assert s.update({A: [0.020], B: [0.015]}, now=25.0) == A  # 0.015 > 2/3 * 0.020
    # A slows to 0.030, B answers at 0.025 now: on this round alone not worth a move, but B
    # is ranked by its best recent latency, 0.015 < 2/3 * 0.030.
    assert s.update({A: [0.030], B: [0.025]}, now=50.0) == B


def test_only_relays_that_answered_now_are_candidates() -> None:
    s = HomeRelaySelector()
    assert s.update({A: [0.030], B: [0.005]}, now=0.0) == B
    # B's great history does not help it while it is not answering; A takes over.
    assert s.update({A: [0.030], B: []}, now=25.0) == A
    # Back, B is ranked by its best recent latency (5 ms < 2/3 * 30 ms) and wins again.
    assert s.update({A: [0.030], B: [0.031]}, now=50.0) == B


def test_history_is_bounded() -> None:
    s = HomeRelaySelector(history=10.0)
    for i in range(100):
        s.update({A: [0.01]}, now=float(i))
    assert len(s._rounds) <= 12


# --- on loopback ------------------------------------------------------------------------------


class DelayProxy:
    """A TCP forwarder to a local port that holds each chunk for :attr:`delay` seconds."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> RelayUrl:
        assert self._server is not None
        return RelayUrl(f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}")

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.append(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def __aenter__(self) -> DelayProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()


@contextlib.asynccontextmanager
async def two_relays() -> AsyncIterator[tuple[RelayServer, DelayProxy, RelayServer, DelayProxy]]:
    """Relays A and B, each behind a proxy; B's is slowed so that A starts as home."""
    servers = [RelayServer(ServerConfig()) for _ in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            await server.start()
            stack.push_async_callback(server.stop)
        proxies = [await stack.enter_async_context(DelayProxy(s.port)) for s in servers]
        proxies[1].delay = 0.05
        yield servers[0], proxies[0], servers[1], proxies[1]


class Inbox:
    def __init__(self) -> None:
        self.items: Watchable[list[tuple[RelayUrl, EndpointId, bytes]]] = Watchable([])

    def __call__(self, url: RelayUrl, src: EndpointId, data: bytes) -> None:
        self.items.set([*self.items.get(), (url, src, data)])


@contextlib.asynccontextmanager
async def transport(
    urls: list[RelayUrl], inbox: Inbox, reprobe: tuple[float, float], history: float = 300.0
) -> AsyncIterator[RelayTransport]:
    config = RelayTransportConfig(
        backoff=FAST_BACKOFF, reprobe_interval=reprobe, probe_timeout=1.0, report_history=history
    )
    t = RelayTransport(SecretKey.generate(), RelayMap.from_urls(urls), inbox, config=config)
    await t.start()
    try:
        yield t
    finally:
        await t.close()


@pytest.mark.timeout(30)
async def test_home_moves_when_the_home_relay_stops() -> None:
    inbox = Inbox()
    async with (
        two_relays() as (server_a, proxy_a, _server_b, proxy_b),
        transport([proxy_a.url, proxy_b.url], inbox, QUICK_REPROBE) as t,
    ):
        await asyncio.wait_for(t.home_relay.wait_for(lambda u: u == proxy_a.url), 10)
        await asyncio.wait_for(t.online(), 10)
        homes = t.home_relay.watch()
        await server_a.stop()
        # The periodic re-probe finds A silent and moves home to B, which we then connect to.
        await asyncio.wait_for(t.home_relay.wait_for(lambda u: u == proxy_b.url), 10)
        await asyncio.wait_for(t.online(), 10)
        assert proxy_b.url in t.connected_relays.get()
        # Watchers (the endpoint's publisher and QAD loop use one) saw the change.
        seen = await asyncio.wait_for(homes.updated(), 1)
        assert seen == proxy_b.url


@pytest.mark.timeout(30)
async def test_home_moves_when_slow_and_the_old_home_still_delivers() -> None:
    inbox = Inbox()
    reprobe = (60.0, 60.0)  # only the network change triggers a round here
    # A relay is ranked by its best latency of the last 5 minutes, so a home that turns slow
    # (but still answers) is only left once its fast rounds are that old: no history here.
    async with (
        two_relays() as (server_a, proxy_a, _server_b, proxy_b),
        transport([proxy_a.url, proxy_b.url], inbox, reprobe, history=0.0) as t,
    ):
        await asyncio.wait_for(t.home_relay.wait_for(lambda u: u == proxy_a.url), 10)
        await asyncio.wait_for(t.online(), 10)
        # A gets much slower than B (well beyond the 2/3 rule) and the network "changes" ...
        proxy_a.delay = 0.2
        t.network_changed()
        await asyncio.wait_for(t.home_relay.wait_for(lambda u: u == proxy_b.url), 10)
        await asyncio.wait_for(t.online(), 10)
        # ... but stays connected: a peer that still addresses us at A reaches us there.
        assert proxy_a.url in t.connected_relays.get()
        peer = await RelayClient.connect(server_a.http_url, SecretKey.generate())
        try:
            await peer.send(t.secret_key.public(), Datagrams(0, None, b"still there?"))
            items = await asyncio.wait_for(inbox.items.wait_for(bool), 10)
        finally:
            await peer.close()
        assert items == [(proxy_a.url, peer.public_key, b"still there?")]
        assert t.home_relay.get() == proxy_b.url


@pytest.mark.timeout(30)
async def test_home_stays_when_the_other_relay_is_only_a_little_faster() -> None:
    inbox = Inbox()
    async with (
        two_relays() as (_server_a, proxy_a, _server_b, proxy_b),
        transport([proxy_a.url, proxy_b.url], inbox, (60.0, 60.0), history=0.0) as t,
    ):
        await asyncio.wait_for(t.home_relay.wait_for(lambda u: u == proxy_a.url), 10)
        # A is now a bit slower than B (2 chunks x 60 ms vs 2 x 50 ms): not enough to move.
        proxy_a.delay = 0.06
        rounds = t.relay_latencies.watch()
        t.network_changed()
        latest = await asyncio.wait_for(rounds.updated(), 10)
        assert min(latest[proxy_a.url]) > min(latest[proxy_b.url])
        assert t.home_relay.get() == proxy_a.url
