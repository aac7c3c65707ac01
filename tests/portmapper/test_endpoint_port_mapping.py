"""Endpoint.port_mapping(): the gateway's mapping becomes a direct candidate; released on close."""

from __future__ import annotations

import pytest

from aioiroh import Endpoint
from aioiroh.portmapper import Gateway

from .fake_gateway import EXTERNAL_IP, FakeGateway, RunningGateway
from .test_service import until


@pytest.mark.parametrize("mode", ["pcp", "upnp"])
async def test_endpoint_publishes_and_releases_its_port_mapping(mode: str) -> None:
    gw = FakeGateway(mode)
    running = await RunningGateway(gw).start()

    async def discover() -> Gateway:
        return Gateway("127.0.0.1", "127.0.0.1", pcp_port=gw.udp_port, ssdp_port=gw.ssdp_port)

    try:
        ep = await Endpoint.bind(bind_addr="127.0.0.1:0", port_mapping=discover)
        try:
            await until(gw, lambda: ep.port_mapping() is not None, mapper=ep._portmapper)
            mapping = ep.port_mapping()
            assert mapping is not None and mapping.protocol == mode
            port = ep.bound_sockets()[0][1]
            assert mapping.internal_port == port
            assert mapping.external_addr[0] == EXTERNAL_IP
            assert mapping.external_addr in ep.direct_addresses()
            assert mapping.external_addr in ep._candidate_addresses()
            assert mapping.to_json()["protocol"] == mode
        finally:
            await ep.close()
        assert gw.table == {}
        assert ep.port_mapping() is None
    finally:
        await running.aclose()


async def test_port_mapping_is_off_by_default() -> None:
    async with await Endpoint.bind(bind_addr="127.0.0.1:0") as ep:
        assert ep.port_mapping() is None
        assert ep._portmapper is None
