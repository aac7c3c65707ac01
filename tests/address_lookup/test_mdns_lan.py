"""Two namespaces on one LAN bridge, no relay and no DNS: they find each other by mDNS."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.timeout(90)]


async def test_endpoints_find_each_other_by_local_discovery(lab) -> None:  # type: ignore[no-untyped-def]
    router = lab.router(nat="none")
    a = lab.device(router=router)
    b = lab.device(router=router)
    server = await a.spawn_python("tests.address_lookup.mdns_peer", "serve", a.ip)
    try:
        first = await server.recv(timeout=30)
        result = await b.run_json(
            "tests.address_lookup.mdns_peer", "connect", b.ip, first["id"], timeout=60
        )
        assert result["echo"] == "found you on the LAN"
        assert result["path"].startswith(a.ip + ":")
    finally:
        await server.stop()
