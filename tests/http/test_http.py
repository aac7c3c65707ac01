"""HTTP/3 over iroh: a Starlette app served with ``serve()`` and called through httpx."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aioquic.h3 import events as h3e
from aioquic.h3.connection import H3Connection

import aioiroh
from aioiroh.base.ticket import EndpointTicket
from aioiroh.http import ALPN_H3, AsgiServer, IrohTransport, LifespanFailed, serve
from aioiroh.quic.aioquic_connection import QuicSettings

from .apps import BLOCK, Events, make_app, payload_blocks, payload_sha256

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "aioiroh.cli.main"]


@dataclass
class Served:
    endpoint: aioiroh.Endpoint
    server: AsgiServer
    events: Events
    url: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    app = make_app()
    ep = await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0")
    ready: asyncio.Future[AsgiServer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(app, ep, started=ready.set_result))
    server = await asyncio.wait_for(ready, 10)
    try:
        yield Served(ep, server, app.state.events, f"iroh://{ep.id.to_base32()}")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ep.close()


@pytest.fixture
async def client_ep() -> AsyncIterator[aioiroh.Endpoint]:
    ep = await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0")
    try:
        yield ep
    finally:
        await ep.close()


@pytest.fixture
async def client(served: Served, client_ep: aioiroh.Endpoint) -> AsyncIterator[httpx.AsyncClient]:
    transport = IrohTransport(client_ep, addrs=[served.endpoint.addr()])
    async with httpx.AsyncClient(transport=transport, timeout=30) as c:
        yield c


async def test_json_routes(served: Served, client: httpx.AsyncClient) -> None:
    r = await client.get(f"{served.url}/json", params={"a": "b c"})
    assert r.status_code == 200
    assert r.http_version == "HTTP/3"
    assert r.json() == {"hello": "iroh", "query": {"a": "b c"}}

    r = await client.post(f"{served.url}/echo", json={"x": [1, 2, 3]})
    assert r.json() == {"echo": {"x": [1, 2, 3]}}

    # The 64-character hex form of the id works too, over the same connection.
    r = await client.get(f"iroh://{served.endpoint.id}/json")
    assert r.status_code == 200
    transport = client._transport
    assert isinstance(transport, IrohTransport)
    assert transport.connection_count == 1
    assert served.server.connection_count == 1

    assert (await client.get(f"{served.url}/missing")).status_code == 404
    assert (await client.post(f"{served.url}/json")).status_code == 405


async def test_scope_carries_caller_id_and_lifespan_state(
    served: Served, client: httpx.AsyncClient, client_ep: aioiroh.Endpoint
) -> None:
    r = await client.get(f"{served.url}/whoami")
    body = r.json()
    assert body["remote_id"] == str(client_ep.id)
    assert body["client"] == str(client_ep.id)
    assert body["started"] is True
    assert body["http_version"] == "3"
    assert body["host"] == served.endpoint.id.to_base32()
    assert served.events.started


async def test_app_error_is_500_and_connection_survives(
    served: Served, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="aioiroh.http.asgi"):
        r = await client.get(f"{served.url}/boom")
    assert r.status_code == 500
    assert (await client.get(f"{served.url}/json")).status_code == 200


@pytest.mark.timeout(120)
async def test_50mb_streamed_upload_and_download(served: Served, client: httpx.AsyncClient) -> None:
    size = 50 * 1024 * 1024

    async def body() -> AsyncIterator[bytes]:
        for b in payload_blocks(size):
            yield b

    r = await client.post(f"{served.url}/upload", content=body())
    assert r.status_code == 200
    assert r.json() == {"sha256": payload_sha256(size), "len": size}

    h = hashlib.sha256()
    total = 0
    async with client.stream("GET", f"{served.url}/download", params={"n": size}) as r:
        assert r.status_code == 200
        async for chunk in r.aiter_raw():
            h.update(chunk)
            total += len(chunk)
    assert total == size
    assert h.hexdigest() == payload_sha256(size)


async def test_100_concurrent_requests_share_one_connection(
    served: Served, client: httpx.AsyncClient
) -> None:
    responses = await asyncio.gather(
        *(client.get(f"{served.url}/json", params={"i": str(i)}) for i in range(100))
    )
    assert [r.json()["query"]["i"] for r in responses] == [str(i) for i in range(100)]
    assert served.server.connection_count == 1
    assert served.server.requests_served >= 100


async def test_concurrency_limit_answers_503(client_ep: aioiroh.Endpoint) -> None:
    app = make_app()
    events: Events = app.state.events
    ep = await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0")
    task = asyncio.create_task(serve(app, ep, max_concurrent_requests=2))
    transport = IrohTransport(client_ep, addrs=[ep.addr()])
    try:
        async with httpx.AsyncClient(transport=transport, timeout=20) as client:
            url = f"iroh://{ep.id.to_base32()}"
            waiting = [asyncio.create_task(client.get(f"{url}/wait")) for _ in range(2)]
            while events.waiting < 2:
                events.entered.clear()
                await events.entered.wait()
            r = await client.get(f"{url}/json")
            assert r.status_code == 503
            events.gate.set()
            assert [(await w).status_code for w in waiting] == [200, 200]
            assert (await client.get(f"{url}/json")).status_code == 200
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ep.close()


async def test_lifespan_runs_and_failure_stops_serve() -> None:
    app = make_app()
    events: Events = app.state.events
    ep = await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0")
    ready = asyncio.Event()
    task = asyncio.create_task(serve(app, ep, started=lambda _: ready.set()))
    await ready.wait()
    assert events.started and not events.stopped
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert events.stopped
    await ep.close()

    async def failing(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    async with await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0") as ep2:
        with pytest.raises(LifespanFailed, match="no database"):
            await serve(failing, ep2)

        async def no_lifespan(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
            raise RuntimeError("only http")

        with pytest.raises(LifespanFailed):
            await serve(no_lifespan, ep2, lifespan="on")


async def test_timeouts_and_failures_map_to_httpx(
    served: Served, client: httpx.AsyncClient, client_ep: aioiroh.Endpoint
) -> None:
    # A read timeout aborts the request; the connection stays usable.
    with pytest.raises(httpx.ReadTimeout):
        await client.get(f"{served.url}/wait", timeout=httpx.Timeout(5, read=0.3))
    served.events.gate.set()
    assert (await client.get(f"{served.url}/json")).status_code == 200

    # Not an endpoint id.
    with pytest.raises(httpx.ConnectError):
        await client.get("iroh://not-a-key/json")
    with pytest.raises(httpx.UnsupportedProtocol):
        await client.get(f"ftp://{served.endpoint.id}/json")

    # An id with no known address and no lookup.
    stranger = aioiroh.SecretKey.generate().public()
    with pytest.raises(httpx.ConnectError):
        await client.get(f"iroh://{stranger}/json")

    # An address where nobody answers: a connect timeout.
    silent = await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0")
    addr = silent.addr()
    await silent.close()
    transport = IrohTransport(client_ep, addrs=[addr])
    async with httpx.AsyncClient(transport=transport) as c2:
        with pytest.raises(httpx.ConnectTimeout):
            await c2.get(f"iroh://{addr.id}/json", timeout=httpx.Timeout(5, connect=0.5))

    # A peer that does not speak iroh+h3.
    async with await aioiroh.Endpoint.bind(alpns=[b"other"], bind_addr="127.0.0.1:0") as other:
        transport = IrohTransport(client_ep, addrs=[other.addr()])
        async with httpx.AsyncClient(transport=transport) as c3:
            with pytest.raises(httpx.ConnectError):
                await c3.get(f"iroh://{other.id}/json")


async def test_client_closing_response_early_stops_server(
    served: Served, client: httpx.AsyncClient
) -> None:
    async with client.stream("GET", f"{served.url}/forever") as r:
        got = 0
        async for chunk in r.aiter_raw():
            got += len(chunk)
            if got > 4 * BLOCK:
                break
    await asyncio.wait_for(served.events.disconnected.wait(), 10)
    assert served.events.disconnects == ["forever"]
    await asyncio.wait_for(served.server.wait_idle(), 10)
    assert (await client.get(f"{served.url}/json")).status_code == 200


async def test_server_closing_connection_mid_request(
    served: Served, client: httpx.AsyncClient
) -> None:
    async def drop_when_entered() -> None:
        await served.events.entered.wait()
        for session in list(served.server._sessions):
            session.close(0x100, b"bye")

    dropper = asyncio.create_task(drop_when_entered())
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(f"{served.url}/wait")
    await dropper
    # The transport dials a fresh connection for the next request.
    served.events.gate.set()
    assert (await client.get(f"{served.url}/json")).status_code == 200


# -- peer disappearance (real processes, killed) -------------------------------------------


async def _start_cli_server(*args: str) -> tuple[asyncio.subprocess.Process, dict]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "serve-asgi",
        "tests.http.apps:app",
        "--bind",
        "127.0.0.1:0",
        "--json",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line, "serve-asgi exited before serving"
    return proc, json.loads(line)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


@pytest.mark.timeout(60)
async def test_cli_serve_asgi() -> None:
    proc, info = await _start_cli_server()
    try:
        assert info["event"] == "serving"
        ticket = EndpointTicket.parse(info["ticket"])
        async with await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0") as ep:
            transport = IrohTransport(ep, addrs=[ticket.addr])
            async with httpx.AsyncClient(transport=transport, timeout=20) as client:
                r = await client.get(f"iroh://{info['base32']}/whoami")
                assert r.json()["remote_id"] == str(ep.id)
                assert r.json()["started"] is True
        proc.terminate()  # SIGTERM: lifespan shutdown runs, exit code 0
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        await _stop(proc)


@pytest.mark.timeout(60)
async def test_server_process_killed_mid_response() -> None:
    proc, info = await _start_cli_server()
    try:
        ticket = EndpointTicket.parse(info["ticket"])
        settings = QuicSettings(idle_timeout=2.0, keep_alive_interval=0.5)
        async with await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0", settings=settings) as ep:
            transport = IrohTransport(ep, addrs=[ticket.addr])
            async with httpx.AsyncClient(transport=transport, timeout=None) as client:
                with pytest.raises(httpx.ReadError):
                    async with client.stream("GET", f"iroh://{info['base32']}/forever") as r:
                        got = 0
                        async for chunk in r.aiter_raw():
                            got += len(chunk)
                            if got > 8 * BLOCK and proc.returncode is None:
                                proc.kill()
                                await proc.wait()
                assert transport.connection_count == 0
    finally:
        await _stop(proc)


_UPLOADER = """
import asyncio, sys, httpx, aioiroh
from aioiroh.base.ticket import EndpointTicket
from aioiroh.http import IrohTransport

async def main(ticket):
    t = EndpointTicket.parse(ticket)
    ep = await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0")
    async def body():
        while True:
            yield b"x" * 65536
            print("sent", flush=True)
            await asyncio.sleep(0.01)  # pacing, not waiting: keeps the upload mid-flight
    async with httpx.AsyncClient(transport=IrohTransport(ep, addrs=[t.addr])) as c:
        await c.post(f"iroh://{t.addr.id}/upload", content=body(), timeout=None)

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.timeout(60)
async def test_client_process_killed_mid_upload() -> None:
    app = make_app()
    events: Events = app.state.events
    settings = QuicSettings(idle_timeout=2.0, keep_alive_interval=0.5)
    ep = await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0", settings=settings)
    ready: asyncio.Future[AsgiServer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(app, ep, started=ready.set_result))
    server = await ready
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _UPLOADER,
        str(ep.ticket()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        for _ in range(5):
            assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"sent\n"
        proc.kill()
        await proc.wait()
        await asyncio.wait_for(events.disconnected.wait(), 15)
        assert events.disconnects == ["upload"]
        await asyncio.wait_for(server.wait_idle(connections=True), 15)
    finally:
        await _stop(proc)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ep.close()


# -- aioquic's own HTTP/3 client over an aioiroh connection --------------------------------


async def test_aioquic_h3_client_against_our_server(
    served: Served, client_ep: aioiroh.Endpoint
) -> None:
    conn = await client_ep.connect(served.endpoint.addr(), ALPN_H3)
    done = asyncio.Event()
    got: list[h3e.H3Event] = []
    h3: H3Connection

    def on_event(event: object) -> None:
        for ev in h3.handle_event(event):  # type: ignore[arg-type]
            got.append(ev)
            if isinstance(ev, h3e.DataReceived | h3e.HeadersReceived) and ev.stream_ended:
                done.set()
        conn.transmit()

    quic = conn.attach_protocol(on_event)
    h3 = H3Connection(quic)  # type: ignore[arg-type]
    sid = quic.get_next_available_stream_id()
    body = json.dumps({"from": "aioquic"}).encode()
    h3.send_headers(
        sid,
        [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", served.endpoint.id.to_base32().encode()),
            (b":path", b"/echo"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    )
    h3.send_data(sid, body, end_stream=True)
    conn.transmit()
    await asyncio.wait_for(done.wait(), 10)
    headers = next(e for e in got if isinstance(e, h3e.HeadersReceived)).headers
    assert (b":status", b"200") in headers
    data = b"".join(e.data for e in got if isinstance(e, h3e.DataReceived))
    assert json.loads(data) == {"echo": {"from": "aioquic"}}
    conn.close(0, b"")


# -- bad input -----------------------------------------------------------------------------


async def test_body_sent_far_ahead_of_the_app_is_refused(client_ep: aioiroh.Endpoint) -> None:
    app = make_app()
    events: Events = app.state.events
    ep = await aioiroh.Endpoint.bind(bind_addr="127.0.0.1:0")
    task = asyncio.create_task(serve(app, ep, max_request_buffer=256 * 1024))
    transport = IrohTransport(client_ep, addrs=[ep.addr()])
    try:
        async with httpx.AsyncClient(transport=transport, timeout=20) as client:
            url = f"iroh://{ep.id.to_base32()}"
            # /wait never reads its body: past the bound the server aborts the request.
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(f"{url}/wait", content=b"z" * (4 * 1024 * 1024))
            events.gate.set()
            assert (await client.get(f"{url}/json")).status_code == 200
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ep.close()


@pytest.mark.parametrize(
    "garbage",
    [b"\xff" * 64, b"\x01\x40\xff" + b"\x00" * 10, b"\x00\x05abc", b"\x21\x00"],
    ids=["varint-junk", "headers-truncated-qpack", "data-before-headers", "reserved-frame"],
)
async def test_garbage_on_a_request_stream_closes_only_that_connection(
    served: Served, client: httpx.AsyncClient, client_ep: aioiroh.Endpoint, garbage: bytes
) -> None:
    conn = await client_ep.connect(served.endpoint.addr(), ALPN_H3)
    send, _recv = await conn.open_bi()
    await send.write_all(garbage)
    await send.finish()
    # Either the server closes this connection with an H3 error, or it ignores the stream; in
    # both cases it keeps serving others.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            await conn.closed()
    conn.close(0, b"")
    assert (await client.get(f"{served.url}/json")).status_code == 200
