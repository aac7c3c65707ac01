"""Build the optional BLAKE3 C accelerator in place if this checkout's install predates it.

``pip install -e .`` (make .venv/.installed) builds it; a venv stamped before setup.py existed
has only the fallback, so build it here (a compiler is on the test machines) before the tests
import the module.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]

# Look for the file rather than importing: importing aioiroh.blobs would fix the fallback.
_SO = _ROOT / "src/aioiroh/blobs" / ("_blake3tree_c" + str(sysconfig.get_config_var("EXT_SUFFIX")))
if not _SO.exists():
    subprocess.run(
        # pip's isolated build: setup.py needs the setuptools pyproject pins, not the venv's.
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", "."],
        cwd=_ROOT,
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
    )
