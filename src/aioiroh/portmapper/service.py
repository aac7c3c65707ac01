"""The asyncio port mapping service an endpoint owns.

It finds the default gateway (a pluggable coroutine), probes PCP, NAT-PMP and UPnP IGD on it
at once and uses the first that answers, maps the endpoint's UDP port with a lease, renews at
half the lease, re-probes when the network changes and releases the mapping on close. It only
ever talks to the gateway's own address: no SSDP multicast, and UPnP URLs must be on the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from . import nat_pmp, pcp, upnp
from .epoch import EpochTracker
from .errors import PortMapDecodeError, PortMapError, PortMapRefused
from .metrics import PortmapMetrics

__all__ = [
    "Gateway",
    "GatewayDiscovery",
    "PortMapper",
    "PortMapping",
    "default_gateway",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Lease we ask for (Rust asks 1 h for PCP, 2 h for NAT-PMP and UPnP).
DEFAULT_LEASE = 7200
#: Never renew more often than this, whatever lease the gateway grants.
MIN_RENEW_INTERVAL = 1.0
#: Retransmission timeouts of one UDP exchange (RFC 6887 §8.1.1 starts at 250 ms).
UDP_TIMEOUTS = (0.25, 0.5)
#: Datagrams looked at per exchange before giving up on a chatty responder.
MAX_DATAGRAMS_PER_EXCHANGE = 16
UPNP_SEARCH_TIMEOUT = 1.0
HTTP_TIMEOUT = 2.0
RETRY_MIN, RETRY_MAX = 5.0, 300.0
DESCRIPTION = "aioiroh"


@dataclass(frozen=True, slots=True)
class Gateway:
    """The gateway to ask and our address towards it (ports overridable for tests)."""

    address: str
    local_ip: str
    pcp_port: int = pcp.SERVER_PORT
    ssdp_port: int = upnp.SSDP_PORT


GatewayDiscovery = Callable[[], Awaitable[Gateway | None]]


@dataclass(frozen=True, slots=True)
class PortMapping:
    """A mapping the gateway granted: ``protocol`` is "pcp", "nat-pmp" or "upnp"."""

    protocol: str
    external_addr: tuple[str, int]
    lease: float
    gateway: str
    internal_port: int

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "external_addr": f"{self.external_addr[0]}:{self.external_addr[1]}",
            "lease_seconds": self.lease,
            "gateway": self.gateway,
            "internal_port": self.internal_port,
        }


def _read_default_route() -> str | None:
    try:
        with open("/proc/net/route") as fh:
            lines = fh.readlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 2:
            return socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
    return None


async def default_gateway() -> Gateway | None:
    """The IPv4 default gateway (Linux ``/proc/net/route``) and our source address to it.

    Finding the source address uses a connected UDP socket, which sends nothing.
    """
    gw = _read_default_route()
    if gw is None:
        return None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((gw, pcp.SERVER_PORT))
            local = s.getsockname()[0]
    except OSError:
        return None
    return Gateway(gw, local)


def _check_external_ip(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr.is_reserved:
        raise PortMapDecodeError(f"gateway claims an unusable external address {ip}")
    return ip


def _check_port(port: int) -> int:
    if not 0 < port < 65536:
        raise PortMapDecodeError(f"gateway claims external port {port}")
    return port


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_DATAGRAMS_PER_EXCHANGE)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(data)


class PortMapper:
    """Keeps one UDP port mapping for ``local_port`` alive on the default gateway."""

    def __init__(
        self,
        local_port: int,
        *,
        gateway: GatewayDiscovery = default_gateway,
        lease: int = DEFAULT_LEASE,
        protocols: tuple[str, ...] = ("pcp", "nat-pmp", "upnp"),
        on_change: Callable[[PortMapping | None], None] | None = None,
        metrics: PortmapMetrics | None = None,
    ) -> None:
        self.local_port = local_port
        self._discover = gateway
        self._lease = lease
        self._protocols = protocols
        self._on_change = on_change
        self.metrics = metrics or PortmapMetrics()
        self._mapping: PortMapping | None = None
        self._gateway: Gateway | None = None
        self._protocol: str | None = None
        self._nonce = os.urandom(12)
        self._epoch = EpochTracker()
        self._upnp_service: upnp.IgdService | None = None
        self._changed = asyncio.Event()
        #: Set whenever a mapping is taken, renewed or dropped (for waiters such as tests).
        self.updated = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- public ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="aioiroh-portmapper")

    def mapping(self) -> PortMapping | None:
        """The mapping held now (None while probing, or when no gateway grants one)."""
        return self._mapping

    def network_changed(self) -> None:
        """Interfaces changed: drop the mapping and probe the (maybe new) gateway again."""
        self._changed.set()

    async def close(self) -> None:
        """Stop renewing and release the mapping (best effort, bounded in time)."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(PortMapError, OSError, TimeoutError, aiohttp.ClientError):
            async with asyncio.timeout(2.0):
                await self._release()
        self._set(None)

    # -- the loop --------------------------------------------------------------------------

    def _set(self, mapping: PortMapping | None) -> None:
        old, self._mapping = self._mapping, mapping
        self.updated.set()
        self.metrics.mapped = int(mapping is not None)
        if (old and old.external_addr) != (mapping and mapping.external_addr):
            if mapping is not None:
                self.metrics.external_address_updates += 1
                logger.info(
                    "port mapping (%s): %s:%d -> local port %d, lease %ds",
                    mapping.protocol,
                    *mapping.external_addr,
                    mapping.internal_port,
                    mapping.lease,
                )
            if self._on_change is not None:
                self._on_change(mapping)

    async def _wait_change(self, timeout: float) -> bool:
        """Sleep ``timeout`` seconds; True if the network changed meanwhile."""
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    async def map_once(self) -> PortMapping:
        """Find the gateway, probe it and map the port once (no renewal); raises
        :class:`PortMapError` when nothing grants a mapping. Used by the loop and ``doctor``."""
        gw = await self._discover()
        if gw is None:
            raise PortMapError("no default gateway")
        self._gateway = gw
        try:
            self._protocol = await self._probe(gw)
            mapping = await self._map(gw)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            self.metrics.mapping_failures += 1
            raise PortMapError(f"port mapping on {gw.address} failed: {exc}") from exc
        except PortMapError:
            self.metrics.mapping_failures += 1
            raise
        self._set(mapping)
        return mapping

    async def _run(self) -> None:
        retry = RETRY_MIN
        while True:
            self._changed.clear()
            try:
                mapping = await self.map_once()
            except PortMapError as exc:
                logger.debug("port mapping failed: %s", exc)
                self._protocol = None
                await self._wait_change(retry)
                retry = min(retry * 2, RETRY_MAX)
                continue
            gw = self._gateway
            assert gw is not None
            retry = RETRY_MIN
            while True:
                if await self._wait_change(max(mapping.lease / 2, MIN_RENEW_INTERVAL)):
                    with contextlib.suppress(
                        PortMapError, OSError, aiohttp.ClientError, TimeoutError
                    ):
                        async with asyncio.timeout(2.0):
                            await self._release()
                    self._set(None)
                    break
                try:
                    mapping = await self._map(gw)
                except (PortMapError, OSError, aiohttp.ClientError, TimeoutError) as exc:
                    logger.info("port mapping renewal failed, probing again: %s", exc)
                    self.metrics.mapping_failures += 1
                    self._set(None)
                    break
                self.metrics.renewals += 1
                self._set(mapping)

    # -- probing ---------------------------------------------------------------------------

    async def _probe(self, gw: Gateway) -> str:
        """Ask all enabled protocols at once; the first to answer wins."""
        self.metrics.probes_started += 1
        probes = {
            "pcp": self._probe_pcp,
            "nat-pmp": self._probe_nat_pmp,
            "upnp": self._probe_upnp,
        }
        tasks = {
            asyncio.ensure_future(probes[name](gw)): name
            for name in self._protocols
            if name in probes
        }
        try:
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        name = tasks[task]
                        attr = f"{name.replace('-', '_')}_available"
                        setattr(self.metrics, attr, getattr(self.metrics, attr) + 1)
                        logger.debug("%s answered on gateway %s", name, gw.address)
                        return name
                    logger.debug("%s probe: %s", tasks[task], task.exception())
            raise PortMapError(f"no port mapping protocol answered on {gw.address}")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _probe_pcp(self, gw: Gateway) -> None:
        self.metrics.pcp_probes += 1
        req = pcp.encode_announce_request(gw.local_ip)

        def accept(data: bytes) -> None:
            if pcp.decode_response(data).opcode is not pcp.Opcode.ANNOUNCE:
                raise PortMapDecodeError("PCP: answer to ANNOUNCE is not an ANNOUNCE")

        await self._udp_exchange(gw, req, accept)

    async def _probe_nat_pmp(self, gw: Gateway) -> None:
        self.metrics.nat_pmp_probes += 1

        def accept(data: bytes) -> None:
            if not isinstance(nat_pmp.decode_response(data), nat_pmp.ExternalAddressResponse):
                raise PortMapDecodeError("NAT-PMP: unexpected answer to the address request")

        await self._udp_exchange(gw, nat_pmp.encode_external_address_request(), accept)

    async def _probe_upnp(self, gw: Gateway) -> None:
        self.metrics.upnp_probes += 1
        self._upnp_service = await self._upnp_discover(gw)

    # -- UDP exchanges (PCP, NAT-PMP) ------------------------------------------------------

    async def _udp_exchange(self, gw: Gateway, payload: bytes, accept: Callable[[bytes], T]) -> T:
        """Send ``payload`` to the gateway, retransmitting, until ``accept`` takes an answer.

        Answers ``accept`` rejects as malformed are counted and ignored (a hostile or confused
        responder cannot end the exchange early); a refusal ends it.
        """
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            _Datagrams, local_addr=(gw.local_ip, 0), remote_addr=(gw.address, gw.pcp_port)
        )
        seen = 0
        try:
            for timeout in UDP_TIMEOUTS:
                transport.sendto(payload)
                deadline = loop.time() + timeout
                while seen < MAX_DATAGRAMS_PER_EXCHANGE:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        async with asyncio.timeout(left):
                            data = await proto.queue.get()
                    except TimeoutError:
                        break
                    seen += 1
                    try:
                        return accept(data)
                    except PortMapRefused:
                        raise
                    except PortMapDecodeError as exc:
                        self.metrics.bad_responses += 1
                        logger.info("ignoring a bad answer from %s: %s", gw.address, exc)
            raise PortMapError(f"no valid answer from {gw.address}:{gw.pcp_port}")
        finally:
            transport.close()

    def _check_epoch(self, epoch: int) -> None:
        if self._epoch.observe(epoch, time.monotonic()):
            self.metrics.gateway_restarts += 1
            logger.info("gateway epoch reset: it lost its mappings; mapping again")

    # -- mapping ---------------------------------------------------------------------------

    async def _map(self, gw: Gateway) -> PortMapping:
        self.metrics.mapping_attempts += 1
        if self._protocol == "pcp":
            return await self._map_pcp(gw)
        if self._protocol == "nat-pmp":
            return await self._map_nat_pmp(gw)
        return await self._map_upnp(gw)

    def _clamp_lease(self, granted: int) -> int:
        if granted <= 0:
            raise PortMapDecodeError("gateway granted a zero lease")
        return min(granted, self._lease)

    async def _map_pcp(self, gw: Gateway) -> PortMapping:
        hint = self._mapping.external_addr if self._mapping else None
        req = pcp.encode_map_request(
            self._nonce,
            gw.local_ip,
            self.local_port,
            self._lease,
            external_port=hint[1] if hint else 0,
            external_ip=hint[0] if hint else None,
        )

        def accept(data: bytes) -> PortMapping:
            resp = pcp.decode_response(data)
            m = resp.map
            if m is None or m.nonce != self._nonce:
                raise PortMapDecodeError("PCP: answer is not for our MAP request (nonce)")
            if m.protocol != pcp.PROTO_UDP or m.internal_port != self.local_port:
                raise PortMapDecodeError("PCP: answer maps another protocol or port")
            ext = (_check_external_ip(m.external_ip), _check_port(m.external_port))
            self._check_epoch(resp.epoch)
            return PortMapping(
                "pcp", ext, self._clamp_lease(resp.lifetime), gw.address, self.local_port
            )

        return await self._udp_exchange(gw, req, accept)

    async def _map_nat_pmp(self, gw: Gateway) -> PortMapping:
        hint = self._mapping.external_addr[1] if self._mapping else 0
        req = nat_pmp.encode_map_request(self.local_port, hint, self._lease)

        def accept_map(data: bytes) -> nat_pmp.MapResponse:
            resp = nat_pmp.decode_response(data)
            if (
                not isinstance(resp, nat_pmp.MapResponse)
                or resp.opcode is not nat_pmp.Opcode.MAP_UDP
                or resp.internal_port != self.local_port
            ):
                raise PortMapDecodeError("NAT-PMP: answer maps another protocol or port")
            _check_port(resp.external_port)
            self._clamp_lease(resp.lifetime)
            self._check_epoch(resp.epoch)
            return resp

        def accept_addr(data: bytes) -> str:
            resp = nat_pmp.decode_response(data)
            if not isinstance(resp, nat_pmp.ExternalAddressResponse):
                raise PortMapDecodeError("NAT-PMP: unexpected answer to the address request")
            return _check_external_ip(resp.external_ip)

        mapped = await self._udp_exchange(gw, req, accept_map)
        ip = await self._udp_exchange(gw, nat_pmp.encode_external_address_request(), accept_addr)
        return PortMapping(
            "nat-pmp",
            (ip, mapped.external_port),
            self._clamp_lease(mapped.lifetime),
            gw.address,
            self.local_port,
        )

    # -- UPnP ------------------------------------------------------------------------------

    async def _upnp_discover(self, gw: Gateway) -> upnp.IgdService:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            _Datagrams, local_addr=(gw.local_ip, 0), remote_addr=(gw.address, gw.ssdp_port)
        )
        try:
            transport.sendto(upnp.encode_msearch())
            deadline = loop.time() + UPNP_SEARCH_TIMEOUT
            location: str | None = None
            for _ in range(MAX_DATAGRAMS_PER_EXCHANGE):
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(left):
                        data = await proto.queue.get()
                    ssdp = upnp.parse_ssdp_response(data)
                    location = upnp.check_url_on_gateway(ssdp.location, gw.address)
                    break
                except TimeoutError:
                    break
                except PortMapDecodeError as exc:
                    self.metrics.bad_responses += 1
                    logger.info("ignoring a bad SSDP answer from %s: %s", gw.address, exc)
        finally:
            transport.close()
        if location is None:
            raise PortMapError(f"no UPnP IGD answered on {gw.address}")
        body = await self._http("GET", location, upnp.MAX_DESCRIPTION_SIZE)
        try:
            services = upnp.parse_description(body, location, gw.address)
        except PortMapDecodeError:
            self.metrics.bad_responses += 1
            raise
        return next(s for s in services if s.service_type in upnp.WAN_SERVICES)

    async def _http(
        self, method: str, url: str, limit: int, body: bytes | None = None, action: str = ""
    ) -> bytes:
        headers = {}
        if action:
            headers = {"Content-Type": 'text/xml; charset="utf-8"', "SOAPAction": action}
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, data=body, headers=headers, allow_redirects=False) as resp,
        ):
            data = await resp.content.read(limit + 1)
            if len(data) > limit:
                self.metrics.bad_responses += 1
                raise PortMapDecodeError(f"UPnP: answer from {url[:60]} exceeds {limit} bytes")
            if resp.status >= 400 and resp.status != 500:
                raise PortMapError(f"UPnP: HTTP {resp.status} from {url[:60]}")
            return data

    async def _soap(self, action: str, args: dict[str, str]) -> dict[str, str]:
        service = self._upnp_service
        if service is None:
            raise PortMapError("UPnP: no gateway service known")
        body, soap_action = upnp.soap_request(service.service_type, action, args)
        data = await self._http("POST", service.control_url, upnp.MAX_SOAP_SIZE, body, soap_action)
        try:
            return upnp.parse_soap_response(data, action)
        except PortMapDecodeError:
            self.metrics.bad_responses += 1
            raise

    async def _map_upnp(self, gw: Gateway) -> PortMapping:
        if self._upnp_service is None:
            self._upnp_service = await self._upnp_discover(gw)
        out = await self._soap("GetExternalIPAddress", {})
        ip = _check_external_ip(out.get("NewExternalIPAddress", "") or "0.0.0.0")
        previous = self._mapping.external_addr[1] if self._mapping else None
        ports = [previous or self.local_port, *(random.randint(1024, 65535) for _ in range(2))]
        lease = self._lease
        last: PortMapError | None = None
        for port in ports:
            args = upnp.add_port_mapping_args(
                port, self.local_port, gw.local_ip, lease, DESCRIPTION
            )
            try:
                await self._soap("AddPortMapping", args)
            except PortMapRefused as exc:
                last = exc
                if exc.code == 725:  # OnlyPermanentLeasesSupported: ask again, renew anyway
                    lease = 0
                    args["NewLeaseDuration"] = "0"
                    try:
                        await self._soap("AddPortMapping", args)
                    except PortMapRefused as exc2:
                        last = exc2
                        continue
                elif exc.code == 718:  # ConflictInMappingEntry: another port
                    continue
                else:
                    raise
            return PortMapping(
                "upnp", (ip, port), lease or self._lease, gw.address, self.local_port
            )
        raise last or PortMapError("UPnP: AddPortMapping failed")

    # -- release ---------------------------------------------------------------------------

    async def _release(self) -> None:
        mapping, gw = self._mapping, self._gateway
        if mapping is None or gw is None:
            return
        self.metrics.releases += 1
        if mapping.protocol == "pcp":
            req = pcp.encode_map_request(self._nonce, gw.local_ip, self.local_port, 0)
            await self._udp_exchange(gw, req, pcp.decode_response)
        elif mapping.protocol == "nat-pmp":
            req = nat_pmp.encode_map_request(self.local_port, 0, 0)
            await self._udp_exchange(gw, req, nat_pmp.decode_response)
        else:
            await self._soap(
                "DeletePortMapping", upnp.delete_port_mapping_args(mapping.external_addr[1])
            )
