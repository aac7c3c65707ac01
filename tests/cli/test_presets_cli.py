"""The CLI's network presets: n0 by default, --preset/--relay/--dns-origin/--pkarr-relay.

The default is proven with ``listen --print-config``, which prints the resolved configuration
and exits before binding, so nothing is contacted even with n0 as the default. Every other
command here runs with the suite's local default (AIOIROH_DEFAULT_PRESET=minimal) or with
explicit loopback settings.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from aioiroh import EndpointTicket
from aioiroh.dns_server.server import DnsServer
from aioiroh.relay_server import RelayServer

from ..support.dns import TEST_ORIGIN
from ._run import CLI, json_event, reap, run

pytestmark = pytest.mark.timeout(60)

N0_RELAYS = [
    "https://use1-1.relay.n0.iroh.link./",
    "https://usw1-1.relay.n0.iroh.link./",
    "https://euc1-1.relay.n0.iroh.link./",
    "https://aps1-1.relay.n0.iroh.link./",
]


async def print_config(*args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "listen",
        "--print-config",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await reap(proc)
    data = json.loads(out)["config"] if proc.returncode == 0 else None
    return proc.returncode or 0, data, err.decode()


def env_without_default(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AIOIROH_DEFAULT_PRESET",)}
    env.pop("IROH_FORCE_STAGING_RELAYS", None)
    env.update(extra)
    return env


async def test_the_cli_default_is_n0s_public_network() -> None:
    rc, config, err = await print_config(env=env_without_default())
    assert rc == 0, err
    assert config["name"] == "n0"
    assert config["relays"] == N0_RELAYS
    assert config["pkarr_relay"] == "https://dns.iroh.link/pkarr"
    assert config["dns_origin"] == "dns.iroh.link."


async def test_force_staging_relays_switches_the_cli_default_to_staging() -> None:
    rc, config, err = await print_config(env=env_without_default(IROH_FORCE_STAGING_RELAYS="1"))
    assert rc == 0, err
    assert config["relays"] == [
        "https://use1-1.staging-relay.n0.iroh.link./",
        "https://euc1-1.staging-relay.n0.iroh.link./",
    ]
    assert config["pkarr_relay"] == "https://staging-dns.iroh.link/pkarr"


async def test_the_test_suite_default_is_minimal() -> None:
    assert os.environ["AIOIROH_DEFAULT_PRESET"] == "minimal"
    rc, config, err = await print_config()
    assert rc == 0, err
    assert config["name"] == "minimal" and config["relays"] == []
    assert config["pkarr_relay"] is None and config["dns_origin"] is None


async def test_preset_and_override_flags() -> None:
    _, config, _ = await print_config("--preset", "n0-no-relay", env=env_without_default())
    assert config["relays"] == [] and config["publish_ip_addrs"] is True
    assert config["pkarr_relay"] == "https://dns.iroh.link/pkarr"
    # --relay replaces the preset's relays; the rest of the preset stays.
    _, config, _ = await print_config(
        "--preset", "n0", "--relay", "http://127.0.0.1:1/", "--relay", "http://127.0.0.2:1/"
    )
    assert config["relays"] == ["http://127.0.0.1:1/", "http://127.0.0.2:1/"]
    assert config["dns_origin"] == "dns.iroh.link."
    _, config, _ = await print_config("--preset", "n0", "--relay", "disabled")
    assert config["relays"] == []
    _, config, _ = await print_config(
        "--pkarr-relay",
        "http://127.0.0.1:8080/pkarr",
        "--dns-origin",
        "example.test",
        "--dns-server",
        "127.0.0.1:5300",
    )
    assert config["pkarr_relay"] == "http://127.0.0.1:8080/pkarr"
    assert config["dns_origin"] == "example.test"
    assert config["dns_nameserver"] == ["127.0.0.1", 5300]
    _, config, _ = await print_config("--preset", "n0", "--pkarr-relay", "none")
    assert config["pkarr_relay"] is None


@pytest.mark.parametrize(
    "args",
    [
        ("--relay", "disabled", "--relay", "http://127.0.0.1:1/"),
        ("--relay", "not a url"),
        ("--pkarr-relay", "ftp://127.0.0.1/"),
        ("--preset", "n1"),
    ],
)
async def test_bad_network_flags_are_refused_before_anything_runs(args: tuple[str, ...]) -> None:
    rc, _, err = await print_config(*args)
    assert rc == 2, err
    assert "Traceback" not in err


async def test_listen_with_local_settings_puts_the_home_relay_in_the_ticket(
    relay_server: RelayServer, dns_server: DnsServer
) -> None:
    relay = str(relay_server.http_url).rstrip("/") + "/"
    dns_host, dns_port = dns_server.dns_addr  # type: ignore[misc]
    net = [
        "--preset",
        "minimal",
        "--relay",
        relay,
        "--pkarr-relay",
        dns_server.pkarr_url,
        "--dns-origin",
        TEST_ORIGIN,
        "--dns-server",
        f"{dns_host}:{dns_port}",
    ]
    listener = await asyncio.create_subprocess_exec(
        *CLI,
        "listen",
        "--bind",
        "127.0.0.1:0",
        "--json",
        *net,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        event = await json_event(listener.stdout, "listening")
        assert event["config"]["relays"] == [relay]
        assert event["config"]["pkarr_relay"] == dns_server.pkarr_url
        assert event["home_relay"] == relay
        ticket = EndpointTicket.parse(event["ticket"])
        assert str(ticket.addr.relay_url) == relay
        rc, out, err = await run("connect", event["ticket"], "-m", "via preset", *net, "--json")
        assert rc == 0, err.decode()
        assert json.loads(out)["reply"] == "via preset"
    finally:
        await reap(listener)
