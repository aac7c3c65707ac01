"""The PortMapper service against a real (loopback) NAT-PMP / PCP / UPnP responder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from aioiroh.portmapper import Gateway, PortMapError, PortMapper
from aioiroh.portmapper.service import DEFAULT_LEASE

from .fake_gateway import EXTERNAL_IP, FakeGateway, RunningGateway

LOCAL_PORT = 4500


async def until(
    gw: FakeGateway,
    cond: Callable[[], bool],
    timeout: float = 10.0,
    mapper: PortMapper | None = None,
) -> None:
    """Wait for ``cond`` to hold, re-checking whenever the gateway records a request (or the
    mapper takes an answer)."""
    events = [gw.changed] + ([mapper.updated] if mapper is not None else [])

    async def wait() -> None:
        while not cond():
            for ev in events:
                ev.clear()
            waits = [asyncio.ensure_future(ev.wait()) for ev in events]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
                await asyncio.gather(*waits, return_exceptions=True)

    await asyncio.wait_for(wait(), timeout)


@pytest.fixture
async def make_gateway() -> AsyncIterator[Callable[..., object]]:
    running: list[RunningGateway] = []

    async def make(mode: str, **kw: object) -> tuple[FakeGateway, PortMapper]:
        gw = FakeGateway(mode, **kw)  # type: ignore[arg-type]
        running.append(await RunningGateway(gw).start())

        async def discover() -> Gateway:
            return Gateway("127.0.0.1", "127.0.0.1", pcp_port=gw.udp_port, ssdp_port=gw.ssdp_port)

        lease = int(kw.get("max_lease", DEFAULT_LEASE))  # type: ignore[call-overload]
        return gw, PortMapper(LOCAL_PORT, gateway=discover, lease=lease)

    yield make
    for r in running:
        await r.aclose()


@pytest.mark.parametrize("mode", ["pcp", "nat-pmp", "upnp"])
async def test_mapping_is_granted_renewed_and_released(mode: str, make_gateway) -> None:
    gw, mapper = await make_gateway(mode, max_lease=2)
    changes: list[object] = []
    mapper._on_change = changes.append
    mapper.start()
    # The third request is only sent once the answer to the second (a renewal) was taken.
    await until(gw, lambda: sum(k == "map" for k, _ in gw.requests) >= 3)
    mapping = mapper.mapping()
    assert mapping is not None
    assert mapping.protocol == mode
    assert mapping.external_addr[0] == EXTERNAL_IP
    assert mapping.lease == 2
    assert len(gw.table) == 1
    assert mapper.metrics.renewals >= 1
    await mapper.close()
    assert gw.table == {}
    assert gw.requests[-1][0] == "delete"
    assert mapper.mapping() is None
    assert changes[-1] is None and mapper.metrics.mapped == 0


async def test_nat_pmp_gateway_wins_when_pcp_is_unsupported(make_gateway) -> None:
    gw, mapper = await make_gateway("nat-pmp")
    mapping = await mapper.map_once()
    assert mapping.protocol == "nat-pmp"
    assert mapping.external_addr == (EXTERNAL_IP, LOCAL_PORT + 10000)
    assert mapper.metrics.nat_pmp_available == 1
    await mapper.close()
    assert gw.table == {}


@pytest.mark.parametrize("mode", ["pcp", "nat-pmp"])
async def test_router_restart_recreates_the_mapping(mode: str, make_gateway) -> None:
    gw, mapper = await make_gateway(mode, max_lease=2)
    mapper.start()
    await until(gw, lambda: len(gw.table) == 1)
    gw.restart()
    assert gw.table == {}
    before = mapper.metrics.renewals
    await until(gw, lambda: len(gw.table) == 1 and mapper.metrics.renewals > before, mapper=mapper)
    assert mapper.mapping() is not None
    await mapper.close()
    assert gw.table == {}


async def test_network_change_releases_and_maps_again(make_gateway) -> None:
    gw, mapper = await make_gateway("pcp")
    mapper.start()
    await until(gw, lambda: len(gw.table) == 1)
    mapper.network_changed()
    await until(gw, lambda: [k for k, _ in gw.requests] == ["map", "delete", "map"])
    assert len(gw.table) == 1
    await mapper.close()


async def test_no_gateway_answer_is_a_port_map_error(make_gateway) -> None:
    _gw, mapper = await make_gateway("upnp")
    mapper._protocols = ("pcp", "nat-pmp")
    with pytest.raises(PortMapError, match="no port mapping protocol answered"):
        await mapper.map_once()
    assert mapper.mapping() is None
    await mapper.close()


async def test_no_default_gateway_is_a_port_map_error() -> None:
    async def none() -> None:
        return None

    mapper = PortMapper(LOCAL_PORT, gateway=none)
    with pytest.raises(PortMapError, match="no default gateway"):
        await mapper.map_once()


# -- a hostile "router" ------------------------------------------------------------------------


async def test_absurd_lease_is_clamped_to_what_we_asked(make_gateway) -> None:
    _gw, mapper = await make_gateway("nat-pmp", max_lease=60, hostile={"absurd_lease"})
    mapping = await mapper.map_once()
    assert mapping.lease == 60
    await mapper.close()


@pytest.mark.parametrize(
    ("mode", "hostile"),
    [
        ("pcp", "wrong_nonce"),
        ("pcp", "garbage"),
        ("pcp", "zero_ip"),
        ("nat-pmp", "other_port"),
    ],
)
async def test_hostile_udp_answers_are_rejected_and_counted(
    mode: str, hostile: str, make_gateway
) -> None:
    _gw, mapper = await make_gateway(mode, hostile={hostile})
    with pytest.raises(PortMapError):
        await mapper.map_once()
    assert mapper.mapping() is None
    assert mapper.metrics.bad_responses >= 1
    assert mapper.metrics.mapping_failures == 1
    await mapper.close()


@pytest.mark.parametrize(
    "hostile", ["foreign_location", "foreign_control", "xml_bomb", "huge_description"]
)
async def test_hostile_upnp_gateway_is_refused(hostile: str, make_gateway) -> None:
    gw, mapper = await make_gateway("upnp", hostile={hostile})
    with pytest.raises(PortMapError):
        await mapper.map_once()
    assert mapper.mapping() is None
    assert mapper.metrics.bad_responses >= 1
    assert gw.table == {}
    await mapper.close()


async def test_metrics_render_as_prometheus_text(make_gateway) -> None:
    _gw, mapper = await make_gateway("pcp")
    await mapper.map_once()
    text = mapper.metrics.render().decode()
    assert "portmap_mapping_attempts_total 1.0" in text
    assert "portmap_mapped 1.0" in text
    await mapper.close()


async def test_malformed_ssdp_answers_are_skipped_for_the_real_one(make_gateway) -> None:
    gw, mapper = await make_gateway("upnp", hostile={"bad_ssdp"})
    mapping = await mapper.map_once()
    assert mapping.protocol == "upnp"
    assert mapper.metrics.bad_responses == 3
    await mapper.close()
    assert gw.table == {}
