"""Virtual-time swarm of 200 sans-I/O peers with Rust's default parameters."""

from __future__ import annotations

import pytest

from aioiroh.gossip.messages import TopicId
from aioiroh.gossip.proto import Config, HyparviewConfig

from .sim import SimNetwork

TOPIC = TopicId.from_name("sim")
N = 200


def build(seed: int) -> tuple[SimNetwork, list[str]]:
    net = SimNetwork(seed)
    violations: list[str] = []
    cfg = net.config.membership

    def check(pid: int) -> None:
        st = net.peers[pid].topics.get(TOPIC)
        if st is None:
            return
        if len(st.active) > cfg.active_view_capacity:
            violations.append(f"{pid} active {len(st.active)} at {net.now:.3f}")
        if len(st.passive) > cfg.passive_view_capacity:
            violations.append(f"{pid} passive {len(st.passive)} at {net.now:.3f}")
        if pid in st.active or pid in st.passive or set(st.active) & set(st.passive):
            violations.append(f"{pid} views overlap or contain itself")

    net.on_step = check
    for pid in range(N):
        net.add_peer(pid)
    net.join(0, TOPIC, [])
    for pid in range(1, N):
        # Each newcomer knows one or two random members that joined before it.
        k = 1 if pid < 3 else net.rng.choice((1, 2))
        boot = net.rng.sample(range(pid), k)
        net.at(pid * 0.02, lambda p=pid, b=boot: net.join(p, TOPIC, b))
    net.run_until(N * 0.02 + 5.0)
    return net, violations


def missing(net: SimNetwork, content: bytes) -> list[int]:
    return [p for p in net.peers if p not in net.dead and net.stats.received[p].get(content) != 1]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2])
def test_every_broadcast_reaches_every_peer_exactly_once(seed: int) -> None:
    net, violations = build(seed)
    t0 = net.now
    contents = []
    for i in range(20):
        content = f"msg-{i}".encode()
        contents.append(content)
        sender = net.rng.randrange(N)
        net.at(i * 0.05, lambda s=sender, c=content: net.broadcast(s, TOPIC, c))
    net.run_until(t0 + 5.0)
    for content in contents:
        assert missing(net, content) == [], content
    assert violations == []
    # Every peer ends with at least one neighbor, and active views are (nearly) symmetric:
    # like Rust, a Neighbor crossing a Disconnect on the wire can leave a one-sided edge.
    edges = one_sided = 0
    for pid, state in net.peers.items():
        active = state.topics[TOPIC].active
        assert active, pid
        for other in active:
            edges += 1
            one_sided += pid not in net.peers[other].topics[TOPIC].active
    assert one_sided <= edges * 0.05, (one_sided, edges)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [2, 7])
def test_swarm_still_delivers_after_a_fifth_of_the_peers_die_mid_run(seed: int) -> None:
    net, violations = build(seed)
    t0 = net.now
    victims = net.rng.sample(range(1, N), N // 5)
    # Survivors broadcast (a message whose author dies at once may rightly vanish with it).
    alive_senders = [p for p in range(N) if p not in victims]
    schedule: list[tuple[float, bytes]] = []
    for i in range(60):
        content = f"msg-{i}".encode()
        when = i * 0.1
        schedule.append((when, content))

        def send(c: bytes = content) -> None:
            net.broadcast(net.rng.choice(alive_senders), TOPIC, c)

        net.at(when, send)
    kill_at = 2.0
    net.at(kill_at, lambda: [net.kill(v) for v in victims])
    net.run_until(t0 + 6.0 + 10.0)

    assert len(net.dead) == N // 5
    # Before the kill and once membership repaired itself (a few neighbor timeouts later),
    # every surviving peer gets every message exactly once.
    settled = kill_at + 2.0
    for when, content in schedule:
        if when < kill_at - 0.5 or when >= settled:
            assert missing(net, content) == [], (when, content)
    # Messages broadcast around the kill (in flight, IHaves pointing at the dead) still reach
    # nearly every survivor; nobody ever gets one twice.
    survivors = N - len(net.dead)
    for when, content in schedule:
        if kill_at - 0.5 <= when < settled:
            assert len(missing(net, content)) <= survivors * 0.05, (when, content)
        for p in net.peers:
            assert net.stats.received[p].get(content, 0) <= 1
    assert violations == []
    for pid, state in net.peers.items():
        if pid not in net.dead:
            assert state.topics[TOPIC].active, pid
            assert not set(state.topics[TOPIC].active) & net.dead, pid


def test_views_respect_a_small_active_capacity() -> None:
    net = SimNetwork(3, Config(membership=HyparviewConfig(active_view_capacity=2)))
    for pid in range(10):
        net.add_peer(pid)
    net.join(0, TOPIC, [])
    for pid in range(1, 10):
        net.join(pid, TOPIC, [0])
    net.run_until(5.0)
    for state in net.peers.values():
        assert 1 <= len(state.topics[TOPIC].active) <= 2
    net.broadcast(5, TOPIC, b"x")
    net.run_until(10.0)
    assert missing(net, b"x") == []
