"""TransportAddr / EndpointAddr: parsing, display, Rust ordering, value semantics (§7.1)."""

from __future__ import annotations

import ipaddress

import pytest

from aioiroh.base import EndpointAddr, RelayUrl, SecretKey, TransportAddr
from aioiroh.base._postcard import Reader, Writer, decode_varint, encode_varint
from aioiroh.base.endpoint_addr import AddrParseError, format_socket_addr, parse_socket_addr
from aioiroh.errors import DecodeError

ID = SecretKey(bytes(32)).public()


@pytest.mark.parametrize(
    ("value", "display", "sockaddr"),
    [
        ("1.2.3.4:5", "ip:1.2.3.4:5", ("1.2.3.4", 5)),
        ("[::1]:5", "ip:[::1]:5", ("::1", 5)),
        ("[0:0::1]:65535", "ip:[::1]:65535", ("::1", 65535)),
        ("[::ffff:1.2.3.4]:7", "ip:[::ffff:1.2.3.4]:7", ("::ffff:1.2.3.4", 7)),
        (("127.0.0.1", 0), "ip:127.0.0.1:0", ("127.0.0.1", 0)),
        (("::", 9, 0, 0), "ip:[::]:9", ("::", 9)),
        (("fe80::1", 9, 0, 3), "ip:[fe80::1%3]:9", ("fe80::1%3", 9)),
        ((ipaddress.ip_address("10.0.0.1"), 80), "ip:10.0.0.1:80", ("10.0.0.1", 80)),
        ("[2001:DB8::1]:443", "ip:[2001:db8::1]:443", ("2001:db8::1", 443)),
    ],
)
def test_ip_addr_spellings(value: object, display: str, sockaddr: tuple[str, int]) -> None:
    addr = TransportAddr.ip(value)  # type: ignore[arg-type]
    assert str(addr) == display
    assert addr.socket_addr == sockaddr
    assert addr.is_ip and not addr.is_relay and addr.kind == "ip"
    assert TransportAddr.parse(display) == addr
    assert addr.relay_url is None


@pytest.mark.parametrize(
    "bad",
    [
        "1.2.3.4",
        "1.2.3.4:",
        "1.2.3.4:65536",
        "1.2.3.4:-1",
        "1.2.3.4:+5",
        "::1:5",
        "[1.2.3.4]:5",
        "[::1]5",
        "[::1]",
        "host.example:5",
        "",
        ("1.2.3.4", 70000),
        ("1.2.3.4", True),
        ("nope", 1),
        (1, 2),
        12,
    ],
)
def test_bad_socket_addrs(bad: object) -> None:
    with pytest.raises(AddrParseError) as info:
        parse_socket_addr(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, DecodeError)


def test_relay_transport_addr() -> None:
    addr = TransportAddr.relay("https://Relay.example.")
    assert str(addr) == "relay:https://relay.example./"
    assert addr.relay_url == RelayUrl("https://relay.example./")
    assert addr.port is None and addr.socket_addr is None and addr.ip_addr is None
    assert TransportAddr.parse(str(addr)) == addr
    with pytest.raises(DecodeError):
        TransportAddr.parse("custom:00_11")
    with pytest.raises(ValueError):
        TransportAddr()
    with pytest.raises(TypeError):
        TransportAddr(relay_url="https://x.y")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        TransportAddr(ip="1.2.3.4", port=1)  # type: ignore[arg-type]
    with pytest.raises(AddrParseError):
        TransportAddr(ip=ipaddress.ip_address("1.2.3.4"), port=65536)


def test_rust_ordering() -> None:
    addrs = [
        TransportAddr.ip("[::1]:1"),
        TransportAddr.ip("10.0.0.1:1"),
        TransportAddr.ip("9.0.0.1:2"),
        TransportAddr.ip("9.0.0.1:1"),
        TransportAddr.relay("https://b.example"),
        TransportAddr.relay("http://z.example"),
        TransportAddr.ip("[::]:7"),
    ]
    assert [str(a) for a in sorted(addrs)] == [
        "relay:http://z.example/",
        "relay:https://b.example/",
        "ip:9.0.0.1:1",
        "ip:9.0.0.1:2",
        "ip:10.0.0.1:1",
        "ip:[::]:7",
        "ip:[::1]:1",
    ]


def test_endpoint_addr_value_semantics() -> None:
    a = EndpointAddr(ID, "https://r.example", ["[::1]:5", ("127.0.0.1", 4), "127.0.0.1:4"])
    b = EndpointAddr(str(ID), RelayUrl("https://r.example/"), [("::1", 5), ("127.0.0.1", 4)])
    assert a == b and hash(a) == hash(b)
    assert a.id == ID
    assert a.relay_url == RelayUrl("https://r.example/")
    assert a.relay_urls == (RelayUrl("https://r.example/"),)
    assert a.direct_addresses == (("127.0.0.1", 4), ("::1", 5))
    assert [str(x) for x in a.addrs] == [
        "relay:https://r.example/",
        "ip:127.0.0.1:4",
        "ip:[::1]:5",
    ]
    assert a.ip_addrs == (TransportAddr.ip("127.0.0.1:4"), TransportAddr.ip("[::1]:5"))
    assert not a.is_empty()
    assert repr(a) == (
        f"EndpointAddr(id={ID.fmt_short()}, "
        "addrs=[relay:https://r.example/, ip:127.0.0.1:4, ip:[::1]:5])"
    )
    assert {a, b} == {a}


def test_endpoint_addr_builders() -> None:
    empty = EndpointAddr.from_id(ID)
    assert empty.is_empty() and empty.relay_url is None and empty.direct_addresses == ()
    two = empty.with_relay_url("https://b.example").with_relay_url("https://a.example")
    assert two.relay_url == RelayUrl("https://a.example")
    assert len(two.relay_urls) == 2
    assert empty.is_empty()  # builders return new values
    direct = two.with_direct_addresses(["1.1.1.1:1"]).with_addrs([TransportAddr.ip("[::]:2")])
    assert direct.direct_addresses == (("1.1.1.1", 1), ("::", 2))
    assert EndpointAddr.from_parts(ID, direct.addrs) == direct
    with pytest.raises(TypeError):
        EndpointAddr(ID, None, "1.2.3.4:5")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        EndpointAddr(b"x" * 32)  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        EndpointAddr("not a key")


def test_format_socket_addr() -> None:
    assert format_socket_addr(ipaddress.ip_address("::ffff:1.2.3.4"), 1) == "[::ffff:1.2.3.4]:1"
    assert format_socket_addr(ipaddress.ip_address("1.2.3.4"), 1) == "1.2.3.4:1"


# postcard primitives (base/_postcard.py)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (1024, "8008"),
        (65535, "ffff03"),
        (2**32 - 1, "ffffffff0f"),
        (2**64 - 1, "ffffffffffffffffff01"),
    ],
)
def test_varint_vectors(value: int, encoded: str) -> None:
    assert encode_varint(value).hex() == encoded
    assert decode_varint(bytes.fromhex(encoded)) == (value, len(encoded) // 2)


@pytest.mark.parametrize(
    ("data", "bits"),
    [
        ("", 64),
        ("80", 64),
        ("808080", 16),  # longer than u16 allows
        ("ffff07", 16),  # 3 bytes but > 65535
        ("ffffffff1f", 32),
        ("ffffffffffffffffff02", 64),
        ("ffffffffffffffffffff01", 64),
    ],
)
def test_varint_rejects(data: str, bits: int) -> None:
    with pytest.raises(DecodeError):
        decode_varint(bytes.fromhex(data), bits=bits)


def test_reader_writer_round_trip() -> None:
    w = Writer()
    w.u8(7)
    w.varint(300)
    w.raw(b"abc")
    w.bytes_(b"\x00\x01")
    w.str_("héllo")
    w.option(True)
    w.option(False)
    r = Reader(w.getvalue())
    assert r.u8() == 7
    assert r.u16() == 300
    assert r.take(3) == b"abc"
    assert r.bytes_() == b"\x00\x01"
    assert r.str_() == "héllo"
    assert r.option() is True and r.option() is False
    r.finish()
    with pytest.raises(ValueError):  # encoding a bad value is a caller bug, not bad input
        encode_varint(-1)
    for bad in (b"\x05ab", b"\x02\xff\xfe", b"\x02"):
        with pytest.raises(DecodeError):
            Reader(bad).str_()
    with pytest.raises(DecodeError):
        Reader(b"\x02").option()
    with pytest.raises(DecodeError):
        Reader(b"\x00").finish()
