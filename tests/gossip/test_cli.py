"""``aioiroh gossip``: two chat processes on loopback exchange lines both ways."""

from __future__ import annotations

import asyncio

import pytest

from aioiroh.cli.gossip import topic_from
from aioiroh.gossip import TopicId

from ..cli._run import PIPE, json_event, running

pytestmark = pytest.mark.timeout(90)

LOOPBACK = ("--bind", "127.0.0.1:0")


def test_topic_argument_is_a_hex_id_or_a_hashed_name() -> None:
    raw = TopicId(bytes(range(32)))
    assert topic_from(str(raw)) == raw
    assert topic_from("chat") == TopicId.from_name("chat")
    assert topic_from("z" * 64) == TopicId.from_name("z" * 64)


async def test_two_chat_processes_exchange_lines() -> None:
    args = ("gossip", "lobby", *LOOPBACK, "--json", "--no-stay")
    async with running(*args, stdin=PIPE) as a:
        assert a.stdin is not None and a.stdout is not None
        listening = await json_event(a.stderr, "listening")
        assert listening["topic"] == str(TopicId.from_name("lobby"))
        async with running(*args, "--bootstrap", listening["ticket"], stdin=PIPE) as b:
            assert b.stdin is not None
            await json_event(b.stderr, "joined")
            await json_event(a.stderr, "neighbor_up")
            b.stdin.write(b"hello from b\n")
            await b.stdin.drain()
            got = await json_event(a.stdout, "received")
            assert got["text"] == "hello from b"
            a.stdin.write("grüße from a\n".encode())
            await a.stdin.drain()
            got = await json_event(b.stdout, "received")
            assert got["text"] == "grüße from a"
            b.stdin.close()
            assert await asyncio.wait_for(b.wait(), 30) == 0
        a.stdin.close()
        assert await asyncio.wait_for(a.wait(), 30) == 0
