"""``make demo``: a local iroh network on this machine, no internet.

Starts our relay server on 127.0.0.1, binds two aioiroh endpoints and shows them connecting
directly (by ticket) and through the relay (relay-only address), moving data both ways, and,
when PyPI ``iroh`` is installed, a Rust iroh endpoint connecting to ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time

from rich.console import Console

from ..base.endpoint_addr import EndpointAddr
from ..endpoint.connection import Connection
from ..endpoint.endpoint import Endpoint
from ..endpoint.relay_mode import RelayMode
from ..errors import IrohError
from ..presets import Minimal
from ..relay_server import RelayServer, ServerConfig

ALPN = b"aioiroh/demo-echo/0"
# Explicitly local: the demo's relay on 127.0.0.1 and nothing on the internet.
LOCAL = Minimal
console = Console(highlight=False)


async def _echo(conn: Connection) -> None:
    with contextlib.suppress(IrohError):
        while True:
            send, recv = await conn.accept_bi()
            await send.write_all(await recv.read_to_end(64 * 1024 * 1024))
            await send.finish()


async def _serve(ep: Endpoint) -> None:
    tasks: set[asyncio.Task[None]] = set()
    try:
        while True:
            conn = await ep.accept()
            task = asyncio.create_task(_echo(conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()


def _path(conn: Connection) -> str:
    for p in conn.paths():
        if p.is_selected:
            return f"{'relay' if p.is_relay else 'direct'} {p.remote_addr}"
    return "?"


async def _round_trip(conn: Connection, size: int) -> tuple[float, bool]:
    data = os.urandom(size)
    start = time.perf_counter()
    send, recv = await conn.open_bi()
    writer = asyncio.create_task(_write(send, data))
    back = await recv.read_to_end(size + 1)
    await writer
    elapsed = time.perf_counter() - start
    ok = hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
    return 2 * size / elapsed / 1e6, ok


async def _write(send, data: bytes) -> None:  # type: ignore[no-untyped-def]
    await send.write_all(data)
    await send.finish()


async def _wait_direct(conn: Connection, start: float, timeout: float) -> float | None:
    """Seconds from ``start`` until a direct path is selected, or None."""

    async def watch() -> float:
        async for event in conn.path_events():
            if event.kind == "selected" and any(p.is_selected and p.is_ip for p in conn.paths()):
                return time.perf_counter() - start
        raise IrohError("connection closed")

    try:
        return await asyncio.wait_for(watch(), timeout)
    except (TimeoutError, IrohError):
        return None


async def _rust_part(ep: Endpoint, relay_url: str) -> None:
    try:
        import iroh
    except ImportError:
        console.print("[dim]PyPI iroh not installed: skipping the Rust peer[/dim]")
        return
    builder = iroh.EndpointBuilder()
    builder.apply_minimal()
    builder.relay_mode(iroh.RelayMode.custom_from_urls([relay_url]))
    builder.bind_addr("127.0.0.1:0")
    builder.alpns([])
    rust = await builder.bind()
    try:
        await asyncio.wait_for(rust.online(), 10)
        addr = ep.addr()
        ips = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in addr.direct_addresses]
        target = iroh.EndpointAddr(
            iroh.EndpointId.from_string(str(addr.id)), str(addr.relay_url), ips
        )
        start = time.perf_counter()
        conn = await rust.connect(target, ALPN)
        setup = (time.perf_counter() - start) * 1000
        bi = await conn.open_bi()
        await bi.send().write_all(b"hello from Rust iroh")
        await bi.send().finish()
        reply = bytes(await bi.recv().read_to_end(100))
        console.print(
            f"[bold]4.[/bold] Rust iroh {str(rust.id())[:10]} -> aioiroh: "
            f"{reply.decode()!r} echoed, connected in {setup:.1f} ms"
        )
        conn.close(0, b"bye")
    finally:
        await rust.close()


async def _page(scope: dict, receive: object, send: object) -> None:
    """A tiny ASGI app: greets the caller by its EndpointId (taken from the iroh scope)."""
    if scope["type"] != "http":
        return
    caller = scope["extensions"]["iroh"]["remote_id"]
    body = (
        f"<html><body><h1>Hello over iroh</h1><p>you are {caller.fmt_short()}</p></body></html>"
    ).encode()
    await send(  # type: ignore[operator]
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]}
    )
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


async def _http_part(mode: RelayMode, client: Endpoint) -> None:
    import httpx

    from ..http import IrohTransport, serve

    web = await Endpoint.bind(bind_addr="127.0.0.1:0", preset=LOCAL, relay_mode=mode)
    server = asyncio.create_task(serve(_page, web, lifespan="off"))
    try:
        await asyncio.wait_for(web.online(), 10)
        transport = IrohTransport(client, addrs=[web.addr()])
        async with httpx.AsyncClient(transport=transport) as http:
            url = f"iroh://{web.id.to_base32()}/"
            resp = await http.get(url)
        console.print(
            f"[bold]5.[/bold] HTTP/3 over iroh: GET {url[:24]}… -> {resp.status_code} "
            f"{resp.headers['content-type']}: {resp.text[:60]}…"
        )
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
        await web.close()


async def main() -> None:
    relay = RelayServer(ServerConfig(host="127.0.0.1", port=0))
    await relay.start()
    url = relay.http_url
    console.print(f"[bold]aioiroh demo[/bold]: local relay at {url}")
    mode = RelayMode.custom([url])
    server = await Endpoint.bind(
        alpns=[ALPN], bind_addr="127.0.0.1:0", preset=LOCAL, relay_mode=mode
    )
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", preset=LOCAL, relay_mode=mode)
    serve = asyncio.create_task(_serve(server))
    try:
        await asyncio.wait_for(asyncio.gather(server.online(), client.online()), 10)
        console.print(f"server endpoint {server.id}")
        console.print(f"  ticket {server.ticket()}")
        console.print(f"client endpoint {client.id}")

        start = time.perf_counter()
        conn = await client.connect(server.ticket(), ALPN)
        setup = (time.perf_counter() - start) * 1000
        rate, ok = await _round_trip(conn, 20 * 1024 * 1024)
        console.print(
            f"[bold]1.[/bold] by ticket: connected in {setup:.1f} ms over {_path(conn)}, "
            f"rtt {(conn.rtt or 0) * 1000:.2f} ms; 20 MiB echoed at {rate:.1f} MB/s, "
            f"sha256 {'ok' if ok else 'MISMATCH'}"
        )
        conn.close(0, b"done")

        relay_only = EndpointAddr(server.id, server.home_relay, [])
        start = time.perf_counter()
        conn = await client.connect(relay_only, ALPN)
        first = _path(conn)
        upgraded = await _wait_direct(conn, start, 5.0)
        rate, ok = await _round_trip(conn, 2 * 1024 * 1024)
        how = f"upgraded to {_path(conn)} after {upgraded * 1000:.0f} ms" if upgraded else "stayed"
        console.print(
            f"[bold]2.[/bold] relay-only address: started over {first}, {how} "
            f"(hole punching in QUIC); 2 MiB echoed at {rate:.1f} MB/s, "
            f"sha256 {'ok' if ok else 'MISMATCH'}"
        )
        conn.close(0, b"done")
        forwarded = relay.metrics.datagrams_forwarded if relay.metrics is not None else 0
        console.print(f"[bold]3.[/bold] the relay forwarded {forwarded} datagrams")
        await _rust_part(server, url)
        await _http_part(mode, client)
        console.print("[green]demo finished[/green]")
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)
        await client.close()
        await server.close()
        await relay.stop()


if __name__ == "__main__":
    asyncio.run(main())
