"""``aioiroh forward listen|connect``: TCP port forwarding over iroh (dumbpipe's ``-tcp`` modes).

* ``forward listen --host HOST:PORT`` exposes a local TCP service: every bi stream that arrives
  (after dumbpipe's ``hello``) becomes a new TCP connection to HOST:PORT.
* ``forward connect TICKET --addr ADDR:PORT`` listens on a local TCP port: every TCP client
  becomes a new bi stream to the remote. All streams share one iroh connection (reopened if it
  drops). ``--connection-per-tcp`` opens one iroh connection per TCP client instead, which a
  Rust ``dumbpipe listen-tcp`` needs (it serves a single stream per connection).

Both directions half-close: EOF on one side finishes the stream, and the stream's FIN shuts
down the TCP write side, so request/response protocols that wait for EOF work.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable
from pathlib import Path
from typing import Final

import click

from ..base.endpoint_addr import parse_socket_addr
from ..base.ticket import EndpointTicket
from ..endpoint.connection import Connection
from ..endpoint.endpoint import AcceptFilter, Endpoint
from ..endpoint.streams import RecvStream, SendStream
from ..errors import IrohError
from ._common import (
    accept_filter_from,
    allow_options,
    hard_nat_option,
    json_option,
    key_option,
    relay_option,
)
from .pipe import (
    ALPN,
    CANCEL_CODE,
    CHUNK,
    HANDSHAKE,
    bind_endpoint,
    bind_option,
    event,
    parse_ticket,
    run_main,
    splice,
)

# Concurrent forwarded TCP connections per process; beyond this new ones are refused at once.
MAX_FORWARDS: Final = 1024
# Concurrent iroh connections served by ``forward listen``.
MAX_CONNECTIONS: Final = 256
# A stream that does not send dumbpipe's hello within this time is dropped.
HANDSHAKE_TIMEOUT: Final = 10.0
TCP_CONNECT_TIMEOUT: Final = 10.0


def _host_port(text: str) -> tuple[str, int]:
    try:
        ip, port = parse_socket_addr(text)
        return str(ip), port
    except (ValueError, IrohError):
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
            raise click.BadParameter(f"expected HOST:PORT, got {text!r}") from None
        return host.strip("[]"), int(port_text)


class _Forwarder:
    """Splices one TCP connection with one QUIC bi stream; counts what it moved."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.tasks: set[asyncio.Task[None]] = set()
        self.refused = 0

    def full(self) -> bool:
        return len(self.tasks) >= MAX_FORWARDS

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: Connection,
        send: SendStream,
        recv: RecvStream,
        label: str,
    ) -> None:
        async def read() -> bytes:
            return await reader.read(CHUNK)

        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        async def eof() -> None:
            if writer.can_write_eof():
                with contextlib.suppress(OSError):
                    writer.write_eof()

        try:
            sent, received = await splice(read, write, conn, send, recv, at_eof=eof)
            event(
                self.as_json,
                {"event": "closed", "peer": label, "bytes_sent": sent, "bytes_received": received},
                None,
            )
        except (IrohError, OSError) as exc:
            event(
                self.as_json,
                {"event": "forward_error", "peer": label, "error": str(exc)},
                f"{label}: {exc}",
            )
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# -- forward listen -----------------------------------------------------------------------


async def _serve_stream(
    fw: _Forwarder, conn: Connection, send: SendStream, recv: RecvStream, target: tuple[str, int]
) -> None:
    try:
        hello = await asyncio.wait_for(recv.read_exact(len(HANDSHAKE)), HANDSHAKE_TIMEOUT)
        if hello != HANDSHAKE:
            raise IrohError("invalid handshake")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(*target), TCP_CONNECT_TIMEOUT
        )
    except (IrohError, OSError, TimeoutError) as exc:
        send.reset(CANCEL_CODE)
        recv.stop(CANCEL_CODE)
        event(
            fw.as_json,
            {"event": "forward_error", "peer": str(conn.remote_id), "error": str(exc) or "timeout"},
            f"{conn.remote_id.fmt_short()}: {exc or 'timeout'}",
        )
        return
    await fw.run(reader, writer, conn, send, recv, conn.remote_id.fmt_short())


async def _serve_connection(fw: _Forwarder, conn: Connection, target: tuple[str, int]) -> None:
    while True:
        try:
            send, recv = await conn.accept_bi()
        except IrohError:
            return
        if fw.full():
            fw.refused += 1
            send.reset(CANCEL_CODE)
            recv.stop(CANCEL_CODE)
            continue
        fw.spawn(_serve_stream(fw, conn, send, recv, target))


async def _listen(
    key_file: Path | None,
    host: str,
    bind: str,
    relays: tuple[str, ...],
    as_json: bool,
    *,
    hard_nat: bool,
    accept_filter: AcceptFilter | None = None,
) -> int:
    target = _host_port(host)
    ep = await bind_endpoint(key_file, [ALPN], bind, relays, hard_nat=hard_nat)
    ep.set_accept_filter(accept_filter)
    fw = _Forwarder(as_json)
    conns: set[asyncio.Task[None]] = set()
    try:
        ticket = str(ep.ticket())
        event(
            as_json,
            {
                "event": "listening",
                "endpoint_id": str(ep.id),
                "ticket": ticket,
                "forward_to": host,
                "command": f"aioiroh forward connect --addr 127.0.0.1:8080 {ticket}",
            },
            f"Forwarding incoming streams to {host}. To connect, use e.g.:\n"
            f"aioiroh forward connect --addr 127.0.0.1:8080 {ticket}\n"
            f"(or: dumbpipe connect-tcp --addr 127.0.0.1:8080 {ticket})",
        )
        while True:
            conn = await ep.accept()
            if len(conns) >= MAX_CONNECTIONS:
                conn.close(1, b"too many connections")
                continue
            event(
                as_json,
                {"event": "accepted", "remote_id": str(conn.remote_id)},
                f"connection from {conn.remote_id.fmt_short()}",
            )
            task = asyncio.create_task(_serve_connection(fw, conn, target))
            conns.add(task)
            task.add_done_callback(conns.discard)
    finally:
        for task in conns:
            task.cancel()
        await asyncio.gather(*conns, return_exceptions=True)
        await fw.close()
        await ep.close()


# -- forward connect ----------------------------------------------------------------------


class _Dialer:
    """Hands out the shared connection, reconnecting once it has closed."""

    def __init__(self, ep: Endpoint, ticket: EndpointTicket, timeout: float, per_tcp: bool) -> None:
        self._ep = ep
        self._ticket = ticket
        self._timeout = timeout
        self._per_tcp = per_tcp
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Connection:
        if self._per_tcp:
            return await self._ep.connect(self._ticket, ALPN, timeout=self._timeout)
        async with self._lock:
            if self._conn is None or self._conn.close_reason() is not None:
                self._conn = await self._ep.connect(self._ticket, ALPN, timeout=self._timeout)
            return self._conn


async def _connect(
    target: str,
    key_file: Path | None,
    addr: str,
    bind: str,
    relays: tuple[str, ...],
    per_tcp: bool,
    timeout: float,
    as_json: bool,
    *,
    hard_nat: bool,
) -> int:
    ticket = parse_ticket(target)
    host, port = _host_port(addr)
    ep = await bind_endpoint(key_file, [], bind, relays, hard_nat=hard_nat)
    fw = _Forwarder(as_json)
    dialer = _Dialer(ep, ticket, timeout, per_tcp)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        label = f"{peer[0]}:{peer[1]}" if peer else "tcp"
        try:
            conn = await dialer.get()
            send, recv = await conn.open_bi()
            await send.write_all(HANDSHAKE)
        except IrohError as exc:
            event(as_json, {"event": "forward_error", "peer": label, "error": str(exc)}, str(exc))
            writer.close()
            return
        try:
            await fw.run(reader, writer, conn, send, recv, label)
        finally:
            if per_tcp:
                conn.close(0, b"done")

    def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if fw.full():
            fw.refused += 1
            writer.close()
            return
        fw.spawn(handle(reader, writer))

    try:
        try:
            server = await asyncio.start_server(on_client, host, port, limit=CHUNK)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {addr}: {exc}") from None
        async with server:
            sock = server.sockets[0]
            local = sock.getsockname()
            shown = (
                f"[{local[0]}]:{local[1]}"
                if sock.family == socket.AF_INET6
                else f"{local[0]}:{local[1]}"
            )
            event(
                as_json,
                {"event": "listening", "tcp_addr": shown, "remote_id": str(ticket.addr.id)},
                f"Forwarding TCP connections on {shown} to {ticket.addr.id.fmt_short()}",
            )
            await server.serve_forever()
    finally:
        await fw.close()
        await ep.close()
    return 0


@click.group("forward")
def forward_group() -> None:
    """Forward TCP connections over iroh (dumbpipe listen-tcp / connect-tcp)."""


@forward_group.command("listen")
@click.option("--host", required=True, metavar="HOST:PORT", help="Local TCP service to expose.")
@key_option
@bind_option
@relay_option
@hard_nat_option
@allow_options
@json_option
def listen_command(
    host: str,
    secret_key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    hard_nat: bool,
    allow: tuple[str, ...],
    allow_file: Path | None,
    as_json: bool,
) -> None:
    """Expose the TCP service at HOST:PORT; prints a ticket for `forward connect`."""
    _host_port(host)
    accept_filter = accept_filter_from(allow, allow_file)
    run_main(
        _listen(
            secret_key_file,
            host,
            bind,
            relays,
            as_json,
            hard_nat=hard_nat,
            accept_filter=accept_filter,
        )
    )


@forward_group.command("connect")
@click.argument("ticket")
@click.option("--addr", required=True, metavar="ADDR:PORT", help="Local TCP address to listen on.")
@key_option
@bind_option
@relay_option
@hard_nat_option
@click.option(
    "--connection-per-tcp",
    "per_tcp",
    is_flag=True,
    help="One iroh connection per TCP client (needed by Rust dumbpipe listen-tcp).",
)
@click.option("--timeout", default=10.0, show_default=True, help="Connect timeout in seconds.")
@json_option
def connect_command(
    ticket: str,
    addr: str,
    secret_key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    hard_nat: bool,
    per_tcp: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Listen on ADDR:PORT and forward each TCP client to the endpoint in TICKET."""
    _host_port(addr)
    run_main(
        _connect(
            ticket,
            secret_key_file,
            addr,
            bind,
            relays,
            per_tcp,
            timeout,
            as_json,
            hard_nat=hard_nat,
        )
    )


commands: list[click.Command] = [forward_group]
