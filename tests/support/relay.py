"""Test fixtures: our relay server on 127.0.0.1:0, and a minimal test-side relay client.

The client here is deliberately small (aiohttp WebSocket + our protocol module); the real one is
``aioiroh.relay.client``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import yarl

from aioiroh.base.key import EndpointId, SecretKey
from aioiroh.relay.protocol.frames import (
    ClientToRelayDatagrams,
    Datagrams,
    Ping,
    Pong,
    RelayToClientDatagrams,
    RelayToClientMsg,
    ServerChallenge,
    ServerConfirmsAuth,
    ServerDeniesAuth,
    decode_relay_msg,
    encode_client_msg,
)
from aioiroh.relay.protocol.handshake import sign_challenge
from aioiroh.relay.protocol.version import RELAY_PATH, SUBPROTOCOLS, ProtocolVersion
from aioiroh.relay_server import RelayServer, ServerConfig

# Bound on frames a test client keeps unread; tests read them promptly.
CLIENT_INBOX_MAX = 10_000


class RelayDenied(Exception):
    """The relay answered the handshake with ServerDeniesAuth."""


@dataclass
class TestRelayClient:
    """One authenticated relay connection, driven by the test."""

    __test__ = False  # not a pytest class

    session: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse
    secret_key: SecretKey
    version: ProtocolVersion
    inbox: asyncio.Queue[RelayToClientMsg] = field(
        default_factory=lambda: asyncio.Queue(CLIENT_INBOX_MAX)
    )
    answer_pings: bool = True
    _reader: asyncio.Task[None] | None = None

    @property
    def endpoint_id(self) -> EndpointId:
        return self.secret_key.public()

    def start_reader(self) -> None:
        self._reader = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.BINARY:
                continue
            frame = decode_relay_msg(msg.data, self.version)
            if isinstance(frame, Ping) and self.answer_pings:
                await self.ws.send_bytes(encode_client_msg(Pong(frame.data)))
            self.inbox.put_nowait(frame)

    async def send(
        self, dst: EndpointId, data: bytes, *, ecn: int = 0, seg: int | None = None
    ) -> None:
        msg = ClientToRelayDatagrams(dst, Datagrams(ecn, seg, data))
        await self.ws.send_bytes(encode_client_msg(msg))

    async def send_raw(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def recv(self, kind: type | None = None, timeout: float = 10.0) -> RelayToClientMsg:
        """Next frame (of type ``kind`` if given; others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.inbox.get()
                if kind is None or isinstance(frame, kind):
                    return frame

    async def recv_datagrams(self, timeout: float = 10.0) -> RelayToClientDatagrams:
        frame = await self.recv(RelayToClientDatagrams, timeout)
        assert isinstance(frame, RelayToClientDatagrams)
        return frame

    async def wait_closed(self, timeout: float = 10.0) -> None:
        assert self._reader is not None
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._reader)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
        await self.ws.close()
        await self.session.close()


async def open_ws(
    url: str,
    *,
    protocols: tuple[str, ...] = SUBPROTOCOLS,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    """A raw WebSocket to ``url``'s ``/relay`` (no handshake yet)."""
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(
            yarl.URL(url).with_path(RELAY_PATH, keep_query=True),
            protocols=protocols,
            headers=headers,
            autoping=True,
            max_msg_size=2 * 1024 * 1024,
            ssl=ssl_context if ssl_context is not None else True,
        )
    except BaseException:
        await session.close()
        raise
    return session, ws


async def connect_client(
    url: str,
    secret_key: SecretKey | None = None,
    *,
    protocols: tuple[str, ...] = SUBPROTOCOLS,
    headers: dict[str, str] | None = None,
    answer_pings: bool = True,
    bad_signature: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> TestRelayClient:
    """Connect and authenticate; raises :class:`RelayDenied` if the relay refuses."""
    secret_key = secret_key or SecretKey.generate()
    session, ws = await open_ws(url, protocols=protocols, headers=headers, ssl_context=ssl_context)
    try:
        version = ProtocolVersion(ws.protocol)
        first = decode_relay_msg((await ws.receive_bytes(timeout=10)), version)
        assert isinstance(first, ServerChallenge), first
        signer = SecretKey.generate() if bad_signature else secret_key
        auth = sign_challenge(signer, first)
        if bad_signature:
            auth = type(auth)(secret_key.public(), auth.signature)
        await ws.send_bytes(encode_client_msg(auth))
        answer = decode_relay_msg((await ws.receive_bytes(timeout=10)), version)
        if isinstance(answer, ServerDeniesAuth):
            raise RelayDenied(answer.reason)
        assert isinstance(answer, ServerConfirmsAuth), answer
    except BaseException:
        await ws.close()
        await session.close()
        raise
    client = TestRelayClient(session, ws, secret_key, version, answer_pings=answer_pings)
    client.start_reader()
    return client


@pytest.fixture
async def relay_server() -> AsyncIterator[RelayServer]:
    """A started relay on 127.0.0.1 with an ephemeral port; stopped after the test."""
    server = RelayServer(ServerConfig(host="127.0.0.1", port=0))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def relay_clients(relay_server: RelayServer) -> AsyncIterator[list[TestRelayClient]]:
    """Two authenticated test clients on ``relay_server``; closed after the test."""
    clients = [await connect_client(relay_server.http_url) for _ in range(2)]
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()


def random_payload(n: int) -> bytes:
    return os.urandom(n)
