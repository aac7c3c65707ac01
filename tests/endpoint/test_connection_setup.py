"""Connection setup: work kept off the handshake's critical path still happens promptly."""

from __future__ import annotations

import asyncio

import pytest

from aioiroh.endpoint import Connection, Endpoint
from aioiroh.socket.path_manager import PathEvent

pytestmark = pytest.mark.timeout(30)

ALPN = b"aioiroh/test/setup/0"


@pytest.fixture
async def pair():
    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False)
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
    yield server, client
    await client.close()
    await server.close()


async def connect_pair(server: Endpoint, client: Endpoint) -> tuple[Connection, Connection]:
    accepted = asyncio.create_task(server.accept())
    conn = await client.connect(server.addr(), ALPN)
    return conn, await accepted


async def _turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_path_manager_starts_right_after_the_handshake(pair) -> None:
    server, client = pair
    c, s = await connect_pair(server, client)
    await _turns()
    for conn in (c, s):
        manager = conn._driver.manager
        assert manager is not None and manager.started
        # Our candidates went to the engine (the server announces them with ADD_ADDRESS).
        assert manager._local == [conn._driver.socket.local_addrs()[0]]
    # The client ran its on-connect holepunch round (iroh's schedule), without waiting.
    client_manager = c._driver.manager
    assert client_manager is not None
    assert client_manager.schedule._last_round_at is not None


async def test_path_events_right_after_connect_are_not_doubled(pair) -> None:
    server, client = pair
    c, _ = await connect_pair(server, client)
    seen: list[PathEvent] = []

    async def watch() -> None:
        async for event in c.path_events():
            seen.append(event)

    task = asyncio.create_task(watch())
    await _turns(5)
    task.cancel()
    kinds = [(e.kind, e.path_id) for e in seen]
    assert kinds.count(("opened", 0)) == 1, kinds
    assert kinds.count(("selected", 0)) == 1, kinds
    # Subscribing later replays the current state once, too.
    later: list[PathEvent] = []

    async def watch_later() -> None:
        async for event in c.path_events():
            later.append(event)

    task2 = asyncio.create_task(watch_later())
    await _turns(2)
    task2.cancel()
    assert [(e.kind, e.path_id) for e in later] == [("opened", 0), ("selected", 0)]


async def test_connection_closed_at_once_skips_path_management(pair) -> None:
    server, client = pair
    accepted = asyncio.create_task(server.accept())
    c = await client.connect(server.addr(), ALPN)
    c.close()  # before the next loop turn: no candidates, no holepunch round for it
    await accepted
    await _turns()
    manager = c._driver.manager
    assert manager is not None and not manager.started


async def test_candidates_come_from_the_monitored_interface_addresses(pair, monkeypatch) -> None:
    server, client = pair
    calls = 0
    real = Endpoint._interface_addresses

    def counting(self: Endpoint) -> list[tuple[str, int]]:
        nonlocal calls
        calls += 1
        return real(self)

    target = server.addr()
    monkeypatch.setattr(Endpoint, "_interface_addresses", counting)
    accepted = asyncio.create_task(server.accept())
    c = await client.connect(target, ALPN)
    s = await accepted
    await _turns()
    assert calls == 0  # no interface enumeration per connection
    for ep, conn in ((client, c), (server, s)):
        manager = conn._driver.manager
        assert manager is not None
        assert manager._local == ep._interface_addrs == ep.direct_addresses()
    # A reflexive (QAD) address joins the candidates, like in direct_addresses().
    client._reflexive[4] = ("203.0.113.7", 4242)
    assert client._candidate_addresses() == [*client._interface_addrs, ("203.0.113.7", 4242)]
    assert client._candidate_addresses() == client.direct_addresses()
    client._reflexive.clear()


class _SlowLookup:
    """A lookup whose query is still in flight at handshake time and slow to wind down."""

    def __init__(self) -> None:
        self.release = asyncio.Event()  # the teardown lasts until the test sets this
        self.closed = asyncio.Event()

    def publish(self, info: object) -> None:
        pass

    def resolve(self, endpoint_id: object):  # type: ignore[no-untyped-def]
        return self._stream()

    async def _stream(self):  # type: ignore[no-untyped-def]
        try:
            await asyncio.Event().wait()
            yield None
        finally:
            await self.release.wait()  # e.g. a DNS socket being torn down
            self.closed.set()

    async def aclose(self) -> None:
        pass


async def test_connect_does_not_wait_for_the_dial_lookup_to_wind_down() -> None:
    lookup = _SlowLookup()
    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False)
    client = await Endpoint.bind(
        bind_addr="127.0.0.1:0", bind_addr_v6=False, address_lookup=[lookup]
    )
    try:
        accepted = asyncio.create_task(server.accept())
        loop = asyncio.get_running_loop()
        start = loop.time()
        # The lookup's teardown blocks until released: connect must not wait for it.
        conn = await asyncio.wait_for(client.connect(server.addr(), ALPN), 5)
        assert loop.time() - start < 0.25
        await accepted
        # The lookup was running alongside the dial and is being closed in the background.
        pending = [t for t in client._tasks if t.get_name() == "aioiroh-dial-lookup"]
        assert len(pending) == 1 and not lookup.closed.is_set()
        lookup.release.set()
        await asyncio.wait_for(lookup.closed.wait(), 5)
        await _turns()
        assert not [t for t in client._tasks if t.get_name() == "aioiroh-dial-lookup"]
        conn.close()
    finally:
        lookup.release.set()
        await client.close()
        await server.close()


async def test_accept_wakes_one_loop_turn_after_the_server_handshake(pair) -> None:
    server, client = pair
    for _ in range(5):
        accepted = asyncio.create_task(server.accept())
        conn = await client.connect(server.addr(), ALPN)
        # Loopback delivers at once: the server reads the client's Finished in the next turn
        # and its accept() resumes in the one after (the handshake event queues it directly).
        turns = 0
        while not accepted.done():
            await asyncio.sleep(0)
            turns += 1
        assert turns <= 2
        (await accepted).close()
        conn.close()


async def test_incoming_refused_when_the_accept_backlog_is_full(pair, monkeypatch) -> None:
    from aioiroh import ConnectionClosedByPeer
    from aioiroh.endpoint import endpoint as endpoint_module

    server, client = pair
    monkeypatch.setattr(endpoint_module, "MAX_ACCEPT_BACKLOG", 0)
    conn = await client.connect(server.addr(), ALPN)
    reason = await asyncio.wait_for(conn.closed(), 5)
    assert isinstance(reason, ConnectionClosedByPeer)
    assert reason.code == 1 and reason.reason == "endpoint not accepting"
    assert not server._accept_queue and not server._pending
    await _turns()
    assert not server._connections
