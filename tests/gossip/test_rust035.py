"""Rust proof: iroh-gossip 0.35 (PyPI ``iroh==0.35.0``) and aioiroh peers share a topic over
``/iroh-gossip/0``: HyParView neighbors form, broadcasts flow both ways, and every frame Rust
sends (Join, Neighbor, ForwardJoin, Gossip, Prune, IHave, Graft, Disconnect as they occur)
re-encodes byte-identically with our codec. Rust's active view overflowing (evictions) is covered.

The 0.35 bindings cannot switch off n0's public relays, so the whole scenario runs in a fresh
network namespace with nothing but loopback (``unshare --net``): nothing can leave the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from ..support.iroh035 import ROOT, ensure_iroh035_python

pytestmark = [pytest.mark.interop, pytest.mark.netns, pytest.mark.timeout(900)]


def run_scenario() -> dict[str, object]:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("the Rust 0.35 gossip proof needs unshare and ip (util-linux, iproute2)")
    py035 = ensure_iroh035_python()
    proc = subprocess.run(
        [
            "unshare",
            "--net",
            sys.executable,
            "-m",
            "tests.gossip.interop035_driver",
            str(py035),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, f"driver failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    report: dict[str, object] = json.loads(lines[-1].removeprefix("REPORT "))
    return report


def test_rust_035_and_aioiroh_gossip_in_one_topic() -> None:
    r = run_scenario()
    rust_id = r["rust_id"]
    ours = r["our_ids"]
    assert isinstance(ours, list)
    # HyParView: a (Rust's bootstrap) and b (bootstrapped through Rust) have Rust as a
    # neighbor, and Rust reports our peers as its neighbors.
    assert rust_id in r["a_neighbors"]  # type: ignore[operator]
    assert rust_id in r["b_neighbors"]  # type: ignore[operator]
    rust_events = r["rust_neighbor_events"]
    assert isinstance(rust_events, list)
    rust_neighbors = {p for e in rust_events for p in e.get("peers", [e.get("peer")])}
    assert rust_neighbors >= {ours[0], ours[1]}
    # Rust -> every aioiroh peer (c hears it through a or b); aioiroh -> Rust.
    froms = r["ours_received_from"]
    assert isinstance(froms, list) and len(froms) == 3
    assert froms[0] == rust_id and froms[1] == rust_id
    assert froms[2] in ours
    assert r["rust_received_from"] in ours
    # We fell back to the old ALPN for the Rust peer only.
    assert r["v0_peers"] == [rust_id]
    # Every frame Rust sent re-encodes to the same bytes with our codec.
    assert r["reencode_mismatches"] == []
    kinds = r["rust_frames_by_kind"]
    assert isinstance(kinds, dict) and {"Join", "Neighbor", "Gossip"} <= set(kinds), kinds
    # Five more peers joining through Rust overflow its active view: it evicts some of us
    # with Disconnect, and a later broadcast still reaches all eight aioiroh peers.
    assert "Disconnect" in kinds, kinds
    assert r["late_delivered"] == 8
    # When the Rust node goes away, HyParView drops it from our views.
    assert r["rust_gone"] is True
