"""RFC 7250 raw public keys for Ed25519: the SubjectPublicKeyInfo iroh puts in TLS Certificate.

An iroh "certificate" is the 44-byte DER SPKI of the endpoint's Ed25519 key: a fixed 12-byte
prefix followed by the 32 key bytes (wire doc §2).
"""

from __future__ import annotations

from typing import Final

from ..base.key import PublicKey
from ..errors import DecodeError

# TLS certificate_type extension codepoints and the RawPublicKey value (RFC 7250).
CLIENT_CERTIFICATE_TYPE: Final = 19
SERVER_CERTIFICATE_TYPE: Final = 20
CERT_TYPE_RAW_PUBLIC_KEY: Final = 2

# DER: SEQUENCE { SEQUENCE { OID 1.3.101.112 (Ed25519) }, BIT STRING (0 unused bits) }.
SPKI_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
SPKI_LENGTH: Final = len(SPKI_PREFIX) + 32


def encode_spki(key: PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of an Ed25519 key."""
    return SPKI_PREFIX + key.to_bytes()


def decode_spki(data: bytes) -> PublicKey:
    """Parse an Ed25519 SPKI; anything else (other algorithms, junk) raises DecodeError."""
    if len(data) != SPKI_LENGTH or not data.startswith(SPKI_PREFIX):
        raise DecodeError("certificate is not an Ed25519 SubjectPublicKeyInfo")
    return PublicKey(data[len(SPKI_PREFIX) :])
