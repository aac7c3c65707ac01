"""BAO with 16 KiB chunk groups: outboard, pre-order encoding, ranges, verification."""

from __future__ import annotations

import os

import blake3
import pytest

from aioiroh.blobs.bao import (
    ALL,
    GROUP_LEN,
    BaoDecoder,
    BaoVerificationError,
    Ranges,
    encode,
    outboard,
)


def _decode(root: bytes, stream: bytes, ranges: Ranges = ALL, step: int = 997) -> bytes:
    dec = BaoDecoder(root, ranges)
    got = bytearray()
    for i in range(0, len(stream), step):
        for _off, piece in dec.feed(stream[i : i + step]):
            got += piece
    assert dec.done
    return bytes(got)


@pytest.mark.parametrize(
    "size", [0, 1, 1024, GROUP_LEN - 1, GROUP_LEN, GROUP_LEN + 1, 5 * GROUP_LEN + 7, 1 << 20]
)
def test_outboard_root_is_blake3_and_round_trips(size: int) -> None:
    data = os.urandom(size)
    root, ob = outboard(data)
    assert root == blake3.blake3(data).digest()
    groups = max(1, -(-size // GROUP_LEN))
    assert len(ob) == 64 * (groups - 1)
    stream = b"".join(encode(data, ob))
    assert len(stream) == 8 + size + len(ob)
    assert _decode(root, stream) == data


def test_range_request_sends_only_the_groups_it_touches() -> None:
    data = os.urandom(8 * GROUP_LEN)
    root, ob = outboard(data)
    ranges = ((40, 41),)  # chunk 40 lives in group 2
    stream = b"".join(encode(data, ob, ranges))
    assert len(stream) == 8 + 3 * 64 + GROUP_LEN
    assert _decode(root, stream, ranges) == data[2 * GROUP_LEN : 3 * GROUP_LEN]


def test_first_corrupt_chunk_group_is_rejected_before_its_data() -> None:
    data = os.urandom(4 * GROUP_LEN)
    root, ob = outboard(data)
    stream = bytearray(b"".join(encode(data, ob)))
    # Stream layout: size, root pair, left pair, g0, g1, right pair, g2, g3. Flip a byte in g1.
    flip = 8 + 64 + 64 + GROUP_LEN + 100
    stream[flip] ^= 1
    dec = BaoDecoder(root)
    handed: list[int] = []
    with pytest.raises(BaoVerificationError) as err:
        for i in range(0, len(stream), 4096):
            handed += [off for off, _ in dec.feed(bytes(stream[i : i + 4096]))]
    assert err.value.offset == GROUP_LEN
    assert handed == [0]


def test_wrong_root_and_oversized_announcement_are_rejected() -> None:
    data = os.urandom(100)
    _root, ob = outboard(data)
    with pytest.raises(BaoVerificationError):
        BaoDecoder(bytes(32)).feed(b"".join(encode(data, ob)))
    with pytest.raises(BaoVerificationError):
        BaoDecoder(bytes(32), max_size=10).feed((1 << 40).to_bytes(8, "little"))
