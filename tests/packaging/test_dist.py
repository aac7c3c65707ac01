"""The sdist and the wheel build, pass ``twine check``, and the wheel installed into
a fresh venv runs ``aioiroh --help`` and the quick-start example (nothing leaves the machine:
the example uses loopback endpoints only)."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "docs" / "guides" / "quickstart.md"


def _run(*cmd: str | Path, cwd: Path = ROOT, timeout: float = 300) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.timeout(900)
def test_wheel_and_sdist_build_check_and_run_from_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", dist, ROOT)
    # Pure Python, plus the optional BLAKE3 accelerator where a compiler exists (then the
    # wheel is tagged for this platform; without one it is py3-none-any and falls back).
    wheels = list(dist.glob("aioiroh-*.whl"))
    sdists = list(dist.glob("aioiroh-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
    _run(sys.executable, "-m", "twine", "check", "--strict", *wheels, *sdists)

    with zipfile.ZipFile(wheels[0]) as whl:
        names = whl.namelist()
        metadata = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "aioiroh/py.typed" in names
    assert "aioiroh/blobs/_blake3tree.py" in names  # the fallback ships in every wheel
    assert "License-Expression: MIT OR Apache-2.0" in metadata
    import aioiroh

    assert f"Version: {aioiroh.__version__}" in metadata

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    _run(py, "-m", "pip", "install", "-q", wheels[0], timeout=600)
    assert "peer-to-peer QUIC" in _run(env_dir / "bin" / "aioiroh", "--help", cwd=tmp_path)
    code = re.search(r"```python\n(.*?)```", QUICKSTART.read_text(), re.S)
    assert code is not None
    script = tmp_path / "quickstart.py"
    script.write_text(code.group(1))
    assert "hello" in _run(py, script, cwd=tmp_path, timeout=60)
