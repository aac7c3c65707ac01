"""RelayConfig, RelayMap, RelayMode and defaults (no network: only data is inspected)."""

from __future__ import annotations

import pytest

from aioiroh import defaults
from aioiroh.base import RelayUrl
from aioiroh.endpoint.relay_mode import (
    RelayMode,
    RelayModeKind,
    default_relay_mode,
    force_staging_infra,
)
from aioiroh.errors import DecodeError
from aioiroh.relay.relay_map import DEFAULT_RELAY_QUIC_PORT, RelayConfig, RelayMap

A = "http://127.0.0.1:3340"
B = "https://relay-b.example."


def test_relay_config() -> None:
    c = RelayConfig(A)  # type: ignore[arg-type]
    assert c.url == RelayUrl(A) and c.quic_port == 7842 and c.auth_token is None
    assert str(c) == "http://127.0.0.1:3340/"
    t = c.with_auth_token("secret")
    assert t.auth_token == "secret" and "secret" not in repr(t)
    assert RelayConfig(RelayUrl(A), None).quic_port is None
    for bad_port in (0, 70000, True):
        with pytest.raises(ValueError):
            RelayConfig(RelayUrl(A), bad_port)
    with pytest.raises(DecodeError):
        RelayConfig("not a url")  # type: ignore[arg-type]


def test_relay_map() -> None:
    m = RelayMap.from_urls([B, A, A])
    assert len(m) == 2 and not m.is_empty()
    assert m.urls() == [RelayUrl(A), RelayUrl(B)]  # URL order, like Rust's BTreeMap
    assert [c.url for c in m] == m.urls()
    assert A in m and RelayUrl(B) in m and RelayConfig(RelayUrl(B)) in m
    assert "https://other.example" not in m and "garbage" not in m and 3 not in m
    assert m.get(A) == RelayConfig(RelayUrl(A))
    assert m.get("https://other.example") is None
    assert m == RelayMap([RelayConfig(RelayUrl(B)), A])
    assert hash(m) == hash(RelayMap([A, B]))
    assert repr(m) == "RelayMap([http://127.0.0.1:3340/, https://relay-b.example./])"

    replaced = m.with_relay(RelayConfig(RelayUrl(A), quic_port=None))
    assert replaced.get(A) is not None and replaced.get(A).quic_port is None  # type: ignore[union-attr]
    assert m.get(A).quic_port == 7842  # type: ignore[union-attr]
    assert m.without(A).urls() == [RelayUrl(B)]
    assert RelayMap.empty().extend(m) == m
    assert RelayMap.empty().extend([A]).urls() == [RelayUrl(A)]
    assert all(c.auth_token == "t" for c in m.with_auth_token("t"))
    assert RelayMap(A).urls() == [RelayUrl(A)]
    assert RelayMap.empty().is_empty() and len(RelayMap()) == 0


def test_relay_mode() -> None:
    assert RelayMode.disabled().is_disabled
    assert RelayMode.disabled().relay_map().is_empty()
    assert RelayMode.disabled().kind is RelayModeKind.DISABLED
    custom = RelayMode.custom([A, RelayUrl(B)])
    assert not custom.is_disabled and custom.kind is RelayModeKind.CUSTOM
    assert custom.relay_map().urls() == [RelayUrl(A), RelayUrl(B)]
    assert RelayMode.custom(RelayMap.from_urls([A])) == RelayMode.custom([A])
    assert RelayMode.custom([RelayConfig(RelayUrl(A), None)]).relay_map().get(A) == RelayConfig(
        RelayUrl(A), None
    )
    assert RelayMode.custom(A).relay_map().urls() == [RelayUrl(A)]
    assert repr(RelayMode.disabled()) == "RelayMode.disabled()"
    assert repr(RelayMode.custom([A])) == "RelayMode.custom(RelayMap([http://127.0.0.1:3340/]))"
    assert RelayMode.default() != RelayMode.staging()
    with pytest.raises(ValueError):
        RelayMode(RelayModeKind.DISABLED, RelayMap())


def test_default_and_staging_maps_are_n0_data() -> None:
    # Only builds values; nothing is contacted.
    prod = RelayMode.default().relay_map()
    assert [str(u) for u in prod.urls()] == sorted(defaults.PROD_RELAY_URLS)
    assert str(prod.urls()[0]) == "https://aps1-1.relay.n0.iroh.link./"
    assert all(c.quic_port == defaults.DEFAULT_RELAY_QUIC_PORT for c in prod)
    staging = RelayMode.staging().relay_map()
    assert len(staging) == 2
    assert all(str(u).endswith(".staging-relay.n0.iroh.link./") for u in staging.urls())
    for url in (*defaults.PROD_RELAY_URLS, *defaults.STAGING_RELAY_URLS):
        assert str(RelayUrl(url)) == url  # stored in normalised form


def test_default_relay_mode_env() -> None:
    assert default_relay_mode({}) == RelayMode.default()
    assert default_relay_mode({"IROH_FORCE_STAGING_RELAYS": ""}) == RelayMode.default()
    assert default_relay_mode({"IROH_FORCE_STAGING_RELAYS": "1"}) == RelayMode.staging()
    assert force_staging_infra({"IROH_FORCE_STAGING_RELAYS": "yes"})


def test_defaults_constants() -> None:
    assert DEFAULT_RELAY_QUIC_PORT == defaults.DEFAULT_RELAY_QUIC_PORT == 7842
    assert (defaults.DEFAULT_HTTP_PORT, defaults.DEFAULT_HTTPS_PORT) == (80, 443)
    assert defaults.DEFAULT_METRICS_PORT == 9090
    assert defaults.N0_DNS_ENDPOINT_ORIGIN_PROD == "dns.iroh.link."
    assert defaults.N0_DNS_PKARR_RELAY_PROD == "https://dns.iroh.link/pkarr"
