"""iroh-gossip wire messages and their postcard codecs (ecosystem doc §2).

A topic message is ``enum { Swarm(hyparview::Message), Gossip(plumtree::Message) }``; both
``/iroh-gossip/1`` (topic in the stream header) and ``/iroh-gossip/0`` (topic in every frame,
:class:`ProtoMessage`) carry the same inner messages. Peer ids are 32-byte Ed25519 keys (raw
bytes on the wire); :class:`PeerData` is opaque bytes which iroh fills with
``postcard(AddrInfo { relay_url, direct_addresses })``.

The dataclasses are generic over the peer id so the sans-I/O state machine can run with any
hashable id (the swarm simulation uses ints); only :class:`PublicKey` ids are encodable.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Generic, TypeAlias, TypeVar

import blake3

from ..base._postcard import Reader, Writer
from ..base.endpoint_addr import SocketAddr, parse_socket_addr
from ..base.key import PublicKey
from ..base.relay_url import RelayUrl
from ..errors import DecodeError, IrohError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "IHAVE_MAX_SIZE",
    "MIN_MAX_MESSAGE_SIZE",
    "AddrInfo",
    "DeliveryScope",
    "Disconnect",
    "ForwardJoin",
    "Gossip",
    "GossipDecodeError",
    "GossipError",
    "Graft",
    "IHave",
    "IHaveMsg",
    "Join",
    "Message",
    "MessageId",
    "Neighbor",
    "PeerData",
    "PeerInfo",
    "Priority",
    "ProtoMessage",
    "Prune",
    "Shuffle",
    "ShuffleReply",
    "TopicId",
    "decode_message",
    "decode_proto_message",
    "encode_message",
    "encode_proto_message",
]

DEFAULT_MAX_MESSAGE_SIZE: Final = 4096
"""Rust's default ``max_message_size``: frames of this size or larger are refused."""
MIN_MAX_MESSAGE_SIZE: Final = 512
"""Rust refuses a configured ``max_message_size`` below this."""
IHAVE_MAX_SIZE: Final = 32 + 3
"""Postcard's largest ``IHave``: a 32-byte id plus a u16 varint (at most 3 bytes)."""

PI = TypeVar("PI")


class GossipError(IrohError):
    """Base of the gossip errors."""


class GossipDecodeError(DecodeError, GossipError):
    """A gossip frame or message that does not decode (or is too large)."""


class TopicId(bytes):
    """A 32-byte topic identifier (any 32 bytes; often a blake3 hash of a name)."""

    def __new__(cls, data: bytes) -> TopicId:
        if len(data) != 32:
            raise GossipDecodeError(f"topic id must be 32 bytes, got {len(data)}")
        return super().__new__(cls, data)

    @classmethod
    def from_name(cls, name: str | bytes) -> TopicId:
        """The blake3 hash of ``name``: a convenient way to agree on a topic."""
        raw = name.encode() if isinstance(name, str) else name
        return cls(blake3.blake3(raw).digest())

    @classmethod
    def parse(cls, text: str) -> TopicId:
        """Parse 64 hex characters (Rust's ``TopicId`` text form)."""
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise GossipDecodeError(f"invalid topic id {text[:80]!r}") from None

    def fmt_short(self) -> str:
        return self[:5].hex()

    def __str__(self) -> str:
        return self.hex()

    def __repr__(self) -> str:
        return f"TopicId({self.hex()})"


class MessageId(bytes):
    """A broadcast message's id: the blake3 hash of its content."""

    def __new__(cls, data: bytes) -> MessageId:
        if len(data) != 32:
            raise GossipDecodeError(f"message id must be 32 bytes, got {len(data)}")
        return super().__new__(cls, data)

    @classmethod
    def from_content(cls, content: bytes) -> MessageId:
        return cls(blake3.blake3(content).digest())

    def __repr__(self) -> str:
        return f"MessageId({self[:5].hex()})"


# -- PeerData: postcard(AddrInfo) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddrInfo:
    """What iroh puts in :class:`PeerData`: a home relay and the direct addresses."""

    relay_url: RelayUrl | None = None
    direct_addresses: tuple[SocketAddr, ...] = ()

    def encode(self) -> bytes:
        w = Writer()
        w.option(self.relay_url is not None)
        if self.relay_url is not None:
            w.str_(str(self.relay_url))
        # A BTreeSet<SocketAddr> in Rust: sorted (V4 before V6, then address, then port).
        keyed = sorted({_socket_key(a) for a in self.direct_addresses})
        w.varint(len(keyed))
        for version, packed, port in keyed:
            w.varint(0 if version == 4 else 1)
            w.raw(packed)
            w.varint(port)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> AddrInfo:
        """Decode; empty bytes mean "nothing known" (as in Rust)."""
        if not data:
            return cls()
        r = Reader(data)
        relay: RelayUrl | None = None
        if r.option():
            relay = RelayUrl(r.str_())
        addrs: list[SocketAddr] = []
        for _ in range(r.length()):
            family = r.u32()
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address
            if family == 0:
                ip = ipaddress.IPv4Address(r.take(4))
            elif family == 1:
                ip = ipaddress.IPv6Address(r.take(16))
            else:
                raise GossipDecodeError(f"unknown socket address family {family}")
            addrs.append((ip.compressed, r.u16()))
        r.finish()
        return cls(relay, tuple(addrs))


def _socket_key(addr: SocketAddr) -> tuple[int, bytes, int]:
    ip, port = parse_socket_addr(addr)
    return ip.version, ip.packed, port


@dataclass(frozen=True, slots=True)
class PeerData:
    """Opaque bytes sent along with a peer id (iroh: ``postcard(AddrInfo)``)."""

    data: bytes = b""

    @classmethod
    def from_addr_info(cls, info: AddrInfo) -> PeerData:
        return cls(info.encode())

    def addr_info(self) -> AddrInfo:
        return AddrInfo.decode(self.data)

    def __repr__(self) -> str:
        return f"PeerData({len(self.data)}b)"


@dataclass(frozen=True, slots=True)
class PeerInfo(Generic[PI]):
    id: PI
    data: PeerData | None = None


# -- HyParView messages ----------------------------------------------------------------------


class Priority(enum.IntEnum):
    """A Neighbor request's priority: High may not be refused."""

    HIGH = 0
    LOW = 1


@dataclass(frozen=True, slots=True)
class Join:
    """Sent to a peer to join the swarm through it."""

    data: PeerData | None = None


@dataclass(frozen=True, slots=True)
class ForwardJoin(Generic[PI]):
    """A new member, introduced along a random walk of ``ttl`` hops."""

    peer: PeerInfo[PI]
    ttl: int


@dataclass(frozen=True, slots=True)
class Shuffle(Generic[PI]):
    """A sample of ``origin``'s views, walked ``ttl`` hops to refresh passive views."""

    origin: PI
    nodes: tuple[PeerInfo[PI], ...]
    ttl: int


@dataclass(frozen=True, slots=True)
class ShuffleReply(Generic[PI]):
    nodes: tuple[PeerInfo[PI], ...]


@dataclass(frozen=True, slots=True)
class Neighbor:
    """Ask to be (or confirm being) in the receiver's active view."""

    priority: Priority
    data: PeerData | None = None


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Leaving the active view; ``alive`` means "keep me as a passive peer"."""

    alive: bool
    respond: bool = False  # obsolete; kept on the wire by Rust


# -- Plumtree messages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryScope:
    """``Swarm(round)`` (hops from the broadcaster) or ``Neighbors`` (round is None)."""

    round: int | None = 0

    @property
    def is_neighbors(self) -> bool:
        return self.round is None


@dataclass(frozen=True, slots=True)
class Gossip:
    """A broadcast payload; ``id`` must be the blake3 hash of ``content``."""

    id: MessageId
    content: bytes
    scope: DeliveryScope

    def validate(self) -> bool:
        return MessageId.from_content(self.content) == self.id


@dataclass(frozen=True, slots=True)
class Prune:
    """Move the sender to the receiver's lazy set."""


@dataclass(frozen=True, slots=True)
class Graft:
    """Move the sender to the eager set, and send message ``id`` if set."""

    id: MessageId | None
    round: int


@dataclass(frozen=True, slots=True)
class IHave:
    id: MessageId
    round: int


@dataclass(frozen=True, slots=True)
class IHaveMsg:
    """A batch of lazy-push announcements."""

    ihaves: tuple[IHave, ...]


SwarmMessage: TypeAlias = (
    Join | ForwardJoin[PI] | Shuffle[PI] | ShuffleReply[PI] | Neighbor | Disconnect
)
GossipMessage: TypeAlias = Gossip | Prune | Graft | IHaveMsg
Message: TypeAlias = (
    Join
    | ForwardJoin[PI]
    | Shuffle[PI]
    | ShuffleReply[PI]
    | Neighbor
    | Disconnect
    | Gossip
    | Prune
    | Graft
    | IHaveMsg
)
"""A topic message: HyParView (``Swarm``) or Plumtree (``Gossip``)."""

SWARM_TYPES: Final = (Join, ForwardJoin, Shuffle, ShuffleReply, Neighbor, Disconnect)


@dataclass(frozen=True, slots=True)
class ProtoMessage(Generic[PI]):
    """The ``/iroh-gossip/0`` frame: a topic message with its topic."""

    topic: TopicId
    message: Message[PI]


# -- encoding --------------------------------------------------------------------------------

_TOPIC_SWARM: Final = 0
_TOPIC_GOSSIP: Final = 1


def _w_opt_data(w: Writer, data: PeerData | None) -> None:
    w.option(data is not None)
    if data is not None:
        w.bytes_(data.data)


def _w_peer_info(w: Writer, info: PeerInfo[PublicKey]) -> None:
    w.raw(_key_bytes(info.id))
    _w_opt_data(w, info.data)


def _key_bytes(key: object) -> bytes:
    if not isinstance(key, PublicKey):
        raise GossipError(f"only PublicKey peer ids are encodable, not {type(key).__name__}")
    return key.to_bytes()


def _w_peers(w: Writer, nodes: Iterable[PeerInfo[PublicKey]]) -> None:
    nodes = list(nodes)
    w.varint(len(nodes))
    for node in nodes:
        _w_peer_info(w, node)


def _w_u16(w: Writer, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise GossipError(f"u16 out of range: {value}")
    w.varint(value)


def _write_message(w: Writer, msg: Message[PublicKey]) -> None:
    if isinstance(msg, SWARM_TYPES):
        w.varint(_TOPIC_SWARM)
        if isinstance(msg, Join):
            w.varint(0)
            _w_opt_data(w, msg.data)
        elif isinstance(msg, ForwardJoin):
            w.varint(1)
            _w_peer_info(w, msg.peer)
            _w_u16(w, msg.ttl)
        elif isinstance(msg, Shuffle):
            w.varint(2)
            w.raw(_key_bytes(msg.origin))
            _w_peers(w, msg.nodes)
            _w_u16(w, msg.ttl)
        elif isinstance(msg, ShuffleReply):
            w.varint(3)
            _w_peers(w, msg.nodes)
        elif isinstance(msg, Neighbor):
            w.varint(4)
            w.varint(int(msg.priority))
            _w_opt_data(w, msg.data)
        else:
            w.varint(5)
            w.u8(1 if msg.alive else 0)
            w.u8(1 if msg.respond else 0)
        return
    w.varint(_TOPIC_GOSSIP)
    if isinstance(msg, Gossip):
        w.varint(0)
        w.raw(msg.id)
        w.bytes_(msg.content)
        if msg.scope.round is None:
            w.varint(1)
        else:
            w.varint(0)
            _w_u16(w, msg.scope.round)
    elif isinstance(msg, Prune):
        w.varint(1)
    elif isinstance(msg, Graft):
        w.varint(2)
        w.option(msg.id is not None)
        if msg.id is not None:
            w.raw(msg.id)
        _w_u16(w, msg.round)
    elif isinstance(msg, IHaveMsg):
        w.varint(3)
        w.varint(len(msg.ihaves))
        for ihave in msg.ihaves:
            w.raw(ihave.id)
            _w_u16(w, ihave.round)
    else:
        raise GossipError(f"not a gossip message: {type(msg).__name__}")


def encode_message(msg: Message[PublicKey]) -> bytes:
    """postcard(topic::Message): the body of an ``/iroh-gossip/1`` frame."""
    w = Writer()
    _write_message(w, msg)
    return w.getvalue()


def encode_proto_message(msg: ProtoMessage[PublicKey]) -> bytes:
    """postcard(ProtoMessage { topic, message }): the body of an ``/iroh-gossip/0`` frame."""
    w = Writer()
    w.raw(msg.topic)
    _write_message(w, msg.message)
    return w.getvalue()


# -- decoding --------------------------------------------------------------------------------


def _r_bool(r: Reader) -> bool:
    b = r.u8()
    if b > 1:
        raise GossipDecodeError(f"invalid bool {b}")
    return b == 1


def _r_opt_data(r: Reader) -> PeerData | None:
    return PeerData(r.bytes_()) if r.option() else None


def _r_key(r: Reader) -> PublicKey:
    return PublicKey(r.take(32))


def _r_peer_info(r: Reader) -> PeerInfo[PublicKey]:
    return PeerInfo(_r_key(r), _r_opt_data(r))


def _r_peers(r: Reader) -> tuple[PeerInfo[PublicKey], ...]:
    return tuple(_r_peer_info(r) for _ in range(r.length()))


def _read_message(r: Reader) -> Message[PublicKey]:
    layer = r.u32()
    kind = r.u32()
    if layer == _TOPIC_SWARM:
        if kind == 0:
            return Join(_r_opt_data(r))
        if kind == 1:
            return ForwardJoin(_r_peer_info(r), r.u16())
        if kind == 2:
            return Shuffle(_r_key(r), _r_peers(r), r.u16())
        if kind == 3:
            return ShuffleReply(_r_peers(r))
        if kind == 4:
            prio = r.u32()
            if prio > 1:
                raise GossipDecodeError(f"invalid priority {prio}")
            return Neighbor(Priority(prio), _r_opt_data(r))
        if kind == 5:
            return Disconnect(_r_bool(r), _r_bool(r))
        raise GossipDecodeError(f"unknown swarm message {kind}")
    if layer == _TOPIC_GOSSIP:
        if kind == 0:
            mid = MessageId(r.take(32))
            content = r.bytes_()
            scope_kind = r.u32()
            if scope_kind == 0:
                scope = DeliveryScope(r.u16())
            elif scope_kind == 1:
                scope = DeliveryScope(None)
            else:
                raise GossipDecodeError(f"invalid delivery scope {scope_kind}")
            return Gossip(mid, content, scope)
        if kind == 1:
            return Prune()
        if kind == 2:
            gid = MessageId(r.take(32)) if r.option() else None
            return Graft(gid, r.u16())
        if kind == 3:
            n = r.length()
            return IHaveMsg(tuple(IHave(MessageId(r.take(32)), r.u16()) for _ in range(n)))
        raise GossipDecodeError(f"unknown gossip message {kind}")
    raise GossipDecodeError(f"unknown message layer {layer}")


def decode_message(data: bytes) -> Message[PublicKey]:
    """Decode postcard(topic::Message); raises :class:`GossipDecodeError`."""
    r = Reader(data)
    try:
        msg = _read_message(r)
        r.finish()
    except GossipDecodeError:
        raise
    except DecodeError as exc:
        raise GossipDecodeError(str(exc)) from None
    return msg


def decode_proto_message(data: bytes) -> ProtoMessage[PublicKey]:
    """Decode postcard(ProtoMessage); raises :class:`GossipDecodeError`."""
    r = Reader(data)
    try:
        topic = TopicId(r.take(32))
        msg = _read_message(r)
        r.finish()
    except GossipDecodeError:
        raise
    except DecodeError as exc:
        raise GossipDecodeError(str(exc)) from None
    return ProtoMessage(topic, msg)
