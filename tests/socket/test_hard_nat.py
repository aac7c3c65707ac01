"""The birthday hard-NAT attempt's sans-I/O core: probe codec, target choice, schedule, answers."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioiroh.socket.hard_nat import (
    KIND_ACK,
    KIND_PROBE,
    MAGIC,
    MAX_TARGETS,
    MAX_TOKEN,
    PORT_MAX,
    PORT_MIN,
    REPEAT_AT,
    SPRAY_CHUNK,
    SPRAY_DELAY,
    SPRAY_INTERVAL,
    WINDOW,
    BirthdayPunch,
    HardNatStats,
    Probe,
    Send,
    decode_probe,
    encode_probe,
    is_probe,
    public_ipv4,
    select_targets,
)

pytestmark = pytest.mark.timeout(30)

TOKEN = bytes(range(1, 9))
T1 = ("203.0.113.7", 40000)
T2 = ("198.51.100.9", 50000)
START = 100.0


def _punch(
    targets: list[tuple[str, int]] | None = None,
    *,
    sockets: list[int] | None = None,
    spray: int = 600,
    seed: int = 7,
    now: float = START,
) -> BirthdayPunch:
    return BirthdayPunch(
        TOKEN,
        [T1, T2] if targets is None else targets,
        now,
        sockets=[1, 2, 3] if sockets is None else sockets,
        spray=spray,
        rng=random.Random(seed),
    )


def _drive(punch: BirthdayPunch) -> list[tuple[float, list[Send]]]:
    """Poll at each deadline until none is left: (time, sends) per poll."""
    polls: list[tuple[float, list[Send]]] = []
    while (at := punch.next_deadline()) is not None:
        assert not polls or at >= polls[-1][0]
        polls.append((at, punch.poll(at)))
        assert len(polls) < 10_000
    return polls


def _socket_probes(sends: list[Send]) -> list[Send]:
    return [s for s in sends if s.local != 0]


def _spray(sends: list[Send]) -> list[Send]:
    return [s for s in sends if s.local == 0]


# -- probe codec ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [KIND_PROBE, KIND_ACK])
@pytest.mark.parametrize("token", [b"", b"\x01", TOKEN, bytes(range(MAX_TOKEN))])
def test_probe_round_trip(kind: int, token: bytes) -> None:
    data = encode_probe(kind, token)
    assert data.startswith(MAGIC) and len(data) == len(MAGIC) + 2 + len(token)
    assert is_probe(data)
    assert decode_probe(data) == Probe(kind, token)


def test_probe_first_byte_is_zero_so_never_quic() -> None:
    # QUIC v1 packets always have the fixed bit (0x40) set in their first byte.
    for kind in (KIND_PROBE, KIND_ACK):
        data = encode_probe(kind, TOKEN)
        assert data[0] == 0
        assert not data[0] & 0x40


def test_encode_rejects_long_token() -> None:
    with pytest.raises(ValueError):
        encode_probe(KIND_PROBE, bytes(MAX_TOKEN + 1))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        MAGIC,
        MAGIC + b"\x00",  # no length byte
        b"\x00aioBdaX" + bytes([KIND_PROBE, 0]),  # wrong magic
        b"\x01aioBday" + bytes([KIND_PROBE, 0]),  # wrong first byte
        MAGIC + bytes([2, 0]),  # unknown kind
        MAGIC + bytes([0xFF, 0]),
        MAGIC + bytes([KIND_PROBE, 8]) + TOKEN[:7],  # token shorter than announced
        MAGIC + bytes([KIND_PROBE, 8]) + TOKEN + b"x",  # trailing byte
        MAGIC + bytes([KIND_ACK, 0]) + b"x",
        MAGIC + bytes([KIND_PROBE, MAX_TOKEN + 1]) + bytes(MAX_TOKEN + 1),  # token > 20
        MAGIC + bytes([KIND_PROBE, 255]) + bytes(255),
    ],
)
def test_decode_malformed_is_none(data: bytes) -> None:
    assert decode_probe(data) is None


def test_is_probe_only_checks_magic() -> None:
    assert is_probe(MAGIC + bytes([9, 9]))
    assert not is_probe(MAGIC[:-1])
    assert not is_probe(b"\xc0" + MAGIC[1:])


@given(st.binary(max_size=64))
def test_decode_never_raises(data: bytes) -> None:
    probe = decode_probe(data)
    if probe is not None:
        assert encode_probe(probe.kind, probe.token) == data


@given(
    st.sampled_from([KIND_PROBE, KIND_ACK, 2, 255]),
    st.integers(min_value=0, max_value=255),
    st.binary(max_size=40),
)
def test_decode_near_valid_never_raises(kind: int, n: int, tail: bytes) -> None:
    data = MAGIC + bytes([kind, n]) + tail
    valid = kind in (KIND_PROBE, KIND_ACK) and n <= MAX_TOKEN and len(tail) == n
    assert decode_probe(data) == (Probe(kind, tail) if valid else None)


# -- targets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "127.0.0.1",
        "127.1.2.3",
        "169.254.1.1",
        "0.0.0.0",
        "::1",
        "2001:db8::1",
        "::ffff:8.8.8.8",
        "fe80::1",
        "",
        "not-an-ip",
        "256.1.1.1",
        "example.com",
    ],
)
def test_not_public_ipv4(host: str) -> None:
    assert public_ipv4(host) is False


@pytest.mark.parametrize(
    "host", ["198.18.0.1", "100.64.0.1", "8.8.8.8", "172.15.0.1", "172.32.0.1", "203.0.113.7"]
)
def test_public_ipv4(host: str) -> None:
    assert public_ipv4(host) is True


def test_select_targets_order_dedup_cap() -> None:
    assert MAX_TARGETS == 2
    cands = [
        ("10.0.0.1", 1),
        T2,
        ("::1", 5),
        T2,
        T1,
        ("8.8.8.8", 53),
    ]
    assert select_targets(cands) == [T2, T1]
    assert select_targets([T1, T1, T1]) == [T1]
    assert select_targets([("127.0.0.1", 1), ("192.168.0.1", 2)]) == []
    assert select_targets([]) == []
    # Same IP, other port: a separate target.
    assert select_targets([T1, (T1[0], 1)]) == [T1, (T1[0], 1)]


# -- schedule ------------------------------------------------------------------------------


def test_construction_filters_targets() -> None:
    punch = _punch([("10.0.0.1", 1), T1, ("::1", 2), T2, ("8.8.8.8", 3)])
    assert punch.targets == [T1, T2]
    assert punch.active
    assert punch.started == START and punch.ends == START + WINDOW


def test_sockets_probe_all_targets_at_start_and_at_repeat() -> None:
    punch = _punch()
    assert punch.next_deadline() == START
    assert punch.poll(START - 0.001) == []
    first = punch.poll(START)
    probe = encode_probe(KIND_PROBE, TOKEN)
    assert first == [Send(local, addr, probe) for local in (1, 2, 3) for addr in (T1, T2)]
    assert punch.sent == 6
    # Nothing more from the extra sockets until REPEAT_AT.
    polls = [(t, sends) for t, sends in _drive(punch) if _socket_probes(sends)]
    assert len(polls) == 1
    at, sends = polls[0]
    assert at == START + REPEAT_AT
    assert _socket_probes(sends) == first


def test_spray_schedule_chunks_and_ports() -> None:
    spray = 600
    punch = _punch(spray=spray)
    punch.poll(START)
    assert punch.next_deadline() == pytest.approx(START + SPRAY_DELAY)
    assert punch.poll(START + SPRAY_DELAY - 0.001) == []
    polls = _drive(punch)
    chunks = [(t, _spray(s)) for t, s in polls if _spray(s)]
    assert chunks[0][0] == pytest.approx(START + SPRAY_DELAY)
    for i, (t, sends) in enumerate(chunks):
        assert t == pytest.approx(START + SPRAY_DELAY + i * SPRAY_INTERVAL)
        assert all(s.local == 0 for s in sends)
    sizes = [len(s) for _, s in chunks]
    total = spray * 2  # two target IPs
    assert sizes == [SPRAY_CHUNK] * (total // SPRAY_CHUNK) + [total % SPRAY_CHUNK]
    sprayed = [s for _, sends in chunks for s in sends]
    probe = encode_probe(KIND_PROBE, TOKEN)
    assert all(s.data == probe for s in sprayed)
    assert {s.addr[0] for s in sprayed} == {T1[0], T2[0]}
    for ip in (T1[0], T2[0]):
        ports = [s.addr[1] for s in sprayed if s.addr[0] == ip]
        assert len(ports) == spray == len(set(ports))
        assert all(PORT_MIN <= p <= PORT_MAX for p in ports)
    # Shuffled across IPs, not one IP after the other.
    first_chunk_ips = {s.addr[0] for s in chunks[0][1]}
    assert first_chunk_ips == {T1[0], T2[0]}


def test_spray_is_seeded() -> None:
    a = [s for _, sends in _drive(_punch(seed=1)) for s in sends]
    b = [s for _, sends in _drive(_punch(seed=1)) for s in sends]
    c = [s for _, sends in _drive(_punch(seed=2)) for s in sends]
    assert a == b
    assert a != c


def test_spray_capped_by_port_range() -> None:
    span = PORT_MAX - PORT_MIN + 1
    punch = _punch([T1], sockets=[], spray=span + 500)
    sprayed = [s for _, sends in _drive(punch) for s in _spray(sends)]
    assert len(sprayed) == span
    assert {s.addr[1] for s in sprayed} == set(range(PORT_MIN, PORT_MAX + 1))


@pytest.mark.parametrize(
    ("targets", "sockets", "spray", "ips"),
    [
        ([T1, T2], [1, 2, 3], 600, 2),
        ([T1], [1, 2, 3, 4, 5], 300, 1),
        ([T1, (T1[0], 1234)], [7, 9], 513, 1),  # two targets, one IP: sprayed once
        ([T1, T2], [], 256, 2),  # no extra socket opened: spray only
        ([T1, T2], list(range(1, 385)), 2048, 2),  # the defaults
    ],
)
def test_total_sent_over_window(
    targets: list[tuple[str, int]], sockets: list[int], spray: int, ips: int
) -> None:
    punch = _punch(targets, sockets=sockets, spray=spray)
    polls = _drive(punch)
    sends = [s for _, batch in polls for s in batch]
    want = len(targets) * 2 * len(sockets) + spray * ips
    assert len(sends) == want == punch.sent
    assert all(t < punch.ends for t, _ in polls)
    # Extra sockets only probe the targets; the spray only the targets' IPs from socket 0.
    assert all(s.addr in targets for s in _socket_probes(sends))
    assert {s.addr[0] for s in _spray(sends)} <= {h for h, _ in targets}
    assert punch.next_deadline() is None
    assert punch.poll(punch.ends + 10) == []
    assert punch.sent == want


def test_late_poll_catches_up() -> None:
    punch = _punch(spray=600)
    sends = punch.poll(START + WINDOW)
    assert len(sends) == 2 * 2 * 3 + 2 * 600
    assert punch.next_deadline() is None


def test_next_deadline() -> None:
    punch = _punch(spray=SPRAY_CHUNK)  # 2 IPs -> 2 chunks
    assert punch.next_deadline() == START
    punch.poll(START)
    assert punch.next_deadline() == pytest.approx(START + SPRAY_DELAY)
    punch.poll(START + SPRAY_DELAY)
    assert punch.next_deadline() == pytest.approx(START + SPRAY_DELAY + SPRAY_INTERVAL)
    punch.poll(START + SPRAY_DELAY + SPRAY_INTERVAL)
    # Spray done: the repeat round is all that is left.
    assert punch.next_deadline() == START + REPEAT_AT
    punch.poll(START + REPEAT_AT)
    assert punch.next_deadline() is None


def test_stop_ends_all_sending() -> None:
    punch = _punch()
    assert punch.poll(START)
    punch.poll(START + SPRAY_DELAY)
    sent = punch.sent
    punch.stop()
    assert punch.next_deadline() is None
    for t in (START + 0.5, START + REPEAT_AT, START + 3.0, START + WINDOW):
        assert punch.poll(t) == []
    assert punch.sent == sent


def test_stop_before_start() -> None:
    punch = _punch()
    punch.stop()
    assert punch.next_deadline() is None
    assert punch.poll(START + WINDOW) == []
    assert punch.sent == 0


@pytest.mark.parametrize(
    "targets", [[], [("10.0.0.1", 1)], [("127.0.0.1", 5), ("::1", 5), ("192.168.0.2", 9)]]
)
def test_no_public_target_is_inactive(targets: list[tuple[str, int]]) -> None:
    punch = _punch(targets, sockets=[1, 2, 3])
    assert not punch.active
    assert punch.targets == []
    assert punch.sockets == []
    assert punch.unused_sockets() == []
    for t in (START, START + SPRAY_DELAY, START + REPEAT_AT, START + WINDOW):
        assert punch.poll(t) == []
    assert punch.sent == 0
    assert punch.stats() == HardNatStats(0, [], 0, 0, [])


# -- answers -------------------------------------------------------------------------------

PEER = ("203.0.113.7", 61000)


def test_wrong_token_ignored() -> None:
    punch = _punch()
    for kind in (KIND_PROBE, KIND_ACK):
        assert punch.on_probe(1, PEER, Probe(kind, b"other-token")) == ([], False)
    assert punch.received == 0 and punch.sent == 0
    assert punch.matched == {}


def test_probe_answered_once_from_same_socket() -> None:
    punch = _punch()
    answers, new = punch.on_probe(2, PEER, Probe(KIND_PROBE, TOKEN))
    assert new
    assert answers == [Send(2, PEER, encode_probe(KIND_ACK, TOKEN))]
    assert punch.sent == 1 and punch.received == 1
    # The same four-tuple again: counted, not new, not answered.
    assert punch.on_probe(2, PEER, Probe(KIND_PROBE, TOKEN)) == ([], False)
    assert punch.on_probe(2, PEER, Probe(KIND_ACK, TOKEN)) == ([], False)
    assert punch.sent == 1 and punch.received == 3
    # Another socket or another peer address is another four-tuple.
    answers, new = punch.on_probe(0, PEER, Probe(KIND_PROBE, TOKEN))
    assert new and answers == [Send(0, PEER, encode_probe(KIND_ACK, TOKEN))]
    other = (PEER[0], PEER[1] + 1)
    answers, new = punch.on_probe(2, other, Probe(KIND_PROBE, TOKEN))
    assert new and answers == [Send(2, other, encode_probe(KIND_ACK, TOKEN))]
    assert list(punch.matched) == [(2, PEER), (0, PEER), (2, other)]


def test_ack_is_new_but_not_answered() -> None:
    punch = _punch()
    assert punch.on_probe(3, PEER, Probe(KIND_ACK, TOKEN)) == ([], True)
    assert punch.sent == 0 and punch.received == 1
    assert list(punch.matched) == [(3, PEER)]
    # A probe on the four-tuple an ACK already proved is not answered either.
    assert punch.on_probe(3, PEER, Probe(KIND_PROBE, TOKEN)) == ([], False)


def test_used_and_unused_sockets() -> None:
    punch = _punch(sockets=[1, 2, 3, 4])
    assert punch.used_sockets() == set()
    assert punch.unused_sockets() == [1, 2, 3, 4]
    punch.on_probe(3, PEER, Probe(KIND_PROBE, TOKEN))
    punch.on_probe(0, PEER, Probe(KIND_ACK, TOKEN))  # the main socket is never "used" here
    punch.on_probe(1, PEER, Probe(KIND_ACK, TOKEN))
    punch.on_probe(2, PEER, Probe(KIND_ACK, b"someone-else"))
    assert punch.used_sockets() == {1, 3}
    assert punch.unused_sockets() == [2, 4]


def test_finished_at_window_end() -> None:
    punch = _punch()
    assert not punch.finished(START)
    assert not punch.finished(START + WINDOW - 0.001)
    assert punch.finished(START + WINDOW)
    assert punch.finished(START + WINDOW + 100)


def test_stats() -> None:
    punch = _punch(sockets=[1, 2], spray=10)
    assert punch.stats() == HardNatStats(2, [T1, T2], 0, 0, [])
    punch.poll(START)
    punch.on_probe(2, PEER, Probe(KIND_PROBE, TOKEN))
    punch.on_probe(0, T2, Probe(KIND_ACK, TOKEN))
    punch.on_probe(0, T2, Probe(KIND_ACK, TOKEN))
    stats = punch.stats()
    assert stats.sockets == 2
    assert stats.targets == [T1, T2]
    assert stats.sent == 2 * 2 + 1
    assert stats.received == 3
    assert stats.matched == [(2, PEER), (0, T2)]
    # A snapshot: later changes do not show up in it.
    punch.poll(START + WINDOW)
    assert stats.sent == 5 and punch.stats().sent == 5 + 2 * 2 + 10 * 2
    stats.targets.append(("1.1.1.1", 1))
    assert punch.targets == [T1, T2]
