"""Stateless Retry: tokens bind address, original CID and time; a Rust iroh client (PyPI iroh
oracle) answers our Retry and connects, so a server under pressure still admits real clients."""

from __future__ import annotations

import asyncio

import pytest
from aioquic.buffer import Buffer
from aioquic.quic.packet import pull_quic_header

from aioiroh.base.key import SecretKey
from aioiroh.endpoint import Endpoint
from aioiroh.quic.connection import IrohConnection
from aioiroh.quic.retry import RETRY_TOKEN_LIFETIME, RetryTokens, build_retry
from tests.support.oracle import addr_to_rust, bind_rust

ALPN = b"aioiroh/test/adversarial/0"


def test_retry_tokens_bind_address_cid_and_time() -> None:
    tokens = RetryTokens()
    token = tokens.issue(b"127.0.0.1|4000", b"\x01" * 8, 100.0)
    assert tokens.validate(token, b"127.0.0.1|4000", 101.0) == b"\x01" * 8
    assert tokens.validate(token, b"127.0.0.1|4001", 101.0) is None  # another address
    assert tokens.validate(token, b"127.0.0.1|4000", 100.0 + RETRY_TOKEN_LIFETIME + 1) is None
    assert RetryTokens().validate(token, b"127.0.0.1|4000", 101.0) is None  # another key
    forged = token[:-1] + bytes([token[-1] ^ 1])
    assert tokens.validate(forged, b"127.0.0.1|4000", 101.0) is None
    assert tokens.validate(b"", b"127.0.0.1|4000", 101.0) is None
    assert tokens.validate(token[:9] + bytes(100), b"127.0.0.1|4000", 101.0) is None


@pytest.mark.interop
@pytest.mark.timeout(30)
async def test_a_rust_client_passes_our_retry_and_connects() -> None:
    ours = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False)
    ours._socket.retry_threshold = 0  # always under pressure: every new client gets a Retry
    rust = await bind_rust([])
    try:
        accepted = asyncio.create_task(ours.accept())
        conn = await asyncio.wait_for(rust.connect(addr_to_rust(ours.addr()), ALPN), 10)
        server_conn = await asyncio.wait_for(accepted, 10)
        assert ours._socket.stats.retries_sent >= 1
        bi = await conn.open_bi()
        await bi.send().write_all(b"after retry")
        await bi.send().finish()
        _send, recv = await server_conn.accept_bi()
        assert await recv.read_to_end(100) == b"after retry"
        conn.close(0, b"")
    finally:
        await rust.close()
        await ours.close()


@pytest.mark.timeout(30)
async def test_an_aioiroh_client_passes_our_retry_and_connects() -> None:
    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False)
    server._socket.retry_threshold = 0
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
    try:
        accepted = asyncio.create_task(server.accept())
        conn = await asyncio.wait_for(client.connect(server.addr(), ALPN), 10)
        server_conn = await asyncio.wait_for(accepted, 10)
        assert server._socket.stats.retries_sent >= 1
        send, _recv = await conn.open_bi()
        await send.write_all(b"after retry")
        await send.finish()
        _send, recv = await server_conn.accept_bi()
        assert await recv.read_to_end(100) == b"after retry"
    finally:
        await client.close()
        await server.close()


def _client_after_first_initial() -> tuple[IrohConnection, bytes]:
    client = IrohConnection(secret_key=SecretKey.generate(), is_client=True, alpns=[ALPN])
    client.connect(("127.0.0.1", 9), 0.0)
    initial = client.datagrams_to_send(0.0)[0][0]
    return client, initial


def _retry_for(client: IrohConnection, *, odcid: bytes, scid: bytes = b"\x07" * 8) -> bytes:
    return build_retry(
        version=1,
        client_scid=client.host_cid,
        retry_scid=scid,
        original_dcid=odcid,
        token=b"token-bytes",
    )


def test_the_client_follows_one_authentic_retry_only() -> None:
    client, _initial = _client_after_first_initial()
    odcid = client.original_destination_cid
    client.receive_datagram(_retry_for(client, odcid=b"\x00" * 8), ("127.0.0.1", 9), 0.01)
    assert client.cids.peer_cid == odcid  # wrong integrity tag: ignored
    client.receive_datagram(_retry_for(client, odcid=odcid), ("127.0.0.1", 9), 0.01)
    assert client.cids.peer_cid == b"\x07" * 8
    again = _retry_for(client, odcid=odcid, scid=b"\x08" * 8)
    client.receive_datagram(again, ("127.0.0.1", 9), 0.02)
    assert client.cids.peer_cid == b"\x07" * 8  # a second Retry is ignored
    resent = client.datagrams_to_send(0.02)
    assert resent, "the ClientHello goes again at once"
    header = pull_quic_header(Buffer(data=resent[0][0]), host_cid_length=8)
    assert header.destination_cid == b"\x07" * 8
    assert header.token == b"token-bytes"
    assert len(resent[0][0]) >= 1200
