"""`aioiroh doctor`'s port mapping section against a loopback gateway; off unless asked."""

from __future__ import annotations

import json

import pytest

from aioiroh.cli.doctor import Context, probe_port_mapping, render
from aioiroh.portmapper import Gateway

from ..portmapper.fake_gateway import EXTERNAL_IP, FakeGateway, RunningGateway
from ._run import run

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("mode", ["pcp", "nat-pmp", "upnp"])
async def test_doctor_reports_protocol_external_address_and_lease(mode: str) -> None:
    gw = FakeGateway(mode)
    running = await RunningGateway(gw).start()

    async def discover() -> Gateway:
        return Gateway("127.0.0.1", "127.0.0.1", pcp_port=gw.udp_port, ssdp_port=gw.ssdp_port)

    try:
        ctx = Context((), None, "127.0.0.1:0", port_mapping=discover)
        ctx.results["qad"] = {"reflexive_addresses": ["198.51.100.1:4000"]}
        out = await probe_port_mapping(ctx)
    finally:
        await running.aclose()
    pm = out["port_mapping"]
    assert pm["protocol"] == mode
    assert pm["external_addr"].startswith(f"{EXTERNAL_IP}:")
    assert pm["lease_seconds"] == 120
    assert out["double_nat"] is True  # the gateway's address is not the QAD one
    assert gw.table == {}  # released again
    json.dumps(out)
    assert f"port mapping: {mode} {EXTERNAL_IP}:" in render({"port_mapping": out})


async def test_doctor_does_not_touch_the_gateway_unless_asked() -> None:
    rc, out, err = await run("doctor", "--bind", "127.0.0.1:0", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["port_mapping"]["port_mapping"] == "not available"
    assert "--port-mapping" in report["port_mapping"]["why"]
