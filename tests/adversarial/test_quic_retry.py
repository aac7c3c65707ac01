"""Stateless Retry: tokens bind address, original CID and time; a Rust iroh client (PyPI iroh
oracle) answers our Retry and connects, so a server under pressure still admits real clients."""

from __future__ import annotations

import asyncio

import pytest

from aioiroh.endpoint import Endpoint
from aioiroh.quic.retry import RETRY_TOKEN_LIFETIME, RetryTokens
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
