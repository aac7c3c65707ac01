"""Forge 1-RTT packets with an established engine's keys (sans-I/O attack helpers)."""

from __future__ import annotations

from aioquic.quic.packet import QuicPacketType
from aioquic.quic.packet_builder import QuicPacketBuilder

from aioiroh.quic._aioquic import Buffer
from aioiroh.quic.connection import IrohConnection
from aioiroh.quic.connection_state import QUIC_V1
from aioiroh.quic.frame_types import FrameType
from aioiroh.quic.frames import Frame, push_frame


def encode(frames: list[Frame]) -> bytes:
    buf = Buffer(capacity=65536)
    for frame in frames:
        push_frame(buf, frame)
    return buf.data


def forge(sender: IrohConnection, payload: bytes, *, path_id: int = 0) -> bytes:
    """A 1-RTT datagram from ``sender`` carrying ``payload`` (raw frames) on ``path_id``."""
    path = sender._paths[path_id]
    seal = sender._seal_for(path_id)
    assert seal is not None
    builder = QuicPacketBuilder(
        host_cid=sender.host_cid,
        peer_cid=sender.cids.peer_cid if path_id == 0 else path.peer_cid,
        version=QUIC_V1,
        is_client=sender._is_client,
        max_datagram_size=1452,
        packet_number=path.pn,
    )
    builder.start_packet(QuicPacketType.ONE_RTT, seal)  # type: ignore[arg-type]
    buf = builder.start_frame(FrameType.PADDING, capacity=len(payload))
    buf.seek(buf.tell() - 1)  # the payload brings its own frame types
    buf.push_bytes(payload)
    datagrams, _ = builder.flush()
    path.pn = builder.packet_number
    assert len(datagrams) == 1
    return datagrams[0]
