"""Interop: a Rust endpoint (PyPI ``iroh``) dials our EndpointId through our relay.

Our side has only a :class:`RelayTransport` (no QUIC), so we cannot complete the handshake;
what we check is that the Rust endpoint's QUIC Initial arrives on our transport through the
relay, attributed to the Rust endpoint's id and the relay's URL.
"""

from __future__ import annotations

import asyncio
import contextlib

import iroh
import pytest

from aioiroh.base.key import EndpointId, PublicKey, SecretKey
from aioiroh.base.relay_url import RelayUrl
from aioiroh.relay.relay_map import RelayMap
from aioiroh.socket.transports.relay import RelayTransport
from tests.support.oracle import RustFactory

pytestmark = pytest.mark.interop

ALPN = b"aioiroh/test/relay-interop"


@pytest.mark.timeout(60)
async def test_rust_initial_arrives_via_our_relay_transport(
    relay_server: object, rust_endpoint: RustFactory
) -> None:
    url: str = relay_server.http_url  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    rust_key = SecretKey.generate()
    ours = SecretKey.generate()
    first: asyncio.Future[tuple[RelayUrl, EndpointId, bytes]] = loop.create_future()

    def on_recv(relay: RelayUrl, src: EndpointId, data: bytes) -> None:
        if src == rust_key.public() and not first.done():
            first.set_result((relay, src, data))

    transport = RelayTransport(ours, RelayMap.from_urls([url]), on_recv)
    await transport.start()
    try:
        await asyncio.wait_for(transport.online(), 10)
        rust = await rust_endpoint([ALPN], secret_key=rust_key, relay_urls=[url])
        await asyncio.wait_for(rust.online(), 20)
        assert PublicKey.parse(str(rust.id())) == rust_key.public()

        target = iroh.EndpointAddr(iroh.EndpointId.from_string(str(ours.public())), url, [])
        dial = asyncio.ensure_future(rust.connect(target, ALPN))
        try:
            relay, src, data = await asyncio.wait_for(first, 20)
        finally:
            dial.cancel()
            with contextlib.suppress(BaseException):
                await dial

        assert relay == RelayUrl(url)
        assert src == rust_key.public()
        # A QUIC long-header packet (Initial) with the fixed bit, padded to >= 1200 bytes.
        assert data[0] & 0x80 and data[0] & 0x40
        assert (data[0] & 0x30) >> 4 == 0  # long packet type 0 = Initial
        assert data[1:5] == b"\x00\x00\x00\x01"  # QUIC v1
        assert len(data) >= 1200
        assert transport.metrics.datagrams_received >= 1
    finally:
        await transport.close()
