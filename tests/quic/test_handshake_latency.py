"""Connection setup and teardown cost: how many datagrams and flights the native engine needs."""

from __future__ import annotations

from aioquic.quic import events

from .support.pump import Pump


def _handshake(p: Pump) -> None:
    p.run_until(
        lambda: bool(
            p.of("client", events.HandshakeCompleted)
            and p.server is not None
            and p.of("server", events.HandshakeCompleted)
        )
    )


def test_simultaneous_close_does_not_echo_closes() -> None:
    # Both ends close at once: each gets the other's CONNECTION_CLOSE while closing and must
    # then drain quietly, not answer close with close until the closing period ends.
    p = Pump()
    _handshake(p)
    assert p.server is not None
    p.run_until(lambda: not p.in_flight)
    before = dict(p.sent)
    p.client.close(0, None, "")
    p.server.close(0, None, "")
    p.run_until(lambda: p.client.is_terminated and p.server is not None and p.server.is_terminated)
    assert p.sent["client"] - before["client"] <= 2
    assert p.sent["server"] - before["server"] <= 2
    assert len(p.of("client", events.ConnectionTerminated)) == 1
    assert len(p.of("server", events.ConnectionTerminated)) == 1


def test_closing_endpoint_answers_stray_packets_with_backoff() -> None:
    # A peer that keeps sending (it never saw our close) gets CONNECTION_CLOSE again, but only
    # for the 1st, 2nd, 4th, 8th... packet.
    p = Pump()
    _handshake(p)
    assert p.server is not None
    p.run_until(lambda: not p.in_flight)
    p.client.close(0, None, "")
    assert p.client.datagrams_to_send(p.now)  # the close, lost
    server = p.server
    answers = 0
    for i in range(16):
        server.send_ping(i)
        for data, _ in server.datagrams_to_send(p.now):
            p.client.receive_datagram(data, ("127.0.0.1", 2222), p.now)
            answers += len(p.client.datagrams_to_send(p.now))
    assert answers == 5  # packets 1, 2, 4, 8, 16
    assert not p.client.is_terminated
