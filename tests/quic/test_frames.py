"""Frame codecs: vectors, round trip, size agreement, fuzzing, and the placement rules."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioiroh.errors import IrohError, ProtocolError
from aioiroh.quic._aioquic import Buffer, RangeSet
from aioiroh.quic.frames import (
    FRAME_INFO,
    PACKET_0RTT,
    PACKET_1RTT,
    PACKET_HANDSHAKE,
    PACKET_INITIAL,
    AckFrame,
    AckFrequencyFrame,
    AddAddressFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    Frame,
    FrameType,
    HandshakeDoneFrame,
    ImmediateAckFrame,
    MaxDataFrame,
    MaxPathIdFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    ObservedAddressFrame,
    PaddingFrame,
    PathAbandonFrame,
    PathChallengeFrame,
    PathCidsBlockedFrame,
    PathResponseFrame,
    PathsBlockedFrame,
    PathStatusFrame,
    PingFrame,
    QuicProtocolViolation,
    ReachOutFrame,
    RemoveAddressFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    Role,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
    frame_size,
    parse_frames,
    push_frame,
)

V4 = IPv4Address("192.0.2.7")
V6 = IPv6Address("2001:db8::1")
TOKEN = bytes(range(16))

# (frame, expected wire bytes in hex). Layouts from RFC 9000 §19 and wire doc §3.3-3.5.
VECTORS: list[tuple[Frame, str]] = [
    (PaddingFrame(3), "000000"),
    (PingFrame(), "01"),
    (AckFrame(RangeSet([range(0, 3), range(5, 10)]), 7), "02090701040102"),
    (AckFrame(RangeSet([range(4, 5)]), 0, (1, 2, 3)), "03040000000102 03".replace(" ", "")),
    (AckFrame(RangeSet([range(4, 5)]), 2, None, 3), "3e0304020000"),
    (AckFrame(RangeSet([range(4, 5)]), 2, (0, 0, 9), 3), "3f0304020000000009"),
    (ResetStreamFrame(4, 1, 100), "0404014064"),
    (StopSendingFrame(4, 7), "050407"),
    (CryptoFrame(0, b"ab"), "06000261 62".replace(" ", "")),
    (NewTokenFrame(b"tk"), "0702746b"),
    (StreamFrame(4, 0, b"hi", fin=True), "0b04026869"),
    (StreamFrame(4, 100, b"x"), "0e0440640178"),
    (StreamFrame(8, 0, b""), "0a0800"),
    (MaxDataFrame(2**62 - 1), "10ffffffffffffffff"),
    (MaxStreamDataFrame(1, 2), "110102"),
    (MaxStreamsFrame(True, 100), "124064"),
    (MaxStreamsFrame(False, 3), "1303"),
    (DataBlockedFrame(9), "1409"),
    (StreamDataBlockedFrame(2, 9), "150209"),
    (StreamsBlockedFrame(True, 1), "1601"),
    (StreamsBlockedFrame(False, 1), "1701"),
    (NewConnectionIdFrame(1, 0, b"\xaa" * 8, TOKEN), "18010008" + "aa" * 8 + TOKEN.hex()),
    (
        NewConnectionIdFrame(1, 1, b"\xaa" * 8, TOKEN, 2),
        "7e78020101" + "08" + "aa" * 8 + TOKEN.hex(),
    ),
    (RetireConnectionIdFrame(3), "1903"),
    (RetireConnectionIdFrame(3, 1), "7e790103"),
    (PathChallengeFrame(b"12345678"), "1a3132333435363738"),
    (PathResponseFrame(b"12345678"), "1b3132333435363738"),
    (ConnectionCloseFrame(0x0A, 0x3E, b"no"), "1c0a3e026e6f"),
    (ConnectionCloseFrame(5, None, b""), "1d0500"),
    (HandshakeDoneFrame(), "1e"),
    (DatagramFrame(b"dg"), "31026467"),
    (AckFrequencyFrame(1, 2, 25_000, 0), "40af0102800061a800"),
    (ImmediateAckFrame(), "1f"),
    (PathAbandonFrame(1, 0), "7e750100"),
    (PathStatusFrame(1, 5, False), "7e760105"),
    (PathStatusFrame(1, 6, True), "7e770106"),
    (MaxPathIdFrame(7), "7e7a07"),
    (PathsBlockedFrame(7), "7e7b07"),
    (PathCidsBlockedFrame(2, 4), "7e7c0204"),
    (AddAddressFrame(0, V4, 443), "803d7f9000c00002070 1bb".replace(" ", "")),
    (AddAddressFrame(1, V6, 1), "803d7f9101" + V6.packed.hex() + "0001"),
    (ReachOutFrame(1, V4, 5), "803d7f9201" + V4.packed.hex() + "0005"),
    (ReachOutFrame(2, V6, 5), "803d7f9302" + V6.packed.hex() + "0005"),
    (RemoveAddressFrame(3), "803d7f9403"),
    (ObservedAddressFrame(0, V4, 9), "809f81a600" + V4.packed.hex() + "0009"),
    (ObservedAddressFrame(1, V6, 9), "809f81a701" + V6.packed.hex() + "0009"),
]


def _sender_ok_role(frame_type: int) -> Role:
    """Our role such that the sender of ``frame_type`` is legal."""
    return "client" if FRAME_INFO[frame_type].sender == "server" else "server"


def _encode(frame: Frame) -> bytes:
    buf = Buffer(capacity=4096)
    push_frame(buf, frame)
    return buf.data


@pytest.mark.parametrize(("frame", "wire"), VECTORS, ids=lambda v: type(v).__name__)
def test_vector_round_trip_and_size(frame: Frame, wire: str) -> None:
    data = _encode(frame)
    assert data.hex() == wire
    assert frame_size(frame) == len(data)
    frame_type = Buffer(data=data).pull_uint_var()
    parsed = parse_frames(
        data,
        PACKET_1RTT,
        role=_sender_ok_role(frame_type),
        multipath=True,
        qnt=True,
        qad=True,
    )
    assert parsed == [frame]


def test_every_frame_type_has_a_vector() -> None:
    covered = {Buffer(data=bytes.fromhex(w)).pull_uint_var() for _, w in VECTORS}
    # The variants not produced by push_* (STREAM without LEN/OFF, DATAGRAM without length) are
    # covered by test_implicit_length_variants.
    missing = set(FRAME_INFO) - covered - {0x08, 0x09, 0x0C, 0x0D, 0x0F, FrameType.DATAGRAM}
    assert not missing, sorted(hex(t) for t in missing)


def test_implicit_length_variants() -> None:
    frames = parse_frames(bytes.fromhex("0d04056869"), PACKET_1RTT, role="client")
    assert frames == [StreamFrame(4, 5, b"hi", True)]
    assert parse_frames(bytes.fromhex("306467"), PACKET_1RTT, role="client") == [
        DatagramFrame(b"dg")
    ]
    # A packet with several frames; the padding run is one frame.
    payload = _encode(PingFrame()) + bytes(5) + _encode(MaxDataFrame(1))
    assert parse_frames(payload, PACKET_1RTT, role="client") == [
        PingFrame(),
        PaddingFrame(5),
        MaxDataFrame(1),
    ]


def test_ipv4_mapped_addresses_are_canonical() -> None:
    mapped = IPv6Address("::ffff:192.0.2.7")
    data = _encode(AddAddressFrame(4, mapped, 80))
    assert data == _encode(AddAddressFrame(4, V4, 80))
    raw_v6 = bytes.fromhex("803d7f9104") + mapped.packed + b"\x00\x50"
    frames = parse_frames(raw_v6, PACKET_1RTT, role="client", multipath=True, qnt=True)
    assert frames == [AddAddressFrame(4, V4, 80)]


EXTENSION_FRAMES = [
    (f, w)
    for f, w in VECTORS
    if FRAME_INFO[Buffer(data=bytes.fromhex(w)).pull_uint_var()].extension
]


@pytest.mark.parametrize("packet_type", [PACKET_INITIAL, PACKET_0RTT, PACKET_HANDSHAKE])
@pytest.mark.parametrize(("frame", "wire"), EXTENSION_FRAMES, ids=lambda v: type(v).__name__)
def test_extension_frames_only_in_1rtt(frame: Frame, wire: str, packet_type: int) -> None:
    data = bytes.fromhex(wire)
    role = _sender_ok_role(Buffer(data=data).pull_uint_var())
    with pytest.raises(QuicProtocolViolation) as info:
        parse_frames(data, packet_type, role=role, multipath=True, qnt=True, qad=True)
    assert info.value.code == 0x0A
    assert isinstance(info.value, ProtocolError)


@pytest.mark.parametrize(("frame", "wire"), EXTENSION_FRAMES, ids=lambda v: type(v).__name__)
def test_extension_frames_need_negotiation(frame: Frame, wire: str) -> None:
    data = bytes.fromhex(wire)
    frame_type = Buffer(data=data).pull_uint_var()
    ext = FRAME_INFO[frame_type].extension
    negotiated = {"multipath": True, "qnt": True, "qad": True}
    negotiated[{"mp": "multipath", "qnt": "qnt", "qad": "qad"}[ext or ""]] = False
    with pytest.raises(QuicProtocolViolation) as info:
        parse_frames(data, PACKET_1RTT, role=_sender_ok_role(frame_type), **negotiated)
    assert info.value.code == 0x0A
    assert info.value.frame_type == frame_type


@pytest.mark.parametrize(
    ("frame", "our_role"),
    [
        (AddAddressFrame(0, V4, 1), "server"),
        (RemoveAddressFrame(0), "server"),
        (ReachOutFrame(1, V4, 1), "client"),
        (HandshakeDoneFrame(), "server"),
        (NewTokenFrame(b"t"), "server"),
    ],
)
def test_frames_from_the_wrong_role(frame: Frame, our_role: Role) -> None:
    with pytest.raises(QuicProtocolViolation) as info:
        parse_frames(_encode(frame), PACKET_1RTT, role=our_role, multipath=True, qnt=True)
    assert info.value.code == 0x0A


@pytest.mark.parametrize(
    ("frame", "packet_type"),
    [
        (StreamFrame(0, 0, b"x"), PACKET_INITIAL),
        (HandshakeDoneFrame(), PACKET_HANDSHAKE),
        (AckFrame(RangeSet([range(0, 1)]), 0), PACKET_0RTT),
        (PathResponseFrame(b"12345678"), PACKET_0RTT),
        (ConnectionCloseFrame(1, None, b""), PACKET_INITIAL),
    ],
)
def test_rfc9000_packet_type_rules(frame: Frame, packet_type: int) -> None:
    with pytest.raises(QuicProtocolViolation) as info:
        parse_frames(_encode(frame), packet_type, role="client")
    assert info.value.code == 0x0A


@pytest.mark.parametrize(
    "wire",
    [
        "",  # no frames at all → PROTOCOL_VIOLATION
        "21",  # unknown type
        "4021",  # unknown two-byte type
        "0604",  # truncated CRYPTO
        "0203000004",  # ACK range below zero
        "180100 00".replace(" ", "") + "aa" * 16,  # zero-length CID
        "18010215" + "aa" * 37,  # CID longer than 20
        "18010208" + "aa" * 24,  # retire_prior_to above sequence
        "0700",  # empty NEW_TOKEN
        "12d000000000000001" + "00",  # MAX_STREAMS above 2^60 (padding after)
        "7e7ac000000100000000",  # path id above u32
        "0a04bfffffffffffffff0100",  # STREAM beyond 2^62-1
        "1a313233",  # short PATH_CHALLENGE
    ],
)
def test_malformed_frames(wire: str) -> None:
    with pytest.raises(QuicProtocolViolation) as info:
        parse_frames(bytes.fromhex(wire), PACKET_1RTT, role="client", multipath=True)
    assert info.value.code in (0x07, 0x0A)
    if wire not in ("",):
        assert info.value.code == 0x07


def test_frame_info_table_properties() -> None:
    ack = FRAME_INFO[FrameType.PATH_ACK]
    assert not ack.ack_eliciting and not ack.in_flight and ack.extension == "mp"
    pad = FRAME_INFO[FrameType.PADDING]
    assert not pad.ack_eliciting and pad.in_flight and pad.probing
    assert FRAME_INFO[FrameType.PATH_CHALLENGE].probing
    assert FRAME_INFO[FrameType.REACH_OUT_IPV6].sender == "client"
    assert FRAME_INFO[FrameType.OBSERVED_IPV6_ADDRESS].extension == "qad"
    assert FRAME_INFO[FrameType.CRYPTO].packets & PACKET_0RTT == 0


@settings(max_examples=1500, deadline=None)
@given(
    st.binary(max_size=64),
    st.sampled_from([PACKET_INITIAL, PACKET_0RTT, PACKET_HANDSHAKE, PACKET_1RTT]),
    st.sampled_from(["client", "server"]),
    st.booleans(),
)
def test_any_bytes_parse_or_raise_our_error(
    data: bytes, packet_type: int, role: Role, negotiated: bool
) -> None:
    try:
        frames = parse_frames(
            data, packet_type, role=role, multipath=negotiated, qnt=negotiated, qad=negotiated
        )
    except IrohError:
        return
    # Whatever parses re-encodes to something that parses to the same frames.
    for frame in frames:
        assert frame_size(frame) == len(_encode(frame))


_type_prefixes = st.sampled_from(
    [bytes.fromhex(w)[: max(1, len(bytes.fromhex(w)) // 3)] for _, w in VECTORS]
)


@settings(max_examples=1000, deadline=None)
@given(_type_prefixes, st.binary(max_size=40))
def test_known_types_with_random_bodies(prefix: bytes, body: bytes) -> None:
    try:
        parse_frames(prefix + body, PACKET_1RTT, role="client", multipath=True, qnt=True, qad=True)
    except IrohError:
        pass
