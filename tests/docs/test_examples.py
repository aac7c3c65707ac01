"""Every ``python`` code block in docs/ and the README runs, so examples cannot rot.

Each block is a complete program; it runs in its own interpreter (a fresh event loop and
no state shared between examples), from a temporary directory, with the suite's environment
(the default CLI preset made local). Blocks fenced as ``text`` or ``console`` are prose.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    files = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
    for path in files:
        if "internals" in path.parts:
            continue  # research notes quote fragments, not programs
        for n, match in enumerate(FENCE.finditer(path.read_text())):
            found.append((f"{path.relative_to(ROOT)}#{n}", match.group(1)))
    return found


BLOCKS = _blocks()


def test_docs_have_examples() -> None:
    assert len(BLOCKS) >= 8, [name for name, _ in BLOCKS]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("name", "code"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_example_runs(name: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
