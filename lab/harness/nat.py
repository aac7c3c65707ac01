"""nftables rulesets that turn a router namespace into a NAT of a given behaviour.

The names follow iroh's tests:

- ``none``: no NAT at all; the device has a public address (no router namespace).
- ``open``: endpoint-independent mapping and filtering (full cone).
- ``moderate``: endpoint-independent mapping, address-and-port-dependent filtering (a typical
  home router, port-restricted cone).
- ``strict``: endpoint-dependent mapping with random ports (symmetric NAT).

Design (see docs/internals/natlab-recipe.md §3): one ``table ip natlab`` per router.
Mapping comes from
``snat`` (Linux keeps the source port when it can, which gives EIM) or ``snat ... random``
(EDM). Filtering is conntrack: only established/related flows come in from the WAN. ``open``
additionally keeps a dynamic map ``public port -> inside ip . port`` filled from a filter chain
*after* source NAT (so the key is the port conntrack really chose) and DNATs any inbound UDP
through it. Unsolicited WAN packets to the router itself are dropped in ``input`` before
conntrack confirms them; otherwise they leave a conntrack entry that later forces SNAT onto a
different port and breaks simultaneous open.
"""

from __future__ import annotations

from typing import Literal, get_args

from .netns import LabError, Namespace

NatKind = Literal["none", "open", "moderate", "strict"]
NAT_KINDS: tuple[str, ...] = get_args(NatKind)
TABLE = "natlab"
# How long an ``open`` mapping lives without traffic (the map entry's timeout).
EIF_MAP_TIMEOUT_S = 120
# Router conntrack UDP timeouts: unreplied flows, and flows seen in both directions.
UDP_TIMEOUT_S = 30
UDP_STREAM_TIMEOUT_S = 120


def check_kind(kind: str) -> NatKind:
    """Return ``kind`` if it names a NAT behaviour, else raise LabError."""
    if kind not in NAT_KINDS:
        raise LabError(f"unknown NAT kind {kind!r}; expected one of {', '.join(NAT_KINDS)}")
    return kind  # type: ignore[return-value]


def ruleset(kind: str, wan_if: str, wan_ip: str) -> str:
    """The nft script for a router of behaviour ``kind`` (not ``none``) with WAN ``wan_if``.

    The script replaces any previous ``natlab`` table atomically.
    """
    kind = check_kind(kind)
    if kind == "none":
        raise LabError("NAT kind 'none' has no router ruleset (the device is public)")
    wan = f'"{wan_if}"'
    snat = f"snat ip to {wan_ip}"
    if kind == "strict":
        snat += " random,fully-random"
    nat_pre = ""
    eif_accept = ""
    eif_parts = ""
    if kind == "open":
        nat_pre = f"iifname {wan} meta l4proto udp dnat ip to udp dport map @eif"
        eif_accept = f"iifname {wan} ct status dnat accept"
        t = f"timeout {EIF_MAP_TIMEOUT_S}s"
        eif_parts = f"""
    map eif {{
        type inet_service : ipv4_addr . inet_service
        flags dynamic,timeout
        {t}
    }}
    chain track_eif {{
        type filter hook postrouting priority srcnat + 10; policy accept;
        oifname {wan} meta l4proto udp ct direction original ct status snat update @eif {{ ct reply proto-dst {t} : ct original ip saddr . ct original proto-src }}
        oifname {wan} meta l4proto udp ct direction reply ct status dnat update @eif {{ ct original proto-dst {t} : ct reply ip saddr . ct reply proto-src }}
    }}"""  # noqa: E501
    return f"""table ip {TABLE}
delete table ip {TABLE}
table ip {TABLE} {{{eif_parts}
    chain nat_pre {{
        type nat hook prerouting priority dstnat; policy accept;
        {nat_pre}
    }}
    chain nat_post {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname {wan} {snat}
    }}
    chain filter_fwd {{
        type filter hook forward priority filter; policy accept;
        iifname {wan} ct state established,related accept
        {eif_accept}
        iifname {wan} drop
    }}
    chain filter_in {{
        type filter hook input priority filter; policy accept;
        iifname {wan} ct state established,related accept
        iifname {wan} icmp type echo-request accept
        iifname {wan} drop
    }}
}}
"""


def apply(ns: Namespace, kind: str, wan_if: str, wan_ip: str) -> None:
    """Load (or replace) the NAT ruleset and conntrack timeouts in router namespace ``ns``."""
    ns.nft(ruleset(kind, wan_if, wan_ip))
    ns.sysctl(
        net__netfilter__nf_conntrack_udp_timeout=UDP_TIMEOUT_S,
        net__netfilter__nf_conntrack_udp_timeout_stream=UDP_STREAM_TIMEOUT_S,
    )
