"""Local interface addresses (Linux), for the direct addresses an endpoint advertises."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from typing import Final

_SIOCGIFADDR: Final = 0x8915


def _ipv4_addresses() -> list[str]:
    out: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                req = struct.pack("256s", name.encode()[:15])
                res = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, req)
            except OSError:
                continue
            out.append(socket.inet_ntoa(res[20:24]))
    return out


def _ipv6_addresses() -> list[str]:
    out: list[str] = []
    try:
        with open("/proc/net/if_inet6") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) < 6:
            continue
        addr = ipaddress.IPv6Address(bytes.fromhex(parts[0]))
        if addr.is_link_local:
            continue  # needs a scope id; iroh does not advertise these either
        out.append(str(addr))
    return out


def local_addresses(ipv6: bool) -> list[str]:
    """Addresses of this host's interfaces; loopback only if there is nothing else."""
    addrs = _ipv6_addresses() if ipv6 else _ipv4_addresses()
    routable = [a for a in addrs if not ipaddress.ip_address(a).is_loopback]
    return routable or addrs
