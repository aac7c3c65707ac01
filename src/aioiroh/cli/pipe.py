"""``aioiroh pipe listen`` / ``aioiroh pipe connect TICKET``: stdin/stdout over one QUIC stream.

The wire format is n0's dumbpipe, so either side may be the Rust ``dumbpipe`` tool:

* ALPN ``DUMBPIPEV0``;
* the side that opens the bidirectional stream (the connector) first writes the five bytes
  ``hello``: QUIC only tells the peer about a stream once bytes flow on it, and the connector
  may have nothing to say yet;
* the acceptor reads and checks those five bytes, then both sides copy bytes verbatim, and each
  direction ends with a stream FIN when its input reaches EOF.

Only payload goes to stdout; tickets and messages go to stderr (JSON lines with ``--json``).
This module also holds the byte-copy helpers that ``forward`` and ``transfer`` reuse.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Final

import click

from ..base.key import SecretKey
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
    load_or_create_key,
    relay_mode_from,
    relay_option,
)

ALPN: Final = b"DUMBPIPEV0"
HANDSHAKE: Final = b"hello"
# Bytes per read from stdin / a socket, and per write into a stream.
CHUNK: Final = 256 * 1024
# Chunks buffered between the stdio threads and the event loop (so at most ~2 MiB each way).
STDIO_QUEUE_CHUNKS: Final = 8
# How long to wait for the home relay before printing a ticket without one (as dumbpipe does).
ONLINE_TIMEOUT: Final = 5.0
# After both directions are done, how long we wait for the peer to acknowledge our last bytes
# before closing the connection anyway.
DRAIN_TIMEOUT: Final = 30.0
# Application error codes on the wire: dumbpipe resets/stops with 0 on cancel.
CANCEL_CODE: Final = 0
EXIT_INTERRUPTED: Final = 130


# -- output -------------------------------------------------------------------------------


def event(as_json: bool, obj: dict[str, Any], text: str | None) -> None:
    """A message for people or scripts, always on stderr (stdout may carry data)."""
    if as_json:
        click.echo(json.dumps(obj), err=True)
    elif text is not None:
        click.echo(text, err=True)
    sys.stderr.flush()


def secret_key_from(path: Path | None) -> SecretKey:
    """``--secret-key FILE``, else dumbpipe's ``IROH_SECRET`` (hex), else a fresh key."""
    if path is None:
        env = os.environ.get("IROH_SECRET")
        if env:
            try:
                return SecretKey.parse(env.strip())
            except (IrohError, ValueError) as exc:
                raise click.ClickException(f"bad IROH_SECRET: {exc}") from None
    try:
        return load_or_create_key(path)
    except (IrohError, ValueError) as exc:
        raise click.ClickException(f"bad secret key file {path}: {exc}") from None


def parse_ticket(text: str) -> EndpointTicket:
    try:
        return EndpointTicket.parse(text.strip())
    except (IrohError, ValueError) as exc:
        raise click.ClickException(f"bad ticket: {exc}") from None


def bind_option(f: Any) -> Any:
    return click.option(
        "--bind",
        default="0.0.0.0:0",
        show_default=True,
        help="IPv4 socket address for the endpoint (127.0.0.1:0 keeps it on loopback).",
    )(f)


async def bind_endpoint(
    key_file: Path | None,
    alpns: list[bytes],
    bind: str,
    relays: tuple[str, ...],
    *,
    hard_nat: bool,
) -> Endpoint:
    """Bind an endpoint from the common flags and wait (bounded) for the home relay."""
    try:
        ep = await Endpoint.bind(
            secret_key_from(key_file),
            alpns=alpns,
            bind_addr=bind,
            relay_mode=relay_mode_from(relays),
            hard_nat=hard_nat,
        )
    except (IrohError, ValueError, OSError) as exc:
        raise click.ClickException(f"cannot bind endpoint: {exc}") from None
    try:
        await asyncio.wait_for(ep.online(), ONLINE_TIMEOUT)
    except TimeoutError:
        click.echo("warning: could not reach the home relay", err=True)
    return ep


def run_main(coro: Coroutine[Any, Any, int | None]) -> None:
    """Run the command; Ctrl-C exits with 130 after the coroutine's cleanup has run."""
    try:
        code = asyncio.run(coro)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if code:
        sys.exit(code)


# -- stdio without blocking the event loop ------------------------------------------------


class FdReader:
    """Reads a file descriptor in a daemon thread and hands chunks to the event loop.

    A thread works for every kind of stdin (file, pipe, tty) without switching the fd to
    non-blocking mode, which would leak into the shell that shares it. The daemon thread never
    keeps the process alive, so Ctrl-C exits even while a read is blocked.
    """

    def __init__(self, fd: int, *, chunk: int = CHUNK) -> None:
        self._fd = fd
        self._chunk = chunk
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(STDIO_QUEUE_CHUNKS)
        self._eof = False
        threading.Thread(target=self._run, name="stdin-reader", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self._fd, self._chunk)
            except OSError:
                data = b""
            try:
                asyncio.run_coroutine_threadsafe(self._queue.put(data), self._loop).result()
            except BaseException:  # the loop is gone or the put was cancelled: stop quietly
                return
            if not data:
                return

    async def read(self) -> bytes:
        """The next chunk; ``b""`` at EOF (and forever after)."""
        if self._eof:
            return b""
        data = await self._queue.get()
        if not data:
            self._eof = True
        return data


class FdWriter:
    """Writes to a file descriptor from a daemon thread, at most a few chunks behind."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._pending: deque[asyncio.Future[None]] = deque()
        self._cond = threading.Condition()
        self._items: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        threading.Thread(target=self._run, name="stdout-writer", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items:
                    self._cond.wait()
                data, fut = self._items.popleft()
            err: BaseException | None = None
            try:
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
            except OSError as exc:
                err = exc
            try:
                self._loop.call_soon_threadsafe(_settle, fut, err)
            except RuntimeError:  # loop closed
                return

    async def write(self, data: bytes) -> None:
        """Queue ``data``; waits while ``STDIO_QUEUE_CHUNKS`` writes are outstanding."""
        while len(self._pending) >= STDIO_QUEUE_CHUNKS:
            await self._pending.popleft()
        fut = self._loop.create_future()
        self._pending.append(fut)
        with self._cond:
            self._items.append((data, fut))
            self._cond.notify()

    async def flush(self) -> None:
        """Wait until everything queued has been written (raises the first write error)."""
        while self._pending:
            await self._pending.popleft()


def _settle(fut: asyncio.Future[None], err: BaseException | None) -> None:
    if fut.done():
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(err)


# -- copying ------------------------------------------------------------------------------


async def copy_to_stream(read: Callable[[], Awaitable[bytes]], send: SendStream) -> int:
    """Copy until ``read()`` returns ``b""``, then finish the stream; returns bytes copied."""
    total = 0
    while True:
        data = await read()
        if not data:
            break
        await send.write_all(data)
        total += len(data)
    await send.finish()
    return total


async def copy_from_stream(recv: RecvStream, write: Callable[[bytes], Awaitable[None]]) -> int:
    """Copy until the peer finishes the stream; returns bytes copied."""
    total = 0
    while True:
        data = await recv.read(CHUNK)
        if not data:
            return total
        await write(data)
        total += len(data)


async def wait_acked(send: SendStream, timeout: float = DRAIN_TIMEOUT) -> bool:
    """Wait until the peer has acknowledged everything written to a finished ``send``.

    Closing a QUIC connection discards unacknowledged stream data, so the last bytes of a
    pipe would be lost if we closed straight after ``finish()``.
    """
    try:
        return await asyncio.wait_for(send.stopped(), timeout) is None
    except (TimeoutError, IrohError):
        return False


async def splice(
    read: Callable[[], Awaitable[bytes]],
    write: Callable[[bytes], Awaitable[None]],
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    *,
    at_eof: Callable[[], Awaitable[None]] | None = None,
) -> tuple[int, int]:
    """Run both directions until each has reached EOF; returns (bytes sent, bytes received).

    ``at_eof`` runs as soon as the peer's direction ends (e.g. a TCP half-close), while our
    own direction may still be going.

    If either direction fails, or the connection dies while we still wait on local input, the
    other direction is cancelled (the stream is reset and stopped with ``CANCEL_CODE``, as
    dumbpipe does) and the error propagates.
    """

    async def downward() -> int:
        n = await copy_from_stream(recv, write)
        if at_eof is not None:
            await at_eof()
        return n

    up = asyncio.create_task(copy_to_stream(read, send))
    down = asyncio.create_task(downward())
    lost = asyncio.create_task(conn.closed())
    try:
        pending: set[asyncio.Future[Any]] = {up, down}
        while pending:
            watch = pending if lost.done() else pending | {lost}
            done, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
            for task in done & pending:
                task.result()  # raises the first failure
            pending -= done
            # A closed connection cannot take more of our input; what the peer already sent
            # stays readable, so the downward copy is left to drain on its own.
            if lost.done() and up in pending:
                raise lost.result()
        return up.result(), down.result()
    except BaseException:
        send.reset(CANCEL_CODE)
        recv.stop(CANCEL_CODE)
        raise
    finally:
        for task in (up, down, lost):
            task.cancel()
        await asyncio.gather(up, down, lost, return_exceptions=True)


# -- the commands -------------------------------------------------------------------------


async def _pipe(
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    recv_only: bool,
    as_json: bool,
) -> int:
    stdin = FdReader(sys.stdin.fileno()) if not recv_only else None
    stdout = FdWriter(sys.stdout.fileno())

    async def nothing() -> bytes:
        return b""

    start = time.monotonic()
    try:
        sent, received = await splice(
            stdin.read if stdin is not None else nothing, stdout.write, conn, send, recv
        )
        await stdout.flush()
    except (IrohError, OSError) as exc:
        event(as_json, {"event": "error", "error": str(exc)}, f"error: {exc}")
        conn.close(1, b"pipe error")
        return 1
    await wait_acked(send)
    conn.close(0, b"done")
    secs = time.monotonic() - start
    event(
        as_json,
        {"event": "done", "bytes_sent": sent, "bytes_received": received, "seconds": secs},
        None,
    )
    return 0


async def _listen(
    key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    recv_only: bool,
    as_json: bool,
    *,
    hard_nat: bool,
    accept_filter: AcceptFilter | None = None,
) -> int:
    ep = await bind_endpoint(key_file, [ALPN], bind, relays, hard_nat=hard_nat)
    ep.set_accept_filter(accept_filter)
    try:
        ticket = str(ep.ticket())
        event(
            as_json,
            {
                "event": "listening",
                "endpoint_id": str(ep.id),
                "ticket": ticket,
                "command": f"aioiroh pipe connect {ticket}",
            },
            f"Listening. To connect, use:\naioiroh pipe connect {ticket}\n"
            f"(or: dumbpipe connect {ticket})",
        )
        # Serve the first connection that completes the handshake, as dumbpipe does.
        while True:
            conn = await ep.accept()
            try:
                send, recv = await conn.accept_bi()
                if await recv.read_exact(len(HANDSHAKE)) != HANDSHAKE:
                    raise IrohError("invalid handshake")
            except IrohError as exc:
                event(
                    as_json,
                    {"event": "rejected", "remote_id": str(conn.remote_id), "error": str(exc)},
                    f"rejected {conn.remote_id.fmt_short()}: {exc}",
                )
                conn.close(1, b"bad handshake")
                continue
            event(
                as_json,
                {"event": "connected", "remote_id": str(conn.remote_id)},
                f"connected to {conn.remote_id.fmt_short()}",
            )
            return await _pipe(conn, send, recv, recv_only, as_json)
    finally:
        await ep.close()


async def _connect(
    target: str,
    key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    recv_only: bool,
    timeout: float,
    as_json: bool,
    *,
    hard_nat: bool,
) -> int:
    ticket = parse_ticket(target)
    ep = await bind_endpoint(key_file, [], bind, relays, hard_nat=hard_nat)
    try:
        try:
            conn = await ep.connect(ticket, ALPN, timeout=timeout)
            send, recv = await conn.open_bi()
            # The opener speaks first so the acceptor learns about the stream.
            await send.write_all(HANDSHAKE)
        except IrohError as exc:
            event(as_json, {"event": "error", "error": str(exc)}, f"error: {exc}")
            return 1
        event(
            as_json,
            {"event": "connected", "remote_id": str(conn.remote_id)},
            f"connected to {conn.remote_id.fmt_short()}",
        )
        return await _pipe(conn, send, recv, recv_only, as_json)
    finally:
        await ep.close()


@click.group("pipe")
def pipe_group() -> None:
    """stdin/stdout between two machines (dumbpipe-compatible)."""


@pipe_group.command("listen")
@key_option
@bind_option
@relay_option
@hard_nat_option
@click.option("--recv-only", is_flag=True, help="Do not read stdin; only print what arrives.")
@allow_options
@json_option
def listen_command(
    secret_key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    hard_nat: bool,
    recv_only: bool,
    allow: tuple[str, ...],
    allow_file: Path | None,
    as_json: bool,
) -> None:
    """Wait for one peer and pipe stdin/stdout to it; prints a ticket on stderr."""
    accept_filter = accept_filter_from(allow, allow_file)
    run_main(
        _listen(
            secret_key_file,
            bind,
            relays,
            recv_only,
            as_json,
            hard_nat=hard_nat,
            accept_filter=accept_filter,
        )
    )


@pipe_group.command("connect")
@click.argument("ticket")
@key_option
@bind_option
@relay_option
@hard_nat_option
@click.option("--recv-only", is_flag=True, help="Do not read stdin; only print what arrives.")
@click.option("--timeout", default=10.0, show_default=True, help="Connect timeout in seconds.")
@json_option
def connect_command(
    ticket: str,
    secret_key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    hard_nat: bool,
    recv_only: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Connect to TICKET and pipe stdin/stdout to it."""
    run_main(
        _connect(
            ticket, secret_key_file, bind, relays, recv_only, timeout, as_json, hard_nat=hard_nat
        )
    )


commands: list[click.Command] = [pipe_group]
