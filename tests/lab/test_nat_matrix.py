"""The NAT matrix (iroh's patchbay scenario): every (server NAT, client NAT) cell, in namespaces.

Each cell must connect (through the relay at least), and every cell where Rust iroh reaches a
direct path must go direct, in all three pairings. aioiroh peers learn their public mapping from
the lab relay's QAD service; Rust peers check a relay's QAD certificate against web PKI roots,
so behind an open or moderate NAT they are told their public address with
``add_external_addr`` instead (lab/matrix.py).

The cells run a few at a time (each in its own lab) in one module-scoped fixture; the
parametrised tests then report one result per cell.
"""

from __future__ import annotations

import asyncio

import pytest
from lab.harness import NAT_KINDS
from lab.matrix import RUST_DIRECT_CELLS, CellResult, run_cell

pytestmark = [pytest.mark.netns, pytest.mark.interop]

CELLS = [(s, c) for s in NAT_KINDS for c in NAT_KINDS]
PAIRINGS = [("ours", "ours"), ("ours", "rust"), ("rust", "ours")]
WAIT_DIRECT = 2.0
CONCURRENCY = 4

Key = tuple[str, str, str, str]


async def _run_all() -> dict[Key, CellResult]:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(key: Key) -> tuple[Key, CellResult]:
        async with sem:
            return key, await run_cell(*key, wait_direct=WAIT_DIRECT)

    keys = [(s, c, ps, pc) for (s, c) in CELLS for (ps, pc) in PAIRINGS]
    return dict(await asyncio.gather(*(one(k) for k in keys)))


@pytest.fixture(scope="module")
def matrix() -> dict[Key, CellResult]:
    # A module-scoped fixture can't use the per-test event loop; run the batch on its own.
    return asyncio.run(asyncio.wait_for(_run_all(), 600))


@pytest.mark.timeout(700)
@pytest.mark.parametrize("pairing", PAIRINGS, ids=lambda p: f"{p[0]}-srv_{p[1]}-cli")
@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c[0]}x{c[1]}")
def test_cell(
    matrix: dict[Key, CellResult], cell: tuple[str, str], pairing: tuple[str, str]
) -> None:
    result = matrix[(*cell, *pairing)]
    assert result.established, result.error
    if cell in RUST_DIRECT_CELLS:
        assert result.direct, f"stayed relayed where Rust iroh goes direct: {result}"
