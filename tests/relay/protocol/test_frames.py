"""Relay frame codec: wire vectors, round trips, length agreement, fuzzing (wire doc §5.3-5.5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioiroh.base.key import SecretKey
from aioiroh.errors import DecodeError, RelayError
from aioiroh.relay.protocol.frames import (
    MAX_PACKET_SIZE,
    ClientAuth,
    ClientToRelayDatagrams,
    Datagrams,
    EndpointGone,
    FrameType,
    Health,
    Ping,
    Pong,
    RelayProtocolError,
    RelayToClientDatagrams,
    Restarting,
    ServerChallenge,
    ServerConfirmsAuth,
    ServerDeniesAuth,
    Status,
    StatusCode,
    decode_client_msg,
    decode_relay_msg,
    encode_client_msg,
    encode_relay_msg,
    encoded_len,
    relay_datagrams_frame,
)
from aioiroh.relay.protocol.version import ProtocolVersion

V1, V2 = ProtocolVersion.V1, ProtocolVersion.V2
KEY42 = SecretKey.from_bytes(bytes([42] * 32)).public()
KEY7 = SecretKey.from_bytes(bytes([7] * 32)).public()


def test_error_is_in_our_tree() -> None:
    assert issubclass(RelayProtocolError, RelayError)
    assert issubclass(RelayProtocolError, DecodeError)
    assert issubclass(RelayProtocolError, ValueError)


# Byte-exact vectors from iroh-relay protos/relay.rs tests (wire doc §5.5).
def test_vector_ping() -> None:
    assert encode_relay_msg(Ping(bytes([42] * 8)), V2).hex() == "09" + "2a" * 8
    assert encode_client_msg(Ping(bytes([42] * 8))).hex() == "09" + "2a" * 8


def test_vector_restarting() -> None:
    assert encode_relay_msg(Restarting(10, 20), V2).hex() == "0c" + "0000000a" + "00000014"


def test_vector_status() -> None:
    assert encode_relay_msg(Status(StatusCode.SAME_ENDPOINT_ID_CONNECTED), V2).hex() == "0d01"


def test_vector_batch() -> None:
    assert KEY42.to_bytes().hex().startswith("197f6b23")
    assert KEY42.to_bytes().hex().endswith("8d61")
    msg = RelayToClientDatagrams(KEY42, Datagrams(3, 6, b"Hello World!"))
    expected = "07" + KEY42.to_bytes().hex() + "03" + "0006" + b"Hello World!".hex()
    assert encode_relay_msg(msg, V2).hex() == expected
    assert decode_relay_msg(bytes.fromhex(expected), V2) == msg
    assert msg.datagrams.split() == [b"Hello ", b"World!"]


def test_client_auth_is_98_bytes() -> None:
    frame = encode_client_msg(ClientAuth(KEY42, bytes(64)))
    assert len(frame) == 98
    assert frame[0] == FrameType.CLIENT_AUTH and frame[33] == 0x40


def test_split() -> None:
    assert Datagrams(0, None, b"abc").split() == [b"abc"]
    assert Datagrams(0, 2, b"abcde").split() == [b"ab", b"cd", b"e"]
    assert Datagrams(0, 10, b"abc").split() == [b"abc"]


CLIENT_MSGS = [
    ClientToRelayDatagrams(KEY7, Datagrams(0, None, b"")),
    ClientToRelayDatagrams(KEY7, Datagrams(2, None, b"x" * 1200)),
    ClientToRelayDatagrams(KEY7, Datagrams(3, 1200, b"y" * 3000)),
    Ping(b"12345678"),
    Pong(b"abcdefgh"),
    ClientAuth(KEY42, bytes(range(64))),
]

RELAY_MSGS = [
    RelayToClientDatagrams(KEY7, Datagrams(1, None, b"data")),
    RelayToClientDatagrams(KEY7, Datagrams(2, 1452, b"z" * 14520)),
    EndpointGone(KEY42),
    Ping(b"\x00" * 8),
    Pong(b"\xff" * 8),
    Restarting(0, 0xFFFFFFFF),
    ServerChallenge(bytes(range(16))),
    ServerConfirmsAuth(),
    ServerDeniesAuth("not authorized"),
    ServerDeniesAuth("é" * 200),
]


@pytest.mark.parametrize("msg", CLIENT_MSGS, ids=repr)
def test_client_roundtrip(msg: object) -> None:
    data = encode_client_msg(msg)  # type: ignore[arg-type]
    assert len(data) == encoded_len(msg)  # type: ignore[arg-type]
    for version in (V1, V2):
        assert decode_client_msg(data, version) == msg


@pytest.mark.parametrize("msg", RELAY_MSGS, ids=repr)
def test_relay_roundtrip(msg: object) -> None:
    for version in (V1, V2):
        data = encode_relay_msg(msg, version)  # type: ignore[arg-type]
        assert len(data) == encoded_len(msg)  # type: ignore[arg-type]
        assert decode_relay_msg(data, version) == msg


def test_version_gates() -> None:
    assert decode_relay_msg(encode_relay_msg(Health("bad"), V1), V1) == Health("bad")
    assert decode_relay_msg(encode_relay_msg(Status(0), V2), V2) == Status(StatusCode.HEALTHY)
    with pytest.raises(RelayProtocolError):
        encode_relay_msg(Health("bad"), V2)
    with pytest.raises(RelayProtocolError):
        encode_relay_msg(Status(0), V1)
    with pytest.raises(RelayProtocolError):
        decode_relay_msg(b"\x0bbad", V2)
    with pytest.raises(RelayProtocolError):
        decode_relay_msg(b"\x0d\x00", V1)


def test_unknown_status_tolerated() -> None:
    assert decode_relay_msg(b"\x0d\x63", V2) == Status(0x63)


def test_relay_fast_path_matches_encoder() -> None:
    for dg in (Datagrams(2, None, b"abc"), Datagrams(3, 2, b"abcde")):
        assert relay_datagrams_frame(KEY7.to_bytes(), dg) == encode_relay_msg(
            RelayToClientDatagrams(KEY7, dg), V2
        )


def test_zero_segment_size_means_single() -> None:
    frame = b"\x05" + KEY7.to_bytes() + b"\x02\x00\x00hello"
    msg = decode_client_msg(frame, V2)
    assert isinstance(msg, ClientToRelayDatagrams)
    assert msg.datagrams == Datagrams(2, None, b"hello")


def test_unknown_ecn_reads_as_not_ect() -> None:
    msg = decode_client_msg(b"\x04" + KEY7.to_bytes() + b"\x09x", V2)
    assert isinstance(msg, ClientToRelayDatagrams) and msg.datagrams.ecn == 0


def test_non_minimal_varint_tag_accepted() -> None:
    assert decode_client_msg(b"\x40\x09" + b"p" * 8, V2) == Ping(b"p" * 8)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x40",  # truncated varint
        b"\x0e",  # unknown type 14
        b"\x3f",  # unknown type 63
        b"\x09" + b"x" * 7,  # short ping
        b"\x09" + b"x" * 9,  # long ping
        b"\x04" + b"\x00" * 32,  # no ECN byte
        b"\x05" + KEY7.to_bytes() + b"\x00\x01",  # batch header truncated
        b"\x04" + b"\xff" * 32 + b"\x00",  # key not a curve point
        b"\x06" + KEY7.to_bytes() + b"\x00",  # relay->client type from a client
        b"\x01" + KEY42.to_bytes() + b"\x3f" + bytes(63),  # 63-byte signature
        b"\x01" + KEY42.to_bytes() + b"\x40" + bytes(10),  # truncated signature
        b"\x04" + KEY7.to_bytes() + b"\x00" + bytes(MAX_PACKET_SIZE),  # body too large
    ],
)
def test_client_garbage_rejected(frame: bytes) -> None:
    with pytest.raises(RelayProtocolError):
        decode_client_msg(frame, V2)


@pytest.mark.parametrize(
    "frame",
    [
        b"\x08" + KEY7.to_bytes()[:31],
        b"\x0c" + bytes(7),
        b"\x0d",
        b"\x03\x05ab",  # reason truncated
        b"\x03\x02\xff\xfe",  # reason not UTF-8
        b"\x03\xff\xff\xff\xff\xff\x01",  # varint overflow
        b"\x00" + bytes(15),
        b"\x04" + KEY7.to_bytes() + b"\x00",  # client->relay type from a relay
    ],
)
def test_relay_garbage_rejected(frame: bytes) -> None:
    with pytest.raises(RelayProtocolError):
        decode_relay_msg(frame, V2)


def test_value_checks() -> None:
    with pytest.raises(RelayProtocolError):
        Datagrams(4, None, b"")
    with pytest.raises(RelayProtocolError):
        Datagrams(0, 0, b"")
    with pytest.raises(RelayProtocolError):
        Ping(b"short")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([V1, V2]))
def test_fuzz_any_bytes_decode_or_raise_ours(data: bytes, version: ProtocolVersion) -> None:
    for decode in (decode_client_msg, decode_relay_msg):
        try:
            decode(data, version)
        except RelayProtocolError:
            pass


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([0, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 3]),
    st.binary(max_size=120),
    st.sampled_from([V1, V2]),
)
def test_fuzz_known_types_with_random_bodies(
    tag: int, body: bytes, version: ProtocolVersion
) -> None:
    # Prefix a valid key so datagram frames get past the key check and exercise the rest.
    for prefix in (b"", KEY7.to_bytes()):
        data = bytes((tag,)) + prefix + body
        for decode in (decode_client_msg, decode_relay_msg):
            try:
                decode(data, version)
            except RelayProtocolError:
                pass


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 3),
    st.one_of(st.none(), st.integers(1, 0xFFFF)),
    st.binary(max_size=3000),
)
def test_fuzz_datagram_roundtrip(ecn: int, seg: int | None, contents: bytes) -> None:
    msg = ClientToRelayDatagrams(KEY7, Datagrams(ecn, seg, contents))
    assert decode_client_msg(encode_client_msg(msg), V2) == msg
    back = Datagrams(ecn, seg, contents)
    assert b"".join(back.split()) == contents
