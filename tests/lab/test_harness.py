"""Self-tests of the NAT lab: each NAT kind, hole punching, impairment, uplink switch, cleanup."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from lab.harness import (
    Device,
    Host,
    Lab,
    LabError,
    LinkUnsupported,
    gather_all,
    netem_available,
    sweep_stale,
)
from lab.harness.netns import NS_PREFIX, delete_namespace, run
from lab.harness.udpcheck import (
    NatCheck,
    Rendezvous,
    natcheck,
    punch_expected,
    punch_pair,
    recv_from,
    send_to,
)

pytestmark = pytest.mark.netns

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

KINDS = ("none", "open", "moderate", "strict")


def _add_device(lab: Lab, kind: str) -> Device:
    return lab.device(router=None if kind == "none" else lab.router(nat=kind))


async def test_each_nat_kind_behaves_as_named(lab: Lab) -> None:
    server = lab.host("probe", n_addrs=2)
    devices = {k: _add_device(lab, k) for k in KINDS}
    results: list[NatCheck] = await gather_all(
        *(natcheck(devices[k], server, port=41000 + 10 * i) for i, k in enumerate(KINDS))
    )
    by_kind = dict(zip(KINDS, results))
    for kind, r in by_kind.items():
        assert r.verdict == kind, (kind, r)
    # Mapping details the verdict does not spell out.
    assert by_kind["none"].mapped[0][0] == devices["none"].ip
    for kind in ("open", "moderate"):
        (pub,) = set(by_kind[kind].mapped)
        assert pub[0] == devices[kind].public_ip
        # An early unsolicited packet must not push the later mapping onto another port.
        assert by_kind[kind].inbound_first_consistent
    # Random per-destination ports: two of three could coincide, all three practically never.
    assert len(set(by_kind["strict"].mapped)) >= 2


async def test_nat_kind_can_be_switched_at_runtime(lab: Lab) -> None:
    server = lab.host("probe", n_addrs=2)
    router = lab.router(nat="moderate")
    dev = lab.device(router=router)
    router.set_nat("strict")
    assert (await natcheck(dev, server, port=42000)).verdict == "strict"
    router.set_nat("open")
    assert (await natcheck(dev, server, port=42010)).verdict == "open"
    with pytest.raises(LabError):
        router.set_nat("cgnat")


async def test_udp_hole_punch_matrix(lab: Lab) -> None:
    relay = lab.host("relay")
    side_a = {k: _add_device(lab, k) for k in KINDS}
    side_b = {k: _add_device(lab, k) for k in KINDS}
    pairs = [(a, b) for a in KINDS for b in KINDS]
    async with Rendezvous(relay) as rdv:
        results = await gather_all(
            *(punch_pair(side_a[a], side_b[b], rdv, f"{a}-{b}") for a, b in pairs)
        )
    table = {pair: r.ok for pair, r in zip(pairs, results)}
    expected = {(a, b): punch_expected(a, b) for a, b in pairs}
    assert table == expected
    # A strict side is reached peer-reflexively: not from the port the rendezvous saw.
    ns = dict(zip(pairs, results))[("none", "strict")]
    assert ns.b.observed is not None and ns.b.observed not in ns.a.peer_seen_from


async def _delivered(
    dev: Device, server: Host, port: int, n: int, clear: Callable[[], None]
) -> int:
    """Send ``n`` datagrams from ``dev`` to ``server`` and count how many arrive.

    ``clear`` removes the impairment after the last datagram, so that an end marker can
    follow without itself being dropped.
    """
    sink = server.socket(bind=(server.ip, port))
    # A deep receive buffer so socket overflow cannot pass for link loss.
    sink.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    src = dev.socket(bind=("0.0.0.0", 0))
    try:
        for i in range(n):
            await send_to(src, b"d", (server.ip, port))
            if i % 20 == 19:
                # Pace the burst (about 4000 packets/s) so the kernel's per-CPU backlog never
                # overflows on a loaded machine; only the impairment may lose packets here.
                await asyncio.sleep(0.005)
        clear()
        await send_to(src, b"end", (server.ip, port))
        received = 0
        while (got := await recv_from(sink, 5.0)) is not None and got[0] != b"end":
            received += 1
        assert got is not None, "end marker lost on a clean link"
        # Stragglers that took another CPU's queue may trail the marker slightly.
        while await recv_from(sink, 0.1) is not None:
            received += 1
    finally:
        src.close()
        sink.close()
    return received


async def test_loss_drops_the_configured_share(lab: Lab) -> None:
    server = lab.host("sink")
    router = lab.router(nat="moderate")
    dev = lab.device(router=router)
    n = 2000
    dev.set_loss(20)
    lost = 1 - await _delivered(dev, server, 43000, n, lambda: dev.set_loss(0)) / n
    assert 0.16 < lost < 0.24, lost
    # Router loss applies once per direction on forwarded traffic.
    router.set_loss(10)
    lost = 1 - await _delivered(dev, server, 43001, n, lambda: router.set_loss(0)) / n
    assert 0.06 < lost < 0.14, lost
    # With the impairment removed the link is clean.
    assert await _delivered(dev, server, 43002, 500, lambda: None) == 500


async def _tcp_rate_mbit(sender: Device, receiver: Device, port: int, nbytes: int) -> float:
    """Mbit/s of one TCP transfer of ``nbytes`` from ``sender`` to ``receiver``."""
    loop = asyncio.get_running_loop()
    lsock = receiver.socket(type=socket.SOCK_STREAM, bind=("0.0.0.0", port))
    lsock.listen(1)
    csock = sender.socket(type=socket.SOCK_STREAM)
    try:
        accept = asyncio.ensure_future(loop.sock_accept(lsock))
        await loop.sock_connect(csock, (receiver.public_ip, port))
        conn, _ = await accept
        with conn:
            t0 = time.monotonic()

            async def drain() -> int:
                got = 0
                while got < nbytes:
                    chunk = await loop.sock_recv(conn, 65536)
                    if not chunk:
                        break
                    got += len(chunk)
                return got

            reader = asyncio.ensure_future(drain())
            await loop.sock_sendall(csock, b"\0" * nbytes)
            got = await reader
            elapsed = time.monotonic() - t0
    finally:
        csock.close()
        lsock.close()
    assert got == nbytes
    return nbytes * 8 / elapsed / 1e6


async def test_rate_limit_caps_throughput(lab: Lab) -> None:
    host = lab.host("sink")
    dev = lab.device()  # public, so the host can also connect to it for the download
    dev.set_rate("4mbit", direction="up")
    up = await _tcp_rate_mbit(dev, host, 44000, 400_000)  # ~0.8 s
    assert 2.5 < up < 4.5, up
    down_free = await _tcp_rate_mbit(host, dev, 44001, 4_000_000)
    assert down_free > 40, down_free
    dev.set_rate(None, direction="up")
    dev.set_rate("4mbit", direction="down")
    down = await _tcp_rate_mbit(host, dev, 44002, 400_000)
    assert 2.5 < down < 4.5, down
    up_free = await _tcp_rate_mbit(dev, host, 44003, 4_000_000)
    assert up_free > 40, up_free


async def test_delay_needs_netem(lab: Lab) -> None:
    """Latency works where the kernel has netem and fails loudly where it does not."""
    server = lab.host("echo")
    dev = _add_device(lab, "open")
    if not netem_available():
        with pytest.raises(LinkUnsupported):
            dev.set_delay(50)
        return
    dev.set_delay(100)
    s_srv = server.socket(bind=(server.ip, 45000))
    s_dev = dev.socket(bind=("0.0.0.0", 0))
    try:
        t0 = time.monotonic()
        await send_to(s_dev, b"ping", (server.ip, 45000))
        got = await recv_from(s_srv, 2.0)
        assert got is not None
        assert time.monotonic() - t0 >= 0.09
    finally:
        s_srv.close()
        s_dev.close()


async def test_uplink_switch_changes_public_mapping(lab: Lab) -> None:
    server = lab.host("probe")
    r1 = lab.router(nat="moderate")
    r2 = lab.router(nat="open")
    dev = lab.device(router=r1)
    srv = server.socket(bind=(server.ip, 46000))
    s = dev.socket(bind=("0.0.0.0", 0))  # wildcard-bound: survives the move, like a QUIC socket
    try:
        await send_to(s, b"before", (server.ip, 46000))
        got = await recv_from(srv, 2.0)
        assert got is not None and got[1][0] == r1.wan_ip
        before_ip = dev.ip
        lab.switch_uplink(dev, r2)
        assert dev.router is r2 and dev.ip != before_ip and dev.public_ip == r2.wan_ip
        await send_to(s, b"after", (server.ip, 46000))
        got = await recv_from(srv, 2.0)
        assert got is not None and got[1][0] == r2.wan_ip
        # Replies reach the device through the new router.
        await send_to(srv, b"reply", got[1])
        back = await recv_from(s, 2.0)
        assert back is not None and back[0] == b"reply"
        # And a public device can move behind a NAT too.
        pub = lab.device()
        lab.switch_uplink(pub, r1)
        assert pub.public_ip == r1.wan_ip
    finally:
        s.close()
        srv.close()


STDIN_WAITER = "import sys\nsys.stdin.read()\n"  # exits when stdin closes
STDIN_IGNORER = "import time\ntime.sleep(600)\n"  # only a kill stops it


async def test_teardown_leaves_nothing_behind(tmp_path: Path) -> None:
    polite = tmp_path / "polite.py"
    polite.write_text(STDIN_WAITER)
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(STDIN_IGNORER)
    before_tables = run(["nft", "list", "tables"], check=False)
    async with Lab() as lab:
        r = lab.router(nat="open")
        d = lab.device(router=r)
        d.set_loss(5)
        r.set_rate("10mbit")
        lab.host("relay")
        proc = await d.spawn_python(str(polite))
        names = lab.namespaces
        prefix = lab.if_prefix
        listed = run(["ip", "netns", "list"])
        assert all(n in listed for n in names)
        assert proc.returncode is None
    # Teardown ran: no namespaces, no processes, nothing on the host.
    listed = run(["ip", "netns", "list"])
    assert not [n for n in names if n in listed]
    assert proc.returncode == 0  # it saw EOF and exited by itself
    assert prefix not in run(["ip", "-o", "link"])
    assert run(["nft", "list", "tables"], check=False) == before_tables

    # A child that ignores stdin is killed by the synchronous close, even mid-test.
    lab = Lab()
    dev = lab.device(router=lab.router(nat="strict"))
    proc = await dev.spawn_python(str(stubborn))
    lab.close()
    assert await proc.stop() != 0
    listed = run(["ip", "netns", "list"])
    assert not [n for n in lab.namespaces if n in listed]

    # And on an exception inside the block.
    with pytest.raises(RuntimeError, match="boom"), Lab() as lab2:
        lab2.device(router=lab2.router(nat="moderate"))
        raise RuntimeError("boom")
    listed = run(["ip", "netns", "list"])
    assert not [n for n in lab2.namespaces if n in listed]


def test_sweeper_removes_only_dead_runs_leftovers() -> None:
    dead_pid = 4_000_000  # above pid_max's default ceiling: certainly not running
    stale = f"{NS_PREFIX}{dead_pid}-1-inet"
    live = f"{NS_PREFIX}{os.getpid()}-999-inet"
    run(["ip", "netns", "add", stale])
    run(["ip", "netns", "add", live])
    try:
        removed = sweep_stale()
        assert stale in removed and live not in removed
        assert live in run(["ip", "netns", "list"])
    finally:
        delete_namespace(stale)
        delete_namespace(live)
    with pytest.raises(LabError):
        delete_namespace("not-ours")


@pytest.mark.interop
@pytest.mark.timeout(60)
async def test_spawned_rust_iroh_endpoints_echo_between_devices(lab: Lab) -> None:
    router = lab.router(nat="moderate")
    d1 = lab.device(router=router)
    d2 = lab.device(router=router)
    server = await d1.spawn_python("tests.lab.iroh_echo_peer", f"{d1.ip}:0")
    client = await d2.spawn_python("tests.lab.iroh_echo_peer", f"{d2.ip}:0")
    s_ready = await server.recv()
    c_ready = await client.recv()
    assert s_ready["ready"] and c_ready["ready"]
    # iroh also binds an IPv6 wildcard socket (IPv6 is off in the lab); dial the IPv4 one.
    v4 = [a for a in s_ready["addrs"] if a.startswith(d1.ip + ":")]
    assert len(v4) == 1, s_ready
    server.send({"cmd": "serve"})
    client.send({"cmd": "connect", "id": s_ready["id"], "addrs": v4, "data": "hi"})
    assert await client.recv() == {"echo": "hi"}
    assert await server.recv() == {"served": c_ready["id"]}
    assert await client.stop() == 0
    assert await server.stop() == 0


async def test_run_json_returns_a_function_result_from_inside_the_namespace(lab: Lab) -> None:
    dev = _add_device(lab, "moderate")
    # socket.gethostbyname of a literal needs no DNS; the point is that argv and JSON travel.
    out = await dev.run_json("json:loads", json.dumps({"ip": dev.ip}))
    assert out == {"ip": dev.ip}
    # The child really is inside the device's namespace: it sees the device's interface.
    ifaces = await dev.run_json("socket:if_nameindex")
    assert dev.iface in [name for _, name in ifaces]
    with pytest.raises(LabError):
        await dev.run_json("lab.harness._runner_missing:nothing")


async def test_a_namespace_gets_its_own_hosts_and_resolv_conf(lab: Lab) -> None:
    host = lab.host("relay")
    dev = lab.device(router=lab.router(nat="open"))
    dev.ns.write_etc("hosts", f"{host.ip} relay-a.box.test\n")
    dev.ns.write_etc("resolv.conf", f"nameserver {host.ip}\n")
    assert dev.ns.exec("getent", "hosts", "relay-a.box.test").split()[0] == host.ip
    assert dev.ns.exec("cat", "/etc/resolv.conf").strip() == f"nameserver {host.ip}"
    # Other namespaces (and the host) keep their own files.
    assert "relay-a.box.test" not in host.ns.exec("cat", "/etc/hosts")
    with pytest.raises(LabError):
        dev.ns.write_etc("passwd", "")
    folder = Path("/etc/netns") / dev.ns.name
    assert folder.is_dir()
    lab.close()
    assert not folder.exists()
