"""The aioiroh exception tree.

Every error the library raises on purpose derives from :class:`IrohError`::

    IrohError
    ├── DecodeError (also ValueError)   malformed key, ticket, URL, frame, packet or record
    │   └── KeyParseError               a key or signature that is not valid
    ├── SignatureError                  a signature that does not verify
    ├── ConnectError                    a dial did not produce a connection
    │   ├── ConnectTimeout              nobody answered in time (unreachable peer)
    │   ├── AuthenticationError         the peer's key is not the EndpointId we dialed
    │   └── AlpnMismatchError           the peer does not speak the requested ALPN
    ├── ConnectionLost                  an established connection ended
    │   ├── ConnectionClosedByPeer      the peer sent CONNECTION_CLOSE (code, reason)
    │   ├── LocallyClosed               we closed it
    │   └── TimedOut                    idle timeout
    ├── StreamError                     stream-level failures
    │   ├── StreamReset                 the peer reset the stream (error code)
    │   ├── StreamStopped               the peer stopped reading (error code)
    │   └── ReadTooLong                 read_to_end() saw more than its limit
    ├── EndpointClosed                  the endpoint was closed
    ├── RelayError                      relay protocol or connection problems
    │   └── RelayAuthError              the relay denied our handshake
    └── ProtocolError                   a peer broke a protocol rule (code, reason)
"""

from __future__ import annotations

__all__ = [
    "AlpnMismatchError",
    "AuthenticationError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosedByPeer",
    "ConnectionLost",
    "DecodeError",
    "EndpointClosed",
    "IrohError",
    "KeyParseError",
    "LocallyClosed",
    "ProtocolError",
    "ReadTooLong",
    "RelayAuthError",
    "RelayError",
    "SignatureError",
    "StreamError",
    "StreamReset",
    "StreamStopped",
    "TimedOut",
]


class IrohError(Exception):
    """Base of every error raised by aioiroh."""


class DecodeError(IrohError, ValueError):
    """Bytes or text that do not decode to what they claim to be."""


class KeyParseError(DecodeError):
    """A key or signature is malformed (wrong length, not a curve point, bad text)."""


class SignatureError(IrohError):
    """A signature does not verify against the given key and message."""


class ConnectError(IrohError):
    """A dial did not produce a connection."""


class ConnectTimeout(ConnectError, TimeoutError):
    """No answer from the peer before the dial timed out."""


class AuthenticationError(ConnectError):
    """The peer presented a key other than the EndpointId we dialed, or none at all."""


class AlpnMismatchError(ConnectError):
    """The peer does not accept the requested application protocol."""


class ConnectionLost(IrohError):
    """An established connection has ended; ``code`` and ``reason`` say how."""

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ConnectionClosedByPeer(ConnectionLost):
    """The peer closed the connection (application or transport close)."""


class LocallyClosed(ConnectionLost):
    """The connection was closed on this side."""


class TimedOut(ConnectionLost):
    """The connection was idle for longer than the idle timeout."""


class StreamError(IrohError):
    """A stream operation failed."""


class StreamReset(StreamError):
    """The peer reset the stream; ``code`` is its application error code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"stream reset by peer with code {code}")
        self.code = code


class StreamStopped(StreamError):
    """The peer asked us to stop sending; ``code`` is its application error code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"stream stopped by peer with code {code}")
        self.code = code


class ReadTooLong(StreamError):
    """``read_to_end(limit)`` received more than ``limit`` bytes."""


class DatagramTooLarge(IrohError, ValueError):
    """A datagram does not fit the path or the peer's limit (a ValueError too, as before)."""


class EndpointClosed(IrohError):
    """The endpoint is closed."""


class RelayError(IrohError):
    """A relay connection or relay protocol failure."""


class RelayAuthError(RelayError):
    """The relay refused our authentication."""


class ProtocolError(IrohError):
    """A peer broke a protocol rule; ``code`` is the wire error code if there is one."""

    def __init__(self, reason: str, *, code: int = 0) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
