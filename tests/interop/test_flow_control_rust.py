"""Flow control and stream credit against Rust iroh (PyPI iroh 1.2.0) on loopback.

A slow reader holds either writer to its window; stream ids may be written out of open
order; 1,000 streams pass through a stream limit of 100 in both directions; a Rust peer that
opens streams our application never accepts is held to our limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import iroh
import pytest

from aioiroh.endpoint import Connection, Endpoint
from aioiroh.quic.aioquic_connection import QuicSettings

from ..support.oracle import addr_from_rust, addr_to_rust, bind_rust

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

ALPN = b"aioiroh/test-flow-rust/0"
STREAM_WINDOW = QuicSettings().max_stream_data
STREAM_LIMIT = 100
PIECE = 64 * 1024


@dataclass
class Pair:
    ours: Connection
    rust: iroh.Connection


@contextlib.asynccontextmanager
async def rust_dials_ours() -> AsyncIterator[Pair]:
    ours = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0")
    rust = await bind_rust([])
    try:
        accepted = asyncio.create_task(ours.accept())
        conn = await asyncio.wait_for(rust.connect(addr_to_rust(ours.addr()), ALPN), 10)
        yield Pair(await asyncio.wait_for(accepted, 10), conn)
    finally:
        await ours.close()
        await rust.close()


@contextlib.asynccontextmanager
async def ours_dials_rust() -> AsyncIterator[Pair]:
    rust = await bind_rust([ALPN])
    ours = await Endpoint.bind(bind_addr="127.0.0.1:0")

    async def accept() -> iroh.Connection:
        inc = await rust.accept_next()
        return await (await inc.accept()).connect()

    task = asyncio.create_task(accept())
    try:
        conn = await asyncio.wait_for(ours.connect(addr_from_rust(rust), ALPN), 10)
        yield Pair(conn, await asyncio.wait_for(task, 10))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ours.close()
        await rust.close()


def _engine_streams(conn: Connection) -> int:
    return len(conn._quic.streams.streams)  # type: ignore[attr-defined]


async def test_slow_reader_holds_rust_writer_to_our_window() -> None:
    data = os.urandom(32 * 1024 * 1024)
    async with rust_dials_ours() as pair:
        bi = await pair.rust.open_bi()
        accepted = 0

        async def writer() -> None:
            nonlocal accepted
            send = bi.send()
            for start in range(0, len(data), PIECE):
                await send.write_all(data[start : start + PIECE])
                accepted += PIECE
            await send.finish()

        task = asyncio.create_task(writer())
        ssend, srecv = await pair.ours.accept_bi()
        await asyncio.sleep(4)  # the slow reader
        assert accepted <= STREAM_WINDOW + PIECE
        assert pair.ours._quic.streams.buffered <= STREAM_WINDOW  # type: ignore[attr-defined]
        assert not task.done()
        got = await srecv.read_to_end(len(data))
        await asyncio.wait_for(task, 30)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        await ssend.finish()


async def test_slow_rust_reader_holds_our_writer_to_its_window() -> None:
    data = os.urandom(32 * 1024 * 1024)
    async with ours_dials_rust() as pair:
        send, _ = await pair.ours.open_bi()
        accepted = 0

        async def writer() -> None:
            nonlocal accepted
            for start in range(0, len(data), PIECE):
                await send.write_all(data[start : start + PIECE])
                accepted += PIECE
            await send.finish()

        task = asyncio.create_task(writer())
        bi = await pair.rust.accept_bi()
        await asyncio.sleep(4)  # the slow reader
        # Rust's stream window is smaller than ours; the writer is held to it.
        assert accepted <= STREAM_WINDOW + PIECE
        assert send.writable() == 0
        assert not task.done()
        got = bytes(await bi.recv().read_to_end(len(data)))
        await asyncio.wait_for(task, 30)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


async def test_streams_written_out_of_open_order_to_rust() -> None:
    async with ours_dials_rust() as pair:
        first, _ = await pair.ours.open_bi()
        second, _ = await pair.ours.open_bi()
        await second.write_all(b"second")
        await second.finish()
        await first.write_all(b"first")
        await first.finish()
        got = set()
        for _ in range(2):
            bi = await pair.rust.accept_bi()
            got.add(bytes(await bi.recv().read_to_end(100)))
        assert got == {b"first", b"second"}


async def test_rust_streams_written_out_of_open_order() -> None:
    async with rust_dials_ours() as pair:
        first = await pair.rust.open_bi()
        second = await pair.rust.open_bi()
        await second.send().write_all(b"second")
        await second.send().finish()
        await first.send().write_all(b"first")
        await first.send().finish()
        got = set()
        for _ in range(2):
            ssend, srecv = await pair.ours.accept_bi()
            got.add(await srecv.read_to_end(100))
            await ssend.finish()
        assert got == {b"first", b"second"}


@pytest.mark.timeout(120)
async def test_thousand_rust_streams_through_our_limit() -> None:
    count = 1000
    async with rust_dials_ours() as pair:
        peak = 0

        async def serve() -> None:
            nonlocal peak

            async def one(send, recv) -> None:  # type: ignore[no-untyped-def]
                await send.write_all(await recv.read_to_end(100))
                await send.finish()
                assert await send.stopped() is None

            tasks = []
            for _ in range(count):
                send, recv = await pair.ours.accept_bi()
                peak = max(peak, _engine_streams(pair.ours))
                tasks.append(asyncio.create_task(one(send, recv)))
            await asyncio.gather(*tasks)

        server = asyncio.create_task(serve())

        async def one(i: int) -> bytes:
            bi = await pair.rust.open_bi()
            await bi.send().write_all(i.to_bytes(4, "big"))
            await bi.send().finish()
            return bytes(await bi.recv().read_to_end(100))

        got = await asyncio.gather(*(one(i) for i in range(count)))
        await asyncio.wait_for(server, 30)
        assert got == [i.to_bytes(4, "big") for i in range(count)]
        assert peak <= STREAM_LIMIT
        assert _engine_streams(pair.ours) == 0
        assert not pair.ours._recv and not pair.ours._send


@pytest.mark.timeout(120)
async def test_thousand_streams_to_rust_through_its_limit() -> None:
    count = 1000
    async with ours_dials_rust() as pair:
        pair.rust.set_max_concurrent_bi_streams(STREAM_LIMIT)

        async def serve() -> None:
            async def one(bi: iroh.BiStream) -> None:
                await bi.send().write_all(await bi.recv().read_to_end(100))
                await bi.send().finish()

            tasks = [asyncio.create_task(one(await pair.rust.accept_bi())) for _ in range(count)]
            await asyncio.gather(*tasks)

        server = asyncio.create_task(serve())
        streams = pair.ours._quic.streams  # type: ignore[attr-defined]
        over_credit = 0

        async def one(i: int) -> bytes:
            nonlocal over_credit
            # open_bi waits for Rust's stream credit instead of failing.
            send, recv = await pair.ours.open_bi()
            # The engine never hands out an id beyond the credit Rust granted.
            over_credit += send.id // 4 >= streams._remote_max_streams[False]
            await send.write_all(i.to_bytes(4, "big"))
            await send.finish()
            return await recv.read_to_end(100)

        got = await asyncio.gather(*(one(i) for i in range(count)))
        await asyncio.wait_for(server, 30)
        assert got == [i.to_bytes(4, "big") for i in range(count)]
        assert over_credit == 0
        assert not pair.ours._recv


async def test_unaccepted_rust_streams_are_held_to_our_limit() -> None:
    async with rust_dials_ours() as pair:
        opened = 0

        async def opener() -> None:
            nonlocal opened
            while True:
                bi = await pair.rust.open_bi()
                await bi.send().write_all(b"x")
                opened += 1

        task = asyncio.create_task(opener())
        while len(pair.ours._incoming_bi) < STREAM_LIMIT:
            await pair.ours._wait_event()
        # Nothing is accepted: for a second Rust cannot open a single stream more.
        await asyncio.sleep(1.0)
        assert opened == STREAM_LIMIT
        assert len(pair.ours._incoming_bi) == STREAM_LIMIT
        assert _engine_streams(pair.ours) == STREAM_LIMIT
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
