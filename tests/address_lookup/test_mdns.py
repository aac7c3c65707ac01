"""mDNS lookup: codec round trip in swarm-discovery's layout, and two lookups on loopback."""

from __future__ import annotations

import contextlib
import socket

import dns.message
import dns.rdatatype
import pytest

from aioiroh.address_lookup.mdns import (
    MdnsAddressLookup,
    build_announcement,
    build_query,
    parse_announcements,
    service_name,
)
from aioiroh.base.key import SecretKey
from aioiroh.dns.endpoint_info import EndpointInfo


def _info(sk: SecretKey, port: int = 4433) -> EndpointInfo:
    return EndpointInfo(
        sk.public(),
        ("https://relay.example./",),
        (("192.168.1.5", port), ("fe80::1", port), ("10.0.0.2", port + 1)),
        user_data="lan",
    )


def test_codec_layout_and_roundtrip() -> None:
    svc = service_name()
    assert svc.to_text() == "_irohv1._udp.local."
    q = dns.message.from_wire(build_query(svc))
    assert q.question[0].rdtype == dns.rdatatype.PTR and q.question[0].name == svc
    sk = SecretKey.generate()
    info = _info(sk)
    wire = build_announcement(info, svc)
    msg = dns.message.from_wire(wire)
    z32 = sk.public().to_z32()
    srv = [r for r in msg.answer if r.rdtype == dns.rdatatype.SRV]
    assert {str(rr.name) for rr in srv} == {f"{z32}._irohv1._udp.local."}
    assert {str(rd.target) for rr in srv for rd in rr} == {
        f"{z32}-4433.local.",
        f"{z32}-4434.local.",
    }
    parsed = parse_announcements(wire, svc)
    assert parsed is not None and not parsed.is_query
    (got,) = parsed.infos
    assert got.endpoint_id == sk.public() and got.user_data == "lan"
    assert set(got.direct_addresses) == set(info.direct_addresses)
    assert got.relay_urls == info.relay_urls
    assert parse_announcements(build_query(svc), svc).is_query
    assert parse_announcements(b"\x00garbage", svc) is None
    assert parse_announcements(wire, service_name("other")).infos == []
    assert build_announcement(EndpointInfo(sk.public(), ("https://r./",)), svc) is None


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(30)
async def test_two_lookups_find_each_other_on_loopback() -> None:
    port = _free_udp_port()  # off the real mDNS port so the host's daemon is not involved
    a_key, b_key = SecretKey.generate(), SecretKey.generate()
    kwargs = {"interface": "127.0.0.1", "port": port, "query_interval": 0.2}
    async with (
        MdnsAddressLookup(a_key.public(), **kwargs) as a,
        MdnsAddressLookup(b_key.public(), **kwargs) as b,
    ):
        b_info = _info(b_key, 5555)
        b.publish(b_info)
        a.publish(_info(a_key, 6666))
        stream = a.resolve(b_key.public())
        async with contextlib.aclosing(stream):
            items = [item async for item in stream]
        assert len(items) == 1 and items[0].provenance == "mdns"
        assert set(items[0].endpoint_info.direct_addresses) == set(b_info.direct_addresses)
        stream = b.resolve(a_key.public())
        async with contextlib.aclosing(stream):
            assert [i.endpoint_id async for i in stream] == [a_key.public()]
