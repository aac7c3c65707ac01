"""The relay over TLS (wss) with a throwaway self-signed certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp

from aioiroh.relay_server import RelayServer, ServerConfig
from aioiroh.tls.x509 import write_self_signed
from tests.support.relay import connect_client


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    return write_self_signed(tmp, ["127.0.0.1"])


async def test_relay_over_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    async with RelayServer(ServerConfig(tls_cert=cert, tls_key=key)) as server:
        assert server.http_url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as s, s.get(server.http_url + "/ping", ssl=ctx) as r:
            assert r.status == 200
        a = await connect_client(server.http_url, ssl_context=ctx)
        b = await connect_client(server.http_url, ssl_context=ctx)
        try:
            await a.send(b.endpoint_id, b"secret")
            assert (await b.recv_datagrams()).datagrams.contents == b"secret"
        finally:
            await a.close()
            await b.close()


async def test_tls_relay_serves_captive_portal_on_plain_http(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = ServerConfig(host="127.0.0.1", port=0, tls_cert=cert, tls_key=key, http_port=0)
    async with RelayServer(config) as server:
        port = server.captive_portal_port
        assert port is not None
        url = f"http://127.0.0.1:{port}/generate_204"
        headers = {"X-Iroh-Challenge": "abc-123"}
        async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
            assert r.status == 204
            assert r.headers["X-Iroh-Response"] == "response abc-123"
            async with s.get(f"http://127.0.0.1:{port}/relay") as other:
                assert other.status == 404  # only the captive-portal check is plain
