"""aioiroh <-> Rust iroh (PyPI iroh 1.2.0) on direct loopback paths, relays disabled.

Each test runs in both roles: an aioiroh client against a Rust server, and a Rust client
against an aioiroh server. Servers run the same "echo" protocol: bi streams are echoed, a uni
stream is answered on a new uni stream, datagrams are echoed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator

import iroh
import pytest

from aioiroh import AuthenticationError, ConnectionClosedByPeer, SecretKey
from aioiroh.endpoint import Connection, Endpoint

from ..support.oracle import addr_from_rust, addr_to_rust, bind_rust

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

ALPN = b"aioiroh/test-echo/0"
BIG = 10 * 1024 * 1024


# -- the two echo servers ----------------------------------------------------------------------


async def rust_echo_conn(conn: iroh.Connection) -> None:
    handlers: set[asyncio.Future[None]] = set()

    async def bis() -> None:
        while True:
            bi = await conn.accept_bi()

            async def one(bi: iroh.BiStream = bi) -> None:
                data = await bi.recv().read_to_end(64 * 1024 * 1024)
                await bi.send().write_all(data)
                await bi.send().finish()

            fut = asyncio.ensure_future(one())
            handlers.add(fut)
            fut.add_done_callback(handlers.discard)

    async def unis() -> None:
        while True:
            recv = await conn.accept_uni()
            data = await recv.read_to_end(1024 * 1024)
            send = await conn.open_uni()
            await send.write_all(data)
            await send.finish()

    async def dgrams() -> None:
        while True:
            data = await conn.read_datagram()
            conn.send_datagram(data)

    tasks = [asyncio.ensure_future(c()) for c in (bis, unis, dgrams)]
    try:
        await conn.closed()
    finally:
        for t in [*tasks, *handlers]:
            t.cancel()
        await asyncio.gather(*tasks, *handlers, return_exceptions=True)


async def ours_echo_conn(conn: Connection) -> None:
    async def one(send, recv) -> None:  # type: ignore[no-untyped-def]
        data = await recv.read_to_end(64 * 1024 * 1024)
        await send.write_all(data)
        await send.finish()

    handlers: set[asyncio.Task[None]] = set()

    async def bis() -> None:
        while True:
            send, recv = await conn.accept_bi()
            t = asyncio.create_task(one(send, recv))
            handlers.add(t)
            t.add_done_callback(handlers.discard)

    async def unis() -> None:
        while True:
            recv = await conn.accept_uni()
            data = await recv.read_to_end(1024 * 1024)
            send = await conn.open_uni()
            await send.write_all(data)
            await send.finish()

    async def dgrams() -> None:
        while True:
            conn.send_datagram(await conn.read_datagram())

    tasks = [asyncio.create_task(c()) for c in (bis, unis, dgrams)]
    try:
        await conn.closed()
    finally:
        for t in [*tasks, *handlers]:
            t.cancel()
        await asyncio.gather(*tasks, *handlers, return_exceptions=True)


# -- a uniform client-side view over both implementations --------------------------------------


class Client:
    """What a test does as the dialing side, for either implementation."""

    async def echo_bi(self, data: bytes) -> bytes: ...
    async def echo_uni(self, data: bytes) -> bytes: ...
    async def echo_datagram(self, data: bytes) -> bytes: ...
    def close(self, code: int, reason: bytes) -> None: ...


class OursClient(Client):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def echo_bi(self, data: bytes) -> bytes:
        send, recv = await self.conn.open_bi()
        await send.write_all(data)
        await send.finish()
        return await recv.read_to_end(len(data) + 1)

    async def echo_uni(self, data: bytes) -> bytes:
        send = await self.conn.open_uni()
        await send.write_all(data)
        await send.finish()
        recv = await self.conn.accept_uni()
        return await recv.read_to_end(len(data) + 1)

    async def echo_datagram(self, data: bytes) -> bytes:
        # Datagrams are unreliable: resend until one comes back.
        for _ in range(20):
            self.conn.send_datagram(data)
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(self.conn.read_datagram(), 0.5)
        raise AssertionError("no datagram echoed")

    def close(self, code: int, reason: bytes) -> None:
        self.conn.close(code, reason)


class RustClient(Client):
    def __init__(self, conn: iroh.Connection) -> None:
        self.conn = conn

    async def echo_bi(self, data: bytes) -> bytes:
        bi = await self.conn.open_bi()
        await bi.send().write_all(data)
        await bi.send().finish()
        return bytes(await bi.recv().read_to_end(len(data) + 1))

    async def echo_uni(self, data: bytes) -> bytes:
        send = await self.conn.open_uni()
        await send.write_all(data)
        await send.finish()
        recv = await self.conn.accept_uni()
        return bytes(await recv.read_to_end(len(data) + 1))

    async def echo_datagram(self, data: bytes) -> bytes:
        for _ in range(20):
            self.conn.send_datagram(data)
            with contextlib.suppress(TimeoutError):
                return bytes(await asyncio.wait_for(self.conn.read_datagram(), 0.5))
        raise AssertionError("no datagram echoed")

    def close(self, code: int, reason: bytes) -> None:
        self.conn.close(code, reason)


class Pair:
    """A connected pair; ``server_closed`` resolves with the server side's close reason."""

    def __init__(self, client: Client, server_conn: object) -> None:
        self.client = client
        self.server_conn = server_conn


@contextlib.asynccontextmanager
async def ours_to_rust() -> AsyncIterator[Pair]:
    rust = await bind_rust([ALPN])
    ours = await Endpoint.bind(bind_addr="127.0.0.1:0")
    accepted: asyncio.Future[iroh.Connection] = asyncio.get_running_loop().create_future()

    async def serve() -> None:
        inc = await rust.accept_next()
        conn = await (await inc.accept()).connect()
        accepted.set_result(conn)
        await rust_echo_conn(conn)

    task = asyncio.create_task(serve())
    try:
        conn = await ours.connect(addr_from_rust(rust), ALPN)
        yield Pair(OursClient(conn), await accepted)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ours.close()
        await rust.close()


@contextlib.asynccontextmanager
async def rust_to_ours() -> AsyncIterator[Pair]:
    ours = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0")
    rust = await bind_rust([])
    accepted: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()

    async def serve() -> None:
        conn = await ours.accept()
        accepted.set_result(conn)
        await ours_echo_conn(conn)

    task = asyncio.create_task(serve())
    try:
        conn = await rust.connect(addr_to_rust(ours.addr()), ALPN)
        yield Pair(RustClient(conn), await accepted)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await rust.close()
        await ours.close()


ROLES = {"ours->rust": ours_to_rust, "rust->ours": rust_to_ours}


@pytest.fixture(params=list(ROLES))
def role(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return ROLES[request.param]


async def test_bi_echo(role) -> None:  # type: ignore[no-untyped-def]
    async with role() as pair:
        assert await pair.client.echo_bi(b"hello iroh") == b"hello iroh"
        assert await pair.client.echo_bi(b"") == b""


async def test_uni_streams(role) -> None:  # type: ignore[no-untyped-def]
    async with role() as pair:
        assert await pair.client.echo_uni(b"one way") == b"one way"


async def test_datagrams(role) -> None:  # type: ignore[no-untyped-def]
    async with role() as pair:
        assert await pair.client.echo_datagram(b"dgram-1") == b"dgram-1"


async def test_ten_megabytes_sha256(role) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(BIG)
    async with role() as pair:
        back = await pair.client.echo_bi(data)
        assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_many_concurrent_streams(role) -> None:  # type: ignore[no-untyped-def]
    async with role() as pair:
        payloads = [os.urandom(1000 + i) for i in range(60)]
        results = await asyncio.gather(*(pair.client.echo_bi(p) for p in payloads))
        assert results == payloads


async def test_close_codes_seen_by_peer(role) -> None:  # type: ignore[no-untyped-def]
    async with role() as pair:
        assert await pair.client.echo_bi(b"x") == b"x"
        pair.client.close(42, b"done here")
        server = pair.server_conn
        if isinstance(server, Connection):
            err = await asyncio.wait_for(server.closed(), 5)
            assert isinstance(err, ConnectionClosedByPeer)
            assert err.code == 42 and err.reason == "done here"
        else:
            reason = await asyncio.wait_for(server.closed(), 5)
            assert "42" in str(reason) and "done here" in str(reason)


async def test_server_close_code_seen_by_client() -> None:
    # Rust server closes with an application code; our client sees it.
    async with ours_to_rust() as pair:
        assert await pair.client.echo_bi(b"x") == b"x"
        pair.server_conn.close(7, b"server says bye")  # type: ignore[attr-defined]
        conn = pair.client.conn  # type: ignore[attr-defined]
        err = await asyncio.wait_for(conn.closed(), 5)
        assert isinstance(err, ConnectionClosedByPeer)
        assert (err.code, err.reason) == (7, "server says bye")
    # Our server closes; the Rust client sees the code.
    async with rust_to_ours() as pair:
        assert await pair.client.echo_bi(b"x") == b"x"
        pair.server_conn.close(9, b"ours says bye")  # type: ignore[attr-defined]
        reason = await asyncio.wait_for(pair.client.conn.closed(), 5)  # type: ignore[attr-defined]
        assert "9" in str(reason) and "ours says bye" in str(reason)


async def test_wrong_endpoint_id_ours_dials_rust() -> None:
    rust = await bind_rust([ALPN])
    ours = await Endpoint.bind(bind_addr="127.0.0.1:0")
    rust_result: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def rust_accept() -> None:
        # iroh answers an Initial only once the application takes the Incoming.
        inc = await rust.accept_next()
        try:
            await (await inc.accept()).connect()
            rust_result.set_result("connected")
        except Exception as exc:
            rust_result.set_result(f"failed: {exc}")

    task = asyncio.create_task(rust_accept())
    try:
        right = addr_from_rust(rust)
        wrong = type(right)(SecretKey.generate().public(), None, right.direct_addresses)
        with pytest.raises(AuthenticationError):
            await ours.connect(wrong, ALPN, timeout=5)
        # The Rust side sees the handshake fail too.
        assert (await asyncio.wait_for(rust_result, 5)).startswith("failed")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ours.close()
        await rust.close()


async def test_wrong_endpoint_id_rust_dials_ours() -> None:
    ours = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0")
    rust = await bind_rust([])
    try:
        right = ours.addr()
        wrong = type(right)(SecretKey.generate().public(), None, right.direct_addresses)
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(rust.connect(addr_to_rust(wrong), ALPN), 10)
        assert not isinstance(info.value, TimeoutError)
        # Nothing reached accept(): the handshake failed on the Rust side.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ours.accept(), 0.3)
    finally:
        await rust.close()
        await ours.close()
