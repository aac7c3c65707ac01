"""Named network namespaces, veth pairs and processes inside them.

Everything here shells out to ``ip``/``nft``/``tc`` and only ever names namespaces this
process created (see :func:`ns_name`), so it never touches the host's own interfaces,
routes or rulesets. Interfaces are always created *inside* a lab namespace with the peer
placed straight into another lab namespace; nothing is ever created in the host namespace.

Sockets can be opened inside a namespace without a subprocess: :meth:`Namespace.socket`
switches a short-lived helper thread into the namespace (``setns`` is per thread for network
namespaces), creates the socket there and hands it back. A socket stays in the namespace it
was created in.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Every lab namespace is called ``natlab<pid>-<lab>-<role>``: the pid lets the sweeper tell
# leftovers of dead runs from namespaces of live ones (ours or a parallel run's).
NS_PREFIX = "natlab"
_NS_RE = re.compile(rf"^{NS_PREFIX}(\d+)-")
IFNAMSIZ = 15  # Linux interface names are at most 15 bytes.
CLONE_NEWNET = 0x40000000

# Bounds: how long one tool invocation may take, and how long a stopping process gets.
CMD_TIMEOUT_S = 20.0
STOP_GRACE_S = 3.0
# A JSON line from a child process is at most this long (asyncio StreamReader limit).
MAX_LINE_BYTES = 1 << 20

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRED_TOOLS = ("ip", "nft", "tc")
# ``ip netns exec NAME`` bind-mounts /etc/netns/NAME/FILE over /etc/FILE for the command.
ETC_NETNS = Path("/etc/netns")
ETC_FILES = ("hosts", "resolv.conf")


class LabError(RuntimeError):
    """A lab command failed, a tool is missing, or the lab is used wrongly."""


def missing_prerequisites() -> list[str]:
    """Why the lab cannot run here (empty when it can): not root, or tools missing."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the NAT lab needs root (network namespaces, nftables)")
    for tool in REQUIRED_TOOLS:
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is not installed (apt-get install nftables iproute2)")
    return problems


def run(argv: Sequence[str], *, input: str | None = None, check: bool = True) -> str:
    """Run one host-side tool command (always aimed at a lab namespace) and return stdout."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=CMD_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces() -> list[str]:
    """Names of all named network namespaces on the host (``ip netns list``)."""
    out = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def delete_namespace(name: str) -> None:
    """Kill every process in namespace ``name`` and delete it; missing namespaces are fine.

    A process left inside would keep the namespace (and its veths) alive anonymously.
    """
    if not name.startswith(NS_PREFIX):
        raise LabError(f"refusing to delete a namespace that is not ours: {name!r}")
    pids = run(["ip", "netns", "pids", name], check=False).split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
    run(["ip", "netns", "del", name], check=False)
    # Per-namespace /etc files (see Namespace.write_etc) go with the namespace.
    shutil.rmtree(ETC_NETNS / name, ignore_errors=True)


def sweep_stale() -> list[str]:
    """Remove lab namespaces left behind by runs whose process is gone; return their names.

    Only names matching our own prefix *and* carrying the pid of a dead process are touched,
    so labs of live parallel runs are left alone.
    """
    removed = []
    for name in list_namespaces():
        m = _NS_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            delete_namespace(name)
            removed.append(name)
    return removed


_libc: ctypes.CDLL | None = None


def _setns(path: str) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Namespace:
    """One named network namespace this lab created (``ip netns add``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    @property
    def path(self) -> str:
        """The namespace's bind-mount path, as used by ``setns``."""
        return f"/run/netns/{self.name}"

    # -- commands ------------------------------------------------------------------------

    def ip(self, *args: str) -> str:
        """``ip -n NAME ARGS...``."""
        return run(["ip", "-n", self.name, *args])

    def exec(self, *argv: str, input: str | None = None, check: bool = True) -> str:
        """Run ``argv`` inside the namespace (``ip netns exec``) and return its stdout."""
        return run(["ip", "netns", "exec", self.name, *argv], input=input, check=check)

    def sysctl(self, **values: int | str) -> None:
        """Set sysctls (``net.ipv4.ip_forward`` is spelled ``net__ipv4__ip_forward``)."""
        pairs = [f"{k.replace('__', '.')}={v}" for k, v in values.items()]
        self.exec("sysctl", "-qw", *pairs)

    def write_etc(self, filename: str, text: str) -> None:
        """Give processes started in this namespace their own ``/etc/FILENAME``.

        Only ``hosts`` and ``resolv.conf`` (so lab names resolve to lab addresses and lab
        processes ask the lab's DNS server); removed again with the namespace.
        """
        if filename not in ETC_FILES:
            raise LabError(f"not a per-namespace /etc file: {filename!r}")
        folder = ETC_NETNS / self.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / filename).write_text(text)

    def nft(self, ruleset: str) -> None:
        """Load an nftables script (``nft -f -``) inside the namespace."""
        self.exec("nft", "-f", "-", input=ruleset)

    # -- sockets -------------------------------------------------------------------------

    def socket(
        self,
        family: int = socket.AF_INET,
        type: int = socket.SOCK_DGRAM,
        bind: tuple[str, int] | None = None,
    ) -> socket.socket:
        """Create a non-blocking socket inside this namespace, optionally bound."""
        result: list[socket.socket | BaseException] = []

        def work() -> None:
            try:
                _setns(self.path)
                s = socket.socket(family, type)
                try:
                    s.setblocking(False)
                    if bind is not None:
                        s.bind(bind)
                except BaseException:
                    s.close()
                    raise
                result.append(s)
            except BaseException as exc:
                result.append(exc)

        # The helper thread exits right after, so its namespace switch dies with it.
        t = threading.Thread(target=work, name=f"setns-{self.name}")
        t.start()
        t.join()
        out = result[0]
        if isinstance(out, BaseException):
            raise LabError(f"socket in {self.name}: {out}") from out
        return out

    # -- processes -----------------------------------------------------------------------

    def python_argv(self, target: str, *args: str) -> list[str]:
        """argv running ``target`` (a module name, or a path ending in .py) in this namespace."""
        if target.endswith(".py"):
            py = [sys.executable, "-u", target]
        else:
            py = [sys.executable, "-u", "-m", target]
        return ["ip", "netns", "exec", self.name, *py, *args]

    async def run_json(self, target: str, *args: str, timeout: float = 60.0) -> Any:
        """Run ``target`` once in the namespace; return the JSON of its last stdout line.

        ``target`` is a module, a ``.py`` path, or ``package.module:function`` (the function
        is called with the string ``args``, awaited if it is a coroutine function, and its
        return value is printed as JSON by :mod:`lab.harness._runner`).
        """
        if ":" in target and not target.endswith(".py"):
            argv = self.python_argv("lab.harness._runner", target, *args)
        else:
            argv = self.python_argv(target, *args)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            env=child_env(),
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        lines = out.decode().strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise LabError(
                f"{target} in {self.name} exited {proc.returncode}: {err.decode()[-2000:]}"
            )
        return json.loads(lines[-1])


def child_env() -> dict[str, str]:
    """Environment for Python children: the repo root importable (for ``lab`` and ``tests``)."""
    env = dict(os.environ)
    parts = [str(REPO_ROOT), str(REPO_ROOT / "src")]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


class PyProcess:
    """A long-running Python child inside a namespace that speaks JSON lines on stdin/stdout.

    Obtain one with :meth:`lab.harness.topology.Node.spawn_python`; the lab stops it at
    teardown if the test did not.
    """

    def __init__(self, proc: asyncio.subprocess.Process, label: str) -> None:
        self._proc = proc
        self.label = label

    @classmethod
    async def start(cls, ns: Namespace, target: str, *args: str) -> PyProcess:
        """Start ``target`` (module or .py path) inside ``ns``."""
        proc = await asyncio.create_subprocess_exec(
            *ns.python_argv(target, *args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,  # inherit: child tracebacks show up in the test output
            cwd=REPO_ROOT,
            env=child_env(),
            limit=MAX_LINE_BYTES,
        )
        return cls(proc, f"{target}@{ns.name}")

    @property
    def pid(self) -> int:
        """The child's pid (``ip netns exec`` execs, so this is the Python process)."""
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once the child has exited, else None."""
        return self._proc.returncode

    def send(self, obj: Any) -> None:
        """Write one JSON line to the child's stdin."""
        stdin = self._proc.stdin
        if stdin is None or stdin.is_closing():
            raise LabError(f"{self.label}: stdin is closed")
        stdin.write(json.dumps(obj).encode() + b"\n")

    async def recv(self, timeout: float = 30.0) -> Any:
        """Read the next JSON line from the child's stdout; LabError on EOF or timeout."""
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            line = await asyncio.wait_for(stdout.readline(), timeout)
        except TimeoutError as exc:
            raise LabError(f"{self.label}: no output within {timeout}s") from exc
        except ValueError as exc:  # line over MAX_LINE_BYTES
            raise LabError(f"{self.label}: {exc}") from exc
        if not line:
            rc = await self._proc.wait()
            raise LabError(f"{self.label}: exited ({rc}) before sending a line")
        try:
            return json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabError(f"{self.label}: not JSON: {line[:200]!r}") from exc

    async def stop(self, grace: float = STOP_GRACE_S) -> int:
        """Close stdin (the polite "please exit"), wait ``grace`` s, then kill. Returns rc."""
        if self._proc.returncode is None:
            stdin = self._proc.stdin
            if stdin is not None and not stdin.is_closing():
                stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                await self._proc.wait()
        # Drain the pipe transports so nothing is left for the garbage collector.
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        rc = self._proc.returncode
        assert rc is not None
        return rc

    def kill(self) -> None:
        """Kill the child without waiting (sync teardown path)."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
