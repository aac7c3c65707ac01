"""Address lookups against our DNS server on loopback: pkarr publish/resolve, DNS, merging."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from aioiroh.address_lookup.base import AddressLookup, AddressLookupError, AddressLookupItem
from aioiroh.address_lookup.dns import DnsAddressLookup
from aioiroh.address_lookup.memory import MemoryLookup
from aioiroh.address_lookup.pkarr import PkarrPublisher, PkarrResolver
from aioiroh.address_lookup.services import AddressLookupServices
from aioiroh.base.key import SecretKey
from aioiroh.dns.endpoint_info import EndpointInfo
from aioiroh.dns.resolver import DnsResolver
from aioiroh.dns_server.server import DnsServer
from tests.support.dns import TEST_ORIGIN, dns_server_config


async def _collect(stream) -> list[AddressLookupItem]:
    assert stream is not None
    async with contextlib.aclosing(stream):
        return [item async for item in stream]


def _info(sk: SecretKey) -> EndpointInfo:
    return EndpointInfo(
        sk.public(), ("https://relay.example./",), (("192.0.2.7", 1234),), user_data="hi"
    )


async def test_memory_lookup() -> None:
    sk = SecretKey.generate()
    lookup = MemoryLookup([_info(sk)])
    assert isinstance(lookup, AddressLookup)
    items = await _collect(lookup.resolve(sk.public()))
    assert [i.endpoint_info for i in items] == [_info(sk)]
    assert items[0].provenance == "memory"
    assert await _collect(lookup.resolve(SecretKey.generate().public())) == []
    lookup.add(EndpointInfo(sk.public(), (), (("192.0.2.8", 1),)))
    assert len(lookup.get(sk.public()).direct_addresses) == 2


async def test_publish_then_resolve_pkarr_and_dns(dns_server: DnsServer) -> None:
    sk = SecretKey.generate()
    info = _info(sk)
    publisher = PkarrPublisher(sk, dns_server.pkarr_url)
    resolver = PkarrResolver(dns_server.pkarr_url)
    dns_lookup = DnsAddressLookup(TEST_ORIGIN, dns_server.dns_addr)
    doh = DnsResolver(doh_url=f"{dns_server.http_url}/dns-query")
    doh_lookup = DnsAddressLookup(TEST_ORIGIN, resolver=doh)
    try:
        publisher.publish(info)
        packet = await asyncio.wait_for(publisher.wait_published(), 10)
        # relay_only by default: direct addresses are not published.
        relay_only = info.filtered(direct=False)
        assert packet.endpoint_info() == relay_only
        for lookup, provenance in [(resolver, "pkarr"), (dns_lookup, "dns"), (doh_lookup, "dns")]:
            items = await _collect(lookup.resolve(sk.public()))
            assert [i.endpoint_info for i in items] == [relay_only]
            assert items[0].provenance == provenance
        assert items[0].endpoint_id == sk.public()
        # Unknown endpoints fail cleanly.
        unknown = SecretKey.generate().public()
        for lookup in (resolver, dns_lookup):
            with pytest.raises(AddressLookupError):
                await _collect(lookup.resolve(unknown))
    finally:
        await publisher.aclose()
        await resolver.aclose()
        await dns_lookup.aclose()
        await doh.aclose()


async def test_publisher_all_addrs_and_republish(dns_server: DnsServer) -> None:
    sk = SecretKey.generate()
    info = _info(sk)
    publisher = PkarrPublisher(sk, dns_server.pkarr_url, relay_only=False, republish_interval=0.05)
    try:
        publisher.publish(info)
        first = await asyncio.wait_for(publisher.wait_published(1), 10)
        assert first.endpoint_info() == info
        third = await asyncio.wait_for(publisher.wait_published(3), 10)
        assert third.more_recent_than(first)
        # A change is published at once.
        changed = EndpointInfo(sk.public(), ("https://other.example./",))
        count = publisher.published_count
        publisher.publish(changed)
        while (await publisher.wait_published(count + 1)).endpoint_info() != changed:
            count = publisher.published_count
    finally:
        await publisher.aclose()


@pytest.mark.timeout(30)
async def test_publisher_retries_until_relay_is_up(tmp_path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sk = SecretKey.generate()
    publisher = PkarrPublisher(sk, f"http://127.0.0.1:{port}/pkarr")
    try:
        publisher.publish(_info(sk))
        await asyncio.wait_for(publisher.wait_failed(), 10)
        config = dns_server_config(tmp_path, http_port=port)
        async with DnsServer(config) as server:
            await asyncio.wait_for(publisher.wait_published(), 20)
            assert await server.store.get(sk.public()) == publisher.last_packet
    finally:
        await publisher.aclose()


async def test_services_merge_and_errors(dns_server: DnsServer) -> None:
    sk = SecretKey.generate()
    info = _info(sk)
    memory = MemoryLookup([info])
    pkarr = PkarrResolver(dns_server.pkarr_url)
    services = AddressLookupServices([memory, pkarr])
    try:
        # pkarr fails (nothing published), memory succeeds: the merged stream succeeds.
        items = await _collect(services.resolve(sk.public()))
        assert [i.provenance for i in items] == ["memory"]
        merged = await services.resolve_merged(sk.public(), timeout=5)
        assert merged == info
        # Every service fails: the merged stream raises.
        with pytest.raises(AddressLookupError):
            await _collect(services.resolve(SecretKey.generate().public()))
        # Only publishers: nothing can resolve.
        assert (
            AddressLookupServices([PkarrPublisher(sk, dns_server.pkarr_url)]).resolve(sk.public())
            is None
        )
    finally:
        await services.aclose()


async def test_services_early_close_cancels_work(dns_server: DnsServer) -> None:
    """Closing the merged stream after the first item stops the slower services."""
    sk = SecretKey.generate()
    slow = DnsAddressLookup(TEST_ORIGIN, ("127.0.0.1", 9))  # discard port: never answers
    services = AddressLookupServices([MemoryLookup([_info(sk)]), slow])
    stream = services.resolve(sk.public())
    async with contextlib.aclosing(stream):
        first = await anext(stream)
    assert first.provenance == "memory"
    await services.aclose()
