"""A plain-TLS QUIC connection speaking QUIC Address Discovery, for the relay's QAD service.

The relay's QAD service (wire doc §5.9) is ordinary QUIC v1 with X.509 TLS and ALPN
``/iroh-qad/0``: the relay (role 0, send only) tells each client (role 1, receive only) the
source address it sees, with OBSERVED_IPV4/IPV6_ADDRESS frames (§3.5). Nothing else is
exchanged; the client closes with application code 1 "finished" once it has its answer.

This is aioquic's ``QuicConnection`` with three additions, all through aioquic internals that
exist in the pinned 1.7.x line:

* the QAD role transport parameter is appended to what ``_serialize_transport_parameters``
  produces, and the peer's is read from the raw blob in ``_parse_transport_parameters``;
* the two OBSERVED_ADDRESS frame types are added to aioquic's (name-mangled) frame handler
  table, 1-RTT only;
* a queued report is written from ``_write_connection_limits``, which aioquic calls once per
  1-RTT packet it builds after the handshake; a lost report is queued again.

The QAD bookkeeping itself (sequence numbers, "report only on change") is the sans-I/O
:class:`~aioiroh.quic.address_discovery.AddressDiscovery`.
"""

from __future__ import annotations

from collections import deque
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Final

from aioquic.buffer import Buffer, BufferReadError
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection, QuicConnectionError
from aioquic.quic.packet import QuicErrorCode
from aioquic.quic.packet_builder import QuicDeliveryState, QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace

from .address_discovery import QAD_ROLE_RECEIVE, QAD_ROLE_SEND, AddressDiscovery
from .frames import FrameType, ObservedAddressFrame, pull_observed_address
from .nat_traversal import Addr
from .transport_parameters import ADDRESS_DISCOVERY_ROLE_ID

__all__ = [
    "QAD_ALPN",
    "QAD_FINISHED_CODE",
    "QadConnection",
    "qad_configuration",
]

QAD_ALPN: Final = "/iroh-qad/0"
"""ALPN of the relay's QAD service."""
QAD_FINISHED_CODE: Final = 1
"""Application close code the client uses once it has its report (reason ``finished``)."""
# Reports waiting to be written; only the newest matters, a few cover retransmissions.
MAX_PENDING_REPORTS: Final = 4
# Body of an OBSERVED_IPV6_ADDRESS frame at most: varint sequence (8) + 16 + 2.
_MAX_REPORT_SIZE: Final = 8 + 16 + 2 + 8
# Our own CIDs are 8 bytes, like every iroh connection, so the magic socket can route them.
CID_LENGTH: Final = 8


def qad_configuration(*, is_client: bool, server_name: str | None = None) -> QuicConfiguration:
    """aioquic settings of iroh's QAD client and server (wire doc §5.9).

    The client does **not** verify the relay's certificate: aioiroh has no web PKI roots to
    check a lab or self-hosted relay against, and the answer is only a hint (a wrong one costs
    a failed holepunch probe, never a connection). Nothing is pinned.
    """
    import ssl

    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[QAD_ALPN],
        connection_id_length=CID_LENGTH,
        # iroh's QAD client: initial RTT 111 ms, idle 35 s.
        idle_timeout=35.0,
        initial_rtt=0.111,
        max_datagram_frame_size=None,
        server_name=server_name,
    )
    if is_client:
        config.verify_mode = ssl.CERT_NONE
    return config


class QadConnection(QuicConnection):
    """aioquic connection with the QAD extension; see the module docstring."""

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
    ) -> None:
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
            retry_source_connection_id=retry_source_connection_id,
        )
        self.qad_role = QAD_ROLE_RECEIVE if configuration.is_client else QAD_ROLE_SEND
        self.qad: AddressDiscovery | None = None
        """QAD state, once the peer's transport parameters arrived."""
        self.observed: Addr | None = None
        """Client: our address as the server reported it."""
        self._pending_reports: deque[ObservedAddressFrame] = deque(maxlen=MAX_PENDING_REPORTS)
        if not configuration.is_client:
            # The service accepts no streams at all (iroh: 0 bidi / 0 uni).
            self._local_max_streams_bidi.value = 0
            self._local_max_streams_uni.value = 0
        handlers: dict[int, Any] = self._QuicConnection__frame_handlers  # type: ignore[attr-defined]
        one_rtt = handlers[0x1E][1]  # HANDSHAKE_DONE's epoch set: 1-RTT only
        handlers[FrameType.OBSERVED_IPV4_ADDRESS] = (self._handle_observed_address, one_rtt)
        handlers[FrameType.OBSERVED_IPV6_ADDRESS] = (self._handle_observed_address, one_rtt)

    # -- transport parameters ----------------------------------------------------------------

    def _serialize_transport_parameters(self) -> bytes:
        data: bytes = super()._serialize_transport_parameters()
        buf = Buffer(capacity=32)
        buf.push_uint_var(ADDRESS_DISCOVERY_ROLE_ID)
        buf.push_uint_var(1)
        buf.push_uint_var(self.qad_role)
        return data + buf.data

    def _parse_transport_parameters(self, data: bytes, from_session_ticket: bool = False) -> None:
        super()._parse_transport_parameters(data, from_session_ticket)
        peer_role = _find_qad_role(data)
        if peer_role is not None:
            self.qad = AddressDiscovery(local_role=self.qad_role, peer_role=peer_role)

    # -- frames --------------------------------------------------------------------------------

    def _handle_observed_address(self, context: Any, frame_type: int, buf: Buffer) -> None:
        frame = pull_observed_address(buf, frame_type)
        qad = self.qad
        if qad is None or not qad.receives:
            raise QuicConnectionError(
                error_code=QuicErrorCode.PROTOCOL_VIOLATION,
                frame_type=frame_type,
                reason_phrase="OBSERVED_ADDRESS without QAD negotiated",
            )
        addr = qad.on_observed_address(frame)
        if addr is not None:
            self.observed = addr

    def report_address(self, host: str, port: int) -> None:
        """Server: the client is seen at ``host:port`` now (queues a report if that changed)."""
        qad = self.qad
        if qad is None:
            return
        ip: IPv4Address | IPv6Address = ip_address(host)
        frame = qad.on_path_address(0, (ip, port))
        if frame is not None:
            self._pending_reports.append(frame)

    def _write_connection_limits(self, builder: QuicPacketBuilder, space: QuicPacketSpace) -> None:
        super()._write_connection_limits(builder, space)
        while self._pending_reports:
            frame = self._pending_reports[0]
            ftype = (
                FrameType.OBSERVED_IPV4_ADDRESS
                if frame.ip.version == 4
                else FrameType.OBSERVED_IPV6_ADDRESS
            )
            out = builder.start_frame(
                ftype,
                capacity=_MAX_REPORT_SIZE,
                handler=self._on_report_delivery,
                handler_args=(frame,),
            )
            out.push_uint_var(frame.sequence)
            out.push_bytes(frame.ip.packed)
            out.push_uint16(frame.port)
            self._pending_reports.popleft()

    def _on_report_delivery(self, delivery: QuicDeliveryState, frame: ObservedAddressFrame) -> None:
        # Resend a lost report unless a newer one superseded it.
        qad = self.qad
        if (
            delivery == QuicDeliveryState.LOST
            and qad is not None
            and not self._pending_reports
            and frame.sequence == qad._next_sequence - 1
        ):
            self._pending_reports.append(frame)

    @property
    def has_pending_reports(self) -> bool:
        return bool(self._pending_reports)


def _find_qad_role(data: bytes) -> int | None:
    """The QAD role in a raw transport parameter blob (aioquic skips unknown ids)."""
    buf = Buffer(data=data)
    try:
        while not buf.eof():
            param_id = buf.pull_uint_var()
            length = buf.pull_uint_var()
            value = buf.pull_bytes(length)
            if param_id == ADDRESS_DISCOVERY_ROLE_ID:
                vbuf = Buffer(data=value)
                role = vbuf.pull_uint_var()
                if not vbuf.eof() or role > 2:
                    raise QuicConnectionError(
                        error_code=QuicErrorCode.TRANSPORT_PARAMETER_ERROR,
                        frame_type=0x06,
                        reason_phrase="bad QAD role",
                    )
                return role
    except BufferReadError:
        return None  # aioquic already accepted the blob; a malformed tail is its call
    return None
