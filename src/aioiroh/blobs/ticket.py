"""``BlobTicket`` (sendme's ``blob…`` strings), ``HashSeq`` and ``Collection``.

Ticket text: ``"blob"`` + lowercase unpadded base32 of postcard ``Variant0 { endpoint id,
relay url (Option<str>), direct addresses (Vec<SocketAddr>), format (0 raw, 1 hash seq),
hash }``. A hash sequence is a blob of concatenated 32-byte hashes; a collection is a hash
sequence whose child 0 is ``postcard(CollectionMeta { header: "CollectionV0.", names })``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from ..base._postcard import Reader, Writer
from ..base._z32 import b32_decode, b32_encode
from ..base.key import KEY_LENGTH, PublicKey
from ..errors import DecodeError

__all__ = ["BlobFormat", "BlobTicket", "CollectionMeta", "decode_hash_seq", "encode_hash_seq"]

KIND: Final = "blob"
MAX_TICKET_LEN: Final = 64 * 1024
MAX_ADDRS: Final = 64
COLLECTION_HEADER: Final = b"CollectionV0."
MAX_COLLECTION_NAMES: Final = 1 << 20


class BlobFormat:
    RAW: Final = 0
    HASH_SEQ: Final = 1


@dataclass(frozen=True)
class BlobTicket:
    """Where to fetch a blob (``format`` RAW) or a hash sequence / collection (HASH_SEQ)."""

    endpoint_id: PublicKey
    relay_url: str | None
    direct_addrs: tuple[tuple[str, int], ...]
    format: int
    hash: bytes

    def to_bytes(self) -> bytes:
        w = Writer()
        w.varint(0)
        w.raw(self.endpoint_id.to_bytes())
        w.option(self.relay_url is not None)
        if self.relay_url is not None:
            w.str_(self.relay_url)
        w.varint(len(self.direct_addrs))
        for host, port in self.direct_addrs:
            ip = ipaddress.ip_address(host)
            w.varint(0 if ip.version == 4 else 1)
            w.raw(ip.packed)
            w.varint(port)
        w.varint(self.format)
        w.raw(self.hash)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> BlobTicket:
        r = Reader(data)
        if r.varint() != 0:
            raise DecodeError("unknown blob ticket variant")
        endpoint_id = PublicKey.from_bytes(r.take(KEY_LENGTH))
        relay = r.str_() if r.option() else None
        n = r.length()
        if n > MAX_ADDRS:
            raise DecodeError("too many addresses in ticket")
        addrs = []
        for _ in range(n):
            fam = r.varint()
            if fam not in (0, 1):
                raise DecodeError("bad socket address family")
            ip = ipaddress.ip_address(r.take(4 if fam == 0 else 16))
            addrs.append((str(ip), r.u16()))
        fmt = r.varint()
        if fmt not in (BlobFormat.RAW, BlobFormat.HASH_SEQ):
            raise DecodeError(f"unknown blob format {fmt}")
        h = r.take(32)
        r.finish()
        return cls(endpoint_id, relay, tuple(addrs), fmt, h)

    def __str__(self) -> str:
        return KIND + b32_encode(self.to_bytes())

    @classmethod
    def parse(cls, text: str) -> BlobTicket:
        if len(text) > MAX_TICKET_LEN or text[: len(KIND)].lower() != KIND:
            raise DecodeError("not a blob ticket")
        body = text[len(KIND) :]
        if not body.isascii() or not body.isalnum():
            raise DecodeError("invalid base32 in blob ticket")
        return cls.from_bytes(b32_decode(body))


def encode_hash_seq(hashes: list[bytes]) -> bytes:
    return b"".join(hashes)


def decode_hash_seq(data: bytes) -> list[bytes]:
    if len(data) % 32:
        raise DecodeError("hash sequence length is not a multiple of 32")
    return [data[i : i + 32] for i in range(0, len(data), 32)]


@dataclass(frozen=True)
class CollectionMeta:
    """Child 0 of a collection: the names of the files that follow it."""

    names: tuple[str, ...]

    def encode(self) -> bytes:
        w = Writer()
        w.raw(COLLECTION_HEADER)
        w.varint(len(self.names))
        for name in self.names:
            w.str_(name)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> CollectionMeta:
        r = Reader(data)
        if r.take(len(COLLECTION_HEADER)) != COLLECTION_HEADER:
            raise DecodeError("not a CollectionV0 header")
        n = r.length()
        if n > MAX_COLLECTION_NAMES:
            raise DecodeError("too many names in collection")
        names = tuple(r.str_() for _ in range(n))
        r.finish()
        return cls(names)
