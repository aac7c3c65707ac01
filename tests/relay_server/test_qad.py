"""The relay's QUIC address discovery service: reports, robustness, CLI flag."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from aioiroh.base.key import SecretKey
from aioiroh.quic.qad_connection import QAD_ALPN
from aioiroh.relay_server import RelayServer, ServerConfig
from aioiroh.relay_server.qad import QadServer
from aioiroh.socket.qad import probe_qad
from aioiroh.socket.socket import MagicSocket


def _socket(v4: bool = True, v6: bool = False) -> MagicSocket:
    sock = MagicSocket(SecretKey.generate(), alpns=lambda: [], on_incoming=lambda d: None)
    sock.bind(("127.0.0.1", 0) if v4 else None, ("::1", 0) if v6 else None)
    return sock


async def test_relay_server_reports_observed_address() -> None:
    async with RelayServer(ServerConfig(qad_port=0)) as server:
        assert server.qad is not None and server.qad_port
        sock = _socket()
        try:
            got = await probe_qad(sock, "127.0.0.1", server.qad_port, timeout=5)
            assert got == sock.local_addrs()[0]
            assert server.qad.stats.reports == 1
            # The probe's connection IDs are gone from the socket's demultiplexer.
            assert not sock._cids
        finally:
            sock.close()
    assert server.qad.connection_count == 0


async def test_ipv6_report() -> None:
    async with QadServer("::1", 0) as qad:
        sock = _socket(v4=False, v6=True)
        try:
            got = await probe_qad(sock, "::1", qad.port, timeout=5)
            assert got == sock.local_addrs()[0]
        finally:
            sock.close()


async def test_bad_input_and_limits_never_kill_the_service() -> None:
    async with QadServer("127.0.0.1", 0, max_connections=2, retry_threshold=None) as qad:
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.setblocking(False)
        try:
            for junk in (
                b"",
                b"\xc0",
                b"\xc0\x00\x00\x00\x01\xff" + b"x" * 10,  # DCID length past the end
                b"\xc0\xaa\xbb\xcc\xdd\x08" + b"y" * 1300,  # unknown QUIC version
                b"\x40" + b"z" * 50,  # short header, unknown CID
                b"\xc0\x00\x00\x00\x01\x08" + b"i" * 1300,  # v1 Initial full of garbage
            ):
                raw.sendto(junk, ("127.0.0.1", qad.port))
            # Fill the connection table with half-open handshakes from plain aioquic clients.
            for _ in range(3):
                client = QuicConnection(
                    configuration=QuicConfiguration(
                        is_client=True, alpn_protocols=[QAD_ALPN], verify_mode=ssl.CERT_NONE
                    )
                )
                client.connect(("127.0.0.1", qad.port), now=0.0)
                for data, addr in client.datagrams_to_send(now=0.0):
                    raw.sendto(data, addr)
            await asyncio.wait_for(qad.wait_stats(lambda s: s.datagrams >= 9), 5)
            assert qad.stats.dropped_full >= 1
            assert qad.stats.dropped_malformed + qad.stats.dropped_unknown >= 4
            # The table is full of unfinished handshakes: a new client is refused (dropped).
            sock = _socket()
            try:
                with pytest.raises(Exception, match="no QAD answer"):
                    await probe_qad(sock, "127.0.0.1", qad.port, timeout=0.5)
            finally:
                sock.close()
        finally:
            raw.close()


async def test_no_listener_times_out_cleanly() -> None:
    # A free port nobody listens on: the probe fails with QadError and leaves nothing behind.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sock = _socket()
    try:
        with pytest.raises(Exception, match="no QAD answer"):
            await probe_qad(sock, "127.0.0.1", port, timeout=0.3)
        assert not sock._cids
    finally:
        sock.close()


@pytest.mark.timeout(60)
async def test_cli_qad_port() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioiroh.cli.main",
        "relay",
        "--dev",
        "--port",
        "0",
        "--qad-port",
        "0",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        info = json.loads(line)
        assert info["qad_port"]
        sock = _socket()
        try:
            got = await probe_qad(sock, "127.0.0.1", info["qad_port"], timeout=5)
            assert got == sock.local_addrs()[0]
        finally:
            sock.close()
    finally:
        proc.terminate()
        await proc.wait()
