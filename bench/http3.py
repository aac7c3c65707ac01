"""HTTP/3 benchmark: httpx + ASGI over iroh (``iroh+h3``) vs bare aioquic HTTP/3, on loopback.

Both stacks run client and server on one event loop in this process. The aioquic baseline is
the smallest possible H3 server and client (no ASGI, no httpx, TLS with a throwaway
certificate), so it is the ceiling for anything built on aioquic's H3 layer. Reports small
requests/s at concurrency 1 and 50, and MB/s for a large download and upload.

    .venv/bin/python bench/http3.py [--requests 500] [--mb 20]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.asyncio import serve as quic_serve
from aioquic.h3 import events as h3e
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.quic.configuration import QuicConfiguration

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import aioiroh
from aioiroh.http import IrohTransport, serve
from aioiroh.tls.x509 import write_self_signed

CHUNK = 64 * 1024


def _payload_size(path: bytes) -> int:
    _, _, query = path.partition(b"?n=")
    return int(query) if query else 0


# -- the same trivial app on both stacks -------------------------------------------------------


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    received = 0
    while True:
        msg = await receive()
        received += len(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    n = _payload_size(scope["raw_path"] + b"?" + scope["query_string"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    chunk = b"x" * CHUNK
    while n > 0:
        await send({"type": "http.response.body", "body": chunk[:n], "more_body": True})
        n -= min(n, CHUNK)
    await send({"type": "http.response.body", "body": str(received).encode()})


class BareServer(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic)
        self._paths: dict[int, bytes] = {}
        self._received: dict[int, int] = {}

    def quic_event_received(self, event: Any) -> None:
        for ev in self._h3.handle_event(event):
            if isinstance(ev, h3e.HeadersReceived):
                self._paths[ev.stream_id] = dict(ev.headers)[b":path"]
                self._received[ev.stream_id] = 0
            elif isinstance(ev, h3e.DataReceived):
                self._received[ev.stream_id] += len(ev.data)
            if isinstance(ev, h3e.HeadersReceived | h3e.DataReceived) and ev.stream_ended:
                sid = ev.stream_id
                n = _payload_size(self._paths.pop(sid))
                self._h3.send_headers(sid, [(b":status", b"200")])
                self._h3.send_data(sid, b"x" * n, end_stream=False)
                self._h3.send_data(sid, str(self._received.pop(sid)).encode(), end_stream=True)
        self.transmit()


class BareClient(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic)
        self._waiting: dict[int, tuple[asyncio.Future[int], list[int]]] = {}

    async def request(self, path: bytes, body: bytes = b"") -> int:
        sid = self._quic.get_next_available_stream_id()
        headers = [(b":method", b"POST" if body else b"GET"), (b":scheme", b"https")]
        headers += [(b":authority", b"localhost"), (b":path", path)]
        self._h3.send_headers(sid, headers, end_stream=not body)
        if body:
            self._h3.send_data(sid, body, end_stream=True)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[sid] = (fut, [0])
        self.transmit()
        return await fut

    def quic_event_received(self, event: Any) -> None:
        for ev in self._h3.handle_event(event):
            if isinstance(ev, h3e.DataReceived):
                self._waiting[ev.stream_id][1][0] += len(ev.data)
            if isinstance(ev, h3e.HeadersReceived | h3e.DataReceived) and ev.stream_ended:
                fut, count = self._waiting.pop(ev.stream_id)
                fut.set_result(count[0])


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    return write_self_signed(tmp, ["localhost"])


# -- measuring ---------------------------------------------------------------------------------

Request = Callable[[bytes, bytes], Awaitable[int]]


async def measure(name: str, request: Request, n_requests: int, mb: int) -> None:
    for concurrency in (1, 50):
        sem = asyncio.Semaphore(concurrency)

        async def one(sem: asyncio.Semaphore = sem) -> None:
            async with sem:
                await request(b"/small", b"")

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n_requests)))
        rate = n_requests / (time.perf_counter() - start)
        print(f"{name:6} small requests, concurrency {concurrency:3}: {rate:8.0f} req/s")
    size = mb * 1024 * 1024
    start = time.perf_counter()
    got = await request(f"/download?n={size}".encode(), b"")
    assert got >= size
    print(f"{name:6} download {mb} MB: {mb / (time.perf_counter() - start):8.1f} MB/s")
    start = time.perf_counter()
    await request(b"/upload", b"u" * size)
    print(f"{name:6} upload   {mb} MB: {mb / (time.perf_counter() - start):8.1f} MB/s")


async def bench_iroh(n_requests: int, mb: int) -> None:
    server_ep = await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0")
    client_ep = await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0")
    task = asyncio.create_task(serve(asgi_app, server_ep, lifespan="off"))
    base = f"iroh://{server_ep.id.to_base32()}"
    transport = IrohTransport(client_ep, addrs=[server_ep.addr()])
    async with httpx.AsyncClient(transport=transport, timeout=120) as client:

        async def request(path: bytes, body: bytes) -> int:
            url = base + path.decode()
            if body:
                r = await client.post(url, content=body)
            else:
                r = await client.get(url)
            return len(r.content)

        await measure("iroh", request, n_requests, mb)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client_ep.close()
    await server_ep.close()


async def bench_bare(n_requests: int, mb: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _self_signed(Path(tmp))
        server_cfg = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        server_cfg.load_cert_chain(cert, key)
        server = await quic_serve(
            "127.0.0.1", 0, configuration=server_cfg, create_protocol=BareServer
        )
        assert server._transport is not None
        port = server._transport.get_extra_info("sockname")[1]
        client_cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
        client_cfg.verify_mode = ssl.CERT_NONE
        async with connect(
            "127.0.0.1", port, configuration=client_cfg, create_protocol=BareClient
        ) as client:
            assert isinstance(client, BareClient)
            await measure("aioquic", client.request, n_requests, mb)
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--mb", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(bench_iroh(args.requests, args.mb))
    asyncio.run(bench_bare(args.requests, args.mb))


if __name__ == "__main__":
    main()
