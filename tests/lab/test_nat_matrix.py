"""The NAT matrix (iroh's patchbay scenario): every (server NAT, client NAT) cell, in namespaces.

Each cell must connect (through the relay at least), and every cell where Rust iroh reaches a
direct path must go direct, in all three pairings. aioiroh peers learn their public mapping from
the lab relay's QAD service; Rust peers check a relay's QAD certificate against web PKI roots,
so behind an open or moderate NAT they are told their public address with
``add_external_addr`` instead (lab/matrix.py).

The three cells Rust leaves on the relay (moderate x strict, strict x moderate, strict x strict)
run once more between aioiroh peers with the birthday hard-NAT attempt on
(``Endpoint.bind(hard_nat=True)``, socket/hard_nat.py): the two cells with one port-keeping side
must go direct (a miss has probability ~5e-6 with the default 384 sockets x 2048 ports), and
strict x strict, which needs a double coincidence, must still work through the relay, with the
attempt's probes bounded.

The cells run a few at a time (each in its own lab) in one module-scoped fixture; the
parametrised tests then report one result per cell.
"""

from __future__ import annotations

import pytest
from lab.harness import NAT_KINDS, LabError, gather_limited, run_lab
from lab.matrix import RUST_DIRECT_CELLS, CellResult, run_cell

from aioiroh.socket.hard_nat import DEFAULT_SOCKETS, DEFAULT_SPRAY, MAX_TARGETS

pytestmark = [pytest.mark.netns, pytest.mark.interop]

CELLS = [(s, c) for s in NAT_KINDS for c in NAT_KINDS]
PAIRINGS = [("ours", "ours"), ("ours", "rust"), ("rust", "ours")]
HARD_CELLS = [c for c in CELLS if c not in RUST_DIRECT_CELLS]
WAIT_DIRECT = 2.0
# The attempt starts 2 s after the handshake and lasts at most 5 s.
WAIT_HARD = 8.0
CONCURRENCY = 4
# Probes one side may send in an attempt: two rounds from every extra socket to each target,
# the spray to each target IP, and one answer per four-tuple that got through.
MAX_PROBES = MAX_TARGETS * (2 * DEFAULT_SOCKETS + DEFAULT_SPRAY) + DEFAULT_SOCKETS + 1

Key = tuple[str, str, str, str]


async def _run_all() -> dict[Key, CellResult]:
    async def one(key: Key) -> tuple[Key, CellResult]:
        if key[2] == "hard":
            return key, await run_cell(
                key[0], key[1], "ours", "ours", wait_direct=WAIT_HARD, hard_nat=True
            )
        return key, await run_cell(*key, wait_direct=WAIT_DIRECT)

    keys = [(s, c, "hard", "hard") for (s, c) in HARD_CELLS]
    keys += [(s, c, ps, pc) for (s, c) in CELLS for (ps, pc) in PAIRINGS]
    return dict(await gather_limited(one, keys, CONCURRENCY))


@pytest.fixture(scope="module")
def matrix() -> dict[Key, CellResult]:
    # A module-scoped fixture can't use the per-test event loop; run the batch on its own,
    # after checking the lab can run at all (a missing tool fails here, at once).
    try:
        return run_lab(_run_all(), 600)
    except LabError as exc:
        pytest.fail(str(exc))


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


@pytest.mark.timeout(700)
@pytest.mark.parametrize("cell", HARD_CELLS, ids=lambda c: f"{c[0]}x{c[1]}")
def test_hard_cell_birthday(matrix: dict[Key, CellResult], cell: tuple[str, str]) -> None:
    result = matrix[(*cell, "hard", "hard")]
    assert result.established, result.error
    assert result.hard_nat is not None, "the birthday attempt did not run"
    assert 0 < result.hard_nat["sent"] <= MAX_PROBES, result.hard_nat
    if cell == ("strict", "strict"):
        assert not result.direct, f"strict x strict went direct (unexpected): {result}"
        assert result.hard_nat["matched"] == 0
    else:
        assert result.direct, f"one port-keeping side, yet no direct path: {result}"
        assert result.hard_nat["matched"] > 0
        assert result.time_to_direct is not None and result.time_to_direct < WAIT_HARD
