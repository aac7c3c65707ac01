"""Postcard primitives: unsigned LEB128 varints, length-prefixed bytes/str, options.

Postcard (the serde format iroh uses for tickets and relay handshake bodies, wire doc §0)
encodes ``u16``/``u32``/``u64``/``usize`` as unsigned LEB128 (7 bits per byte, least
significant group first), fixed arrays as raw bytes, byte strings and strings as a varint
length followed by the bytes, enums as a varint variant index, and ``Option`` as a ``00``/``01``
tag. Everything here is pure; malformed input raises :class:`~aioiroh.errors.DecodeError`.
"""

from __future__ import annotations

from typing import Final

from ..errors import DecodeError

__all__ = ["Reader", "Writer", "decode_varint", "encode_varint"]

# Bit widths postcard uses; a varint of width w takes at most ceil(w / 7) bytes.
U8: Final = 8
U16: Final = 16
U32: Final = 32
U64: Final = 64
USIZE: Final = 64  # iroh only ships 64-bit targets; postcard encodes usize as a varint


def _max_varint_len(bits: int) -> int:
    return (bits + 6) // 7


def encode_varint(value: int) -> bytes:
    """Encode a non-negative int (up to 64 bits) as unsigned LEB128."""
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, offset: int = 0, *, bits: int = U64) -> tuple[int, int]:
    """Decode an unsigned LEB128 of at most ``bits`` bits at ``offset``.

    Returns ``(value, new_offset)``. Raises :class:`DecodeError` if the input ends inside the
    varint, the varint is longer than the type allows, or the value overflows the type.
    """
    value = 0
    shift = 0
    for i in range(_max_varint_len(bits)):
        pos = offset + i
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >> bits:
                raise DecodeError(f"varint overflows u{bits}")
            return value, pos + 1
        shift += 7
    raise DecodeError(f"varint too long for u{bits}")


class Reader:
    """A cursor over postcard bytes; every read checks bounds."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Bytes not consumed yet."""
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        """The next ``n`` raw bytes (a fixed-size array)."""
        if n < 0 or n > self.remaining:
            raise DecodeError(f"truncated: wanted {n} bytes, {self.remaining} left")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self) -> int:
        """One raw byte (postcard does not varint-encode u8)."""
        return self.take(1)[0]

    def varint(self, bits: int = U64) -> int:
        """An unsigned LEB128 integer of at most ``bits`` bits."""
        value, self._pos = decode_varint(self._data, self._pos, bits=bits)
        return value

    def u16(self) -> int:
        return self.varint(U16)

    def u32(self) -> int:
        return self.varint(U32)

    def u64(self) -> int:
        return self.varint(U64)

    def length(self) -> int:
        """A ``usize`` length or count, checked against the bytes left.

        Every element we decode takes at least one byte, so a count larger than what is left
        is malformed; checking here bounds the work a hostile length can cause.
        """
        n = self.varint(USIZE)
        if n > self.remaining:
            raise DecodeError(f"length {n} exceeds the {self.remaining} bytes left")
        return n

    def bytes_(self) -> bytes:
        """A length-prefixed byte string."""
        return self.take(self.length())

    def str_(self) -> str:
        """A length-prefixed UTF-8 string."""
        raw = self.bytes_()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("string is not valid UTF-8") from None

    def option(self) -> bool:
        """An ``Option`` tag: True if a value follows."""
        tag = self.u8()
        if tag > 1:
            raise DecodeError(f"invalid option tag {tag}")
        return tag == 1

    def finish(self) -> None:
        """Require that every byte was consumed."""
        if self.remaining:
            raise DecodeError(f"{self.remaining} trailing bytes")


class Writer:
    """Accumulates postcard bytes."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def raw(self, data: bytes) -> None:
        """Fixed-size array: raw bytes, no length."""
        self._buf += data

    def u8(self, value: int) -> None:
        self._buf.append(value)

    def varint(self, value: int) -> None:
        self._buf += encode_varint(value)

    def bytes_(self, data: bytes) -> None:
        """Length-prefixed byte string."""
        self.varint(len(data))
        self._buf += data

    def str_(self, text: str) -> None:
        """Length-prefixed UTF-8 string."""
        self.bytes_(text.encode("utf-8"))

    def option(self, present: bool) -> None:
        self._buf.append(1 if present else 0)

    def getvalue(self) -> bytes:
        return bytes(self._buf)
