"""A port mapping client in a lab device: ``python -m lab.portmap_client PROTOCOL LEASE``.

Keeps a :class:`~aioiroh.portmapper.PortMapper` running for a fresh UDP socket on the default
gateway with only ``PROTOCOL`` ("pcp", "nat-pmp" or "upnp") enabled, and speaks JSON lines:
it prints ``{"mapping": ..., "renewals": n}`` each time the mapping is taken or renewed, and on
stdin EOF releases it and prints ``{"closed": true}``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys

from aioiroh.portmapper import PortMapper


def emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(protocol: str, lease: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        mapper = PortMapper(sock.getsockname()[1], lease=lease, protocols=(protocol,))
        mapper.start()
        loop = asyncio.get_running_loop()
        eof = loop.run_in_executor(None, sys.stdin.read)

        async def report() -> None:
            while True:
                await mapper.updated.wait()
                mapper.updated.clear()
                m = mapper.mapping()
                emit({"mapping": m.to_json() if m else None, "renewals": mapper.metrics.renewals,
                      "restarts": mapper.metrics.gateway_restarts})  # fmt: skip

        reporter = asyncio.create_task(report())
        await eof
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        await mapper.close()
        emit({"closed": True, "releases": mapper.metrics.releases})


async def doctor(bind: str) -> dict[str, object]:
    """``aioiroh doctor --port-mapping``'s section (``run_json("lab.portmap_client:doctor")``)."""
    from aioiroh.cli.doctor import Context, probe_port_mapping
    from aioiroh.portmapper import default_gateway

    return await probe_port_mapping(Context((), None, bind, port_mapping=default_gateway))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
