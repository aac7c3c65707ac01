"""Port mapping against a real router daemon (miniupnpd) on a strict NAT lab router.

Each test runs miniupnpd with one protocol family (UPnP IGD, or NAT-PMP + PCP with the client
restricted to one of them) and a client in a device behind the router: the router's table gets
the mapping, renewals keep it with a short lease, closing empties the table, and a router
restart (daemon killed, rules gone) gets the mapping re-created.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from lab.harness import Lab
from lab.miniupnpd import MiniUpnpd

pytestmark = [pytest.mark.netns, pytest.mark.timeout(90)]

PROTOCOLS = ["pcp", "nat-pmp", "upnp"]
LEASE = 4  # renewed every 2 s


@pytest.fixture
async def daemons() -> AsyncIterator[list[MiniUpnpd]]:
    started: list[MiniUpnpd] = []
    yield started
    for d in started:
        await d.stop()
        d.cleanup()


async def _setup(lab: Lab, daemons: list[MiniUpnpd], protocol: str):  # type: ignore[no-untyped-def]
    stun_host = lab.host("stun")
    stun = await stun_host.spawn_python("lab.stun_server", stun_host.ip)
    port = (await stun.recv(timeout=10))["port"]
    router = lab.router(nat="strict")
    daemon = MiniUpnpd(router, (stun_host.ip, port), "upnp" if protocol == "upnp" else "pcp")
    daemons.append(daemon)
    await daemon.start()
    dev = lab.device(router=router)
    client = await dev.spawn_python("lab.portmap_client", protocol, str(LEASE))
    return router, daemon, dev, client


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_router_grants_renews_and_releases(
    lab: Lab, daemons: list[MiniUpnpd], protocol: str
) -> None:
    router, daemon, dev, client = await _setup(lab, daemons, protocol)
    first = await client.recv(timeout=20)
    mapping = first["mapping"]
    assert mapping is not None, daemon.log[-20:]
    assert mapping["protocol"] == protocol
    assert mapping["external_addr"].startswith(f"{router.wan_ip}:")
    assert mapping["gateway"] == router.gateway
    (entry,) = daemon.mappings()
    assert entry[0] == dev.ip and entry[1] == mapping["internal_port"]
    assert str(entry[2]) == mapping["external_addr"].rsplit(":", 1)[1]
    while (update := await client.recv(timeout=10))["renewals"] < 2:
        pass
    assert update["mapping"] is not None
    assert len(daemon.mappings()) == 1
    client.send({})  # any line; then EOF
    await client.stop(grace=5)
    assert daemon.mappings() == [], "mapping not released on close"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_router_restart_gets_the_mapping_recreated(
    lab: Lab, daemons: list[MiniUpnpd], protocol: str
) -> None:
    _router, daemon, _dev, client = await _setup(lab, daemons, protocol)
    first = await client.recv(timeout=20)
    assert first["mapping"] is not None, daemon.log[-20:]
    await daemon.restart()
    assert daemon.mappings() == []
    while True:
        update = await client.recv(timeout=15)
        if update["mapping"] is not None and daemon.mappings():
            break
    assert len(daemon.mappings()) == 1
    await client.stop(grace=5)


@pytest.mark.parametrize("protocol", ["pcp", "upnp"])
async def test_doctor_reports_the_router_mapping_and_releases_it(
    lab: Lab, daemons: list[MiniUpnpd], protocol: str
) -> None:
    router, daemon, dev, client = await _setup(lab, daemons, protocol)
    await client.stop(grace=5)
    out = await dev.run_json("lab.portmap_client:doctor", f"{dev.ip}:0", timeout=30)
    pm = out["port_mapping"]
    assert pm["protocol"] in (("pcp", "nat-pmp") if protocol == "pcp" else ("upnp",))
    assert pm["external_addr"].startswith(f"{router.wan_ip}:")
    assert pm["lease_seconds"] > 0
    assert daemon.mappings() == []
