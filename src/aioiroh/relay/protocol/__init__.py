"""The iroh relay protocol, sans-I/O: versions, frames, handshake and ping bookkeeping.

See :mod:`.frames` for the frame table and :mod:`.handshake` for authentication.
"""

from __future__ import annotations

from .frames import (
    MAX_FRAME_SIZE,
    MAX_PACKET_SIZE,
    ClientAuth,
    ClientToRelayDatagrams,
    ClientToRelayMsg,
    Datagrams,
    EndpointGone,
    FrameType,
    Health,
    Ping,
    Pong,
    RelayProtocolError,
    RelayToClientDatagrams,
    RelayToClientMsg,
    Restarting,
    ServerChallenge,
    ServerConfirmsAuth,
    ServerDeniesAuth,
    Status,
    StatusCode,
    decode_client_msg,
    decode_relay_msg,
    encode_client_msg,
    encode_relay_msg,
    encoded_len,
)
from .handshake import (
    KeyMaterialClientAuth,
    build_client_auth_header,
    challenge_message,
    parse_client_auth_header,
    sign_challenge,
    verify_client_auth,
)
from .ping import PingTracker
from .version import CLIENT_AUTH_HEADER, RELAY_PATH, SUBPROTOCOLS, ProtocolVersion, negotiate

__all__ = [
    "CLIENT_AUTH_HEADER",
    "MAX_FRAME_SIZE",
    "MAX_PACKET_SIZE",
    "RELAY_PATH",
    "SUBPROTOCOLS",
    "ClientAuth",
    "ClientToRelayDatagrams",
    "ClientToRelayMsg",
    "Datagrams",
    "EndpointGone",
    "FrameType",
    "Health",
    "KeyMaterialClientAuth",
    "Ping",
    "PingTracker",
    "Pong",
    "ProtocolVersion",
    "RelayProtocolError",
    "RelayToClientDatagrams",
    "RelayToClientMsg",
    "Restarting",
    "ServerChallenge",
    "ServerConfirmsAuth",
    "ServerDeniesAuth",
    "Status",
    "StatusCode",
    "build_client_auth_header",
    "challenge_message",
    "decode_client_msg",
    "decode_relay_msg",
    "encode_client_msg",
    "encode_relay_msg",
    "encoded_len",
    "negotiate",
    "parse_client_auth_header",
    "sign_challenge",
    "verify_client_auth",
]
