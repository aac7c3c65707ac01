"""TLS 1.3 with RFC 7250 raw public keys on top of aioquic's ``tls.Context``.

iroh authenticates both ends by Ed25519 keys carried as bare SubjectPublicKeyInfo "certificates"
(wire doc §2): extensions 19/20 announce RawPublicKey, only the ed25519 signature scheme is
offered, the server always requests a client certificate, and the client checks that the server's
key is the EndpointId it dialed. No SNI is sent.

aioquic has no RPK support, so :class:`RpkContext` overrides the few methods that load and check
X.509 certificates. This module and ``quic/aioquic_connection.py`` are the only places that rely
on aioquic internals (pinned ``aioquic>=1.7.2,<1.8``); the tests in ``tests/tls`` fail loudly if
an aioquic upgrade changes them.
"""

from __future__ import annotations

from typing import Any, Final

from aioquic import tls
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding

from ..base.key import PublicKey, SecretKey
from ..errors import DecodeError
from .raw_public_key import (
    CERT_TYPE_RAW_PUBLIC_KEY,
    CLIENT_CERTIFICATE_TYPE,
    SERVER_CERTIFICATE_TYPE,
    decode_spki,
    encode_spki,
)

__all__ = ["RawPublicKeyCertificate", "RpkContext", "install_raw_public_keys"]

CLIENT_KEY_SHARE_GROUPS: Final = (tls.Group.X25519,)
"""The groups our client offers (and sends a key share for)."""

# TLS alert "certificate_required" (RFC 8446 §6.2); aioquic has no class for it.
_CERTIFICATE_REQUIRED = 116


class _AlertCertificateRequired(tls.Alert):
    description = _CERTIFICATE_REQUIRED  # type: ignore[assignment]


class RawPublicKeyCertificate:
    """Stands in for an ``x509.Certificate`` where aioquic expects one.

    aioquic only calls ``public_bytes(DER)`` (to send it) and ``public_key()`` (to check a
    CertificateVerify), so a raw key can travel through its handshake code unchanged.
    """

    def __init__(self, key: PublicKey) -> None:
        self.key = key
        self._spki = encode_spki(key)

    def public_bytes(self, encoding: Encoding = Encoding.DER) -> bytes:
        return self._spki

    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.key.to_bytes())


class RpkContext(tls.Context):
    """An aioquic TLS context speaking iroh's raw-public-key profile.

    Created by :func:`install_raw_public_keys` by re-classing the context aioquic built, so the
    rest of aioquic keeps its references to it.
    """

    expected_peer: PublicKey | None
    peer_id: PublicKey | None
    auth_failure: str | None

    def _set_peer_certificate(self, certificate: tls.Certificate) -> None:
        entries = certificate.certificates
        if len(entries) != 1:
            self.auth_failure = "peer must present exactly one raw public key"
            raise tls.AlertBadCertificate(self.auth_failure)
        try:
            key = decode_spki(entries[0][0])
        except DecodeError as exc:
            self.auth_failure = f"peer certificate is not an Ed25519 raw public key: {exc}"
            raise tls.AlertBadCertificate(self.auth_failure) from None
        if self.expected_peer is not None and key != self.expected_peer:
            self.auth_failure = (
                f"peer presented key {key.fmt_short()}, expected {self.expected_peer.fmt_short()}"
            )
            raise tls.AlertBadCertificate(self.auth_failure)
        self._peer_certificate = RawPublicKeyCertificate(key)  # type: ignore[assignment]
        self._peer_certificate_chain = []
        self.peer_id = key

    def _server_handle_certificate(self, input_buf: Any) -> None:
        # iroh makes client authentication mandatory: an empty Certificate is fatal.
        certificate = tls.pull_certificate(input_buf)
        if not certificate.certificates:
            self.auth_failure = "client did not present a raw public key"
            raise _AlertCertificateRequired(self.auth_failure)
        self.key_schedule.update_hash(input_buf.data)  # type: ignore[union-attr]
        self._set_peer_certificate(certificate)
        self._set_state(tls.State.SERVER_EXPECT_CERTIFICATE_VERIFY)


def install_raw_public_keys(
    ctx: tls.Context,
    *,
    secret_key: SecretKey,
    is_client: bool,
    expected_peer: PublicKey | None,
) -> RpkContext:
    """Turn a freshly built aioquic context into an :class:`RpkContext` for ``secret_key``."""
    ctx.__class__ = RpkContext
    rpk: RpkContext = ctx  # type: ignore[assignment]
    rpk.expected_peer = expected_peer
    rpk.peer_id = None
    rpk.auth_failure = None
    rpk.certificate = RawPublicKeyCertificate(secret_key.public())  # type: ignore[assignment]
    rpk.certificate_chain = []
    rpk.certificate_private_key = secret_key.private_key
    # Only ed25519 is acceptable in either direction (wire doc §2).
    rpk._signature_algorithms = [tls.SignatureAlgorithm.ED25519]
    # Peer keys are checked by _set_peer_certificate, not by X.509 path validation.
    rpk._verify_mode = 0  # ssl.CERT_NONE
    rpk._server_name = None  # no SNI, like iroh >= 1.0.4
    if is_client:
        value = bytes([1, CERT_TYPE_RAW_PUBLIC_KEY])  # a one-entry list
        # One key share, X25519: every iroh (rustls) server picks it, and aioquic would
        # otherwise generate shares for P-256, P-384 and X448 too (~0.4 ms per dial). The
        # server side keeps aioquic's list and takes the first share it knows in the
        # client's order, so a Rust client's X25519MLKEM768 + X25519 offer lands on X25519.
        rpk._supported_groups = list(CLIENT_KEY_SHARE_GROUPS)
    else:
        value = bytes([CERT_TYPE_RAW_PUBLIC_KEY])
        rpk._request_client_certificate = True
    rpk.handshake_extensions = [
        *rpk.handshake_extensions,
        (CLIENT_CERTIFICATE_TYPE, value),
        (SERVER_CERTIFICATE_TYPE, value),
    ]
    return rpk
