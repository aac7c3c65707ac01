"""Link impairment inside a lab namespace: loss (nftables), rate (``tbf``), delay (``netem``).

Loss is done with nftables random drops rather than netem because netem is often not built
into the kernel (it is not on the machine the recipe was written on). Router drops live in
their own ``table ip natlab_link`` (so reloading the NAT ruleset leaves them in place) at
``raw`` priority, before conntrack, so a dropped packet leaves no state behind. A device's
link is impaired from the bridge side with a ``bridge`` family table, so the device's own
stack never sees an error (a drop on a local ``output`` hook would surface as EPERM).

Rate limiting shapes *egress* of one interface with a token bucket filter. Delay needs
``sch_netem``; :func:`netem_available` probes for it once per process, and :func:`set_delay`
raises :class:`LinkUnsupported` when it is missing so callers can report that plainly.
"""

from __future__ import annotations

import os
import re
import uuid

from .netns import NS_PREFIX, LabError, Namespace, delete_namespace, run

TABLE = "natlab_link"
# nft's numgen draws from 0..LOSS_SCALE-1, so loss has a resolution of 0.1 %.
LOSS_SCALE = 1000
# tbf: bytes the bucket may burst, and the most time a packet may wait in the queue.
TBF_BURST = "32kbit"
TBF_LATENCY = "50ms"

_RATE_RE = re.compile(r"^\d+(\.\d+)?(bit|kbit|mbit|gbit)$")
_netem: bool | None = None


class LinkUnsupported(LabError):
    """The kernel lacks what this impairment needs (e.g. ``sch_netem``)."""


def set_loss(ns: Namespace, percent: float, ifaces: list[str]) -> None:
    """Drop ``percent`` % of packets that ``ns`` receives on any of ``ifaces`` (routed path).

    Meant for routers: given both the LAN and WAN interface, forwarded traffic is hit once
    in each direction. Drops happen on ingress, never on a local ``output`` hook, because a
    local drop shows up as EPERM in the sender's ``sendto`` instead of silent loss.
    ``percent=0`` removes the impairment.
    """
    n = _loss_threshold(percent)
    names = "{ " + ", ".join(f'"{i}"' for i in ifaces) + " }"
    rules = ""
    if n > 0:
        rules = f"""
    chain loss_pre {{
        type filter hook prerouting priority raw; policy accept;
        iifname {names} numgen random mod {LOSS_SCALE} < {n} drop
    }}"""
    _replace_table(ns, "ip", TABLE, rules)


def set_port_loss(ns: Namespace, percent: float, port: str, table: str) -> None:
    """Drop ``percent`` % of frames in each direction on bridge port ``port`` in ``ns``.

    This impairs one device's link from the bridge side (the device's own stack never sees
    an error), whether the bridge is a router's LAN or the internet segment. ``table`` must
    be unique per port; ``percent=0`` removes it.
    """
    n = _loss_threshold(percent)
    if n == 0:
        ns.exec("nft", "delete", "table", "bridge", table, check=False)
        return
    rules = f"""
    chain up {{
        type filter hook prerouting priority -300; policy accept;
        iifname "{port}" numgen random mod {LOSS_SCALE} < {n} drop
    }}
    chain down {{
        type filter hook postrouting priority -300; policy accept;
        oifname "{port}" numgen random mod {LOSS_SCALE} < {n} drop
    }}"""
    _replace_table(ns, "bridge", table, rules)


def _loss_threshold(percent: float) -> int:
    if not 0 <= percent <= 100:
        raise LabError(f"loss must be within 0..100 %, got {percent}")
    return round(percent * LOSS_SCALE / 100)


def _replace_table(ns: Namespace, family: str, table: str, body: str) -> None:
    # "add; delete; define" in one script replaces the table atomically, existing or not.
    head = f"table {family} {table}\ndelete table {family} {table}\n"
    ns.nft(f"{head}table {family} {table} {{{body}\n}}\n")


def set_rate(ns: Namespace, iface: str, rate: str | None) -> None:
    """Limit egress of ``iface`` to ``rate`` (tc units, e.g. ``"8mbit"``); None removes it."""
    if rate is None:
        ns.exec("tc", "qdisc", "del", "dev", iface, "root", check=False)
        return
    if not _RATE_RE.match(rate):
        raise LabError(f"rate must look like 500kbit or 8mbit, got {rate!r}")
    ns.exec(
        "tc", "qdisc", "replace", "dev", iface, "root", "tbf",
        "rate", rate, "burst", TBF_BURST, "latency", TBF_LATENCY,
    )  # fmt: skip


def netem_available() -> bool:
    """Whether ``tc ... netem`` works here (probed once in a scratch namespace)."""
    global _netem
    if _netem is None:
        name = f"{NS_PREFIX}{os.getpid()}-probe-{uuid.uuid4().hex[:6]}"
        run(["ip", "netns", "add", name])
        try:
            ns = Namespace(name)
            ns.ip("link", "set", "lo", "up")
            ns.exec("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False)
            shown = ns.exec("tc", "qdisc", "show", "dev", "lo")
            _netem = "netem" in shown
        finally:
            delete_namespace(name)
    return _netem


def set_delay(ns: Namespace, iface: str, delay_ms: float, jitter_ms: float = 0.0) -> None:
    """Delay egress of ``iface`` with netem; LinkUnsupported when the kernel has no netem.

    This replaces any root qdisc on ``iface`` (netem and a tbf rate limit don't stack here).
    """
    if not netem_available():
        raise LinkUnsupported("this kernel has no sch_netem: latency cannot be emulated")
    args = ["delay", f"{delay_ms}ms"]
    if jitter_ms:
        args.append(f"{jitter_ms}ms")
    ns.exec("tc", "qdisc", "replace", "dev", iface, "root", "netem", *args)
