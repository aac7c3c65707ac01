"""Degraded links: 3 % loss each way plus an 8 Mbit/s rate limit on the client's uplink.

A 20 MB transfer from an aioiroh client behind a NAT must arrive intact, and the connection
must still find its direct path, against an aioiroh and against a Rust (PyPI iroh) receiver.
"""

from __future__ import annotations

import pytest
from lab.harness import Lab
from lab.transfer import start_relay, transfer

pytestmark = [pytest.mark.netns]

SIZE = 20 * 1024 * 1024
LOSS_PERCENT = 3
RATE = "8mbit"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("server_impl", ["ours", pytest.param("rust", marks=pytest.mark.interop)])
async def test_lossy_rate_limited_transfer(server_impl: str) -> None:
    async with Lab() as lab:
        relay, url = await start_relay(lab)
        try:
            # Both behind port-keeping NATs: the direct path needs each side's public address
            # (QAD for aioiroh; add_external_addr for Rust, which cannot use a lab relay's QAD).
            server_dev = lab.device(router=lab.router(nat="moderate"))
            router = lab.router(nat="moderate")
            client_dev = lab.device(router=router)
            router.set_loss(LOSS_PERCENT)
            client_dev.set_rate(RATE)
            result = await transfer(
                lab,
                url,
                server_dev,
                client_dev,
                server_impl=server_impl,
                size=SIZE,
                timeout=200,
                server_public_ip=server_dev.public_ip if server_impl == "rust" else "",
            )
        finally:
            await relay.stop()
    assert result["ok"], result
    assert result["direct_seen"], result
    print(f"20 MB over {LOSS_PERCENT}% loss + {RATE}: {result['seconds']:.1f}s {result['paths']}")
