"""Peer keys from TLS certificates are checked strictly, also when the check is remembered."""

from __future__ import annotations

import pytest

from aioiroh.base import key as key_module
from aioiroh.base.key import PublicKey, SecretKey
from aioiroh.errors import DecodeError, KeyParseError
from aioiroh.tls.raw_public_key import SPKI_PREFIX, decode_spki, encode_spki

_P = 2**255 - 19


def _not_on_curve() -> bytes:
    # y = 2 gives x^2 = 3/(4d+1): not a square mod p, so no point has this encoding.
    data = (2).to_bytes(32, "little")
    assert not key_module._is_valid_point(data)
    return data


def test_invalid_point_rejected_every_time() -> None:
    bad = _not_on_curve()
    for _ in range(3):
        with pytest.raises(KeyParseError):
            PublicKey(bad)
        with pytest.raises(DecodeError):
            decode_spki(SPKI_PREFIX + bad)


def test_non_canonical_y_rejected_every_time() -> None:
    # y = p + 3 >= p: never canonical, though y = 3 may be a point.
    bad = (_P + 3).to_bytes(32, "little")
    for _ in range(2):
        with pytest.raises(KeyParseError):
            PublicKey(bad)


def test_x_zero_with_sign_bit_rejected() -> None:
    # y = 1 has x = 0; setting the sign bit asks for "-0", which RFC 8032 rejects.
    bad = bytearray((1).to_bytes(32, "little"))
    bad[31] |= 0x80
    for _ in range(2):
        with pytest.raises(KeyParseError):
            PublicKey(bytes(bad))


def test_repeated_peer_key_is_checked_once() -> None:
    pub = SecretKey.generate().public()
    spki = encode_spki(pub)
    key_module._is_valid_point_cached.cache_clear()
    for _ in range(5):
        assert decode_spki(spki) == pub
    info = key_module._is_valid_point_cached.cache_info()
    assert info.misses == 1
    assert info.hits == 4


def test_cached_and_uncached_checks_agree() -> None:
    samples = [SecretKey.generate().public().to_bytes() for _ in range(8)]
    samples += [(y).to_bytes(32, "little") for y in range(0, 40)]
    samples += [_not_on_curve(), (_P + 1).to_bytes(32, "little")]
    for data in samples:
        assert key_module._is_valid_point_cached(data) == key_module._is_valid_point(data)
