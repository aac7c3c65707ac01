"""Batched UDP I/O: GSO sends arrive as the separate datagrams they were."""

from __future__ import annotations

import asyncio
import socket

from aioiroh.socket.udp import GSO_MAX_SEGMENTS, UdpSocket


async def test_send_many_splits_back_into_datagrams() -> None:
    got: list[bytes] = []
    done = asyncio.Event()
    want = [b"a" * 1200] * 70 + [b"b" * 100, b"c" * 1200, b"d" * 5]

    def on_batch(batch: list[tuple[bytes, tuple[str, int]]]) -> None:
        got.extend(d for d, _ in batch)
        if len(got) >= len(want):
            done.set()

    recv = UdpSocket(socket.AF_INET, "127.0.0.1", 0, on_batch)
    send = UdpSocket(socket.AF_INET, "127.0.0.1", 0, lambda b: None)
    try:
        assert len(want) > GSO_MAX_SEGMENTS  # more than one GSO batch
        send.send_many(want, recv.local_addr)
        await asyncio.wait_for(done.wait(), 5)
        assert got == want
        assert send.send_errors == 0
    finally:
        recv.close()
        send.close()
