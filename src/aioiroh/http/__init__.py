"""HTTP over iroh: HTTP/3 on the ALPN ``iroh+h3``.

Client: ``httpx.AsyncClient(transport=IrohTransport(endpoint))`` with ``iroh://<endpoint id>/``
URLs. Server: ``await serve(app, endpoint)`` for any ASGI application.
"""

from ._h3 import ALPN_H3
from .asgi import AsgiServer, ClientDisconnected, LifespanFailed, serve
from .transport import IrohTransport

__all__ = [
    "ALPN_H3",
    "AsgiServer",
    "ClientDisconnected",
    "IrohTransport",
    "LifespanFailed",
    "serve",
]
