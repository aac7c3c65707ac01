"""The DNS server's HTTP side against slow and idle clients (issue 12)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from aioiroh.base.key import SecretKey
from aioiroh.dns.endpoint_info import EndpointInfo
from aioiroh.dns.pkarr import SignedPacket
from aioiroh.dns_server.server import DnsServer
from tests.support.dns import dns_server_config


def _body() -> tuple[str, bytes]:
    sk = SecretKey.generate()
    info = EndpointInfo(sk.public(), ("https://relay.example./",), (("192.0.2.1", 4433),))
    packet = SignedPacket.from_endpoint_info(info, sk, timestamp=time.time_ns() // 1000)
    return sk.public().to_z32(), packet.to_relay_body()


async def _wait_closed(reader: asyncio.StreamReader) -> None:
    while await reader.read(4096):
        pass


@pytest.mark.timeout(20)
async def test_split_body_pkarr_put_is_accepted(tmp_path: Path) -> None:
    async with DnsServer(dns_server_config(tmp_path)) as server:
        z32, body = _body()
        host, port = server.http_addr or ("", 0)
        reader, writer = await asyncio.open_connection(host, port)
        head = (
            f"PUT /pkarr/{z32} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode() + body[:40])
        await writer.drain()
        await asyncio.sleep(0.2)  # the second part arrives 200 ms later
        writer.write(body[40:])
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        assert b" 204 " in status_line, status_line


@pytest.mark.timeout(20)
async def test_idle_and_half_sent_http_connections_are_closed_in_time(tmp_path: Path) -> None:
    config = dns_server_config(tmp_path, http_keepalive_timeout=1.0, tcp_idle_timeout=1.0)
    async with DnsServer(config) as server:
        host, port = server.http_addr or ("", 0)
        conns = [await asyncio.open_connection(host, port) for _ in range(40)]
        for i, (_, writer) in enumerate(conns):
            if i % 2:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        start = time.monotonic()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.http_url}/healthz") as resp,
        ):
            assert resp.status == 200  # legitimate requests keep succeeding
        async with asyncio.timeout(5):
            await asyncio.gather(*(_wait_closed(r) for r, _ in conns))
        assert time.monotonic() - start < 4
        for _, writer in conns:
            writer.close()


@pytest.mark.timeout(20)
async def test_http_per_ip_cap_counted_in_metrics(tmp_path: Path) -> None:
    config = dns_server_config(tmp_path, http_port=0, dns_port=0, http_max_per_ip=3)
    async with DnsServer(config) as server:
        host, port = server.http_addr or ("", 0)
        held = [await asyncio.open_connection(host, port) for _ in range(3)]
        for _, w in held:
            w.write(b"G")  # past the DNS/HTTP sniffing: HTTP connections now
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(_wait_closed(reader), 5)
        writer.close()
        for _, w in held:
            w.close()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.http_url}/metrics") as resp,
        ):
            text = await resp.text()
        assert 'iroh_dns_http_refused{cap="per_ip"} 1.0' in text
