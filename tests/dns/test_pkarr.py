"""SignedPacket: Rust layout and BEP-44 signature, round trips, freshness, perturbation."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aioiroh.base.key import SecretKey
from aioiroh.dns.endpoint_info import EndpointInfo
from aioiroh.dns.pkarr import MAX_SIGNED_PACKET_SIZE, SignedPacket, TimestampClock, signable
from aioiroh.errors import DecodeError, SignatureError

RUST_KEY = "vpnk377obfvzlipnsfbqba7ywkkenc4xlpmovt5tsfujoa75zqia"


def _rust_info() -> tuple[SecretKey, EndpointInfo]:
    sk = SecretKey.parse(RUST_KEY)
    return sk, EndpointInfo(sk.public(), ("https://example.com",), (("127.0.0.1", 1234),), "foobar")


def _simple_dns_packet(zone: str, values: list[str], ttl: int = 30) -> bytes:
    """What simple_dns ``Packet::new_reply(0)`` + ``build_bytes_vec_compressed`` produces,
    assembled by hand from RFC 1035: header, then per record owner name (first in full,
    then a pointer to offset 12), TYPE TXT, CLASS IN, TTL, RDLENGTH, one character-string."""
    out = bytearray(b"\x00\x00\x80\x00\x00\x00" + len(values).to_bytes(2, "big") + b"\x00" * 4)
    for i, value in enumerate(values):
        if i == 0:
            out += b"\x05_iroh" + bytes([len(zone)]) + zone.encode() + b"\x00"
        else:
            out += b"\xc0\x0c"
        raw = value.encode()
        out += b"\x00\x10\x00\x01" + ttl.to_bytes(4, "big")
        out += (len(raw) + 1).to_bytes(2, "big") + bytes([len(raw)]) + raw
    return bytes(out)


def test_layout_and_signature_match_rust_logic() -> None:
    """A packet we publish verifies with Rust's verification logic, redone independently."""
    sk, info = _rust_info()
    ts = 1_700_000_000_123_456
    packet = SignedPacket.from_endpoint_info(info, sk, timestamp=ts)
    raw = packet.to_bytes()
    assert raw[:32] == sk.public().to_bytes()
    assert int.from_bytes(raw[96:104], "big") == ts
    expected_dns = _simple_dns_packet(sk.public().to_z32(), info.to_txt_strings())
    assert raw[104:] == expected_dns
    message = b"3:seqi" + str(ts).encode() + b"e1:v" + str(len(expected_dns)).encode() + b":"
    Ed25519PublicKey.from_public_bytes(raw[:32]).verify(raw[32:96], message + expected_dns)
    assert signable(ts, expected_dns) == message + expected_dns
    assert packet.to_relay_body() == raw[32:]


def test_rust_signed_packet_roundtrip() -> None:
    sk, info = _rust_info()
    packet = SignedPacket.from_endpoint_info(info, sk, timestamp=42)
    parsed = SignedPacket.from_bytes(packet.to_bytes())
    assert parsed == packet and parsed.timestamp == 42
    assert parsed.endpoint_info() == info
    assert SignedPacket.from_relay_body(sk.public(), packet.to_relay_body()) == packet


def test_packet_signed_by_hand_verifies() -> None:
    """The reverse direction: bytes assembled like Rust's dns-server test verify in ours."""
    sk, info = _rust_info()
    dns_bytes = _simple_dns_packet(sk.public().to_z32(), info.to_txt_strings())
    ts = 1_234_567
    sig = sk.sign(signable(ts, dns_bytes)).to_bytes()
    raw = sk.public().to_bytes() + sig + ts.to_bytes(8, "big") + dns_bytes
    assert SignedPacket.from_bytes(raw).endpoint_info() == info


def test_txt_records_relative_names() -> None:
    sk = SecretKey.generate()
    zone = sk.public().to_z32()
    p = SignedPacket.from_txt_strings(sk, "multiple", ["hi3", "hi4"], timestamp=1)
    assert p.txt_records("multiple") == ["hi3", "hi4"]
    assert p.txt_records(f"multiple.{zone}") == ["hi3", "hi4"]
    assert p.txt_records("_iroh") == []
    root = SignedPacket.from_txt_strings(sk, "@", ["hi0"], timestamp=1)
    assert root.all_txt_records() == [("@", "hi0")]


def test_more_recent_than() -> None:
    sk = SecretKey.generate()
    a = SignedPacket.from_txt_strings(sk, "_iroh", ["relay=https://a./"], timestamp=10)
    b = SignedPacket.from_txt_strings(sk, "_iroh", ["relay=https://b./"], timestamp=10)
    c = SignedPacket.from_txt_strings(sk, "_iroh", ["relay=https://a./"], timestamp=11)
    assert c.more_recent_than(a) and not a.more_recent_than(c)
    assert b.more_recent_than(a) and not a.more_recent_than(b)  # tie: larger DNS bytes
    assert not a.more_recent_than(a)


def test_timestamp_clock_strictly_increases() -> None:
    clock = TimestampClock()
    assert clock.next(100) == 100
    assert clock.next(100) == 101
    assert clock.next(50) == 102  # wall clock went back
    assert clock.next(1000) == 1000


def test_limits_and_errors() -> None:
    sk = SecretKey.generate()
    with pytest.raises(ValueError):
        SignedPacket.from_txt_strings(sk, "_iroh", ["x" * 200] * 5, timestamp=1)
    with pytest.raises(ValueError):
        SignedPacket.from_txt_strings(sk, "_iroh", ["x" * 256], timestamp=1)
    good = SignedPacket.from_txt_strings(sk, "_iroh", ["user-data=x"], timestamp=1).to_bytes()
    with pytest.raises(DecodeError):
        SignedPacket.from_bytes(good[:103])
    with pytest.raises(DecodeError):
        SignedPacket.from_bytes(good + bytes(MAX_SIGNED_PACKET_SIZE))
    with pytest.raises(SignatureError):
        SignedPacket.from_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    other = SecretKey.generate().public()
    with pytest.raises(SignatureError):
        SignedPacket.from_relay_body(other, good[32:])


def test_perturbed_input_raises_only_our_errors() -> None:
    sk, info = _rust_info()
    good = SignedPacket.from_endpoint_info(info, sk, timestamp=99).to_bytes()
    rng = random.Random(1)
    for _ in range(500):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)) :]
        for parse in (SignedPacket.from_bytes, SignedPacket.from_bytes_unchecked):
            try:
                packet = parse(bytes(data))
                packet.txt_records()
                packet.endpoint_info()
            except (DecodeError, SignatureError):
                pass
