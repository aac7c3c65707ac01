"""BiasedRttPathSelector decision table (wire doc §4.5)."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from aioiroh.socket.path_selector import BiasedRttPathSelector, PathCandidate, PathKind

MS = 0.001


def _c(key: str, kind: PathKind, rtt_ms: float | None, usable: bool = True) -> PathCandidate:
    return PathCandidate(key, kind, None if rtt_ms is None else rtt_ms * MS, usable)


CASES: list[tuple[str, list[PathCandidate], Hashable | None, Hashable | None]] = [
    ("nothing to choose from", [], None, None),
    ("nothing usable keeps current", [_c("a", "ip4", 10, usable=False)], "a", "a"),
    ("first selection picks lowest rtt", [_c("a", "ip4", 20), _c("b", "ip4", 10)], None, "b"),
    ("no rtt yet is not a candidate", [_c("a", "ip4", None), _c("r", "relay", 50)], None, "r"),
    ("relay only if no ip path", [_c("r", "relay", 1), _c("a", "ip4", 80)], None, "a"),
    ("cross tier switch is immediate", [_c("r", "relay", 5), _c("a", "ip4", 80)], "r", "a"),
    ("ip stays over a faster relay", [_c("r", "relay", 5), _c("a", "ip4", 80)], "a", "a"),
    ("within tier: 4 ms better is not enough", [_c("a", "ip4", 20), _c("b", "ip4", 16)], "a", "a"),
    ("within tier: 5 ms better switches", [_c("a", "ip4", 20), _c("b", "ip4", 15)], "a", "b"),
    ("ipv6 gets 3 ms advantage", [_c("a", "ip4", 20), _c("b", "ip6", 22)], None, "b"),
    ("ipv6 bias counts for anti-flap", [_c("a", "ip4", 20), _c("b", "ip6", 18)], "a", "b"),
    ("ipv6 bias, 1 ms short of switching", [_c("a", "ip4", 20), _c("b", "ip6", 19)], "a", "a"),
    ("current unusable → best", [_c("a", "ip4", 5, usable=False), _c("b", "ip4", 30)], "a", "b"),
    ("current gone → best", [_c("b", "ip4", 30), _c("r", "relay", 10)], "x", "b"),
    ("relay tier anti-flap", [_c("r1", "relay", 50), _c("r2", "relay", 47)], "r1", "r1"),
    ("custom is primary", [_c("c", "custom", 40), _c("r", "relay", 5)], "r", "c"),
    (
        "ip path dies → fall back to relay",
        [_c("a", "ip4", 5, False), _c("r", "relay", 50)],
        "a",
        "r",
    ),
]


@pytest.mark.parametrize(
    ("name", "candidates", "current", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_selection(
    name: str, candidates: list[PathCandidate], current: Hashable | None, expected: Hashable | None
) -> None:
    assert BiasedRttPathSelector().select(candidates, current) == expected
