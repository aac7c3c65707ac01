"""QUIC transport parameters as iroh sends them (wire doc §3.2), including the extension ids.

aioquic's codec handles the RFC 9000 / RFC 9221 parameters; this module adds the ones it does not
know with its own id/length loop over the same bytes:

- ``initial_max_path_id`` (0x3e, varint) for multipath;
- n0 NAT traversal (0x3d7f91120401), whose value is **one raw byte** 1..255, not a varint;
- the QAD role (0x9f81a176, varint 0/1/2);
- ``min_ack_delay`` (0xff04de1b, varint microseconds) from the ack-frequency draft;
- aioiroh's own ``hard_nat`` flag (:data:`HARD_NAT_ID`, empty value): "I take part in the
  birthday hard-NAT attempt" (socket/hard_nat.py). Rust iroh skips it as an unknown id.

GREASE parameters (id 31·N+27) and other unknown ids are skipped on decode; :meth:`encode` can
add one GREASE parameter whose id and value the caller draws (this module takes no randomness).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from aioiroh.quic._aioquic import (
    UINT_VAR_MAX,
    Buffer,
    QuicTransportParameters,
    encode_uint_var,
    pull_quic_transport_parameters,
    push_quic_transport_parameters,
)
from aioiroh.quic.frames import QuicProtocolViolation

__all__ = [
    "ADDRESS_DISCOVERY_ROLE_ID",
    "HARD_NAT_ID",
    "INITIAL_MAX_PATH_ID_ID",
    "MIN_ACK_DELAY_ID",
    "NAT_TRAVERSAL_ID",
    "TRANSPORT_PARAMETER_ERROR",
    "IrohTransportParameters",
    "encode_connection_id_parameters",
    "grease_id",
    "iroh_default_parameters",
]

TRANSPORT_PARAMETER_ERROR: Final = 0x08

INITIAL_MAX_PATH_ID_ID: Final = 0x3E
NAT_TRAVERSAL_ID: Final = 0x3D7F91120401
ADDRESS_DISCOVERY_ROLE_ID: Final = 0x9F81A176
MIN_ACK_DELAY_ID: Final = 0xFF04DE1B
# Ours, not iroh's: a random 48-bit id far from the registered and draft ranges.
HARD_NAT_ID: Final = 0x61696F4E4154
_EXTENSION_IDS: Final = frozenset(
    {
        INITIAL_MAX_PATH_ID_ID,
        NAT_TRAVERSAL_ID,
        ADDRESS_DISCOVERY_ROLE_ID,
        MIN_ACK_DELAY_ID,
        HARD_NAT_ID,
    }
)

# Limits the peer's values must respect (RFC 9000 §18.2).
MIN_MAX_UDP_PAYLOAD_SIZE: Final = 1200
MAX_ACK_DELAY_EXPONENT: Final = 20
MAX_MAX_ACK_DELAY_MS: Final = 2**14 - 1
MIN_ACTIVE_CONNECTION_ID_LIMIT: Final = 2
MAX_PATH_ID: Final = 2**32 - 1
# QAD roles (wire doc §3.5): 0 = send reports only, 1 = receive only, 2 = both.
QAD_ROLES: Final = (0, 1, 2)
# The encoded TP block lives in one TLS extension (u16 length).
MAX_ENCODED_SIZE: Final = 65535

# iroh's values (wire doc §3.2).
IROH_MAX_IDLE_TIMEOUT_MS: Final = 30_000
IROH_MAX_UDP_PAYLOAD_SIZE: Final = 1472
IROH_STREAM_WINDOW: Final = 1_250_000
IROH_MAX_STREAMS: Final = 100
IROH_ACTIVE_CID_LIMIT: Final = 5
IROH_MAX_DATAGRAM_FRAME_SIZE: Final = 65535
IROH_INITIAL_MAX_PATH_ID: Final = 7
IROH_NAT_TRAVERSAL_ADDRESSES: Final = 32
IROH_MIN_ACK_DELAY_US: Final = 1000


def _error(reason: str) -> QuicProtocolViolation:
    return QuicProtocolViolation(reason, code=TRANSPORT_PARAMETER_ERROR)


def grease_id(n: int) -> int:
    """The ``n``-th reserved (GREASE) transport parameter id, 31·n + 27 (RFC 9000 §18.1)."""
    return 31 * n + 27


@dataclass(slots=True)
class IrohTransportParameters:
    """The full transport parameter set: RFC 9000 ones in ``quic`` plus iroh's extensions."""

    quic: QuicTransportParameters = field(default_factory=QuicTransportParameters)
    """Standard parameters (aioquic's dataclass)."""
    initial_max_path_id: int | None = None
    """Multipath: highest path id the peer may use; None = multipath not offered."""
    nat_traversal: int | None = None
    """n0 NAT traversal: max addresses the peer may advertise (1..255); None = not offered."""
    address_discovery_role: int | None = None
    """QAD role (0 send-only, 1 receive-only, 2 both); None = not offered."""
    min_ack_delay: int | None = None
    """Ack-frequency ``min_ack_delay`` in microseconds."""
    hard_nat: bool = False
    """aioiroh extension: the sender joins the birthday hard-NAT attempt."""

    def encode(self, *, grease: tuple[int, bytes] | None = None) -> bytes:
        """Encode all parameters; ``grease=(n, value)`` appends GREASE id 31·n+27 (0-15 bytes)."""
        buf = Buffer(capacity=MAX_ENCODED_SIZE)
        push_quic_transport_parameters(buf, self.quic)
        out = [buf.data]
        if self.initial_max_path_id is not None:
            out.append(_varint_param(INITIAL_MAX_PATH_ID_ID, self.initial_max_path_id))
        if self.nat_traversal is not None:
            if not 1 <= self.nat_traversal <= 255:
                raise ValueError("nat_traversal must be 1..255")
            # One raw byte, not a varint (noq's encoding; wire doc §3.2 quirk).
            out.append(_raw_param(NAT_TRAVERSAL_ID, bytes([self.nat_traversal])))
        if self.address_discovery_role is not None:
            out.append(_varint_param(ADDRESS_DISCOVERY_ROLE_ID, self.address_discovery_role))
        if self.min_ack_delay is not None:
            out.append(_varint_param(MIN_ACK_DELAY_ID, self.min_ack_delay))
        if self.hard_nat:
            out.append(_raw_param(HARD_NAT_ID, b""))
        if grease is not None:
            n, value = grease
            if len(value) > 15:
                raise ValueError("GREASE value longer than 15 bytes")
            out.append(_raw_param(grease_id(n), value))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> IrohTransportParameters:
        """Decode a peer's parameters; anything malformed → TRANSPORT_PARAMETER_ERROR."""
        values: dict[int, bytes] = {}
        buf = Buffer(data=bytes(data))
        try:
            while not buf.eof():
                param_id = buf.pull_uint_var()
                value = buf.pull_bytes(buf.pull_uint_var())
                if param_id in values:
                    raise _error(f"duplicate transport parameter {param_id:#x}")
                values[param_id] = value
            quic = pull_quic_transport_parameters(Buffer(data=bytes(data)))
        except QuicProtocolViolation:
            raise
        except ValueError as exc:
            raise _error(f"malformed transport parameters: {exc}") from None
        params = cls(quic=quic)
        _check_standard(quic)
        if INITIAL_MAX_PATH_ID_ID in values:
            params.initial_max_path_id = _varint_value(values[INITIAL_MAX_PATH_ID_ID], "path id")
            if params.initial_max_path_id > MAX_PATH_ID:
                raise _error("initial_max_path_id above 2^32-1")
        if NAT_TRAVERSAL_ID in values:
            raw = values[NAT_TRAVERSAL_ID]
            if len(raw) != 1 or raw[0] == 0:
                raise _error("n0 NAT traversal parameter must be one non-zero byte")
            params.nat_traversal = raw[0]
        if ADDRESS_DISCOVERY_ROLE_ID in values:
            role = _varint_value(values[ADDRESS_DISCOVERY_ROLE_ID], "QAD role")
            if role not in QAD_ROLES:
                raise _error(f"unknown QAD role {role}")
            params.address_discovery_role = role
        if MIN_ACK_DELAY_ID in values:
            params.min_ack_delay = _varint_value(values[MIN_ACK_DELAY_ID], "min_ack_delay")
            max_ack_delay_ms = 25 if quic.max_ack_delay is None else quic.max_ack_delay
            if params.min_ack_delay > max_ack_delay_ms * 1000:
                raise _error("min_ack_delay above max_ack_delay")
        if HARD_NAT_ID in values:
            if values[HARD_NAT_ID]:
                raise _error("hard_nat parameter must be empty")
            params.hard_nat = True
        return params


# RFC 9000 §18.2 ids of the parameters that differ per connection.
_ORIGINAL_DESTINATION_CONNECTION_ID: Final = 0x00
_STATELESS_RESET_TOKEN: Final = 0x02
_RETRY_SOURCE_CONNECTION_ID: Final = 0x10
_INITIAL_SOURCE_CONNECTION_ID: Final = 0x0F


def encode_connection_id_parameters(
    initial_source_connection_id: bytes,
    original_destination_connection_id: bytes | None = None,
    stateless_reset_token: bytes | None = None,
    retry_source_connection_id: bytes | None = None,
) -> bytes:
    """The per-connection parameters alone, to append to an encoding made without them.

    Parameters may come in any order (RFC 9000 §18), so an engine can encode the rest once per
    configuration and add these (three, four after a Retry) per connection.
    """
    out = _raw_param(_INITIAL_SOURCE_CONNECTION_ID, initial_source_connection_id)
    if original_destination_connection_id is not None:
        out += _raw_param(_ORIGINAL_DESTINATION_CONNECTION_ID, original_destination_connection_id)
    if stateless_reset_token is not None:
        out += _raw_param(_STATELESS_RESET_TOKEN, stateless_reset_token)
    if retry_source_connection_id is not None:
        out += _raw_param(_RETRY_SOURCE_CONNECTION_ID, retry_source_connection_id)
    return out


def _varint_param(param_id: int, value: int) -> bytes:
    return _raw_param(param_id, encode_uint_var(value))


def _raw_param(param_id: int, value: bytes) -> bytes:
    return encode_uint_var(param_id) + encode_uint_var(len(value)) + value


def _varint_value(raw: bytes, name: str) -> int:
    try:
        buf = Buffer(data=raw)
        value = buf.pull_uint_var()
    except ValueError:
        raise _error(f"{name}: not a varint") from None
    if not buf.eof():
        raise _error(f"{name}: trailing bytes")
    return int(value)


def _check_standard(quic: QuicTransportParameters) -> None:
    if quic.max_udp_payload_size is not None and (
        quic.max_udp_payload_size < MIN_MAX_UDP_PAYLOAD_SIZE
    ):
        raise _error("max_udp_payload_size below 1200")
    if quic.ack_delay_exponent is not None and quic.ack_delay_exponent > MAX_ACK_DELAY_EXPONENT:
        raise _error("ack_delay_exponent above 20")
    if quic.max_ack_delay is not None and quic.max_ack_delay > MAX_MAX_ACK_DELAY_MS:
        raise _error("max_ack_delay of 2^14 or more")
    if (
        quic.active_connection_id_limit is not None
        and quic.active_connection_id_limit < MIN_ACTIVE_CONNECTION_ID_LIMIT
    ):
        raise _error("active_connection_id_limit below 2")
    if quic.stateless_reset_token is not None and len(quic.stateless_reset_token) != 16:
        raise _error("stateless_reset_token must be 16 bytes")
    for name in ("initial_source_connection_id", "original_destination_connection_id"):
        cid = getattr(quic, name)
        if cid is not None and len(cid) > 20:
            raise _error(f"{name} longer than 20 bytes")


def iroh_default_parameters(
    is_client: bool,
    *,
    initial_source_connection_id: bytes,
    original_destination_connection_id: bytes | None = None,
    stateless_reset_token: bytes | None = None,
    multipath: bool = True,
    nat_traversal: bool = True,
    address_discovery_role: int | None = None,
) -> IrohTransportParameters:
    """The parameters iroh 1.x sends (wire doc §3.2); server-only ids only when not a client."""
    quic = QuicTransportParameters(
        max_idle_timeout=IROH_MAX_IDLE_TIMEOUT_MS,
        max_udp_payload_size=IROH_MAX_UDP_PAYLOAD_SIZE,
        initial_max_data=UINT_VAR_MAX,
        initial_max_stream_data_bidi_local=IROH_STREAM_WINDOW,
        initial_max_stream_data_bidi_remote=IROH_STREAM_WINDOW,
        initial_max_stream_data_uni=IROH_STREAM_WINDOW,
        initial_max_streams_bidi=IROH_MAX_STREAMS,
        initial_max_streams_uni=IROH_MAX_STREAMS,
        active_connection_id_limit=IROH_ACTIVE_CID_LIMIT,
        initial_source_connection_id=initial_source_connection_id,
        max_datagram_frame_size=IROH_MAX_DATAGRAM_FRAME_SIZE,
    )
    if not is_client:
        quic.original_destination_connection_id = original_destination_connection_id
        quic.stateless_reset_token = stateless_reset_token
    return IrohTransportParameters(
        quic=quic,
        initial_max_path_id=IROH_INITIAL_MAX_PATH_ID if multipath else None,
        nat_traversal=IROH_NAT_TRAVERSAL_ADDRESSES if nat_traversal and multipath else None,
        address_discovery_role=address_discovery_role,
        min_ack_delay=IROH_MIN_ACK_DELAY_US,
    )
