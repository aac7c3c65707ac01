"""The relay server's per-client send queue is bounded in time: stale datagram frames are dropped.

Toward a client reading at 1 MB/s a full 1 MiB queue is a second of delay for everything behind
it. Datagram frames that waited longer than ``ServerConfig.max_queue_delay`` are dropped when
dequeued (and counted); control frames never are.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
from typing import Any

import pytest
from aiohttp import WSMsgType

from aioiroh.base.key import SecretKey
from aioiroh.relay.protocol.frames import (
    ClientToRelayDatagrams,
    Datagrams,
    EndpointGone,
    Ping,
    Pong,
    RelayToClientDatagrams,
    Restarting,
    Status,
    StatusCode,
    decode_relay_msg,
)
from aioiroh.relay.protocol.version import ProtocolVersion
from aioiroh.relay_server import RelayServer, ServerConfig
from aioiroh.relay_server.client_conn import ClientConn, RelayHub
from aioiroh.relay_server.config import DEFAULT_MAX_QUEUE_DELAY
from aioiroh.relay_server.metrics import RelayMetrics
from tests.relay_server.test_rate_limit_latency import BULK_DATAGRAM, PROBE_PREFIX, RATE
from tests.support.relay import connect_client

# The backlog queued for the slow reader in one burst: more than the 1 MiB queue holds.
BURST_BYTES = 1_300_000
PROBES = 30
PROBE_EVERY = 0.05
# The slow reader's socket receive buffer (Linux doubles it), so the backlog stays on the server.
READER_RCVBUF = 32 * 1024


class _FakeWs:
    """Records what the writer sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)


class _FakeRequest:
    transport = None


def _conn(hub: RelayHub, ws: _FakeWs, now: float) -> ClientConn:
    conn = ClientConn(
        hub,
        hub.next_conn_id(),
        SecretKey.generate().public(),
        ProtocolVersion.V2,
        ws,  # type: ignore[arg-type]
        _FakeRequest(),  # type: ignore[arg-type]
        now=now,
    )
    hub.add(conn)
    return conn


async def _drain(conn: ClientConn) -> None:
    writer = asyncio.create_task(conn._writer())
    try:
        async with asyncio.timeout(5):
            while conn.queued_bytes:
                await asyncio.sleep(0.001)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


async def test_control_frames_are_never_dropped_by_age() -> None:
    """Stale datagram frames are dropped and counted; control frames queued with them are sent."""
    loop = asyncio.get_running_loop()
    metrics = RelayMetrics()
    hub = RelayHub(ServerConfig(max_queue_delay=0.05), metrics)
    now = loop.time()
    src = _conn(hub, _FakeWs(), now)
    ws = _FakeWs()
    dst = _conn(hub, ws, now)
    controls: list[Any] = [
        Ping(b"12345678"),
        Pong(b"87654321"),
        Status(StatusCode.HEALTHY),
        EndpointGone(src.endpoint_id),
        Restarting(0, 5000),
    ]
    for control in controls:
        stale = ClientToRelayDatagrams(dst.endpoint_id, Datagrams(0, None, b"stale"))
        hub.forward(src, stale, now)
        assert dst.send_msg(control)
    fresh = ClientToRelayDatagrams(dst.endpoint_id, Datagrams(0, None, b"fresh"))
    hub.forward(src, fresh, now + 10.0)  # as if queued just now: not stale yet
    await asyncio.sleep(0.1)  # everything queued at ``now`` is past its deadline
    await _drain(dst)

    received = [decode_relay_msg(frame, ProtocolVersion.V2) for frame in ws.sent]
    datagrams = [m.datagrams.contents for m in received if isinstance(m, RelayToClientDatagrams)]
    assert [m for m in received if not isinstance(m, RelayToClientDatagrams)] == controls
    assert datagrams == [b"fresh"]
    assert metrics.dropped_queue_delay == len(controls)
    assert metrics.frames_sent == len(controls) + 1


async def test_no_age_limit_when_disabled() -> None:
    loop = asyncio.get_running_loop()
    metrics = RelayMetrics()
    hub = RelayHub(ServerConfig(max_queue_delay=None), metrics)
    now = loop.time()
    src = _conn(hub, _FakeWs(), now)
    ws = _FakeWs()
    dst = _conn(hub, ws, now)
    hub.forward(src, ClientToRelayDatagrams(dst.endpoint_id, Datagrams(0, None, b"old")), now - 60)
    await _drain(dst)
    assert len(ws.sent) == 1
    assert metrics.dropped_queue_delay == 0


def test_default_max_queue_delay() -> None:
    assert ServerConfig().max_queue_delay == DEFAULT_MAX_QUEUE_DELAY == 0.2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("max_queue_delay", [DEFAULT_MAX_QUEUE_DELAY, None])
async def test_small_datagram_behind_a_backlog_toward_a_slow_reader(
    max_queue_delay: float | None,
) -> None:
    """Probes sent behind a 1 MiB backlog toward a 1 MB/s reader wait at most ~0.2 s in the queue.

    Measured end to end (about 0.6 s at worst, 0.4 s of it below the queue); without the age
    limit (``None``, the control case) the first probes wait behind the whole queue, over 1 s.
    """
    server = RelayServer(ServerConfig(max_queue_delay=max_queue_delay))
    await server.start()
    sender = await connect_client(server.http_url)
    reader = await connect_client(server.http_url)
    loop = asyncio.get_running_loop()
    arrivals: dict[int, float] = {}
    sent_at: dict[int, float] = {}
    task: asyncio.Task[None] | None = None

    async def read_slowly() -> None:
        """Read at RATE bytes/s, timestamping probes."""
        start = loop.time()
        total = 0
        while True:
            msg = await reader.ws.receive()
            if msg.type is not WSMsgType.BINARY:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return
                continue
            frame = decode_relay_msg(msg.data, reader.version)
            if not isinstance(frame, RelayToClientDatagrams):
                continue
            data = frame.datagrams.contents
            if data.startswith(PROBE_PREFIX):
                arrivals[int(data[len(PROBE_PREFIX) :])] = loop.time()
            total += len(msg.data)
            await asyncio.sleep(max(0.0, start + total / RATE - loop.time()))

    try:
        # The test client's own reader would read eagerly; read slowly instead, through a
        # small socket buffer.
        assert reader._reader is not None
        reader._reader.cancel()
        await asyncio.gather(reader._reader, return_exceptions=True)
        sock = reader.ws.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READER_RCVBUF)
        task = asyncio.create_task(read_slowly())

        block = bytes(BULK_DATAGRAM)
        for _ in range(BURST_BYTES // BULK_DATAGRAM):
            await sender.send(reader.endpoint_id, block)
        for seq in range(PROBES):
            sent_at[seq] = loop.time()
            await sender.send(reader.endpoint_id, PROBE_PREFIX + str(seq).encode())
            await asyncio.sleep(PROBE_EVERY)
        async with asyncio.timeout(10):
            while len(arrivals) < PROBES and loop.time() - sent_at[PROBES - 1] < 3:
                await asyncio.sleep(0.05)
        metrics = server.metrics
        dropped_delay, dropped_full = metrics.dropped_queue_delay, metrics.dropped_queue_full
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await sender.close()
        await reader.close()
        await server.stop()

    latencies = {seq: round(arrivals[seq] - sent_at[seq], 3) for seq in sorted(arrivals)}
    summary = (
        f"max_queue_delay={max_queue_delay}: {len(arrivals)}/{PROBES} probes, latencies "
        f"{list(latencies.values())}, dropped by age {dropped_delay}, queue full {dropped_full}"
    )
    print(summary)
    assert dropped_full > 0, "the backlog never filled the queue"
    if max_queue_delay is None:
        assert dropped_delay == 0, summary
        assert max(latencies.values()) > 0.8, summary
    else:
        assert dropped_delay > 0, summary
        # A probe right behind the backlog may expire with it; the rest arrive, in time.
        assert len(arrivals) >= PROBES - 2, summary
        # Queue wait is at most 0.2 s; up to ~0.4 s more is spent in the buffers below the
        # queue, mostly the test client's (its window was advertised before it shrank).
        assert max(latencies.values()) < 0.8, summary
        assert statistics.median(latencies.values()) < 0.5, summary
