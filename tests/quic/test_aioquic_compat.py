"""Fail loudly if an aioquic upgrade changes a behaviour quic/_aioquic.py documents."""

from __future__ import annotations

import pytest

from aioiroh.quic._aioquic import (
    Buffer,
    BufferReadError,
    QuicTransportParameters,
    RangeSet,
    decode_packet_number,
    pull_ack_frame,
    pull_quic_transport_parameters,
    push_ack_frame,
)


def test_buffer_reads_past_end_raise_value_error() -> None:
    with pytest.raises(BufferReadError):
        Buffer(data=b"\x40").pull_uint_var()
    assert issubclass(BufferReadError, ValueError)


def test_ack_helpers_layout_and_negative_check() -> None:
    buf = Buffer(capacity=64)
    push_ack_frame(buf, RangeSet([range(0, 3), range(5, 10)]), 7, 64)
    assert buf.data.hex() == "090701040102"
    ranges, delay = pull_ack_frame(Buffer(data=buf.data))
    assert list(ranges) == [range(0, 3), range(5, 10)] and delay == 7
    with pytest.raises(ValueError):
        pull_ack_frame(Buffer(data=bytes.fromhex("03000004")))


def test_transport_parameters_skip_unknown_and_check_length() -> None:
    params = pull_quic_transport_parameters(Buffer(data=bytes.fromhex("3e0107" + "010105")))
    assert params == QuicTransportParameters(max_idle_timeout=5)
    with pytest.raises(ValueError):
        pull_quic_transport_parameters(Buffer(data=bytes.fromhex("01020500")))


def test_decode_packet_number_with_plain_expected() -> None:
    assert decode_packet_number(258 & 0xFF, 8, 250) == 258
    assert decode_packet_number(0x9B32, 16, 0xA82F30EA + 1) == 0xA82F9B32  # RFC 9000 A.3
