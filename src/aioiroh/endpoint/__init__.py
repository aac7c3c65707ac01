"""The public endpoint API: Endpoint, Connection, streams."""

from .connection import Connection, PathInfo
from .endpoint import Endpoint, EndpointState
from .streams import RecvStream, SendStream

__all__ = ["Connection", "Endpoint", "EndpointState", "PathInfo", "RecvStream", "SendStream"]
