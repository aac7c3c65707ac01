"""StreamManager.write_frames with a single queued stream (the bulk fast path) through the
1-RTT writer: all data goes out once, FIN on the last frame, the queue keeps state on a stop."""

from __future__ import annotations

import itertools

from aioquic.quic.packet import QuicPacketType
from aioquic.quic.packet_builder import QuicDeliveryState, QuicPacketBuilderStop

from aioiroh.quic._aioquic import CipherSuite
from aioiroh.quic.connection import _Seal
from aioiroh.quic.packet_protection import PacketProtection
from aioiroh.quic.packet_writer import SentPacket, ShortPacketWriter
from aioiroh.quic.streams import StreamManager

BIG = 1 << 40


def _manager() -> StreamManager:
    sm = StreamManager(
        is_client=True,
        max_data=BIG,
        max_stream_data=BIG,
        max_streams_bidi=100,
        max_streams_uni=100,
        emit=lambda event: None,
    )
    sm.set_peer_limits(
        max_data=BIG,
        max_stream_data_bidi_local=BIG,
        max_stream_data_bidi_remote=BIG,
        max_stream_data_uni=BIG,
        max_streams_bidi=100,
        max_streams_uni=100,
    )
    return sm


def _writer(max_flight: int | None = None) -> tuple[ShortPacketWriter, _Seal]:
    pp = PacketProtection(
        CipherSuite.AES_128_GCM_SHA256, send_secret=bytes(32), recv_secret=bytes(32)
    )
    w = ShortPacketWriter(peer_cid=b"\x01" * 8, max_datagram_size=1200, packet_number=0)
    w.max_flight_bytes = max_flight
    return w, _Seal(pp)


def _ranges(packets: list[SentPacket]) -> list[tuple[int, int, bool]]:
    out = []
    for packet in packets:
        for _handler, args in packet.delivery_handlers:
            _stream, start, stop, fin = args
            out.append((start, stop, fin))
    return out


def test_single_stream_sends_everything_then_leaves_the_queue() -> None:
    sm = _manager()
    sm.send(0, bytes(5000), end_stream=True)
    w, seal = _writer()
    while sm.has_pending:
        w.start_packet(QuicPacketType.ONE_RTT, seal)
        sm.write_frames(w)
    _, packets = w.flush()
    ranges = _ranges(packets)
    assert ranges[0][0] == 0 and ranges[-1][1:] == (5000, True)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert not any(fin for _, _, fin in ranges[:-1])
    # Acknowledging everything finishes the sending side.
    for packet in packets:
        for handler, args in packet.delivery_handlers:
            handler(QuicDeliveryState.ACKED, *args)
    assert sm.streams[0].sender.is_finished
    assert not sm.has_pending


def test_single_stream_stays_queued_when_the_window_stops_it() -> None:
    sm = _manager()
    sm.send(0, bytes(5000), end_stream=False)
    w, seal = _writer(max_flight=1500)
    try:
        while sm.has_pending:
            w.start_packet(QuicPacketType.ONE_RTT, seal)
            sm.write_frames(w)
            if w.packet_is_empty:
                break  # the window is full (the engine stops here too)
    except QuicPacketBuilderStop:
        pass
    _, packets = w.flush()
    sent = _ranges(packets)
    assert sent and sent[-1][1] < 5000
    assert sm.has_pending  # the rest waits for the next poll
    # A loss puts the range back; the next writer resends it first.
    for packet in packets:
        for handler, args in packet.delivery_handlers:
            handler(QuicDeliveryState.LOST, *args)
    w2, seal2 = _writer()
    w2.start_packet(QuicPacketType.ONE_RTT, seal2)
    sm.write_frames(w2)
    _, again = w2.flush()
    assert _ranges(again)[0][0] == 0
