"""Request codecs against iroh-blobs' request_wire_format vectors, and bounded decoding."""

from __future__ import annotations

import pytest

from aioiroh.blobs.protocol import ChunkRangesSeq, GetManyRequest, GetRequest, decode_request
from aioiroh.errors import DecodeError

HASH = bytes(range(32))


def test_get_single_blob_matches_wire_vector() -> None:
    req = GetRequest(HASH, ChunkRangesSeq.root())
    assert req.encode() == b"\x00" + HASH + bytes.fromhex("020001000100")
    assert decode_request(req.encode()) == req


def test_get_hash_seq_and_all_children_matches_wire_vector() -> None:
    req = GetRequest(HASH, ChunkRangesSeq.all())
    assert req.encode() == b"\x00" + HASH + bytes.fromhex("01000100")
    assert decode_request(req.encode()).ranges.for_offset(7) == (0,)


def test_range_request_round_trips_with_absolute_boundaries() -> None:
    ranges = ChunkRangesSeq(((0, (16, 32, 100)), (1, ())))
    req = GetRequest(HASH, ranges)
    # Boundaries travel as deltas: 16, 16, 68.
    assert req.encode().endswith(bytes.fromhex("0200031010440100"))
    got = decode_request(req.encode())
    assert got.ranges.for_offset(0) == (16, 32, 100)
    assert got.ranges.for_offset(1) == ()


def test_get_many_round_trips() -> None:
    req = GetManyRequest((HASH, bytes(32)), ChunkRangesSeq.all())
    assert decode_request(req.encode()) == req


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x05" + HASH,  # reserved / unsupported variant
        b"\x00" + HASH[:10],  # truncated hash
        b"\x00" + HASH + b"\xff\xff\xff\xff\x0f",  # huge entry count
        b"\x00" + HASH + bytes.fromhex("0100020500"),  # boundary delta 0
        b"\x00" + HASH + bytes.fromhex("0100010000"),  # trailing byte
    ],
)
def test_malformed_requests_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_request(data)
