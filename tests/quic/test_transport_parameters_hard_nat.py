"""aioiroh's ``hard_nat`` transport parameter: codec, and negotiation between two engines."""

from __future__ import annotations

from typing import Any

import pytest
from aioquic.quic import events

from aioiroh.quic._aioquic import encode_uint_var
from aioiroh.quic.frames import QuicProtocolViolation
from aioiroh.quic.transport_parameters import (
    HARD_NAT_ID,
    TRANSPORT_PARAMETER_ERROR,
    IrohTransportParameters,
    iroh_default_parameters,
)

from .support.pump import Pump

pytestmark = pytest.mark.timeout(30)

CID = bytes(range(8))


def _param(param_id: int, value: bytes) -> bytes:
    return encode_uint_var(param_id) + encode_uint_var(len(value)) + value


def _base(is_client: bool = True) -> IrohTransportParameters:
    return iroh_default_parameters(
        is_client,
        initial_source_connection_id=CID,
        original_destination_connection_id=None if is_client else bytes(8),
        stateless_reset_token=None if is_client else bytes(16),
    )


# -- codec ---------------------------------------------------------------------------------


def test_absent_by_default() -> None:
    for is_client in (True, False):
        params = _base(is_client)
        assert params.hard_nat is False
        blob = params.encode()
        assert _param(HARD_NAT_ID, b"") not in blob
        assert IrohTransportParameters.decode(blob).hard_nat is False


@pytest.mark.parametrize("flag", [True, False])
@pytest.mark.parametrize("is_client", [True, False])
def test_round_trip(flag: bool, is_client: bool) -> None:
    params = _base(is_client)
    params.hard_nat = flag
    blob = params.encode()
    assert blob.endswith(_param(HARD_NAT_ID, b"")) is flag
    decoded = IrohTransportParameters.decode(blob)
    assert decoded.hard_nat is flag
    assert decoded == params


def test_round_trip_with_grease() -> None:
    params = _base()
    params.hard_nat = True
    decoded = IrohTransportParameters.decode(params.encode(grease=(5, b"\x01\x02\x03")))
    assert decoded.hard_nat is True and decoded == params


def test_empty_value_appended_by_hand_decodes() -> None:
    blob = _base().encode() + _param(HARD_NAT_ID, b"")
    assert IrohTransportParameters.decode(blob).hard_nat is True


@pytest.mark.parametrize("value", [b"\x00", b"\x01", b"\x01\x02", bytes(30)])
def test_non_empty_value_rejected(value: bytes) -> None:
    blob = _base().encode() + _param(HARD_NAT_ID, value)
    with pytest.raises(QuicProtocolViolation) as info:
        IrohTransportParameters.decode(blob)
    assert info.value.code == TRANSPORT_PARAMETER_ERROR == 0x08


def test_duplicate_rejected() -> None:
    blob = _base().encode() + _param(HARD_NAT_ID, b"") + _param(HARD_NAT_ID, b"")
    with pytest.raises(QuicProtocolViolation) as info:
        IrohTransportParameters.decode(blob)
    assert info.value.code == TRANSPORT_PARAMETER_ERROR


def test_id_is_outside_reserved_grease_ids() -> None:
    assert (HARD_NAT_ID - 27) % 31 != 0
    assert HARD_NAT_ID < 2**62


# -- negotiation between two engines (virtual time) ----------------------------------------


def _handshake(p: Pump) -> None:
    p.run_until(
        lambda: bool(
            p.of("client", events.HandshakeCompleted)
            and p.server is not None
            and p.of("server", events.HandshakeCompleted)
        )
    )


def _kwargs(hard_nat: bool | None) -> dict[str, Any]:
    return {} if hard_nat is None else {"hard_nat": hard_nat}


@pytest.mark.parametrize(
    ("client", "server", "negotiated"),
    [
        (True, True, True),
        (True, False, False),
        (False, True, False),
        (True, None, False),  # the default is off
        (None, True, False),
        (None, None, False),
    ],
)
def test_negotiation(client: bool | None, server: bool | None, negotiated: bool) -> None:
    p = Pump(client_kwargs=_kwargs(client), server_kwargs=_kwargs(server))
    _handshake(p)
    assert p.server is not None
    # Multipath and NAT traversal are negotiated either way: only the flag differs.
    assert p.client.nat_traversal_negotiated and p.server.nat_traversal_negotiated
    assert p.client.hard_nat_negotiated is negotiated
    assert p.server.hard_nat_negotiated is negotiated
    # The probe token: the client's first destination CID, the same bytes on both sides.
    odcid = p.client.original_destination_cid
    assert len(odcid) >= 8
    assert odcid == p.server.original_destination_cid


def test_needs_nat_traversal_on_both_sides() -> None:
    p = Pump(
        client_kwargs={"hard_nat": True, "nat_traversal": False},
        server_kwargs={"hard_nat": True},
    )
    _handshake(p)
    assert p.server is not None
    assert not p.client.nat_traversal_negotiated
    assert not p.client.hard_nat_negotiated and not p.server.hard_nat_negotiated


def test_needs_multipath() -> None:
    p = Pump(
        client_kwargs={"hard_nat": True, "max_path_id": None},
        server_kwargs={"hard_nat": True},
    )
    _handshake(p)
    assert p.server is not None
    assert not p.client.hard_nat_negotiated and not p.server.hard_nat_negotiated
