"""A user's program, type-checked with ``mypy --strict`` in ``make lint``: the public API is typed.

Run it: ``python examples/typed_client.py`` (two local endpoints, no relay, nothing leaves the
machine).
"""

from __future__ import annotations

import asyncio

import aioiroh

ALPN = b"example/typed/0"


async def echo_once(endpoint: aioiroh.Endpoint) -> int:
    conn: aioiroh.Connection = await endpoint.accept()
    send, recv = await conn.accept_bi()
    data: bytes = await recv.read_to_end(1 << 16)
    await send.write_all(data)
    await send.finish()
    await conn.closed()
    return len(data)


async def main() -> None:
    server = await aioiroh.Endpoint.bind(alpns=[ALPN])
    client = await aioiroh.Endpoint.bind()
    ticket: aioiroh.EndpointTicket = server.ticket()
    task = asyncio.create_task(echo_once(server))
    try:
        conn = await client.connect(ticket, ALPN)
        send, recv = await conn.open_bi()
        await send.write_all(b"typed")
        await send.finish()
        reply = await recv.read_to_end(1024)
        rtt: float | None = conn.rtt
        print(reply, conn.remote_id, rtt)
        conn.close(0, b"done")
        echoed = await task
        assert echoed == len(reply)
    except aioiroh.IrohError as exc:
        raise SystemExit(f"failed: {exc}") from exc
    finally:
        await client.close()
        await server.close()


if __name__ == "__main__":
    asyncio.run(main())
