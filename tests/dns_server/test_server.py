"""DnsServer on loopback: pkarr PUT/GET, DNS over UDP/TCP/DoH, limits, persistence, expiry."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from aioiroh.base.key import SecretKey
from aioiroh.dns.endpoint_info import EndpointInfo, txt_name
from aioiroh.dns.pkarr import SignedPacket
from aioiroh.dns.resolver import DnsResolver
from aioiroh.dns_server.server import DnsServer
from tests.support.dns import TEST_ORIGIN, dns_server_config


def _now_us() -> int:
    return time.time_ns() // 1000


def _packet(sk: SecretKey, *, ts: int | None = None, relay: str = "https://relay.example./"):
    info = EndpointInfo(sk.public(), (relay,), (("192.0.2.1", 4433),))
    return info, SignedPacket.from_endpoint_info(info, sk, timestamp=ts or _now_us())


async def _put(session, server: DnsServer, key_z32: str, body: bytes) -> aiohttp.ClientResponse:
    async with session.put(f"{server.pkarr_url}/{key_z32}", data=body) as resp:
        await resp.read()
        return resp


async def test_put_get_and_dns(dns_server: DnsServer) -> None:
    sk = SecretKey.generate()
    info, packet = _packet(sk)
    z32 = sk.public().to_z32()
    async with aiohttp.ClientSession() as s:
        resp = await _put(s, dns_server, z32, packet.to_relay_body())
        assert resp.status == 204
        async with s.get(f"{dns_server.pkarr_url}/{z32}") as r:
            assert r.status == 200
            assert r.headers["content-type"] == "application/x-pkarr-signed-packet"
            assert await r.read() == packet.to_relay_body()
        async with s.get(f"{dns_server.http_url}/healthz") as r:
            assert r.status == 200
        async with s.get(f"{dns_server.http_url}/metrics") as r:
            text = await r.text()
            assert 'iroh_dns_pkarr_puts_total{outcome="stored"} 1.0' in text
    host, port = dns_server.dns_addr
    for transport in ("udp", "tcp"):
        async with DnsResolver([(host, port)], transport=transport) as resolver:
            got = await resolver.lookup_endpoint(sk.public(), TEST_ORIGIN)
            assert got == info
    async with DnsResolver(doh_url=f"{dns_server.http_url}/dns-query") as resolver:
        assert await resolver.lookup_endpoint(sk.public(), TEST_ORIGIN) == info


async def test_doh_get_form(dns_server: DnsServer) -> None:
    sk = SecretKey.generate()
    _, packet = _packet(sk)
    q = dns.message.make_query(txt_name(sk.public(), TEST_ORIGIN), dns.rdatatype.TXT)
    param = base64.urlsafe_b64encode(q.to_wire()).rstrip(b"=").decode()
    async with aiohttp.ClientSession() as s:
        await _put(s, dns_server, sk.public().to_z32(), packet.to_relay_body())
        async with s.get(f"{dns_server.http_url}/dns-query", params={"dns": param}) as r:
            assert r.status == 200
            reply = dns.message.from_wire(await r.read())
        assert reply.rcode() == dns.rcode.NOERROR and len(reply.answer[0]) == 2
        async with s.get(f"{dns_server.http_url}/dns-query", params={"dns": "AAAA"}) as r:
            assert r.status == 400
        async with s.post(
            f"{dns_server.http_url}/dns-query",
            data=b"x",
            headers={"content-type": "application/dns-message"},
        ) as r:
            assert r.status == 400


async def test_bad_puts_store_nothing(dns_server: DnsServer) -> None:
    sk = SecretKey.generate()
    z32 = sk.public().to_z32()
    _, packet = _packet(sk)
    body = bytearray(packet.to_relay_body())
    async with aiohttp.ClientSession() as s:
        bad_sig = bytes(body)
        bad_sig = bytes([bad_sig[0] ^ 1]) + bad_sig[1:]
        assert (await _put(s, dns_server, z32, bad_sig)).status == 400
        assert (await _put(s, dns_server, z32, bytes(50))).status == 400
        assert (await _put(s, dns_server, z32, bytes(2000))).status == 413
        assert (await _put(s, dns_server, "not-a-key", bytes(body))).status == 400
        other = SecretKey.generate().public().to_z32()
        assert (await _put(s, dns_server, other, bytes(body))).status == 400
        old_ts = _now_us() - int(48 * 3600 * 1e6)
        _, old = _packet(sk, ts=old_ts)
        assert (await _put(s, dns_server, z32, old.to_relay_body())).status == 400
        _, future = _packet(sk, ts=_now_us() + int(2 * 3600 * 1e6))
        assert (await _put(s, dns_server, z32, future.to_relay_body())).status == 400
        async with s.get(f"{dns_server.pkarr_url}/{z32}") as r:
            assert r.status == 404
        async with s.get(f"{dns_server.pkarr_url}/xyz") as r:
            assert r.status == 400


async def test_newer_wins(dns_server: DnsServer) -> None:
    sk = SecretKey.generate()
    z32 = sk.public().to_z32()
    now = _now_us()
    _, older = _packet(sk, ts=now - 10, relay="https://old.example./")
    _, newer = _packet(sk, ts=now, relay="https://new.example./")
    async with aiohttp.ClientSession() as s:
        assert (await _put(s, dns_server, z32, newer.to_relay_body())).status == 204
        assert (await _put(s, dns_server, z32, older.to_relay_body())).status == 409
        assert (await _put(s, dns_server, z32, newer.to_relay_body())).status == 204
        async with s.get(f"{dns_server.pkarr_url}/{z32}") as r:
            assert await r.read() == newer.to_relay_body()


async def test_dns_error_codes(dns_server: DnsServer) -> None:
    host, port = dns_server.dns_addr
    unknown = SecretKey.generate().public()

    async def ask(name: str, rdtype=dns.rdatatype.TXT) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype)
        return await dns.asyncquery.udp(q, host, port=port, timeout=3)

    assert (await ask(txt_name(unknown, TEST_ORIGIN))).rcode() == dns.rcode.NXDOMAIN
    assert (await ask("example.com.")).rcode() == dns.rcode.REFUSED
    assert (await ask(f"_iroh.notakey.{TEST_ORIGIN}")).rcode() == dns.rcode.NXDOMAIN
    apex = await ask(TEST_ORIGIN, dns.rdatatype.SOA)
    assert apex.rcode() == dns.rcode.NOERROR and apex.answer
    # Malformed query: a FORMERR header echoing our id.
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Proto, remote_addr=(host, port))
    try:
        transport.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff")
        reply = await asyncio.wait_for(got, 3)
    finally:
        transport.close()
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR


async def test_other_records_and_tcp_large(dns_server: DnsServer) -> None:
    """Records at other names under the key (as Rust's server test), and a big answer."""
    sk = SecretKey.generate()
    values = [f"v{i}=" + "x" * 60 for i in range(12)]
    packet = SignedPacket.from_txt_strings(sk, "multiple", values, timestamp=_now_us())
    async with aiohttp.ClientSession() as s:
        assert (
            await _put(s, dns_server, sk.public().to_z32(), packet.to_relay_body())
        ).status == 204
    host, port = dns_server.dns_addr
    name = f"multiple.{sk.public().to_z32()}.{TEST_ORIGIN}"
    q = dns.message.make_query(name, dns.rdatatype.TXT)
    udp = await dns.asyncquery.udp(q, host, port=port, timeout=3)
    assert udp.flags & dns.flags.TC  # > 512 bytes without EDNS
    async with DnsResolver([(host, port)]) as resolver:
        got = await resolver.lookup_txt(name)  # falls back to TCP
    assert sorted(got) == sorted(values)


async def test_persistence_and_expiry(tmp_path) -> None:
    sk = SecretKey.generate()
    _, packet = _packet(sk)
    config = dns_server_config(tmp_path)
    async with DnsServer(config) as server, aiohttp.ClientSession() as s:
        assert (await _put(s, server, sk.public().to_z32(), packet.to_relay_body())).status == 204
    async with DnsServer(config) as server:
        assert await server.store.get(sk.public()) == packet
        assert await server.expire() == 0
    short = dns_server_config(tmp_path, record_max_age=0.0)
    async with DnsServer(short) as server:
        assert await server.expire() == 1
        assert await server.store.get(sk.public()) is None


async def test_rate_limit(tmp_path) -> None:
    config = dns_server_config(tmp_path, put_rate=0.001, put_burst=2)
    sk = SecretKey.generate()
    async with DnsServer(config) as server, aiohttp.ClientSession() as s:
        statuses = []
        for _ in range(3):
            _, packet = _packet(sk)
            statuses.append(
                (await _put(s, server, sk.public().to_z32(), packet.to_relay_body())).status
            )
        assert statuses == [204, 204, 429]


async def test_shared_port(tmp_path) -> None:
    """``--port P``: HTTP and DNS (UDP + TCP) on one port."""
    config = dns_server_config(tmp_path, http_port=0, dns_port=0)
    sk = SecretKey.generate()
    info, packet = _packet(sk)
    async with DnsServer(config) as server, aiohttp.ClientSession() as s:
        assert server.http_addr == server.dns_addr
        assert (await _put(s, server, sk.public().to_z32(), packet.to_relay_body())).status == 204
        host, port = server.dns_addr
        for transport in ("udp", "tcp"):
            async with DnsResolver([(host, port)], transport=transport) as r:
                assert await r.lookup_endpoint(sk.public(), TEST_ORIGIN) == info


@pytest.mark.timeout(30)
async def test_cli_dns_server(tmp_path) -> None:
    """The ``aioiroh dns-server --dev --port P --origin O`` process serves both protocols."""
    import socket
    import sys

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from aioiroh.cli.main import main; main()",
        "dns-server",
        "--dev",
        "--port",
        str(port),
        "--origin",
        TEST_ORIGIN,
        "--db",
        str(tmp_path / "cli.sqlite"),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        while b"origins:" not in (line := await proc.stderr.readline()):
            assert line, "dns-server exited early"
        sk = SecretKey.generate()
        info, packet = _packet(sk)
        async with aiohttp.ClientSession() as s:
            url = f"http://127.0.0.1:{port}/pkarr/{sk.public().to_z32()}"
            async with s.put(url, data=packet.to_relay_body()) as r:
                assert r.status == 204
        async with DnsResolver([("127.0.0.1", port)]) as r:
            assert await r.lookup_endpoint(sk.public(), TEST_ORIGIN) == info
    finally:
        proc.terminate()
        await proc.wait()
