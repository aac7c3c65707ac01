"""BlobTicket against iroh-blobs' test_ticket_base32 vector; HashSeq; CollectionMeta."""

from __future__ import annotations

import pytest

from aioiroh.base._z32 import b32_decode
from aioiroh.base.key import PublicKey
from aioiroh.blobs.ticket import (
    BlobFormat,
    BlobTicket,
    CollectionMeta,
    decode_hash_seq,
    encode_hash_seq,
)
from aioiroh.errors import DecodeError

HASH = bytes.fromhex("0b84d358e4c8be6c38626b2182ff575818ba6bd3f4b90464994be14cb354a072")
ID = bytes.fromhex("ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6")


def test_blob_ticket_matches_rust_vector() -> None:
    t = BlobTicket(PublicKey.from_bytes(ID), None, (), BlobFormat.RAW, HASH)
    text = str(t)
    assert text.startswith("blob")
    assert b32_decode(text[4:]) == b"\x00" + ID + b"\x00\x00\x00" + HASH
    assert BlobTicket.parse(text.upper().replace("BLOB", "blob", 1)) == t


def test_blob_ticket_with_addresses_round_trips() -> None:
    t = BlobTicket(
        PublicKey.from_bytes(ID),
        "https://relay.example./",
        (("127.0.0.1", 4433), ("::1", 1)),
        BlobFormat.HASH_SEQ,
        HASH,
    )
    assert BlobTicket.parse(str(t)) == t


@pytest.mark.parametrize("text", ["blob", "endpointabc", "blob!!", "blob" + "a" * 70000])
def test_bad_blob_tickets_raise_decode_error(text: str) -> None:
    with pytest.raises(DecodeError):
        BlobTicket.parse(text)


def test_hash_seq_and_collection_meta_round_trip() -> None:
    assert decode_hash_seq(encode_hash_seq([HASH, ID])) == [HASH, ID]
    with pytest.raises(DecodeError):
        decode_hash_seq(b"x" * 33)
    meta = CollectionMeta(("a.txt", "dir/b.bin"))
    assert meta.encode() == b"CollectionV0.\x02\x05a.txt\x09dir/b.bin"
    assert CollectionMeta.decode(meta.encode()) == meta
    with pytest.raises(DecodeError):
        CollectionMeta.decode(b"CollectionV1.\x00")
