"""Relay configuration: :class:`RelayConfig` and the :class:`RelayMap` of known relays.

Mirrors iroh-relay's ``RelayMap``: a set of relays keyed by URL and iterated in URL order
(Rust keeps them in a ``BTreeMap``). Ours is an immutable value; ``with_*`` methods return
new maps, so a driver can publish a new map to watchers instead of sharing a locked one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from ..base.relay_url import RelayUrl

__all__ = ["DEFAULT_RELAY_QUIC_PORT", "RelayConfig", "RelayMap"]

# UDP port of a relay's QUIC address discovery service (wire doc §5.8). The same value is
# aioiroh.defaults.DEFAULT_RELAY_QUIC_PORT; it is repeated because defaults sits in the same
# layer and layers don't import each other.
DEFAULT_RELAY_QUIC_PORT: Final = 7842


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """One relay server."""

    url: RelayUrl
    """The relay's URL; text is parsed and normalised."""
    quic_port: int | None = DEFAULT_RELAY_QUIC_PORT
    """UDP port of its QUIC address discovery service, or None to skip QAD."""
    auth_token: str | None = field(default=None, repr=False)
    """Token sent to relays that require one; hidden from repr."""

    def __post_init__(self) -> None:
        if not isinstance(self.url, RelayUrl):
            object.__setattr__(self, "url", RelayUrl(self.url))
        port = self.quic_port
        if port is not None and (isinstance(port, bool) or not 0 < port <= 0xFFFF):
            raise ValueError(f"invalid QUIC port {port!r}")

    def with_auth_token(self, token: str) -> RelayConfig:
        """A copy carrying ``token``."""
        return RelayConfig(self.url, self.quic_port, token)

    def __str__(self) -> str:
        return str(self.url)


RelayLike = RelayConfig | RelayUrl | str


def _to_config(value: RelayLike) -> RelayConfig:
    return value if isinstance(value, RelayConfig) else RelayConfig(RelayUrl(value))


class RelayMap:
    """The relays an endpoint may use, keyed by URL, iterated in URL order.

    ``RelayMap(configs)`` takes :class:`RelayConfig` values, URLs or URL text (a later entry
    for the same URL replaces an earlier one, as in Rust).
    """

    __slots__ = ("_relays",)

    def __init__(self, relays: Iterable[RelayLike] | RelayLike = ()) -> None:
        if isinstance(relays, str | RelayUrl | RelayConfig):
            relays = [relays]
        by_url: dict[RelayUrl, RelayConfig] = {}
        for item in relays:
            config = _to_config(item)
            by_url[config.url] = config
        self._relays: dict[RelayUrl, RelayConfig] = dict(sorted(by_url.items()))

    @classmethod
    def empty(cls) -> RelayMap:
        """A map with no relays."""
        return cls()

    @classmethod
    def from_urls(cls, urls: Iterable[RelayUrl | str]) -> RelayMap:
        """Each URL with the default QUIC address discovery port."""
        return cls(RelayConfig(RelayUrl(u)) for u in urls)

    def urls(self) -> list[RelayUrl]:
        """The relay URLs, sorted."""
        return list(self._relays)

    def relays(self) -> list[RelayConfig]:
        """The relay configurations, sorted by URL."""
        return list(self._relays.values())

    def get(self, url: RelayUrl | str) -> RelayConfig | None:
        """The configuration for ``url``, or None."""
        return self._relays.get(url if isinstance(url, RelayUrl) else RelayUrl(url))

    def is_empty(self) -> bool:
        """True when the map holds no relay."""
        return not self._relays

    def with_relay(self, relay: RelayLike) -> RelayMap:
        """A copy with ``relay`` added (replacing any entry with the same URL)."""
        return RelayMap([*self._relays.values(), _to_config(relay)])

    def without(self, url: RelayUrl | str) -> RelayMap:
        """A copy without ``url``."""
        key = url if isinstance(url, RelayUrl) else RelayUrl(url)
        return RelayMap(c for u, c in self._relays.items() if u != key)

    def extend(self, other: RelayMap | Iterable[RelayLike]) -> RelayMap:
        """A copy with every relay of ``other`` added."""
        extra = other.relays() if isinstance(other, RelayMap) else list(other)
        return RelayMap([*self._relays.values(), *extra])

    def with_auth_token(self, token: str) -> RelayMap:
        """A copy where every relay carries ``token``."""
        return RelayMap(c.with_auth_token(token) for c in self._relays.values())

    def __contains__(self, url: object) -> bool:
        if isinstance(url, RelayConfig):
            url = url.url
        if isinstance(url, str):
            try:
                url = RelayUrl(url)
            except ValueError:
                return False
        return url in self._relays

    def __iter__(self) -> Iterator[RelayConfig]:
        return iter(self._relays.values())

    def __len__(self) -> int:
        return len(self._relays)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RelayMap) and list(other._relays.items()) == list(
            self._relays.items()
        )

    def __hash__(self) -> int:
        return hash(tuple(self._relays.values()))

    def __repr__(self) -> str:
        return f"RelayMap([{', '.join(str(u) for u in self._relays)}])"
