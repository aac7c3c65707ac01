"""Relay forwarding benchmark: our relay vs a bare aiohttp WebSocket echo, in one run.

Both servers run as separate processes on 127.0.0.1; the clients run here. For 1, 10 and 100
client pairs it reports datagrams/s and MB/s forwarded, and one-way latency p50/p99 at low load;
then the relay's memory per idle connected client. The "ratio" column divides the relay's rate
by the bare echo's rate with the same number of connections — the echo does no parsing, no
routing and no authentication, so it is the ceiling for anything built on aiohttp.

    .venv/bin/python bench/relay.py [--datagrams 20000] [--size 1200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.relay import TestRelayClient, connect_client

WINDOW = 64  # datagrams in flight per pair

_ECHO_SERVER = r"""
import sys
from aiohttp import web, WSMsgType

async def handler(request):
    ws = web.WebSocketResponse(max_msg_size=2**20, compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws

app = web.Application()
app.router.add_get("/relay", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_port(port: int) -> None:
    for _ in range(200):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            await w.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _relay_pair_run(clients: list[TestRelayClient], n: int, size: int) -> float:
    """Each sender pushes n datagrams to its receiver with a window; returns elapsed seconds."""
    pairs = [(clients[i], clients[i + 1]) for i in range(0, len(clients), 2)]

    async def run_pair(a: TestRelayClient, b: TestRelayClient) -> None:
        payload = b"\x00" * size
        received = 0
        sent = 0
        while received < n:
            while sent < n and sent - received < WINDOW:
                await a.send(b.endpoint_id, payload)
                sent += 1
            await b.recv_datagrams(timeout=30)
            received += 1

    start = time.perf_counter()
    await asyncio.gather(*(run_pair(a, b) for a, b in pairs))
    return time.perf_counter() - start


async def _relay_latency(a: TestRelayClient, b: TestRelayClient, samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        await a.send(b.endpoint_id, struct.pack(">d", time.perf_counter()) + b"\x00" * 1192)
        got = await b.recv_datagrams()
        out.append(time.perf_counter() - struct.unpack(">d", got.datagrams.contents[:8])[0])
    return out


async def _echo_run(url: str, conns: int, n: int, size: int) -> tuple[float, list[float]]:
    async with aiohttp.ClientSession() as session:
        wss = [await session.ws_connect(url + "/relay", compress=0) for _ in range(conns)]

        async def run(ws: aiohttp.ClientWebSocketResponse) -> None:
            payload = b"\x00" * size
            sent = received = 0
            while received < n:
                while sent < n and sent - received < WINDOW:
                    await ws.send_bytes(payload)
                    sent += 1
                await ws.receive_bytes()
                received += 1

        start = time.perf_counter()
        await asyncio.gather(*(run(ws) for ws in wss))
        elapsed = time.perf_counter() - start
        lat = []
        for _ in range(200):
            await wss[0].send_bytes(struct.pack(">d", time.perf_counter()) + b"\x00" * 1192)
            data = await wss[0].receive_bytes()
            lat.append(time.perf_counter() - struct.unpack(">d", data[:8])[0])
        for ws in wss:
            await ws.close()
    return elapsed, lat


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] * 1e3


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datagrams", type=int, default=20_000, help="total per run")
    parser.add_argument("--size", type=int, default=1200)
    parser.add_argument("--idle-clients", type=int, default=500)
    args = parser.parse_args()

    relay_port, echo_port = _free_port(), _free_port()
    py = sys.executable
    relay = await asyncio.create_subprocess_exec(
        py,
        "-m",
        "aioiroh.cli.main",
        "relay",
        "--dev",
        "--port",
        str(relay_port),
        stderr=asyncio.subprocess.DEVNULL,
    )
    echo = await asyncio.create_subprocess_exec(py, "-c", _ECHO_SERVER, str(echo_port))
    try:
        await _wait_port(relay_port)
        await _wait_port(echo_port)
        relay_url = f"http://127.0.0.1:{relay_port}"
        echo_url = f"http://127.0.0.1:{echo_port}"
        print(
            f"{'pairs':>5} {'relay dg/s':>11} {'MB/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'echo dg/s':>10} {'echo p50':>8} {'echo p99':>8} {'ratio':>6}"
        )
        for pairs in (1, 10, 100):
            n = max(args.datagrams // pairs, 50)
            clients = [await connect_client(relay_url) for _ in range(2 * pairs)]
            try:
                elapsed = await _relay_pair_run(clients, n, args.size)
                lat = await _relay_latency(clients[0], clients[1], 200)
            finally:
                await asyncio.gather(*(c.close() for c in clients))
            rate = pairs * n / elapsed
            e_elapsed, e_lat = await _echo_run(echo_url, pairs, n, args.size)
            e_rate = pairs * n / e_elapsed
            print(
                f"{pairs:>5} {rate:>11.0f} {rate * args.size / 1e6:>7.1f} {_pct(lat, 0.5):>7.2f} "
                f"{_pct(lat, 0.99):>7.2f} {e_rate:>10.0f} {_pct(e_lat, 0.5):>8.2f} "
                f"{_pct(e_lat, 0.99):>8.2f} {rate / e_rate:>6.2f}"
            )
        before = _rss_kib(relay.pid)
        idle = []
        for _ in range(args.idle_clients):
            idle.append(await connect_client(relay_url))
        await asyncio.sleep(0.5)
        after = _rss_kib(relay.pid)
        await asyncio.gather(*(c.close() for c in idle))
        per = (after - before) / args.idle_clients
        print(
            f"memory: {per:.1f} KiB RSS per idle client ({args.idle_clients} clients, "
            f"{before} -> {after} KiB)"
        )
        print(f"(datagram size {args.size} B, window {WINDOW}, cpu count {os.cpu_count()})")
    finally:
        for proc in (relay, echo):
            proc.terminate()
            await proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
