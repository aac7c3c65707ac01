"""Presets (Rust's ``iroh::presets``): N0's exact shape, the staging switch, custom presets
bound against our own relay and DNS/pkarr server on loopback, and the builder.

No test here binds an n0 preset with its services: that would reach the internet.
"""

from __future__ import annotations

import asyncio

import pytest

from aioiroh import Endpoint, IrohError, RelayMode, SecretKey
from aioiroh.address_lookup.dns import DnsAddressLookup
from aioiroh.address_lookup.pkarr import PkarrPublisher, PkarrResolver
from aioiroh.dns_server.server import DnsServer
from aioiroh.presets import N0, PRESETS, Minimal, N0DisableRelay, Preset, PresetError, by_name
from aioiroh.relay_server import RelayServer

from .support.dns import TEST_ORIGIN

pytestmark = pytest.mark.timeout(60)

ALPN = b"aioiroh/preset-echo/0"
# As in Rust iroh's defaults.rs and address_lookup/pkarr.rs / dns.rs.
N0_RELAYS = (
    "https://use1-1.relay.n0.iroh.link./",
    "https://usw1-1.relay.n0.iroh.link./",
    "https://euc1-1.relay.n0.iroh.link./",
    "https://aps1-1.relay.n0.iroh.link./",
)
N0_STAGING_RELAYS = (
    "https://use1-1.staging-relay.n0.iroh.link./",
    "https://euc1-1.staging-relay.n0.iroh.link./",
)
STAGING = {"IROH_FORCE_STAGING_RELAYS": "1"}


def test_n0_is_n0s_production_network() -> None:
    p = N0.resolve({})
    assert p.relays == N0_RELAYS
    assert p.pkarr_relay == "https://dns.iroh.link/pkarr"
    assert p.dns_origin == "dns.iroh.link."
    assert p.dns_nameserver is None  # the system's resolvers
    assert not p.publish_ip_addrs  # like Rust's PkarrPublisher: relay only
    assert {str(r.url) for r in p.relay_mode().relay_map()} == set(N0_RELAYS)


def test_force_staging_relays_switches_the_n0_presets_to_staging() -> None:
    p = N0.resolve(STAGING)
    assert p.relays == N0_STAGING_RELAYS
    assert p.pkarr_relay == "https://staging-dns.iroh.link/pkarr"
    assert p.dns_origin == "staging-dns.iroh.link."
    q = N0DisableRelay.resolve(STAGING)
    assert q.relays == () and q.pkarr_relay == "https://staging-dns.iroh.link/pkarr"
    # As in Rust, an empty value does not count.
    assert N0.resolve({"IROH_FORCE_STAGING_RELAYS": ""}) is N0
    assert Minimal.resolve(STAGING) is Minimal


def test_n0_disable_relay_has_no_relays_and_publishes_ip_addresses() -> None:
    p = N0DisableRelay.resolve({})
    assert p.relays == () and p.relay_mode().is_disabled
    assert p.publish_ip_addrs
    assert p.pkarr_relay == N0.pkarr_relay and p.dns_origin == N0.dns_origin


async def test_n0_services_are_pkarr_publish_and_resolve_and_dns_lookup() -> None:
    services = N0.resolve({}).address_lookup(SecretKey.generate())
    try:
        assert [type(s) for s in services] == [PkarrPublisher, PkarrResolver, DnsAddressLookup]
        assert services[2].origin == "dns.iroh.link."  # type: ignore[attr-defined]
    finally:
        for s in services:
            await s.aclose()  # type: ignore[attr-defined]


def test_minimal_reaches_nothing_and_names_are_the_cli_names() -> None:
    assert Minimal.relays == () and Minimal.address_lookup(SecretKey.generate()) == []
    assert Minimal.relay_mode().is_disabled
    assert set(PRESETS) == {"minimal", "n0", "n0-no-relay"}
    assert by_name("n0") is N0
    with pytest.raises(PresetError, match="unknown preset"):
        by_name("n1")


@pytest.mark.parametrize(
    "fields",
    [
        {"relays": ("not a url",)},
        {"relays": "https://one.example/"},
        {"pkarr_relay": "ftp://dns.example/pkarr"},
        {"pkarr_relay": "dns.example"},
        {"dns_origin": "."},
        {"dns_nameserver": ("127.0.0.1", 0)},
    ],
)
def test_a_malformed_preset_is_refused_on_creation(fields: dict[str, object]) -> None:
    with pytest.raises(PresetError) as info:
        Preset("bad", **fields)  # type: ignore[arg-type]
    assert isinstance(info.value, IrohError)


def test_presets_are_immutable_and_replace_makes_a_custom_copy() -> None:
    with pytest.raises(AttributeError):
        N0.relays = ()  # type: ignore[misc]
    mine = N0.replace(name="mine", relays=("https://relay.example.org/",))
    assert mine.relays == ("https://relay.example.org/",) and mine.pkarr_relay == N0.pkarr_relay
    # A copy is its own preset: the staging switch no longer swaps it for n0's staging.
    assert mine.resolve(STAGING) is mine
    assert N0.to_json()["relays"] == list(N0_RELAYS)


async def test_bare_bind_keeps_nothing_leaving_the_machine() -> None:
    ep = await Endpoint.bind(bind_addr="127.0.0.1:0")
    try:
        assert ep.relay_mode.is_disabled
        assert ep._lookup is None
    finally:
        await ep.close()


async def test_explicit_settings_win_over_the_preset() -> None:
    # N0's relays and services are replaced, so nothing is contacted.
    ep = await Endpoint.bind(
        bind_addr="127.0.0.1:0", preset=N0, relay_mode=RelayMode.disabled(), address_lookup=[]
    )
    try:
        assert ep.relay_mode.is_disabled
        assert ep._lookup is not None and list(ep._lookup.services) == []
    finally:
        await ep.close()


async def _echo(ep: Endpoint) -> None:
    while True:
        conn = await ep.accept()
        send, recv = await conn.accept_bi()
        await send.write_all(await recv.read_to_end(1000))
        await send.finish()


@pytest.mark.parametrize("style", ["bind", "builder"])
async def test_a_custom_preset_connects_by_endpoint_id_alone(
    relay_server: RelayServer, dns_server: DnsServer, style: str
) -> None:
    """N0's shape on loopback: our relay, our pkarr relay, DNS lookup at our DNS server."""
    local = Preset(
        "local",
        relays=(str(relay_server.http_url),),
        pkarr_relay=dns_server.pkarr_url,
        dns_origin=TEST_ORIGIN,
        dns_nameserver=dns_server.dns_addr,
    )
    key = SecretKey.generate()
    if style == "bind":
        server = await Endpoint.bind(
            key, alpns=[ALPN], bind_addr="127.0.0.1:0", preset=local, nat_traversal=False
        )
        client = await Endpoint.bind(bind_addr="127.0.0.1:0", preset=local, nat_traversal=False)
    else:
        server = await (
            Endpoint.builder(local)
            .secret_key(key)
            .alpns([ALPN])
            .bind_addr("127.0.0.1:0")
            .nat_traversal(False)
            .bind()
        )
        client = await (
            Endpoint.builder(local)
            .bind_addr("127.0.0.1:0")
            .nat_traversal(False)
            .clear_address_lookup()
            .address_lookup(DnsAddressLookup(TEST_ORIGIN, dns_server.dns_addr))
            .bind()
        )
    task = asyncio.create_task(_echo(server))
    try:
        await server.online()
        assert server.home_relay is not None
        assert [type(s) for s in server._lookup.services] == [  # type: ignore[union-attr]
            PkarrPublisher,
            PkarrResolver,
            DnsAddressLookup,
        ]
        publisher = server._lookup.services[0]  # type: ignore[union-attr]
        packet = await asyncio.wait_for(publisher.wait_published(1), 10)  # type: ignore[attr-defined]
        while not packet.endpoint_info().relay_urls:
            packet = await asyncio.wait_for(
                publisher.wait_published(publisher.published_count + 1),  # type: ignore[attr-defined]
                10,
            )
        conn = await client.connect(server.id, ALPN, timeout=10)
        send, recv = await conn.open_bi()
        await send.write_all(b"by id")
        await send.finish()
        assert await recv.read_to_end(1000) == b"by id"
        conn.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        await server.close()


class _OwnPreset:
    """A preset written from scratch: anything with the PresetLike methods works."""

    def __init__(self, relay: str) -> None:
        self.relay = relay

    def resolve(self, environ: object = None) -> _OwnPreset:
        return self

    def relay_mode(self) -> RelayMode:
        return RelayMode.custom([self.relay])

    def address_lookup(self, secret_key: SecretKey) -> list[object]:
        return []


async def test_any_object_with_the_preset_methods_is_a_preset(relay_server: RelayServer) -> None:
    ep = await Endpoint.bind(bind_addr="127.0.0.1:0", preset=_OwnPreset(relay_server.http_url))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(ep.online(), 10)
        assert ep.home_relay is not None
    finally:
        await ep.close()
