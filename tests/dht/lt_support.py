"""libtorrent sessions confined to loopback, as the independent DHT oracle."""

from __future__ import annotations

import hashlib
import time
from typing import Any

try:
    import libtorrent as lt
except ImportError as exc:  # pragma: no cover - the test extra installs it
    raise ImportError(
        "libtorrent is required for the DHT oracle tests: pip install -e '.[test]'"
    ) from exc

__all__ = ["LtNode", "expanded_secret", "lt"]


def expanded_secret(seed: bytes) -> bytes:
    """libtorrent's 64-byte Ed25519 private key: the clamped SHA-512 expansion of the seed."""
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return bytes(h)


def loopback_settings(bootstrap: str) -> dict[str, Any]:
    return {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_bootstrap_nodes": bootstrap,  # never the default dht.libtorrent.org
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        # Every node shares 127.0.0.1: the per-IP block (5 queries/s) would silence the swarm.
        "dht_block_ratelimit": 100000,
        "alert_mask": lt.alert.category_t.dht_notification | lt.alert.category_t.error_notification,
    }


class LtNode:
    """One libtorrent session with only its DHT in use, bound to 127.0.0.1."""

    def __init__(self, bootstrap: list[tuple[str, int]]) -> None:
        boot = ",".join(f"{h}:{p}" for h, p in bootstrap)
        self.session = lt.session(loopback_settings(boot))
        for addr in bootstrap:
            self.session.add_dht_node(addr)

    @property
    def port(self) -> int:
        return int(self.session.listen_port())

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def wait_alert(self, kind: type, timeout: float, pred: Any = None) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.session.wait_for_alert(100)
            for a in self.session.pop_alerts():
                if isinstance(a, kind) and (pred is None or pred(a)):
                    return a
        raise TimeoutError(f"no {kind.__name__} within {timeout} s")

    def close(self) -> None:
        self.session.pause()
        del self.session
