"""A lean writer for 1-RTT (short header) packets: the engine's application-data hot path.

:class:`ShortPacketWriter` has the subset of aioquic's ``QuicPacketBuilder`` interface that the
engine's frame writers use (``start_packet``, ``start_frame``, ``remaining_buffer_space``,
``remaining_flight_space``, ``packet_is_empty``, ``packet_number``, ``max_flight_bytes``,
``max_total_bytes``, ``flush``), so every 1-RTT frame writer works unchanged on either. It only
builds short-header packets: a short-header packet always ends its datagram, so there is no
coalescing, no long-header length field and no datagram-level padding to handle. Initial and
Handshake packets (and CONNECTION_CLOSE) stay on aioquic's builder.

What it does differently from the general builder:

- one :class:`SentPacket` (``__slots__``) per packet instead of a dataclass with two lists;
- the packet number length follows RFC 9000 §17.1 / Appendix A.2 (at least 2 bytes, more when
  the peer lags far behind in acknowledging) instead of a fixed 2 bytes;
- sealing goes straight through :meth:`PacketProtection.seal_short` (AEAD with the multipath
  nonce, then header protection), without an intermediate per-packet crypto object.

Frame flags follow RFC 9000 §13.2 / RFC 9002 §2: ACK, PADDING and CONNECTION_CLOSE do not elicit
an ACK; ACK and CONNECTION_CLOSE do not count towards bytes in flight; a packet that needs
padding (PATH_CHALLENGE / PATH_RESPONSE, RFC 9000 §8.2) is filled up to what the congestion
window allows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from aioquic import tls
from aioquic.quic.packet import QuicPacketType
from aioquic.quic.packet_builder import QuicPacketBuilder, QuicPacketBuilderStop

from ._aioquic import Buffer
from .packet_protection import AEAD_TAG_SIZE, PacketProtection

__all__ = [
    "PacketSink",
    "SentPacket",
    "ShortPacketWriter",
    "packet_number_length",
]

# Frame types that leave a packet non-ack-eliciting / not in flight (kept as small sets of
# ints: they are tested once per frame).
_NOT_ACK_ELICITING: Final = frozenset({0x00, 0x02, 0x03, 0x1C, 0x1D})
_NOT_IN_FLIGHT: Final = frozenset({0x02, 0x03, 0x1C, 0x1D})
_PADDED: Final = frozenset({0x1A, 0x1B})  # PATH_CHALLENGE, PATH_RESPONSE
_CRYPTO: Final = 0x06
_SAMPLE_REACH: Final = 4
"""Packet number bytes + payload bytes needed so the header protection sample fits."""
_MIN_PN_LENGTH: Final = 2


def packet_number_length(pn: int, largest_acked: int | None) -> int:
    """Bytes to encode ``pn`` so the peer can decode it (RFC 9000 §17.1, Appendix A.2).

    The encoding must cover more than twice the distance from the largest acknowledged packet
    number (or from -1 when nothing was acknowledged yet). Never less than 2 bytes.
    """
    distance = pn - (-1 if largest_acked is None else largest_acked)
    if distance < 1 << 15:
        return _MIN_PN_LENGTH
    if distance < 1 << 23:
        return 3
    if distance < 1 << 31:
        return 4
    raise ValueError("packet number too far ahead of the largest acknowledged one")


class SentPacket:
    """What loss recovery and delivery handlers need to know about one sent 1-RTT packet.

    Duck-typed stand-in for aioquic's ``QuicSentPacket`` (``QuicPacketRecovery`` reads
    ``packet_number``, ``sent_time``, ``sent_bytes``, ``in_flight``, ``is_ack_eliciting``,
    ``is_crypto_packet`` and ``delivery_handlers``; ``epoch``/``packet_type`` are constant).
    """

    __slots__ = (
        "delivery_handlers",
        "in_flight",
        "is_ack_eliciting",
        "is_crypto_packet",
        "packet_number",
        "sent_bytes",
        "sent_time",
    )

    epoch: Final = tls.Epoch.ONE_RTT
    packet_type: Final = QuicPacketType.ONE_RTT

    def __init__(self, packet_number: int, sent_time: float | None) -> None:
        self.packet_number = packet_number
        self.sent_time = sent_time
        self.sent_bytes = 0
        self.in_flight = False
        self.is_ack_eliciting = False
        self.is_crypto_packet = False
        self.delivery_handlers: list[tuple[Callable[..., None], Sequence[Any]]] = []


class ShortPacketWriter:
    """Builds 1-RTT packets of one path, one packet per datagram; see the module docstring.

    ``start_packet`` takes the packet type (must be 1-RTT) and a crypto object with ``pp``
    (:class:`PacketProtection`) and ``path_id`` attributes, like the engine's ``_Seal``.
    The buffer holds only frames: the header's bytes are reserved at the front, and the header
    itself is built when the packet is sealed.
    """

    __slots__ = (
        "_buf",
        "_capacity",
        "_datagrams",
        "_flight_bytes",
        "_flight_capacity",
        "_header_size",
        "_largest_acked",
        "_max_datagram_size",
        "_packet",
        "_packets",
        "_path_id",
        "_peer_cid",
        "_pn",
        "_pn_length",
        "_pn_length_until",
        "_pp",
        "_prefix",
        "_prefix_key",
        "_sent_time",
        "_total_bytes",
        "max_flight_bytes",
        "max_total_bytes",
        "needs_padding",
    )

    def __init__(
        self,
        *,
        peer_cid: bytes,
        max_datagram_size: int,
        packet_number: int,
        largest_acked: int | None = None,
        sent_time: float | None = None,
    ) -> None:
        """``largest_acked``: the peer's largest acknowledged PN of this space (PN length)."""
        self.max_flight_bytes: int | None = None
        self.max_total_bytes: int | None = None
        self.needs_padding = False
        self._peer_cid = peer_cid
        self._max_datagram_size = max_datagram_size
        self._pn = packet_number
        self._largest_acked = largest_acked
        self._sent_time = sent_time
        self._buf = Buffer(capacity=max_datagram_size)
        self._capacity = max_datagram_size
        self._flight_capacity = max_datagram_size
        self._header_size = 0
        self._pn_length = _MIN_PN_LENGTH
        # Packet numbers up to this one keep _pn_length (-1: not computed yet).
        self._pn_length_until = -1
        # First byte (key phase, PN length) + DCID, cached per (key phase, PN length).
        self._prefix = b""
        self._prefix_key = -1
        self._packet: SentPacket | None = None
        self._pp: PacketProtection | None = None
        self._path_id = 0
        self._datagrams: list[bytes] = []
        self._packets: list[SentPacket] = []
        self._flight_bytes = 0
        self._total_bytes = 0

    # -- QuicPacketBuilder-compatible interface --------------------------------------------

    @property
    def packet_number(self) -> int:
        """The number the next packet gets."""
        return self._pn

    @property
    def packet_is_empty(self) -> bool:
        """Whether the current packet has no frame yet."""
        return self._buf.tell() <= self._header_size

    @property
    def remaining_buffer_space(self) -> int:
        """Bytes left for frames in the current packet (AEAD tag reserved)."""
        return self._capacity - self._buf.tell() - AEAD_TAG_SIZE

    @property
    def remaining_flight_space(self) -> int:
        """Bytes left for in-flight frames (congestion window permitting)."""
        return self._flight_capacity - self._buf.tell() - AEAD_TAG_SIZE

    def start_packet(self, packet_type: QuicPacketType, crypto: Any) -> None:
        """Finish the current packet (if any) and open a new one."""
        if packet_type is not QuicPacketType.ONE_RTT:
            raise ValueError("ShortPacketWriter builds 1-RTT packets only")
        if self._packet is not None:
            self._end_packet()
        capacity = self._max_datagram_size
        if self.max_total_bytes is not None:
            capacity = min(capacity, self.max_total_bytes - self._total_bytes)
        flight = capacity
        if self.max_flight_bytes is not None:
            flight = min(flight, self.max_flight_bytes - self._flight_bytes)
        pn = self._pn
        if pn > self._pn_length_until:
            self._set_pn_length(pn)
        header_size = 1 + len(self._peer_cid) + self._pn_length
        if header_size >= capacity:
            raise QuicPacketBuilderStop
        self._capacity = capacity
        self._flight_capacity = flight
        self._header_size = header_size
        self._pp = crypto.pp
        self._path_id = crypto.path_id
        self._packet = SentPacket(pn, self._sent_time)
        self.needs_padding = False
        self._buf.seek(header_size)

    def start_frame(
        self,
        frame_type: int,
        capacity: int = 1,
        handler: Callable[..., None] | None = None,
        handler_args: Sequence[Any] = (),
    ) -> Buffer:
        """Reserve ``capacity`` bytes for a frame and write its type; returns the buffer.

        Raises ``QuicPacketBuilderStop`` (nothing written) if the packet, or for an in-flight
        frame the congestion window, has less room.
        """
        packet = self._packet
        assert packet is not None
        buf = self._buf
        used = buf.tell()
        if used <= self._header_size and capacity < _SAMPLE_REACH - self._pn_length:
            # The first frame leaves room for sample padding (RFC 9001 §5.4.2).
            capacity = _SAMPLE_REACH - self._pn_length
        if self._capacity - used - AEAD_TAG_SIZE < capacity:
            raise QuicPacketBuilderStop
        if frame_type not in _NOT_IN_FLIGHT:
            if self._flight_capacity - used - AEAD_TAG_SIZE < capacity:
                raise QuicPacketBuilderStop
            packet.in_flight = True
        if frame_type not in _NOT_ACK_ELICITING:
            packet.is_ack_eliciting = True
        if frame_type == _CRYPTO:
            packet.is_crypto_packet = True
        elif frame_type in _PADDED:
            self.needs_padding = True
        buf.push_uint_var(frame_type)
        if handler is not None:
            packet.delivery_handlers.append((handler, handler_args))
        return buf

    def flush(self) -> tuple[list[bytes], list[SentPacket]]:
        """Finish the current packet; return and forget the datagrams and packet records."""
        if self._packet is not None:
            self._end_packet()
        datagrams, packets = self._datagrams, self._packets
        self._datagrams = []
        self._packets = []
        return datagrams, packets

    # -- internals -------------------------------------------------------------------------

    def _set_pn_length(self, pn: int) -> None:
        length = packet_number_length(pn, self._largest_acked)
        self._pn_length = length
        base = -1 if self._largest_acked is None else self._largest_acked
        # The same length holds while the distance stays below 2^(8 * length - 1).
        self._pn_length_until = base + (1 << (8 * length - 1)) - 1

    def _end_packet(self) -> None:
        packet = self._packet
        pp = self._pp
        assert packet is not None and pp is not None
        self._packet = None
        buf = self._buf
        header_size = self._header_size
        end = buf.tell()
        if end <= header_size:
            return  # nothing written: the packet (and its number) is not used
        pn_length = self._pn_length
        padding = _SAMPLE_REACH - pn_length - (end - header_size)
        if self.needs_padding:
            room = self._flight_capacity - end - AEAD_TAG_SIZE
            if room > padding:
                padding = room
            self.needs_padding = False
        if padding > 0:
            buf.push_bytes(bytes(padding))
            end += padding
            packet.in_flight = True
        key = (pp.key_phase << 2) | (pn_length - 1)
        if key != self._prefix_key:
            self._prefix = bytes((0x40 | key,)) + self._peer_cid
            self._prefix_key = key
        pn = self._pn
        header = self._prefix + (pn & ((1 << (8 * pn_length)) - 1)).to_bytes(pn_length, "big")
        datagram = pp.seal_short(
            header, buf.data_slice(header_size, end), pn_length, self._path_id, pn
        )
        size = len(datagram)
        packet.sent_bytes = size
        self._datagrams.append(datagram)
        self._packets.append(packet)
        self._total_bytes += size
        if packet.in_flight:
            self._flight_bytes += size
        self._pn = pn + 1


PacketSink = QuicPacketBuilder | ShortPacketWriter
"""What the engine's frame writers write into: aioquic's builder or the 1-RTT writer."""
