"""Port mapping errors: all :class:`~aioiroh.errors.IrohError` subclasses."""

from __future__ import annotations

from ..errors import DecodeError, IrohError

__all__ = ["PortMapDecodeError", "PortMapError", "PortMapRefused"]


class PortMapError(IrohError):
    """A port mapping protocol exchange failed (no answer, refused, or nonsense)."""


class PortMapDecodeError(PortMapError, DecodeError):
    """A gateway sent bytes, XML or SOAP that do not parse as the protocol says."""


class PortMapRefused(PortMapError):
    """The gateway answered with an error result code (``code``: the protocol's number)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
