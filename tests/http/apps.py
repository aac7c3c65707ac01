"""The Starlette app the HTTP tests serve over iroh (also loaded by ``aioiroh serve-asgi``)."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

BLOCK = 64 * 1024
_BASE = random.Random(7).randbytes(BLOCK)


def block(i: int) -> bytes:
    """Block ``i`` of the test payload: order-sensitive, cheap to make on both sides."""
    return i.to_bytes(8, "big") + _BASE[8:]


def payload_blocks(n: int) -> Iterator[bytes]:
    """``n`` bytes of test payload, in blocks."""
    i = 0
    while n > 0:
        b = block(i)[:n]
        yield b
        n -= len(b)
        i += 1


def payload_sha256(n: int) -> str:
    h = hashlib.sha256()
    for b in payload_blocks(n):
        h.update(b)
    return h.hexdigest()


class Events:
    """What the app saw, for tests in the same process."""

    def __init__(self) -> None:
        self.started = False
        self.stopped = False
        self.gate = asyncio.Event()
        self.waiting = 0
        self.entered = asyncio.Event()
        self.disconnects: list[str] = []
        self.disconnected = asyncio.Event()

    def disconnect(self, what: str) -> None:
        self.disconnects.append(what)
        self.disconnected.set()


async def json_route(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "iroh", "query": dict(request.query_params)})


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"echo": await request.json()})


async def whoami(request: Request) -> JSONResponse:
    iroh = request.scope["extensions"]["iroh"]
    return JSONResponse(
        {
            "remote_id": str(iroh["remote_id"]),
            "client": request.client.host if request.client else None,
            "started": request.state.started,
            "http_version": request.scope["http_version"],
            "host": request.headers.get("host"),
        }
    )


async def upload(request: Request) -> JSONResponse:
    h = hashlib.sha256()
    total = 0
    try:
        async for chunk in request.stream():
            h.update(chunk)
            total += len(chunk)
    except ClientDisconnect:
        request.app.state.events.disconnect("upload")
        raise
    return JSONResponse({"sha256": h.hexdigest(), "len": total})


async def download(request: Request) -> StreamingResponse:
    n = int(request.query_params["n"])
    return StreamingResponse(_iterate(payload_blocks(n)), media_type="application/octet-stream")


async def _iterate(blocks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for b in blocks:
        yield b


class _Forever(StreamingResponse):
    """Streams blocks until the client goes away, then records that it did."""

    def __init__(self, events: Events) -> None:
        super().__init__(self._blocks())
        self._events = events

    async def _blocks(self) -> AsyncIterator[bytes]:
        i = 0
        while True:
            yield block(i)
            i += 1
            await asyncio.sleep(0)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:
            self._events.disconnect("forever")
            raise


async def forever(request: Request) -> StreamingResponse:
    return _Forever(request.app.state.events)


async def boom(request: Request) -> JSONResponse:
    raise RuntimeError("boom")


async def wait(request: Request) -> JSONResponse:
    events: Events = request.app.state.events
    events.waiting += 1
    events.entered.set()
    await events.gate.wait()
    return JSONResponse({"ok": True})


def make_app() -> Starlette:
    events = Events()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.started = True
        yield {"started": True}
        events.stopped = True

    app = Starlette(
        routes=[
            Route("/json", json_route),
            Route("/echo", echo, methods=["POST"]),
            Route("/whoami", whoami),
            Route("/upload", upload, methods=["POST"]),
            Route("/download", download),
            Route("/forever", forever),
            Route("/boom", boom),
            Route("/wait", wait, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.events = events
    return app


app = make_app()
