"""Relay handshake: challenge signing and the TLS-exporter header (wire doc §5.4)."""

from __future__ import annotations

import os

import blake3
import pytest

from aioiroh.base.key import SecretKey
from aioiroh.relay.protocol.frames import (
    ClientAuth,
    RelayProtocolError,
    ServerChallenge,
    decode_client_msg,
    encode_client_msg,
)
from aioiroh.relay.protocol.handshake import (
    CHALLENGE_CONTEXT,
    KeyMaterialClientAuth,
    build_client_auth_header,
    challenge_message,
    parse_client_auth_header,
    sign_challenge,
    verify_client_auth,
)
from aioiroh.relay.protocol.version import SUBPROTOCOLS, ProtocolVersion, negotiate


def test_challenge_message_is_blake3_derive_key() -> None:
    challenge = bytes(range(16))
    expected = blake3.blake3(challenge, derive_key_context=CHALLENGE_CONTEXT).digest()
    assert challenge_message(challenge) == expected
    assert challenge_message(ServerChallenge(challenge)) == expected
    assert len(expected) == 32
    assert CHALLENGE_CONTEXT == "iroh-relay handshake v1 challenge signature"


def test_sign_and_verify() -> None:
    sk = SecretKey.generate()
    challenge = ServerChallenge(os.urandom(16))
    auth = sign_challenge(sk, challenge)
    assert auth.public_key == sk.public()
    assert verify_client_auth(auth, challenge)
    # Survives the wire.
    back = decode_client_msg(encode_client_msg(auth), ProtocolVersion.V2)
    assert isinstance(back, ClientAuth) and verify_client_auth(back, challenge)


def test_bad_signatures_rejected() -> None:
    sk = SecretKey.generate()
    challenge = os.urandom(16)
    auth = sign_challenge(sk, challenge)
    assert not verify_client_auth(auth, os.urandom(16))
    forged = ClientAuth(SecretKey.generate().public(), auth.signature)
    assert not verify_client_auth(forged, challenge)
    flipped = bytes([auth.signature[0] ^ 1]) + auth.signature[1:]
    assert not verify_client_auth(ClientAuth(auth.public_key, flipped), challenge)


def test_challenge_length_checked() -> None:
    with pytest.raises(RelayProtocolError):
        challenge_message(b"short")


def test_header_roundtrip() -> None:
    sk = SecretKey.generate()
    exporter = os.urandom(32)
    header = build_client_auth_header(sk, exporter)
    assert len(header) == 151
    parsed = parse_client_auth_header(header)
    assert parsed.public_key == sk.public()
    assert parsed.verify(exporter)
    assert not parsed.verify(None)
    assert not parsed.verify(exporter[:16] + os.urandom(16))  # suffix mismatch
    assert not parsed.verify(os.urandom(16) + exporter[16:])  # signature over other bytes


def test_header_garbage_rejected() -> None:
    for value in ["", "!!!", "A" * 400, "AAAA", KeyMaterialClientAuth.__name__]:
        with pytest.raises(RelayProtocolError):
            parse_client_auth_header(value)


def test_negotiate() -> None:
    assert SUBPROTOCOLS == ("iroh-relay-v2", "iroh-relay-v1")
    assert negotiate("iroh-relay-v2, iroh-relay-v1") is ProtocolVersion.V2
    assert negotiate("iroh-relay-v1") is ProtocolVersion.V1
    assert negotiate(["iroh-relay-v1", " iroh-relay-v2 "]) is ProtocolVersion.V2
    assert negotiate("chat, superchat") is None
    assert negotiate("") is None
