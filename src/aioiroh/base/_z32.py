"""Base32 codecs used by iroh: RFC 4648 (unpadded), z-base-32 and base32hex (DNSSEC).

Pure functions over bytes and str; errors are :class:`aioiroh.errors.DecodeError`.
"""

from __future__ import annotations

import base64
from typing import Final

from ..errors import DecodeError

Z32_ALPHABET: Final = "ybndrfg8ejkmcpqxot1uwisza345h769"
RFC4648_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_Z32_TO_RFC: Final = str.maketrans(Z32_ALPHABET, RFC4648_ALPHABET)
_RFC_TO_Z32: Final = str.maketrans(RFC4648_ALPHABET, Z32_ALPHABET)


def _pad(text: str) -> str:
    return text + "=" * (-len(text) % 8)


def b32_encode(data: bytes) -> str:
    """RFC 4648 base32, lowercase, without padding."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32_decode(text: str) -> bytes:
    """Decode unpadded RFC 4648 base32, case-insensitively."""
    try:
        return base64.b32decode(_pad(text.upper()))
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise DecodeError(f"invalid base32: {exc}") from None


def z32_encode(data: bytes) -> str:
    """z-base-32 (the pkarr/DNS form of a key), without padding."""
    return base64.b32encode(data).decode("ascii").rstrip("=").translate(_RFC_TO_Z32)


def z32_decode(text: str) -> bytes:
    """Decode z-base-32 text (lowercase alphabet)."""
    if any(c not in Z32_ALPHABET for c in text):
        raise DecodeError("invalid z-base-32 character")
    try:
        return base64.b32decode(_pad(text.translate(_Z32_TO_RFC)))
    except ValueError as exc:
        raise DecodeError(f"invalid z-base-32: {exc}") from None


def b32hex_encode(data: bytes) -> str:
    """base32hex (RFC 4648 extended hex alphabet), lowercase, without padding."""
    return base64.b32hexencode(data).decode("ascii").rstrip("=").lower()
