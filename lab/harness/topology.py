"""Lab / Router / Device builders (patchbay style) over named network namespaces.

::

    async with Lab() as lab:
        inet = lab.internet()                 # bridge namespace, 198.18.0.0/24
        relay = lab.host("relay", n_addrs=2)  # public host(s) on the internet segment
        r = lab.router(nat="moderate")        # NAT router: WAN 198.18.0.2x, LAN 10.0.N.0/24
        d = lab.device(router=r)              # device behind it (router=None: public device)
        proc = await d.spawn_python("some.module", "arg")
        lab.switch_uplink(d, lab.router(nat="open"))

Address plan (exists only inside the lab's namespaces; every lab has its own "internet", so
parallel labs reuse it without clashing):

- internet bridge 198.18.0.1/24 (the RFC 2544 benchmark range); it does not route, so
  traffic to unknown destinations is silently dropped rather than leaving the lab;
- public hosts from 198.18.0.10, router WANs from 198.18.0.21, public devices from .100;
- router *i* (1-based) has LAN 10.0.*i*.0/24 with the router at .1 and devices from .2.

Teardown (``close``/``aclose``, or the context managers) always runs: processes are stopped,
then every namespace is deleted, which removes its veths, bridges and nft tables with it.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import socket
from typing import Any

from . import link, nat
from .netns import NS_PREFIX, LabError, Namespace, PyProcess, delete_namespace, run, sweep_stale

INET_NET = "198.18.0"
INET_GW = f"{INET_NET}.1"
FIRST_HOST, FIRST_WAN, FIRST_PUBLIC_DEVICE = 10, 21, 100
MAX_ROUTERS = FIRST_PUBLIC_DEVICE - FIRST_WAN  # WAN addresses must not run into devices
LAST_HOST = 254  # last usable host number in a /24

_lab_counter = itertools.count(1)

# Sysctls for every lab namespace; IPv6 is off (set before any link exists) so there is no
# DAD delay or NDP noise, and rp_filter is off because namespaces inherit the host's value.
_BASE_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": 1,
    "net.ipv6.conf.default.disable_ipv6": 1,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
}
# Bridged frames must not run through this namespace's IP hooks (only exists when the kernel
# has br_netfilter, hence set with ``sysctl -e``).
_BRIDGE_SYSCTLS = {
    "net.bridge.bridge-nf-call-iptables": 0,
    "net.bridge.bridge-nf-call-arptables": 0,
}


class Node:
    """Something with its own namespace in the lab: a public host, a device or a router."""

    def __init__(self, lab: Lab, name: str, ns: Namespace) -> None:
        self.lab = lab
        self.name = name
        self.ns = ns

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, ns={self.ns.name!r})"

    def socket(
        self,
        family: int = socket.AF_INET,
        type: int = socket.SOCK_DGRAM,
        bind: tuple[str, int] | None = None,
    ) -> socket.socket:
        """A non-blocking socket created inside this node's namespace (caller closes it)."""
        return self.ns.socket(family, type, bind)

    async def spawn_python(self, target: str, *args: str) -> PyProcess:
        """Start ``target`` (module name or ``.py`` path) here with JSON lines on stdin/stdout.

        The lab kills it at teardown if it is still running.
        """
        proc = await PyProcess.start(self.ns, target, *args)
        self.lab._processes.append(proc)
        return proc

    async def run_json(self, target: str, *args: str, timeout: float = 60.0) -> Any:
        """Run ``target`` once here and return its JSON result (see Namespace.run_json)."""
        return await self.ns.run_json(target, *args, timeout=timeout)


class Internet(Node):
    """The "internet" segment: a namespace holding one bridge everything public plugs into."""

    def __init__(self, lab: Lab, ns: Namespace, bridge: str) -> None:
        super().__init__(lab, "internet", ns)
        self.bridge = bridge
        self.gateway = INET_GW


class Router(Node):
    """A NAT router: WAN on the internet bridge, a LAN bridge for its devices.

    A router of kind ``none`` has no namespace of its own: its devices sit directly on the
    internet bridge with public addresses.
    """

    def __init__(
        self,
        lab: Lab,
        name: str,
        ns: Namespace,
        nat_kind: nat.NatKind,
        *,
        wan_if: str | None,
        wan_ip: str | None,
        lan_bridge: str,
        gateway: str,
        subnet: str,
        index: int,
    ) -> None:
        super().__init__(lab, name, ns)
        self.nat: nat.NatKind = nat_kind
        self.wan_if = wan_if
        self.wan_ip = wan_ip
        self.lan_bridge = lan_bridge
        self.gateway = gateway
        self.subnet = subnet  # first three octets of the LAN /24
        self.index = index
        self._next_host = FIRST_PUBLIC_DEVICE if nat_kind == "none" else 2

    @property
    def is_public(self) -> bool:
        """True for the ``none`` pseudo-router: devices behind it are public hosts."""
        return self.nat == "none"

    def _alloc_ip(self) -> str:
        if self._next_host > LAST_HOST:
            raise LabError(f"{self.name}: LAN is full")
        ip = f"{self.subnet}.{self._next_host}"
        self._next_host += 1
        return ip

    def _require_nat(self) -> None:
        if self.is_public or self.wan_if is None or self.wan_ip is None:
            raise LabError("a 'none' router has no namespace of its own to configure")

    def set_nat(self, kind: str) -> None:
        """Switch this router to another NAT behaviour (not to or from ``none``).

        Existing conntrack entries survive; use fresh ports (or a fresh lab) afterwards.
        """
        self._require_nat()
        new = nat.check_kind(kind)
        assert self.wan_if is not None and self.wan_ip is not None
        nat.apply(self.ns, new, self.wan_if, self.wan_ip)
        self.nat = new

    def set_loss(self, percent: float) -> None:
        """Drop ``percent`` % of packets in each direction through this router."""
        self._require_nat()
        assert self.wan_if is not None
        link.set_loss(self.ns, percent, [self.wan_if, self.lan_bridge])

    def set_rate(self, rate: str | None) -> None:
        """Limit the router's upload (WAN egress) to ``rate``, e.g. ``"8mbit"``."""
        self._require_nat()
        assert self.wan_if is not None
        link.set_rate(self.ns, self.wan_if, rate)

    def set_delay(self, delay_ms: float, jitter_ms: float = 0.0) -> None:
        """Delay the router's upload; LinkUnsupported without netem."""
        self._require_nat()
        assert self.wan_if is not None
        link.set_delay(self.ns, self.wan_if, delay_ms, jitter_ms)


class Device(Node):
    """An end host with one uplink, either behind a router or directly on the internet."""

    def __init__(self, lab: Lab, name: str, ns: Namespace, index: int) -> None:
        super().__init__(lab, name, ns)
        self.index = index
        self.router: Router | None = None
        self.iface = ""
        self.ip = ""
        self.peer_iface = ""  # the bridge-side end of the device's veth (router or internet)
        self._generation = 0
        self._loss = 0.0

    @property
    def ips(self) -> list[str]:
        """The device's addresses (one)."""
        return [self.ip]

    @property
    def public_ip(self) -> str:
        """The address the internet sees this device's traffic come from."""
        assert self.router is not None
        if self.router.is_public:
            return self.ip
        assert self.router.wan_ip is not None
        return self.router.wan_ip

    def set_loss(self, percent: float) -> None:
        """Drop ``percent`` % of packets in each direction on the device's link.

        Kept across :meth:`Lab.switch_uplink`.
        """
        assert self.router is not None
        link.set_port_loss(self.router.ns, percent, self.peer_iface, self._loss_table)
        self._loss = percent

    @property
    def _loss_table(self) -> str:
        return f"natlab_loss_d{self.index}"

    def set_rate(self, rate: str | None, direction: str = "both") -> None:
        """Limit the device's link to ``rate``, e.g. ``"8mbit"`` (None removes the limit).

        ``direction`` is ``"up"``, ``"down"`` or ``"both"``. Upload is shaped on the device's
        interface, download on the bridge-side end, which an uplink switch replaces.
        """
        if direction not in ("up", "down", "both"):
            raise LabError(f"direction must be up, down or both, not {direction!r}")
        assert self.router is not None
        if direction in ("up", "both"):
            link.set_rate(self.ns, self.iface, rate)
        if direction in ("down", "both"):
            link.set_rate(self.router.ns, self.peer_iface, rate)

    def set_delay(self, delay_ms: float, jitter_ms: float = 0.0) -> None:
        """Delay the device's upload; LinkUnsupported without netem."""
        link.set_delay(self.ns, self.iface, delay_ms, jitter_ms)


class Host(Device):
    """A public server machine on the internet segment (relay, DNS server, probe servers)."""

    def __init__(self, lab: Lab, name: str, ns: Namespace, index: int, addrs: list[str]) -> None:
        super().__init__(lab, name, ns, index)
        self._addrs = addrs
        self.ip = addrs[0]

    @property
    def ips(self) -> list[str]:
        """All addresses of this host (``n_addrs`` given to :meth:`Lab.host`)."""
        return list(self._addrs)


class Lab:
    """A set of namespaces forming one small internet; always torn down on exit."""

    def __init__(self) -> None:
        n = next(_lab_counter)
        pid = os.getpid()
        self.tag = f"{pid}-{n}"
        # Interface names are per namespace, so they only need to be short and recognisable;
        # the tag still lets a human tell which run made them.
        self.if_prefix = f"n{pid % 1000:03d}{_b36(n % 36)}"
        self._namespaces: list[Namespace] = []
        self._processes: list[PyProcess] = []
        self._internet: Internet | None = None
        self._routers: list[Router] = []
        self._devices: list[Device] = []
        self._hosts = 0
        self._closed = False
        sweep_stale()
        atexit.register(self.close)

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Lab:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop child processes politely, then remove every namespace."""
        try:
            for proc in self._processes:
                with contextlib.suppress(Exception):
                    await proc.stop()
        finally:
            self.close()

    def close(self) -> None:
        """Kill child processes and delete every namespace (idempotent, never raises LabError)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for proc in self._processes:
            proc.kill()
        # Leaves first: devices hold veths into routers and routers into the internet.
        for ns in reversed(self._namespaces):
            with contextlib.suppress(LabError):
                delete_namespace(ns.name)

    @property
    def namespaces(self) -> list[str]:
        """Names of the namespaces this lab created (for leak checks)."""
        return [ns.name for ns in self._namespaces]

    # -- builders ------------------------------------------------------------------------

    def _ns(self, role: str, *, forward: bool = False, bridge: bool = False) -> Namespace:
        if self._closed:
            raise LabError("this lab has been torn down")
        ns = Namespace(f"{NS_PREFIX}{self.tag}-{role}")
        run(["ip", "netns", "add", ns.name])
        self._namespaces.append(ns)
        values = dict(_BASE_SYSCTLS)
        values["net.ipv4.ip_forward"] = int(forward)
        ns.exec("sysctl", "-qw", *(f"{k}={v}" for k, v in values.items()))
        if bridge:
            ns.exec("sysctl", "-qew", *(f"{k}={v}" for k, v in _BRIDGE_SYSCTLS.items()))
        ns.ip("link", "set", "lo", "up")
        return ns

    def _ifname(self, role: str) -> str:
        name = f"{self.if_prefix}{role}"
        if len(name) > 15:
            raise LabError(f"interface name too long: {name}")
        return name

    def internet(self) -> Internet:
        """The internet segment (created on first use)."""
        if self._internet is None:
            ns = self._ns("inet", bridge=True)
            br = self._ifname("ix")
            ns.ip("link", "add", br, "type", "bridge")
            ns.ip("addr", "add", f"{INET_GW}/24", "dev", br)
            ns.ip("link", "set", br, "up")
            self._internet = Internet(self, ns, br)
        return self._internet

    def _plug_into_internet(self, ns: Namespace, inner: str, outer: str) -> None:
        inet = self.internet()
        ns.ip("link", "add", inner, "type", "veth", "peer", "name", outer, "netns", inet.ns.name)
        inet.ns.ip("link", "set", outer, "master", inet.bridge, "up")
        ns.ip("link", "set", inner, "up")

    def host(self, name: str = "relay", n_addrs: int = 1) -> Host:
        """A public host on the internet segment with ``n_addrs`` consecutive addresses."""
        if not 1 <= n_addrs <= 5:
            raise LabError("a host gets 1..5 addresses")
        start = FIRST_HOST + self._hosts
        if start + n_addrs > FIRST_WAN:
            raise LabError("out of public host addresses")
        self._hosts += n_addrs
        index = len(self._devices) + 1
        ns = self._ns(f"h{index}")
        addrs = [f"{INET_NET}.{start + i}" for i in range(n_addrs)]
        inner = self._ifname(f"h{index}")
        self._plug_into_internet(ns, inner, self._ifname(f"H{index}"))
        for a in addrs:
            ns.ip("addr", "add", f"{a}/24", "dev", inner)
        ns.ip("route", "add", "default", "via", INET_GW)
        h = Host(self, name, ns, index, addrs)
        h.iface = inner
        h.router = self._public_router()
        self._devices.append(h)
        return h

    def _public_router(self) -> Router:
        for r in self._routers:
            if r.is_public:
                return r
        return self.router(nat="none")

    def router(self, nat: str = "moderate", name: str | None = None) -> Router:
        """A router of NAT behaviour ``nat`` (none/open/moderate/strict) on the internet."""
        kind = _nat_kind(nat)
        inet = self.internet()
        if kind == "none":
            for r in self._routers:
                if r.is_public:
                    return r
            r = Router(
                self, name or "public", inet.ns, kind, wan_if=None, wan_ip=None,
                lan_bridge=inet.bridge, gateway=INET_GW, subnet=INET_NET, index=0,
            )  # fmt: skip
            self._routers.append(r)
            return r
        index = sum(1 for r in self._routers if not r.is_public) + 1
        if index > MAX_ROUTERS:
            raise LabError("too many routers in one lab")
        ns = self._ns(f"r{index}", forward=True, bridge=True)
        wan_if = self._ifname(f"w{index}")
        wan_ip = f"{INET_NET}.{FIRST_WAN + index - 1}"
        self._plug_into_internet(ns, wan_if, self._ifname(f"W{index}"))
        ns.ip("addr", "add", f"{wan_ip}/24", "dev", wan_if)
        ns.ip("route", "add", "default", "via", INET_GW)
        lan = self._ifname("lan")
        subnet = f"10.0.{index}"
        ns.ip("link", "add", lan, "type", "bridge")
        ns.ip("addr", "add", f"{subnet}.1/24", "dev", lan)
        ns.ip("link", "set", lan, "up")
        r = Router(
            self, name or f"{kind}{index}", ns, kind, wan_if=wan_if, wan_ip=wan_ip,
            lan_bridge=lan, gateway=f"{subnet}.1", subnet=subnet, index=index,
        )  # fmt: skip
        nat_apply(r)
        self._routers.append(r)
        return r

    def device(self, router: Router | None = None, name: str | None = None) -> Device:
        """A device behind ``router`` (None: a public device directly on the internet)."""
        index = len(self._devices) + 1
        ns = self._ns(f"d{index}")
        d = Device(self, name or f"dev{index}", ns, index)
        self._devices.append(d)
        self._attach(d, router if router is not None else self.router(nat="none"))
        return d

    def _attach(self, d: Device, router: Router) -> None:
        if router.lab is not self:
            raise LabError("router belongs to another lab")
        d._generation += 1
        inner = self._ifname(f"d{d.index}g{d._generation}")
        outer = self._ifname(f"p{d.index}g{d._generation}")
        ip = router._alloc_ip()
        d.ns.ip(
            "link", "add", inner, "type", "veth", "peer", "name", outer, "netns", router.ns.name
        )
        router.ns.ip("link", "set", outer, "master", router.lan_bridge, "up")
        d.ns.ip("addr", "add", f"{ip}/24", "dev", inner)
        d.ns.ip("link", "set", inner, "up")
        d.ns.ip("route", "add", "default", "via", router.gateway)
        old = d.router
        d.router, d.iface, d.ip, d.peer_iface = router, inner, ip, outer
        if d._loss:
            if old is not None:
                link.set_port_loss(old.ns, 0, "", d._loss_table)
            d.set_loss(d._loss)

    def switch_uplink(self, device: Device, router: Router) -> None:
        """Move ``device`` to ``router``: old link gone, new address, new default route.

        Sockets bound to the wildcard address keep working and now leave through the new
        router, so the device's public mapping changes (as when a phone leaves Wi-Fi).
        Loss set on the device is kept; a rate or delay (per interface) is not.
        """
        if isinstance(device, Host):
            raise LabError("public hosts do not move")
        if device.router is router:
            raise LabError(f"{device.name} is already behind {router.name}")
        device.ns.ip("link", "del", device.iface)  # deleting one end removes the pair
        self._attach(device, router)


def nat_apply(r: Router) -> None:
    """Load ``r``'s NAT ruleset (used at build time and by Router.set_nat)."""
    assert r.wan_if is not None and r.wan_ip is not None
    nat.apply(r.ns, r.nat, r.wan_if, r.wan_ip)


def _nat_kind(kind: str) -> nat.NatKind:
    return nat.check_kind(kind)


def _b36(n: int) -> str:
    return "0123456789abcdefghijklmnopqrstuvwxyz"[n]
