"""The single import point of aioquic for aioiroh's own QUIC engine.

Everything the engine takes from aioquic 1.7.2 (pinned ``>=1.7.2,<1.8``) is re-exported here, so
an aioquic upgrade touches one module. Only public names are imported; the undocumented behaviours
we rely on are listed below and each one has a test in ``tests/quic/test_aioquic_compat.py`` that
fails loudly if an upgrade changes it.

Undocumented behaviours relied upon:

1. ``Buffer`` (C extension) accepts only ``bytes`` for ``Buffer(data=...)`` and ``push_bytes``;
   callers convert ``bytearray``/``memoryview`` first. Reads past the end raise
   ``BufferReadError`` (a ``ValueError``), writes past capacity raise ``BufferWriteError``.
2. ``pull_ack_frame(buf)`` reads largest/delay/range_count/first_range/{gap,range}... exactly as
   the RFC 9000 ACK body and raises ``ValueError`` for a range below packet number 0; that is
   also the PATH_ACK body after its path id (wire doc §3.3).
3. ``push_ack_frame(buf, ranges, delay, capacity)`` drops the oldest ranges that do not fit.
4. ``pull_quic_transport_parameters`` skips unknown ids and raises ``ValueError`` when a known
   parameter's length does not match; ``push_quic_transport_parameters`` writes only the fields of
   the module-level ``PARAMS`` table (we never mutate that process-global table).
5. ``decode_packet_number(truncated, bits, expected)`` is correct only when ``expected`` is the
   plain per-path packet number (never a path-tagged value).
6. ``derive_key_iv_hp`` and ``hkdf_expand_label`` implement RFC 9001 §5.1 labels ("quic key",
   "quic iv", "quic hp"; key update uses "quic ku").
"""

from __future__ import annotations

from aioquic.buffer import (
    UINT_VAR_MAX,
    UINT_VAR_MAX_SIZE,
    Buffer,
    BufferReadError,
    BufferWriteError,
    encode_uint_var,
    size_uint_var,
)
from aioquic.quic.crypto import (
    INITIAL_CIPHER_SUITE,
    INITIAL_SALT_VERSION_1,
    CryptoError,
    CryptoPair,
    derive_key_iv_hp,
)
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicProtocolVersion,
    QuicTransportParameters,
    decode_packet_number,
    pull_ack_frame,
    pull_quic_transport_parameters,
    push_ack_frame,
    push_quic_transport_parameters,
)
from aioquic.quic.rangeset import RangeSet
from aioquic.tls import CipherSuite, cipher_suite_hash, hkdf_expand_label, hkdf_extract

__all__ = [
    "INITIAL_CIPHER_SUITE",
    "INITIAL_SALT_VERSION_1",
    "UINT_VAR_MAX",
    "UINT_VAR_MAX_SIZE",
    "Buffer",
    "BufferReadError",
    "BufferWriteError",
    "CipherSuite",
    "CryptoError",
    "CryptoPair",
    "QuicErrorCode",
    "QuicProtocolVersion",
    "QuicTransportParameters",
    "RangeSet",
    "cipher_suite_hash",
    "decode_packet_number",
    "derive_key_iv_hp",
    "encode_uint_var",
    "hkdf_expand_label",
    "hkdf_extract",
    "pull_ack_frame",
    "pull_quic_transport_parameters",
    "push_ack_frame",
    "push_quic_transport_parameters",
    "size_uint_var",
]
