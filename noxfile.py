"""Other Pythons: the fast unit and interop subset on 3.12 and 3.13 (``make test`` runs it after
the full suite on the default Python; ``nox -s full`` runs everything on each, outside CI).

An interpreter that is missing fails the session (no silent skips): install it with pyenv.
"""

from __future__ import annotations

import glob
import os
import subprocess

import nox

nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["fast"]


def _interpreter(version: str) -> str:
    """A working ``pythonX.Y``: pyenv's install (its shims only serve the selected version)
    or one on PATH; the bare version (a clear nox failure) when there is none."""
    home = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for path in sorted(glob.glob(f"{home}/versions/{version}.*/bin/python{version}")):
        ok = subprocess.run([path, "-c", "import venv"], capture_output=True).returncode == 0
        if ok:
            return path
    return version


OTHER_PYTHONS = [_interpreter(v) for v in ("3.12", "3.13")]

# Codecs, engine, endpoints and Rust interop: the parts where an interpreter change would show.
FAST = [
    "tests/base",
    "tests/quic",
    "tests/dns",
    "tests/tls",
    "tests/endpoint",
    "tests/gossip/test_codec.py",
    "tests/dht/test_bencode.py",
    "tests/interop/test_direct_rust.py",
    "tests/test_public_api.py",
]


@nox.session(python=OTHER_PYTHONS)
def fast(session: nox.Session) -> None:
    """The fast subset on one interpreter."""
    session.install("-q", "-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *FAST)


@nox.session(python=OTHER_PYTHONS)
def full(session: nox.Session) -> None:
    """The whole suite on one interpreter (long; not part of make test)."""
    session.install("-q", "-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
