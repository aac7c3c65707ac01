"""`aioiroh pipe listen/connect` as a user runs them, plus dumbpipe's wire format against Rust."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from aioiroh.base.ticket import EndpointTicket
from aioiroh.endpoint import Endpoint

from ..support.oracle import addr_from_rust, addr_to_rust, bind_rust
from ._run import PIPE, interrupt, json_event, reap, run, running, spawn

pytestmark = pytest.mark.timeout(90)

DUMBPIPE_ALPN = b"DUMBPIPEV0"
LOOPBACK = ("--bind", "127.0.0.1:0")


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


async def test_pipe_carries_100_mb_intact_both_ways(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for _ in range(100):
            fh.write(os.urandom(1 << 20))
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(300_000))
    got_big, got_small = tmp_path / "got_big.bin", tmp_path / "got_small.bin"
    with small.open("rb") as s_in, got_big.open("wb") as s_out:
        async with running("pipe", "listen", *LOOPBACK, "--json", stdin=s_in, stdout=s_out) as lis:
            ticket = (await json_event(lis.stderr, "listening"))["ticket"]
            with big.open("rb") as c_in, got_small.open("wb") as c_out:
                conn = await spawn("pipe", "connect", *LOOPBACK, ticket, stdin=c_in, stdout=c_out)
                try:
                    _, c_err = await asyncio.wait_for(conn.communicate(), 60)
                finally:
                    await reap(conn)
            assert conn.returncode == 0, c_err
            assert await asyncio.wait_for(lis.wait(), 30) == 0
            done = await json_event(lis.stderr, "done")
    assert done["bytes_received"] == 100 << 20 and done["bytes_sent"] == 300_000
    assert got_big.stat().st_size == 100 << 20 and sha(got_big) == sha(big)
    assert got_small.read_bytes() == small.read_bytes()
    assert b"Traceback" not in c_err


async def test_listen_prints_ticket_and_command_on_stderr_only() -> None:
    async with running("pipe", "listen", *LOOPBACK, stdin=PIPE) as lis:
        assert lis.stderr is not None
        first = await asyncio.wait_for(lis.stderr.readline(), 30)
        second = await asyncio.wait_for(lis.stderr.readline(), 30)
        assert first.startswith(b"Listening")
        assert second.startswith(b"aioiroh pipe connect endpoint")
        EndpointTicket.parse(second.split()[-1].decode())
        assert await interrupt(lis) == 130
        assert lis.stdout is not None
        assert await lis.stdout.read() == b""
        assert b"Traceback" not in await lis.stderr.read()


async def test_rust_dumbpipe_connector_to_our_listener() -> None:
    """A Rust endpoint speaking dumbpipe (hello, then bytes) against `aioiroh pipe listen`."""
    async with running("pipe", "listen", *LOOPBACK, "--json", stdin=PIPE, stdout=PIPE) as lis:
        ticket = EndpointTicket.parse((await json_event(lis.stderr, "listening"))["ticket"])
        rust = await bind_rust([])
        try:
            conn = await rust.connect(addr_to_rust(ticket.addr), DUMBPIPE_ALPN)
            bi = await conn.open_bi()
            await bi.send().write_all(b"hello" + b"from rust\n")
            await bi.send().finish()
            assert lis.stdin is not None and lis.stdout is not None
            assert await asyncio.wait_for(lis.stdout.readexactly(10), 30) == b"from rust\n"
            lis.stdin.write(b"from python\n")
            lis.stdin.close()
            reply = await asyncio.wait_for(bi.recv().read_to_end(1 << 20), 30)
            assert bytes(reply) == b"from python\n"
            assert await asyncio.wait_for(lis.wait(), 30) == 0
        finally:
            await rust.close()


async def test_our_connector_to_rust_dumbpipe_listener() -> None:
    """`aioiroh pipe connect` sends the handshake a Rust dumbpipe listener expects."""
    rust = await bind_rust([DUMBPIPE_ALPN])
    seen: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def serve() -> None:
        inc = await rust.accept_next()
        conn = await (await inc.accept()).connect()
        bi = await conn.accept_bi()
        hello = bytes(await bi.recv().read_exact(5))
        body = bytes(await bi.recv().read_to_end(1 << 20))
        seen.set_result(hello + b"|" + body)
        await bi.send().write_all(b"rust says hi")
        await bi.send().finish()
        await conn.closed()

    task = asyncio.create_task(serve())
    try:
        ticket = str(EndpointTicket(addr_from_rust(rust)))
        rc, out, err = await run("pipe", "connect", *LOOPBACK, ticket, input=b"py data")
        assert rc == 0, err
        assert out == b"rust says hi"
        assert await asyncio.wait_for(seen, 10) == b"hello|py data"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await rust.close()


async def test_listener_rejects_bad_handshake_and_keeps_waiting() -> None:
    async with running("pipe", "listen", *LOOPBACK, "--json", stdin=PIPE, stdout=PIPE) as lis:
        ticket = EndpointTicket.parse((await json_event(lis.stderr, "listening"))["ticket"])
        async with await Endpoint.bind(bind_addr="127.0.0.1:0") as ep:
            conn = await ep.connect(ticket, DUMBPIPE_ALPN)
            send, _recv = await conn.open_bi()
            await send.write_all(b"howdy")
            rejected = await json_event(lis.stderr, "rejected")
            assert "handshake" in rejected["error"]
            await asyncio.wait_for(conn.closed(), 10)
        # A correct peer is still served afterwards (the listener has nothing to say).
        assert lis.stdin is not None
        lis.stdin.close()
        rc, _out, err = await run("pipe", "connect", *LOOPBACK, str(ticket), "--recv-only")
        assert rc == 0, err
        assert await asyncio.wait_for(lis.wait(), 30) == 0


async def test_connect_errors_are_clear() -> None:
    rc, out, err = await run("pipe", "connect", "endpointnotaticket")
    assert rc != 0 and out == b""
    assert b"bad ticket" in err and b"Traceback" not in err
    # Nobody listening at the ticket's address.
    async with await Endpoint.bind(bind_addr="127.0.0.1:0") as ep:
        ticket = str(ep.ticket())
    rc, out, err = await run("pipe", "connect", *LOOPBACK, ticket, "--timeout", "1", "--json")
    assert rc == 1 and out == b""
    assert b'"event": "error"' in err and b"Traceback" not in err


async def test_ctrl_c_mid_transfer_resets_the_peer() -> None:
    """Ctrl-C on a busy connector exits 130 and the listener ends with an error, not a hang."""
    async with running("pipe", "listen", *LOOPBACK, "--json", stdin=PIPE) as lis:
        ticket = (await json_event(lis.stderr, "listening"))["ticket"]
        with open("/dev/zero", "rb") as zero:
            async with running("pipe", "connect", *LOOPBACK, ticket, stdin=zero) as con:
                await json_event(lis.stderr, "connected")
                assert await interrupt(con) == 130
                assert con.stderr is not None
                assert b"Traceback" not in await con.stderr.read()
        error = await json_event(lis.stderr, "error")
        assert "reset" in error["error"] or "closed" in error["error"]
        assert await asyncio.wait_for(lis.wait(), 30) == 1
