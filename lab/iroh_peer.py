"""An iroh endpoint for the NAT matrix, in either implementation, driven by arguments.

``python -m lab.iroh_peer IMPL serve BIND_IP RELAY_URL [OPTIONS]`` prints
``{"id": ..., "addrs": [...]}`` once online, then echoes bi-streams until stdin closes.
``python -m lab.iroh_peer IMPL dial BIND_IP RELAY_URL PEER_ID ADDRS_JSON WAIT [OPTIONS]`` connects
(relay plus the given direct addresses), echoes once, then watches for up to WAIT seconds for a
direct path to be selected, and prints ``{"established", "direct", "connect_s",
"time_to_direct"}``. IMPL is ``ours`` (aioiroh) or ``rust`` (PyPI iroh).

Options: ``--public-ip IP`` is given only for a Rust peer behind a NAT that keeps source ports
(open, moderate): Rust checks a relay's QAD certificate against web PKI roots and so cannot
learn its public address from a lab relay; it is told ``IP:<bound port>`` with
``add_external_addr`` instead (natlab-recipe §7). aioiroh peers ignore it and use the relay's
QAD. ``--hard-nat`` makes an aioiroh peer take part in the birthday hard-NAT attempt
(``Endpoint.bind(hard_nat=True)``); the dialer then also reports the attempt's counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

ALPN = b"natlab/iroh-echo/0"
POLL = 0.05
# Longest an aioiroh peer waits for the relay's QAD answer before going on without it.
QAD_WAIT = 10.0


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def wait_direct(conn: Any, start: float, wait: float) -> float | None:
    """Seconds from ``start`` until ``conn.paths()`` shows a selected IP path, or None.

    Polls: Rust's binding has no awaitable path change, and both implementations are watched
    the same way so their times compare.
    """
    deadline = start + wait
    while True:
        if any(p.is_selected and p.is_ip for p in conn.paths()):
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(POLL)


def report(connect_s: float, direct_at: float | None, **extra: Any) -> None:
    emit(
        {
            "established": True,
            "direct": direct_at is not None,
            "connect_s": connect_s,
            "time_to_direct": direct_at,
            **extra,
        }
    )


async def stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


# -- aioiroh ---------------------------------------------------------------------------------


async def ours_echo_forever(ep: Any) -> None:
    """Accept connections on an aioiroh endpoint and echo every bi-stream."""
    from aioiroh import IrohError

    async def echo(conn: Any) -> None:
        with contextlib.suppress(IrohError):
            while True:
                send, recv = await conn.accept_bi()
                await send.write_all(await recv.read_to_end(1 << 20))
                await send.finish()

    tasks: set[asyncio.Task[None]] = set()
    while True:
        conn = await ep.accept()
        t = asyncio.create_task(echo(conn))
        tasks.add(t)
        t.add_done_callback(tasks.discard)


async def ours_serve(ip: str, relay: str, public_ip: str | None, hard_nat: bool) -> None:
    from aioiroh import Endpoint, RelayMode

    ep = await Endpoint.bind(
        alpns=[ALPN],
        bind_addr=f"{ip}:0",
        bind_addr_v6=False,
        relay_mode=RelayMode.custom([relay]),
        hard_nat=hard_nat,
    )

    try:
        await asyncio.wait_for(ep.online(), 30)
        # Like Rust's online() waiting for a net report: know our public address first.
        await ep.reflexive_addresses(timeout=QAD_WAIT)
        addrs = [f"{h}:{p}" for h, p in ep.direct_addresses()]
        emit({"id": str(ep.id), "addrs": addrs})
        loop_task = asyncio.create_task(ours_echo_forever(ep))
        await stdin_closed()
        loop_task.cancel()
    finally:
        await ep.close()


async def ours_dial(
    ip: str,
    relay: str,
    peer: str,
    addrs: list[str],
    wait: float,
    public_ip: str | None,
    hard_nat: bool,
) -> None:
    from aioiroh import Endpoint, EndpointAddr, RelayMode

    ep = await Endpoint.bind(
        bind_addr=f"{ip}:0",
        bind_addr_v6=False,
        relay_mode=RelayMode.custom([relay]),
        hard_nat=hard_nat,
    )
    try:
        await asyncio.wait_for(ep.online(), 30)
        await ep.reflexive_addresses(timeout=QAD_WAIT)
        start = time.monotonic()
        conn = await ep.connect(EndpointAddr(peer, relay, addrs), ALPN, timeout=20)
        connect_s = time.monotonic() - start
        send, recv = await conn.open_bi()
        await send.write_all(b"ping")
        await send.finish()
        assert await recv.read_to_end(100) == b"ping"
        direct_at = await wait_direct(conn, start, wait)
        attempt = conn.hard_nat_attempt()
        conn.close(0, b"done")
        extra = {}
        if attempt is not None:
            extra["hard_nat"] = {"sent": attempt.sent, "matched": len(attempt.matched)}
        report(connect_s, direct_at, **extra)
    finally:
        await ep.close()


# -- Rust iroh -------------------------------------------------------------------------------


async def rust_bind(ip: str, relay: str, alpns: list[bytes]) -> Any:
    import iroh

    b = iroh.EndpointBuilder()
    b.apply_minimal()
    b.relay_mode(iroh.RelayMode.custom_from_urls([relay]))
    b.bind_addr(f"{ip}:0")
    b.alpns(alpns)
    return await b.bind()


def rust_v4(ep: Any) -> list[str]:
    return [str(s) for s in ep.bound_sockets() if not str(s).startswith("[")]


async def rust_external(ep: Any, public_ip: str | None) -> str | None:
    """Tell a Rust peer its public address (``PUBLIC_IP:<bound port>``); the QAD stand-in."""
    if not public_ip:
        return None
    port = rust_v4(ep)[0].rsplit(":", 1)[1]
    external = f"{public_ip}:{port}"
    # A coroutine in the binding: without the await it silently does nothing.
    await ep.add_external_addr(external)
    return external


async def rust_serve(ip: str, relay: str, public_ip: str | None, hard_nat: bool) -> None:
    ep = await rust_bind(ip, relay, [ALPN])

    async def echo(conn: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                bi = await conn.accept_bi()
                await bi.send().write_all(await bi.recv().read_to_end(1 << 20))
                await bi.send().finish()

    async def accept_loop() -> None:
        tasks = set()
        while True:
            inc = await ep.accept_next()
            if inc is None:
                return
            conn = await (await inc.accept()).connect()
            t = asyncio.create_task(echo(conn))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    try:
        external = await rust_external(ep, public_ip)
        await asyncio.wait_for(ep.online(), 30)
        addrs = rust_v4(ep) + ([external] if external else [])
        emit({"id": str(ep.id()), "addrs": addrs})
        loop_task = asyncio.create_task(accept_loop())
        await stdin_closed()
        loop_task.cancel()
    finally:
        await ep.close()


async def rust_dial(
    ip: str,
    relay: str,
    peer: str,
    addrs: list[str],
    wait: float,
    public_ip: str | None,
    hard_nat: bool,
) -> None:
    import iroh

    ep = await rust_bind(ip, relay, [])
    try:
        await rust_external(ep, public_ip)
        await asyncio.wait_for(ep.online(), 30)
        start = time.monotonic()
        target = iroh.EndpointAddr(iroh.EndpointId.from_string(peer), relay, addrs)
        conn = await asyncio.wait_for(ep.connect(target, ALPN), 20)
        connect_s = time.monotonic() - start
        bi = await conn.open_bi()
        await bi.send().write_all(b"ping")
        await bi.send().finish()
        assert bytes(await bi.recv().read_to_end(100)) == b"ping"
        direct_at = await wait_direct(conn, start, wait)
        conn.close(0, b"done")
        report(connect_s, direct_at)
    finally:
        await ep.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.iroh_peer")
    parser.add_argument("impl", choices=["ours", "rust"])
    parser.add_argument("role", choices=["serve", "dial"])
    parser.add_argument("ip")
    parser.add_argument("relay")
    parser.add_argument("rest", nargs="*", help="dial: PEER_ID ADDRS_JSON WAIT")
    parser.add_argument("--public-ip", default=None)
    parser.add_argument("--hard-nat", action="store_true")
    args = parser.parse_args(argv)
    if args.role == "serve":
        fn = ours_serve if args.impl == "ours" else rust_serve
        asyncio.run(fn(args.ip, args.relay, args.public_ip, args.hard_nat))
    else:
        peer, addrs, wait = args.rest[0], json.loads(args.rest[1]), float(args.rest[2])
        fn2 = ours_dial if args.impl == "ours" else rust_dial
        asyncio.run(fn2(args.ip, args.relay, peer, addrs, wait, args.public_ip, args.hard_nat))


if __name__ == "__main__":
    main(sys.argv[1:])
