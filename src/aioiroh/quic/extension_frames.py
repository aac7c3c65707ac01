"""Extension frame codecs: ACK frequency, multipath PATH_*, n0 NAT traversal and QAD.

Sans-I/O. Owns the frames that only exist when an extension is negotiated (wire doc §3.3-3.5):
ACK_FREQUENCY / IMMEDIATE_ACK, PATH_ABANDON, PATH_STATUS_*, MAX_PATH_ID, PATHS_BLOCKED,
PATH_CIDS_BLOCKED, ADD_ADDRESS / REACH_OUT / REMOVE_ADDRESS and OBSERVED_ADDRESS, with the
IP-address field codec they share. The multipath variants of ACK and the CID frames share their
RFC 9000 classes in :mod:`.core_frames`. :mod:`.frames` merges the dispatch entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Final

from aioiroh.quic._aioquic import Buffer, size_uint_var
from aioiroh.quic.frame_types import FT, IpAddress, pull_path_id

# ---------------------------------------------------------------------------------------------
# Frame classes


@dataclass(frozen=True, slots=True)
class AckFrequencyFrame:
    """ACK_FREQUENCY (draft-ietf-quic-ack-frequency)."""

    sequence: int
    ack_eliciting_threshold: int
    request_max_ack_delay: int
    """Requested max ack delay in microseconds."""
    reordering_threshold: int


@dataclass(frozen=True, slots=True)
class ImmediateAckFrame:
    """IMMEDIATE_ACK."""


@dataclass(frozen=True, slots=True)
class PathAbandonFrame:
    """PATH_ABANDON."""

    path_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class PathStatusFrame:
    """PATH_STATUS_AVAILABLE when ``available``, else PATH_STATUS_BACKUP."""

    path_id: int
    sequence: int
    available: bool


@dataclass(frozen=True, slots=True)
class MaxPathIdFrame:
    """MAX_PATH_ID."""

    max_path_id: int


@dataclass(frozen=True, slots=True)
class PathsBlockedFrame:
    """PATHS_BLOCKED."""

    max_path_id: int


@dataclass(frozen=True, slots=True)
class PathCidsBlockedFrame:
    """PATH_CIDS_BLOCKED."""

    path_id: int
    next_sequence: int


@dataclass(frozen=True, slots=True)
class AddAddressFrame:
    """ADD_ADDRESS (server to client): a candidate address with its sequence number."""

    sequence: int
    ip: IpAddress
    port: int


@dataclass(frozen=True, slots=True)
class ReachOutFrame:
    """REACH_OUT (client to server): probe this client address in this round."""

    round: int
    ip: IpAddress
    port: int


@dataclass(frozen=True, slots=True)
class RemoveAddressFrame:
    """REMOVE_ADDRESS (server to client)."""

    sequence: int


@dataclass(frozen=True, slots=True)
class ObservedAddressFrame:
    """OBSERVED_IPV4_ADDRESS / OBSERVED_IPV6_ADDRESS (QAD)."""

    sequence: int
    ip: IpAddress
    port: int


_IMMEDIATE_ACK: Final = ImmediateAckFrame()


def canonical_ip(ip: IpAddress) -> IpAddress:
    """Return ``ip`` with an IPv4-mapped IPv6 address turned into IPv4 (wire doc §3.4)."""
    if isinstance(ip, IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return mapped
    return ip


def _pull_ip_port(buf: Buffer, ipv6: bool) -> tuple[IpAddress, int]:
    ip: IpAddress
    ip = canonical_ip(IPv6Address(buf.pull_bytes(16))) if ipv6 else IPv4Address(buf.pull_bytes(4))
    return ip, buf.pull_uint16()


def _push_ip_port(buf: Buffer, ip: IpAddress, port: int) -> None:
    buf.push_bytes(canonical_ip(ip).packed)
    buf.push_uint16(port)


def _ip_type(ip: IpAddress, v4_type: int) -> int:
    return v4_type if canonical_ip(ip).version == 4 else v4_type + 1


def _size_ip_port(ip: IpAddress) -> int:
    return (4 if canonical_ip(ip).version == 4 else 16) + 2


# ---------------------------------------------------------------------------------------------
# pull_* (after the type varint) / push_* (type included)


def pull_ack_frequency(buf: Buffer, frame_type: int = FT.ACK_FREQUENCY) -> AckFrequencyFrame:
    """Read ACK_FREQUENCY."""
    return AckFrequencyFrame(
        buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var()
    )


def push_ack_frequency(buf: Buffer, frame: AckFrequencyFrame) -> None:
    """Write ACK_FREQUENCY."""
    buf.push_uint_var(FT.ACK_FREQUENCY)
    buf.push_uint_var(frame.sequence)
    buf.push_uint_var(frame.ack_eliciting_threshold)
    buf.push_uint_var(frame.request_max_ack_delay)
    buf.push_uint_var(frame.reordering_threshold)


def pull_immediate_ack(buf: Buffer, frame_type: int = FT.IMMEDIATE_ACK) -> ImmediateAckFrame:
    """IMMEDIATE_ACK has no body."""
    return _IMMEDIATE_ACK


def push_immediate_ack(buf: Buffer, frame: ImmediateAckFrame) -> None:
    """Write IMMEDIATE_ACK."""
    buf.push_uint8(FT.IMMEDIATE_ACK)


def pull_path_abandon(buf: Buffer, frame_type: int = FT.PATH_ABANDON) -> PathAbandonFrame:
    """Read PATH_ABANDON."""
    return PathAbandonFrame(pull_path_id(buf), buf.pull_uint_var())


def push_path_abandon(buf: Buffer, frame: PathAbandonFrame) -> None:
    """Write PATH_ABANDON."""
    buf.push_uint_var(FT.PATH_ABANDON)
    buf.push_uint_var(frame.path_id)
    buf.push_uint_var(frame.error_code)


def pull_path_status(buf: Buffer, frame_type: int = FT.PATH_STATUS_AVAILABLE) -> PathStatusFrame:
    """Read PATH_STATUS_BACKUP / PATH_STATUS_AVAILABLE."""
    return PathStatusFrame(
        pull_path_id(buf), buf.pull_uint_var(), frame_type == FT.PATH_STATUS_AVAILABLE
    )


def push_path_status(buf: Buffer, frame: PathStatusFrame) -> None:
    """Write PATH_STATUS_BACKUP / PATH_STATUS_AVAILABLE."""
    buf.push_uint_var(FT.PATH_STATUS_AVAILABLE if frame.available else FT.PATH_STATUS_BACKUP)
    buf.push_uint_var(frame.path_id)
    buf.push_uint_var(frame.sequence)


def pull_max_path_id(buf: Buffer, frame_type: int = FT.MAX_PATH_ID) -> MaxPathIdFrame:
    """Read MAX_PATH_ID."""
    return MaxPathIdFrame(pull_path_id(buf))


def push_max_path_id(buf: Buffer, frame: MaxPathIdFrame) -> None:
    """Write MAX_PATH_ID."""
    buf.push_uint_var(FT.MAX_PATH_ID)
    buf.push_uint_var(frame.max_path_id)


def pull_paths_blocked(buf: Buffer, frame_type: int = FT.PATHS_BLOCKED) -> PathsBlockedFrame:
    """Read PATHS_BLOCKED."""
    return PathsBlockedFrame(pull_path_id(buf))


def push_paths_blocked(buf: Buffer, frame: PathsBlockedFrame) -> None:
    """Write PATHS_BLOCKED."""
    buf.push_uint_var(FT.PATHS_BLOCKED)
    buf.push_uint_var(frame.max_path_id)


def pull_path_cids_blocked(
    buf: Buffer, frame_type: int = FT.PATH_CIDS_BLOCKED
) -> PathCidsBlockedFrame:
    """Read PATH_CIDS_BLOCKED."""
    return PathCidsBlockedFrame(pull_path_id(buf), buf.pull_uint_var())


def push_path_cids_blocked(buf: Buffer, frame: PathCidsBlockedFrame) -> None:
    """Write PATH_CIDS_BLOCKED."""
    buf.push_uint_var(FT.PATH_CIDS_BLOCKED)
    buf.push_uint_var(frame.path_id)
    buf.push_uint_var(frame.next_sequence)


def pull_add_address(buf: Buffer, frame_type: int = FT.ADD_IPV4_ADDRESS) -> AddAddressFrame:
    """Read ADD_ADDRESS (IPv4 or IPv6 by type)."""
    sequence = buf.pull_uint_var()
    ip, port = _pull_ip_port(buf, frame_type == FT.ADD_IPV6_ADDRESS)
    return AddAddressFrame(sequence, ip, port)


def push_add_address(buf: Buffer, frame: AddAddressFrame) -> None:
    """Write ADD_ADDRESS (the IPv4 form for IPv4 and IPv4-mapped addresses)."""
    buf.push_uint_var(_ip_type(frame.ip, FT.ADD_IPV4_ADDRESS))
    buf.push_uint_var(frame.sequence)
    _push_ip_port(buf, frame.ip, frame.port)


def pull_reach_out(buf: Buffer, frame_type: int = FT.REACH_OUT_IPV4) -> ReachOutFrame:
    """Read REACH_OUT (IPv4 or IPv6 by type)."""
    round_ = buf.pull_uint_var()
    ip, port = _pull_ip_port(buf, frame_type == FT.REACH_OUT_IPV6)
    return ReachOutFrame(round_, ip, port)


def push_reach_out(buf: Buffer, frame: ReachOutFrame) -> None:
    """Write REACH_OUT."""
    buf.push_uint_var(_ip_type(frame.ip, FT.REACH_OUT_IPV4))
    buf.push_uint_var(frame.round)
    _push_ip_port(buf, frame.ip, frame.port)


def pull_remove_address(buf: Buffer, frame_type: int = FT.REMOVE_ADDRESS) -> RemoveAddressFrame:
    """Read REMOVE_ADDRESS."""
    return RemoveAddressFrame(buf.pull_uint_var())


def push_remove_address(buf: Buffer, frame: RemoveAddressFrame) -> None:
    """Write REMOVE_ADDRESS."""
    buf.push_uint_var(FT.REMOVE_ADDRESS)
    buf.push_uint_var(frame.sequence)


def pull_observed_address(
    buf: Buffer, frame_type: int = FT.OBSERVED_IPV4_ADDRESS
) -> ObservedAddressFrame:
    """Read OBSERVED_IPV4_ADDRESS / OBSERVED_IPV6_ADDRESS."""
    sequence = buf.pull_uint_var()
    ip, port = _pull_ip_port(buf, frame_type == FT.OBSERVED_IPV6_ADDRESS)
    return ObservedAddressFrame(sequence, ip, port)


def push_observed_address(buf: Buffer, frame: ObservedAddressFrame) -> None:
    """Write OBSERVED_*_ADDRESS."""
    buf.push_uint_var(_ip_type(frame.ip, FT.OBSERVED_IPV4_ADDRESS))
    buf.push_uint_var(frame.sequence)
    _push_ip_port(buf, frame.ip, frame.port)


# ---------------------------------------------------------------------------------------------
# Dispatch entries (extensions), merged by :mod:`.frames`

PULL: Final[dict[int, Callable[[Buffer, int], Any]]] = {
    FT.IMMEDIATE_ACK: pull_immediate_ack,
    FT.ACK_FREQUENCY: pull_ack_frequency,
    FT.PATH_ABANDON: pull_path_abandon,
    FT.PATH_STATUS_BACKUP: pull_path_status,
    FT.PATH_STATUS_AVAILABLE: pull_path_status,
    FT.MAX_PATH_ID: pull_max_path_id,
    FT.PATHS_BLOCKED: pull_paths_blocked,
    FT.PATH_CIDS_BLOCKED: pull_path_cids_blocked,
    FT.ADD_IPV4_ADDRESS: pull_add_address,
    FT.ADD_IPV6_ADDRESS: pull_add_address,
    FT.REACH_OUT_IPV4: pull_reach_out,
    FT.REACH_OUT_IPV6: pull_reach_out,
    FT.REMOVE_ADDRESS: pull_remove_address,
    FT.OBSERVED_IPV4_ADDRESS: pull_observed_address,
    FT.OBSERVED_IPV6_ADDRESS: pull_observed_address,
}

PUSH: Final[dict[type, Callable[[Buffer, Any], None]]] = {
    AckFrequencyFrame: push_ack_frequency,
    ImmediateAckFrame: push_immediate_ack,
    PathAbandonFrame: push_path_abandon,
    PathStatusFrame: push_path_status,
    MaxPathIdFrame: push_max_path_id,
    PathsBlockedFrame: push_paths_blocked,
    PathCidsBlockedFrame: push_path_cids_blocked,
    AddAddressFrame: push_add_address,
    ReachOutFrame: push_reach_out,
    RemoveAddressFrame: push_remove_address,
    ObservedAddressFrame: push_observed_address,
}

_v = size_uint_var
SIZE: Final[dict[type, Callable[[Any], int]]] = {
    AckFrequencyFrame: lambda f: (
        _v(FT.ACK_FREQUENCY)
        + _v(f.sequence)
        + _v(f.ack_eliciting_threshold)
        + _v(f.request_max_ack_delay)
        + _v(f.reordering_threshold)
    ),
    ImmediateAckFrame: lambda f: 1,
    PathAbandonFrame: lambda f: _v(FT.PATH_ABANDON) + _v(f.path_id) + _v(f.error_code),
    PathStatusFrame: lambda f: _v(FT.PATH_STATUS_BACKUP) + _v(f.path_id) + _v(f.sequence),
    MaxPathIdFrame: lambda f: _v(FT.MAX_PATH_ID) + _v(f.max_path_id),
    PathsBlockedFrame: lambda f: _v(FT.PATHS_BLOCKED) + _v(f.max_path_id),
    PathCidsBlockedFrame: lambda f: _v(FT.PATH_CIDS_BLOCKED) + _v(f.path_id) + _v(f.next_sequence),
    AddAddressFrame: lambda f: _v(FT.ADD_IPV4_ADDRESS) + _v(f.sequence) + _size_ip_port(f.ip),
    ReachOutFrame: lambda f: _v(FT.REACH_OUT_IPV4) + _v(f.round) + _size_ip_port(f.ip),
    RemoveAddressFrame: lambda f: _v(FT.REMOVE_ADDRESS) + _v(f.sequence),
    ObservedAddressFrame: lambda f: (
        _v(FT.OBSERVED_IPV4_ADDRESS) + _v(f.sequence) + _size_ip_port(f.ip)
    ),
}
