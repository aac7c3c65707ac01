"""Lab scenarios built on :mod:`lab.transfer_peer`: a relay, a receiver, an aioiroh sender."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from lab.harness import Device, Lab
from lab.relay import start_relay

__all__ = ["start_relay", "transfer"]


async def transfer(
    lab: Lab,
    url: str,
    server_dev: Device,
    client_dev: Device,
    *,
    server_impl: str,
    size: int,
    extra_addrs: Callable[[list[str]], list[str]] = lambda a: a,
    at_half: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    timeout: float = 150.0,
    server_public_ip: str = "",
) -> dict[str, Any]:
    """Send ``size`` bytes from an aioiroh client on ``client_dev`` to a receiver on
    ``server_dev``; ``at_half`` runs when half is sent (the sender waits for it).
    ``server_public_ip`` is given to a Rust receiver behind a port-keeping NAT."""
    server = await server_dev.spawn_python(
        "lab.transfer_peer", server_impl, "serve", url, server_public_ip
    )
    try:
        hello = await server.recv(timeout=40)
        role = "send-pause" if at_half is not None else "send"
        sender = await client_dev.spawn_python(
            "lab.transfer_peer",
            "ours",
            role,
            url,
            hello["id"],
            json.dumps(extra_addrs(list(hello["addrs"]))),
            str(size),
        )
        try:
            msg = await sender.recv(timeout=timeout)
            if at_half is not None and msg.get("event") == "half":
                await at_half(msg)
                sender.send({"go": True})
                msg = await sender.recv(timeout=timeout)
            return dict(msg)
        finally:
            await sender.stop()
    finally:
        await server.stop()
