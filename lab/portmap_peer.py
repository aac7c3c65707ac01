"""``lab.iroh_peer`` with port mapping on: ``python -m lab.portmap_peer`` takes the same arguments.

aioiroh peers bind with ``port_mapping=True`` (default gateway) and wait up to
:data:`MAPPING_WAIT` seconds for the router's mapping before going on, like Rust iroh's
``online()`` waiting for its first net report; Rust peers run unchanged (the PyPI ``iroh``
binding has its portmapper on by default).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from aioiroh import Endpoint

MAPPING_WAIT = 5.0

_bind = Endpoint.bind.__func__  # type: ignore[attr-defined]


async def _bind_with_mapping(cls: type[Endpoint], *args: Any, **kwargs: Any) -> Endpoint:
    kwargs.setdefault("port_mapping", True)
    ep: Endpoint = await _bind(cls, *args, **kwargs)
    mapper = ep._portmapper
    if mapper is not None:
        try:
            async with asyncio.timeout(MAPPING_WAIT):
                while ep.port_mapping() is None:
                    mapper.updated.clear()
                    await mapper.updated.wait()
        except TimeoutError:
            pass
    return ep


Endpoint.bind = classmethod(_bind_with_mapping)  # type: ignore[method-assign,assignment]

if __name__ == "__main__":
    from lab.iroh_peer import main

    main(sys.argv[1:])
