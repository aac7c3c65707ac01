"""Hypothesis: random STREAM / RESET_STREAM / STOP_SENDING / MAX_* frames from a peer, mixed
with random application reads and releases, never grow the stream manager past its bounds.

Bounds checked after every step: open streams within the stream limits we grant (plus our
own), bytes buffered within the connection window, each stream's buffered bytes within its
window, and the only exception a peer can cause is a protocol violation (connection close).
"""

from __future__ import annotations

import pytest
from aioquic.quic import events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioiroh.quic.frames import (
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    QuicProtocolViolation,
    ResetStreamFrame,
    StopSendingFrame,
    StreamFrame,
)
from aioiroh.quic.streams import WINDOW_GROWTH_CAP, StreamManager

pytestmark = pytest.mark.timeout(120)

MAX_DATA = 64 * 1024
MAX_STREAM_DATA = 16 * 1024
LIMIT = 8

# Peer (client) stream ids: bidi 0,4,8...; uni 2,6,...; ours (server): 1,5,... and 3,7,...
# Mostly the peer's own streams within and just past the limit (where state grows), some
# ours, some wild.
peer_ids = st.builds(
    lambda i, uni: 4 * i + (2 if uni else 0), st.integers(0, LIMIT + 4), st.booleans()
)
stream_ids = st.one_of(
    peer_ids,
    peer_ids,
    peer_ids,
    st.integers(0, 4 * LIMIT * 3),
    st.sampled_from([2**62 - 4, 2**60, 4 * 1000]),
)
offsets = st.one_of(
    st.integers(0, MAX_STREAM_DATA),
    st.integers(0, MAX_STREAM_DATA),
    st.integers(0, MAX_STREAM_DATA * 5),
    st.integers(0, 2**62 - 1),
)
peer_frames = st.one_of(
    st.builds(StreamFrame, stream_ids, offsets, st.binary(max_size=3000), st.booleans()),
    st.builds(ResetStreamFrame, stream_ids, st.integers(0, 2**62 - 1), offsets),
    st.builds(StopSendingFrame, stream_ids, st.integers(0, 2**62 - 1)),
    st.builds(MaxDataFrame, st.integers(0, 2**62 - 1)),
    st.builds(MaxStreamDataFrame, stream_ids, st.integers(0, 2**62 - 1)),
    st.builds(MaxStreamsFrame, st.booleans(), st.integers(0, 2**62 - 1)),
)
app_actions = st.one_of(
    st.tuples(st.just("read"), stream_ids, st.integers(0, 20_000)),
    st.tuples(st.just("read"), stream_ids, st.integers(0, 20_000)),
    st.tuples(st.just("release"), stream_ids, st.just(0)),
    st.tuples(st.just("open"), st.booleans(), st.just(0)),
)
steps = st.lists(st.one_of(peer_frames, peer_frames, app_actions), max_size=150)


def _feed(sm: StreamManager, frame: object) -> None:
    if isinstance(frame, StreamFrame):
        sm.on_stream(frame)
    elif isinstance(frame, ResetStreamFrame):
        sm.on_reset_stream(frame)
    elif isinstance(frame, StopSendingFrame):
        sm.on_stop_sending(frame)
    elif isinstance(frame, MaxDataFrame):
        sm.on_max_data(frame)
    elif isinstance(frame, MaxStreamDataFrame):
        sm.on_max_stream_data(frame)
    elif isinstance(frame, MaxStreamsFrame):
        sm.on_max_streams(frame)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_random_stream_frames_never_grow_state_past_bounds(script: list[object]) -> None:
    emitted: list[events.QuicEvent] = []
    sm = StreamManager(
        is_client=False,
        max_data=MAX_DATA,
        max_stream_data=MAX_STREAM_DATA,
        max_streams_bidi=LIMIT,
        max_streams_uni=LIMIT,
        emit=emitted.append,
    )
    sm.set_peer_limits(
        max_data=10**6,
        max_stream_data_bidi_local=10**5,
        max_stream_data_bidi_remote=10**5,
        max_stream_data_uni=10**5,
        max_streams_bidi=LIMIT,
        max_streams_uni=LIMIT,
    )
    now = 0.0
    ours = 0
    violations = 0
    for step in script:
        now += 0.01
        if isinstance(step, tuple):
            action, arg, n = step
            if action == "read":
                sm.consume(int(arg), n, now, 0.001)
            elif action == "release":
                sm.release(int(arg))
            elif sm.open(bool(arg)) is not None:
                ours += 1
        else:
            try:
                _feed(sm, step)
            except QuicProtocolViolation:
                # The engine closes the connection here; go on anyway, which checks that a
                # refused frame left no state behind.
                violations += 1
        # Bounds.
        assert len(sm.streams) <= 2 * LIMIT + ours
        assert 0 <= sm.buffered <= MAX_DATA * WINDOW_GROWTH_CAP
        for stream in sm.streams.values():
            receiver = stream.receiver
            assert receiver.highest_offset - stream.consumed <= MAX_STREAM_DATA * WINDOW_GROWTH_CAP
            assert len(receiver._buffer) <= MAX_STREAM_DATA * WINDOW_GROWTH_CAP
    assert len(emitted) <= len(script) + 2 * LIMIT
    assert violations <= len(script)
