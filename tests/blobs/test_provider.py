"""aioiroh getter fetches from the aioiroh provider over real loopback QUIC."""

from __future__ import annotations

import os

import pytest

from aioiroh import Endpoint, Router
from aioiroh.blobs.bao import GROUP_LEN
from aioiroh.blobs.provider import ALPN, BlobsProtocol, MemStore, get_blob

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("size", [0, GROUP_LEN, 3 * GROUP_LEN + 5])
async def test_get_blob_from_our_provider_is_verified(size: int) -> None:
    store = MemStore()
    data = os.urandom(size)
    h = store.add_bytes(data)
    server = await Endpoint.bind(bind_addr="127.0.0.1:0")
    router = Router.builder(server).accept(ALPN, BlobsProtocol(store)).spawn()
    client = await Endpoint.bind(bind_addr="127.0.0.1:0")
    try:
        conn = await client.connect(server.addr(), ALPN)
        seen: list[int] = []
        assert await get_blob(conn, h, progress=seen.append) == data
        assert seen[-1] == size
        # A range: group 1 only.
        if size > 2 * GROUP_LEN:
            got = await get_blob(conn, h, ((16, 17),))
            assert got == data[GROUP_LEN : 2 * GROUP_LEN]
        conn.close()
    finally:
        await client.close()
        await router.shutdown()
