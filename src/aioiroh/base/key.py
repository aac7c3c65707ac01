"""Ed25519 identity: :class:`SecretKey`, :class:`PublicKey` (alias :data:`EndpointId`), signatures.

Matches iroh-base: the canonical text form of a public key is 64 lowercase hex characters;
parsing also accepts 52 characters of unpadded RFC 4648 base32 (any case); z-base-32 is the
pkarr/DNS form. Public keys must be valid curve points; signatures are checked strictly
(canonical scalar, no small-order components), like ed25519-dalek's ``verify_strict``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import KeyParseError, SignatureError
from ._z32 import b32_decode, b32_encode, b32hex_encode, z32_decode, z32_encode

__all__ = ["EndpointId", "PublicKey", "SecretKey", "Signature"]

KEY_LENGTH: Final = 32
SIGNATURE_LENGTH: Final = 64

# Curve25519 field prime and the Edwards d constant, for point validation.
_P: Final = 2**255 - 19
_D: Final = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1: Final = pow(2, (_P - 1) // 4, _P)
# Group order; a signature scalar must be below it (RFC 8032 5.1.7).
_L: Final = 2**252 + 27742317777372353535851937790883648493

# Encodings of the points of order 1, 2, 4 and 8 (with both sign bits and the
# non-canonical y >= p forms). dalek's verify_strict refuses these as keys and as R.
_SMALL_ORDER_Y: Final = (
    0,
    1,
    _P - 1,
    2707385501144840649318225287225658788936804267575313519463743609750303402022,
    55188659117513257062467267217118295137698188065244968500265048394206261417927,
    _P,  # non-canonical 0
    _P + 1,  # non-canonical 1
)


def _is_small_order(encoded: bytes) -> bool:
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    return y in _SMALL_ORDER_Y


def _is_valid_point(encoded: bytes) -> bool:
    """True if ``encoded`` decompresses to a point on edwards25519 (canonical y)."""
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    sign = encoded[31] >> 7
    if y >= _P:
        return False
    y2 = y * y % _P
    u = (y2 - 1) % _P
    v = (_D * y2 + 1) % _P
    # x = sqrt(u/v) via the RFC 8032 5.1.3 recipe.
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    vx2 = v * x * x % _P
    if vx2 == u:
        pass
    elif vx2 == (-u) % _P:
        x = x * _SQRT_M1 % _P
    else:
        return False
    return not (x == 0 and sign == 1)


@lru_cache(maxsize=4096)
def _is_valid_point_cached(encoded: bytes) -> bool:
    """:func:`_is_valid_point`, remembered: the check costs ~0.1 ms of big-int arithmetic, and
    a peer's key is decoded on every handshake with it (the answer never changes)."""
    return _is_valid_point(encoded)


def _parse_key_text(text: str) -> bytes:
    text = text.strip()
    if len(text) == 2 * KEY_LENGTH:
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise KeyParseError(f"invalid hex key: {text!r}") from None
    try:
        data = b32_decode(text)
    except ValueError:
        raise KeyParseError(
            f"invalid key text {text[:80]!r}: expected 64 hex or 52 base32 characters"
        ) from None
    if len(data) != KEY_LENGTH:
        raise KeyParseError(f"key must be 32 bytes, got {len(data)}")
    return data


class Signature:
    """A 64-byte Ed25519 signature."""

    __slots__ = ("_bytes",)

    def __init__(self, data: bytes) -> None:
        if len(data) != SIGNATURE_LENGTH:
            raise KeyParseError(f"signature must be 64 bytes, got {len(data)}")
        self._bytes = bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        """A signature from its 64 bytes."""
        return cls(data)

    def to_bytes(self) -> bytes:
        """The 64-byte Ed25519 signature."""
        return self._bytes

    def __bytes__(self) -> bytes:
        return self._bytes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __repr__(self) -> str:
        return f"Signature({self._bytes.hex()[:16]}…)"


class PublicKey:
    """An Ed25519 public key; in iroh it is an endpoint's identity (:data:`EndpointId`)."""

    __slots__ = ("_bytes", "_key")

    def __init__(self, data: bytes) -> None:
        if len(data) != KEY_LENGTH:
            raise KeyParseError(f"public key must be 32 bytes, got {len(data)}")
        data = bytes(data)
        if not _is_valid_point_cached(data):
            raise KeyParseError("public key is not a valid Ed25519 point")
        self._bytes = data
        self._key: Ed25519PublicKey | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        """Build from the 32-byte compressed Edwards form."""
        return cls(data)

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """Parse 64 hex characters or 52 characters of unpadded base32 (any case)."""
        if not isinstance(text, str):
            raise KeyParseError("key text must be a str")
        return cls(_parse_key_text(text))

    @classmethod
    def from_z32(cls, text: str) -> PublicKey:
        """Parse the z-base-32 form used in pkarr and DNS names."""
        try:
            data = z32_decode(text)
        except ValueError:
            raise KeyParseError(f"invalid z-base-32 key {text[:80]!r}") from None
        return cls(data)

    def to_bytes(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._bytes

    def __bytes__(self) -> bytes:
        return self._bytes

    @property
    def as_bytes(self) -> bytes:
        """The 32-byte Ed25519 public key (as Rust's ``as_bytes``)."""
        return self._bytes

    def to_z32(self) -> str:
        """z-base-32 text (52 chars), as used in ``_iroh.<z32>`` DNS names."""
        return z32_encode(self._bytes)

    def to_base32(self) -> str:
        """Unpadded lowercase RFC 4648 base32 (52 chars); fits a DNS label."""
        return b32_encode(self._bytes)

    def tls_server_name(self) -> str:
        """The synthetic name iroh's TLS uses for this key: ``<base32hex>.iroh.invalid``."""
        return f"{b32hex_encode(self._bytes)}.iroh.invalid"

    def fmt_short(self) -> str:
        """The first 5 bytes in hex: for logs."""
        return self._bytes[:5].hex()

    def _crypto_key(self) -> Ed25519PublicKey:
        if self._key is None:
            self._key = Ed25519PublicKey.from_public_bytes(self._bytes)
        return self._key

    def verify(self, message: bytes, signature: Signature | bytes) -> None:
        """Check ``signature`` over ``message`` strictly; raise :class:`SignatureError`."""
        sig = signature.to_bytes() if isinstance(signature, Signature) else bytes(signature)
        if len(sig) != SIGNATURE_LENGTH:
            raise SignatureError("signature must be 64 bytes")
        if _is_small_order(self._bytes) or _is_small_order(sig[:32]):
            raise SignatureError("weak key or signature (small-order point)")
        if int.from_bytes(sig[32:], "little") >= _L:
            raise SignatureError("non-canonical signature scalar")
        try:
            self._crypto_key().verify(sig, message)
        except InvalidSignature:
            raise SignatureError("signature does not verify") from None

    def is_valid_signature(self, message: bytes, signature: Signature | bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            self.verify(message, signature)
        except (SignatureError, KeyParseError):
            return False
        return True

    def __str__(self) -> str:
        return self._bytes.hex()

    def __repr__(self) -> str:
        return f"PublicKey({self.fmt_short()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other._bytes == self._bytes

    def __lt__(self, other: PublicKey) -> bool:
        return self._bytes < other._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)


EndpointId = PublicKey
"""An endpoint's identity: its Ed25519 public key (iroh's ``EndpointId``)."""


class SecretKey:
    """An Ed25519 signing key (32-byte seed). Its public half is the endpoint's id."""

    __slots__ = ("_key", "_public", "_seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != KEY_LENGTH:
            raise KeyParseError(f"secret key must be 32 bytes, got {len(seed)}")
        self._seed = bytes(seed)
        self._key = Ed25519PrivateKey.from_private_bytes(self._seed)
        raw = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._public = PublicKey(raw)

    @classmethod
    def generate(cls) -> SecretKey:
        """A fresh random key."""
        return cls(os.urandom(KEY_LENGTH))

    @classmethod
    def from_bytes(cls, data: bytes) -> SecretKey:
        """The secret key from its 32-byte Ed25519 seed."""
        return cls(data)

    @classmethod
    def parse(cls, text: str) -> SecretKey:
        """Parse 64 hex characters or 52 base32 characters (same rules as public keys)."""
        return cls(_parse_key_text(text))

    def to_bytes(self) -> bytes:
        """The 32-byte Ed25519 seed; keep it secret."""
        return self._seed

    def public(self) -> PublicKey:
        """The public key, i.e. the :data:`EndpointId` of an endpoint using this key."""
        return self._public

    def sign(self, message: bytes) -> Signature:
        """The Ed25519 signature of ``message``."""
        return Signature(self._key.sign(message))

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The key as a ``cryptography`` object (for TLS)."""
        return self._key

    def __repr__(self) -> str:
        return f"SecretKey(public={self._public.fmt_short()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretKey) and other._seed == self._seed

    def __hash__(self) -> int:
        return hash(self._seed)
