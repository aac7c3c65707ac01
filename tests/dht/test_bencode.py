"""The bencode codec: canonical round trips, and every malformed or oversized input refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioiroh.dht.bencode import BencodeError, decode, encode
from aioiroh.errors import IrohError

values = st.recursive(
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1) | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.binary(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(values)
def test_round_trip_is_identity_and_canonical(value: object) -> None:
    data = encode(value)  # type: ignore[arg-type]
    assert decode(data) == value
    assert encode(decode(data)) == data


def test_dict_keys_are_sorted_when_encoding() -> None:
    assert encode({b"b": 1, b"a": b"x"}) == b"d1:a1:x1:bi1ee"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"i03e",
        b"i-0e",
        b"ie",
        b"i-e",
        b"i1",
        b"iae",
        b"03:abc",
        b"4:abc",
        b"5abc",
        b"d1:b0:1:a0:e",  # keys out of order
        b"d1:a0:1:a0:e",  # duplicate key
        b"di1ei2ee",  # non-string key
        b"l",
        b"d",
        b"i1ei2e",  # trailing data
        b"x",
        b"l" * 40 + b"e" * 40,  # too deep
        b"i" + b"9" * 100 + b"e",  # bignum
    ],
)
def test_malformed_input_is_a_bencode_error(data: bytes) -> None:
    with pytest.raises(BencodeError) as info:
        decode(data)
    assert isinstance(info.value, IrohError)


def test_bounds_on_size_and_items() -> None:
    with pytest.raises(BencodeError, match="exceeds"):
        decode(encode(b"x" * 5000))
    assert decode(encode(b"x" * 5000), max_size=6000) == b"x" * 5000
    with pytest.raises(BencodeError, match="too many items"):
        decode(b"l" + b"i1e" * 600 + b"e")
    with pytest.raises(BencodeError, match="runs past"):
        decode(b"9999999:x")


def test_unencodable_types_raise() -> None:
    with pytest.raises(BencodeError):
        encode(1.5)  # type: ignore[arg-type]
    with pytest.raises(BencodeError):
        encode({1: 2})  # type: ignore[dict-item]
