"""``make fuzz``: with AIOIROH_FUZZ=1 hypothesis runs many more examples (humans, not CI)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
if os.environ.get("AIOIROH_FUZZ"):
    settings.load_profile("fuzz")
