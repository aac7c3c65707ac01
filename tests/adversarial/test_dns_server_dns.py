"""DNS over TCP and UDP against slow, non-reading and flooding clients (issue 12)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from aioiroh.dns_server.server import DnsServer
from tests.support.dns import TEST_ORIGIN, dns_server_config


def _query(rdtype: str = "TXT") -> dns.message.Message:
    return dns.message.make_query(f"_iroh.x.{TEST_ORIGIN}", rdtype)


def _framed(msg: dns.message.Message) -> bytes:
    wire = msg.to_wire()
    return len(wire).to_bytes(2, "big") + wire


async def _open(
    server: DnsServer, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = server.dns_addr or ("", 0)
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def _ask_tcp(server: DnsServer, source: str) -> dns.message.Message:
    reader, writer = await _open(server, source)
    try:
        writer.write(_framed(_query()))
        length = int.from_bytes(await reader.readexactly(2), "big")
        return dns.message.from_wire(await reader.readexactly(length))
    finally:
        writer.close()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except ConnectionResetError:
        pass  # a reset is a close too


@pytest.mark.timeout(30)
async def test_slow_tcp_clients_cannot_lock_out_fresh_clients(tmp_path: Path) -> None:
    config = dns_server_config(
        tmp_path,
        http_port=0,
        dns_port=0,
        max_tcp_per_ip=4,
        tcp_idle_timeout=1.0,
        tcp_max_lifetime=2.0,
    )
    async with DnsServer(config) as server:
        slow = [await _open(server, "127.0.0.1") for _ in range(4)]

        async def trickle(writer: asyncio.StreamWriter) -> None:
            # One query every 0.5 s: never idle long enough for the idle timer.
            for _ in range(20):
                if writer.is_closing():
                    return
                writer.write(_framed(_query()))
                await asyncio.sleep(0.5)

        tricklers = [asyncio.create_task(trickle(w)) for _, w in slow]
        await asyncio.sleep(0.1)
        # A fifth connection from the same IP is over the per-IP cap.
        extra_reader, extra_writer = await _open(server, "127.0.0.1")
        extra_writer.write(_framed(_query()))
        await _closed_within(extra_reader, 2)
        # A fresh client from another address is answered meanwhile.
        reply = await asyncio.wait_for(_ask_tcp(server, "127.0.0.2"), 2)
        assert reply.rcode() == dns.rcode.NXDOMAIN
        start = time.monotonic()
        await asyncio.gather(*(_closed_within(r, 3) for r, _ in slow))
        assert time.monotonic() - start < 3  # the lifetime ended them despite the traffic
        for task in tricklers:
            task.cancel()
        await asyncio.gather(*tricklers, return_exceptions=True)
        for _, writer in [*slow, (extra_reader, extra_writer)]:
            writer.close()


def _was_reset(sock: socket.socket) -> bool:
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
        return True
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b""  # the server closed


@pytest.mark.timeout(30)
async def test_pipelining_client_that_never_reads_is_closed(tmp_path: Path) -> None:
    config = dns_server_config(tmp_path, tcp_write_timeout=0.5, tcp_max_lifetime=2.0)
    async with DnsServer(config) as server:
        host, port = server.dns_addr or ("", 0)
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        burst = _framed(_query()) * 200
        closed = False
        try:
            while time.monotonic() - start < 8:
                try:
                    await asyncio.wait_for(loop.sock_sendall(sock, burst), 0.5)
                except (ConnectionError, BrokenPipeError):
                    closed = True
                    break
                except TimeoutError:
                    # A send blocked by our own full window can miss the server's reset; look
                    # for it without reading (the client still never consumes a reply).
                    if _was_reset(sock):
                        closed = True
                        break
                    await asyncio.sleep(0.1)
        finally:
            sock.close()
        assert closed, "a client that never reads kept its connection"
        assert time.monotonic() - start < 5
        assert server.dns_addr is not None
        assert (await asyncio.wait_for(_ask_tcp(server, "127.0.0.3"), 2)).rcode() == 3


def _flood_udp(host: str, port: int, count: int) -> tuple[int, int]:
    """Send ``count`` queries at once from one socket; count full and truncated replies."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    full = truncated = 0
    try:
        wire = _query().to_wire()
        for _ in range(count):
            sock.sendto(wire, (host, port))
        while True:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                return full, truncated
            reply = dns.message.from_wire(data)
            if reply.flags & dns.flags.TC:
                assert not reply.answer
                truncated += 1
            else:
                full += 1
    finally:
        sock.close()


@pytest.mark.timeout(20)
async def test_udp_responses_are_rate_limited_with_slip(tmp_path: Path) -> None:
    config = dns_server_config(tmp_path, udp_rrl_rate=5.0, udp_rrl_burst=10, udp_rrl_slip=2)
    async with DnsServer(config) as server:
        host, port = server.dns_addr or ("", 0)
        full, truncated = await asyncio.to_thread(_flood_udp, host, port, 100)
        assert 10 <= full <= 13  # the burst, plus what refilled during the flood
        assert 40 <= truncated <= 46  # every second query over the limit slips
        # Another prefix still gets answers.
        other = await asyncio.to_thread(
            dns.query.udp, _query(), host, port=port, source="127.0.1.1", timeout=2
        )
        assert not other.flags & dns.flags.TC


@pytest.mark.timeout(20)
async def test_any_queries_are_refused(tmp_path: Path) -> None:
    async with DnsServer(dns_server_config(tmp_path)) as server:
        host, port = server.dns_addr or ("", 0)
        reply = await asyncio.to_thread(dns.query.udp, _query("ANY"), host, port=port, timeout=2)
        assert reply.rcode() == dns.rcode.REFUSED
        assert not reply.answer
