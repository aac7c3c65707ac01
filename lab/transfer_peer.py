"""A bulk-transfer iroh peer for the degraded-link and uplink-switch lab tests.

``python -m lab.transfer_peer IMPL serve RELAY_URL`` binds ``0.0.0.0:0`` (so it survives an
uplink switch), prints ``{"id", "addrs"}`` once online, then for each bi-stream reads everything
and answers with the SHA-256 of what it read, until stdin closes.

``python -m lab.transfer_peer IMPL send RELAY_URL PEER_ID ADDRS_JSON SIZE`` connects (relay plus
the given addresses), sends SIZE bytes of deterministic data on one bi-stream and checks the
digest; it prints ``{"ok", "seconds", "direct_seen", "direct_at_end", "paths"}``. In the middle
(after half the data) it prints ``{"event": "half"}`` and, when the parent answers with any line
on stdin, goes on: the uplink-switch test moves the device at that point.

IMPL is ``ours`` (aioiroh) or ``rust`` (PyPI iroh); only ``ours`` implements ``send``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
from typing import Any

ALPN = b"natlab/transfer/0"
CHUNK = 64 * 1024
MAX_SIZE = 64 * 1024 * 1024
QAD_WAIT = 10.0
PATH_POLL = 0.1


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def payload(size: int) -> bytes:
    """Deterministic, incompressible-looking test data."""
    block = hashlib.sha256(b"natlab").digest() * (CHUNK // 32)
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:]
        i += 1
    return bytes(out[:size])


async def stdin_line() -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, sys.stdin.readline)


async def ours_serve(relay: str) -> None:
    from aioiroh import Endpoint, IrohError, RelayMode

    ep = await Endpoint.bind(alpns=[ALPN], bind_addr_v6=False, relay_mode=RelayMode.custom([relay]))

    async def handle(conn: Any) -> None:
        with contextlib.suppress(IrohError):
            while True:
                send, recv = await conn.accept_bi()
                digest = hashlib.sha256()
                while chunk := await recv.read(CHUNK):
                    digest.update(chunk)
                await send.write_all(digest.hexdigest().encode())
                await send.finish()

    tasks: set[asyncio.Task[None]] = set()

    async def accept_loop() -> None:
        while True:
            conn = await ep.accept()
            t = asyncio.create_task(handle(conn))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    try:
        await asyncio.wait_for(ep.online(), 30)
        await ep.reflexive_addresses(timeout=QAD_WAIT)
        emit({"id": str(ep.id), "addrs": [f"{h}:{p}" for h, p in ep.direct_addresses()]})
        loop_task = asyncio.create_task(accept_loop())
        while await stdin_line():
            pass
        loop_task.cancel()
        for t in list(tasks):
            t.cancel()
    finally:
        await ep.close()


async def rust_serve(relay: str, public_ip: str | None) -> None:
    """A Rust receiver; ``public_ip`` (behind a port-keeping NAT) is announced as
    ``public_ip:<bound port>`` with ``add_external_addr``, Rust's stand-in for the lab relay's
    QAD, which it cannot use (lab/iroh_peer.py)."""
    import iroh

    from lab.iroh_peer import rust_external

    b = iroh.EndpointBuilder()
    b.apply_minimal()
    b.relay_mode(iroh.RelayMode.custom_from_urls([relay]))
    b.bind_addr("0.0.0.0:0")
    b.alpns([ALPN])
    ep = await b.bind()

    async def handle(conn: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                bi = await conn.accept_bi()
                data = bytes(await bi.recv().read_to_end(MAX_SIZE))
                await bi.send().write_all(hashlib.sha256(data).hexdigest().encode())
                await bi.send().finish()

    tasks: set[asyncio.Task[None]] = set()

    async def accept_loop() -> None:
        while True:
            inc = await ep.accept_next()
            if inc is None:
                return
            conn = await (await inc.accept()).connect()
            t = asyncio.create_task(handle(conn))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    try:
        external = await rust_external(ep, public_ip)
        await asyncio.wait_for(ep.online(), 30)
        addrs = [str(s) for s in ep.bound_sockets() if not str(s).startswith("[")]
        emit({"id": str(ep.id()), "addrs": addrs + ([external] if external else [])})
        loop_task = asyncio.create_task(accept_loop())
        while await stdin_line():
            pass
        loop_task.cancel()
    finally:
        await ep.close()


async def ours_send(relay: str, peer: str, addrs: list[str], size: int, pause: bool) -> None:
    from aioiroh import Endpoint, EndpointAddr, RelayMode

    ep = await Endpoint.bind(bind_addr_v6=False, relay_mode=RelayMode.custom([relay]))
    direct_seen = False
    try:
        await asyncio.wait_for(ep.online(), 30)
        await ep.reflexive_addresses(timeout=QAD_WAIT)
        data = payload(size)
        start = time.monotonic()
        conn = await ep.connect(EndpointAddr(peer, relay, addrs), ALPN, timeout=20)

        def paths() -> list[str]:
            return [f"{p.remote_addr}{'*' if p.is_selected else ''}" for p in conn.paths()]

        def selected_ip() -> bool:
            return any(p.is_selected and p.is_ip for p in conn.paths())

        async def watch() -> None:
            nonlocal direct_seen
            while True:
                direct_seen |= selected_ip()
                await asyncio.sleep(PATH_POLL)

        watcher = asyncio.create_task(watch())
        try:
            send, recv = await conn.open_bi()
            half = size // 2
            for off in range(0, size, CHUNK):
                if pause and off >= half:
                    pause = False
                    # Move only once the direct path is up, so the move is what breaks it.
                    settle = time.monotonic() + 10
                    while not selected_ip() and time.monotonic() < settle:
                        await asyncio.sleep(PATH_POLL)
                    emit({"event": "half", "direct": selected_ip(), "paths": paths()})
                    await stdin_line()
                await send.write_all(data[off : off + CHUNK])
            await send.finish()
            got = (await recv.read_to_end(100)).decode()
            seconds = time.monotonic() - start
            # After a move the direct path may still be in the making: give it a moment.
            deadline = time.monotonic() + 15
            while not selected_ip() and time.monotonic() < deadline:
                await asyncio.sleep(PATH_POLL)
            direct_at_end = selected_ip()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        emit(
            {
                "ok": got == hashlib.sha256(data).hexdigest(),
                "seconds": seconds,
                "direct_seen": direct_seen or direct_at_end,
                "direct_at_end": direct_at_end,
                "paths": paths(),
            }
        )
        conn.close(0, b"done")
    finally:
        await ep.close()


def main(argv: list[str]) -> None:
    if os.environ.get("NATLAB_LOG"):
        import logging

        logging.basicConfig(level=os.environ["NATLAB_LOG"], stream=sys.stderr)
    impl, role, relay = argv[:3]
    if role == "serve":
        public_ip = argv[3] if len(argv) > 3 and argv[3] else None
        asyncio.run(ours_serve(relay) if impl == "ours" else rust_serve(relay, public_ip))
    elif role in ("send", "send-pause"):
        if impl != "ours":
            raise SystemExit("only aioiroh sends in these tests")
        peer, addrs, size = argv[3], json.loads(argv[4]), int(argv[5])
        asyncio.run(ours_send(relay, peer, addrs, size, role == "send-pause"))
    else:
        raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    main(sys.argv[1:])
