"""The iroh 0.35 oracle (Rust iroh-blobs / iroh-gossip 0.35 via PyPI ``iroh==0.35.0``).

PyPI ``iroh`` 0.35 and 1.2 share the import name, so 0.35 lives in its own small venv,
``.venv-iroh035`` beside the project's ``.venv``, built on first use and driven as a subprocess.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-iroh035"
_PY = VENV / "bin" / "python"
_STAMP = VENV / ".installed-0.35.0"


def ensure_iroh035_python() -> Path:
    """The interpreter of the 0.35 venv, created (once, under a file lock) if missing.

    Raises RuntimeError with pip's output when the venv cannot be built, so a test fails
    loudly instead of skipping.
    """
    VENV.parent.mkdir(parents=True, exist_ok=True)
    lock_path = ROOT / ".venv-iroh035.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _STAMP.exists() and _PY.exists():
            return _PY
        if not _PY.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        proc = subprocess.run(
            [str(_PY), "-m", "pip", "install", "-q", "iroh==0.35.0"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cannot install iroh==0.35.0 into {VENV}:\n{proc.stderr}")
        _STAMP.touch()
        return _PY
