"""BEP 5 routing table: 160 k-buckets indexed by the XOR-distance prefix length.

Bounded: at most ``k`` entries per bucket, so at most ``160 * k`` in all. A full bucket keeps
its good nodes (BEP 5 prefers long-lived nodes) and only replaces one that stopped answering.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "ID_LEN",
    "K",
    "NodeInfo",
    "RoutingTable",
    "bep42_node_id",
    "crc32c",
    "decode_compact_nodes",
    "distance",
    "encode_compact_nodes",
    "is_bep42_valid",
    "random_node_id",
]

ID_LEN: Final = 20
K: Final = 8
"""Bucket size and lookup width (BEP 5)."""
MAX_FAILURES: Final = 2
"""Unanswered queries after which a node may be replaced."""
_COMPACT_V4: Final = 26

Addr = tuple[str, int]


def random_node_id() -> bytes:
    """A fresh random 160-bit node id."""
    return os.urandom(ID_LEN)


def distance(a: bytes, b: bytes) -> int:
    """XOR distance of two ids, as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


@dataclass(slots=True)
class NodeInfo:
    """A node we know: id, UDP address and liveness bookkeeping."""

    node_id: bytes
    addr: Addr
    last_seen: float = 0.0
    failures: int = field(default=0)


def encode_compact_nodes(nodes: list[NodeInfo]) -> bytes:
    """BEP 5 compact node info (IPv4 only): id ‖ ip ‖ port, 26 bytes each."""
    out = bytearray()
    for n in nodes:
        try:
            ip = socket.inet_aton(n.addr[0])
        except OSError:
            continue
        out += n.node_id + ip + n.addr[1].to_bytes(2, "big")
    return bytes(out)


def decode_compact_nodes(data: bytes, limit: int = 4 * K) -> list[NodeInfo]:
    """Parse compact node info; ignores a ragged tail, port 0 and at most ``limit`` entries."""
    out: list[NodeInfo] = []
    for i in range(0, min(len(data) // _COMPACT_V4, limit) * _COMPACT_V4, _COMPACT_V4):
        chunk = data[i : i + _COMPACT_V4]
        port = int.from_bytes(chunk[24:26], "big")
        if port == 0:
            continue
        ip = str(ipaddress.IPv4Address(chunk[20:24]))
        out.append(NodeInfo(bytes(chunk[:20]), (ip, port)))
    return out


class RoutingTable:
    """k-buckets around ``own_id``; pure data structure, the caller passes the time."""

    def __init__(self, own_id: bytes, k: int = K) -> None:
        if len(own_id) != ID_LEN:
            raise ValueError("node id must be 20 bytes")
        self.own_id = own_id
        self.k = k
        self._buckets: list[list[NodeInfo]] = [[] for _ in range(ID_LEN * 8)]

    def _bucket(self, node_id: bytes) -> list[NodeInfo] | None:
        d = distance(self.own_id, node_id)
        if d == 0:
            return None
        return self._buckets[ID_LEN * 8 - d.bit_length()]

    def add(self, node_id: bytes, addr: Addr, now: float) -> bool:
        """Record that ``node_id`` at ``addr`` is alive; return whether it is in the table."""
        bucket = self._bucket(node_id)
        if bucket is None or len(node_id) != ID_LEN:
            return False
        for n in bucket:
            if n.node_id == node_id:
                if n.addr != addr:
                    # An id moving address is either churn or spoofing; keep the known one
                    # until it stops answering.
                    if n.failures < MAX_FAILURES:
                        return True
                    n.addr = addr
                n.last_seen = now
                n.failures = 0
                return True
        if any(n.addr == addr for n in bucket):
            return False
        if len(bucket) < self.k:
            bucket.append(NodeInfo(node_id, addr, now))
            return True
        worst = max(bucket, key=lambda n: (n.failures, -n.last_seen))
        if worst.failures >= MAX_FAILURES:
            bucket.remove(worst)
            bucket.append(NodeInfo(node_id, addr, now))
            return True
        return False

    def failed(self, addr: Addr) -> None:
        """A query to ``addr`` went unanswered; drop the node after repeated failures."""
        for bucket in self._buckets:
            for n in bucket:
                if n.addr == addr:
                    n.failures += 1
                    if n.failures > MAX_FAILURES * 2:
                        bucket.remove(n)
                    return

    def closest(self, target: bytes, count: int | None = None) -> list[NodeInfo]:
        """The ``count`` (default k) live nodes nearest ``target``."""
        count = self.k if count is None else count
        nodes = [n for b in self._buckets for n in b if n.failures < MAX_FAILURES]
        nodes.sort(key=lambda n: distance(n.node_id, target))
        return nodes[:count]

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets)

    def nodes(self) -> list[NodeInfo]:
        """Every node in the table."""
        return [n for b in self._buckets for n in b]


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C: Final = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum BEP 42 derives node ids from."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _bep42_prefix(ip: str, rand: int) -> int:
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        masked = int(addr) & 0x030F3FFF
        masked |= (rand & 7) << 29
        return crc32c(masked.to_bytes(4, "big"))
    high = int.from_bytes(addr.packed[:8], "big") & 0x0103070F1F3F7FFF
    high |= (rand & 7) << 61
    return crc32c(high.to_bytes(8, "big"))


def bep42_node_id(ip: str, rand: int | None = None) -> bytes:
    """A node id bound to our external ``ip`` (BEP 42): 21 bits from CRC-32C of the masked
    address, the last byte the random ``rand`` the checksum was salted with."""
    rand = os.urandom(1)[0] if rand is None else rand & 0xFF
    crc = _bep42_prefix(ip, rand)
    tail = bytearray(os.urandom(ID_LEN - 3))
    tail[-1] = rand
    third = ((crc >> 8) & 0xF8) | (os.urandom(1)[0] & 0x07)
    return bytes([(crc >> 24) & 0xFF, (crc >> 16) & 0xFF, third]) + bytes(tail)


def is_bep42_valid(node_id: bytes, ip: str) -> bool:
    """Whether ``node_id`` matches ``ip`` per BEP 42; local and private addresses are exempt."""
    addr = ipaddress.ip_address(ip)
    if not addr.is_global:
        return True
    if len(node_id) != ID_LEN:
        return False
    crc = _bep42_prefix(ip, node_id[-1])
    return (
        node_id[0] == (crc >> 24) & 0xFF
        and node_id[1] == (crc >> 16) & 0xFF
        and (node_id[2] & 0xF8) == (crc >> 8) & 0xF8
    )
