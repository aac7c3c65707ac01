"""prometheus-client glue: cheap plain-int counters, exported at scrape time.

Hot paths (a relay forwarding datagrams) bump ordinary ``int`` attributes; a
:class:`MetricsGroup` is also a prometheus *collector* that turns those attributes into metric
families when ``/metrics`` is scraped. Each component (relay server, DNS server, socket) owns its
own :class:`~prometheus_client.CollectorRegistry`, so several servers in one process never
collide.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["CONTENT_TYPE_LATEST", "MetricsGroup", "render"]


class MetricsGroup:
    """A set of named counters and gauges kept as int attributes.

    Subclasses list their metrics in :attr:`COUNTERS` and :attr:`GAUGES` (name → help text) and
    set :attr:`PREFIX`; every name becomes an attribute starting at 0. Counters only grow; gauges
    go both ways.
    """

    PREFIX: ClassVar[str] = ""
    COUNTERS: ClassVar[dict[str, str]] = {}
    GAUGES: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        for name in (*self.COUNTERS, *self.GAUGES):
            setattr(self, name, 0)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def snapshot(self) -> dict[str, int]:
        """Current values of every metric, by attribute name."""
        return {name: getattr(self, name) for name in (*self.COUNTERS, *self.GAUGES)}

    def collect(self) -> Iterator[Metric]:
        """prometheus-client collector hook."""
        for name, doc in self.COUNTERS.items():
            yield CounterMetricFamily(f"{self.PREFIX}{name}", doc, value=getattr(self, name))
        for name, doc in self.GAUGES.items():
            yield GaugeMetricFamily(f"{self.PREFIX}{name}", doc, value=getattr(self, name))

    def render(self) -> bytes:
        """The Prometheus text exposition of this group."""
        return render(self.registry)


def render(registry: CollectorRegistry) -> bytes:
    """Prometheus text exposition of ``registry`` (content type :data:`CONTENT_TYPE_LATEST`)."""
    return generate_latest(registry)
