"""Stateless Retry (RFC 9000 §8.1.2, RFC 9001 §5.8): address validation before any state.

Under pressure a server answers a token-less Initial with a Retry carrying a token that binds
the client's address, its original destination CID and the time, authenticated with a key only
this process knows. A client that really is at that address sends its Initial again with the
token, and only then does the server create a connection. Sans-I/O: the caller passes time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Final

from aioquic.quic.packet import encode_quic_retry

__all__ = ["RETRY_TOKEN_LIFETIME", "RetryTokens", "build_retry"]

RETRY_TOKEN_LIFETIME: Final = 10.0
"""Seconds a Retry token stays valid (it is answered within one round trip)."""
_MAC_SIZE: Final = 16
_MAX_CID: Final = 20


class RetryTokens:
    """Issues and checks Retry tokens: ``time(8) | len(odcid)(1) | odcid | mac(16)``."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or os.urandom(32)

    def _mac(self, address: bytes, body: bytes) -> bytes:
        return hmac.new(self._key, address + body, hashlib.sha256).digest()[:_MAC_SIZE]

    def issue(self, address: bytes, original_dcid: bytes, now: float) -> bytes:
        """A token for a client at ``address`` (any stable encoding of IP and port)."""
        body = struct.pack("!d", now) + bytes((len(original_dcid),)) + original_dcid
        return body + self._mac(address, body)

    def validate(self, token: bytes, address: bytes, now: float) -> bytes | None:
        """The original destination CID if ``token`` is ours, fresh, and for ``address``."""
        if len(token) < 9 + _MAC_SIZE:
            return None
        cid_len = token[8]
        if cid_len > _MAX_CID or len(token) != 9 + cid_len + _MAC_SIZE:
            return None
        body, mac = token[: 9 + cid_len], token[9 + cid_len :]
        if not hmac.compare_digest(mac, self._mac(address, body)):
            return None
        (issued,) = struct.unpack("!d", token[:8])
        if not 0 <= now - issued <= RETRY_TOKEN_LIFETIME:
            return None
        return body[9:]


def build_retry(
    *, version: int, client_scid: bytes, retry_scid: bytes, original_dcid: bytes, token: bytes
) -> bytes:
    """The Retry datagram (integrity tag included) answering a client's Initial."""
    return encode_quic_retry(
        version=version,
        source_cid=retry_scid,
        destination_cid=client_scid,
        original_destination_cid=original_dcid,
        retry_token=token,
    )
