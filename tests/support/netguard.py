"""Network guard: no test may reach beyond this machine and the lab's own namespaces.

Once the CLI defaults to n0's public network, one forgotten flag would send a test to the
internet. This plugin patches the socket layer of the pytest process (``connect``,
``connect_ex``, ``sendto``, ``sendmsg``) and asyncio's ``getaddrinfo`` so that any attempt
towards another host is refused *and* fails the test that made it, even if the code under
test swallows the error. Child processes are covered by ``AIOIROH_DEFAULT_PRESET=minimal``,
which tests/conftest.py puts into the environment every subprocess inherits.

Allowed: loopback, this host's own interface addresses, the lab's address plan (its
"internet" 198.18.0.0/15 and LANs 10.0.0.0/16, which exist only inside namespaces the tests
create), link-local multicast (mDNS), and non-IP sockets.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from aioiroh.socket.interfaces import _ipv4_addresses, _ipv6_addresses

_LAB_NETS = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("10.0.0.0/16"))
_LOCAL_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
_violations: list[str] = []


class NetworkGuardError(PermissionError):
    """A test tried to reach an address outside this machine and its lab namespaces."""


@functools.cache
def _own_addresses() -> frozenset[str]:
    return frozenset(_ipv4_addresses() + _ipv6_addresses())


@functools.lru_cache(maxsize=4096)
def _allowed_host(host: str) -> bool:
    text = host.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return host.lower() in _LOCAL_NAMES
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified:
        return True
    if ip.is_multicast and (
        ip in ipaddress.ip_network("224.0.0.0/24") or ip in ipaddress.ip_network("ff02::/16")
    ):
        return True
    if any(ip in net for net in _LAB_NETS):
        return True
    return str(ip) in _own_addresses()


def _check(address: Any, what: str) -> None:
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return  # AF_UNIX paths, netlink, ...: not the network
    if not _allowed_host(address[0]):
        message = f"{what} to {address!r}: tests must stay on this machine and in lab namespaces"
        _violations.append(message)
        raise NetworkGuardError(message)


_orig_connect = socket.socket.connect
_orig_connect_ex = socket.socket.connect_ex
_orig_sendto = socket.socket.sendto
_orig_sendmsg = socket.socket.sendmsg
_orig_getaddrinfo = asyncio.base_events.BaseEventLoop.getaddrinfo


def _connect(self: socket.socket, address: Any) -> None:
    _check(address, "connect")
    return _orig_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _check(address, "connect")
    return _orig_connect_ex(self, address)


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    _check(args[-1] if args else None, "sendto")
    return _orig_sendto(self, data, *args)


def _sendmsg(self: socket.socket, buffers: Any, *args: Any) -> int:
    if len(args) >= 3:
        _check(args[2], "sendmsg")
    return _orig_sendmsg(self, buffers, *args)


async def _getaddrinfo(self: asyncio.AbstractEventLoop, host: Any, *args: Any, **kw: Any) -> Any:
    if isinstance(host, bytes):
        host = host.decode("idna")
    if isinstance(host, str) and not _allowed_host(host):
        message = f"getaddrinfo({host!r}): tests must not resolve names on the internet"
        _violations.append(message)
        raise NetworkGuardError(message)
    return await _orig_getaddrinfo(self, host, *args, **kw)  # type: ignore[arg-type]


def install() -> None:
    """Patch the socket layer (idempotent)."""
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = _sendto  # type: ignore[assignment,method-assign]
    socket.socket.sendmsg = _sendmsg  # type: ignore[method-assign]
    asyncio.base_events.BaseEventLoop.getaddrinfo = _getaddrinfo  # type: ignore[method-assign]


install()


@pytest.fixture(autouse=True)
def _no_internet() -> Iterator[None]:
    """Fail the test if it tried to reach beyond the machine, however the error was handled."""
    start = len(_violations)
    yield
    tried = _violations[start:]
    if tried:
        pytest.fail("test tried to leave the machine: " + "; ".join(tried[:5]))
