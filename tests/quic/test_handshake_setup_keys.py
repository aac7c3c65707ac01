"""The one-HMAC key derivation of packet_protection agrees with aioquic's HKDF for every suite."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from aioiroh.quic._aioquic import (
    INITIAL_SALT_VERSION_1,
    CipherSuite,
    cipher_suite_hash,
    derive_key_iv_hp,
    hkdf_expand_label,
    hkdf_extract,
)
from aioiroh.quic.packet_protection import PacketKeys, _initial_secrets

SUITES = [
    CipherSuite.AES_128_GCM_SHA256,
    CipherSuite.AES_256_GCM_SHA384,
    CipherSuite.CHACHA20_POLY1305_SHA256,
]


@pytest.mark.parametrize("suite", SUITES)
def test_packet_keys_match_aioquic(suite: CipherSuite) -> None:
    algorithm = cipher_suite_hash(suite)
    secret = os.urandom(algorithm.digest_size)
    keys = PacketKeys(suite, secret)
    key, iv, hp = derive_key_iv_hp(cipher_suite=suite, secret=secret, version=1)
    assert keys.hp_key == hp
    assert keys._iv == int.from_bytes(iv, "big")
    nxt = keys.next_phase()
    ku = hkdf_expand_label(algorithm, secret, b"quic ku", b"", algorithm.digest_size)
    assert nxt.secret == ku
    assert nxt.hp_key == hp
    # The AEAD key is aioquic's: a cipher built from it opens what ours sealed.
    aead = ChaCha20Poly1305(key) if suite == CipherSuite.CHACHA20_POLY1305_SHA256 else AESGCM(key)
    sealed = keys.encrypt(b"hdr", b"payload", 3, 7)
    assert aead.decrypt(keys.nonce(3, 7), sealed, b"hdr") == b"payload"


def test_initial_secrets_match_aioquic() -> None:
    cid = os.urandom(8)
    algorithm = cipher_suite_hash(CipherSuite.AES_128_GCM_SHA256)
    initial = hkdf_extract(algorithm, INITIAL_SALT_VERSION_1, cid)
    client = hkdf_expand_label(algorithm, initial, b"client in", b"", 32)
    server = hkdf_expand_label(algorithm, initial, b"server in", b"", 32)
    assert _initial_secrets(cid, True) == (client, server)
    assert _initial_secrets(cid, False) == (server, client)
