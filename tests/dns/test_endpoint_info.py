"""EndpointInfo ↔ TXT attributes, with the vectors of Rust iroh-dns ``endpoint_info.rs``."""

from __future__ import annotations

import dns.message
import dns.rrset
import pytest

from aioiroh.base.key import EndpointId, SecretKey
from aioiroh.base.relay_url import RelayUrl
from aioiroh.dns.endpoint_info import (
    CustomAddr,
    EndpointInfo,
    endpoint_id_from_txt_name,
    txt_name,
)
from aioiroh.dns.resolver import _txt_values
from aioiroh.errors import DecodeError

RUST_KEY = "vpnk377obfvzlipnsfbqba7ywkkenc4xlpmovt5tsfujoa75zqia"


def test_rust_txt_attr_roundtrip() -> None:
    endpoint_id = SecretKey.parse(RUST_KEY).public()
    info = EndpointInfo(endpoint_id, ("https://example.com",), (("127.0.0.1", 1234),), "foobar")
    strings = info.to_txt_strings()
    # Rust order: relay, addr, user-data; URL normalized with a trailing slash.
    assert strings == ["relay=https://example.com/", "addr=127.0.0.1:1234", "user-data=foobar"]
    assert EndpointInfo.from_txt_strings(endpoint_id, strings) == info
    assert info.relay_urls == (RelayUrl("https://example.com/"),)


def test_rust_custom_addr_roundtrip() -> None:
    endpoint_id = SecretKey.parse(RUST_KEY).public()
    bt = CustomAddr(1, bytes.fromhex("a1b2c3d4e5f6"))
    tor = CustomAddr(42, b"\xab" * 32)
    info = EndpointInfo(
        endpoint_id, ("https://example.com",), (("127.0.0.1", 1234),), custom_addrs=(bt, tor)
    )
    strings = info.to_txt_strings()
    assert "addr=1_a1b2c3d4e5f6" in strings and f"addr=2a_{'ab' * 32}" in strings
    assert EndpointInfo.from_txt_strings(endpoint_id, strings) == info


def test_rust_from_hickory_lookup() -> None:
    """Rust ``test_from_hickory_lookup``: all addrs kept, foreign names and types ignored."""
    name = "_iroh.dgjpkxyn3zyrk3zfads5duwdgbqpkwbjxfj4yt7rezidr3fijccy.dns.iroh.link."
    other = EndpointId.parse("a55f26132e5e43de834d534332f66a20d480c3e50a13a312a071adea6569981e")
    response = dns.message.make_response(dns.message.make_query(name, "TXT"))
    relay = '"relay=https://euw1-1.relay.iroh.network./"'
    for owner, rdtype, text in [
        (name, "TXT", '"addr=192.168.96.145:60165"'),
        (name, "TXT", '"addr=213.208.157.87:60165"'),
        (name, "A", "127.0.0.1"),
        (f"_iroh.{other.to_z32()}.dns.iroh.link.", "TXT", relay),
        ("dns.iroh.link.", "TXT", relay),
        (name, "TXT", relay),
    ]:
        response.answer.append(dns.rrset.from_text(owner, 30, "IN", rdtype, text))
    values = _txt_values(response, dns.name.from_text(name))
    info = EndpointInfo.from_txt_lookup(name, values)
    expected = EndpointInfo(
        EndpointId.parse("1992d53c02cdc04566e5c0edb1ce83305cd550297953a047a445ea3264b54b18"),
        ("https://euw1-1.relay.iroh.network./",),
        (("192.168.96.145", 60165), ("213.208.157.87", 60165)),
    )
    assert info == expected


def test_parse_quirks() -> None:
    eid = SecretKey.generate().public()
    # Only the first two '=' pieces count.
    info = EndpointInfo.from_txt_strings(eid, ["user-data=a=b"])
    assert info.user_data == "a"
    # Unknown keys and missing '=' fail the whole set.
    with pytest.raises(DecodeError):
        EndpointInfo.from_txt_strings(eid, ["addr=1.2.3.4:5", "color=blue"])
    with pytest.raises(DecodeError):
        EndpointInfo.from_txt_strings(eid, ["relay"])
    # Unparseable values are skipped.
    info = EndpointInfo.from_txt_strings(
        eid,
        [
            "addr=nope",
            "addr=[::1]:7",
            "addr=1.2.3.4:99999",
            "relay=ftp://x",
            "user-data=" + "x" * 300,
        ],
    )
    assert info == EndpointInfo(eid, (), (("::1", 7),))
    assert EndpointInfo(eid, (), (("::1", 7),)).to_txt_strings() == ["addr=[::1]:7"]


def test_dedup_filter_merge() -> None:
    eid = SecretKey.generate().public()
    info = EndpointInfo(eid, ("https://a.example/", "https://a.example"), (("1.2.3.4", 5),) * 2)
    assert len(info.relay_urls) == 1 and len(info.direct_addresses) == 1
    assert info.filtered(direct=False).direct_addresses == ()
    assert info.filtered(relay=False).relay_urls == ()
    merged = info.merged(EndpointInfo(eid, (), (("5.6.7.8", 9),)))
    assert merged.direct_addresses == (("1.2.3.4", 5), ("5.6.7.8", 9))
    with pytest.raises(ValueError):
        EndpointInfo(eid, user_data="x" * 246)


def test_names() -> None:
    eid = SecretKey.generate().public()
    name = txt_name(eid, "dns.iroh.link")
    assert name == f"_iroh.{eid.to_z32()}.dns.iroh.link."
    assert endpoint_id_from_txt_name(name) == eid
    for bad in ["", "_iroh", "_foo.x", f"_iroh.{'0' * 52}"]:
        with pytest.raises(DecodeError):
            endpoint_id_from_txt_name(bad)
