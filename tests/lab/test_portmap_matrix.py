"""The NAT matrix's three hard cells with a mapping router (miniupnpd) on the strict side(s).

Without port mapping moderate x strict, strict x moderate and strict x strict stay on the relay
(tests/lab/test_nat_matrix.py; the control cell below shows the same routers still relay when
nobody asks for a mapping). With the router granting a mapping, aioiroh peers go direct over
PCP/NAT-PMP and over UPnP IGD, and so do Rust iroh peers over UPnP (the PyPI binding's
portmapper sent no PCP or NAT-PMP request in the lab; see lab/portmap_matrix.py).
"""

from __future__ import annotations

import asyncio

import pytest
from lab.matrix import CellResult
from lab.portmap_matrix import MAPPED_CELLS, run_mapped_cell

pytestmark = [pytest.mark.netns, pytest.mark.interop]

WAIT_DIRECT = 3.0
CONCURRENCY = 3
# (server impl, client impl, protocol the strict routers serve)
RUNS = [("ours", "ours", "pcp"), ("ours", "ours", "upnp"), ("rust", "rust", "upnp")]

Key = tuple[str, str, str, str, str]


async def _run_all() -> dict[Key, CellResult]:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(key: Key) -> tuple[Key, CellResult]:
        s, c, si, ci, proto = key
        async with sem:
            mapping = proto != "none"
            return key, await run_mapped_cell(
                s, c, si, ci, WAIT_DIRECT, protocol="pcp" if not mapping else proto,
                port_mapping=mapping,
            )  # fmt: skip

    keys: list[Key] = [(s, c, si, ci, p) for (s, c) in MAPPED_CELLS for (si, ci, p) in RUNS]
    keys.append(("strict", "strict", "ours", "ours", "none"))
    return dict(await asyncio.gather(*(one(k) for k in keys)))


@pytest.fixture(scope="module")
def matrix() -> dict[Key, CellResult]:
    return asyncio.run(asyncio.wait_for(_run_all(), 400))


@pytest.mark.timeout(450)
@pytest.mark.parametrize("run", RUNS, ids=lambda r: f"{r[0]}-{r[1]}-{r[2]}")
@pytest.mark.parametrize("cell", MAPPED_CELLS, ids=lambda c: f"{c[0]}x{c[1]}")
def test_hard_cell_goes_direct_with_port_mapping(
    matrix: dict[Key, CellResult], cell: tuple[str, str], run: tuple[str, str, str]
) -> None:
    result = matrix[(*cell, *run)]
    assert result.established, result.error
    assert result.direct, f"stayed relayed with a mapping router: {result}"


@pytest.mark.timeout(450)
def test_same_routers_without_port_mapping_stay_relayed(matrix: dict[Key, CellResult]) -> None:
    result = matrix[("strict", "strict", "ours", "ours", "none")]
    assert result.established, result.error
    assert not result.direct, f"went direct without a mapping (lab broken?): {result}"
