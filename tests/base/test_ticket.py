"""EndpointTicket: Rust vector, round trips, malformed input (wire doc §7.2)."""

from __future__ import annotations

import base64
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioiroh.base import EndpointAddr, EndpointTicket, PublicKey, SecretKey, TicketParseError
from aioiroh.base.endpoint_addr import TransportAddr
from aioiroh.errors import DecodeError

# iroh-tickets/src/endpoint.rs test vector.
RUST_ID = "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6"
RUST_BYTES = bytes.fromhex(
    "00"
    + RUST_ID
    + "02"
    + "00"
    + "10"
    + b"http://derp.me./".hex()
    + "01"
    + "00"
    + "7f000001"
    + "8008"
)
RUST_TEXT = (
    "endpointacxfr74igmsbvsbnn73wcecg5vt3kbzncqwfrdiampuufwnhkublmaqac"
    "buhi5dqhixs6zdfojyc43lffyxqcad7aaaadaai"
)


def _text(body: bytes) -> str:
    return "endpoint" + base64.b32encode(body).decode().rstrip("=").lower()


def test_rust_vector() -> None:
    addr = EndpointAddr(RUST_ID, "http://derp.me./", ["127.0.0.1:1024"])
    ticket = EndpointTicket(addr)
    assert ticket.to_bytes() == RUST_BYTES
    assert str(ticket) == RUST_TEXT
    assert EndpointTicket.from_bytes(RUST_BYTES) == ticket
    assert EndpointTicket.parse(RUST_TEXT).addr == addr
    assert EndpointTicket.parse(RUST_TEXT.upper()).endpoint_addr() == addr
    assert repr(ticket) == f"EndpointTicket({addr!r})"
    assert hash(EndpointTicket.parse(RUST_TEXT)) == hash(ticket)


def test_empty_and_ipv6() -> None:
    key = SecretKey(bytes(32)).public()
    assert (
        EndpointTicket(EndpointAddr.from_id(key)).to_bytes() == b"\x00" + key.to_bytes() + b"\x00"
    )
    t = EndpointTicket(EndpointAddr(key, None, ["[::]:45152", "127.0.0.1:41286"]))
    # Observed from iroh-ffi for the same addresses.
    assert (
        t.to_bytes().hex()
        == "00"
        + key.to_bytes().hex()
        + "02"
        + "0100"
        + "7f000001"
        + "c6c202"
        + "0101"
        + "00" * 16
        + "e0e002"
    )


def test_decoder_accepts_any_order_and_duplicates() -> None:
    ip = "01" + "00" + "7f000001" + "8008"
    relay = "00" + "10" + b"http://derp.me./".hex()
    body = bytes.fromhex("00" + RUST_ID + "03" + ip + relay + ip)
    ticket = EndpointTicket.from_bytes(body)
    assert ticket.to_bytes() == RUST_BYTES


def test_relay_url_is_normalised_on_decode() -> None:
    raw = b"HTTP://Derp.me.:80"
    body = bytes.fromhex("00" + RUST_ID + "01" + "00") + bytes([len(raw)]) + raw
    assert str(EndpointTicket.from_bytes(body).addr.relay_url) == "http://derp.me./"


# A valid key that is not a curve point: y = 2 has no x on edwards25519.
NOT_A_POINT = (2).to_bytes(32, "little")

MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("endpoint", id="no-body"),
    pytest.param("nodeacxfr74igmsbvsbnn73", id="bad-prefix"),
    pytest.param("blobacxfr74igmsbvsbnn73wcecg5vt3kb", id="other-kind"),
    pytest.param(RUST_TEXT[8:], id="missing-prefix"),
    pytest.param(RUST_TEXT + "1", id="bad-base32-char"),
    pytest.param(RUST_TEXT + "a", id="bad-base32-length"),
    pytest.param(RUST_TEXT[:-1] + "=", id="padding"),
    pytest.param(RUST_TEXT.replace("a", " ", 1), id="space"),
    pytest.param(_text(RUST_BYTES[:-1]), id="truncated-port"),
    pytest.param(_text(RUST_BYTES[:20]), id="truncated-key"),
    pytest.param(_text(RUST_BYTES + b"\x00"), id="trailing-byte"),
    pytest.param(_text(b"\x01" + RUST_BYTES[1:]), id="unknown-version"),
    pytest.param(_text(b"\x00" + NOT_A_POINT + b"\x00"), id="bad-key"),
    pytest.param(_text(RUST_BYTES[:33] + b"\xff" * 10 + b"\x01"), id="huge-count"),
    pytest.param(
        _text(RUST_BYTES[:33] + b"\x05" + b"\x01\x00\x7f\x00\x00\x01\x08"), id="count-too-big"
    ),
    pytest.param(
        _text(RUST_BYTES[:33] + b"\x01\x01\x00\x7f\x00\x00\x01\xff\xff\x07"), id="port-overflow"
    ),
    pytest.param(_text(RUST_BYTES[:33] + b"\x01\x01\x02" + bytes(6)), id="bad-ip-family"),
    pytest.param(_text(RUST_BYTES[:33] + b"\x01\x02\x06\x02\xab\xcd"), id="custom-addr"),
    pytest.param(_text(RUST_BYTES[:33] + b"\x01\x03"), id="unknown-addr-variant"),
    pytest.param(_text(RUST_BYTES[:33] + b"\x01\x00\x05ftp:/"), id="bad-relay-url"),
    pytest.param(_text(RUST_BYTES[:33] + b"\x01\x00\x02\xff\xfe"), id="relay-not-utf8"),
    pytest.param(
        _text(RUST_BYTES[:33] + b"\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
        id="huge-varint",
    ),
    pytest.param("endpoint" + "a" * 70_000, id="too-long"),
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed(text: str) -> None:
    with pytest.raises(TicketParseError) as info:
        EndpointTicket.parse(text)
    assert isinstance(info.value, DecodeError)


def test_wrong_types() -> None:
    with pytest.raises(TicketParseError):
        EndpointTicket.parse(b"endpoint")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EndpointTicket("endpoint")  # type: ignore[arg-type]


# Hypothesis strategies shared with the interop test.

keys = st.binary(min_size=32, max_size=32).map(lambda seed: SecretKey(seed).public())
ports = st.integers(0, 65535)
ipv4 = st.builds(lambda n, p: (str(ipaddress.IPv4Address(n)), p), st.integers(0, 2**32 - 1), ports)
ipv6 = st.builds(lambda n, p: (ipaddress.IPv6Address(n), p), st.integers(0, 2**128 - 1), ports)
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("-") and not s.endswith("-") and not s.isdigit()
)
relay_urls = st.builds(
    lambda scheme, host, dot, port: (
        f"{scheme}://{host}{'.' if dot else ''}" + (f":{port}" if port is not None else "")
    ),
    st.sampled_from(["http", "https"]),
    st.lists(labels, min_size=1, max_size=4).map(".".join),
    st.booleans(),
    st.none() | ports,
)


@st.composite
def endpoint_addrs(draw: st.DrawFn) -> EndpointAddr:
    key: PublicKey = draw(keys)
    relays = draw(st.lists(relay_urls, max_size=2))
    direct = draw(st.lists(ipv4 | ipv6, max_size=5))
    addrs = [TransportAddr.relay(u) for u in relays] + [TransportAddr.ip(d) for d in direct]
    return EndpointAddr.from_parts(key, addrs)


@settings(max_examples=200, deadline=None)
@given(endpoint_addrs())
def test_round_trip(addr: EndpointAddr) -> None:
    ticket = EndpointTicket(addr)
    text = str(ticket)
    assert text.startswith("endpoint") and text == text.lower()
    back = EndpointTicket.parse(text)
    assert back == ticket and back.addr == addr
    assert EndpointTicket.parse(text.upper()) == ticket
    assert EndpointTicket.from_bytes(ticket.to_bytes()).to_bytes() == ticket.to_bytes()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_random_text_parses_or_raises_our_error(body: str) -> None:
    try:
        EndpointTicket.parse("endpoint" + body)
    except TicketParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_parse_or_raise_our_error(tail: bytes) -> None:
    # Start from a valid header so the fuzzing reaches the address decoder.
    for data in (RUST_BYTES[:33] + tail, tail):
        try:
            EndpointTicket.parse(_text(data))
        except TicketParseError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(RUST_BYTES) - 1), st.integers(0, 255))
def test_perturbed_vector(pos: int, value: int) -> None:
    data = bytearray(RUST_BYTES)
    data[pos] = value
    try:
        EndpointTicket.from_bytes(bytes(data))
    except TicketParseError:
        pass
