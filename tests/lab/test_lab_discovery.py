"""Connect by EndpointId alone through NATs, via our DNS server on the lab's internet segment.

Each cell (lab/discovery.py) puts our relay and ``aioiroh dns-server`` on two public hosts. The
server, behind one NAT, publishes its home relay and direct addresses (the public one learned
from the relay's QAD included) with a PkarrPublisher; the client, behind another NAT, dials its
EndpointId with no address and no relay URL, resolved once over UDP DNS (DnsAddressLookup) and
once over pkarr HTTP (PkarrResolver), then echoes. moderate x moderate must go direct (as in
the NAT matrix); strict x strict must connect and stays on the relay (no birthday attempt here).

Rust iroh is absent: the PyPI binding's EndpointBuilder offers only alpns, bind_addr,
relay_mode, secret_key and the n0/minimal presets, with n0's HTTPS pkarr URLs built in, so it
can neither publish to nor resolve from the lab's DNS server.
"""

from __future__ import annotations

import pytest
from lab.discovery import LOOKUPS, DiscoveryResult, Lookup, run_discovery_cell
from lab.harness import LabError, gather_all, run_lab

pytestmark = [pytest.mark.netns]

CELLS = [("moderate", "moderate"), ("strict", "strict")]
DIRECT_CELLS = {("moderate", "moderate")}
# Seconds from the dial (lookup included) within which a direct path must be selected.
WAIT_DIRECT = 2.0

Key = tuple[str, str, Lookup]


async def _run_all() -> dict[Key, DiscoveryResult]:
    keys = [(s, c, lookup) for (s, c) in CELLS for lookup in LOOKUPS]
    results = await gather_all(
        *(run_discovery_cell(s, c, lookup, wait_direct=WAIT_DIRECT) for (s, c, lookup) in keys)
    )
    return dict(zip(keys, results))


@pytest.fixture(scope="module")
def cells() -> dict[Key, DiscoveryResult]:
    # A module-scoped fixture can't use the per-test event loop; run the batch on its own,
    # after checking the lab can run at all.
    try:
        return run_lab(_run_all(), 150)
    except LabError as exc:
        pytest.fail(str(exc))


def _host(addr: str) -> str:
    return addr.rsplit(":", 1)[0]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("lookup", LOOKUPS)
@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c[0]}x{c[1]}")
def test_connect_by_endpoint_id(
    cells: dict[Key, DiscoveryResult], cell: tuple[str, str], lookup: Lookup
) -> None:
    result = cells[(*cell, lookup)]
    assert result.established, result.error

    # The DNS server holds the server's home relay and its public (QAD-learned) address.
    published = result.published
    assert [u.rstrip("/") for u in published["relay_urls"]] == [result.relay_url], result
    assert result.server_public_ip in {_host(a) for a in published["direct_addresses"]}, result

    # The client knew nothing but the id: everything came from this lookup, and it was all.
    assert result.resolved, f"connected without a lookup answer: {result}"
    assert {item["provenance"] for item in result.resolved} == {lookup}, result
    first = result.resolved[0]
    assert first["relay_urls"] == published["relay_urls"], result
    assert first["direct_addresses"] == published["direct_addresses"], result
    assert result.lookup_s is not None and result.connect_s is not None
    assert result.lookup_s <= result.connect_s

    if cell in DIRECT_CELLS:
        assert result.direct, f"stayed relayed where the NAT matrix goes direct: {result}"
        assert result.time_to_direct is not None and result.time_to_direct < WAIT_DIRECT
    else:
        assert not result.direct, f"strict x strict went direct (unexpected): {result}"
