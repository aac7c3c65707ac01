"""`aioiroh forward listen/connect`: real TCP clients through two CLI processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from aioiroh.base.ticket import EndpointTicket

from ..support.oracle import addr_to_rust, bind_rust
from ._run import interrupt, json_event, json_line, running

pytestmark = pytest.mark.timeout(90)

LOOPBACK = ("--bind", "127.0.0.1:0")
CLIENTS = 16
PAYLOAD = 256 * 1024


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def tcp_server(handler=_echo) -> AsyncIterator[int]:  # type: ignore[no-untyped-def]
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def echo_through(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()  # half-close: the reply must still arrive
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
        await writer.wait_closed()


async def forward_pair(echo_port: int, *extra: str):  # type: ignore[no-untyped-def]
    """Start `forward listen` and `forward connect`; yields (listener, connector, tcp port)."""
    lis_cm = running("forward", "listen", "--host", f"127.0.0.1:{echo_port}", *LOOPBACK, "--json")
    lis = await lis_cm.__aenter__()
    try:
        ticket = (await json_event(lis.stderr, "listening"))["ticket"]
        con_cm = running(
            "forward", "connect", ticket, "--addr", "127.0.0.1:0", *LOOPBACK, "--json", *extra
        )
        con = await con_cm.__aenter__()
    except BaseException:
        await lis_cm.__aexit__(None, None, None)
        raise
    tcp = (await json_event(con.stderr, "listening"))["tcp_addr"]
    return lis_cm, lis, con_cm, con, int(tcp.rsplit(":", 1)[1])


@pytest.mark.parametrize("mode", ["shared", "per-tcp"])
async def test_many_concurrent_tcp_connections(mode: str) -> None:
    extra = ("--connection-per-tcp",) if mode == "per-tcp" else ()
    async with tcp_server() as echo_port:
        lis_cm, lis, con_cm, con, port = await forward_pair(echo_port, *extra)
        try:
            payloads = [os.urandom(PAYLOAD) for _ in range(CLIENTS)]
            replies = await asyncio.gather(*(echo_through(port, p) for p in payloads))
            assert [len(r) for r in replies] == [PAYLOAD] * CLIENTS
            assert replies == payloads
            assert await interrupt(con) == 130
            assert await interrupt(lis) == 130
            assert lis.stderr is not None
            lines = (await lis.stderr.read()).decode()
            accepted = lines.count('"event": "accepted"')
            assert accepted == (1 if mode == "shared" else CLIENTS)
            assert "Traceback" not in lines
        finally:
            await con_cm.__aexit__(None, None, None)
            await lis_cm.__aexit__(None, None, None)


async def test_server_side_close_reaches_client() -> None:
    """A service that talks first and closes: the TCP client sees the banner, then EOF."""

    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 welcome\r\n")
        await writer.drain()
        writer.close()

    async with tcp_server(banner) as port_b:
        lis_cm, _lis, con_cm, _con, port = await forward_pair(port_b)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), 30) == b"220 welcome\r\n"
            writer.close()
            await writer.wait_closed()
        finally:
            await con_cm.__aexit__(None, None, None)
            await lis_cm.__aexit__(None, None, None)


async def test_unreachable_target_resets_only_that_stream() -> None:
    async with tcp_server() as echo_port:
        pass  # closed again: nothing listens on this port now
    lis_cm, lis, con_cm, con, port = await forward_pair(echo_port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"anyone?")
        assert await asyncio.wait_for(reader.read(), 30) == b""
        writer.close()
        err = await json_event(lis.stderr, "forward_error")
        assert "127.0.0.1" in err["error"] or "refused" in err["error"].lower()
        # The forwarder process is still alive.
        assert lis.returncode is None and con.returncode is None
    finally:
        await con_cm.__aexit__(None, None, None)
        await lis_cm.__aexit__(None, None, None)


async def test_rust_dumbpipe_connect_tcp_client() -> None:
    """A Rust endpoint doing what `dumbpipe connect-tcp` does, against `forward listen`."""
    async with (
        tcp_server() as echo_port,
        running(
            "forward", "listen", "--host", f"127.0.0.1:{echo_port}", *LOOPBACK, "--json"
        ) as lis,
    ):
        ticket = EndpointTicket.parse((await json_line(lis.stderr))["ticket"])
        rust = await bind_rust([])
        try:
            conn = await rust.connect(addr_to_rust(ticket.addr), b"DUMBPIPEV0")
            bi = await conn.open_bi()
            await bi.send().write_all(b"hello" + b"ping over tcp")
            await bi.send().finish()
            reply = await asyncio.wait_for(bi.recv().read_to_end(1 << 20), 30)
            assert bytes(reply) == b"ping over tcp"
        finally:
            await rust.close()
