"""``aioiroh gossip TOPIC [--bootstrap TICKET...]``: a line-based chat on an iroh-gossip topic.

Each stdin line is broadcast to the topic; every line received is printed on stdout (with
``--json``: one JSON object per line). The ticket others join with, neighbor changes and
errors go to stderr. ``TOPIC`` is 64 hex characters (a raw topic id) or any other text, whose
blake3 hash is the topic id. Lines are not signed: anyone in the topic can send any text.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Final

import click

from ..base.ticket import EndpointTicket
from ..gossip import (
    GOSSIP_ALPN,
    Gossip,
    GossipTopic,
    Lagged,
    MessageTooLarge,
    NeighborDown,
    NeighborUp,
    Received,
    TopicId,
)
from ..gossip.messages import GossipDecodeError
from ..protocol import Router
from ._common import json_option, key_option, relay_option
from .pipe import FdReader, bind_endpoint, bind_option, parse_ticket, run_main

# Longest stdin line kept (longer ones are cut); a gossip message holds at most ~4 KB anyway.
MAX_LINE: Final = 64 * 1024


def topic_from(text: str) -> TopicId:
    """64 hex characters are a topic id; anything else is hashed into one."""
    if len(text) == 64:
        try:
            return TopicId.parse(text)
        except GossipDecodeError:
            pass
    return TopicId.from_name(text)


def _err(as_json: bool, obj: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(obj) if as_json else text, err=True)
    sys.stderr.flush()


async def _print_events(topic: GossipTopic, as_json: bool) -> None:
    async for ev in topic:
        if isinstance(ev, Received):
            text = ev.content.decode("utf-8", "replace")
            if as_json:
                obj = {"event": "received", "text": text, "delivered_from": str(ev.delivered_from)}
                click.echo(json.dumps(obj))
            else:
                click.echo(text)
            sys.stdout.flush()
        elif isinstance(ev, NeighborUp):
            _err(as_json, {"event": "neighbor_up", "peer": str(ev.peer)}, f"+ {ev.peer}")
        elif isinstance(ev, NeighborDown):
            _err(as_json, {"event": "neighbor_down", "peer": str(ev.peer)}, f"- {ev.peer}")
        elif isinstance(ev, Lagged):
            _err(as_json, {"event": "lagged"}, "(missed some messages)")


async def _send_lines(topic: GossipTopic, as_json: bool) -> None:
    reader = FdReader(sys.stdin.fileno())
    buf = b""
    while True:
        chunk = await reader.read()
        if not chunk:
            lines, buf = ([buf] if buf else []), b""
        else:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if len(buf) > MAX_LINE:
                lines.append(buf[:MAX_LINE])
                buf = b""
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                continue
            try:
                await topic.broadcast(line)
            except MessageTooLarge as exc:
                _err(as_json, {"event": "error", "error": str(exc)}, f"error: {exc}")
        if not chunk:
            return


async def _chat(
    topic_text: str,
    bootstrap: tuple[str, ...],
    secret_key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    as_json: bool,
    stay: bool,
) -> int:
    tickets: list[EndpointTicket] = [parse_ticket(t) for t in bootstrap]
    topic_id = topic_from(topic_text)
    ep = await bind_endpoint(secret_key_file, [GOSSIP_ALPN], bind, relays, hard_nat=False)
    gossip = await Gossip.spawn(ep)
    router = Router.builder(ep).accept(GOSSIP_ALPN, gossip).spawn()
    try:
        ticket = str(ep.ticket())
        hint = f"aioiroh gossip {topic_id} --bootstrap {ticket}"
        _err(
            as_json,
            {"event": "listening", "ticket": ticket, "topic": str(topic_id), "id": str(ep.id)},
            f"topic {topic_id}\nothers join with:\n  {hint}",
        )
        topic = await gossip.subscribe(topic_id, bootstrap=[t.addr for t in tickets])
        printer = asyncio.create_task(_print_events(topic, as_json))
        try:
            if tickets:
                await topic.joined()
                _err(as_json, {"event": "joined"}, "joined")
            await _send_lines(topic, as_json)
            if stay:
                await printer
        finally:
            printer.cancel()
            await asyncio.gather(printer, return_exceptions=True)
            await topic.close()
    finally:
        await router.shutdown()
    return 0


@click.command("gossip")
@click.argument("topic")
@click.option(
    "--bootstrap",
    multiple=True,
    metavar="TICKET",
    help="Endpoint ticket of a peer already in the topic (repeatable).",
)
@key_option
@bind_option
@relay_option
@click.option(
    "--stay/--no-stay",
    default=True,
    show_default=True,
    help="Keep printing messages after stdin ends (until Ctrl-C).",
)
@json_option
def gossip_command(
    topic: str,
    bootstrap: tuple[str, ...],
    secret_key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    stay: bool,
    as_json: bool,
) -> None:
    """Chat on gossip TOPIC: stdin lines are broadcast, received lines printed."""
    run_main(_chat(topic, bootstrap, secret_key_file, bind, relays, as_json, stay))


commands: list[click.Command] = [gossip_command]
