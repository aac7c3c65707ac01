"""aioiroh's own sans-I/O QUIC connection engine (RFC 9000/9001/9002 plus multipath framing).

:class:`IrohConnection` implements the :class:`~aioiroh.quic.engine.QuicEngine` protocol with the
same constructor as :class:`~aioiroh.quic.aioquic_connection.IrohQuicConnection`, so the endpoint
can use either. It reuses aioquic's pieces that are path-agnostic (TLS ``Context``, ``QuicStream``,
``QuicPacketRecovery``, ``QuicPacketBuilder``, ``Buffer``) and owns what aioquic's monolithic
connection cannot do for multipath: packet protection with the path nonce and retained key
phases (:mod:`.packet_protection`), the frame codec with placement rules (:mod:`.frames`),
iroh's transport parameters (:mod:`.transport_parameters`), stream flow control
(:mod:`.streams`) and connection IDs.

Milestones implemented: M1 (single path, RFC 9000 peer) and M2 (multipath negotiated through
``initial_max_path_id``, only path 0 used: our 1-RTT ACKs become PATH_ACK, CIDs are announced with
PATH_NEW_CONNECTION_ID, and iroh's path frames are accepted), M3+ (the client opens more paths,
the server accepts them; a blocked open sends PATHS_BLOCKED / PATH_CIDS_BLOCKED once and is
retried) and n0 NAT traversal (ADD_ADDRESS / REACH_OUT rounds, off-path probes).

No asyncio, sockets, clocks or global randomness here: time comes in as ``now`` and random bytes
from the injectable ``random_bytes`` callable (``os.urandom`` by default).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any, Final, Literal

from aioquic import tls
from aioquic.quic import events
from aioquic.quic.packet import QuicPacketType, QuicStreamFrame, pull_quic_header
from aioquic.quic.packet_builder import (
    QuicDeliveryState,
    QuicPacketBuilder,
    QuicPacketBuilderStop,
    QuicSentPacket,
)
from aioquic.quic.recovery import QuicPacketRecovery, QuicPacketSpace
from aioquic.quic.stream import QuicStream

from ..base.key import PublicKey, SecretKey
from ..tls.context import RpkContext, install_raw_public_keys
from ._aioquic import UINT_VAR_MAX, Buffer, CryptoError, push_ack_frame, size_uint_var
from .aioquic_connection import CID_LENGTH, IrohQuicConnection, QuicSettings
from .frames import (
    FRAME_ENCODING_ERROR,
    PACKET_1RTT,
    PACKET_HANDSHAKE,
    PACKET_INITIAL,
    AckFrame,
    AckFrequencyFrame,
    AddAddressFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    Frame,
    FrameType,
    HandshakeDoneFrame,
    ImmediateAckFrame,
    MaxDataFrame,
    MaxPathIdFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    PathAbandonFrame,
    PathChallengeFrame,
    PathCidsBlockedFrame,
    PathResponseFrame,
    PathsBlockedFrame,
    PathStatusFrame,
    PingFrame,
    QuicProtocolViolation,
    ReachOutFrame,
    RemoveAddressFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamsBlockedFrame,
    frame_size,
    pull_frame,
    pull_frame_type,
    push_frame,
)
from .nat_traversal import (
    Addr,
    NatTraversalClient,
    NatTraversalError,
    NatTraversalServer,
    TooManyAddresses,
    canonical_addr,
)
from .packet_protection import PacketProtection, PacketProtectionError
from .packet_writer import PacketSink, SentPacket, ShortPacketWriter
from .paths import (
    MAX_CHALLENGE_TRIES,
    MAX_PENDING_OPENS,
    MIN_CHALLENGE_INTERVAL,
    PATH_IDLE_TIMEOUT,
    PATH_KEEP_ALIVE,
    PENDING_OPEN_LIFETIME,
    PENDING_OPEN_RETRY,
    PathAbandoned,
    PathOpened,
    PathSnapshot,
    PathState,
    PathStatusChanged,
)
from .streams import StreamManager
from .transport_parameters import (
    IROH_NAT_TRAVERSAL_ADDRESSES,
    IrohTransportParameters,
    iroh_default_parameters,
)

# Frames that do not make a packet "non-probing" (RFC 9000 §9.1).
_PROBING_FRAMES: Final = frozenset(
    {PaddingFrame, PathChallengeFrame, PathResponseFrame, NewConnectionIdFrame}
)

__all__ = ["ENGINE_ENV", "IrohConnection", "new_connection"]

ENGINE_ENV: Final = "AIOIROH_ENGINE"
"""Environment variable choosing the engine in :func:`new_connection`: ``aioquic`` or ``native``."""

QUIC_V1: Final = 1
INITIAL, HANDSHAKE, APP = 0, 1, 2
_EPOCHS: Final = (tls.Epoch.INITIAL, tls.Epoch.HANDSHAKE, tls.Epoch.ONE_RTT)
_LEVEL_OF_EPOCH: Final = {tls.Epoch.INITIAL: INITIAL, tls.Epoch.HANDSHAKE: HANDSHAKE}
_PACKET_FLAG: Final = (PACKET_INITIAL, PACKET_HANDSHAKE, PACKET_1RTT)
_PACKET_TYPE: Final = (QuicPacketType.INITIAL, QuicPacketType.HANDSHAKE, QuicPacketType.ONE_RTT)

# Transport error codes (RFC 9000 §20.1).
NO_ERROR: Final = 0x0
INTERNAL_ERROR: Final = 0x1
PROTOCOL_VIOLATION: Final = 0xA
CONNECTION_ID_LIMIT_ERROR: Final = 0x9
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
"""Bound on out-of-order CRYPTO data per level (and on TLS output per call)."""
MAX_PATH_RESPONSES: Final = 8
"""Bound on PATH_CHALLENGEs we still owe an answer to."""
MAX_PENDING_DATAGRAMS: Final = 256
"""Bound on DATAGRAM frames queued for sending; the oldest are dropped beyond it."""
MAX_PEER_CIDS_PER_PATH: Final = 16
"""Bound on connection IDs stored per path id (the peer may not exceed our limit of 5)."""
MAX_PENDING_RETIRES: Final = 64
"""Bound on RETIRE_CONNECTION_ID frames waiting to be sent; a peer forcing more is an error."""
MAX_REMOTE_PATHS: Final = 16
"""Bound on path ids we keep peer CIDs for (we allow at most 8)."""
MAX_PACKETS_PER_POLL: Final = 64
"""Packets built per :meth:`IrohConnection.datagrams_to_send` call before pacing resumes."""
ACTIVE_CID_LIMIT: Final = 5
"""active_connection_id_limit we send (iroh's value)."""
MIN_PTO_IDLE_FACTOR: Final = 3
CIDS_PER_PATH: Final = 2
"""CIDs we keep issued for each further path id (one in use plus a spare)."""
MAX_PATHS: Final = 8
"""Paths (open or draining) we keep at once; iroh allows 8 concurrent ones."""
MAX_CTRL_FRAMES: Final = 256
"""Bound on queued path/NAT control frames (PATH_STATUS, PATH_ABANDON, ADD_ADDRESS, ...)."""
MAX_OFFPATH: Final = 64
"""Bound on off-path datagrams (NAT probes and answers) waiting to be built."""


def _error_code_of(exc: QuicProtocolViolation) -> int:
    return int(exc.code) if exc.code is not None else PROTOCOL_VIOLATION


class _Seal:
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


class _Level:
    """Keys, CRYPTO stream and TLS secrets of one encryption level."""

    __slots__ = ("crypto", "pp", "recv_secret", "seal", "send_secret", "suite")

    def __init__(self) -> None:
        self.crypto = QuicStream()
        self.pp: PacketProtection | None = None
        self.seal: _Seal | None = None
        self.send_secret: bytes | None = None
        self.recv_secret: bytes | None = None
        self.suite: tls.CipherSuite | None = None

    def install(self, pp: PacketProtection) -> None:
        self.pp = pp
        self.seal = _Seal(pp)


class IrohConnection:
    """A QUIC connection speaking iroh's TLS profile and multipath framing; sans-I/O.

    Same driving contract as aioquic's ``QuicConnection``: feed :meth:`receive_datagram`, then
    drain :meth:`next_event`, send :meth:`datagrams_to_send`, and arm :meth:`get_timer`.
    """

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
    ) -> None:
        """``max_path_id`` is the initial_max_path_id we offer (None: no multipath).

        ``nat_traversal`` offers n0 NAT traversal (needs multipath); ``hard_nat`` also offers
        aioiroh's birthday hard-NAT attempt (our own transport parameter; needs both).
        """
        self.settings = settings or QuicSettings()
        self._is_client = is_client
        self._random = random_bytes
        self._max_path_id = max_path_id
        self._events: deque[events.QuicEvent] = deque()
        self.host_cid = random_bytes(CID_LENGTH)
        # Our CIDs: sequence -> (cid, reset token); sequence 0 is host_cid.
        self._host_cids: dict[int, tuple[bytes, bytes]] = {0: (self.host_cid, random_bytes(16))}
        self._host_cid_set: set[bytes] = {self.host_cid}
        self._host_cid_seq = 0
        # (path id, sequence) of our CIDs still to announce.
        self._cids_to_announce: list[tuple[int, int]] = []
        # Peer CIDs per path id: sequence -> cid; path 0's active one is _peer_cid.
        self._peer_cids: dict[int, dict[int, bytes]] = {0: {}}
        self._peer_cid = b""
        self._peer_cid_seq = 0
        self._peer_cid_set = False
        self._retire_prior_to = 0
        self._cids_to_retire: list[tuple[int | None, int]] = []
        self._odcid = original_destination_connection_id or b""

        self._levels = [_Level(), _Level(), _Level()]
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
        self._cid_path: dict[bytes, int] = {self.host_cid: 0}
        self._path_host_cids: dict[int, dict[int, tuple[bytes, bytes]]] = {}
        self._path_host_seq: dict[int, int] = {}
        self._path_cids_issued_upto = 0
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
        # Off-path datagrams to build: (address, via path id, 8 bytes, is_response).
        self._offpath: deque[tuple[Any, int, bytes, bool]] = deque(maxlen=MAX_OFFPATH)
        self._dial_addr: Any = None
        self._now = 0.0
        self._rx_path = self._path0
        self._rx_addr: Any = None
        self._rx_off_path = False
        self.rebindings = 0
        """Server: times a path followed its client to a new address."""
        self.make_addr: Callable[[str, int], Any] = _tuple_addr
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
        self._handshake_confirmed = False
        self._peer_tp: IrohTransportParameters | None = None
        self._multipath = False
        self._remote_max_path_id = 0
        self._remote_max_datagram_frame_size: int | None = None
        self._remote_ack_delay_exponent = 3
        self._remote_idle_timeout: float | None = None
        self._peer_cid_limit = 2

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
        self._crypto_buffers = {e: Buffer(capacity=MAX_CRYPTO_BUFFER) for e in _EPOCHS}
        if not is_client:
            self._install_initial(self._odcid)

    # -- setup -----------------------------------------------------------------------------

    def _make_tls(
        self, alpns: list[bytes], expected_peer: PublicKey | None, secret_key: SecretKey
    ) -> RpkContext:
        ctx = tls.Context(
            is_client=self._is_client,
            alpn_protocols=[a.decode("ascii") for a in alpns],
            max_early_data=None,
        )
        params = iroh_default_parameters(
            self._is_client,
            initial_source_connection_id=self.host_cid,
            original_destination_connection_id=self._odcid or None,
            stateless_reset_token=self._host_cids[0][1],
            multipath=self._max_path_id is not None,
            nat_traversal=self._qnt_offer,
        )
        params.hard_nat = self._hard_nat_offer
        params.initial_max_path_id = self._max_path_id
        params.min_ack_delay = None
        quic = params.quic
        quic.max_idle_timeout = int(self.settings.idle_timeout * 1000)
        quic.initial_max_data = self.settings.max_data
        quic.initial_max_stream_data_bidi_local = self.settings.max_stream_data
        quic.initial_max_stream_data_bidi_remote = self.settings.max_stream_data
        quic.initial_max_stream_data_uni = self.settings.max_stream_data
        quic.max_datagram_frame_size = self.settings.max_datagram_frame_size
        quic.active_connection_id_limit = ACTIVE_CID_LIMIT
        ctx.handshake_extensions = [
            (tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS, params.encode()),
        ]
        ctx.update_traffic_key_cb = self._update_traffic_key
        return install_raw_public_keys(
            ctx, secret_key=secret_key, is_client=self._is_client, expected_peer=expected_peer
        )

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
        level = self._levels[_LEVEL_OF_EPOCH.get(epoch, APP)]
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

    # -- QuicEngine: read-only views -------------------------------------------------------

    @property
    def peer_id(self) -> PublicKey | None:
        """The peer's authenticated key, once its CertificateVerify checked out."""
        return self.tls.peer_id

    @property
    def auth_failure(self) -> str | None:
        """Why we refused the peer's key, if we did."""
        return self.tls.auth_failure

    @property
    def alpn(self) -> bytes | None:
        """The negotiated ALPN."""
        name = self.tls.alpn_negotiated
        return None if name is None else name.encode("ascii")

    @property
    def is_client(self) -> bool:
        """Whether we dialed."""
        return self._is_client

    @property
    def is_terminated(self) -> bool:
        """Whether the connection is over (ConnectionTerminated was emitted)."""
        return self._terminated

    @property
    def is_closing(self) -> bool:
        """Whether a close is in progress or done."""
        return self._closing or self._terminated or self._close_pending

    @property
    def close_event(self) -> events.ConnectionTerminated | None:
        """The ConnectionTerminated describing a close in progress (local or remote)."""
        return self._close_event

    @property
    def smoothed_rtt(self) -> float | None:
        """Smoothed RTT of path 0, once measured."""
        rec: Any = self._recovery
        return float(rec._rtt_smoothed) if rec._rtt_initialized else None

    @property
    def multipath_negotiated(self) -> bool:
        """Whether both sides sent initial_max_path_id."""
        return self._multipath

    @property
    def remote_address(self) -> Any:
        """Where we send data (the data path's address)."""
        path = self._data_path()
        return (path or self._path0).addr

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes written to a stream and not yet acknowledged (for write back-pressure)."""
        return self.streams.send_buffer_size(stream_id)

    def stream_exists(self, stream_id: int) -> bool:
        """Whether the stream is still tracked."""
        return stream_id in self.streams.streams

    def next_event(self) -> events.QuicEvent | None:
        """The next pending event, or None."""
        return self._events.popleft() if self._events else None

    # -- QuicEngine: application calls -----------------------------------------------------

    def connect(self, addr: Any, now: float) -> None:
        """Start the handshake towards ``addr`` (client only)."""
        if not self._is_client:
            raise RuntimeError("connect() is for clients")
        self._path0.addr = addr
        self._dial_addr = addr
        self._peer_cid = self._random(CID_LENGTH)
        self._odcid = self._peer_cid
        self._install_initial(self._peer_cid)
        self._idle_at = now + self.settings.idle_timeout
        self._tls_input(INITIAL, b"")

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue data on a stream (``ValueError`` if we cannot write to it)."""
        self.streams.send(stream_id, data, end_stream)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abort sending on a stream."""
        self.streams.reset(stream_id, error_code)

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending on a stream."""
        self.streams.stop(stream_id, error_code)

    def send_datagram_frame(self, data: bytes) -> None:
        """Queue an unreliable datagram (dropped if the peer does not accept datagrams)."""
        limit = self._remote_max_datagram_frame_size
        if limit is not None and len(data) + 8 > limit:
            raise ValueError("datagram larger than the peer accepts")
        if len(self._datagrams) >= MAX_PENDING_DATAGRAMS:
            self._datagrams.popleft()
        self._datagrams.append(bytes(data))

    def send_ping(self, uid: int) -> None:
        """Send a PING; PingAcknowledged(uid) follows when acked."""
        self._pings.append(uid)

    def close(
        self, error_code: int = NO_ERROR, frame_type: int | None = None, reason_phrase: str = ""
    ) -> None:
        """Close the connection (application close unless ``frame_type`` is given)."""
        if self._close_event is None and not self._terminated:
            self._close_event = events.ConnectionTerminated(
                error_code=error_code, frame_type=frame_type, reason_phrase=reason_phrase
            )
            self._close_pending = True

    def _close_with_error(self, code: int, frame_type: int | None, reason: str) -> None:
        self.close(error_code=code, frame_type=frame_type or 0, reason_phrase=reason)

    # -- timers ----------------------------------------------------------------------------

    def _idle_timeout(self) -> float:
        timeout = self.settings.idle_timeout
        if self._remote_idle_timeout:
            timeout = min(timeout, self._remote_idle_timeout)
        return max(timeout, MIN_PTO_IDLE_FACTOR * self._recovery.get_probe_timeout())

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must run next (or None)."""
        if self._terminated:
            return None
        self._idle_timeout_cache = None
        if self._closing:
            return self._close_at
        at = self._idle_at
        for space in self._spaces:
            if space.ack_at is not None and (at is None or space.ack_at < at):
                at = space.ack_at
        self._loss_at = self._recovery.get_loss_detection_time(
            amplification_limited=self._amplification_limited()
        )
        if self._loss_at is not None and (at is None or self._loss_at < at):
            at = self._loss_at
        if self._pacing_at is not None and (at is None or self._pacing_at < at):
            at = self._pacing_at
        if len(self._paths) > 1 or self._nat is not None or self._pending_opens:
            t = self._path_timer()
            if t is not None and (at is None or t < at):
                at = t
        return at

    def _path_timer(self) -> float | None:
        times: list[float] = []
        for path in self._paths.values():
            if path.path_id and not path.abandoned and not path.peer_cid:
                # Nothing can be sent on it before the peer's CID arrives (a path the client
                # opened just before its CIDs reached us): only the idle timer runs.
                if path.idle_at is not None:
                    times.append(path.idle_at)
                continue
            if path.path_id and not path.abandoned:
                space = path.space
                if space.ack_at is not None:
                    times.append(space.ack_at)
                loss = path.recovery.get_loss_detection_time(amplification_limited=False)
                if loss is not None:
                    times.append(loss)
            for t in (path.challenge_at, path.idle_at, path.keepalive_at, path.drain_at):
                if t is not None:
                    times.append(t)
        if self._nat is not None:
            t = self._nat.next_deadline()
            if t is not None:
                times.append(t)
        if self._pending_open_at is not None:
            times.append(self._pending_open_at)
        if self._offpath:
            times.append(0.0)
        return min(times) if times else None

    def _handle_path_timers(self, now: float) -> None:
        if self._pending_open_at is not None and now >= self._pending_open_at:
            self._retry_pending_opens(now)
        for path in list(self._paths.values()):
            if path.drain_at is not None:
                if now >= path.drain_at:
                    path.drain_at = None
                    self._retire_path_host_cids(path.path_id)
                    if path.path_id:
                        del self._paths[path.path_id]
                continue
            if path.abandoned:
                continue
            if path.path_id:
                loss = path.recovery.get_loss_detection_time(amplification_limited=False)
                if loss is not None and now >= loss:
                    path.recovery.on_loss_detection_timeout(now=now)
            if path.idle_at is not None and now >= path.idle_at:
                # Silent for too long: give it up if another path remains.
                path.idle_at = None
                if not self.close_path(path.path_id, now, error_code=NO_ERROR):
                    path.idle_at = now + self.path_idle_timeout(path.addr)
                continue
            if (
                not path.validated
                and path.challenge_at is not None
                and path.challenge_tries >= MAX_CHALLENGE_TRIES
                and now >= path.challenge_at
            ):
                self._abandon(path, now, NO_ERROR, send=True)
                continue
            if path.keepalive_at is not None and now >= path.keepalive_at:
                path.ping_pending = len(self._paths) > 1
                path.keepalive_at = now + self.path_keep_alive

    def handle_timer(self, now: float) -> None:
        """Fire whatever is due: close/idle, loss detection (ACK and pacing are send-side)."""
        self._idle_timeout_cache = None
        if self._terminated:
            return
        if self._closing:
            if self._close_at is not None and now >= self._close_at:
                self._terminate()
            return
        if self._idle_at is not None and now >= self._idle_at:
            if self._close_event is None:
                # Same shape as aioquic's, which the endpoint recognises as an idle timeout.
                self._close_event = events.ConnectionTerminated(
                    error_code=INTERNAL_ERROR, frame_type=0, reason_phrase="Idle timeout"
                )
            self._terminate()
            return
        if self._loss_at is not None and now >= self._loss_at:
            self._recovery.on_loss_detection_timeout(now=now)
        self._pacing_at = None
        if len(self._paths) > 1 or self._nat is not None or self._pending_opens:
            self._handle_path_timers(now)

    def _on_probe(self) -> None:
        self._path0.probe_pending = True

    def _amplification_limited(self) -> bool:
        return not self._address_validated and self._bytes_sent >= 3 * self._bytes_received

    def _terminate(self) -> None:
        self._terminated = True
        self._closing = True
        self._close_at = None
        for space in self._spaces:
            if not space.discarded:
                self._recovery.discard_space(space)
                space.discarded = True
        assert self._close_event is not None
        self._events.append(self._close_event)
        for seq in list(self._host_cids):
            if seq:
                self._events.append(
                    events.ConnectionIdRetired(connection_id=self._host_cids[seq][0])
                )
        for path_id in list(self._path_host_cids):
            self._retire_path_host_cids(path_id)

    def _enter_close(self, now: float, *, draining: bool) -> None:
        # Closing (we sent CONNECTION_CLOSE) and draining (we received one) both last 3 PTO.
        self._closing = True
        self._draining = draining
        self._close_pending = False
        if self._close_at is None:
            self._close_at = now + 3 * self._recovery.get_probe_timeout()

    # -- receiving -------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        """Process one UDP datagram (possibly several coalesced packets) from ``addr``."""
        if self._terminated:
            return
        data = bytes(data)
        self._now = now
        if self._path0.addr is None:
            self._path0.addr = addr
        if addr == self._path0.addr:
            self._bytes_received += len(data)
        pos = 0
        end_of_data = len(data)
        while pos < end_of_data:
            first = data[pos]
            if not first & 0x40:
                self.dropped_packets += 1
                return  # fixed bit clear: not QUIC v1 (iroh never greases it)
            if first & 0x80:
                try:
                    buf = Buffer(data=data)
                    buf.seek(pos)
                    header = pull_quic_header(buf, host_cid_length=CID_LENGTH)
                except ValueError:
                    self.dropped_packets += 1
                    return
                if header.version != QUIC_V1:
                    self.dropped_packets += 1
                    return
                if header.packet_type == QuicPacketType.INITIAL:
                    level = INITIAL
                elif header.packet_type == QuicPacketType.HANDSHAKE:
                    level = HANDSHAKE
                else:
                    self.dropped_packets += 1  # 0-RTT / Retry: never used by iroh
                    pos += header.packet_length
                    continue
                end = pos + header.packet_length
                pn_offset = buf.tell() - pos
                dcid = header.destination_cid
                if dcid not in self._host_cid_set and dcid != self._odcid:
                    self.dropped_packets += 1
                    pos = end
                    continue
                scid: bytes | None = header.source_cid
                path_id = 0
            else:
                level = APP
                end = end_of_data
                pn_offset = 1 + CID_LENGTH
                found = self._cid_path.get(data[pos + 1 : pos + 1 + CID_LENGTH])
                if found is None:
                    self.dropped_packets += 1
                    return
                path_id = found
                scid = None
            packet = data[pos:end]
            pos = end
            self._receive_packet(level, packet, pn_offset, scid, now, path_id, addr)
            if self._terminated:
                return

    def _receive_packet(
        self,
        level: int,
        packet: bytes,
        pn_offset: int,
        scid: bytes | None,
        now: float,
        path_id: int,
        addr: Any,
    ) -> None:
        lv = self._levels[level]
        path: PathState | None = self._path0
        if level == APP and path_id:
            path = self._paths.get(path_id)
            expected = 0 if path is None else path.space.expected_packet_number
        else:
            expected = self._spaces[level].expected_packet_number
        if lv.pp is None or (path is not None and level == APP and path.space.discarded):
            self.dropped_packets += 1
            return
        try:
            header, payload, pn = lv.pp.open(packet, pn_offset, path_id, expected)
        except (PacketProtectionError, CryptoError, ValueError):
            self.decrypt_failures += 1
            return
        if path is None:
            # Authenticated packet on a path id we issued CIDs for: the peer opens a path.
            path = self._accept_path(path_id, addr, now)
            if path is None:
                self.dropped_packets += 1
                return
        space = path.space if level == APP else self._spaces[level]
        if space.discarded:
            self.dropped_packets += 1
            return
        if pn in space.received_packets:
            return  # duplicate
        off_path = False
        if addr != path.addr:
            if path is self._path0 and self._is_client and not self._handshake_complete:
                # iroh's server handshake migration: the first answering path becomes path 0.
                path.addr = addr
            else:
                off_path = True
        if not off_path:
            path.datagrams_recv += 1
            path.bytes_recv += len(packet)
        self._rx_path = path
        self._rx_addr = addr
        self._rx_off_path = off_path
        if self._closing:
            if not self._draining:
                self._on_packet_while_closing(level, payload, now)
            return
        reserved = header[0] & (0x0C if level != APP else 0x18)
        if reserved:
            self._close_with_error(PROTOCOL_VIOLATION, 0, "reserved bits set")
            return
        if scid is not None and not self._peer_cid_set:
            # The peer's chosen CID (server: the client's SCID; client: the server's).
            self._peer_cid = scid
            self._peer_cid_set = True
        if level == HANDSHAKE and not self._is_client:
            self._address_validated = True
        try:
            eliciting, non_probing = self._handle_payload(level, payload, now)
        except QuicProtocolViolation as exc:
            self._close_with_error(_error_code_of(exc), exc.frame_type, str(exc))
            return
        if space.discarded:
            return
        if (
            off_path
            and level == APP
            and not self._is_client
            and pn > space.largest_received_packet
            and non_probing
        ):
            # The client's address changed under an existing path (NAT rebinding, or the
            # client moved to another network): newest authenticated non-probing traffic
            # wins, so answers follow it (RFC 9000 §9.3, applied per path). Probes (a NAT
            # traversal round) carry only probing frames and never move a path.
            path.addr = addr
            path.datagrams_recv += 1
            path.bytes_recv += len(packet)
            self.rebindings += 1
        if pn >= space.expected_packet_number:
            space.expected_packet_number = pn + 1
        space.received_packets.add(pn)
        space.ack_queue.add(pn)
        if pn > space.largest_received_packet:
            space.largest_received_packet = pn
            space.largest_received_time = now
        if eliciting:
            if level != APP:
                space.ack_at = now
            else:
                path.unacked_eliciting += 1
                if path.unacked_eliciting >= ACK_EVERY:
                    space.ack_at = now
                elif space.ack_at is None:
                    space.ack_at = now + ACK_DELAY
        timeout = self._idle_timeout_cache
        if timeout is None:
            timeout = self._idle_timeout_cache = self._idle_timeout()
        self._idle_at = now + timeout
        if level == APP and not off_path and path.idle_at is not None:
            path.idle_at = now + self.path_idle_timeout(path.addr)
        self._eliciting_since_receive = False
        if level == HANDSHAKE and not self._spaces[INITIAL].discarded:
            # RFC 9001 §4.9.1: Initial keys go once Handshake packets flow.
            self._discard_level(INITIAL)

    def _on_packet_while_closing(self, level: int, payload: bytes, now: float) -> None:
        """Closing: the peer's CONNECTION_CLOSE moves us to draining (RFC 9000 §10.2.2);
        anything else gets our CONNECTION_CLOSE again, but only for the 1st, 2nd, 4th, 8th...
        such packet (two closing endpoints would otherwise echo closes until 3 PTO ran out)."""
        if _has_close_frame(payload, _PACKET_FLAG[level], self._is_client, self._multipath):
            self._draining = True
            self._close_pending = False
            return
        self._close_echoes += 1
        if self._close_echoes & (self._close_echoes - 1) == 0:
            self._close_pending = True

    def _discard_level(self, level: int) -> None:
        space = self._spaces[level]
        if not space.discarded:
            self._recovery.discard_space(space)
            space.discarded = True
            self._levels[level].pp = None
            self._levels[level].seal = None

    def _handle_payload(self, level: int, payload: bytes, now: float) -> tuple[bool, bool]:
        """Decode and handle a packet's frames in one pass: (ack-eliciting, non-probing).

        Frames are handled as they are decoded, so frames before a malformed or misplaced one
        take effect before the connection closes over it. STREAM frames in 1-RTT packets, the
        bulk of all frames, are decoded inline (no frame object).
        """
        if not payload:
            raise QuicProtocolViolation("packet without frames", code=PROTOCOL_VIOLATION)
        buf = Buffer(data=payload)
        end = len(payload)
        packet_type = _PACKET_FLAG[level]
        role: Literal["client", "server"] = "client" if self._is_client else "server"
        multipath = self._multipath
        qnt = self._nat is not None
        on_stream_data = self.streams.on_stream_data
        eliciting = non_probing = False
        while buf.tell() < end:
            frame_type = pull_frame_type(buf)
            if level == APP and 0x08 <= frame_type <= 0x0F:
                try:
                    sid = buf.pull_uint_var()
                    offset = buf.pull_uint_var() if frame_type & 0x04 else 0
                    if frame_type & 0x02:
                        data = buf.pull_bytes(buf.pull_uint_var())
                    else:
                        data = buf.pull_bytes(end - buf.tell())
                except ValueError as exc:
                    raise QuicProtocolViolation(
                        f"malformed frame {hex(frame_type)}: {exc}",
                        code=FRAME_ENCODING_ERROR,
                        frame_type=frame_type,
                    ) from None
                if offset + len(data) > UINT_VAR_MAX:
                    raise QuicProtocolViolation(
                        f"malformed frame {hex(frame_type)}: STREAM frame beyond 2^62-1",
                        code=FRAME_ENCODING_ERROR,
                        frame_type=frame_type,
                    )
                on_stream_data(sid, offset, data, bool(frame_type & 0x01))
                eliciting = non_probing = True
                continue
            frame = pull_frame(
                buf, frame_type, packet_type, role=role, multipath=multipath, qnt=qnt
            )
            kind = type(frame)
            if kind is AckFrame:
                self._on_ack(level, frame, now)  # type: ignore[arg-type]
                non_probing = True
            elif kind is PaddingFrame:
                pass
            else:
                eliciting = True
                if kind not in _PROBING_FRAMES:
                    non_probing = True
                handler = _HANDLERS.get(kind)
                if handler is not None:
                    handler(self, level, frame, now)
                if kind is ConnectionCloseFrame:
                    return False, non_probing
        return eliciting, non_probing

    def _on_ack(self, level: int, frame: AckFrame, now: float) -> None:
        if frame.path_id:
            path = self._paths.get(frame.path_id)
            if path is None or path.abandoned:
                return  # an ACK for a path already gone
            space = path.space
        else:
            path = self._path0
            space = self._spaces[level]
        if space.discarded:
            return
        largest = frame.ranges.bounds().stop - 1
        if largest >= path.pn:
            raise QuicProtocolViolation(
                "ACK for a packet never sent", code=PROTOCOL_VIOLATION, frame_type=FrameType.ACK
            )
        delay = (frame.ack_delay << self._remote_ack_delay_exponent) / 1_000_000
        path.recovery.on_ack_received(
            ack_rangeset=frame.ranges, ack_delay=delay, now=now, space=space
        )

    def _on_crypto(self, level: int, frame: CryptoFrame, now: float) -> None:
        stream = self._levels[level].crypto
        if frame.offset + len(frame.data) - stream.receiver.starting_offset() > MAX_CRYPTO_BUFFER:
            raise QuicProtocolViolation(
                "too much CRYPTO data buffered",
                code=CRYPTO_BUFFER_EXCEEDED,
                frame_type=FrameType.CRYPTO,
            )
        event = stream.receiver.handle_frame(QuicStreamFrame(offset=frame.offset, data=frame.data))
        if event is not None and event.data:
            self._tls_input(level, event.data)

    def _tls_input(self, level: int, data: bytes) -> None:
        try:
            self.tls.handle_message(data, self._crypto_buffers)
        except tls.Alert as exc:
            raise QuicProtocolViolation(
                str(exc), code=CRYPTO_ERROR + int(exc.description), frame_type=FrameType.CRYPTO
            ) from None
        for epoch, lvl in zip(_EPOCHS, (INITIAL, HANDSHAKE, APP), strict=True):
            buf = self._crypto_buffers[epoch]
            if buf.tell():
                self._levels[lvl].crypto.sender.write(buf.data)
                buf.seek(0)
        if self._peer_tp is None:
            for ext_type, ext_data in self.tls.received_extensions or []:
                if ext_type == tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS:
                    self._apply_peer_parameters(ext_data)
        if not self._handshake_complete and self.tls.state in (
            tls.State.CLIENT_POST_HANDSHAKE,
            tls.State.SERVER_POST_HANDSHAKE,
        ):
            self._on_handshake_complete()

    def _apply_peer_parameters(self, data: bytes) -> None:
        params = IrohTransportParameters.decode(data)
        self._peer_tp = params
        quic = params.quic
        if self._is_client and quic.original_destination_connection_id != self._odcid:
            raise QuicProtocolViolation("original_destination_connection_id mismatch", code=0x08)
        if quic.initial_source_connection_id is None:
            raise QuicProtocolViolation("initial_source_connection_id missing", code=0x08)
        if self._peer_cid_set and quic.initial_source_connection_id != self._peer_cid:
            raise QuicProtocolViolation("initial_source_connection_id mismatch", code=0x08)
        if quic.max_idle_timeout:
            self._remote_idle_timeout = quic.max_idle_timeout / 1000
            self._idle_timeout_cache = None
        if quic.ack_delay_exponent is not None:
            self._remote_ack_delay_exponent = quic.ack_delay_exponent
        if quic.max_ack_delay is not None:
            self._recovery.max_ack_delay = quic.max_ack_delay / 1000
        self._remote_max_datagram_frame_size = quic.max_datagram_frame_size
        self.streams.set_peer_limits(
            max_data=quic.initial_max_data or 0,
            max_stream_data_bidi_local=quic.initial_max_stream_data_bidi_local or 0,
            max_stream_data_bidi_remote=quic.initial_max_stream_data_bidi_remote or 0,
            max_stream_data_uni=quic.initial_max_stream_data_uni or 0,
            max_streams_bidi=quic.initial_max_streams_bidi or 0,
            max_streams_uni=quic.initial_max_streams_uni or 0,
        )
        self._peer_cid_limit = quic.active_connection_id_limit or 2
        if params.initial_max_path_id is not None and self._max_path_id is not None:
            self._multipath = True
            self._remote_max_path_id = params.initial_max_path_id
        if quic.max_udp_payload_size:
            self._max_datagram_size = min(
                self.settings.max_datagram_size, quic.max_udp_payload_size
            )

    def _on_handshake_complete(self) -> None:
        self._handshake_complete = True
        if not self._is_client:
            self._handshake_done_pending = True
            self._confirm_handshake()
        # Peer CID seq 0 is the one from the handshake.
        self._peer_cids[0][0] = self._peer_cid
        self._issue_cids()
        self._setup_multipath()
        self._events.append(
            events.HandshakeCompleted(
                alpn_protocol=self.tls.alpn_negotiated,
                early_data_accepted=False,
                session_resumed=False,
            )
        )

    def _confirm_handshake(self) -> None:
        if self._handshake_confirmed:
            return
        self._handshake_confirmed = True
        self._recovery.handshake_confirmed = True
        self._recovery.peer_completed_address_validation = True
        self._discard_level(INITIAL)
        self._discard_level(HANDSHAKE)

    def _issue_cids(self) -> None:
        """Give the peer spare CIDs up to its active_connection_id_limit (max ours)."""
        limit = min(self._peer_cid_limit, ACTIVE_CID_LIMIT)
        while len(self._host_cids) < limit:
            self._host_cid_seq += 1
            cid = self._random(CID_LENGTH)
            self._host_cids[self._host_cid_seq] = (cid, self._random(16))
            self._host_cid_set.add(cid)
            self._cid_path[cid] = 0
            self._cids_to_announce.append((0, self._host_cid_seq))
            self._events.append(events.ConnectionIdIssued(connection_id=cid))

    # -- frame handlers (table below) ------------------------------------------------------

    def _on_handshake_done(self, level: int, frame: HandshakeDoneFrame, now: float) -> None:
        self._confirm_handshake()

    def _on_close_frame(self, level: int, frame: ConnectionCloseFrame, now: float) -> None:
        if self._close_event is None or self._close_pending:
            self._close_event = events.ConnectionTerminated(
                error_code=frame.error_code,
                frame_type=frame.frame_type,
                reason_phrase=frame.reason.decode("utf-8", "replace"),
            )
        self._close_pending = False
        self._enter_close(now, draining=True)

    def _on_datagram(self, level: int, frame: DatagramFrame, now: float) -> None:
        if len(frame.data) > self.settings.max_datagram_frame_size:
            raise QuicProtocolViolation(
                "DATAGRAM too large", code=PROTOCOL_VIOLATION, frame_type=FrameType.DATAGRAM
            )
        self._events.append(events.DatagramFrameReceived(data=frame.data))

    def _on_new_cid(self, level: int, frame: NewConnectionIdFrame, now: float) -> None:
        path_id = frame.path_id or 0
        if path_id > self._local_max_path_id:
            raise QuicProtocolViolation(
                "CID for a path id above our maximum",
                code=PROTOCOL_VIOLATION,
                frame_type=FrameType.PATH_NEW_CONNECTION_ID,
            )
        cids = self._peer_cids.get(path_id)
        if cids is None:
            if len(self._peer_cids) >= MAX_REMOTE_PATHS:
                return
            cids = self._peer_cids[path_id] = {}
        if path_id == 0 and frame.sequence < self._retire_prior_to:
            self._cids_to_retire.append((frame.path_id, frame.sequence))
            return
        cids[frame.sequence] = frame.connection_id
        if path_id:
            self._on_path_new_cid(path_id)
            self._wake_pending_opens(now)
        if path_id == 0 and frame.retire_prior_to > self._retire_prior_to:
            self._retire_prior_to = frame.retire_prior_to
            for seq in [s for s in cids if s < frame.retire_prior_to]:
                del cids[seq]
                self._cids_to_retire.append((frame.path_id, seq))
            if self._peer_cid_seq < frame.retire_prior_to:
                self._peer_cid_seq = min(cids)
                self._peer_cid = cids[self._peer_cid_seq]
        if (
            len(cids) > max(ACTIVE_CID_LIMIT, MAX_PEER_CIDS_PER_PATH // 2) + 1
            or len(self._cids_to_retire) > MAX_PENDING_RETIRES
        ):
            raise QuicProtocolViolation(
                "too many connection IDs",
                code=CONNECTION_ID_LIMIT_ERROR,
                frame_type=FrameType.NEW_CONNECTION_ID,
            )

    def _on_retire_cid(self, level: int, frame: RetireConnectionIdFrame, now: float) -> None:
        if frame.path_id:
            self._on_retire_path_cid(frame.path_id, frame.sequence)
            return
        if frame.sequence > self._host_cid_seq:
            raise QuicProtocolViolation(
                "retiring a CID never issued",
                code=PROTOCOL_VIOLATION,
                frame_type=FrameType.RETIRE_CONNECTION_ID,
            )
        entry = self._host_cids.pop(frame.sequence, None)
        if entry is None:
            return
        cid = entry[0]
        self._host_cid_set.discard(cid)
        self._cid_path.pop(cid, None)
        if cid == self.host_cid:
            # Keep routing by a live CID name; the endpoint uses host_cid only at setup.
            self.host_cid = next(iter(self._host_cids.values()))[0] if self._host_cids else cid
        self._events.append(events.ConnectionIdRetired(connection_id=cid))
        self._issue_cids()

    def _on_path_challenge(self, level: int, frame: PathChallengeFrame, now: float) -> None:
        if self._rx_off_path:
            # A NAT traversal probe (or a peer moving): answer where it came from.
            self._offpath.append((self._rx_addr, self._rx_path.path_id, frame.data, True))
        elif self._rx_path is self._path0:
            self._path_responses.append(frame.data)
        elif len(self._rx_path.responses) < MAX_PATH_RESPONSES:
            self._rx_path.responses.append(frame.data)

    def _on_max_path_id(self, level: int, frame: MaxPathIdFrame, now: float) -> None:
        if frame.max_path_id > self._remote_max_path_id:
            self._remote_max_path_id = frame.max_path_id
            self._issue_path_cids()
            self._wake_pending_opens(now)

    def _on_paths_blocked(self, level: int, frame: PathsBlockedFrame, now: float) -> None:
        # Informational: we raise MAX_PATH_ID as paths close, never on request.
        self.peer_paths_blocked += 1

    def _on_path_cids_blocked(self, level: int, frame: PathCidsBlockedFrame, now: float) -> None:
        """The peer has no CID of ours for a path id: re-announce the live ones.

        We always keep CIDS_PER_PATH live CIDs per path id, so a peer blocked on one most likely
        lost the PATH_NEW_CONNECTION_ID frames; repeating a CID frame is harmless (RFC 9000 §19.15).
        """
        self.peer_path_cids_blocked += 1
        if frame.path_id > self._local_max_path_id:
            raise QuicProtocolViolation(
                "PATH_CIDS_BLOCKED above our maximum path id",
                code=PROTOCOL_VIOLATION,
                frame_type=FrameType.PATH_CIDS_BLOCKED,
            )
        for seq in self._path_host_cids.get(frame.path_id, {}):
            if (frame.path_id, seq) not in self._cids_to_announce:
                self._cids_to_announce.append((frame.path_id, seq))

    def _on_immediate_ack(self, level: int, frame: ImmediateAckFrame, now: float) -> None:
        self._spaces[level].ack_at = now

    def _ignore(self, level: int, frame: Any, now: float) -> None:
        """Frames we accept without acting on them (M2: other paths are never used)."""

    # -- multipath: paths, CIDs, status ----------------------------------------------------

    def _setup_multipath(self) -> None:
        """After the handshake: issue CIDs for further path ids and start NAT traversal."""
        if not self._multipath:
            return
        path0 = self._path0
        path0.idle_at = self._now + self.path_idle_timeout(path0.addr)
        path0.keepalive_at = self._now + self.path_keep_alive
        self._issue_path_cids()
        peer = self._peer_tp
        if self._qnt_offer and peer is not None and peer.nat_traversal:
            common: dict[str, Any] = {
                "max_remote_addresses": IROH_NAT_TRAVERSAL_ADDRESSES,
                "max_local_addresses": peer.nat_traversal,
                "random_bytes": self._random,
                "initial_rtt": self.settings.initial_rtt,
            }
            if self._is_client:
                self._nat = NatTraversalClient(**common)
            else:
                self._nat = NatTraversalServer(**common)
            for host, port in list(self._nat_local):
                self._nat_add_local(host, port)

    def _issue_path_cids(self) -> None:
        """Announce CIDs for every path id up to min(our, peer's) max that has none yet."""
        if not self._multipath or not self._handshake_complete:
            return
        upto = min(self._local_max_path_id, self._remote_max_path_id)
        while self._path_cids_issued_upto < upto:
            self._path_cids_issued_upto += 1
            path_id = self._path_cids_issued_upto
            self._path_host_cids[path_id] = {}
            self._path_host_seq[path_id] = -1
            for _ in range(CIDS_PER_PATH):
                self._issue_path_cid(path_id)

    def _issue_path_cid(self, path_id: int) -> None:
        cids = self._path_host_cids.get(path_id)
        if cids is None or len(cids) >= CIDS_PER_PATH:
            return
        seq = self._path_host_seq[path_id] + 1
        self._path_host_seq[path_id] = seq
        cid = self._random(CID_LENGTH)
        cids[seq] = (cid, self._random(16))
        self._cid_path[cid] = path_id
        self._cids_to_announce.append((path_id, seq))
        self._events.append(events.ConnectionIdIssued(connection_id=cid))

    def _on_retire_path_cid(self, path_id: int, seq: int) -> None:
        cids = self._path_host_cids.get(path_id)
        if cids is None:
            return
        if seq > self._path_host_seq.get(path_id, -1):
            raise QuicProtocolViolation(
                "retiring a CID never issued",
                code=PROTOCOL_VIOLATION,
                frame_type=FrameType.PATH_RETIRE_CONNECTION_ID,
            )
        entry = cids.pop(seq, None)
        if entry is None:
            return
        self._cid_path.pop(entry[0], None)
        self._events.append(events.ConnectionIdRetired(connection_id=entry[0]))
        path = self._paths.get(path_id)
        if path is None or not path.abandoned:
            self._issue_path_cid(path_id)

    def _retire_path_host_cids(self, path_id: int) -> None:
        for cid, _token in self._path_host_cids.pop(path_id, {}).values():
            self._cid_path.pop(cid, None)
            self._events.append(events.ConnectionIdRetired(connection_id=cid))

    def _new_path(self, path_id: int, addr: Any, now: float, *, available: bool) -> PathState:
        space = QuicPacketSpace(is_application_data=True)
        recovery = QuicPacketRecovery(
            congestion_control_algorithm=self.settings.congestion_control,
            initial_rtt=self.settings.initial_rtt,
            max_datagram_size=self._max_datagram_size,
            peer_completed_address_validation=True,
            send_probe=lambda: None,
        )
        recovery.spaces = [space]
        recovery.handshake_confirmed = True
        recovery.max_ack_delay = self._recovery.max_ack_delay
        path = PathState(path_id, addr, space, recovery, validated=False, available=available)
        recovery._send_probe = lambda: setattr(path, "probe_pending", True)
        self._set_path_peer_cid(path)
        path.challenge_at = now
        path.idle_at = now + self.path_idle_timeout(addr)
        self._paths[path_id] = path
        return path

    def _set_path_peer_cid(self, path: PathState) -> None:
        cids = self._peer_cids.get(path.path_id)
        if cids:
            path.peer_cid_seq = min(cids)
            path.peer_cid = cids[path.peer_cid_seq]

    def _accept_path(self, path_id: int, addr: Any, now: float) -> PathState | None:
        """The peer (a client) opened ``path_id`` towards us; validate it before using it."""
        if (
            self._is_client
            or not self._multipath
            or path_id > self._local_max_path_id
            or path_id not in self._path_host_cids
            or len(self._paths) >= MAX_PATHS
        ):
            return None
        return self._new_path(path_id, addr, now, available=True)

    def _data_path(self) -> PathState | None:
        """The path that carries data: validated, not abandoned, AVAILABLE before BACKUP."""
        path0 = self._path0
        if len(self._paths) == 1:
            return None if path0.abandoned else path0
        if not self._handshake_confirmed:
            return path0
        best: PathState | None = None
        best_key: tuple[int, float, int] | None = None
        for path in self._paths.values():
            if path.abandoned or not path.validated or path.addr is None:
                continue
            if path is not path0 and not path.peer_cid:
                continue
            rtt = path.rtt
            key = (0 if path.available else 1, rtt if rtt is not None else 1e9, path.path_id)
            if best_key is None or key < best_key:
                best, best_key = path, key
        return best

    def open_path(self, addr: Any, now: float, *, available: bool = False) -> int | None:
        """Open a new path to ``addr`` (client only); returns its id, None if blocked.

        Blocked means no free path id (we send PATHS_BLOCKED) or no CID from the peer for the
        next one (PATH_CIDS_BLOCKED). The engine then retries by itself every
        PENDING_OPEN_RETRY (and as soon as MAX_PATH_ID or a CID arrives) for up to
        PENDING_OPEN_LIFETIME; a path opened later shows up as :class:`PathOpened`.
        """
        return self._open_path(addr, now, available=available, from_nat=False)

    def _open_path(self, addr: Any, now: float, *, available: bool, from_nat: bool) -> int | None:
        if not self._is_client:
            raise RuntimeError("only the client opens paths")
        if not self._multipath or not self._handshake_confirmed or self._closing:
            return None
        path_id = self._try_open(addr, now, available)
        if path_id is not None:
            self._pending_opens.pop(addr, None)
            return path_id
        if addr not in self._pending_opens and len(self._pending_opens) >= MAX_PENDING_OPENS:
            return None  # bounded: the NAT traversal round retries its hits anyway
        self._pending_opens[addr] = (available, from_nat, now + PENDING_OPEN_LIFETIME)
        if self._pending_open_at is None:
            self._pending_open_at = now + PENDING_OPEN_RETRY
        return None

    def _try_open(self, addr: Any, now: float, available: bool) -> int | None:
        """Open a path to ``addr`` now if a path id and a peer CID allow it."""
        for path in self._paths.values():
            if path.addr == addr and not path.abandoned:
                return path.path_id
        if len(self._paths) >= MAX_PATHS:
            return None
        path_id = self._next_path_id
        if path_id > self._remote_max_path_id:
            # The peer's limit: tell it once per limit value (noq does the same).
            if self._paths_blocked_sent != self._remote_max_path_id:
                self._paths_blocked_sent = self._remote_max_path_id
                self._queue_ctrl(PathsBlockedFrame(self._remote_max_path_id))
            return None
        if path_id > self._local_max_path_id:
            return None  # our own limit: it grows as paths close
        cids = self._peer_cids.get(path_id)
        if not cids:
            if path_id not in self._cids_blocked_sent:
                self._cids_blocked_sent.add(path_id)
                self._queue_ctrl(PathCidsBlockedFrame(path_id, 0))
            return None
        self._next_path_id += 1
        self._cids_blocked_sent.discard(path_id)
        self._new_path(path_id, addr, now, available=available)
        return path_id

    def _wake_pending_opens(self, now: float) -> None:
        if self._pending_opens:
            self._pending_open_at = now

    def _retry_pending_opens(self, now: float) -> None:
        """Retry blocked opens; drop those whose candidate is gone or that waited too long."""
        nat = self._nat
        remote = (
            set(nat.remote_addresses.values()) if isinstance(nat, NatTraversalClient) else set()
        )
        for addr, (available, from_nat, give_up_at) in list(self._pending_opens.items()):
            done = from_nat and _ip_of(addr) not in remote  # the candidate is gone
            done = done or now >= give_up_at or self._closing
            if done or self._try_open(addr, now, available) is not None:
                del self._pending_opens[addr]
        self._pending_open_at = now + PENDING_OPEN_RETRY if self._pending_opens else None

    def _still_blocked(self, frame: Frame) -> bool:
        if isinstance(frame, PathsBlockedFrame):
            return frame.max_path_id == self._remote_max_path_id and bool(self._pending_opens)
        if isinstance(frame, PathCidsBlockedFrame):
            return not self._peer_cids.get(frame.path_id) and bool(self._pending_opens)
        return True

    def close_path(self, path_id: int, now: float, error_code: int = 0) -> bool:
        """Abandon a path; refused (False) for the last usable one."""
        path = self._paths.get(path_id)
        if path is None or path.abandoned:
            return False
        others = [
            p for p in self._paths.values() if p is not path and not p.abandoned and p.validated
        ]
        if not others:
            return False
        self._abandon(path, now, error_code, send=True)
        return True

    def set_path_status(self, path_id: int, available: bool) -> None:
        """Set our status of a path (AVAILABLE: use it for data; BACKUP: keep it in reserve)."""
        path = self._paths.get(path_id)
        if path is None or path.abandoned or path.available == available:
            return
        path.available = available
        path.status_seq += 1
        if self._multipath:
            self._queue_ctrl(PathStatusFrame(path_id, path.status_seq, available))
        self._events.append(PathStatusChanged(path_id=path_id, available=available))

    def path_snapshots(self) -> list[PathSnapshot]:
        """The current paths, for ``Connection.paths()`` and the path manager."""
        data = self._data_path()
        return [
            PathSnapshot(
                path_id=p.path_id,
                remote=p.addr,
                validated=p.validated,
                abandoned=p.abandoned,
                available=p.available,
                carries_data=p is data,
                rtt=p.rtt,
                datagrams_sent=p.datagrams_sent,
                datagrams_recv=p.datagrams_recv,
                bytes_sent=p.bytes_sent,
                bytes_recv=p.bytes_recv,
            )
            for p in self._paths.values()
        ]

    def _queue_ctrl(self, frame: Frame) -> None:
        if len(self._ctrl) >= MAX_CTRL_FRAMES:
            self._ctrl.popleft()
        self._ctrl.append(frame)

    def _abandon(self, path: PathState, now: float, error_code: int, *, send: bool) -> None:
        if path.abandoned:
            return
        path.abandoned = True
        if send:
            self._queue_ctrl(PathAbandonFrame(path.path_id, error_code))
        # Resend what was in flight on it elsewhere (aioquic's discard fires no callbacks).
        space = path.space
        lost = list(space.sent_packets.values())
        path.recovery.discard_space(space)
        space.discarded = True
        space.ack_at = None
        for packet in lost:
            for handler, args in packet.delivery_handlers:
                handler(QuicDeliveryState.LOST, *args)
        path.challenge_at = None
        path.idle_at = None
        path.keepalive_at = None
        path.drain_at = now + 3 * self._recovery.get_probe_timeout()
        # Path ids are never reused: give the peer one more (noq does the same).
        if self._multipath:
            self._local_max_path_id += 1
            self._queue_ctrl(MaxPathIdFrame(self._local_max_path_id))
            self._issue_path_cids()
        self._events.append(
            PathAbandoned(path_id=path.path_id, remote=path.addr, error_code=error_code)
        )

    def _on_path_abandon(self, level: int, frame: PathAbandonFrame, now: float) -> None:
        path = self._paths.get(frame.path_id)
        if path is not None and not path.abandoned:
            self._abandon(path, now, frame.error_code, send=True)

    def _on_path_response(self, level: int, frame: PathResponseFrame, now: float) -> None:
        addr = self._rx_addr
        for path in self._paths.values():
            if path.challenge is not None and path.challenge == frame.data and path.addr == addr:
                path.challenge = None
                path.challenge_at = None
                if not path.validated and not path.abandoned:
                    path.validated = True
                    path.keepalive_at = now + self.path_keep_alive
                    self._events.append(PathOpened(path_id=path.path_id, remote=path.addr))
                return
        nat = self._nat
        ip = _ip_of(addr)
        if nat is None or ip is None:
            return
        hit = nat.on_path_response(frame.data, ip)
        if hit is not None and isinstance(nat, NatTraversalClient):
            self._open_path(addr, now, available=False, from_nat=True)

    def _on_path_new_cid(self, path_id: int) -> None:
        path = self._paths.get(path_id)
        if path is not None and not path.peer_cid:
            self._set_path_peer_cid(path)

    # -- n0 NAT traversal --------------------------------------------------------------------

    @property
    def nat_traversal_negotiated(self) -> bool:
        """Whether both sides offered n0 NAT traversal (and multipath)."""
        return self._nat is not None

    @property
    def hard_nat_negotiated(self) -> bool:
        """Whether both sides offered the birthday hard-NAT attempt (and NAT traversal)."""
        peer = self._peer_tp
        return self._hard_nat_offer and self._nat is not None and peer is not None and peer.hard_nat

    @property
    def original_destination_cid(self) -> bytes:
        """The client's first destination CID: the same bytes on both sides."""
        return self._odcid

    def nat_peer_addresses(self) -> list[Any]:
        """The peer's candidate addresses: the server's ADD_ADDRESSes (client) or the
        addresses the client reached out from (server), as engine addresses."""
        nat = self._nat
        if isinstance(nat, NatTraversalClient):
            return self.nat_remote_addresses()
        return [self.make_addr(host, port) for host, port in self._nat_reach_outs]

    def add_nat_address(self, host: str, port: int) -> None:
        """Add one of our candidate addresses (server: announced with ADD_ADDRESS)."""
        key = (host, port)
        if key in self._nat_local or len(self._nat_local) >= IROH_NAT_TRAVERSAL_ADDRESSES:
            return
        self._nat_local[key] = None
        if self._nat is not None:
            self._nat_add_local(host, port)

    def remove_nat_address(self, host: str, port: int) -> None:
        """Withdraw a candidate address."""
        if self._nat_local.pop((host, port), None) is None:
            return
        ip = _ip_of((host, port))
        nat = self._nat
        if ip is None or nat is None:
            return
        if isinstance(nat, NatTraversalServer):
            frame = nat.remove_local_address(ip)
            if frame is not None:
                self._queue_ctrl(frame)
        else:
            nat.remove_local_address(ip)

    def _nat_add_local(self, host: str, port: int) -> None:
        ip = _ip_of((host, port))
        nat = self._nat
        if ip is None or nat is None:
            return
        try:
            if isinstance(nat, NatTraversalServer):
                frame = nat.add_local_address(ip)
                if frame is not None:
                    self._queue_ctrl(frame)
            else:
                nat.add_local_address(ip)
        except NatTraversalError:
            pass  # the peer takes no more; the first ones are the best anyway

    def nat_remote_addresses(self) -> list[Any]:
        """Client: the server's advertised candidates (as engine addresses)."""
        nat = self._nat
        if not isinstance(nat, NatTraversalClient):
            return []
        return [self.make_addr(str(ip), port) for ip, port in nat.remote_addresses.values()]

    def initiate_nat_traversal_round(self, now: float) -> None:
        """Client: send REACH_OUT for our candidates and probe the server's.

        Raises :class:`NatTraversalError` (``NotEnoughAddresses`` without local candidates).
        """
        nat = self._nat
        if not isinstance(nat, NatTraversalClient):
            raise NatTraversalError("n0 NAT traversal not negotiated (or not the client)")
        for frame in nat.initiate_round(now):
            self._queue_ctrl(frame)

    def _on_add_address(self, level: int, frame: AddAddressFrame, now: float) -> None:
        if isinstance(self._nat, NatTraversalClient):
            self._nat_guard(lambda nat: nat.on_add_address(frame))

    def _on_remove_address(self, level: int, frame: RemoveAddressFrame, now: float) -> None:
        if isinstance(self._nat, NatTraversalClient):
            self._nat.on_remove_address(frame)

    def _on_reach_out(self, level: int, frame: ReachOutFrame, now: float) -> None:
        if isinstance(self._nat, NatTraversalServer):
            self._nat_guard(lambda nat: nat.on_reach_out(frame, now))
            key = (str(frame.ip), frame.port)
            self._nat_reach_outs.pop(key, None)
            self._nat_reach_outs[key] = None
            while len(self._nat_reach_outs) > IROH_NAT_TRAVERSAL_ADDRESSES:
                del self._nat_reach_outs[next(iter(self._nat_reach_outs))]

    def _nat_guard(self, call: Callable[[Any], Any]) -> None:
        try:
            call(self._nat)
        except TooManyAddresses:
            raise QuicProtocolViolation(
                "too many NAT traversal addresses", code=PROTOCOL_VIOLATION
            ) from None

    # -- sending ---------------------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """Build what is due now; returns ``[(datagram, addr)]`` (addr: where to send)."""
        if self._terminated or self._path0.addr is None or not self._peer_cid:
            return []
        out: list[tuple[bytes, Any]] = []
        if self._close_pending or self._closing:
            if self._close_pending:
                path = self._data_path() or self._path0
                if path.addr is not None:
                    self._send_on_path(path, now, out, closing=True)
                self._enter_close(now, draining=False)
            return out
        if len(self._paths) == 1 and not self._offpath and self._nat is None:
            # The one-path case: as cheap as before multipath.
            self._send_on_path(self._path0, now, out, carry_data=True)
            return out
        self._send_off_path(now, out)
        data_path = self._data_path()
        for path in list(self._paths.values()):
            if path.abandoned or path.addr is None:
                continue
            if path is not self._path0 and not path.peer_cid:
                continue
            self._send_on_path(path, now, out, carry_data=path is data_path)
        return out

    def _seal_for(self, path_id: int) -> _Seal | None:
        lv = self._levels[APP]
        if lv.seal is None or lv.pp is None:
            return None
        return lv.seal if path_id == 0 else _Seal(lv.pp, path_id)

    def _send_on_path(
        self,
        path: PathState,
        now: float,
        out: list[tuple[bytes, Any]],
        *,
        carry_data: bool = False,
        closing: bool = False,
    ) -> None:
        is0 = path is self._path0
        peer_cid = self._peer_cid if is0 else path.peer_cid
        general: QuicPacketBuilder | None = None
        builder: PacketSink
        if closing or (is0 and not self._handshake_confirmed):
            # Long headers (coalesced) or CONNECTION_CLOSE: aioquic's general builder.
            builder = general = QuicPacketBuilder(
                host_cid=self.host_cid,
                peer_cid=peer_cid,
                version=QUIC_V1,
                is_client=self._is_client,
                max_datagram_size=self._max_datagram_size,
                packet_number=path.pn,
            )
        else:
            # Only 1-RTT packets from here on: the lean writer.
            builder = ShortPacketWriter(
                peer_cid=peer_cid,
                max_datagram_size=self._max_datagram_size,
                packet_number=path.pn,
                largest_acked=path.space.largest_acked_packet,
                sent_time=now,
            )
        if general is not None and closing:
            self._write_close(general, path.path_id)
        else:
            rec = path.recovery
            builder.max_flight_bytes = rec.congestion_window - rec.bytes_in_flight
            if path.probe_pending and builder.max_flight_bytes < self._max_datagram_size:
                builder.max_flight_bytes = self._max_datagram_size
            if is0 and not self._address_validated:
                builder.max_total_bytes = max(0, 3 * self._bytes_received - self._bytes_sent)
            elif not path.validated and not self._is_client:
                # A server must not amplify towards an address the client has not proven.
                builder.max_total_bytes = path.amplification_budget()
            try:
                if general is not None:
                    self._write_handshake(general, INITIAL, now)
                    self._write_handshake(general, HANDSHAKE, now)
                if carry_data:
                    self._write_application(builder, now, path)
                else:
                    self._write_path_only(builder, now, path)
            except QuicPacketBuilderStop:
                pass
        datagrams, packets = builder.flush()
        path.pn = builder.packet_number
        eliciting = False
        on_packet_sent = path.recovery.on_packet_sent
        for packet in packets:
            packet.sent_time = now
            if general is None:
                space = path.space  # the 1-RTT writer: this path's application space
            elif is0:
                space = self._spaces[_level_of_packet(packet)]
            else:
                space = path.space
            if space.discarded:
                continue
            on_packet_sent(packet=packet, space=space)  # type: ignore[arg-type]
            if packet.is_ack_eliciting:
                eliciting = True
        if eliciting and not self._eliciting_since_receive:
            # RFC 9000 §10.1: sending restarts the idle timer once per receive.
            self._eliciting_since_receive = True
            self._idle_at = now + self._idle_timeout()
        if eliciting and path.keepalive_at is not None:
            path.keepalive_at = now + self.path_keep_alive
        addr = path.addr
        sent = 0
        for datagram in datagrams:
            sent += len(datagram)
            out.append((datagram, addr))
        if is0:
            self._bytes_sent += sent
        path.datagrams_sent += len(datagrams)
        path.bytes_sent += sent

    def _send_off_path(self, now: float, out: list[tuple[bytes, Any]]) -> None:
        """NAT probes and answers to them: one 1-RTT packet each, outside congestion control."""
        nat = self._nat
        if nat is not None:
            deadline = nat.next_deadline()
            if deadline is not None and now >= deadline:
                via = self._probe_path()
                for (ip, port), challenge in nat.poll_probes(now):
                    if via is not None:
                        target = self.make_addr(str(ip), port)
                        self._offpath.append((target, via.path_id, challenge, False))
        while self._offpath:
            addr, path_id, data, is_response = self._offpath.popleft()
            path = self._paths.get(path_id)
            if path is None or path.abandoned or not path.validated:
                path = self._probe_path()
            seal = self._seal_for(path.path_id) if path is not None else None
            if path is None or seal is None:
                continue
            builder = QuicPacketBuilder(
                host_cid=self.host_cid,
                peer_cid=self._peer_cid if path is self._path0 else path.peer_cid,
                version=QUIC_V1,
                is_client=self._is_client,
                max_datagram_size=self._max_datagram_size,
                packet_number=path.pn,
            )
            try:
                builder.start_packet(QuicPacketType.ONE_RTT, seal)  # type: ignore[arg-type]
                kind = FrameType.PATH_RESPONSE if is_response else FrameType.PATH_CHALLENGE
                builder.start_frame(kind, capacity=9).push_bytes(data)
                reflexive = _ip_of(addr) if is_response else None
                if (
                    reflexive is not None
                    and isinstance(nat, NatTraversalClient)
                    and self._wants_path_to(reflexive)
                ):
                    # Client: challenge the probe's source too, so an answer from there opens
                    # a path (wire doc §3.4 step 5): its unadvertised (peer-reflexive) source,
                    # or an advertised one we have no live path to. The latter matters when
                    # the server's probes come late (REACH_OUT queued behind bulk data on the
                    # relay after we moved): our own probes of that round are long over, and
                    # without this the direct path would wait for the next round.
                    bundled = nat.reflexive_challenge(reflexive)
                    builder.start_frame(FrameType.PATH_CHALLENGE, capacity=9).push_bytes(bundled)
                if is_response:
                    _pad(builder)  # off-path responses are padded (noq does; NATs see size)
            except QuicPacketBuilderStop:
                continue
            datagrams, _packets = builder.flush()
            # Not registered with recovery: probes are neither in flight nor retransmitted.
            path.pn = builder.packet_number
            for datagram in datagrams:
                out.append((datagram, addr))

    def _wants_path_to(self, ip: Addr) -> bool:
        """Client: whether a probe from ``ip`` should be challenged back (see above)."""
        nat = self._nat
        if not isinstance(nat, NatTraversalClient) or ip not in nat.remote_addresses.values():
            return True
        # Only while no direct path is alive: with one, the next round is soon enough, and
        # a redundant path the path manager closed is not reopened by a late probe.
        return not any(
            not p.abandoned and p.validated and _ip_of(p.addr) is not None
            for p in self._paths.values()
        )

    def _probe_path(self) -> PathState | None:
        """The validated path whose CID and PN space carry NAT probes (path 0 if possible)."""
        path0 = self._path0
        if not path0.abandoned and self._peer_cid:
            return path0
        return self._data_path()

    def _write_close(self, builder: QuicPacketBuilder, path_id: int = 0) -> None:
        event = self._close_event
        assert event is not None
        levels = [APP] if self._handshake_confirmed else [INITIAL, HANDSHAKE, APP]
        for level in levels:
            seal = self._levels[level].seal if level != APP else self._seal_for(path_id)
            if seal is None:
                continue
            code, frame_type, reason = event.error_code, event.frame_type, event.reason_phrase
            if level != APP and frame_type is None:
                # An application close must not leak before 1-RTT (RFC 9000 §10.2.3).
                code, frame_type, reason = APPLICATION_ERROR, 0, ""
            if level == APP and not self._handshake_complete and frame_type is None:
                code, frame_type, reason = APPLICATION_ERROR, 0, ""
            reason_bytes = reason.encode("utf-8")[:512]
            try:
                builder.start_packet(_PACKET_TYPE[level], seal)  # type: ignore[arg-type]
                buf = builder.start_frame(
                    FrameType.CONNECTION_CLOSE
                    if frame_type is not None
                    else FrameType.APPLICATION_CLOSE,
                    capacity=32 + len(reason_bytes),
                )
            except QuicPacketBuilderStop:
                return
            buf.push_uint_var(code)
            if frame_type is not None:
                buf.push_uint_var(frame_type)
            buf.push_uint_var(len(reason_bytes))
            buf.push_bytes(reason_bytes)

    def _write_ack(
        self, builder: PacketSink, level: int, now: float, path: PathState | None = None
    ) -> None:
        path = path or self._path0
        space = path.space if level == APP else self._spaces[level]
        delay = 0.0
        if space.largest_received_time is not None:
            delay = max(0.0, now - space.largest_received_time)
        encoded = int(delay * 1_000_000) >> ACK_DELAY_EXPONENT
        path_ack = level == APP and self._multipath
        buf = builder.start_frame(
            FrameType.ACK,
            capacity=ACK_FRAME_CAPACITY + (6 if path_ack else 0),
            handler=_on_ack_delivery,
            handler_args=(space, space.largest_received_packet),
        )
        if path_ack:
            # Written like an ACK (not ack-eliciting, not in flight), then retyped as
            # PATH_ACK for path 0 (design notes §1.3): both types are one-byte varints.
            buf.seek(buf.tell() - 1)
            buf.push_uint_var(FrameType.PATH_ACK)
            buf.push_uint_var(path.path_id)
        push_ack_frame(buf, space.ack_queue, encoded, builder.remaining_buffer_space)
        space.ack_at = None
        if level == APP:
            path.unacked_eliciting = 0
            self.sent_ack_types.add(FrameType.PATH_ACK if path_ack else FrameType.ACK)

    def _write_handshake(self, builder: QuicPacketBuilder, level: int, now: float) -> None:
        lv = self._levels[level]
        space = self._spaces[level]
        if lv.seal is None or space.discarded:
            return
        while True:
            builder.start_packet(_PACKET_TYPE[level], lv.seal)  # type: ignore[arg-type]
            if space.ack_at is not None:
                self._write_ack(builder, level, now)
            sender = lv.crypto.sender
            if not sender.buffer_is_empty:
                self._write_crypto(builder, lv)
                self._path0.probe_pending = False
            if (
                self._path0.probe_pending
                and not self._handshake_complete
                and (level == HANDSHAKE or self._levels[HANDSHAKE].seal is None)
            ):
                builder.start_frame(FrameType.PING)
                self._path0.probe_pending = False
            if builder.packet_is_empty:
                break

    def _write_crypto(self, builder: PacketSink, lv: _Level) -> None:
        sender = lv.crypto.sender
        frame = sender.get_frame(builder.remaining_flight_space - 18)
        if frame is None:
            return
        buf = builder.start_frame(
            FrameType.CRYPTO,
            capacity=18,
            handler=sender.on_data_delivery,
            handler_args=(frame.offset, frame.offset + len(frame.data), False),
        )
        buf.push_uint_var(frame.offset)
        buf.push_uint16(len(frame.data) | 0x4000)
        buf.push_bytes(frame.data)

    def _write_application(self, builder: PacketSink, now: float, path: PathState) -> None:
        lv = self._levels[APP]
        seal = self._seal_for(path.path_id)
        if seal is None:
            return
        space = path.space
        streams = self.streams
        budget = MAX_PACKETS_PER_POLL
        self._pacing_at = None
        while True:
            if budget == 0:
                # Let the driver read (and process ACKs) before the next burst.
                self._pacing_at = now
                return
            budget -= 1
            builder.start_packet(QuicPacketType.ONE_RTT, seal)  # type: ignore[arg-type]
            if space.ack_at is not None and (space.ack_at <= now or streams.has_pending):
                self._write_ack(builder, APP, now, path)
            if path.path_id or path.challenge_at is not None:
                self._write_path_frames(builder, now, path)
            if self._handshake_complete:
                if self._handshake_done_pending:
                    builder.start_frame(
                        FrameType.HANDSHAKE_DONE, handler=self._on_handshake_done_delivery
                    )
                    self._handshake_done_pending = False
                while self._path_responses:
                    buf = builder.start_frame(FrameType.PATH_RESPONSE, capacity=9)
                    buf.push_bytes(self._path_responses.popleft())
                while self._cids_to_announce:
                    self._write_new_cid(builder, *self._cids_to_announce[0])
                    self._cids_to_announce.pop(0)
                while self._ctrl:
                    _put_frame(builder, self._ctrl[0], self._on_ctrl_delivery)
                    self._ctrl.popleft()
                while self._cids_to_retire:
                    path_id, seq = self._cids_to_retire[0]
                    if self._multipath:
                        buf = builder.start_frame(
                            FrameType.PATH_RETIRE_CONNECTION_ID,
                            capacity=16,
                            handler=self._on_retire_delivery,
                            handler_args=(path_id, seq),
                        )
                        buf.push_uint_var(path_id or 0)
                    else:
                        buf = builder.start_frame(
                            FrameType.RETIRE_CONNECTION_ID,
                            capacity=9,
                            handler=self._on_retire_delivery,
                            handler_args=(path_id, seq),
                        )
                    buf.push_uint_var(seq)
                    self._cids_to_retire.pop(0)
            if self._pings:
                builder.start_frame(
                    FrameType.PING,
                    handler=self._on_ping_delivery,
                    handler_args=(tuple(self._pings),),
                )
                self._pings.clear()
            if path.probe_pending or path.ping_pending:
                builder.start_frame(FrameType.PING)
                path.probe_pending = path.ping_pending = False
            if not lv.crypto.sender.buffer_is_empty:
                self._write_crypto(builder, lv)
            while self._datagrams:
                data = self._datagrams[0]
                buf = builder.start_frame(FrameType.DATAGRAM_WITH_LENGTH, capacity=9 + len(data))
                buf.push_uint_var(len(data))
                buf.push_bytes(data)
                self._datagrams.popleft()
            if self._handshake_complete and streams.has_pending:
                streams.write_frames(builder)
            if builder.packet_is_empty:
                return
            if self._only_stream_data_left(path, now):
                break
        # Bulk: nothing but stream data is left, and nothing else can be queued while we
        # write (ACKs, control frames and probes are queued on receive and on timers), so the
        # remaining packets skip the checks above.
        while streams.has_pending:
            if budget == 0:
                self._pacing_at = now
                return
            budget -= 1
            builder.start_packet(QuicPacketType.ONE_RTT, seal)  # type: ignore[arg-type]
            streams.write_frames(builder)
            if builder.packet_is_empty:
                return

    def _only_stream_data_left(self, path: PathState, now: float) -> bool:
        """Whether _write_application's next packet could hold nothing but stream frames."""
        return (
            self._handshake_complete
            and path.space.ack_at is None
            and not path.responses
            and (path.challenge_at is None or now < path.challenge_at or path.validated)
            and not self._handshake_done_pending
            and not self._path_responses
            and not self._cids_to_announce
            and not self._ctrl
            and not self._cids_to_retire
            and not self._pings
            and not path.probe_pending
            and not path.ping_pending
            and self._levels[APP].crypto.sender.buffer_is_empty
            and not self._datagrams
        )

    def _write_path_frames(self, builder: PacketSink, now: float, path: PathState) -> None:
        """This path's own PATH_RESPONSEs and (due) PATH_CHALLENGE; a challenge pads."""
        while path.responses:
            builder.start_frame(FrameType.PATH_RESPONSE, capacity=9).push_bytes(path.responses[0])
            path.responses.pop(0)
        if path.challenge_at is not None and now >= path.challenge_at and not path.validated:
            if path.challenge is None:
                path.challenge = self._random(8)
            builder.start_frame(FrameType.PATH_CHALLENGE, capacity=9).push_bytes(path.challenge)
            path.challenge_tries += 1
            interval = max(MIN_CHALLENGE_INTERVAL, path.recovery.get_probe_timeout())
            path.challenge_at = now + interval
            _pad(builder)

    def _write_path_only(self, builder: PacketSink, now: float, path: PathState) -> None:
        """A path that carries no data: its ACKs, validation and keep-alive only."""
        seal = self._seal_for(path.path_id)
        if seal is None or not self._handshake_complete:
            return
        space = path.space
        challenge_due = path.challenge_at is not None and now >= path.challenge_at
        ping = path.probe_pending or path.ping_pending
        ack_due = space.ack_at is not None and space.ack_at <= now
        if not (ack_due or challenge_due or ping or path.responses):
            return
        builder.start_packet(QuicPacketType.ONE_RTT, seal)  # type: ignore[arg-type]
        if space.ack_at is not None:
            self._write_ack(builder, APP, now, path)
        self._write_path_frames(builder, now, path)
        if ping:
            builder.start_frame(FrameType.PING)
            path.probe_pending = path.ping_pending = False

    def _write_new_cid(self, builder: PacketSink, path_id: int, seq: int) -> None:
        entry = (
            self._host_cids.get(seq)
            if path_id == 0
            else self._path_host_cids.get(path_id, {}).get(seq)
        )
        if entry is None:
            return
        cid, token = entry
        if self._multipath:
            buf = builder.start_frame(
                FrameType.PATH_NEW_CONNECTION_ID,
                capacity=52,
                handler=self._on_new_cid_delivery,
                handler_args=(path_id, seq),
            )
            buf.push_uint_var(path_id)
        else:
            buf = builder.start_frame(
                FrameType.NEW_CONNECTION_ID,
                capacity=44,
                handler=self._on_new_cid_delivery,
                handler_args=(path_id, seq),
            )
        buf.push_uint_var(seq)
        buf.push_uint_var(0)  # retire_prior_to
        buf.push_uint8(len(cid))
        buf.push_bytes(cid)
        buf.push_bytes(token)

    # -- delivery callbacks ----------------------------------------------------------------

    def _on_handshake_done_delivery(self, delivery: QuicDeliveryState) -> None:
        if delivery != QuicDeliveryState.ACKED and not self._closing:
            self._handshake_done_pending = True

    def _on_new_cid_delivery(self, delivery: QuicDeliveryState, path_id: int, seq: int) -> None:
        if delivery == QuicDeliveryState.ACKED:
            return
        live = self._host_cids if path_id == 0 else self._path_host_cids.get(path_id, {})
        if seq in live:
            self._cids_to_announce.append((path_id, seq))

    def _on_ctrl_delivery(self, delivery: QuicDeliveryState, frame: Frame) -> None:
        if delivery != QuicDeliveryState.ACKED and not self._closing and self._still_blocked(frame):
            self._queue_ctrl(frame)

    def _on_retire_delivery(
        self, delivery: QuicDeliveryState, path_id: int | None, seq: int
    ) -> None:
        if delivery != QuicDeliveryState.ACKED:
            self._cids_to_retire.append((path_id, seq))

    def _on_ping_delivery(self, delivery: QuicDeliveryState, uids: tuple[int, ...]) -> None:
        if delivery == QuicDeliveryState.ACKED:
            for uid in uids:
                self._events.append(events.PingAcknowledged(uid=uid))
        else:
            self._pings.extend(uids)


def _tuple_addr(host: str, port: int) -> tuple[str, int]:
    return (host, port)


def _ip_of(addr: Any) -> Addr | None:
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


def _has_close_frame(payload: bytes, packet_type: int, is_client: bool, multipath: bool) -> bool:
    """True if ``payload`` holds a CONNECTION_CLOSE (frames before it must decode)."""
    buf = Buffer(data=payload)
    end = len(payload)
    role: Literal["client", "server"] = "client" if is_client else "server"
    try:
        while buf.tell() < end:
            frame_type = pull_frame_type(buf)
            if frame_type in (FrameType.CONNECTION_CLOSE, FrameType.APPLICATION_CLOSE):
                return True
            pull_frame(buf, frame_type, packet_type, role=role, multipath=multipath, qnt=True)
    except (QuicProtocolViolation, ValueError):
        return False
    return False


def _pad(builder: PacketSink) -> None:
    """Fill the rest of the packet with PADDING (path validation wants 1200-byte datagrams)."""
    room = min(builder.remaining_buffer_space, builder.remaining_flight_space)
    if room > 1:
        builder.start_frame(FrameType.PADDING, capacity=room).push_bytes(bytes(room - 1))


def _put_frame(
    builder: PacketSink, frame: Frame, handler: Callable[..., None] | None = None
) -> None:
    """Write any codec frame through the builder, with a delivery handler getting it back."""
    size = frame_size(frame)
    frame_type = _frame_type_of(frame)
    buf = builder.start_frame(
        frame_type,
        capacity=size - size_uint_var(frame_type),
        handler=handler,
        handler_args=(frame,),
    )
    buf.seek(buf.tell() - size_uint_var(frame_type))
    push_frame(buf, frame)


def _frame_type_of(frame: Frame) -> int:
    if isinstance(frame, PathStatusFrame):
        return FrameType.PATH_STATUS_AVAILABLE if frame.available else FrameType.PATH_STATUS_BACKUP
    if isinstance(frame, PathAbandonFrame):
        return FrameType.PATH_ABANDON
    if isinstance(frame, MaxPathIdFrame):
        return FrameType.MAX_PATH_ID
    if isinstance(frame, PathsBlockedFrame):
        return FrameType.PATHS_BLOCKED
    if isinstance(frame, PathCidsBlockedFrame):
        return FrameType.PATH_CIDS_BLOCKED
    if isinstance(frame, RemoveAddressFrame):
        return FrameType.REMOVE_ADDRESS
    ipv6 = ip_address(frame.ip).version == 6  # type: ignore[union-attr]
    if isinstance(frame, AddAddressFrame):
        return FrameType.ADD_IPV6_ADDRESS if ipv6 else FrameType.ADD_IPV4_ADDRESS
    if isinstance(frame, ReachOutFrame):
        return FrameType.REACH_OUT_IPV6 if ipv6 else FrameType.REACH_OUT_IPV4
    raise ValueError(f"no control frame type for {frame!r}")


def _on_ack_delivery(delivery: QuicDeliveryState, space: QuicPacketSpace, largest: int) -> None:
    if delivery == QuicDeliveryState.ACKED and largest >= 0:
        # The peer saw these ranges: stop repeating them.
        space.ack_queue.subtract(0, largest + 1)


def _level_of_packet(packet: QuicSentPacket | SentPacket) -> int:
    epoch = packet.epoch
    if epoch is tls.Epoch.ONE_RTT:
        return APP
    return INITIAL if epoch is tls.Epoch.INITIAL else HANDSHAKE


_HANDLERS: Final[dict[type, Callable[[IrohConnection, int, Any, float], None]]] = {
    PingFrame: IrohConnection._ignore,
    CryptoFrame: IrohConnection._on_crypto,
    ResetStreamFrame: lambda c, lvl, f, now: c.streams.on_reset_stream(f),
    StopSendingFrame: lambda c, lvl, f, now: c.streams.on_stop_sending(f),
    MaxDataFrame: lambda c, lvl, f, now: c.streams.on_max_data(f),
    MaxStreamDataFrame: lambda c, lvl, f, now: c.streams.on_max_stream_data(f),
    MaxStreamsFrame: lambda c, lvl, f, now: c.streams.on_max_streams(f),
    DataBlockedFrame: IrohConnection._ignore,
    StreamDataBlockedFrame: IrohConnection._ignore,
    StreamsBlockedFrame: IrohConnection._ignore,
    NewTokenFrame: IrohConnection._ignore,
    NewConnectionIdFrame: IrohConnection._on_new_cid,
    RetireConnectionIdFrame: IrohConnection._on_retire_cid,
    PathChallengeFrame: IrohConnection._on_path_challenge,
    PathResponseFrame: IrohConnection._on_path_response,
    ConnectionCloseFrame: IrohConnection._on_close_frame,
    HandshakeDoneFrame: IrohConnection._on_handshake_done,
    DatagramFrame: IrohConnection._on_datagram,
    AckFrequencyFrame: IrohConnection._ignore,
    ImmediateAckFrame: IrohConnection._on_immediate_ack,
    PathAbandonFrame: IrohConnection._on_path_abandon,
    AddAddressFrame: IrohConnection._on_add_address,
    RemoveAddressFrame: IrohConnection._on_remove_address,
    ReachOutFrame: IrohConnection._on_reach_out,
    PathStatusFrame: IrohConnection._ignore,
    MaxPathIdFrame: IrohConnection._on_max_path_id,
    PathsBlockedFrame: IrohConnection._on_paths_blocked,
    PathCidsBlockedFrame: IrohConnection._on_path_cids_blocked,
}


def new_connection(**kwargs: Any) -> IrohConnection | IrohQuicConnection:
    """Build the engine chosen by ``$AIOIROH_ENGINE`` (``native`` default, or ``aioquic``).

    Takes the :class:`IrohQuicConnection` constructor's keyword arguments.
    """
    if os.environ.get(ENGINE_ENV, "native") == "aioquic":
        return IrohQuicConnection(**kwargs)
    return IrohConnection(**kwargs)
