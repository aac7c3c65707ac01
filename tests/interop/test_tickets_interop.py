"""Tickets and relay URLs against Rust iroh (PyPI ``iroh``): byte-identical both ways (§7)."""

from __future__ import annotations

import base64
import ipaddress

import iroh
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aioiroh.base import EndpointAddr, EndpointTicket, PublicKey, RelayUrl, TransportAddr
from aioiroh.base.endpoint_addr import format_socket_addr
from aioiroh.errors import DecodeError
from tests.base.test_ticket import ipv4, ipv6, keys, relay_urls
from tests.support.oracle import bind_rust

pytestmark = pytest.mark.interop


def _rust_addr(addr: EndpointAddr) -> iroh.EndpointAddr:
    ips = [format_socket_addr(a.ip_addr, a.port) for a in addr.ip_addrs]  # type: ignore[arg-type]
    relay = str(addr.relay_url) if addr.relay_url is not None else None
    return iroh.EndpointAddr(iroh.EndpointId.from_string(str(addr.id)), relay, ips)


def _ours_from_rust(rust: iroh.EndpointAddr) -> EndpointAddr:
    return EndpointAddr(str(rust.id()), rust.relay_url(), list(rust.direct_addresses()))


@st.composite
def single_relay_addrs(draw: st.DrawFn) -> EndpointAddr:
    # iroh-ffi's EndpointAddr holds at most one relay URL.
    key: PublicKey = draw(keys)
    relay = draw(st.none() | relay_urls)
    direct = draw(st.lists(ipv4 | ipv6, max_size=5))
    return EndpointAddr(key, relay, direct)


MAPPED = EndpointAddr(
    "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6",
    "https://Relay.Example.:443",
    ["[::ffff:1.2.3.4]:7", "[::]:0", "0.0.0.0:65535", "[2001:db8::1:0:0:1]:9"],
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(single_relay_addrs())
@example(MAPPED)
def test_ticket_both_ways(addr: EndpointAddr) -> None:
    ours = EndpointTicket(addr)
    rust = iroh.EndpointTicket.from_addr(_rust_addr(addr))
    # Same address -> the very same ticket text.
    assert str(rust) == str(ours)
    # Rust's ticket parses in ours to the same value...
    assert EndpointTicket.parse(str(rust)).addr == addr
    # ...and ours parses in Rust to the same id, relay and addresses.
    back = iroh.EndpointTicket.from_string(str(ours)).endpoint_addr()
    assert back.id().to_bytes() == addr.id.to_bytes()
    assert back.relay_url() == (str(addr.relay_url) if addr.relay_url else None)
    expected = sorted(format_socket_addr(a.ip_addr, a.port) for a in addr.ip_addrs)  # type: ignore[arg-type]
    assert sorted(back.direct_addresses()) == expected
    assert _ours_from_rust(back) == addr


def test_rust_vector_from_rust() -> None:
    key = "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6"
    rust = iroh.EndpointTicket.from_addr(
        iroh.EndpointAddr(iroh.EndpointId.from_string(key), "http://derp.me./", ["127.0.0.1:1024"])
    )
    ours = EndpointTicket(EndpointAddr(key, "http://derp.me./", ["127.0.0.1:1024"]))
    assert str(rust) == str(ours)
    body = str(rust)[len("endpoint") :].upper()
    assert base64.b32decode(body + "=" * (-len(body) % 8)) == ours.to_bytes()


def _rust_normalised(text: str) -> str | None:
    """Rust's serialisation of ``text`` as a relay URL (read back out of a Rust ticket)."""
    key = iroh.EndpointId.from_string(
        "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6"
    )
    try:
        ticket = iroh.EndpointTicket.from_addr(iroh.EndpointAddr(key, text, []))
    except iroh.IrohError:
        return None
    relay = EndpointTicket.parse(str(ticket)).addr.relay_url
    return str(relay) if relay is not None else None


_URL_CHARS = "abcnxXYZ019.-_:/[]@%?#\\ éü~\t\u200d\u094d\u05d0\uff10\u3002"
url_like = st.builds(
    lambda scheme, rest: f"{scheme}:{rest}",
    st.sampled_from(["http", "https", "HTTPS", "Http"]),
    st.text(_URL_CHARS, max_size=24),
)


@settings(max_examples=150, deadline=None)
@given(url_like)
@example("https://0x7f.1")
@example("https://bücher.de.:443/a/../b c?q#f")
@example("http://[0:0::FFFF:7f00:1]:80")
@example("https://xn--a.example")
@example("https://XN--BCHER-KVA.de")
@example("https://a\u200db.example")
@example("https://\u094da.example")
@example("https://\u05d0.1a")
@example("https://_\u00e9.example")
def test_relay_url_normalisation_matches_rust(text: str) -> None:
    rust = _rust_normalised(text)
    try:
        ours: str | None = str(RelayUrl(text))
    except DecodeError:
        ours = None
    assert ours == rust


@pytest.mark.timeout(30)
async def test_ticket_of_bound_rust_endpoint() -> None:
    ep = await bind_rust()
    try:
        rust_addr = ep.addr()
        text = str(iroh.EndpointTicket.from_addr(rust_addr))
        ours = EndpointTicket.parse(text)
        assert ours.addr.id == PublicKey.parse(str(ep.id()))
        assert ours.addr.relay_url is None
        want = {TransportAddr.ip(a) for a in rust_addr.direct_addresses()}
        assert set(ours.addr.ip_addrs) == want and want
        assert any(a.ip_addr == ipaddress.ip_address("127.0.0.1") for a in want)
        # Our re-encoding is byte-identical to Rust's ticket.
        assert str(ours) == text
    finally:
        await ep.close()
