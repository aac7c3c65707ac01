"""A minimal STUN (RFC 5389) Binding responder for the lab: ``python -m lab.stun_server IP``.

miniupnpd refuses to map ports when its WAN address is a reserved one (the lab's 198.18/15)
unless a STUN test shows the router is not itself behind a NAT; this answers that test from a
lab host. It prints ``{"port": 3478}`` once listening and exits on stdin EOF.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys

MAGIC = 0x2112A442
PORT = 3478


class Stun(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 20 or len(data) > 548:
            return
        mtype, _length, magic = struct.unpack_from("!HHI", data)
        if mtype != 0x0001:
            return
        txid = data[8:20] if magic == MAGIC else data[4:20]
        ip = socket.inet_aton(addr[0])
        mapped = struct.pack("!HHBBH", 0x0001, 8, 0, 1, addr[1]) + ip
        xip = bytes(a ^ b for a, b in zip(ip, struct.pack("!I", MAGIC), strict=True))
        xor = struct.pack("!HHBBH", 0x0020, 8, 0, 1, addr[1] ^ (MAGIC >> 16)) + xip
        body = mapped + xor
        head = struct.pack("!HHI", 0x0101, len(body), magic) + data[8:20]
        if magic != MAGIC:
            head = struct.pack("!HH", 0x0101, len(body)) + txid
        self.transport.sendto(head + body, addr)


async def main(ip: str) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Stun, local_addr=(ip, PORT))
    sys.stdout.write(json.dumps({"port": PORT}) + "\n")
    sys.stdout.flush()
    await loop.run_in_executor(None, sys.stdin.read)
    transport.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
