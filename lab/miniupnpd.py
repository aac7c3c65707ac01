"""miniupnpd (Debian ``miniupnpd-nftables``) on a NAT lab router: UPnP IGD, or NAT-PMP + PCP.

One daemon per router, one protocol family at a time (``protocol="upnp"`` or ``"pcp"``;
miniupnpd serves NAT-PMP and PCP from the same switch, a client picks one). It runs in the
router namespace only, listening on the LAN bridge, with the router's WAN address as its
external address (no STUN), and its nftables chains in its own ``inet miniupnpd`` table.
The lab's ``natlab`` forward chain drops new inbound flows, so one rule lets the DNATs that
miniupnpd installs through.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from lab.harness import LabError, Router

TABLE = "miniupnpd"
# miniupnpd's log lines for a new UDP mapping (PCP, and UPnP / NAT-PMP).
_ADDED = re.compile(r"added mapping UDP (?P<eport>\d+)->(?P<ip>[\d.]+):(?P<iport>\d+)")
# NAT-PMP logs only the request; with no suggested port (0) miniupnpd keeps the internal one
# when it is free, which it always is in a fresh lab.
_NAT_PMP = re.compile(
    r"NAT-PMP port mapping request : "
    r"(?P<eport>\d+)->(?P<ip>[\d.]+):(?P<iport>\d+) udp lifetime=[1-9]"
)
_REDIRECT = re.compile(
    r"redirecting port (?P<eport>\d+) to (?P<ip>[\d.]+):(?P<iport>\d+) protocol UDP"
)
READY_TIMEOUT = 10.0
STOP_GRACE = 3.0


def ensure_installed() -> str:
    """The miniupnpd binary, installing ``miniupnpd-nftables`` with apt-get if it is missing."""
    found = shutil.which("miniupnpd") or (
        "/usr/sbin/miniupnpd" if Path("/usr/sbin/miniupnpd").exists() else None
    )
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise LabError("miniupnpd missing and no apt-get: install miniupnpd-nftables")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for argv in (
        [apt, "update", "-qq"],
        [apt, "install", "-y", "-qq", "--no-install-recommends", "miniupnpd-nftables"],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        if done.returncode != 0:
            raise LabError(f"installing miniupnpd-nftables failed: {done.stderr[-400:]}")
    if not Path("/usr/sbin/miniupnpd").exists():
        raise LabError("miniupnpd-nftables installed but /usr/sbin/miniupnpd is missing")
    return "/usr/sbin/miniupnpd"


def _nft_skeleton(wan_if: str, wan_ip: str) -> str:
    # The postrouting hook runs just before the lab's srcnat chain, so the port-keeping SNAT
    # miniupnpd writes for a mapping wins over the router's own (maybe random) SNAT. The
    # router's own traffic keeps its ports too: miniupnpd's STUN self-test must see no NAT.
    return f"""table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
    chain forward {{
        type filter hook forward priority 0; policy accept;
        jump miniupnpd
    }}
    chain miniupnpd {{
    }}
    chain prerouting {{
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }}
    chain postrouting {{
        type nat hook postrouting priority 99; policy accept;
        jump postrouting_miniupnpd
        ip saddr {wan_ip} oifname "{wan_if}" snat ip to {wan_ip}
    }}
    chain prerouting_miniupnpd {{
    }}
    chain postrouting_miniupnpd {{
    }}
}}
"""


class MiniUpnpd:
    """A miniupnpd child in ``router``'s namespace; stop it with :meth:`stop` (by PID)."""

    def __init__(
        self,
        router: Router,
        stun: tuple[str, int],
        protocol: str = "pcp",
        *,
        min_lifetime: int = 2,
        max_lifetime: int = 86400,
    ) -> None:
        if protocol not in ("upnp", "pcp"):
            raise LabError(f"miniupnpd protocol must be upnp or pcp, not {protocol!r}")
        if router.wan_if is None or router.wan_ip is None:
            raise LabError("miniupnpd needs a NAT router (not 'none')")
        self.router = router
        self.stun = stun
        self.protocol = protocol
        self.min_lifetime = min_lifetime
        self.max_lifetime = max_lifetime
        self._dir = Path(tempfile.mkdtemp(prefix="natlab-miniupnpd-"))
        self._proc: asyncio.subprocess.Process | None = None
        self._log: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._binary = ensure_installed()
        self._installed_rules = False
        #: Make a mapped internal port's own outgoing flows leave from the external port.
        self.pin_snat = True
        self._pinned: set[tuple[str, int, int]] = set()

    def config(self) -> str:
        r = self.router
        upnp = "yes" if self.protocol == "upnp" else "no"
        pmp = "yes" if self.protocol == "pcp" else "no"
        return f"""ext_ifname={r.wan_if}
ext_perform_stun=yes
ext_stun_host={self.stun[0]}
ext_stun_port={self.stun[1]}
listening_ip={r.lan_bridge}
http_port=0
enable_upnp={upnp}
enable_natpmp={pmp}
min_lifetime={self.min_lifetime}
max_lifetime={self.max_lifetime}
secure_mode=yes
system_uptime=no
notify_interval=600
clean_ruleset_interval=600
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
lease_file={self._dir}/leases
upnp_table_name={TABLE}
upnp_nat_table_name={TABLE}
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 {r.subnet}.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
"""

    def _prepare_ruleset(self) -> None:
        ns, r = self.router.ns, self.router
        assert r.wan_if is not None and r.wan_ip is not None
        ns.nft(_nft_skeleton(r.wan_if, r.wan_ip))
        if not self._installed_rules:
            ns.exec(
                "nft", "insert", "rule", "ip", "natlab", "filter_fwd",
                "iifname", str(r.wan_if), "ct", "status", "dnat", "accept",
            )  # fmt: skip
            self._installed_rules = True

    async def start(self) -> MiniUpnpd:
        """Start the daemon and wait until it says it listens."""
        self._prepare_ruleset()
        conf = self._dir / "miniupnpd.conf"
        conf.write_text(self.config())
        self._log = []
        ready = asyncio.Event()
        self._proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.router.ns.name, self._binary, "-d", "-f", str(conf),
            "-P", str(self._dir / "miniupnpd.pid"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        want = "HTTP listening" if self.protocol == "upnp" else "Listening for NAT-PMP"
        self._reader = asyncio.create_task(self._read(ready, want))
        try:
            await asyncio.wait_for(ready.wait(), READY_TIMEOUT)
            if self._proc.returncode is not None or self._reader.done():
                raise TimeoutError
        except TimeoutError:
            await self.stop()
            raise LabError("miniupnpd did not start: " + " | ".join(self._log[-10:])) from None
        return self

    async def _read(self, ready: asyncio.Event, want: str) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        while line := await proc.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            if len(self._log) < 2000:
                self._log.append(text)
            if want in text:
                ready.set()
            if self.pin_snat:
                self._pin(text)
        ready.set()  # exited: start() sees the return code

    def _pin(self, line: str) -> None:
        """Follow a new mapping with a port-keeping SNAT rule, as a home router's NAT does.

        miniupnpd's nftables backend only installs the inbound DNAT; on the lab's strict
        router the mapped socket's own outgoing packets would still get random ports, so a
        peer that the socket contacts first would see another address than the mapped one.
        """
        m = _ADDED.search(line) or _REDIRECT.search(line) or _NAT_PMP.search(line)
        if m is None:
            return
        ip, iport = m["ip"], int(m["iport"])
        eport = int(m["eport"]) or iport
        if (ip, iport, eport) in self._pinned:
            return
        self._pinned.add((ip, iport, eport))
        r = self.router
        self.router.ns.exec(
            "nft", "insert", "rule", "inet", TABLE, "postrouting",
            "ip", "saddr", ip, "udp", "sport", str(iport), "oifname", str(r.wan_if),
            "snat", "ip", "to", f"{r.wan_ip}:{eport}",
        )  # fmt: skip

    async def stop(self) -> None:
        """Terminate the daemon (it deletes its rules on a clean exit)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def restart(self) -> None:
        """A router reboot: kill the daemon (no clean-up), drop its rules, start it again."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        await self.stop()
        self.router.ns.exec("nft", "delete", "table", "inet", TABLE)
        self._pinned.clear()
        with contextlib.suppress(FileNotFoundError):
            (self._dir / "leases").unlink()
        await self.start()

    def mappings(self) -> list[tuple[str, int, int]]:
        """The DNAT redirections in the router's table: (internal ip, internal port, external
        port)."""
        out = self.router.ns.exec("nft", "list", "chain", "inet", TABLE, "prerouting_miniupnpd")
        found = []
        for m in re.finditer(r"th dport (\d+) dnat ip to ([\d.]+):(\d+)", out):
            found.append((m.group(2), int(m.group(3)), int(m.group(1))))
        return found

    @property
    def log(self) -> list[str]:
        return list(self._log)

    def cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
