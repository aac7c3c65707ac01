"""A new user's first commands: the lab entry points never hang, and a fresh clone demos.

``make test`` once hung for over ten minutes on a machine without nftables; these run the
lab's entry points with ``nft`` hidden from ``PATH`` and require a clear stop within 10 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT_S = 10.0
# System directories whose programs stay visible; the venv is reached by absolute path.
SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


@pytest.fixture
def path_without_nft(tmp_path: Path) -> str:
    """A PATH directory with every system program except ``nft``."""
    shim = tmp_path / "bin"
    shim.mkdir()
    for d in SYSTEM_DIRS:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            target = shim / name
            if name == "nft" or target.exists():
                continue
            src = os.path.join(d, name)
            if os.access(src, os.X_OK) and not os.path.isdir(src):
                target.symlink_to(src)
    assert shutil.which("nft", path=str(shim)) is None
    return str(shim)


def _run_bounded(argv: list[str], path: str) -> tuple[int, str, float]:
    env = dict(os.environ, PATH=path, AIOIROH_INSTALL_SYSTEM_DEPS="0")
    t0 = time.monotonic()
    proc = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=LIMIT_S + 20
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0


ENTRY_POINTS = {
    # make test's set-up step fails before pytest starts (the lab cannot run here).
    "make-test": ["make", "-s", "test"],
    "make-natlab": ["make", "-s", "natlab"],
    "make-system-deps": ["make", "-s", "system-deps"],
    "python-m-lab.natlab": [sys.executable, "-m", "lab.natlab"],
    "nat-matrix-tests": [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "tests/lab/test_nat_matrix.py",
    ],
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_lab_entry_point_without_nft_stops_at_once_with_the_reason(
    name: str, path_without_nft: str
) -> None:
    rc, out, took = _run_bounded(ENTRY_POINTS[name], path_without_nft)
    assert rc != 0, out[-2000:]
    assert "nft" in out, out[-2000:]
    assert took < LIMIT_S, f"{name} took {took:.1f} s"


@pytest.mark.timeout(600)
def test_fresh_clone_in_a_fresh_venv_runs_make_demo(tmp_path: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    clone = tmp_path / "clone"
    for rel in filter(None, tracked):
        src = REPO / rel.decode()
        if src.is_file():
            dst = clone / rel.decode()
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    assert not (clone / ".venv").exists()
    proc = subprocess.run(
        ["make", "demo", f"PY={getattr(sys, '_base_executable', sys.executable)}"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=540,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "deprecated" not in out.lower(), out[-4000:]
