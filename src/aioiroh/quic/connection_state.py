"""State of an :class:`~aioiroh.quic.connection.IrohConnection` and its setup: TLS and keys.

Owns the engine's constants, the per-level keys and CRYPTO streams (:class:`Level`,
:class:`Seal`) and :class:`ConnectionState`: every attribute the engine holds, created in one
``__init__``, with the TLS context, the traffic-key callback and the few helpers all concerns
share. The concerns are layered on top as classes that each own their methods, one module each:
:mod:`.connection_paths` -> :mod:`.connection_send` -> :mod:`.connection_nat` ->
:mod:`.connection`. They share one set of attributes (packet spaces, paths, queues) read in the
per-packet loops, so they are layers of one object rather than parts behind references.
Connection IDs are self-contained and live in their own object, :class:`.ConnectionIds`
(``self.cids``).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any, Final

from aioquic import tls
from aioquic.quic import events
from aioquic.quic.packet import QuicPacketType
from aioquic.quic.recovery import QuicPacketRecovery, QuicPacketSpace
from aioquic.quic.stream import QuicStream

from ..base.key import PublicKey, SecretKey
from ..tls.context import RpkContext, install_raw_public_keys
from ._aioquic import Buffer
from .aioquic_connection import QuicSettings
from .amplification import AmplificationLimits
from .connection_ids import ACTIVE_CID_LIMIT, ConnectionIds
from .frames import PACKET_1RTT, PACKET_HANDSHAKE, PACKET_INITIAL, Frame
from .nat_traversal import Addr, NatTraversalClient, NatTraversalServer, canonical_addr
from .packet_protection import PacketProtection
from .paths import PATH_IDLE_TIMEOUT, PATH_KEEP_ALIVE, PathState
from .streams import StreamManager
from .transport_parameters import (
    IrohTransportParameters,
    encode_connection_id_parameters,
    iroh_default_parameters,
)

QUIC_V1: Final = 1
INITIAL, HANDSHAKE, APP = 0, 1, 2
EPOCHS: Final = (tls.Epoch.INITIAL, tls.Epoch.HANDSHAKE, tls.Epoch.ONE_RTT)
LEVEL_OF_EPOCH: Final = {tls.Epoch.INITIAL: INITIAL, tls.Epoch.HANDSHAKE: HANDSHAKE}
PACKET_FLAG: Final = (PACKET_INITIAL, PACKET_HANDSHAKE, PACKET_1RTT)
PACKET_TYPE: Final = (QuicPacketType.INITIAL, QuicPacketType.HANDSHAKE, QuicPacketType.ONE_RTT)

# Transport error codes (RFC 9000 §20.1).
NO_ERROR: Final = 0x0
INTERNAL_ERROR: Final = 0x1
CRYPTO_BUFFER_EXCEEDED: Final = 0xD
APPLICATION_ERROR: Final = 0xC
CRYPTO_ERROR: Final = 0x100

ACK_DELAY: Final = 0.001
"""How long we hold back an ACK for ack-eliciting packets (one ACK per receive batch)."""
ACK_EVERY: Final = 10
"""...but ack at once after this many unacknowledged ack-eliciting 1-RTT packets."""
ACK_DELAY_EXPONENT: Final = 3
ACK_FRAME_CAPACITY: Final = 64
MAX_CRYPTO_BUFFER: Final = 64 * 1024
MAX_TP_TEMPLATES: Final = 32
"""Bound on cached transport-parameter encodings (one per engine configuration)."""
_TP_TEMPLATES: dict[tuple[Any, ...], bytes] = {}
"""Bound on out-of-order CRYPTO data per level (and on TLS output per call)."""
MAX_PATH_RESPONSES: Final = 8
"""Bound on PATH_CHALLENGEs we still owe an answer to."""
MAX_PENDING_DATAGRAMS: Final = 256
"""Bound on DATAGRAM frames queued for sending; the oldest are dropped beyond it."""
MAX_PACKETS_PER_POLL: Final = 64
"""Packets built per :meth:`IrohConnection.datagrams_to_send` call before pacing resumes."""
MIN_PTO_IDLE_FACTOR: Final = 3
HANDSHAKE_IDLE_TIMEOUT: Final = 5.0
"""Server: a handshake the client stops driving for this long is given up."""
MAX_PATHS: Final = 8
"""Paths (open or draining) we keep at once; iroh allows 8 concurrent ones."""
MAX_CTRL_FRAMES: Final = 256
"""Bound on queued path/NAT control frames (PATH_STATUS, PATH_ABANDON, ADD_ADDRESS, ...)."""
MAX_OFFPATH: Final = 64
"""Bound on off-path datagrams (NAT probes and answers) waiting to be built."""


class Seal:
    """Duck-typed crypto for aioquic's packet builder: it seals through our PacketProtection."""

    __slots__ = ("path_id", "pp")
    aead_tag_size = 16

    def __init__(self, pp: PacketProtection, path_id: int = 0) -> None:
        self.pp = pp
        self.path_id = path_id

    @property
    def key_phase(self) -> int:
        return self.pp.key_phase

    def encrypt_packet(
        self, plain_header: bytes, plain_payload: bytes, packet_number: int
    ) -> bytes:
        return self.pp.seal(plain_header, plain_payload, self.path_id, packet_number)


class Level:
    """Keys, CRYPTO stream and TLS secrets of one encryption level."""

    __slots__ = ("crypto", "pp", "recv_secret", "seal", "send_secret", "suite")

    def __init__(self) -> None:
        self.crypto = QuicStream()
        self.pp: PacketProtection | None = None
        self.seal: Seal | None = None
        self.send_secret: bytes | None = None
        self.recv_secret: bytes | None = None
        self.suite: tls.CipherSuite | None = None

    def install(self, pp: PacketProtection) -> None:
        self.pp = pp
        self.seal = Seal(pp)


class ConnectionState:
    """Everything an engine holds; set up once, shared by the layers above."""

    def __init__(
        self,
        *,
        secret_key: SecretKey,
        is_client: bool,
        alpns: list[bytes],
        expected_peer: PublicKey | None = None,
        original_destination_connection_id: bytes | None = None,
        settings: QuicSettings | None = None,
        max_path_id: int | None = 7,
        nat_traversal: bool = True,
        hard_nat: bool = False,
        random_bytes: Callable[[int], bytes] = os.urandom,
        retry_source_connection_id: bytes | None = None,
    ) -> None:
        """``max_path_id`` is the initial_max_path_id we offer (None: no multipath).

        ``retry_source_connection_id`` (server): the CID of the Retry this client answered; its
        Initials are keyed by it, and our transport parameters must name it (RFC 9000 §7.3).

        ``nat_traversal`` offers n0 NAT traversal (needs multipath); ``hard_nat`` also offers
        aioiroh's birthday hard-NAT attempt (our own transport parameter; needs both).
        """
        self.settings = settings or QuicSettings()
        self._is_client = is_client
        self._random = random_bytes
        self._max_path_id = max_path_id
        self._events: deque[events.QuicEvent] = deque()
        self.cids = ConnectionIds(random_bytes, self._events.append)
        # The receive path's per-packet lookups, bound once (ConnectionIds never rebinds them).
        self._cid_path = self.cids.cid_path
        self._host_cid_set = self.cids.host_cid_set
        self._odcid = original_destination_connection_id or b""
        self._retry_scid = retry_source_connection_id
        self._retry_token = b""
        """Client: the token of the server's Retry, carried by our Initials from then on."""

        self._levels = [Level(), Level(), Level()]
        self._spaces = [
            QuicPacketSpace(),
            QuicPacketSpace(),
            QuicPacketSpace(is_application_data=True),
        ]
        self._recovery = QuicPacketRecovery(
            congestion_control_algorithm=self.settings.congestion_control,
            initial_rtt=self.settings.initial_rtt,
            max_datagram_size=1200,
            peer_completed_address_validation=not is_client,
            send_probe=self._on_probe,
        )
        self._recovery.spaces = list(self._spaces)
        self._max_datagram_size = 1200
        # Multipath: path 0 owns the handshake spaces' recovery; more paths are added later.
        self._path0 = PathState(0, None, self._spaces[APP], self._recovery, validated=True)
        self._paths: dict[int, PathState] = {0: self._path0}
        self._local_max_path_id = max_path_id or 0
        self._next_path_id = 1
        self._ctrl: deque[Frame] = deque()
        # Client: opens that were blocked (no path id or no peer CID yet), retried on a timer.
        # addr -> (available, from NAT traversal, give up at); at most MAX_PENDING_OPENS.
        self._pending_opens: dict[Any, tuple[bool, bool, float]] = {}
        self._pending_open_at: float | None = None
        # The blocking conditions we already told the peer about (each is sent once).
        self._paths_blocked_sent = -1
        self._cids_blocked_sent: set[int] = set()
        self.peer_paths_blocked = 0
        """PATHS_BLOCKED frames received (diagnostics)."""
        self.peer_path_cids_blocked = 0
        """PATH_CIDS_BLOCKED frames received (diagnostics)."""
        # Off-path datagrams to build: (address, via path id, 8 bytes, kind: OFFPATH_* of
        # connection_paths).
        self._offpath: deque[tuple[Any, int, bytes, int]] = deque(maxlen=MAX_OFFPATH)
        self._dial_addr: Any = None
        self._now = 0.0
        self._rx_path = self._path0
        self._rx_addr: Any = None
        self._rx_off_path = False
        self._rx_challenged = False
        """A PATH_CHALLENGE of the packet being handled was answered (one answer per packet)."""
        self._amplification = AmplificationLimits()
        """Bytes from and to peer addresses no path of ours has validated (3x rule)."""
        self.rebindings = 0
        """Server: times a path followed its client to a new address."""
        self.make_addr: Callable[[str, int], Any] = tuple_addr
        """Builds an engine address for an IP candidate (the socket sets its IpPath type)."""
        self.path_idle_timeout: Callable[[Any], float] = lambda addr: PATH_IDLE_TIMEOUT
        """Per-path idle timeout by address (iroh: 15 s, relay paths 30 s)."""
        self.path_keep_alive = PATH_KEEP_ALIVE
        # n0 NAT traversal: our candidates, and the role's state machine once negotiated.
        self._nat_local: dict[tuple[str, int], None] = {}
        self._nat: NatTraversalClient | NatTraversalServer | None = None
        self._qnt_offer = nat_traversal and max_path_id is not None
        self._hard_nat_offer = hard_nat and self._qnt_offer
        # Server: addresses the client reached out from (REACH_OUT), newest round last.
        self._nat_reach_outs: dict[tuple[str, int], None] = {}

        self.streams = StreamManager(
            is_client=is_client,
            max_data=self.settings.max_data,
            max_stream_data=self.settings.max_stream_data,
            max_streams_bidi=100,
            max_streams_uni=100,
            emit=self._events.append,
        )
        self._datagrams: deque[bytes] = deque()
        self._path_responses: deque[bytes] = deque(maxlen=MAX_PATH_RESPONSES)
        self._pings: list[int] = []
        self._path0.probe_pending = False
        self._handshake_done_pending = False
        self._handshake_complete = False
        self._cids_due = False
        """Client: our CIDs are still to be issued (at the next timer, after the Finished)."""
        self._handshake_confirmed = False
        self._peer_tp: IrohTransportParameters | None = None
        self._multipath = False
        self._remote_max_path_id = 0
        self._remote_max_datagram_frame_size: int | None = None
        self._remote_ack_delay_exponent = 3
        self._remote_idle_timeout: float | None = None

        # Anti-amplification (server until the client's address is validated).
        self._address_validated = is_client
        self._bytes_received = 0
        self._bytes_sent = 0

        # Lifecycle.
        self._close_event: events.ConnectionTerminated | None = None
        self._close_pending = False
        self._closing = False
        self._draining = False
        self._terminated = False
        self._close_at: float | None = None
        self._close_echoes = 0
        """Packets received while closing (our CONNECTION_CLOSE answers powers of two)."""
        self._idle_at: float | None = None
        # _idle_timeout() for the receive path, recomputed once per get_timer/handle_timer (it
        # follows the PTO, which moves slowly; computing it per packet cost ~3 % of receive).
        self._idle_timeout_cache: float | None = None
        self._eliciting_since_receive = False
        self._pacing_at: float | None = None
        self._loss_at: float | None = None
        self.decrypt_failures = 0
        """Packets dropped because they failed authentication (for tests and stats)."""
        self.dropped_packets = 0
        """Packets dropped for other reasons (unknown CID, no keys yet, bad header)."""
        self.sent_ack_types: set[int] = set()
        """Frame types of the 1-RTT ACKs we sent: ACK or PATH_ACK (tests check M2 with it)."""

        self.tls = self._make_tls(alpns, expected_peer, secret_key)
        self._crypto_buffers = {e: Buffer(capacity=MAX_CRYPTO_BUFFER) for e in EPOCHS}
        if not is_client:
            self._install_initial(self._retry_scid or self._odcid)

    def _make_tls(
        self, alpns: list[bytes], expected_peer: PublicKey | None, secret_key: SecretKey
    ) -> RpkContext:
        ctx = tls.Context(
            is_client=self._is_client,
            alpn_protocols=[a.decode("ascii") for a in alpns],
            max_early_data=None,
        )
        odcid = self._odcid or None
        ctx.handshake_extensions = [
            (
                tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS,
                self._parameters_template()
                + encode_connection_id_parameters(
                    self.cids.host_cid,
                    odcid if not self._is_client else None,
                    self.cids.host_cids[0][1] if not self._is_client else None,
                    self._retry_scid,
                ),
            ),
        ]
        ctx.update_traffic_key_cb = self._update_traffic_key
        return install_raw_public_keys(
            ctx, secret_key=secret_key, is_client=self._is_client, expected_peer=expected_peer
        )

    def _parameters_template(self) -> bytes:
        """Our transport parameters without the per-connection CIDs and reset token.

        Encoded once per configuration and process (it only depends on the settings and the
        offered extensions), not once per connection.
        """
        st = self.settings
        key = (
            self._is_client,
            self._max_path_id,
            self._qnt_offer,
            self._hard_nat_offer,
            st.idle_timeout,
            st.max_data,
            st.max_stream_data,
            st.max_datagram_frame_size,
        )
        template = _TP_TEMPLATES.get(key)
        if template is not None:
            return template
        params = iroh_default_parameters(
            self._is_client,
            initial_source_connection_id=b"",
            multipath=self._max_path_id is not None,
            nat_traversal=self._qnt_offer,
        )
        params.hard_nat = self._hard_nat_offer
        params.initial_max_path_id = self._max_path_id
        params.min_ack_delay = None
        quic = params.quic
        quic.initial_source_connection_id = None
        quic.max_idle_timeout = int(st.idle_timeout * 1000)
        quic.initial_max_data = st.max_data
        quic.initial_max_stream_data_bidi_local = st.max_stream_data
        quic.initial_max_stream_data_bidi_remote = st.max_stream_data
        quic.initial_max_stream_data_uni = st.max_stream_data
        quic.max_datagram_frame_size = st.max_datagram_frame_size
        quic.active_connection_id_limit = ACTIVE_CID_LIMIT
        template = params.encode()
        if len(_TP_TEMPLATES) >= MAX_TP_TEMPLATES:
            _TP_TEMPLATES.clear()
        _TP_TEMPLATES[key] = template
        return template

    def _install_initial(self, cid: bytes) -> None:
        self._levels[INITIAL].install(PacketProtection.initial(cid, is_client=self._is_client))

    def _update_traffic_key(
        self,
        direction: tls.Direction,
        epoch: tls.Epoch,
        cipher_suite: tls.CipherSuite,
        secret: bytes,
    ) -> None:
        if epoch == tls.Epoch.ZERO_RTT:
            return  # we never offer or accept early data
        level = self._levels[LEVEL_OF_EPOCH.get(epoch, APP)]
        if direction == tls.Direction.ENCRYPT:
            level.send_secret = secret
        else:
            level.recv_secret = secret
        level.suite = cipher_suite
        if level.send_secret is not None and level.recv_secret is not None and level.pp is None:
            level.install(
                PacketProtection(
                    cipher_suite, send_secret=level.send_secret, recv_secret=level.recv_secret
                )
            )

    @property
    def host_cid(self) -> bytes:
        """A live CID of ours on path 0 (the socket routes by it at setup)."""
        return self.cids.host_cid

    @host_cid.setter
    def host_cid(self, cid: bytes) -> None:
        self.cids.host_cid = cid

    def _on_probe(self) -> None:
        self._path0.probe_pending = True

    def _idle_timeout(self) -> float:
        timeout = self.settings.idle_timeout
        if self._remote_idle_timeout:
            timeout = min(timeout, self._remote_idle_timeout)
        if not self._is_client and not self._handshake_complete:
            # A pending server handshake holds one of the endpoint's few slots: it gets a
            # short deadline of silence, not the connection's idle timeout.
            timeout = min(timeout, HANDSHAKE_IDLE_TIMEOUT)
        return max(timeout, MIN_PTO_IDLE_FACTOR * self._recovery.get_probe_timeout())

    def _amplification_limited(self) -> bool:
        return not self._address_validated and self._bytes_sent >= 3 * self._bytes_received

    def _seal_for(self, path_id: int) -> Seal | None:
        lv = self._levels[APP]
        if lv.seal is None or lv.pp is None:
            return None
        return lv.seal if path_id == 0 else Seal(lv.pp, path_id)

    def _queue_ctrl(self, frame: Frame) -> None:
        if len(self._ctrl) >= MAX_CTRL_FRAMES:
            self._ctrl.popleft()
        self._ctrl.append(frame)


def tuple_addr(host: str, port: int) -> tuple[str, int]:
    return (host, port)


def ip_of(addr: Any) -> Addr | None:
    """``(ip, port)`` of an engine address that is an IP one (tuple or IpPath), else None."""
    host = getattr(addr, "host", None)
    port = getattr(addr, "port", None)
    if host is None and isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
    if not isinstance(host, str) or not isinstance(port, int):
        return None
    try:
        return canonical_addr((ip_address(host), port))
    except ValueError:
        return None
