"""Strict, bounded bencode (BEP 3).

Decoding accepts only the canonical form: integers without leading zeros or ``-0``, string
lengths without leading zeros, dictionary keys as byte strings in strictly ascending order, no
trailing bytes. Depth, string length, item count and total size are bounded so a stranger's
datagram cannot cost more than a few microseconds per byte.
"""

from __future__ import annotations

from typing import Final, TypeAlias

from ..errors import DecodeError

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_SIZE",
    "Bencodable",
    "BencodeError",
    "decode",
    "encode",
]

Bencodable: TypeAlias = int | bytes | list["Bencodable"] | dict[bytes, "Bencodable"]

MAX_SIZE: Final = 4096
"""Largest input :func:`decode` accepts by default (a KRPC datagram is well under 1500 bytes)."""
MAX_DEPTH: Final = 16
"""Deepest list/dict nesting accepted (KRPC needs 3)."""
MAX_ITEMS: Final = 512
"""Most list elements plus dict entries in one input."""
_MAX_INT_DIGITS: Final = 40  # seq is an i64; leave room, refuse bignum CPU bombs


class BencodeError(DecodeError):
    """Input that is not canonical bencode, or exceeds a bound."""


def encode(value: Bencodable) -> bytes:
    """Canonical bencode of ``value`` (``str`` is encoded as UTF-8 bytes, ``bool`` as int)."""
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: object, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BencodeError("value nested too deeply to encode")
    if isinstance(value, bool | int):
        out.append(b"i%de" % int(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, str):
        _encode(value.encode(), out, depth)
    elif isinstance(value, list | tuple):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(value, dict):
        out.append(b"d")
        keys: list[tuple[bytes, object]] = []
        for k, v in value.items():
            kb = k.encode() if isinstance(k, str) else k
            if not isinstance(kb, bytes):
                raise BencodeError(f"dict key must be bytes or str, not {type(k).__name__}")
            keys.append((kb, v))
        keys.sort(key=lambda kv: kv[0])
        for kb, v in keys:
            _encode(kb, out, depth + 1)
            _encode(v, out, depth + 1)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode {type(value).__name__}")


class _Decoder:
    __slots__ = ("data", "items", "max_depth", "max_items", "pos")

    def __init__(self, data: bytes, max_depth: int, max_items: int) -> None:
        self.data = data
        self.pos = 0
        self.items = 0
        self.max_depth = max_depth
        self.max_items = max_items

    def fail(self, why: str) -> BencodeError:
        return BencodeError(f"bencode: {why} at offset {self.pos}")

    def count(self) -> None:
        self.items += 1
        if self.items > self.max_items:
            raise self.fail("too many items")

    def value(self, depth: int) -> Bencodable:
        data = self.data
        if self.pos >= len(data):
            raise self.fail("truncated input")
        c = data[self.pos]
        if c == 0x69:  # i
            return self.integer()
        if 0x30 <= c <= 0x39:
            return self.string()
        if c in (0x6C, 0x64):  # l, d
            if depth >= self.max_depth:
                raise self.fail("nested too deeply")
            self.pos += 1
            if c == 0x6C:
                items: list[Bencodable] = []
                while True:
                    if self.pos >= len(data):
                        raise self.fail("unterminated list")
                    if data[self.pos] == 0x65:
                        self.pos += 1
                        return items
                    self.count()
                    items.append(self.value(depth + 1))
            out: dict[bytes, Bencodable] = {}
            last: bytes | None = None
            while True:
                if self.pos >= len(data):
                    raise self.fail("unterminated dict")
                if data[self.pos] == 0x65:
                    self.pos += 1
                    return out
                self.count()
                if not 0x30 <= data[self.pos] <= 0x39:
                    raise self.fail("dict key is not a string")
                key = self.string()
                if last is not None and key <= last:
                    raise self.fail("dict keys not in strictly ascending order")
                last = key
                out[key] = self.value(depth + 1)
        raise self.fail(f"unexpected byte {c:#04x}")

    def integer(self) -> int:
        data = self.data
        end = data.find(b"e", self.pos + 1, self.pos + 2 + _MAX_INT_DIGITS)
        if end < 0:
            raise self.fail("unterminated or too long integer")
        digits = data[self.pos + 1 : end]
        body = digits[1:] if digits[:1] == b"-" else digits
        if not body or not body.isdigit():
            raise self.fail("integer is not decimal digits")
        if (body[0] == 0x30 and len(body) > 1) or digits == b"-0":
            raise self.fail("non-canonical integer")
        self.pos = end + 1
        return int(digits)

    def string(self) -> bytes:
        data = self.data
        colon = data.find(b":", self.pos, self.pos + 8)
        if colon < 0:
            raise self.fail("string length without colon")
        digits = data[self.pos : colon]
        if not digits.isdigit() or (digits[0] == 0x30 and len(digits) > 1):
            raise self.fail("non-canonical string length")
        n = int(digits)
        start = colon + 1
        if start + n > len(data):
            raise self.fail("string runs past the end")
        self.pos = start + n
        return data[start : self.pos]


def decode(
    data: bytes,
    *,
    max_size: int = MAX_SIZE,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
) -> Bencodable:
    """Decode exactly one canonical bencoded value; raise :class:`BencodeError` otherwise."""
    data = bytes(data)
    if len(data) > max_size:
        raise BencodeError(f"bencode: input of {len(data)} bytes exceeds {max_size}")
    dec = _Decoder(data, max_depth, max_items)
    value = dec.value(0)
    if dec.pos != len(data):
        raise dec.fail("trailing bytes")
    return value
