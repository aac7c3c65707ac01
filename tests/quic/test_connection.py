"""The native engine (IrohConnection) against itself on virtual time: no sockets, no clock."""

from __future__ import annotations

import os

from aioquic.quic import events

from aioiroh.base.key import SecretKey
from aioiroh.quic.aioquic_connection import IrohQuicConnection
from aioiroh.quic.connection import APP, IrohConnection, new_connection
from aioiroh.quic.frames import FrameType

from .support.pump import SERVER_ADDR, Pump


def _handshake(p: Pump) -> None:
    p.run_until(
        lambda: bool(
            p.of("client", events.HandshakeCompleted)
            and p.server is not None
            and p.of("server", events.HandshakeCompleted)
        )
    )


def _stream(p: Pump, side: str, sid: int) -> bytes:
    return b"".join(e.data for e in p.of(side, events.StreamDataReceived) if e.stream_id == sid)


def _fin(p: Pump, side: str, sid: int) -> bool:
    return any(e.end_stream for e in p.of(side, events.StreamDataReceived) if e.stream_id == sid)


def test_handshake_negotiates_multipath_and_authenticates() -> None:
    p = Pump()
    _handshake(p)
    assert p.server is not None
    assert p.client.peer_id == p.server_key.public()
    assert p.server.peer_id == p.client_key.public()
    assert p.client.alpn == p.server.alpn == b"aioiroh/pump/0"
    assert p.client.multipath_negotiated and p.server.multipath_negotiated
    # Spare CIDs (4 for path 0, 2 for each of paths 1-7) are announced for routing.
    assert len(p.of("client", events.ConnectionIdIssued)) == 4 + 2 * 7
    p.client.send_stream_data(0, b"ping", end_stream=True)
    p.run_until(lambda: _fin(p, "server", 0))
    for _ in range(20):  # let the delayed ACK go out
        p.step()
    assert p.server.sent_ack_types == {FrameType.PATH_ACK}


def test_no_multipath_unless_both_offer() -> None:
    p = Pump(client_kwargs={"max_path_id": None})
    _handshake(p)
    assert p.server is not None
    assert not p.client.multipath_negotiated and not p.server.multipath_negotiated
    p.client.send_stream_data(0, b"x" * 5000, end_stream=True)
    p.run_until(lambda: _fin(p, "server", 0))
    assert p.server.sent_ack_types == {FrameType.ACK}


def test_bulk_both_ways_with_loss() -> None:
    # Every 9th datagram in each direction is lost, handshake included.
    p = Pump(drop=lambda side, i, data: i % 9 == 4)
    _handshake(p)
    assert p.server is not None
    up, down = os.urandom(1_000_000), os.urandom(700_000)
    p.client.send_stream_data(0, up, end_stream=True)
    p.run_until(lambda: _fin(p, "server", 0))
    p.server.send_stream_data(0, down, end_stream=True)
    p.run_until(lambda: _fin(p, "client", 0))
    assert _stream(p, "server", 0) == up
    assert _stream(p, "client", 0) == down


def test_many_streams_and_credit_renewal() -> None:
    # More uni streams than the initial limit of 100: MAX_STREAMS is renewed as they finish.
    p = Pump()
    _handshake(p)
    sids = [2 + 4 * i for i in range(250)]
    for sid in sids:
        p.client.send_stream_data(sid, sid.to_bytes(4, "big"), end_stream=True)
    p.run_until(lambda: all(_fin(p, "server", sid) for sid in sids))
    assert all(_stream(p, "server", sid) == sid.to_bytes(4, "big") for sid in sids)


def test_key_update_is_followed() -> None:
    p = Pump()
    _handshake(p)
    assert p.server is not None
    p.client.send_stream_data(0, b"a" * 50_000)
    p.run_until(lambda: len(_stream(p, "server", 0)) == 50_000)
    pp = p.client._levels[APP].pp
    assert pp is not None
    pp.update_key()
    p.client.send_stream_data(0, b"b" * 50_000, end_stream=True)
    p.run_until(lambda: _fin(p, "server", 0))
    server_pp = p.server._levels[APP].pp
    assert server_pp is not None and server_pp.key_phase == 1
    assert p.server.decrypt_failures == 0 and p.client.decrypt_failures == 0


def test_datagram_frames() -> None:
    p = Pump()
    _handshake(p)
    assert p.server is not None
    p.client.send_datagram_frame(b"one")
    p.server.send_datagram_frame(b"two")
    p.run_until(
        lambda: bool(
            p.of("server", events.DatagramFrameReceived)
            and p.of("client", events.DatagramFrameReceived)
        )
    )
    assert p.of("server", events.DatagramFrameReceived)[0].data == b"one"
    assert p.of("client", events.DatagramFrameReceived)[0].data == b"two"


def test_application_close_reaches_peer() -> None:
    p = Pump()
    _handshake(p)
    assert p.server is not None
    p.client.close(42, None, "done here")
    p.run_until(lambda: p.client.is_terminated and p.server is not None and p.server.is_terminated)
    (ev,) = p.of("server", events.ConnectionTerminated)
    assert (ev.error_code, ev.frame_type, ev.reason_phrase) == (42, None, "done here")
    (own,) = p.of("client", events.ConnectionTerminated)
    assert own.error_code == 42


def test_idle_timeout_when_peer_vanishes() -> None:
    lost = {"on": False}
    p = Pump(drop=lambda side, i, data: lost["on"])
    _handshake(p)
    assert p.server is not None
    lost["on"] = True
    start = p.now
    p.run_until(lambda: p.client.is_terminated and p.server is not None and p.server.is_terminated)
    (ev,) = p.of("client", events.ConnectionTerminated)
    assert ev.reason_phrase == "Idle timeout"
    assert 29 < p.now - start < 32


def test_wrong_server_key_fails_handshake() -> None:
    p = Pump(client_kwargs={})
    p.client.tls.expected_peer = SecretKey.generate().public()
    p.run_until(lambda: p.client.is_terminated)
    assert p.client.auth_failure is not None
    (ev,) = p.of("client", events.ConnectionTerminated)
    assert ev.error_code == 0x100 + 42  # CRYPTO_ERROR + bad_certificate


def test_peer_exceeding_stream_limit_is_closed() -> None:
    p = Pump()
    _handshake(p)
    assert p.server is not None
    # Bypass our own limit check to open stream index 100 (limit 100: indices 0..99).
    p.client.streams._raise_remote_streams(False, 1000)
    p.client.send_stream_data(400, b"over", end_stream=True)
    p.run_until(lambda: p.server is not None and p.server.is_terminated)
    (ev,) = p.of("server", events.ConnectionTerminated)
    assert ev.error_code == 0x04  # STREAM_LIMIT_ERROR


def test_garbage_is_dropped_not_fatal() -> None:
    p = Pump()
    _handshake(p)
    assert p.server is not None
    junk = [
        b"",
        b"\x00",
        b"\x40" + p.server.host_cid,  # short header, truncated
        b"\x40" + b"\x99" * 8 + os.urandom(40),  # unknown CID
        b"\x40" + p.server.host_cid + os.urandom(60),  # right CID, bad tag
        b"\xc0\x00\x00\x00\x01\x08" + os.urandom(30),  # truncated long header
        b"\xc0\xaa\xbb\xcc\xdd" + os.urandom(60),  # unknown version
        os.urandom(1200),
    ]
    for data in junk:
        p.server.receive_datagram(data, ("127.0.0.1", 1), p.now)
    assert not p.server.is_closing
    assert p.server.decrypt_failures >= 1
    p.client.send_stream_data(0, b"still fine", end_stream=True)
    p.run_until(lambda: _fin(p, "server", 0))
    assert _stream(p, "server", 0) == b"still fine"


def test_engine_switch(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    kwargs = {"secret_key": SecretKey.generate(), "is_client": True, "alpns": [b"a"]}
    monkeypatch.setenv("AIOIROH_ENGINE", "aioquic")
    assert isinstance(new_connection(**kwargs), IrohQuicConnection)
    monkeypatch.delenv("AIOIROH_ENGINE", raising=False)
    conn = new_connection(**kwargs)
    assert isinstance(conn, IrohConnection)
    conn.connect(SERVER_ADDR, 0.0)
    (datagram, addr), *_ = conn.datagrams_to_send(0.0)
    assert addr == SERVER_ADDR and len(datagram) >= 1200
