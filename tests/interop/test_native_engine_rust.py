"""The native QUIC engine (:class:`aioiroh.quic.connection.IrohConnection`) against Rust iroh.

Driven by the small UDP driver in ``tests/quic/support`` (not the endpoint), in both roles, with
multipath offered (M2: ``initial_max_path_id`` 7 or 0) or not offered (M1).
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

from aioiroh.base.endpoint_addr import EndpointAddr
from aioiroh.base.key import PublicKey, SecretKey
from aioiroh.quic.aioquic_connection import QuicSettings
from aioiroh.quic.frames import FrameType

from ..quic.support.udp_driver import EngineDriver
from ..support.oracle import addr_to_rust, bind_rust

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

ALPN = b"aioiroh/native-engine/0"
BIG = 20 * 1000 * 1000


@dataclass
class Pair:
    ours: EngineDriver
    rust: iroh.Connection
    rust_is_client: bool


def _rust_port(ep: iroh.Endpoint) -> int:
    for text in ep.bound_sockets():
        host, _, port = str(text).rpartition(":")
        if host == "127.0.0.1":
            return int(port)
    raise AssertionError("Rust endpoint has no 127.0.0.1 socket")


@contextlib.asynccontextmanager
async def ours_to_rust(**engine: object) -> AsyncIterator[Pair]:
    rust = await bind_rust([ALPN])
    accepted: asyncio.Future[iroh.Connection] = asyncio.get_running_loop().create_future()

    async def accept() -> None:
        # iroh answers an Initial only once the application takes the Incoming.
        inc = await rust.accept_next()
        accepted.set_result(await (await inc.accept()).connect())

    task = asyncio.create_task(accept())
    drv = await EngineDriver.bind(
        secret_key=SecretKey.generate(),
        is_client=True,
        alpns=[ALPN],
        expected_peer=PublicKey.parse(str(rust.id())),
        engine_kwargs=dict(engine),
    )
    try:
        drv.connect(("127.0.0.1", _rust_port(rust)))
        await asyncio.wait_for(drv.handshake, 10)
        yield Pair(drv, await asyncio.wait_for(accepted, 10), rust_is_client=False)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await drv.aclose()
        await rust.close()


@contextlib.asynccontextmanager
async def rust_to_ours(**engine: object) -> AsyncIterator[Pair]:
    rust = await bind_rust([])
    key = SecretKey.generate()
    drv = await EngineDriver.bind(
        secret_key=key, is_client=False, alpns=[ALPN], engine_kwargs=dict(engine)
    )
    try:
        addr = EndpointAddr(key.public(), None, [drv.local_addr])
        conn = await asyncio.wait_for(rust.connect(addr_to_rust(addr), ALPN), 10)
        await asyncio.wait_for(drv.handshake, 10)
        yield Pair(drv, conn, rust_is_client=True)
    finally:
        await drv.aclose()
        await rust.close()


ROLES = {"ours->rust": ours_to_rust, "rust->ours": rust_to_ours}


@pytest.fixture(params=list(ROLES))
def role(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return ROLES[request.param]


async def _ours_opens_echo(pair: Pair, data: bytes) -> bytes:
    """We open a bidi stream, Rust echoes it."""

    async def rust_echo() -> None:
        bi = await pair.rust.accept_bi()
        got = await bi.recv().read_to_end(64 * 1024 * 1024)
        await bi.send().write_all(got)
        await bi.send().finish()

    task = asyncio.create_task(rust_echo())
    sid = 0 if not pair.rust_is_client else 1
    pair.ours.send(sid, data, end_stream=True)
    try:
        return await asyncio.wait_for(pair.ours.read_stream(sid), 60)
    finally:
        await asyncio.wait_for(task, 10)


async def _rust_opens_echo(pair: Pair, data: bytes) -> bytes:
    """Rust opens a bidi stream, we echo it."""
    bi = await pair.rust.open_bi()

    async def write() -> None:
        await bi.send().write_all(data)
        await bi.send().finish()

    writer = asyncio.create_task(write())
    sid = 0 if pair.rust_is_client else 1
    got = await asyncio.wait_for(pair.ours.read_stream(sid), 60)
    await writer
    pair.ours.send(sid, got, end_stream=True)
    return bytes(await asyncio.wait_for(bi.recv().read_to_end(len(data) + 1), 60))


@pytest.mark.parametrize("max_path_id", [None, 0, 7])
async def test_handshake_and_echo(role, max_path_id: int | None) -> None:  # type: ignore[no-untyped-def]
    async with role(max_path_id=max_path_id) as pair:
        conn = pair.ours.conn
        assert conn.multipath_negotiated == (max_path_id is not None)
        assert conn.peer_id is not None
        assert str(pair.rust.remote_id()) == str(pair.ours.secret_key.public())
        assert await _ours_opens_echo(pair, b"hello iroh") == b"hello iroh"
        assert await _rust_opens_echo(pair, b"hello back") == b"hello back"
        # M2: every 1-RTT ack we sent was a PATH_ACK once multipath was negotiated.
        expected = FrameType.PATH_ACK if max_path_id is not None else FrameType.ACK
        assert conn.sent_ack_types == {expected}
        # iroh sees exactly one path (path 0).
        assert len(pair.rust.paths()) == 1


async def test_twenty_megabytes_each_direction(role) -> None:  # type: ignore[no-untyped-def]
    async with role() as pair:
        up = os.urandom(BIG)
        back = await _ours_opens_echo(pair, up)
        assert hashlib.sha256(back).digest() == hashlib.sha256(up).digest()
        down = os.urandom(BIG)
        back = await _rust_opens_echo(pair, down)
        assert hashlib.sha256(back).digest() == hashlib.sha256(down).digest()
        # noq updates 1-RTT keys after 10-1000 packets: no packet may fail to open.
        assert pair.ours.conn.decrypt_failures == 0
        assert pair.ours.conn.multipath_negotiated


async def test_datagrams(role) -> None:  # type: ignore[no-untyped-def]
    async with role() as pair:
        for _ in range(20):
            pair.ours.send_datagram(b"dgram")
            with contextlib.suppress(TimeoutError):
                assert bytes(await asyncio.wait_for(pair.rust.read_datagram(), 0.5)) == b"dgram"
                break
        else:
            raise AssertionError("no datagram arrived")
        pair.rust.send_datagram(b"from rust")
        assert await asyncio.wait_for(pair.ours.datagrams.get(), 5) == b"from rust"


async def test_close_codes_both_ways(role) -> None:  # type: ignore[no-untyped-def]
    async with role() as pair:
        pair.ours.close(42, "done here")
        reason = await asyncio.wait_for(pair.rust.closed(), 5)
        assert "42" in str(reason) and "done here" in str(reason)
    async with role() as pair:
        pair.rust.close(7, b"rust says bye")
        ev = await asyncio.wait_for(pair.ours.terminated, 5)
        assert (ev.error_code, ev.frame_type, ev.reason_phrase) == (7, None, "rust says bye")


async def test_idle_timeout(role) -> None:  # type: ignore[no-untyped-def]
    async with role(settings=QuicSettings(idle_timeout=1.0)) as pair:
        assert await _ours_opens_echo(pair, b"x") == b"x"
        pair.ours.drop_incoming = True  # the peer falls silent
        ev = await asyncio.wait_for(pair.ours.terminated, 10)
        assert ev.reason_phrase == "Idle timeout"
