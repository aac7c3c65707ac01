"""`aioiroh ping` against `aioiroh listen`: RTTs, path kind, summary, Ctrl-C."""

from __future__ import annotations

import json

import pytest

from aioiroh.base.endpoint_addr import EndpointAddr
from aioiroh.base.key import PublicKey
from aioiroh.base.ticket import EndpointTicket
from aioiroh.relay_server import RelayServer

from ..support.relay import relay_server  # noqa: F401  (fixture)
from ._run import interrupt, json_event, json_line, run, running

pytestmark = pytest.mark.timeout(60)

LOOPBACK = ("--bind", "127.0.0.1:0")


def events(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith(b"{")]


async def test_ping_direct_counts_and_reports_path() -> None:
    async with running("listen", *LOOPBACK, "--json") as lis:
        ticket = (await json_line(lis.stdout))["ticket"]
        rc, out, err = await run("ping", ticket, *LOOPBACK, "-c", "3", "-i", "0.05", "--json")
        assert rc == 0, err
        evs = events(out)
        pongs = [e for e in evs if e["event"] == "pong"]
        assert [p["seq"] for p in pongs] == [1, 2, 3]
        assert all(p["rtt_ms"] > 0 and p["path_kind"] == "direct" for p in pongs)
        assert pongs[0]["path"].startswith(("127.0.0.1:", "[::1]:"))
        paths = [e for e in evs if e["event"] == "paths"]
        assert paths and paths[0]["kind"] == "direct"
        summary = evs[-1]
        assert summary["event"] == "summary" and summary["received"] == 3 and summary["loss"] == 0
        # People get one line per ping and a summary.
        rc, out, err = await run("ping", ticket, *LOOPBACK, "-c", "2", "-i", "0")
        assert rc == 0, err
        text = out.decode()
        assert "seq=1 rtt=" in text and "seq=2 rtt=" in text and "via direct" in text
        assert "2 sent, 2 received, 0% loss" in text


async def test_ping_over_relay_path(relay_server: RelayServer) -> None:  # noqa: F811
    url = str(relay_server.http_url)
    async with running("listen", *LOOPBACK, "--relay", url, "--json") as lis:
        first = await json_line(lis.stdout)
        # A ticket with only the relay: the connection starts there, then hole punching (on
        # loopback, at once) moves it to a direct path, which ping reports as it happens.
        relay_only = EndpointTicket(EndpointAddr(PublicKey.parse(first["endpoint_id"]), url, []))
        rc, out, err = await run(
            "ping", str(relay_only), *LOOPBACK, "--relay", url, "-c", "3", "-i", "0.3", "--json"
        )
        assert rc == 0, err
        evs = events(out)
        pongs = [e for e in evs if e["event"] == "pong"]
        assert len(pongs) == 3
        # The relay path is reported unless the upgrade beat ping's first look at the paths;
        # either way the connection ends up direct.
        kinds = [e["kind"] for e in evs if e["event"] == "paths"]
        assert kinds[-1] == "direct", kinds
        assert pongs[-1]["path_kind"] == "direct"


async def test_ping_until_ctrl_c_prints_summary() -> None:
    async with running("listen", *LOOPBACK, "--json") as lis:
        ticket = (await json_line(lis.stdout))["ticket"]
        async with running("ping", ticket, *LOOPBACK, "-i", "0.05", "--json") as ping:
            await json_event(ping.stdout, "pong")
            assert await interrupt(ping) == 130
            summary = await json_event(ping.stdout, "summary")
            assert summary["received"] >= 1


async def test_ping_unreachable_is_an_error() -> None:
    from aioiroh.endpoint import Endpoint

    async with await Endpoint.bind(bind_addr="127.0.0.1:0") as ep:
        ticket = str(ep.ticket())
    rc, out, err = await run("ping", ticket, *LOOPBACK, "--timeout", "1", "-c", "1", "--json")
    assert rc == 1 and b"Traceback" not in err
    assert events(out)[-1]["event"] == "error"
