"""HTTP side of the DNS server: the pkarr relay API, DoH, health and metrics (aiohttp).

Routes (as iroh-dns-server): ``PUT``/``GET /pkarr/{z32}``, ``GET``/``POST /dns-query``,
``/healthz``, ``/healthcheck``, ``/metrics``, ``/``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import TYPE_CHECKING, Final

from aiohttp import web

from ..base.key import PublicKey
from ..dns.pkarr import MAX_SIGNED_PACKET_SIZE, SignedPacket
from ..errors import DecodeError, KeyParseError, SignatureError

if TYPE_CHECKING:
    from .server import DnsServer

__all__ = ["PKARR_CONTENT_TYPE", "build_app"]

PKARR_CONTENT_TYPE: Final = "application/x-pkarr-signed-packet"
DNS_CONTENT_TYPE: Final = "application/dns-message"
# A relay body is the signed packet without its 32-byte key.
MAX_PUT_BODY: Final = MAX_SIGNED_PACKET_SIZE - 32
# A DoH query is one DNS message; anything bigger than a TCP DNS message is not one.
MAX_DOH_BODY: Final = 65535


def _text_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")


async def _read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """Up to ``limit`` bytes of the body, read until EOF: a body may arrive in several parts."""
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout):
        while size < limit:
            chunk = await request.content.read(limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def build_app(server: DnsServer) -> web.Application:
    """The aiohttp application serving ``server``."""
    app = web.Application(client_max_size=MAX_DOH_BODY)
    metrics = server.metrics

    def parse_key(request: web.Request) -> PublicKey | web.Response:
        text = request.match_info["key"]
        try:
            return PublicKey.from_z32(text)
        except KeyParseError as exc:
            return _text_error(400, f"invalid key: {exc}")

    async def put_pkarr(request: web.Request) -> web.StreamResponse:
        key = parse_key(request)
        if isinstance(key, web.Response):
            metrics.pkarr_puts.labels("bad_key").inc()
            return key
        if not server.allow_put(request.remote or "?"):
            metrics.pkarr_puts.labels("rate_limited").inc()
            return _text_error(429, "too many requests")
        if request.content_length is not None and request.content_length > MAX_PUT_BODY:
            metrics.pkarr_puts.labels("too_large").inc()
            return _text_error(413, f"signed packet larger than {MAX_PUT_BODY} bytes")
        try:
            body = await _read_body(request, MAX_PUT_BODY + 1, server.config.body_timeout)
        except TimeoutError:
            metrics.pkarr_puts.labels("body_timeout").inc()
            return _text_error(408, "request body not received in time")
        if len(body) > MAX_PUT_BODY:
            metrics.pkarr_puts.labels("too_large").inc()
            return _text_error(413, f"signed packet larger than {MAX_PUT_BODY} bytes")
        try:
            packet = SignedPacket.from_relay_body(key, body)
        except SignatureError as exc:
            metrics.pkarr_puts.labels("bad_signature").inc()
            return _text_error(400, f"invalid signature: {exc}")
        except DecodeError as exc:
            metrics.pkarr_puts.labels("malformed").inc()
            return _text_error(400, f"invalid body payload: {exc}")
        status, message = await server.publish(packet)
        if status == 204:
            return web.Response(status=204)
        return _text_error(status, message)

    async def get_pkarr(request: web.Request) -> web.StreamResponse:
        key = parse_key(request)
        if isinstance(key, web.Response):
            metrics.pkarr_gets.labels("bad_key").inc()
            return key
        packet = await server.store.get(key)
        if packet is None:
            metrics.pkarr_gets.labels("not_found").inc()
            return _text_error(404, "not found")
        metrics.pkarr_gets.labels("found").inc()
        return web.Response(body=packet.to_relay_body(), content_type=PKARR_CONTENT_TYPE)

    async def doh(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            if request.content_type != DNS_CONTENT_TYPE:
                return _text_error(415, f"expected {DNS_CONTENT_TYPE}")
            wire = await request.read()
        else:
            param = request.query.get("dns")
            if param is None:
                return _text_error(400, "missing dns parameter")
            try:
                wire = base64.urlsafe_b64decode(param + "=" * (-len(param) % 4))
            except (binascii.Error, ValueError):
                return _text_error(400, "dns parameter is not base64url")
        reply = await server.handle_dns(wire, transport="doh")
        if reply is None:
            return _text_error(400, "malformed DNS query")
        return web.Response(body=reply, content_type=DNS_CONTENT_TYPE)

    async def healthz(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok\n")

    async def metrics_page(request: web.Request) -> web.StreamResponse:
        metrics.records.set(len(server.store))
        gate = server.http_gate
        metrics.http_connections.set(gate.open)
        metrics.http_refused.labels("total").set(gate.refused_total)
        metrics.http_refused.labels("per_ip").set(gate.refused_per_ip)
        return web.Response(body=metrics.render(), content_type="text/plain")

    async def index(request: web.Request) -> web.StreamResponse:
        origins = ", ".join(server.config.origins)
        return web.Response(text=f"aioiroh DNS server\norigins: {origins}\n")

    app.router.add_put("/pkarr/{key}", put_pkarr)
    app.router.add_get("/pkarr/{key}", get_pkarr)
    app.router.add_route("GET", "/dns-query", doh)
    app.router.add_route("POST", "/dns-query", doh)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/healthcheck", healthz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/", index)
    return app
