"""`aioiroh doctor` against our loopback relay, and with nothing configured."""

from __future__ import annotations

import json
import socket

import pytest

from aioiroh.relay_server import RelayServer

from ..support.relay import relay_server  # noqa: F401  (fixture)
from ._run import run

pytestmark = pytest.mark.timeout(60)

LOOPBACK = ("--bind", "127.0.0.1:0")


async def test_doctor_with_a_relay(relay_server: RelayServer) -> None:  # noqa: F811
    url = str(relay_server.http_url)
    rc, out, err = await run("doctor", *LOOPBACK, "--relay", url, "--json")
    assert rc == 0, err
    report = json.loads(out)
    (relay,) = report["relay_latency"]["relays"]
    assert relay["ok"] and relay["latency_ms"] > 0 and relay["samples"] == 5
    assert report["home_relay"]["home_relay"].rstrip("/") == url.rstrip("/")
    assert report["reachability"]["ipv4"]["relays"][url] is True
    # Honest about what is not built yet.
    assert report["qad"]["reflexive_addresses"] == "not available"
    assert report["nat"]["nat"] == "not available"
    assert report["environment"]["aioiroh"]
    # The same report for people.
    rc, out, err = await run("doctor", *LOOPBACK, "--relay", url)
    assert rc == 0, err
    text = out.decode()
    assert f"relay {url}:" in text and " ms (median of 5)" in text
    assert "home relay: http://127.0.0.1" in text and "NAT behaviour: not available" in text


async def test_doctor_without_relays_and_with_a_dead_one() -> None:
    rc, out, err = await run("doctor", *LOOPBACK, "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["relay_latency"]["relays"] == []
    assert report["home_relay"]["home_relay"] is None
    assert {"ipv4", "ipv6"} <= report["local"].keys()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    rc, out, err = await run("doctor", *LOOPBACK, "--relay", dead, "--json", timeout=60)
    assert rc == 0, err
    report = json.loads(out)
    (relay,) = report["relay_latency"]["relays"]
    assert relay["ok"] is False and relay["error"]
    assert report["home_relay"]["home_relay"] is None
    assert report["reachability"]["ipv4"]["relays"][dead] is False
