"""Request codecs of the iroh-blobs wire protocol (ALPN ``/iroh-bytes/4``), sans-I/O.

A request is a postcard ``Request`` enum: ``Get`` = 0, ``Observe`` = 1, ``Push`` = 8,
``GetMany`` = 9. Ranges are in 1 KiB BLAKE3 chunks. A :class:`ChunkRangesSeq` maps a child
offset (0 = the blob itself, i = child i-1 of a hash sequence) to a set of chunk ranges; an
entry applies from its offset until the next entry, the last one to every later child. On the
wire each entry is (offset delta, boundary deltas), the boundaries alternating start/end, an odd
count meaning the last range is open-ended. Decoding is bounded in entries and boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..base._postcard import Reader, Writer
from ..errors import DecodeError

__all__ = ["ALPN", "ChunkRangesSeq", "GetManyRequest", "GetRequest", "decode_request"]

ALPN: Final = b"/iroh-bytes/4"
MAX_RANGE_ENTRIES: Final = 1024
MAX_BOUNDARIES: Final = 4096
HASH_LEN: Final = 32

_GET: Final = 0
_GET_MANY: Final = 9

# One entry: child offset and absolute chunk boundaries (start, end, start, ...).
RangeEntry = tuple[int, tuple[int, ...]]


@dataclass(frozen=True)
class ChunkRangesSeq:
    """Chunk ranges per child offset, as iroh-blobs' ``ChunkRangesSeq``."""

    entries: tuple[RangeEntry, ...]

    @classmethod
    def root(cls) -> ChunkRangesSeq:
        """The whole blob, no children."""
        return cls(((0, (0,)), (1, ())))

    @classmethod
    def all(cls) -> ChunkRangesSeq:
        """The whole blob and every child of its hash sequence."""
        return cls(((0, (0,)),))

    def for_offset(self, offset: int) -> tuple[int, ...]:
        """Boundaries requested for child ``offset``."""
        found: tuple[int, ...] = ()
        for off, bounds in self.entries:
            if off > offset:
                break
            found = bounds
        return found

    def encode(self, w: Writer) -> None:
        w.varint(len(self.entries))
        prev_off = 0
        for off, bounds in self.entries:
            w.varint(off - prev_off)
            prev_off = off
            w.varint(len(bounds))
            prev = 0
            for b in bounds:
                w.varint(b - prev)
                prev = b

    @classmethod
    def decode(cls, r: Reader) -> ChunkRangesSeq:
        n = r.length()
        if n > MAX_RANGE_ENTRIES:
            raise DecodeError(f"too many range entries: {n}")
        entries: list[RangeEntry] = []
        off = 0
        total = 0
        for i in range(n):
            delta = r.varint()
            if i and delta == 0:
                raise DecodeError("range entries not strictly increasing")
            off += delta
            k = r.length()
            total += k
            if total > MAX_BOUNDARIES:
                raise DecodeError("too many range boundaries")
            bounds = []
            b = 0
            for j in range(k):
                d = r.varint()
                if j and d == 0:
                    raise DecodeError("range boundaries not strictly increasing")
                b += d
                bounds.append(b)
            entries.append((off, tuple(bounds)))
        return cls(tuple(entries))


@dataclass(frozen=True)
class GetRequest:
    """Fetch ``ranges`` of the blob ``hash`` (and of its children if it is a hash sequence)."""

    hash: bytes
    ranges: ChunkRangesSeq

    def encode(self) -> bytes:
        w = Writer()
        w.varint(_GET)
        w.raw(self.hash)
        self.ranges.encode(w)
        return w.getvalue()


@dataclass(frozen=True)
class GetManyRequest:
    """Fetch several unrelated blobs; ``ranges`` offset i applies to ``hashes[i]``."""

    hashes: tuple[bytes, ...]
    ranges: ChunkRangesSeq

    def encode(self) -> bytes:
        w = Writer()
        w.varint(_GET_MANY)
        w.varint(len(self.hashes))
        for h in self.hashes:
            w.raw(h)
        self.ranges.encode(w)
        return w.getvalue()


def decode_request(data: bytes) -> GetRequest | GetManyRequest:
    """Decode one complete request; unknown or unsupported variants raise DecodeError."""
    r = Reader(data)
    tag = r.varint()
    req: GetRequest | GetManyRequest
    if tag == _GET:
        h = r.take(HASH_LEN)
        req = GetRequest(h, ChunkRangesSeq.decode(r))
    elif tag == _GET_MANY:
        n = r.length()
        if n > MAX_RANGE_ENTRIES:
            raise DecodeError(f"too many hashes: {n}")
        hashes = tuple(r.take(HASH_LEN) for _ in range(n))
        req = GetManyRequest(hashes, ChunkRangesSeq.decode(r))
    else:
        raise DecodeError(f"unsupported request variant {tag}")
    r.finish()
    return req
