"""Helpers for driving sans-I/O engines in tests."""

from __future__ import annotations

from typing import Any

from aioquic.quic import events


def app_reads(conn: Any, ev: events.QuicEvent, now: float) -> None:
    """Play an application that reads every stream byte as it arrives.

    Receive credit follows what the application read, so a harness that collects stream
    events must report them, or the peer stops after one window.
    """
    if isinstance(ev, events.StreamDataReceived):
        if ev.data:
            conn.stream_consumed(ev.stream_id, len(ev.data), now)
        if ev.end_stream:
            conn.stream_released(ev.stream_id)
    elif isinstance(ev, events.StreamReset):
        conn.stream_released(ev.stream_id)
