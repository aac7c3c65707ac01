"""An aioquic-shaped view of a connection's engine, for sans-I/O protocol layers (HTTP/3)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

__all__ = ["AioquicView"]


class AioquicView:
    """An engine seen through the parts of aioquic's ``QuicConnection`` API that protocol
    layers such as aioquic's ``H3Connection`` use, whatever the engine is.

    H3Connection touches a few attributes beyond the sans-I/O calls (``configuration``, the
    qlog trace, the peer's datagram limit); ``get_next_available_stream_id`` is answered by
    the engine, the one owner of stream ids.
    """

    def __init__(self, engine: Any, conn: Any) -> None:
        self._engine = engine
        self._conn = conn
        settings = getattr(engine, "settings", None)
        self.configuration = SimpleNamespace(
            is_client=engine.is_client,
            max_datagram_frame_size=getattr(settings, "max_datagram_frame_size", None),
        )
        self._quic_logger = None

    @property
    def _remote_max_datagram_frame_size(self) -> int | None:
        return getattr(self._engine, "_remote_max_datagram_frame_size", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)
