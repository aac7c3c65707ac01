"""Connection setup time: aioiroh vs Rust iroh (PyPI ``iroh``), both roles, on loopback.

Client and server endpoints live in this process (one event loop). Each row dials N times and
reports the median and p90 of ``connect`` (from the call to the returned connection) and the
process CPU time per handshake (both sides together; for Rust rows that includes its runtime
threads). A few warm-up dials are not counted.

    python bench/handshake.py [-n 50] [--rows ours-ours,ours-rust,rust-ours,rust-rust]
                              [--profile FILE]   # cProfile the ours-ours row into FILE
                              [--lookup]         # aioiroh dialers have an address lookup

``--lookup`` gives the aioiroh dialer an address lookup service whose answer never comes (like
a DNS or pkarr query still in flight): ``connect`` runs it alongside the handshake, as with
n0's lookups configured, and must not wait for it once the handshake is done.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

ALPN = b"aioiroh/bench/hs/0"
WARMUP = 3


# -- servers: each returns (address dict, stop) -----------------------------------------------


async def server_ours() -> tuple[dict[str, Any], Callable[[], Awaitable[None]]]:
    from aioiroh import Endpoint

    ep = await Endpoint.bind(alpns=[ALPN], bind_addr="127.0.0.1:0", bind_addr_v6=False)

    async def loop() -> None:
        while True:
            conn = await ep.accept()
            conn.close()

    task = asyncio.create_task(loop())
    addr = ep.addr()
    target = {"id": str(addr.id), "addrs": [f"{h}:{p}" for h, p in addr.direct_addresses]}

    async def stop() -> None:
        task.cancel()
        await ep.close()

    return target, stop


def rust_builder(alpns: list[bytes]) -> Any:
    from bench.throughput import rust_builder as builder

    return builder(alpns)


async def server_rust() -> tuple[dict[str, Any], Callable[[], Awaitable[None]]]:
    ep = await rust_builder([ALPN]).bind()

    async def loop() -> None:
        while True:
            inc = await ep.accept_next()
            if inc is None:
                return
            c = await (await inc.accept()).connect()
            c.close(0, b"")

    task = asyncio.create_task(loop())
    v4 = [str(s) for s in ep.bound_sockets() if not str(s).startswith("[")]
    target = {"id": str(ep.id()), "addrs": v4}

    async def stop() -> None:
        task.cancel()
        await ep.close()

    return target, stop


# -- clients: each returns (dial, stop); dial connects once and closes ------------------------

LOOKUP = False


class PendingLookup:
    """An address lookup whose answer is always still on its way (a query in flight)."""

    def publish(self, info: Any) -> None:
        pass

    def resolve(self, endpoint_id: Any) -> Any:
        return self._pending()

    async def _pending(self) -> Any:
        await asyncio.Event().wait()
        yield None  # never reached

    async def aclose(self) -> None:
        pass


async def client_ours(
    target: dict[str, Any],
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    from aioiroh import Endpoint, EndpointAddr

    ep = await Endpoint.bind(
        bind_addr="127.0.0.1:0",
        bind_addr_v6=False,
        address_lookup=[PendingLookup()] if LOOKUP else None,
    )
    addr = EndpointAddr(target["id"], None, target["addrs"])

    async def dial() -> None:
        conn = await ep.connect(addr, ALPN)
        conn.close()

    return dial, ep.close


async def client_rust(
    target: dict[str, Any],
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    import iroh

    ep = await rust_builder([]).bind()
    addr = iroh.EndpointAddr(iroh.EndpointId.from_string(target["id"]), None, target["addrs"])

    async def dial() -> None:
        conn = await ep.connect(addr, ALPN)
        conn.close(0, b"")

    return dial, ep.close


SERVERS = {"ours": server_ours, "rust": server_rust}
CLIENTS = {"ours": client_ours, "rust": client_rust}
LABEL = {"ours": "aioiroh", "rust": "Rust"}


async def run_row(client: str, server: str, n: int, profile: str | None = None) -> dict[str, float]:
    target, stop_server = await SERVERS[server]()
    dial, stop_client = await CLIENTS[client](target)
    times: list[float] = []
    try:
        for _ in range(WARMUP):
            await dial()
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        cpu0 = time.process_time()
        for _ in range(n):
            start = time.perf_counter()
            await dial()
            times.append(time.perf_counter() - start)
            # Let both sides settle (closes, acks) outside the timed part, like a real dialer
            # that does not dial back to back.
            await asyncio.sleep(0.002)
        cpu = time.process_time() - cpu0
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)  # type: ignore[arg-type]
    finally:
        await stop_client()
        await stop_server()
    times.sort()
    return {
        "median": statistics.median(times) * 1000,
        "p90": times[int(0.9 * (len(times) - 1))] * 1000,
        "min": times[0] * 1000,
        "cpu": cpu / n * 1000,
    }


async def main(n: int, rows: list[str], profile: str | None) -> None:
    import iroh  # noqa: F401

    import aioiroh  # noqa: F401

    print(f"connect on loopback, {n} dials per row (ms; cpu = process CPU per handshake)")
    for row in rows:
        client, server = row.split("-")
        r = await run_row(client, server, n, profile if row == "ours-ours" else None)
        label = f"{LABEL[client]} -> {LABEL[server]}"
        print(
            f"  {label:20s} median {r['median']:6.2f}  p90 {r['p90']:6.2f}  "
            f"min {r['min']:6.2f}  cpu {r['cpu']:6.2f}",
            flush=True,
        )


def cli() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--rows", default="ours-ours,ours-rust,rust-ours,rust-rust")
    p.add_argument("--profile", default=None)
    p.add_argument("--lookup", action="store_true")
    a = p.parse_args()
    global LOOKUP
    LOOKUP = a.lookup
    asyncio.run(main(a.n, a.rows.split(","), a.profile))


if __name__ == "__main__":
    cli()
