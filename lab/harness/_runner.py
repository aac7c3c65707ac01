"""Run ``package.module:function ARGS...`` and print its return value as one JSON line.

Used by :meth:`lab.harness.netns.Namespace.run_json` to run a Python function inside a
namespace as a subprocess.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys


def main(argv: list[str]) -> int:
    """Entry point: ``python -m lab.harness._runner mod:func [args...]``."""
    if len(argv) < 1 or ":" not in argv[0]:
        print("usage: python -m lab.harness._runner package.module:function [args...]")
        return 2
    mod_name, func_name = argv[0].split(":", 1)
    func = getattr(importlib.import_module(mod_name), func_name)
    call = func(*argv[1:])
    result = asyncio.run(call) if inspect.iscoroutine(call) else call
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
