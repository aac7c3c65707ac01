"""Local-network address lookup over multicast DNS, in the wire format of iroh's mDNS lookup.

iroh's ``iroh-mdns-address-lookup`` uses the ``swarm-discovery`` crate with service name
``irohv1``. On the wire (read from that crate's sender/receiver):

- query: a PTR question for ``_irohv1._udp.local.`` sent to 224.0.0.251:5353;
- answer (authoritative, TTL 0): for each port an SRV record at ``<z32-id>._irohv1._udp.local.``
  pointing at ``<z32-id>-<port>.local.``, A/AAAA records for that target in the additional
  section, and TXT strings ``relay=<url>`` / ``user-data=<text>`` at the SRV owner name.

The codec functions are pure; :class:`MdnsAddressLookup` is the asyncio driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset

from ..base.key import EndpointId
from ..dns.endpoint_info import EndpointInfo
from ..errors import KeyParseError
from .base import AddressLookupItem

__all__ = [
    "MDNS_GROUP_V4",
    "MDNS_PORT",
    "MdnsAddressLookup",
    "build_announcement",
    "build_query",
    "parse_announcements",
]

log = logging.getLogger(__name__)

MDNS_GROUP_V4: Final = "224.0.0.251"
MDNS_PORT: Final = 5353
N0_SERVICE_NAME: Final = "irohv1"
PROVENANCE: Final = "mdns"
LOOKUP_DURATION: Final = 10.0
"""How long a resolve waits for a peer to answer (iroh: 10 s)."""
QUERY_INTERVAL: Final = 5.0
"""Seconds between our periodic queries while running."""
MAX_PEERS: Final = 1024
"""Bound on remembered LAN peers (oldest forgotten first)."""
_RELAY_ATTR: Final = "relay"
_USER_DATA_ATTR: Final = "user-data"
_MAX_DATAGRAM: Final = 9000


def service_name(name: str = N0_SERVICE_NAME) -> dns.name.Name:
    """``_<name>._udp.local.``"""
    return dns.name.from_text(f"_{name}._udp.local.")


def build_query(service: dns.name.Name) -> bytes:
    """A PTR question for the service (id 0, as mDNS uses)."""
    msg = dns.message.make_query(service, dns.rdatatype.PTR)
    msg.id = 0
    msg.flags = dns.flags.Flag(0)
    return msg.to_wire()


def build_announcement(info: EndpointInfo, service: dns.name.Name) -> bytes | None:
    """Our answer: SRV per port, A/AAAA for the targets, TXT for relay and user data.

    ``None`` if there are no direct addresses (swarm-discovery does not announce then).
    """
    if not info.direct_addresses:
        return None
    peer = info.endpoint_id.to_z32()
    owner = dns.name.Name([peer.encode()]).concatenate(service)
    msg = dns.message.Message(id=0)
    msg.flags = dns.flags.QR | dns.flags.AA
    by_port: dict[int, list[str]] = {}
    for host, port in info.direct_addresses:
        by_port.setdefault(port, []).append(host)
    for port, hosts in sorted(by_port.items()):
        target = dns.name.from_text(f"{peer}-{port}.local.")
        srv = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.SRV)
        srv.add(dns.rdtypes.IN.SRV.SRV(dns.rdataclass.IN, dns.rdatatype.SRV, 0, 0, port, target), 0)
        msg.answer.append(srv)
        for host in hosts:
            ip = ipaddress.ip_address(host)
            rdtype = dns.rdatatype.A if ip.version == 4 else dns.rdatatype.AAAA
            rr = dns.rrset.RRset(target, dns.rdataclass.IN, rdtype)
            cls = dns.rdtypes.IN.A.A if ip.version == 4 else dns.rdtypes.IN.AAAA.AAAA
            rr.add(cls(dns.rdataclass.IN, rdtype, str(ip)), 0)
            msg.additional.append(rr)
    strings = [f"{_RELAY_ATTR}={url}".encode() for url in info.relay_urls[:1]]
    if info.user_data is not None:
        strings.append(f"{_USER_DATA_ATTR}={info.user_data}".encode())
    if strings:
        txt = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.TXT)
        txt.add(dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings), 0)
        msg.answer.append(txt)
    return msg.to_wire()


@dataclass(frozen=True, slots=True)
class _Parsed:
    is_query: bool
    infos: list[EndpointInfo]


def parse_announcements(data: bytes, service: dns.name.Name) -> _Parsed | None:
    """Decode one mDNS datagram: a query for our service, or peers' announcements."""
    try:
        msg = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
        return None
    for q in msg.question:
        if q.rdtype == dns.rdatatype.PTR and q.rdclass == dns.rdataclass.IN and q.name == service:
            return _Parsed(True, [])
    ports: dict[dns.name.Name, list[tuple[int, str]]] = {}
    txt: dict[str, dict[str, str]] = {}
    for rrset in msg.answer:
        if rrset.rdclass != dns.rdataclass.IN or len(rrset.name) < 2:
            continue
        if rrset.name.parent() != service:
            continue
        peer = rrset.name.labels[0].decode("utf-8", "replace")
        for rdata in rrset:
            if rrset.rdtype == dns.rdatatype.SRV:
                ports.setdefault(rdata.target, []).append((rdata.port, peer))
            elif rrset.rdtype == dns.rdatatype.TXT:
                for s in rdata.strings:
                    key, _, value = s.decode("utf-8", "replace").partition("=")
                    txt.setdefault(peer, {})[key] = value
    addrs: dict[str, list[tuple[str, int]]] = {}
    for rrset in msg.additional:
        if rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
            continue
        for rdata in rrset:
            for port, peer in ports.get(rrset.name, []):
                addrs.setdefault(peer, []).append((rdata.address, port))
    infos = []
    for peer, peer_addrs in addrs.items():
        try:
            endpoint_id = EndpointId.from_z32(peer)
        except KeyParseError:
            continue
        attrs = txt.get(peer, {})
        strings = [f"addr={h if ':' not in h else f'[{h}]'}:{p}" for h, p in peer_addrs]
        if _RELAY_ATTR in attrs:
            strings.append(f"relay={attrs[_RELAY_ATTR]}")
        if _USER_DATA_ATTR in attrs:
            strings.append(f"user-data={attrs[_USER_DATA_ATTR]}")
        try:
            infos.append(EndpointInfo.from_txt_strings(endpoint_id, strings))
        except ValueError:
            continue
    return _Parsed(False, infos)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: MdnsAddressLookup) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._owner._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("mDNS socket error: %r", exc)


class MdnsAddressLookup:
    """Announces our direct addresses on the LAN and finds peers that do the same.

    ``interface`` is the IPv4 address of the interface to use (``0.0.0.0``: the default);
    ``port`` and ``group`` can be changed for tests so they stay off the real mDNS port.
    Call :meth:`start` inside the event loop (or use ``async with``), :meth:`aclose` to stop.
    """

    def __init__(
        self,
        endpoint_id: EndpointId,
        *,
        service: str = N0_SERVICE_NAME,
        interface: str = "0.0.0.0",
        group: str = MDNS_GROUP_V4,
        port: int = MDNS_PORT,
        advertise: bool = True,
        query_interval: float = QUERY_INTERVAL,
    ) -> None:
        self._endpoint_id = endpoint_id
        self._service = service_name(service)
        self._interface = interface
        self._group = group
        self._port = port
        self._advertise = advertise
        self._query_interval = query_interval
        self._ours: EndpointInfo | None = None
        self._peers: dict[EndpointId, tuple[EndpointInfo, int]] = {}
        # Resolves waiting for a new announcement; set (synchronously) on every update.
        self._waiters: set[asyncio.Event] = set()
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join the multicast group and start the periodic query loop."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(AttributeError, OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("", self._port))
            iface = socket.inet_aton(self._interface)
            mreq = socket.inet_aton(self._group) + iface
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("B", 255))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._task = loop.create_task(self._query_loop(), name="mdns-query")

    async def __aenter__(self) -> MdnsAddressLookup:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _send(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.sendto(data, (self._group, self._port))

    def _announce(self) -> None:
        if self._advertise and self._ours is not None:
            wire = build_announcement(self._ours, self._service)
            if wire is not None:
                self._send(wire)

    async def _query_loop(self) -> None:
        query = build_query(self._service)
        while True:
            self._send(query)
            await asyncio.sleep(self._query_interval)

    def _on_datagram(self, data: bytes) -> None:
        parsed = parse_announcements(data, self._service)
        if parsed is None:
            return
        if parsed.is_query:
            self._announce()
            return
        now = time.time_ns() // 1000
        updated = False
        for info in parsed.infos:
            if info.endpoint_id == self._endpoint_id:
                continue
            self._peers.pop(info.endpoint_id, None)
            self._peers[info.endpoint_id] = (info, now)
            updated = True
        while len(self._peers) > MAX_PEERS:
            del self._peers[next(iter(self._peers))]
        if updated:
            for waiter in self._waiters:
                waiter.set()

    def publish(self, info: EndpointInfo) -> None:
        """Announce ``info`` (direct addresses, first relay URL, user data) now and on queries."""
        if info.endpoint_id != self._endpoint_id:
            raise ValueError("can only publish info about our own endpoint id")
        self._ours = info
        self._announce()

    def resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem] | None:
        """Yield the peer once it has been seen (waits up to 10 s, querying once)."""
        return self._resolve(endpoint_id)

    async def _resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem]:
        if endpoint_id not in self._peers:
            waiter = asyncio.Event()
            self._waiters.add(waiter)
            try:
                self._send(build_query(self._service))
                async with asyncio.timeout(LOOKUP_DURATION):
                    while endpoint_id not in self._peers:
                        await waiter.wait()
                        waiter.clear()
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)
        entry = self._peers.get(endpoint_id)
        if entry is not None:
            yield AddressLookupItem(entry[0], PROVENANCE, entry[1])

    def peers(self) -> list[EndpointInfo]:
        """Every LAN peer seen so far."""
        return [info for info, _ in self._peers.values()]

    async def aclose(self) -> None:
        """Leave the group and stop querying."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def __repr__(self) -> str:
        return f"MdnsAddressLookup({self._endpoint_id.fmt_short()}, {self._service})"
