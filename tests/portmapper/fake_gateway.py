"""A small port-mapping "router" on loopback for the service tests: NAT-PMP, PCP and UPnP IGD.

It keeps a real mapping table, so tests can see renewals and releases, and can be told to
misbehave (``hostile``) the ways a bad LAN device might.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

EXTERNAL_IP = "203.0.113.7"


@dataclass
class Entry:
    protocol: str
    internal_port: int
    external_port: int
    lease: int
    expires: float
    client: str = ""


@dataclass
class FakeGateway:
    mode: str  # "pcp", "nat-pmp" or "upnp"
    max_lease: int = 3600
    hostile: set[str] = field(default_factory=set)
    table: dict[int, Entry] = field(default_factory=dict)
    requests: list[tuple[str, int]] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)
    udp_port: int = 0
    ssdp_port: int = 0
    http_port: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def epoch(self) -> int:
        return int(time.monotonic() - self.start)

    def restart(self) -> None:
        """Forget every mapping and restart the epoch, as a rebooted router does."""
        self.table.clear()
        self.start = time.monotonic()

    def _record(self, kind: str, lease: int) -> None:
        self.requests.append((kind, lease))
        self.changed.set()

    # -- UDP: NAT-PMP and PCP --------------------------------------------------------------

    def handle_udp(self, data: bytes) -> list[bytes]:
        if self.mode == "upnp":
            return []
        if data[0] == 0:
            return self._nat_pmp(data)
        if data[0] == 2:
            return self._pcp(data)
        return []

    def _nat_pmp(self, data: bytes) -> list[bytes]:
        if self.mode != "nat-pmp":
            return []
        op = data[1]
        if op == 0:
            return [struct.pack("!BBHI", 0, 128, 0, self.epoch()) + bytes([203, 0, 113, 7])]
        _v, _op, _r, internal, _suggested, lifetime = struct.unpack("!BBHHHI", data[:12])
        self._record("map" if lifetime else "delete", lifetime)
        if lifetime == 0:
            self.table.pop(internal, None)
            external = 0
        else:
            external = (internal + 10000) % 65536 or 1
            granted = min(lifetime, self.max_lease)
            if "absurd_lease" in self.hostile:
                granted = 0xFFFFFFFF
            self.table[internal] = Entry("nat-pmp", internal, external, granted, 0)
            lifetime = granted
        if "other_port" in self.hostile:
            internal ^= 1
        return [struct.pack("!BBHIHHI", 0, 128 + op, 0, self.epoch(), internal, external, lifetime)]

    def _pcp(self, data: bytes) -> list[bytes]:
        if self.mode == "nat-pmp":
            return [struct.pack("!BBHI", 0, 128 + data[1], 1, self.epoch()) + b"\0" * 4]
        op = data[1]
        lifetime = struct.unpack_from("!I", data, 4)[0]
        header = struct.pack("!BBBBII", 2, 128 + op, 0, 0, lifetime, self.epoch()) + b"\0" * 12
        if op == 0:
            return [struct.pack("!BBBBII", 2, 128, 0, 0, 0, self.epoch()) + b"\0" * 12]
        nonce = data[24:36]
        proto, internal, _ext = struct.unpack_from("!B3xHH", data, 36)
        self._record("map" if lifetime else "delete", lifetime)
        if lifetime == 0:
            self.table.pop(internal, None)
            external = 0
        else:
            external = (internal + 10000) % 65536 or 1
            granted = min(lifetime, self.max_lease)
            self.table[internal] = Entry("pcp", internal, external, granted, 0)
            lifetime = granted
        header = struct.pack("!BBBBII", 2, 128 + op, 0, 0, lifetime, self.epoch()) + b"\0" * 12
        out = []
        if "wrong_nonce" in self.hostile:
            bad = header + bytes(12) + struct.pack("!B3xHH", proto, internal, external)
            out.append(bad + b"\0" * 10 + b"\xff\xff" + bytes([203, 0, 113, 7]))
        if "garbage" in self.hostile:
            out.extend([b"\x02", b"\xff" * 1500, b"\x02\x81" + b"\0" * 21])
        if "wrong_nonce" in self.hostile or "garbage" in self.hostile:
            return out
        ext_ip = bytes([0, 0, 0, 0]) if "zero_ip" in self.hostile else bytes([203, 0, 113, 7])
        body = nonce + struct.pack("!B3xHH", proto, internal, external)
        return [header + body + b"\0" * 10 + b"\xff\xff" + ext_ip]

    # -- UPnP -------------------------------------------------------------------------------

    def ssdp_answer(self) -> bytes:
        host = "192.0.2.99" if "foreign_location" in self.hostile else "127.0.0.1"
        return (
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n"
            "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
            "USN: uuid:fake::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
            f"LOCATION: http://{host}:{self.http_port}/rootDesc.xml\r\n\r\n"
        ).encode()

    def description(self) -> bytes:
        if "xml_bomb" in self.hostile:
            return (
                b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                b"<root>&lol3;</root>"
            )
        if "huge_description" in self.hostile:
            return b"<root>" + b"<a>x</a>" * 100_000 + b"</root>"
        if "malformed_xml" in self.hostile:
            return b"<root><device><serviceList><service>"
        control = "/ctl/IPConn"
        if "foreign_control" in self.hostile:
            control = "http://192.0.2.99/ctl/IPConn"
        return (
            '<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
            "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"
            "<deviceList><device><deviceList><device><serviceList><service>"
            "<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>"
            f"<controlURL>{control}</controlURL></service></serviceList></device></deviceList>"
            "</device></deviceList></device></root>"
        ).encode()

    def soap(self, action: str, body: bytes) -> tuple[int, bytes]:
        import re

        def arg(name: str) -> str:
            m = re.search(rf"<{name}>([^<]*)</{name}>".encode(), body)
            return m.group(1).decode() if m else ""

        ns = "urn:schemas-upnp-org:service:WANIPConnection:1"
        if action == "GetExternalIPAddress":
            out = f"<NewExternalIPAddress>{EXTERNAL_IP}</NewExternalIPAddress>"
        elif action == "AddPortMapping":
            external, lease = int(arg("NewExternalPort")), int(arg("NewLeaseDuration"))
            self._record("map", lease)
            self.table[external] = Entry(
                "upnp", int(arg("NewInternalPort")), external, lease, 0, arg("NewInternalClient")
            )
            out = ""
        elif action == "DeletePortMapping":
            self._record("delete", 0)
            if self.table.pop(int(arg("NewExternalPort")), None) is None:
                return 500, _fault(714, "NoSuchEntryInArray")
            out = ""
        else:
            return 500, _fault(401, "Invalid Action")
        env = (
            '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
            f'<s:Body><u:{action}Response xmlns:u="{ns}">{out}</u:{action}Response></s:Body>'
            "</s:Envelope>"
        )
        return 200, env.encode()


def _fault(code: int, desc: str) -> bytes:
    return (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        "<s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
        '<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode><errorDescription>{desc}</errorDescription>"
        "</UPnPError></detail></s:Fault></s:Body></s:Envelope>"
    ).encode()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        for out in self.handler(data):
            self.transport.sendto(out, addr)


class RunningGateway:
    """Sockets of a :class:`FakeGateway` on 127.0.0.1; ``aclose()`` frees them."""

    def __init__(self, gw: FakeGateway) -> None:
        self.gw = gw
        self._transports: list[asyncio.BaseTransport] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> RunningGateway:
        loop = asyncio.get_running_loop()
        t, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self.gw.handle_udp), local_addr=("127.0.0.1", 0)
        )
        self.gw.udp_port = t.get_extra_info("sockname")[1]
        s, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self._ssdp),
            local_addr=("127.0.0.1", 0),
        )
        self.gw.ssdp_port = s.get_extra_info("sockname")[1]
        self._transports += [t, s]
        app = web.Application()

        async def desc(_req: web.Request) -> web.Response:
            return web.Response(body=self.gw.description(), content_type="text/xml")

        async def ctl(req: web.Request) -> web.Response:
            action = req.headers.get("SOAPAction", "").strip('"').rpartition("#")[2]
            status, body = self.gw.soap(action, await req.read())
            return web.Response(status=status, body=body, content_type="text/xml")

        app.router.add_get("/rootDesc.xml", desc)
        app.router.add_post("/ctl/IPConn", ctl)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.gw.http_port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def _ssdp(self, data: bytes) -> list[bytes]:
        if b"M-SEARCH" not in data:
            return []
        junk = []
        if "bad_ssdp" in self.gw.hostile:
            junk = [b"\xff" * 3000, b"HTTP/1.1 200 OK\r\n\r\n", b"NOTIFY * HTTP/1.1\r\n\r\n"]
        return [*junk, self.gw.ssdp_answer()]

    async def aclose(self) -> None:
        for t in self._transports:
            t.close()
        if self._runner is not None:
            await self._runner.cleanup()
