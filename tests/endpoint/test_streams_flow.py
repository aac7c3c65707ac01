"""Streams and flow control between two aioiroh endpoints on loopback.

Receive credit follows what the application reads (RFC 9000 §4), the engine owns stream ids,
stream credit comes back only once the application accepted a stream and it ended, and
finished streams leave every table.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from aioiroh.endpoint import Connection, Endpoint
from aioiroh.endpoint.connection import MAX_QUEUED_DATAGRAMS
from aioiroh.errors import DatagramTooLarge, IrohError, StreamError
from aioiroh.quic.aioquic_connection import QuicSettings

pytestmark = pytest.mark.timeout(60)

ALPN = b"aioiroh/test-flow/0"
STREAM_WINDOW = QuicSettings().max_stream_data
STREAM_LIMIT = 100


@pytest.fixture
async def conns() -> AsyncIterator[tuple[Connection, Connection]]:
    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0")
    client = await Endpoint.bind(bind_addr="127.0.0.1:0")
    accepted = asyncio.create_task(server.accept())
    c = await client.connect(server.addr(), ALPN)
    s = await accepted
    yield c, s
    await client.close()
    await server.close()


def _engine_streams(conn: Connection) -> int:
    return len(conn._quic.streams.streams)  # type: ignore[attr-defined]


def _buffered(conn: Connection) -> int:
    return int(conn._quic.streams.buffered)  # type: ignore[attr-defined]


async def test_slow_reader_holds_writer_to_the_window(conns) -> None:
    c, s = conns
    data = os.urandom(48 * 1024 * 1024)
    piece = 64 * 1024
    accepted = 0
    send, _ = await c.open_bi()

    async def writer() -> None:
        nonlocal accepted
        for start in range(0, len(data), piece):
            await send.write_all(data[start : start + piece])
            accepted += piece
        await send.finish()

    task = asyncio.create_task(writer())
    ssend, srecv = await s.accept_bi()
    await asyncio.sleep(4)  # the slow reader
    # The writer got no further than the reader's window; nothing beyond it is buffered.
    assert accepted <= STREAM_WINDOW + piece
    assert _buffered(s) <= STREAM_WINDOW
    assert send.writable() == 0
    assert not task.done()
    got = await srecv.read_to_end(len(data))
    await task
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    await ssend.finish()


async def test_streams_written_out_of_open_order(conns) -> None:
    c, s = conns
    first_send, first_recv = await c.open_bi()
    second_send, second_recv = await c.open_bi()
    assert second_send.id == first_send.id + 4
    await second_send.write_all(b"second")
    await second_send.finish()
    await first_send.write_all(b"first")
    await first_send.finish()
    got = {}
    for _ in range(2):
        ssend, srecv = await s.accept_bi()
        got[srecv.id] = await srecv.read_to_end(100)
        await ssend.write_all(got[srecv.id][::-1])
        await ssend.finish()
    assert got == {first_send.id: b"first", second_send.id: b"second"}
    assert await first_recv.read_to_end(100) == b"tsrif"
    assert await second_recv.read_to_end(100) == b"dnoces"


async def _echo_streams(conn: Connection, count: int, peak: list[int]) -> None:
    async def one(send, recv) -> None:  # type: ignore[no-untyped-def]
        await send.write_all(await recv.read_to_end(1000))
        await send.finish()
        assert await send.stopped() is None  # everything acknowledged

    tasks = []
    for _ in range(count):
        send, recv = await conn.accept_bi()
        peak[0] = max(peak[0], _engine_streams(conn))
        tasks.append(asyncio.create_task(one(send, recv)))
    await asyncio.gather(*tasks)


@pytest.mark.timeout(120)
async def test_thousand_streams_through_a_limit_of_hundred(conns) -> None:
    c, s = conns
    count = 1000
    peak = [0]
    server = asyncio.create_task(_echo_streams(s, count, peak))

    async def one(i: int) -> bytes:
        send, recv = await c.open_bi()
        await send.write_all(i.to_bytes(4, "big"))
        await send.finish()
        return await recv.read_to_end(100)

    # All opened at once: open_bi waits for stream credit instead of failing.
    got = await asyncio.gather(*(one(i) for i in range(count)))
    await server
    assert got == [i.to_bytes(4, "big") for i in range(count)]
    assert peak[0] <= STREAM_LIMIT
    # Finished streams are gone from the engine's and the connection's tables.
    for conn in (c, s):
        assert _engine_streams(conn) == 0
        assert not conn._recv and not conn._send and not conn._finishing


async def test_unaccepted_streams_are_held_to_the_limit(conns) -> None:
    c, s = conns
    opened = 0
    progress = asyncio.Event()

    async def opener() -> None:
        nonlocal opened
        while True:
            send, _ = await c.open_bi()
            await send.write_all(b"x")
            await send.finish()
            opened += 1
            progress.set()

    async def until_opened(n: int) -> None:
        while opened < n:
            progress.clear()
            await progress.wait()

    task = asyncio.create_task(opener())
    await asyncio.wait_for(until_opened(STREAM_LIMIT), 10)
    while len(s._incoming_bi) < STREAM_LIMIT:
        await s._wait_event()
    # The 101st open waits for credit that never comes while nobody accepts.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(until_opened(STREAM_LIMIT + 1), 0.5)
    assert len(s._incoming_bi) == STREAM_LIMIT
    assert _engine_streams(s) == STREAM_LIMIT
    # Accepting and ending one stream gives exactly one stream of credit back (the server
    # batches MAX_STREAMS, so end a quarter of the limit to see it sent).
    for _ in range(STREAM_LIMIT // 4):
        ssend, srecv = await s.accept_bi()
        assert await srecv.read_to_end(10) == b"x"
        await ssend.finish()
    await asyncio.wait_for(until_opened(STREAM_LIMIT + STREAM_LIMIT // 4), 10)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(until_opened(STREAM_LIMIT + STREAM_LIMIT // 4 + 1), 0.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_received_datagram_queue_is_bounded(conns) -> None:
    c, s = conns
    sent = 0
    for _ in range(30):
        for _ in range(64):
            c.send_datagram(sent.to_bytes(4, "big"))
            sent += 1
        # A stream round trip after each batch: the batch has been received by then.
        send, recv = await c.open_bi()
        await send.finish()
        ssend, srecv = await s.accept_bi()
        await srecv.read_to_end(1)
        await ssend.finish()
        await recv.read_to_end(1)
    assert len(s._datagrams) == MAX_QUEUED_DATAGRAMS
    assert s.datagrams_dropped > 0
    # The oldest were dropped: what is left is the newest, in order.
    first = await s.read_datagram()
    rest = [await s.read_datagram() for _ in range(MAX_QUEUED_DATAGRAMS - 1)]
    numbers = [int.from_bytes(d, "big") for d in [first, *rest]]
    assert numbers == sorted(numbers)
    assert numbers[-1] == sent - 1 or sent - 1 - numbers[-1] < 64


async def test_errors_users_meet_are_aioiroh_errors(conns) -> None:
    c, _ = conns
    send, _ = await c.open_bi()
    await send.finish()
    with pytest.raises(StreamError):
        await send.write_all(b"late")
    with pytest.raises(DatagramTooLarge) as info:
        c.send_datagram(b"x" * 5000)
    assert isinstance(info.value, IrohError)
    # The engine refuses impossible stream operations with aioiroh errors, not ValueError.
    with pytest.raises(StreamError):
        c._quic.send_stream_data(3 if c.is_client else 2, b"peer's uni stream")
    with pytest.raises(StreamError):
        c._quic.stop_stream(2 if c.is_client else 3, 0)
