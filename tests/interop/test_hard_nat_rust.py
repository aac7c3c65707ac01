"""Rust iroh and aioiroh's ``hard_nat`` transport parameter: Rust skips the unknown id.

An aioiroh endpoint bound with ``hard_nat=True`` offers the birthday hard-NAT attempt in its
transport parameters (quic/transport_parameters.py). A Rust peer must connect as before, in both
roles, and the attempt must not be negotiated (nothing is ever sprayed at a Rust peer).
"""

from __future__ import annotations

import asyncio

import pytest

from aioiroh.endpoint import Connection, Endpoint

from ..support.oracle import addr_from_rust, addr_to_rust, bind_rust

pytestmark = [pytest.mark.interop, pytest.mark.timeout(30)]

ALPN = b"aioiroh/test-hard-nat/0"


def _negotiated(conn: Connection) -> bool:
    return bool(conn._driver.quic.hard_nat_negotiated)  # type: ignore[attr-defined]


async def test_ours_hard_nat_client_to_rust_server() -> None:
    rust = await bind_rust([ALPN])
    ours = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False, hard_nat=True)

    async def serve() -> None:
        inc = await rust.accept_next()
        conn = await (await inc.accept()).connect()
        bi = await conn.accept_bi()
        await bi.send().write_all(await bi.recv().read_to_end(1024))
        await bi.send().finish()
        await conn.closed()

    task = asyncio.create_task(serve())
    try:
        conn = await ours.connect(addr_from_rust(rust), ALPN)
        send, recv = await conn.open_bi()
        await send.write_all(b"hard nat offered")
        await send.finish()
        assert await recv.read_to_end(1024) == b"hard nat offered"
        assert not _negotiated(conn)
        assert conn.hard_nat_attempt() is None
        conn.close(0, b"done")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ours.close()
        await rust.close()


async def test_rust_client_to_ours_hard_nat_server() -> None:
    ours = await Endpoint.bind(
        alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False, hard_nat=True
    )
    rust = await bind_rust([])
    accepted: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()

    async def serve() -> None:
        conn = await ours.accept()
        accepted.set_result(conn)
        send, recv = await conn.accept_bi()
        await send.write_all(await recv.read_to_end(1024))
        await send.finish()
        await conn.closed()

    task = asyncio.create_task(serve())
    try:
        conn = await rust.connect(addr_to_rust(ours.addr()), ALPN)
        bi = await conn.open_bi()
        await bi.send().write_all(b"hard nat offered")
        await bi.send().finish()
        assert bytes(await bi.recv().read_to_end(1024)) == b"hard nat offered"
        server_conn = await accepted
        assert not _negotiated(server_conn)
        assert server_conn.hard_nat_attempt() is None
        conn.close(0, b"done")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await rust.close()
        await ours.close()
