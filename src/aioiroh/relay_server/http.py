"""The relay's aiohttp application: ``/relay`` upgrade and handshake, probes, info, metrics.

Routes (wire doc §5.2, §5.7): ``GET /relay`` (WebSocket, subprotocol ``iroh-relay-v2`` or
``-v1``), ``/ping`` (200, CORS), ``/generate_204`` (captive-portal check), ``/healthz``,
``/`` and ``/index.html``, ``/robots.txt``, ``/metrics``; anything else is 404.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from typing import Final

from aiohttp import WSCloseCode, WSMsgType, web

from .._metrics import CONTENT_TYPE_LATEST
from ..base.key import EndpointId
from ..relay.protocol.frames import (
    MAX_FRAME_SIZE,
    ClientAuth,
    RelayProtocolError,
    ServerChallenge,
    ServerConfirmsAuth,
    ServerDeniesAuth,
    decode_client_msg,
    encode_relay_msg,
)
from ..relay.protocol.handshake import (
    DENY_SIGNATURE_INVALID,
    parse_client_auth_header,
    verify_client_auth,
)
from ..relay.protocol.version import (
    CLIENT_AUTH_HEADER,
    PROBE_PATH,
    RELAY_PATH,
    ProtocolVersion,
    negotiate,
)
from .access import bearer_token, check_access
from .client_conn import SEND_BUFFER_HIGH, ClientConn, RelayHub, limit_buffers

__all__ = ["build_app", "build_metrics_app"]

# X-Iroh-Challenge must be 1-63 chars of this set to be echoed (server.rs).
_CHALLENGE_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,63}$")
# Text messages before ClientAuth are skipped, but not forever.
_MAX_SKIPPED_HANDSHAKE_MESSAGES: Final = 8

try:
    _VERSION = pkg_version("aioiroh")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    _VERSION = "unknown"

_INDEX_HTML: Final = (
    "<!DOCTYPE html><html><head><title>aioiroh relay</title></head><body>"
    '<h1>aioiroh relay</h1><p>This is an <a href="https://iroh.computer">iroh</a> relay '
    "server, written in Python.</p></body></html>"
)
_ROBOTS: Final = "User-agent: *\nDisallow: /\n"

HUB_KEY: Final = web.AppKey("relay_hub", RelayHub)


class _Denied(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _handshake(
    ws: web.WebSocketResponse, request: web.Request, version: ProtocolVersion
) -> EndpointId:
    """Run the server side of the handshake; returns the verified EndpointId."""
    header = request.headers.get(CLIENT_AUTH_HEADER)
    if header is not None:
        try:
            header_auth = parse_client_auth_header(header)
        except RelayProtocolError:
            header_auth = None
        # The stdlib ssl module cannot compute TLS exporters, so the header can never verify
        # here; like iroh, fall back to the challenge instead of failing.
        if header_auth is not None and header_auth.verify(None):  # pragma: no cover
            return header_auth.public_key
    challenge = ServerChallenge(os.urandom(16))
    await ws.send_bytes(encode_relay_msg(challenge, version))
    skipped = 0
    while True:
        msg = await ws.receive()
        if msg.type is WSMsgType.BINARY:
            break
        if msg.type is WSMsgType.TEXT and skipped < _MAX_SKIPPED_HANDSHAKE_MESSAGES:
            skipped += 1
            continue
        raise _Denied("no ClientAuth")
    try:
        auth = decode_client_msg(msg.data, version)
    except RelayProtocolError as exc:
        raise _Denied(f"malformed ClientAuth: {exc}") from None
    if not isinstance(auth, ClientAuth):
        raise _Denied("expected ClientAuth")
    if not verify_client_auth(auth, challenge):
        await ws.send_bytes(encode_relay_msg(ServerDeniesAuth(DENY_SIGNATURE_INVALID), version))
        raise _Denied(DENY_SIGNATURE_INVALID)
    return auth.public_key


async def _relay_handler(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    metrics = hub.metrics
    version = negotiate(request.headers.get("Sec-WebSocket-Protocol", ""))
    if version is None:
        metrics.bad_upgrades += 1
        return web.Response(status=400, text="unsupported or missing Sec-WebSocket-Protocol")
    if not hub.try_reserve():
        metrics.bad_upgrades += 1
        metrics.full_refused += 1
        return web.Response(status=503, text="relay full")
    metrics.handshaking = hub.handshaking
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            hub.release()
            metrics.handshaking = hub.handshaking

    try:
        return await _upgrade_and_serve(request, hub, version, release)
    finally:
        release()


async def _upgrade_and_serve(
    request: web.Request, hub: RelayHub, version: ProtocolVersion, release: Callable[[], None]
) -> web.StreamResponse:
    config = hub.config
    metrics = hub.metrics
    ws = web.WebSocketResponse(
        protocols=(version.value,),
        max_msg_size=MAX_FRAME_SIZE,
        timeout=1.0,
        autoping=True,
        compress=False,
        # aiohttp waits for the transport to drain only every writer_limit bytes.
        writer_limit=SEND_BUFFER_HIGH,
    )
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol != version.value:
        metrics.bad_upgrades += 1
        return web.Response(
            status=400, text="not a WebSocket upgrade", headers={"Sec-WebSocket-Version": "13"}
        )
    await ws.prepare(request)
    limit_buffers(ws, request, config)
    try:
        async with asyncio.timeout(config.handshake_timeout):
            endpoint_id = await _handshake(ws, request, version)
            reason = check_access(
                config.access, endpoint_id, bearer_token(request.headers, request.query)
            )
            if reason is not None:
                metrics.access_denied += 1
                await ws.send_bytes(encode_relay_msg(ServerDeniesAuth(reason), version))
                await _close_quietly(ws, WSCloseCode.POLICY_VIOLATION, reason)
                return ws
            await ws.send_bytes(encode_relay_msg(ServerConfirmsAuth(), version))
    except _Denied as exc:
        metrics.auth_failures += 1
        await _close_quietly(ws, WSCloseCode.POLICY_VIOLATION, exc.reason)
        return ws
    except TimeoutError:
        metrics.auth_failures += 1
        await _close_quietly(ws, WSCloseCode.POLICY_VIOLATION, "handshake timed out")
        return ws
    except (ConnectionError, RuntimeError):
        metrics.auth_failures += 1
        return ws
    loop = asyncio.get_running_loop()
    conn = ClientConn(hub, hub.next_conn_id(), endpoint_id, version, ws, request, now=loop.time())
    hub.add(conn)
    release()  # from now on the connected EndpointId holds the slot
    await conn.run()
    return ws


async def _close_quietly(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    try:
        async with asyncio.timeout(1.0):
            await ws.close(code=code, message=reason.encode()[:120])
    except (TimeoutError, ConnectionError, RuntimeError):
        pass


async def _ping(request: web.Request) -> web.Response:
    return web.Response(status=200, headers={"Access-Control-Allow-Origin": "*"})


async def _generate_204(request: web.Request) -> web.Response:
    headers = {}
    challenge = request.headers.get("X-Iroh-Challenge")
    if challenge is not None and _CHALLENGE_RE.match(challenge):
        headers["X-Iroh-Response"] = f"response {challenge}"
    return web.Response(status=204, headers=headers)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": _VERSION, "git_hash": "unknown"})


async def _index(request: web.Request) -> web.Response:
    return web.Response(text=_INDEX_HTML, content_type="text/html")


async def _robots(request: web.Request) -> web.Response:
    return web.Response(text=_ROBOTS)


async def _metrics(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return web.Response(body=hub.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(hub: RelayHub) -> web.Application:
    """The relay's HTTP application serving ``hub``."""
    app = web.Application()
    app[HUB_KEY] = hub
    app.router.add_get(RELAY_PATH, _relay_handler, allow_head=False)
    app.router.add_get(PROBE_PATH, _ping)
    app.router.add_get("/generate_204", _generate_204)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/", _index)
    app.router.add_get("/index.html", _index)
    app.router.add_get("/robots.txt", _robots)
    app.router.add_get("/metrics", _metrics)
    return app


def build_captive_portal_app() -> web.Application:
    """The plain-HTTP side app of a TLS relay: only ``/generate_204`` (iroh's port 80)."""
    app = web.Application()
    app.router.add_get("/generate_204", _generate_204)
    return app


def build_metrics_app(hub: RelayHub) -> web.Application:
    """A separate application serving only ``/metrics`` (for ``metrics_port``)."""
    app = web.Application()
    app[HUB_KEY] = hub
    app.router.add_get("/metrics", _metrics)
    return app
