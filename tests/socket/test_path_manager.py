"""PathManager on two real engines (virtual time): it alone drives the relay -> direct upgrade."""

from __future__ import annotations

from aioquic.quic import events

from aioiroh.socket.path_manager import PathEvent, PathManager, path_kind
from aioiroh.socket.paths import IpPath

from ..quic.test_multipath import CLIENT_IP, SERVER_IP, Net


def test_path_kind() -> None:
    assert path_kind(IpPath("::1", 1)) == "ip6"
    assert path_kind(("10.0.0.1", 1)) == "ip4"
    assert path_kind(object()) == "custom"


def test_manager_upgrades_and_selects() -> None:
    net = Net()
    net.run_until(
        lambda: net.server is not None and bool(net.of("server", events.HandshakeCompleted))
    )
    net.run_until(lambda: bool(net.of("client", events.HandshakeCompleted)))
    assert net.server is not None
    seen: dict[str, list[PathEvent]] = {"client": [], "server": []}
    managers = {
        "client": PathManager(
            net.client, local_candidates=lambda: [CLIENT_IP], on_event=seen["client"].append
        ),
        "server": PathManager(
            net.server, local_candidates=lambda: [SERVER_IP], on_event=seen["server"].append
        ),
    }
    for m in managers.values():
        m.start(net.now)

    def tick() -> None:
        for m in managers.values():
            m.poll(net.now)

    def upgraded() -> bool:
        tick()
        return all(
            any(e.kind == "selected" and e.remote in (SERVER_IP, CLIENT_IP) for e in seen[n])
            for n in seen
        )

    net.run_until(upgraded, max_steps=20_000)
    for conn in (net.server, net.client):
        snaps = [s for s in conn.path_snapshots() if not s.abandoned]
        (data,) = [s for s in snaps if s.carries_data]
        assert data.remote in (SERVER_IP, CLIENT_IP)
        assert [s.available for s in snaps if s.path_id == 0] == [False]  # relay: backup
    assert managers["client"].schedule.next_deadline() is not None  # the 60 s check

    # Opening a path to an address already in use gives that path back (no duplicate).
    second = net.client.open_path(SERVER_IP, net.now)
    assert second is not None and second == data.path_id
    tick()
    assert len([s for s in net.client.path_snapshots() if not s.abandoned]) == 2
