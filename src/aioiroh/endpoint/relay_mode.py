"""Which relay servers an endpoint uses: :class:`RelayMode` (Rust's ``iroh::RelayMode``)."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping

from .. import defaults
from ..base.relay_url import RelayUrl
from ..relay.relay_map import RelayConfig, RelayMap

__all__ = ["RelayMode", "RelayModeKind", "default_relay_mode", "force_staging_infra"]


class RelayModeKind(enum.Enum):
    """The four relay modes."""

    DISABLED = "disabled"
    DEFAULT = "default"
    STAGING = "staging"
    CUSTOM = "custom"


class RelayMode:
    """Relay configuration of an endpoint.

    * :meth:`disabled` — no relays at all (direct connections only);
    * :meth:`default` — n0's production relays (the internet: never in tests);
    * :meth:`staging` — n0's staging relays (also the internet);
    * :meth:`custom` — your own relays.
    """

    __slots__ = ("_kind", "_map")

    def __init__(self, kind: RelayModeKind, relay_map: RelayMap | None = None) -> None:
        if (kind is RelayModeKind.CUSTOM) != (relay_map is not None):
            raise ValueError("a relay map goes with RelayModeKind.CUSTOM and only with it")
        self._kind = kind
        self._map = relay_map

    @classmethod
    def disabled(cls) -> RelayMode:
        """No relays: neither listening on nor dialing through any relay."""
        return cls(RelayModeKind.DISABLED)

    @classmethod
    def default(cls) -> RelayMode:
        """n0's production relays (see :mod:`aioiroh.defaults`)."""
        return cls(RelayModeKind.DEFAULT)

    @classmethod
    def staging(cls) -> RelayMode:
        """n0's staging relays."""
        return cls(RelayModeKind.STAGING)

    @classmethod
    def custom(
        cls, relays: RelayMap | Iterable[RelayConfig | RelayUrl | str] | RelayUrl | str
    ) -> RelayMode:
        """Your own relays: a :class:`RelayMap`, or URLs/text/:class:`RelayConfig` values."""
        relay_map = relays if isinstance(relays, RelayMap) else RelayMap(relays)
        return cls(RelayModeKind.CUSTOM, relay_map)

    @property
    def kind(self) -> RelayModeKind:
        """Which mode this is: disabled, default, staging or custom."""
        return self._kind

    @property
    def is_disabled(self) -> bool:
        """True when no relay is used."""
        return self._kind is RelayModeKind.DISABLED

    def relay_map(self) -> RelayMap:
        """The relays this mode uses (empty when disabled)."""
        if self._kind is RelayModeKind.DEFAULT:
            return RelayMap.from_urls(defaults.PROD_RELAY_URLS)
        if self._kind is RelayModeKind.STAGING:
            return RelayMap.from_urls(defaults.STAGING_RELAY_URLS)
        if self._map is not None:
            return self._map
        return RelayMap.empty()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RelayMode) and (other._kind, other._map) == (
            self._kind,
            self._map,
        )

    def __hash__(self) -> int:
        return hash((self._kind, self._map))

    def __repr__(self) -> str:
        if self._map is not None:
            return f"RelayMode.custom({self._map!r})"
        return f"RelayMode.{self._kind.value}()"


def force_staging_infra(environ: Mapping[str, str] | None = None) -> bool:
    """True if ``IROH_FORCE_STAGING_RELAYS`` is set to a non-empty value."""
    env = os.environ if environ is None else environ
    return bool(env.get(defaults.ENV_FORCE_STAGING_RELAYS))


def default_relay_mode(environ: Mapping[str, str] | None = None) -> RelayMode:
    """Staging if forced by the environment, else the production default (as in Rust)."""
    return RelayMode.staging() if force_staging_infra(environ) else RelayMode.default()
