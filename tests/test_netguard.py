"""The suite's network guard refuses (and reports) any attempt to leave the machine."""

from __future__ import annotations

import asyncio
import socket

import pytest

from .support import netguard

# TEST-NET-3 (RFC 5737): documentation addresses, never routed; nothing is sent anyway.
FOREIGN = ("203.0.113.7", 443)


def _caught(fn) -> str:  # type: ignore[no-untyped-def]
    start = len(netguard._violations)
    with pytest.raises(netguard.NetworkGuardError):
        fn()
    found = netguard._violations[start:]
    del netguard._violations[start:]  # this test made them on purpose
    assert len(found) == 1
    return found[0]


def test_tcp_connect_and_udp_sendto_to_a_foreign_address_are_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert "connect" in _caught(lambda: s.connect(FOREIGN))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        assert "sendto" in _caught(lambda: u.sendto(b"x", FOREIGN))


async def test_resolving_an_internet_name_is_refused() -> None:
    loop = asyncio.get_running_loop()
    start = len(netguard._violations)
    with pytest.raises(netguard.NetworkGuardError):
        await loop.getaddrinfo("dns.iroh.link", 443)
    del netguard._violations[start:]


async def test_loopback_and_lab_addresses_pass() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(b"x", ("127.0.0.1", 9))
    assert netguard._allowed_host("::1")
    assert netguard._allowed_host("198.18.0.10")  # the lab's "internet"
    assert netguard._allowed_host("10.0.3.2")  # a lab LAN
    assert not netguard._allowed_host("8.8.8.8")
    assert not netguard._allowed_host("dns.iroh.link")
    await asyncio.get_running_loop().getaddrinfo("localhost", 80)
