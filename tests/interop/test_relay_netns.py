"""Relayed connections between endpoints that can reach only the relay (network namespaces).

Each endpoint sits behind its own strict NAT router; the relay is on the "internet" segment.
With no direct route between the two (and no way to learn public addresses), everything goes
through our relay: 5 MB is sent and its hash checked.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.timeout(120)]

SIZE = 5 * 1024 * 1024
RELAY_PORT = "3340"


@pytest.mark.parametrize(
    ("server", "client"), [("rust", "rust"), ("ours", "rust"), ("rust", "ours"), ("ours", "ours")]
)
async def test_five_megabytes_relayed_between_namespaces(lab, server: str, client: str) -> None:  # type: ignore[no-untyped-def]
    host = lab.host("relay")
    relay_proc = await host.spawn_python(
        "aioiroh.cli.main", "relay", "--host", host.ip, "--port", RELAY_PORT, "--json"
    )
    url = f"http://{host.ip}:{RELAY_PORT}"
    a = lab.device(router=lab.router(nat="strict"))
    b = lab.device(router=lab.router(nat="strict"))
    await relay_proc.recv(timeout=30)  # listening
    srv = await a.spawn_python("tests.interop.relay_peer", server, "serve", a.ip, url)
    try:
        first = await srv.recv(timeout=40)
        result = await b.run_json(
            "tests.interop.relay_peer",
            client,
            "connect",
            b.ip,
            url,
            first["id"],
            str(SIZE),
            timeout=90,
        )
        assert result == {"ok": True, "relayed": True}
    finally:
        await srv.stop()
        await relay_proc.stop()
