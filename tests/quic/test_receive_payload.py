"""The engine's one-pass frame decoding (_handle_payload): STREAM decoded inline, everything
else through pull_frame with the placement rules, errors mapped like parse_frames."""

from __future__ import annotations

import pytest
from aioquic.quic import events

from aioiroh.quic._aioquic import Buffer, RangeSet
from aioiroh.quic.connection import APP, HANDSHAKE, IrohConnection
from aioiroh.quic.frames import (
    FRAME_ENCODING_ERROR,
    PROTOCOL_VIOLATION,
    AckFrame,
    Frame,
    PaddingFrame,
    PathChallengeFrame,
    PingFrame,
    QuicProtocolViolation,
    StreamFrame,
    push_frame,
)

from .support.pump import Pump


def _connected() -> tuple[Pump, IrohConnection]:
    p = Pump()
    p.run_until(
        lambda: bool(
            p.of("client", events.HandshakeCompleted)
            and p.server is not None
            and p.of("server", events.HandshakeCompleted)
        )
    )
    assert p.server is not None
    return p, p.server


def _payload(*frames: Frame, tail: bytes = b"") -> bytes:
    buf = Buffer(capacity=4096)
    for frame in frames:
        push_frame(buf, frame)
    return buf.data + tail


def _received(conn: IrohConnection) -> bytes:
    out = b""
    while (ev := conn.next_event()) is not None:
        if isinstance(ev, events.StreamDataReceived) and ev.stream_id == 0:
            out += ev.data
    return out


def test_stream_frames_with_and_without_length() -> None:
    p, server = _connected()
    _received(server)
    # STREAM with LEN and OFF bits, then one without LEN (runs to the end of the payload).
    no_len = bytes([0x08 | 0x04]) + bytes([0]) + bytes([5]) + b"world"
    payload = _payload(StreamFrame(0, 0, b"hello"), tail=no_len)
    assert server._handle_payload(APP, payload, p.now) == (True, True)
    assert _received(server) == b"helloworld"


def test_flags_for_ack_only_and_probing_packets() -> None:
    p, server = _connected()
    ranges = RangeSet()
    ranges.add(0, 1)
    ack = _payload(AckFrame(ranges, 0))
    assert server._handle_payload(APP, ack, p.now) == (False, True)
    probe = _payload(PathChallengeFrame(b"12345678"), PaddingFrame(20))
    assert server._handle_payload(APP, probe, p.now) == (True, False)
    assert server._handle_payload(APP, _payload(PingFrame()), p.now) == (True, True)


@pytest.mark.parametrize(
    "payload",
    [
        bytes([0x0A, 0x00, 0x10]) + b"short",  # LEN says 16, 5 bytes follow
        bytes([0x0E, 0x00]),  # offset missing
        bytes([0x0C, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]) + b"x",  # > 2^62-1
        bytes([0x40]),  # truncated frame type
        bytes([0x21]),  # unknown frame type
    ],
)
def test_malformed_frames_are_frame_encoding_errors(payload: bytes) -> None:
    p, server = _connected()
    with pytest.raises(QuicProtocolViolation) as info:
        server._handle_payload(APP, payload, p.now)
    assert info.value.code == FRAME_ENCODING_ERROR


def test_stream_outside_1rtt_is_a_protocol_violation() -> None:
    p, server = _connected()
    with pytest.raises(QuicProtocolViolation) as info:
        server._handle_payload(HANDSHAKE, _payload(StreamFrame(0, 0, b"x")), p.now)
    assert info.value.code == PROTOCOL_VIOLATION


def test_empty_payload_is_a_protocol_violation() -> None:
    p, server = _connected()
    with pytest.raises(QuicProtocolViolation) as info:
        server._handle_payload(APP, b"", p.now)
    assert info.value.code == PROTOCOL_VIOLATION
