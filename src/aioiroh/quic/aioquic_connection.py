"""The single-path QUIC engine: aioquic's ``QuicConnection`` with iroh's TLS and settings.

This is the engine behind the sans-I/O seam described in :mod:`aioiroh.quic.engine`. It reuses
aioquic's whole connection state machine and changes only what iroh needs: raw-public-key TLS
(:mod:`aioiroh.tls.context`), 8-byte connection IDs, iroh's idle timeout and flow-control
windows, datagrams enabled. Peer transport parameters that aioquic does not know (multipath,
n0 NAT traversal, GREASE) are skipped by aioquic's parser, which is what a peer that does not
negotiate those extensions must do (wire doc §3.6).

Private aioquic state read here (pinned ``aioquic>=1.7.2,<1.8``): ``_state``, ``_loss`` RTT
fields, ``_streams[...].sender._buffer``, ``_network_paths``. ``tests/tls`` checks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection, QuicConnectionState

from ..base.key import PublicKey, SecretKey
from ..tls.context import RawPublicKeyCertificate, RpkContext, install_raw_public_keys

__all__ = ["IrohQuicConnection", "QuicSettings"]

# iroh's connection IDs are 8 bytes (wire doc §3.1); the endpoint's demux relies on it.
CID_LENGTH: Final = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class QuicSettings:
    """Transport knobs; defaults follow iroh (wire doc §3.2) unless noted."""

    idle_timeout: float = 30.0
    """Connection idle timeout in seconds (iroh: 30 s)."""
    keep_alive_interval: float = 5.0
    """Send a PING when nothing was sent for this long (iroh's HEARTBEAT_INTERVAL)."""
    initial_rtt: float = 0.333
    """RTT assumed before the first sample (iroh: 333 ms)."""
    max_datagram_size: int = 1452
    """UDP payload we send: 1500 minus IPv6 and UDP headers (iroh allows up to 1472)."""
    max_data: int = 16 * 1024 * 1024
    """Connection flow-control window we grant (ours; iroh grants 2^62-1)."""
    max_stream_data: int = 4 * 1024 * 1024
    """Per-stream window we grant (ours; iroh: 1.25 MB)."""
    max_datagram_frame_size: int = 65535
    congestion_control: str = "cubic"


class IrohQuicConnection(QuicConnection):
    """aioquic's connection speaking iroh's TLS profile; see the module docstring."""

    def __init__(
        self,
        *,
        secret_key: SecretKey,
        is_client: bool,
        alpns: list[bytes],
        expected_peer: PublicKey | None = None,
        original_destination_connection_id: bytes | None = None,
        settings: QuicSettings | None = None,
    ) -> None:
        settings = settings or QuicSettings()
        self.settings = settings
        self._secret_key = secret_key
        self._expected_peer = expected_peer
        configuration = QuicConfiguration(
            is_client=is_client,
            alpn_protocols=[alpn.decode("ascii") for alpn in alpns],
            connection_id_length=CID_LENGTH,
            idle_timeout=settings.idle_timeout,
            initial_rtt=settings.initial_rtt,
            max_datagram_size=settings.max_datagram_size,
            max_data=settings.max_data,
            max_stream_data=settings.max_stream_data,
            max_datagram_frame_size=settings.max_datagram_frame_size,
            congestion_control_algorithm=settings.congestion_control,
        )
        # aioquic insists on a server certificate; ours is the raw key (replaced in _initialize).
        configuration.certificate = RawPublicKeyCertificate(secret_key.public())
        configuration.private_key = secret_key.private_key
        super().__init__(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
        )

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        install_raw_public_keys(
            self.tls,
            secret_key=self._secret_key,
            is_client=self._is_client,
            expected_peer=self._expected_peer,
        )

    # -- read-only views the endpoint needs --------------------------------------------------

    @property
    def _rpk(self) -> RpkContext | None:
        tls = getattr(self, "tls", None)
        return tls if isinstance(tls, RpkContext) else None

    @property
    def peer_id(self) -> PublicKey | None:
        """The peer's authenticated key, once its CertificateVerify checked out."""
        rpk = self._rpk
        return rpk.peer_id if rpk is not None else None

    @property
    def auth_failure(self) -> str | None:
        """Why we refused the peer's key, if we did."""
        rpk = self._rpk
        return rpk.auth_failure if rpk is not None else None

    @property
    def alpn(self) -> bytes | None:
        rpk = self._rpk
        if rpk is None or rpk.alpn_negotiated is None:
            return None
        return rpk.alpn_negotiated.encode("ascii")

    @property
    def is_client(self) -> bool:
        return self._is_client

    @property
    def is_terminated(self) -> bool:
        return self._state == QuicConnectionState.TERMINATED

    @property
    def is_closing(self) -> bool:
        return self._state in (
            QuicConnectionState.CLOSING,
            QuicConnectionState.DRAINING,
            QuicConnectionState.TERMINATED,
        )

    @property
    def close_event(self) -> Any:
        """The ConnectionTerminated describing a close in progress (local or remote)."""
        return self._close_event

    @property
    def smoothed_rtt(self) -> float | None:
        loss: Any = self._loss
        return loss._rtt_smoothed if loss._rtt_initialized else None

    @property
    def remote_address(self) -> Any:
        """The address aioquic currently sends to (its active network path)."""
        return self._network_paths[0].addr if self._network_paths else None

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes written to a stream and not yet acknowledged (for write back-pressure)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        return len(stream.sender._buffer)

    def stream_exists(self, stream_id: int) -> bool:
        return stream_id in self._streams

    # The QuicEngine stream calls, mapped onto aioquic (which slides its windows on arrival
    # and allocates ids without waiting for credit).

    def open_stream(self, is_unidirectional: bool = False) -> int | None:
        return self.get_next_available_stream_id(is_unidirectional)

    def send_capacity(self, stream_id: int) -> int:
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        return max(0, stream.max_stream_data_remote - stream.sender._buffer_stop)

    def stream_consumed(self, stream_id: int, n: int, now: float) -> None:
        pass

    def stream_released(self, stream_id: int) -> None:
        pass
