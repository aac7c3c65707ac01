"""Stream framing of iroh-gossip (sans-I/O).

Both ALPNs frame with ``u32 big-endian length || postcard body``:

* ``/iroh-gossip/1``: one uni stream per (connection, topic). The first frame is the
  ``StreamHeader { topic_id }`` (32 raw bytes), then topic messages; the sender finishes the
  stream after a Disconnect.
* ``/iroh-gossip/0``: one bi stream per connection (the dialer opens it), each frame a
  ``ProtoMessage { topic, message }``.

As in Rust, a writer refuses a body of ``max_message_size`` bytes or more and a reader refuses a
length above ``max_message_size`` before buffering anything.
"""

from __future__ import annotations

import struct
from typing import Final

from ..base.key import PublicKey
from .messages import (
    DEFAULT_MAX_MESSAGE_SIZE,
    GossipDecodeError,
    GossipError,
    Message,
    ProtoMessage,
    TopicId,
    decode_message,
    decode_proto_message,
    encode_message,
    encode_proto_message,
)

__all__ = [
    "ALPN_V0",
    "ALPN_V1",
    "FrameDecoder",
    "MessageTooLarge",
    "decode_stream_header",
    "encode_frame",
    "encode_stream_header",
    "frame_message",
    "frame_proto_message",
]

ALPN_V1: Final = b"/iroh-gossip/1"
ALPN_V0: Final = b"/iroh-gossip/0"

_LEN: Final = struct.Struct(">I")


class MessageTooLarge(GossipError):
    """A message does not fit ``max_message_size``."""


def encode_frame(body: bytes, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> bytes:
    """Length-prefix ``body``; raises :class:`MessageTooLarge` if it is too big to send."""
    if len(body) >= max_message_size:
        raise MessageTooLarge(f"message of {len(body)} bytes, limit {max_message_size}")
    return _LEN.pack(len(body)) + body


def encode_stream_header(topic: TopicId) -> bytes:
    """The first frame of an ``/iroh-gossip/1`` uni stream."""
    return encode_frame(bytes(topic))


def decode_stream_header(body: bytes) -> TopicId:
    if len(body) != 32:
        raise GossipDecodeError(f"stream header of {len(body)} bytes, expected 32")
    return TopicId(body)


def frame_message(
    msg: Message[PublicKey], max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> bytes:
    return encode_frame(encode_message(msg), max_message_size)


def frame_proto_message(
    msg: ProtoMessage[PublicKey], max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> bytes:
    return encode_frame(encode_proto_message(msg), max_message_size)


class FrameDecoder:
    """Splits a byte stream into frame bodies; holds at most one partial frame.

    Feed bytes with :meth:`feed`, then take bodies with :meth:`next_frame` until it returns
    None. A length above ``max_message_size`` raises :class:`GossipDecodeError` at once.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._max = max_message_size
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_frame(self) -> bytes | None:
        if len(self._buf) < 4:
            return None
        (n,) = _LEN.unpack_from(self._buf)
        if n > self._max:
            raise GossipDecodeError(f"frame of {n} bytes exceeds the limit of {self._max}")
        if len(self._buf) < 4 + n:
            return None
        body = bytes(self._buf[4 : 4 + n])
        del self._buf[: 4 + n]
        return body

    def at_clean_end(self) -> bool:
        """True if no partial frame is buffered (a stream may end here)."""
        return not self._buf

    def next_message(self) -> Message[PublicKey] | None:
        body = self.next_frame()
        return None if body is None else decode_message(body)

    def next_proto_message(self) -> ProtoMessage[PublicKey] | None:
        body = self.next_frame()
        return None if body is None else decode_proto_message(body)
