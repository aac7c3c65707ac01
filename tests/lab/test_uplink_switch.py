"""Uplink switch: the sending device moves to another router in the middle of a transfer.

The connection must survive the move (the data arrives intact) and end on a direct path
again: the endpoint notices its new interface address, asks the relay's QAD service for its new
public mapping and holepunches again.
"""

from __future__ import annotations

from typing import Any

import pytest
from lab.harness import Lab
from lab.transfer import start_relay, transfer

pytestmark = [pytest.mark.netns]

SIZE = 4 * 1024 * 1024


@pytest.mark.timeout(180)
@pytest.mark.parametrize("server_impl", ["ours", pytest.param("rust", marks=pytest.mark.interop)])
@pytest.mark.parametrize("server_nat", ["none", "moderate"])
async def test_uplink_switch_mid_transfer(server_nat: str, server_impl: str) -> None:
    async with Lab() as lab:
        relay, url = await start_relay(lab)
        try:
            server_dev = lab.device(router=None if server_nat == "none" else lab.router(server_nat))
            first = lab.router(nat="moderate")
            second = lab.router(nat="moderate")
            client_dev = lab.device(router=first)
            before: dict[str, Any] = {}

            async def move(msg: dict[str, Any]) -> None:
                before.update(msg)
                lab.switch_uplink(client_dev, second)

            result = await transfer(
                lab,
                url,
                server_dev,
                client_dev,
                server_impl=server_impl,
                size=SIZE,
                at_half=move,
                server_public_ip=(
                    server_dev.public_ip if server_impl == "rust" and server_nat != "none" else ""
                ),
            )
        finally:
            await relay.stop()
    print(f"before the move: {before}; after: {result}")
    assert before.get("direct"), f"not direct before the move: {before}"
    assert result["ok"], result
    # With the server behind a port-restricted NAT, the server's probes of our new address
    # can come long after our own (its REACH_OUT waits behind bulk data on the relay); the
    # client then challenges the probe's source back, which opens the direct path.
    assert result["direct_at_end"], result
    # The direct path at the end goes through the new router's public address or the server's.
    print(f"moved mid-transfer: {result['seconds']:.1f}s, paths {result['paths']}")
