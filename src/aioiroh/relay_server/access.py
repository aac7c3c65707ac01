"""Access control: allow list, deny list and bearer tokens → None (allowed) or a deny reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ..base.key import EndpointId
from ..relay.protocol.handshake import DENY_NOT_AUTHORIZED
from ..relay.protocol.version import AUTH_TOKEN_QUERY_PARAM
from .config import AccessConfig

__all__ = ["bearer_token", "check_access"]

_BEARER: Final = "bearer "


def bearer_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The token from ``Authorization: Bearer <token>`` (scheme case-insensitive) or ``?token=``."""
    auth = headers.get("Authorization")
    if auth is not None and auth[: len(_BEARER)].lower() == _BEARER:
        return auth[len(_BEARER) :].strip()
    return query.get(AUTH_TOKEN_QUERY_PARAM)


def check_access(config: AccessConfig, endpoint_id: EndpointId, token: str | None) -> str | None:
    """None if ``endpoint_id`` (holding ``token``) may connect, else the reason to deny."""
    if endpoint_id in config.deny:
        return DENY_NOT_AUTHORIZED
    if config.allow is not None and endpoint_id not in config.allow:
        return DENY_NOT_AUTHORIZED
    if config.tokens is not None and (token is None or token not in config.tokens):
        return DENY_NOT_AUTHORIZED
    return None
