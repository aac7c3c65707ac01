"""``aioiroh id``, ``aioiroh listen`` and ``aioiroh connect``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import click

from ..base.ticket import EndpointTicket
from ..endpoint.connection import Connection
from ..endpoint.endpoint import AcceptFilter, Endpoint
from ..errors import IrohError
from ..presets import Preset
from ._common import (
    DEFAULT_KEY_FILE,
    accept_filter_from,
    allow_options,
    emit,
    hard_nat_option,
    json_option,
    key_option,
    load_or_create_key,
    note,
    preset_from,
    preset_options,
)

DEFAULT_ALPN = "aioiroh/echo/0"
MAX_MESSAGE = 64 * 1024 * 1024
# How long listen waits for its home relay before printing a ticket without one.
ONLINE_WAIT = 10.0


@click.command("id")
@click.option(
    "--secret-key",
    "secret_key_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_KEY_FILE,
    show_default=True,
    help="Key file to show (created if missing).",
)
@json_option
def id_command(secret_key_file: Path, as_json: bool) -> None:
    """Show this machine's endpoint id, creating the key file if needed."""
    key = load_or_create_key(secret_key_file)
    pub = key.public()
    emit(
        as_json,
        {"endpoint_id": str(pub), "z32": pub.to_z32(), "key_file": str(secret_key_file)},
        f"{pub}\n(key file: {secret_key_file})",
    )


async def _serve(conn: Connection, mode: str, as_json: bool) -> None:
    peer = conn.remote_id
    while True:
        try:
            send, recv = await conn.accept_bi()
        except IrohError:
            return
        data = await recv.read_to_end(MAX_MESSAGE)
        if mode == "print":
            if as_json:
                emit(
                    True,
                    {
                        "from": str(peer),
                        "bytes": len(data),
                        "text": data.decode("utf-8", "replace"),
                    },
                    "",
                )
            else:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            await send.write_all(b"")
        else:
            await send.write_all(data)
        await send.finish()


async def _listen(
    key_file: Path | None,
    alpn: str,
    bind: str,
    preset: Preset,
    mode: str,
    as_json: bool,
    *,
    hard_nat: bool,
    accept_filter: AcceptFilter | None = None,
) -> None:
    ep = await Endpoint.bind(
        load_or_create_key(key_file),
        alpns=[alpn.encode()],
        bind_addr=bind,
        preset=preset,
        hard_nat=hard_nat,
    )
    ep.set_accept_filter(accept_filter)
    tasks: set[asyncio.Task[None]] = set()
    try:
        # The ticket should carry the home relay: wait for it (bounded).
        try:
            await asyncio.wait_for(ep.online(), ONLINE_WAIT)
        except TimeoutError:
            note(f"no home relay after {ONLINE_WAIT:.0f} s; the ticket has direct addresses only")
        ticket = str(ep.ticket())
        event = {
            "event": "listening",
            "endpoint_id": str(ep.id),
            "ticket": ticket,
            "home_relay": str(ep.home_relay) if ep.home_relay else None,
            "config": preset.to_json(),
        }
        emit(as_json, event, ticket)
        note(f"endpoint {ep.id}\nconnect with:\n  aioiroh connect {ticket}")
        while True:
            conn = await ep.accept()
            if as_json:
                emit(True, {"event": "accepted", "remote_id": str(conn.remote_id)}, "")
            else:
                note(f"accepted connection from {conn.remote_id.fmt_short()}")
            task = asyncio.create_task(_serve(conn, mode, as_json))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()
        await ep.close()


@click.command("listen")
@key_option
@click.option("--alpn", default=DEFAULT_ALPN, show_default=True)
@click.option("--bind", default="0.0.0.0:0", show_default=True, help="IPv4 address to bind.")
@click.option(
    "--mode",
    type=click.Choice(["echo", "print"]),
    default="echo",
    show_default=True,
    help="Echo each stream back, or print what arrives.",
)
@preset_options
@hard_nat_option
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the resolved network configuration (JSON) and exit without binding.",
)
@allow_options
@json_option
def listen_command(
    secret_key_file: Path | None,
    alpn: str,
    bind: str,
    mode: str,
    preset_name: str | None,
    relays: tuple[str, ...],
    dns_origin: str | None,
    dns_server: str | None,
    pkarr_relay: str | None,
    hard_nat: bool,
    print_config: bool,
    allow: tuple[str, ...],
    allow_file: Path | None,
    as_json: bool,
) -> None:
    """Accept connections; prints a ticket to give to `aioiroh connect`.

    Uses n0's public relays and discovery unless told otherwise (--preset, --relay, ...).
    """
    preset = preset_from(preset_name, relays, dns_origin, dns_server, pkarr_relay)
    if print_config:
        emit(True, {"event": "config", "config": preset.to_json()}, "")
        return
    accept_filter = accept_filter_from(allow, allow_file)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _listen(
                secret_key_file,
                alpn,
                bind,
                preset,
                mode,
                as_json,
                hard_nat=hard_nat,
                accept_filter=accept_filter,
            )
        )


async def _connect(
    target: str,
    key_file: Path | None,
    alpn: str,
    message: str | None,
    preset: Preset,
    as_json: bool,
    timeout: float,
    *,
    hard_nat: bool,
) -> None:
    try:
        ticket = EndpointTicket.parse(target)
    except IrohError as exc:
        raise click.ClickException(f"bad ticket: {exc}") from None
    data = message.encode() if message is not None else sys.stdin.buffer.read()
    ep = await Endpoint.bind(
        load_or_create_key(key_file),
        bind_addr="0.0.0.0:0",
        preset=preset,
        hard_nat=hard_nat,
    )
    try:
        start = time.perf_counter()
        conn = await ep.connect(ticket, alpn.encode(), timeout=timeout)
        setup = time.perf_counter() - start
        send, recv = await conn.open_bi()
        await send.write_all(data)
        await send.finish()
        reply = await recv.read_to_end(MAX_MESSAGE)
        paths = [p for p in conn.paths() if p.is_selected]
        path = paths[0].remote_addr if paths else "?"
        kind = ("relay" if paths[0].is_relay else "direct") if paths else "?"
        rtt_ms = (conn.rtt or 0.0) * 1000
        if as_json:
            emit(
                True,
                {
                    "remote_id": str(conn.remote_id),
                    "reply": reply.decode("utf-8", "replace"),
                    "reply_bytes": len(reply),
                    "rtt_ms": round(rtt_ms, 3),
                    "connect_ms": round(setup * 1000, 3),
                    "path": path,
                    "path_kind": kind,
                },
                "",
            )
        else:
            sys.stdout.buffer.write(reply)
            if reply and not reply.endswith(b"\n"):
                sys.stdout.buffer.write(b"\n")
            sys.stdout.flush()
            note(
                f"rtt {rtt_ms:.2f} ms over {kind} path {path} (connected in {setup * 1000:.1f} ms)"
            )
        conn.close(0, b"done")
    except IrohError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        await ep.close()


@click.command("connect")
@click.argument("ticket")
@key_option
@click.option("--alpn", default=DEFAULT_ALPN, show_default=True)
@click.option("-m", "--message", default=None, help="Message to send (default: stdin).")
@click.option("--timeout", default=10.0, show_default=True, help="Connect timeout in seconds.")
@preset_options
@hard_nat_option
@json_option
def connect_command(
    ticket: str,
    secret_key_file: Path | None,
    alpn: str,
    message: str | None,
    timeout: float,
    preset_name: str | None,
    relays: tuple[str, ...],
    dns_origin: str | None,
    dns_server: str | None,
    pkarr_relay: str | None,
    hard_nat: bool,
    as_json: bool,
) -> None:
    """Connect to TICKET, send a message (or stdin), print the reply, RTT and path.

    Uses n0's public relays and discovery unless told otherwise (--preset, --relay, ...).
    """
    preset = preset_from(preset_name, relays, dns_origin, dns_server, pkarr_relay)
    asyncio.run(
        _connect(
            ticket, secret_key_file, alpn, message, preset, as_json, timeout, hard_nat=hard_nat
        )
    )


commands = [id_command, listen_command, connect_command]
