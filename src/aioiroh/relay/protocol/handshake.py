"""Relay handshake: proving the client owns its EndpointId (wire doc §5.4).

Two ways, both ending in ``ServerConfirmsAuth`` or ``ServerDeniesAuth``:

* **Challenge** — the relay sends 16 random bytes (:class:`ServerChallenge`); the client signs
  ``BLAKE3.derive_key("iroh-relay handshake v1 challenge signature", challenge)`` with Ed25519
  and answers :class:`ClientAuth`.
* **TLS exporter header** — over TLS only, the client exports 32 bytes of keying material
  (label ``"iroh-relay handshake v1"``, context = its public key), signs the first 16 and sends
  ``x-iroh-relay-client-auth-v1: base64url(public key ‖ 0x40 ‖ signature ‖ last 16 bytes)`` with
  the upgrade request. A relay that can compute the same exporter skips the challenge; if it
  cannot, or the header does not verify, it falls back to the challenge.

Pure functions: the caller supplies the randomness and the exporter bytes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final

import blake3

from ...base.key import EndpointId, PublicKey, SecretKey
from ...errors import IrohError
from .frames import (
    CHALLENGE_LENGTH,
    KEY_LENGTH,
    SIGNATURE_LENGTH,
    ClientAuth,
    RelayProtocolError,
    ServerChallenge,
    ServerConfirmsAuth,
    ServerDeniesAuth,
)

__all__ = [
    "CHALLENGE_CONTEXT",
    "DENY_NOT_AUTHORIZED",
    "DENY_SIGNATURE_INVALID",
    "TLS_EXPORTER_LABEL",
    "TLS_EXPORTER_LENGTH",
    "ClientAuth",
    "KeyMaterialClientAuth",
    "ServerChallenge",
    "ServerConfirmsAuth",
    "ServerDeniesAuth",
    "build_client_auth_header",
    "challenge_message",
    "new_challenge",
    "parse_client_auth_header",
    "sign_challenge",
    "verify_client_auth",
]

CHALLENGE_CONTEXT: Final = "iroh-relay handshake v1 challenge signature"
TLS_EXPORTER_LABEL: Final = b"iroh-relay handshake v1"
TLS_EXPORTER_LENGTH: Final = 32
_SUFFIX_LENGTH: Final = TLS_EXPORTER_LENGTH - 16
# postcard of {key[32], bytes(64), [u8;16]}: 32 + 1 + 64 + 16.
_HEADER_BODY_LENGTH: Final = KEY_LENGTH + 1 + SIGNATURE_LENGTH + _SUFFIX_LENGTH
# base64 of 113 bytes is 151 characters; anything much longer is not ours.
_MAX_HEADER_LENGTH: Final = 256

DENY_SIGNATURE_INVALID: Final = "signature invalid"
DENY_NOT_AUTHORIZED: Final = "not authorized"


def new_challenge(random16: bytes) -> ServerChallenge:
    """A :class:`ServerChallenge` from 16 caller-supplied random bytes (``os.urandom(16)``)."""
    return ServerChallenge(bytes(random16))


def challenge_message(challenge: bytes | ServerChallenge) -> bytes:
    """The 32 bytes a client signs for ``challenge``: BLAKE3 derive_key over the challenge."""
    raw = challenge.challenge if isinstance(challenge, ServerChallenge) else bytes(challenge)
    if len(raw) != CHALLENGE_LENGTH:
        raise RelayProtocolError(f"challenge must be {CHALLENGE_LENGTH} bytes")
    return blake3.blake3(raw, derive_key_context=CHALLENGE_CONTEXT).digest()


def sign_challenge(secret_key: SecretKey, challenge: bytes | ServerChallenge) -> ClientAuth:
    """The :class:`ClientAuth` answering ``challenge`` with ``secret_key``."""
    signature = secret_key.sign(challenge_message(challenge)).to_bytes()
    return ClientAuth(secret_key.public(), signature)


def verify_client_auth(auth: ClientAuth, challenge: bytes | ServerChallenge) -> bool:
    """True if ``auth`` carries a valid signature over ``challenge`` by its public key."""
    return auth.public_key.is_valid_signature(challenge_message(challenge), auth.signature)


@dataclass(frozen=True, slots=True)
class KeyMaterialClientAuth:
    """The ``x-iroh-relay-client-auth-v1`` header contents (TLS exporter variant)."""

    public_key: EndpointId
    """The client's EndpointId (also the exporter context)."""
    signature: bytes
    """Ed25519 signature over the first 16 exporter bytes."""
    key_material_suffix: bytes
    """The last 16 exporter bytes, so the relay can check it derived the same material."""

    @classmethod
    def create(cls, secret_key: SecretKey, exporter: bytes) -> KeyMaterialClientAuth:
        """Sign ``exporter`` — the 32-byte TLS exporter the client computed with
        label :data:`TLS_EXPORTER_LABEL` and context = its public key."""
        if len(exporter) != TLS_EXPORTER_LENGTH:
            raise ValueError(f"exporter must be {TLS_EXPORTER_LENGTH} bytes")
        signature = secret_key.sign(exporter[:16]).to_bytes()
        return cls(secret_key.public(), signature, bytes(exporter[16:]))

    def to_header(self) -> str:
        """The header value: unpadded base64url of the postcard encoding."""
        body = self.public_key.to_bytes() + bytes((SIGNATURE_LENGTH,))
        body += self.signature + self.key_material_suffix
        return base64.urlsafe_b64encode(body).rstrip(b"=").decode()

    def verify(self, exporter: bytes | None) -> bool:
        """True if ``exporter`` (the relay's own export for :attr:`public_key`) matches and the
        signature holds. ``None`` (no exporter available) is never valid."""
        if exporter is None or len(exporter) != TLS_EXPORTER_LENGTH:
            return False
        if exporter[16:] != self.key_material_suffix:
            return False
        return self.public_key.is_valid_signature(exporter[:16], self.signature)


def build_client_auth_header(secret_key: SecretKey, exporter: bytes) -> str:
    """Header value for ``x-iroh-relay-client-auth-v1`` from the client's exporter bytes."""
    return KeyMaterialClientAuth.create(secret_key, exporter).to_header()


def parse_client_auth_header(value: str) -> KeyMaterialClientAuth:
    """Decode a ``x-iroh-relay-client-auth-v1`` header; raises :class:`RelayProtocolError`."""
    if len(value) > _MAX_HEADER_LENGTH:
        raise RelayProtocolError("client auth header too long")
    try:
        padded = value.strip() + "=" * (-len(value.strip()) % 4)
        body = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise RelayProtocolError("client auth header is not base64url") from None
    if len(body) < _HEADER_BODY_LENGTH or body[KEY_LENGTH] != SIGNATURE_LENGTH:
        raise RelayProtocolError("client auth header has the wrong layout")
    try:
        key = PublicKey.from_bytes(body[:KEY_LENGTH])
    except IrohError as exc:
        raise RelayProtocolError(f"client auth header key invalid: {exc}") from None
    sig_end = KEY_LENGTH + 1 + SIGNATURE_LENGTH
    return KeyMaterialClientAuth(
        key, body[KEY_LENGTH + 1 : sig_end], body[sig_end : sig_end + _SUFFIX_LENGTH]
    )
