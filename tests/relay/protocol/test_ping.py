"""PingTracker on virtual time."""

from __future__ import annotations

from aioiroh.relay.protocol.frames import Ping
from aioiroh.relay.protocol.ping import PingTracker


def test_first_ping_uses_max_timeout() -> None:
    tracker = PingTracker(5.0)
    ping = tracker.new_ping(100.0, b"abcdefgh")
    assert ping == Ping(b"abcdefgh")
    assert tracker.deadline == 105.0
    assert not tracker.timed_out(104.9)
    assert tracker.timed_out(105.0)


def test_rtt_shortens_deadline_with_floor() -> None:
    tracker = PingTracker(5.0)
    tracker.new_ping(0.0, b"aaaaaaaa")
    assert not tracker.pong_received(b"bbbbbbbb", 0.1)  # stale pong ignored
    assert tracker.pong_received(b"aaaaaaaa", 0.1)
    assert tracker.rtt == 0.1
    assert tracker.deadline is None and not tracker.outstanding
    tracker.new_ping(1.0, b"cccccccc")
    assert tracker.deadline == 1.5  # 3 x 0.1 s clamped up to 0.5 s
    tracker.pong_received(b"cccccccc", 2.0)
    tracker.new_ping(3.0, b"dddddddd")
    assert tracker.deadline == 6.0  # 3 x 1.0 s
    tracker.pong_received(b"dddddddd", 6.0)
    tracker.new_ping(10.0, b"eeeeeeee")
    assert tracker.deadline == 15.0  # 3 x 3.0 s clamped down to 5 s


def test_no_timeout_without_ping() -> None:
    tracker = PingTracker()
    assert tracker.deadline is None
    assert not tracker.timed_out(1e9)
