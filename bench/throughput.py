"""Bulk throughput and handshake time: aioiroh vs Rust iroh (PyPI iroh) vs plain aioquic.

Every row moves SIZE bytes over one unidirectional stream on loopback, with the receiver in a
child process (so each side has a core), and reports receiver-side MB/s. Rust rows run twice:
with the stock PyPI binding, whose ``bytes`` lowering copies byte by byte in Python, and with
that copy replaced by ``ctypes.memmove`` (patched here, in this script only).

    python bench/throughput.py [--size-mb 50] [--handshakes 50] [--slow-reader-only]

The last row is the receiver's peak memory while its application reads slowly.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

ALPN = b"aioiroh/bench/0"


# -- helpers ---------------------------------------------------------------------------------


_ORIGINAL_WRITE: Any = None


def unpatch_iroh_binding() -> None:
    """Put the stock per-byte copy back (rows run in one process)."""
    from iroh import iroh_ffi

    if _ORIGINAL_WRITE is not None:
        iroh_ffi._UniffiRustBufferBuilder.write = _ORIGINAL_WRITE


def patch_iroh_binding() -> None:
    """Replace the binding's per-byte Python copy into Rust buffers with one memmove."""
    global _ORIGINAL_WRITE
    from iroh import iroh_ffi

    if _ORIGINAL_WRITE is None:
        _ORIGINAL_WRITE = iroh_ffi._UniffiRustBufferBuilder.write

    def write(self: Any, value: bytes) -> None:
        n = len(value)
        with self._reserve(n):
            base = ctypes.cast(self.rbuf.data, ctypes.c_void_p).value
            ctypes.memmove(base + self.rbuf.len, bytes(value), n)

    iroh_ffi._UniffiRustBufferBuilder.write = write


def rust_builder(alpns: list[bytes]) -> Any:
    import iroh

    b = iroh.EndpointBuilder()
    b.apply_minimal()
    b.relay_mode(iroh.RelayMode.disabled())
    b.bind_addr("127.0.0.1:0")
    b.alpns(alpns)
    return b


def rust_v4_addr(ep: Any) -> dict[str, Any]:
    v4 = [s for s in ep.bound_sockets() if not str(s).startswith("[")]
    return {"id": str(ep.id()), "addrs": v4}


def self_signed() -> tuple[str, str]:
    from aioiroh.tls.x509 import write_self_signed

    cert, key = write_self_signed(tempfile.mkdtemp(), ["localhost"])
    return str(cert), str(key)


def out(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# -- sinks (child process) -------------------------------------------------------------------


async def sink_ours() -> None:
    from aioiroh import Endpoint

    ep = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False)
    addr = ep.addr()
    out({"id": str(addr.id), "addrs": [f"{h}:{p}" for h, p in addr.direct_addresses]})
    conn = await ep.accept()
    recv = await conn.accept_uni()
    first = await recv.read(1 << 20)
    start = time.perf_counter()
    total = len(first)
    while chunk := await recv.read(1 << 20):
        total += len(chunk)
    out({"bytes": total, "secs": time.perf_counter() - start})
    await asyncio.sleep(0.05)
    await ep.close()


SLOW_READ = 256 * 1024
SLOW_EVERY = 0.02
"""The slow reader takes SLOW_READ bytes every SLOW_EVERY seconds (about 13 MB/s)."""


async def sink_ours_slow() -> None:
    """Like sink_ours, reading slowly; reports the receiver's peak RSS growth.

    With receive credit granted from reads, the sender is held to the window, so the growth
    stays near one stream window instead of the whole transfer.
    """
    import resource

    from aioiroh import Endpoint

    ep = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False)
    addr = ep.addr()
    out({"id": str(addr.id), "addrs": [f"{h}:{p}" for h, p in addr.direct_addresses]})
    conn = await ep.accept()
    recv = await conn.accept_uni()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    total = 0
    eof = False
    while not eof:
        got = 0
        while got < SLOW_READ:
            chunk = await recv.read(SLOW_READ - got)
            if not chunk:
                eof = True
                break
            got += len(chunk)
        total += got
        await asyncio.sleep(SLOW_EVERY)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out({"bytes": total, "secs": time.perf_counter() - start, "rss_growth_kb": peak - base})
    await asyncio.sleep(0.05)
    await ep.close()


async def slow_reader_row(size_mb: int) -> None:
    """Receiver peak memory while the application reads slowly (aioiroh -> aioiroh)."""
    data = os.urandom(size_mb * 1024 * 1024)
    args = [sys.executable, __file__, "--sink", "ours-slow"]
    proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        target = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        done = asyncio.Event()
        send = asyncio.create_task(send_ours(target, data, done))
        result = json.loads(await asyncio.wait_for(proc.stdout.readline(), 300))
        done.set()
        await asyncio.wait_for(send, 30)
        growth = result["rss_growth_kb"] / 1024
        rate = result["bytes"] / result["secs"] / 1e6
        print(
            f"slow reader ({rate:.1f} MB/s), {size_mb} MiB: receiver peak RSS growth "
            f"{growth:6.1f} MB (bytes intact: {result['bytes'] == len(data)})",
            flush=True,
        )
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def sink_rust() -> None:
    ep = await rust_builder([ALPN]).bind()
    out(rust_v4_addr(ep))
    inc = await ep.accept_next()
    conn = await (await inc.accept()).connect()
    recv = await conn.accept_uni()
    first = await recv.read(1 << 16)
    start = time.perf_counter()
    rest = await recv.read_to_end(1 << 31)
    out({"bytes": len(first) + len(rest), "secs": time.perf_counter() - start})
    await asyncio.sleep(0.05)
    await ep.close()


async def sink_aioquic() -> None:
    from aioquic.asyncio import QuicConnectionProtocol, serve
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import StreamDataReceived

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    state = {"bytes": 0, "start": 0.0}

    class Sink(QuicConnectionProtocol):
        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, StreamDataReceived):
                if state["bytes"] == 0:
                    state["start"] = time.perf_counter()
                state["bytes"] += len(event.data)
                if event.end_stream and not done.done():
                    done.set_result(None)

    cert, key = self_signed()
    config = QuicConfiguration(is_client=False, alpn_protocols=[ALPN.decode()])
    config.load_cert_chain(cert, key)
    server = await serve("127.0.0.1", 0, configuration=config, create_protocol=Sink)
    port = server._transport.get_extra_info("sockname")[1]
    out({"addrs": [f"127.0.0.1:{port}"]})
    await done
    out({"bytes": state["bytes"], "secs": time.perf_counter() - state["start"]})
    server.close()


# -- senders (parent) ------------------------------------------------------------------------


async def send_ours(target: dict[str, Any], data: bytes, done: asyncio.Event) -> None:
    from aioiroh import Endpoint, EndpointAddr

    ep = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
    try:
        conn = await ep.connect(EndpointAddr(target["id"], None, target["addrs"]), ALPN)
        send = await conn.open_uni()
        await send.write_all(data)
        await send.finish()
        await done.wait()
    finally:
        await ep.close()


async def send_rust(target: dict[str, Any], data: bytes, done: asyncio.Event) -> None:
    import iroh

    ep = await rust_builder([]).bind()
    try:
        addr = iroh.EndpointAddr(iroh.EndpointId.from_string(target["id"]), None, target["addrs"])
        conn = await ep.connect(addr, ALPN)
        send = await conn.open_uni()
        for i in range(0, len(data), 4 << 20):
            await send.write_all(data[i : i + (4 << 20)])
        await send.finish()
        await done.wait()
    finally:
        await ep.close()


async def send_aioquic(target: dict[str, Any], data: bytes, done: asyncio.Event) -> None:
    from aioquic.asyncio import connect
    from aioquic.quic.configuration import QuicConfiguration

    host, port = target["addrs"][0].rsplit(":", 1)
    config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN.decode()])
    config.verify_mode = ssl.CERT_NONE
    async with connect(host, int(port), configuration=config) as client:
        sid = client._quic.get_next_available_stream_id(is_unidirectional=True)
        client._quic.send_stream_data(sid, data, end_stream=True)
        client.transmit()
        await done.wait()


SENDERS = {"ours": send_ours, "rust": send_rust, "aioquic": send_aioquic}


async def run_row(
    sender: str, sink: str, data: bytes, patched: bool
) -> tuple[float | None, float | None]:
    """Receiver-side MB/s (first to last byte) and end-to-end MB/s (connect to last byte)."""
    args = [sys.executable, __file__, "--sink", sink] + (["--patched"] if patched else [])
    proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        target = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        done = asyncio.Event()
        t0 = time.perf_counter()
        send = asyncio.create_task(SENDERS[sender](target, data, done))
        line = await asyncio.wait_for(proc.stdout.readline(), 300)
        result = json.loads(line)
        total = time.perf_counter() - t0
        done.set()
        await asyncio.wait_for(send, 30)
        if result["bytes"] != len(data):
            return None, None
        return result["bytes"] / result["secs"] / 1e6, len(data) / total / 1e6
    except (TimeoutError, json.JSONDecodeError):
        return None, None
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


# -- relay-only dial, upgrade to direct, then bulk ---------------------------------------------


async def upgrade_ours(relay_url: str, data: bytes) -> tuple[float | None, float | None]:
    """Seconds from dialing (relay-only) to a direct path selected, and MB/s after it."""
    from aioiroh import Endpoint, EndpointAddr, RelayMode

    mode = RelayMode.custom([relay_url])
    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", relay_mode=mode)
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", relay_mode=mode)
    try:
        await asyncio.gather(server.online(), client.online())
        accept = asyncio.create_task(server.accept())
        start = time.perf_counter()
        conn = await client.connect(EndpointAddr(server.id, server.home_relay, []), ALPN)
        to_direct = None
        while time.perf_counter() - start < 5:
            if any(p.is_selected and p.is_ip for p in conn.paths()):
                to_direct = time.perf_counter() - start
                break
            await asyncio.sleep(0.005)
        sconn = await accept

        async def sink() -> float:
            recv = await sconn.accept_uni()
            t0 = time.perf_counter()
            n = len(await recv.read_to_end(len(data) + 1))
            assert n == len(data)
            return n / (time.perf_counter() - t0) / 1e6

        task = asyncio.create_task(sink())
        send = await conn.open_uni()
        await send.write_all(data)
        await send.finish()
        return to_direct, await task
    finally:
        await client.close()
        await server.close()


async def upgrade_rust(relay_url: str, data: bytes) -> tuple[float | None, float | None]:
    import iroh

    def builder(alpns: list[bytes]) -> Any:
        b = iroh.EndpointBuilder()
        b.apply_minimal()
        b.relay_mode(iroh.RelayMode.custom_from_urls([relay_url]))
        b.bind_addr("127.0.0.1:0")
        b.alpns(alpns)
        return b

    server = await builder([ALPN]).bind()
    client = await builder([]).bind()
    try:
        await asyncio.gather(server.online(), client.online())
        raddr = server.addr()

        async def accept() -> Any:
            inc = await server.accept_next()
            return await (await inc.accept()).connect()

        acc = asyncio.create_task(accept())
        start = time.perf_counter()
        conn = await client.connect(iroh.EndpointAddr(raddr.id(), raddr.relay_url(), []), ALPN)
        to_direct = None
        while time.perf_counter() - start < 5:
            if any(p.is_selected and p.is_ip for p in conn.paths()):
                to_direct = time.perf_counter() - start
                break
            await asyncio.sleep(0.005)
        sconn = await acc

        async def sink() -> float:
            recv = await sconn.accept_uni()
            first = await recv.read(1 << 16)
            t0 = time.perf_counter()
            n = len(first) + len(await recv.read_to_end(1 << 31))
            assert n == len(data)
            return n / (time.perf_counter() - t0) / 1e6

        task = asyncio.create_task(sink())
        send = await conn.open_uni()
        for i in range(0, len(data), 4 << 20):
            await send.write_all(data[i : i + (4 << 20)])
        await send.finish()
        return to_direct, await task
    finally:
        await client.close()
        await server.close()


async def multipath_rows(data: bytes) -> None:
    from aioiroh.relay_server import RelayServer, ServerConfig

    relay = RelayServer(ServerConfig(host="127.0.0.1", port=0))
    await relay.start()
    try:
        print("relay-only dial -> direct path (hole punching in QUIC), then bulk on that path")
        print("(both sides in this process; Rust with the patched copy)")
        for label, fn in (("aioiroh <-> aioiroh", upgrade_ours), ("Rust <-> Rust", upgrade_rust)):
            to_direct, rate = await fn(relay.http_url, data)
            ms = f"{to_direct * 1000:7.1f} ms" if to_direct is not None else "  never"
            print(f"  {label:22s} time to direct {ms}   bulk after upgrade {fmt(rate)} MB/s")
    finally:
        await relay.stop()


# -- handshakes ------------------------------------------------------------------------------


async def handshakes_ours(n: int) -> float:
    from aioiroh import Endpoint

    server = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False)
    client = await Endpoint.bind(bind_addr="127.0.0.1:0", bind_addr_v6=False)
    times = []
    try:
        for _ in range(n):
            accept = asyncio.create_task(server.accept())
            start = time.perf_counter()
            conn = await client.connect(server.addr(), ALPN)
            times.append(time.perf_counter() - start)
            (await accept).close()
            conn.close()
    finally:
        await client.close()
        await server.close()
    return statistics.median(times) * 1000


async def handshakes_rust(n: int) -> float:
    import iroh

    server = await rust_builder([ALPN]).bind()
    client = await rust_builder([]).bind()

    async def accept_loop() -> None:
        while True:
            inc = await server.accept_next()
            if inc is None:
                return
            c = await (await inc.accept()).connect()
            c.close(0, b"")

    task = asyncio.create_task(accept_loop())
    t = rust_v4_addr(server)
    addr = iroh.EndpointAddr(iroh.EndpointId.from_string(t["id"]), None, t["addrs"])
    times = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            conn = await client.connect(addr, ALPN)
            times.append(time.perf_counter() - start)
            conn.close(0, b"")
    finally:
        task.cancel()
        await client.close()
        await server.close()
    return statistics.median(times) * 1000


# -- main ------------------------------------------------------------------------------------


def fmt(v: float | None) -> str:
    return f"{v:8.1f}" if v is not None else "  failed"


def preload() -> None:
    """Import every implementation up front: a row must not pay for the first import."""
    import aioquic.asyncio  # noqa: F401
    import iroh  # noqa: F401

    import aioiroh  # noqa: F401


async def main(size_mb: int, n_handshakes: int) -> None:
    data = os.urandom(size_mb * 1024 * 1024)
    preload()
    rows = [
        ("aioiroh -> aioiroh", "ours", "ours", False),
        ("aioiroh -> Rust", "ours", "rust", False),
        ("Rust (stock binding) -> aioiroh", "rust", "ours", False),
        ("Rust (patched copy) -> aioiroh", "rust", "ours", True),
        ("Rust (stock binding) -> Rust", "rust", "rust", False),
        ("Rust (patched copy) -> Rust", "rust", "rust", True),
        ("aioquic -> aioquic (stock driver)", "aioquic", "aioquic", False),
    ]
    results: dict[str, float | None] = {}
    print(f"one stream, {size_mb} MiB, loopback; MB/s at the receiver (first to last byte)")
    print("and end to end (from dialing to the last byte received)")
    for label, sender, sink, patched in rows:
        if patched:
            patch_iroh_binding()
        else:
            unpatch_iroh_binding()
        recv_rate, e2e = await run_row(sender, sink, data, patched)
        results[label] = e2e
        print(f"  {label:36s} {fmt(recv_rate)} recv {fmt(e2e)} end-to-end", flush=True)
    base = results["aioquic -> aioquic (stock driver)"]
    ref = results["Rust (patched copy) -> Rust"]
    ours = results["aioiroh -> aioiroh"]
    print("ratios (end to end)")
    if ours and base:
        print(f"  aioiroh/aioquic                       {ours / base:8.2f}x")
    if ours and ref:
        print(f"  aioiroh/Rust (patched)                {ours / ref:8.2f}x")
    patch_iroh_binding()
    await multipath_rows(data)
    print(f"connection setup, median of {n_handshakes} (client and server in one process)")
    hs_ours = await handshakes_ours(n_handshakes)
    hs_rust = await handshakes_rust(n_handshakes)
    print(f"  aioiroh {hs_ours:6.2f} ms   Rust {hs_rust:6.2f} ms   ratio {hs_ours / hs_rust:5.2f}x")
    await slow_reader_row(min(size_mb, 32))


def cli() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size-mb", type=int, default=50)
    p.add_argument("--handshakes", type=int, default=50)
    p.add_argument("--sink", choices=["ours", "ours-slow", "rust", "aioquic"])
    p.add_argument("--patched", action="store_true")
    p.add_argument(
        "--slow-reader-only", action="store_true", help="only the slow-reader memory row"
    )
    a = p.parse_args()
    if a.sink:
        if a.patched:
            patch_iroh_binding()
        sinks = {
            "ours": sink_ours,
            "ours-slow": sink_ours_slow,
            "rust": sink_rust,
            "aioquic": sink_aioquic,
        }
        asyncio.run(sinks[a.sink]())
        return
    if a.slow_reader_only:
        asyncio.run(slow_reader_row(min(a.size_mb, 32)))
        return
    asyncio.run(main(a.size_mb, a.handshakes))


if __name__ == "__main__":
    cli()
