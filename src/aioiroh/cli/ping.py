"""``aioiroh ping TICKET``: application round trips plus the connection's network paths.

Each ping is one bidirectional stream on the echo ALPN that ``aioiroh listen`` serves (a
sequence number and a timestamp go out, the same bytes come back), so the time measured is a
real request/response through QUIC. Alongside, the connection's path events (opened,
selected, closed) are followed and every change of the path table (a new path, a different
selected path such as relay -> direct, a path gone) is printed as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import struct
import time
from pathlib import Path
from typing import Any, Final

import click

from ..endpoint.connection import Connection, PathInfo
from ..errors import IrohError
from ._common import emit, hard_nat_option, json_option, key_option, note, relay_option
from .endpoint import DEFAULT_ALPN
from .pipe import bind_endpoint, bind_option, parse_ticket, run_main

# A ping that has no answer within this time counts as lost.
PING_TIMEOUT: Final = 5.0
_PING: Final = struct.Struct(">Qd")
# Pings kept for statistics (``--count 0`` runs forever).
MAX_SAMPLES: Final = 100_000


def _kind(p: PathInfo) -> str:
    return "relay" if p.is_relay else "direct"


def _path_view(paths: list[PathInfo]) -> dict[str, Any]:
    selected = next((p for p in paths if p.is_selected), None)
    return {
        "selected": selected.remote_addr if selected else None,
        "kind": _kind(selected) if selected else None,
        "paths": sorted(p.remote_addr for p in paths),
    }


def _describe_change(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    if old is None:
        return [f"path: {new['kind']} {new['selected']}"]
    out = []
    for addr in sorted(set(new["paths"]) - set(old["paths"])):
        out.append(f"path added: {addr}")
    for addr in sorted(set(old["paths"]) - set(new["paths"])):
        out.append(f"path removed: {addr}")
    if new["selected"] != old["selected"]:
        out.append(
            f"path changed: {old['kind']} {old['selected']} -> {new['kind']} {new['selected']}"
        )
    return out


class _Pinger:
    def __init__(self, conn: Connection, as_json: bool) -> None:
        self.conn = conn
        self.as_json = as_json
        self.view: dict[str, Any] | None = None
        self.changes = 0

    def check_paths(self) -> None:
        view = _path_view(self.conn.paths())
        if view == self.view:
            return
        lines = _describe_change(self.view, view)
        if self.view is not None:
            self.changes += 1
        self.view = view
        if self.as_json:
            emit(True, {"event": "paths", **view}, "")
        else:
            for line in lines:
                emit(False, {}, line)

    async def watch_paths(self) -> None:
        self.check_paths()
        async for _event in self.conn.path_events():
            self.check_paths()

    async def ping_once(self, seq: int) -> float:
        send, recv = await self.conn.open_bi()
        payload = _PING.pack(seq, time.time())
        start = time.perf_counter()
        await send.write_all(payload)
        await send.finish()
        reply = await recv.read_to_end(_PING.size)
        rtt = time.perf_counter() - start
        if reply != payload:
            raise IrohError("echo mismatch")
        return rtt


async def _ping(
    target: str,
    key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    alpn: str,
    count: int,
    interval: float,
    timeout: float,
    as_json: bool,
    *,
    hard_nat: bool,
) -> int:
    ticket = parse_ticket(target)
    ep = await bind_endpoint(key_file, [], bind, relays, hard_nat=hard_nat)
    samples: list[float] = []
    sent = 0
    watcher: asyncio.Task[None] | None = None
    try:
        start = time.perf_counter()
        try:
            conn = await ep.connect(ticket, alpn.encode(), timeout=timeout)
        except IrohError as exc:
            emit(as_json, {"event": "error", "error": str(exc)}, f"error: {exc}")
            return 1
        setup = time.perf_counter() - start
        pinger = _Pinger(conn, as_json)
        if as_json:
            emit(
                True,
                {
                    "event": "connected",
                    "remote_id": str(conn.remote_id),
                    "connect_ms": setup * 1000,
                },
                "",
            )
        else:
            note(f"PING {conn.remote_id.fmt_short()}: connected in {setup * 1000:.1f} ms")
        watcher = asyncio.create_task(pinger.watch_paths())
        seq = 0
        while count == 0 or seq < count:
            seq += 1
            sent += 1
            try:
                rtt = await asyncio.wait_for(pinger.ping_once(seq), PING_TIMEOUT)
            except (IrohError, TimeoutError) as exc:
                emit(
                    as_json,
                    {"event": "lost", "seq": seq, "error": str(exc) or "timeout"},
                    f"seq={seq} lost ({exc or 'timeout'})",
                )
                if conn.close_reason() is not None:
                    break
            else:
                if len(samples) < MAX_SAMPLES:
                    samples.append(rtt)
                pinger.check_paths()
                view = pinger.view or {}
                path_rtt = conn.rtt
                obj = {
                    "event": "pong",
                    "seq": seq,
                    "rtt_ms": rtt * 1000,
                    "path": view.get("selected"),
                    "path_kind": view.get("kind"),
                    "path_rtt_ms": path_rtt * 1000 if path_rtt is not None else None,
                }
                quic = f", quic rtt {path_rtt * 1000:.2f} ms" if path_rtt is not None else ""
                emit(
                    as_json,
                    obj,
                    f"seq={seq} rtt={rtt * 1000:.2f} ms via {view.get('kind')} "
                    f"{view.get('selected')}{quic}",
                )
            if count == 0 or seq < count:
                await asyncio.sleep(interval)
        conn.close(0, b"ping done")
        return 0 if samples else 1
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        _summary(sent, samples, as_json)
        await ep.close()


def _summary(sent: int, samples: list[float], as_json: bool) -> None:
    if not sent:
        return
    ms = [s * 1000 for s in samples]
    loss = 100.0 * (sent - len(samples)) / sent
    stats: dict[str, Any] = {"event": "summary", "sent": sent, "received": len(ms), "loss": loss}
    text = f"{sent} sent, {len(ms)} received, {loss:.0f}% loss"
    if ms:
        stats.update(min_ms=min(ms), avg_ms=statistics.fmean(ms), max_ms=max(ms))
        text += f"; rtt min/avg/max {min(ms):.2f}/{statistics.fmean(ms):.2f}/{max(ms):.2f} ms"
    emit(as_json, stats, text)


@click.command("ping")
@click.argument("ticket")
@key_option
@bind_option
@relay_option
@hard_nat_option
@click.option("--alpn", default=DEFAULT_ALPN, show_default=True, help="Echo protocol to use.")
@click.option(
    "-c", "--count", default=0, show_default=True, help="Pings to send; 0 = until Ctrl-C."
)
@click.option("-i", "--interval", default=1.0, show_default=True, help="Seconds between pings.")
@click.option("--timeout", default=10.0, show_default=True, help="Connect timeout in seconds.")
@json_option
def ping_command(
    ticket: str,
    secret_key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    hard_nat: bool,
    alpn: str,
    count: int,
    interval: float,
    timeout: float,
    as_json: bool,
) -> None:
    """Ping the endpoint in TICKET (run `aioiroh listen` there); shows RTT and path changes."""
    if interval < 0 or count < 0:
        raise click.BadParameter("count and interval must not be negative")
    run_main(
        _ping(
            ticket,
            secret_key_file,
            bind,
            relays,
            alpn,
            count,
            interval,
            timeout,
            as_json,
            hard_nat=hard_nat,
        )
    )


commands: list[click.Command] = [ping_command]
