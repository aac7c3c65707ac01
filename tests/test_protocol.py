"""Router: dispatch by ALPN to handlers, shutdown."""

import asyncio

import pytest

from aioiroh import Connection, Endpoint, Router

pytestmark = pytest.mark.timeout(20)


class Upper:
    def __init__(self) -> None:
        self.shut = False

    async def accept(self, conn: Connection) -> None:
        send, recv = await conn.accept_bi()
        await send.write_all((await recv.read_to_end(1000)).upper())
        await send.finish()
        await conn.closed()

    async def shutdown(self) -> None:
        self.shut = True


async def test_router_dispatches_by_alpn() -> None:
    async def reverse(conn: Connection) -> None:
        send, recv = await conn.accept_bi()
        await send.write_all((await recv.read_to_end(1000))[::-1])
        await send.finish()
        await conn.closed()

    server = await Endpoint.bind(bind_addr="127.0.0.1:0")
    upper = Upper()
    router = Router.builder(server).accept(b"upper/0", upper).accept(b"rev/0", reverse).spawn()
    client = await Endpoint.bind(bind_addr="127.0.0.1:0")
    try:
        for alpn, want in ((b"upper/0", b"HELLO"), (b"rev/0", b"olleh")):
            conn = await client.connect(server.addr(), alpn)
            send, recv = await conn.open_bi()
            await send.write_all(b"hello")
            await send.finish()
            assert await recv.read_to_end(100) == want
            conn.close()
    finally:
        await client.close()
        await router.shutdown()
    assert upper.shut and router.is_shutdown
    assert server.state.value == "closed"
    await asyncio.sleep(0)
