"""Sans-I/O KRPC node (BEP 5 messages, BEP 43 read-only, BEP 44 mutable items).

:class:`Rpc` is fed datagrams and the time and returns datagrams to send and events for the
driver; it never touches a socket or a clock. :class:`Lookup` is the state of one iterative
closest-node search. Everything a remote controls is bounded: datagram size (bencode limits),
pending queries, per-node request rate, stored items, nodes taken from one response.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..base.key import PublicKey
from ..errors import DecodeError, IrohError, KeyParseError, SignatureError
from . import bencode
from .bencode import Bencodable, BencodeError
from .routing import (
    ID_LEN,
    Addr,
    K,
    NodeInfo,
    RoutingTable,
    distance,
    encode_compact_nodes,
    random_node_id,
)

__all__ = [
    "MAX_VALUE_SIZE",
    "DhtError",
    "ErrorReply",
    "Lookup",
    "MutableItem",
    "Response",
    "Rpc",
    "mutable_target",
    "signable",
]

MAX_VALUE_SIZE: Final = 1000
"""BEP 44: the bencoded ``v`` may be at most 1000 bytes."""
MAX_SALT_SIZE: Final = 64
QUERY_TIMEOUT: Final = 2.0
"""Seconds before an unanswered query counts as failed."""
MAX_PENDING: Final = 2048
"""Queries in flight at once; more are refused locally."""
TOKEN_ROTATE: Final = 300.0
"""Seconds between token secret rotations; a token stays valid for two periods (BEP 5)."""
ITEM_LIFETIME: Final = 7200.0
"""Stored items expire after two hours unless re-put (BEP 44)."""
DEFAULT_MAX_ITEMS: Final = 4096
RATE_PER_SECOND: Final = 20.0
RATE_BURST: Final = 40.0
MAX_RATE_ENTRIES: Final = 4096
VERSION: Final = b"AI\x00\x01"
MAX_IP_VOTES: Final = 32

ERR_GENERIC: Final = 201
ERR_PROTOCOL: Final = 203
ERR_METHOD: Final = 204
ERR_TOO_BIG: Final = 205
ERR_BAD_SIGNATURE: Final = 206
ERR_SALT_TOO_BIG: Final = 207
ERR_CAS: Final = 301
ERR_SEQ: Final = 302


class DhtError(IrohError):
    """A DHT operation failed, or a remote node answered with a KRPC error."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def mutable_target(public_key: bytes, salt: bytes = b"") -> bytes:
    """BEP 44 target of a mutable item: SHA-1 of the key followed by the salt."""
    return hashlib.sha1(public_key + salt).digest()


def signable(seq: int, value: bytes, salt: bytes = b"") -> bytes:
    """What a BEP 44 mutable item signature covers (``v`` is a bencoded byte string)."""
    prefix = b"4:salt%d:%s" % (len(salt), salt) if salt else b""
    return prefix + b"3:seqi%de1:v%d:" % (seq, len(value)) + value


@dataclass(frozen=True, slots=True)
class MutableItem:
    """A verified BEP 44 mutable item whose value is a byte string (as pkarr's)."""

    public_key: bytes
    seq: int
    value: bytes
    signature: bytes
    salt: bytes = b""

    @property
    def target(self) -> bytes:
        return mutable_target(self.public_key, self.salt)

    @classmethod
    def sign(cls, secret_key: object, seq: int, value: bytes, salt: bytes = b"") -> MutableItem:
        """Sign ``value`` at ``seq`` with an aioiroh :class:`~aioiroh.base.key.SecretKey`."""
        from ..base.key import SecretKey

        if not isinstance(secret_key, SecretKey):
            raise TypeError("secret_key must be a SecretKey")
        sig = secret_key.sign(signable(seq, value, salt)).to_bytes()
        return cls(secret_key.public().to_bytes(), seq, bytes(value), sig, bytes(salt))

    @classmethod
    def verified(
        cls, public_key: bytes, seq: int, value: bytes, signature: bytes, salt: bytes = b""
    ) -> MutableItem:
        """Check sizes and signature; raise :class:`DhtError` with the BEP 44 code if bad."""
        if len(value) + len(b"%d:" % len(value)) > MAX_VALUE_SIZE:
            raise DhtError("value too big", ERR_TOO_BIG)
        if len(salt) > MAX_SALT_SIZE:
            raise DhtError("salt too big", ERR_SALT_TOO_BIG)
        if not -(1 << 63) <= seq < (1 << 63):
            raise DhtError("seq out of range", ERR_PROTOCOL)
        try:
            PublicKey.from_bytes(public_key).verify(signable(seq, value, salt), signature)
        except (KeyParseError, SignatureError, DecodeError):
            raise DhtError("invalid signature", ERR_BAD_SIGNATURE) from None
        return cls(bytes(public_key), seq, bytes(value), bytes(signature), bytes(salt))


@dataclass(frozen=True, slots=True)
class Response:
    """A reply to one of our queries."""

    tid: bytes
    addr: Addr
    node_id: bytes
    body: dict[bytes, Bencodable]


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A KRPC error reply to one of our queries."""

    tid: bytes
    addr: Addr
    code: int
    message: str


@dataclass(slots=True)
class _Pending:
    addr: Addr
    method: bytes
    deadline: float


@dataclass(slots=True)
class _Stored:
    item: MutableItem
    stored_at: float


class _RateLimiter:
    """Token bucket per remote address, bounded in entries (oldest forgotten first)."""

    def __init__(self, rate: float, burst: float, max_entries: int) -> None:
        self.rate, self.burst, self.max_entries = rate, burst, max_entries
        self._buckets: OrderedDict[Addr, tuple[float, float]] = OrderedDict()

    def allow(self, addr: Addr, now: float) -> bool:
        tokens, last = self._buckets.pop(addr, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        self._buckets[addr] = (tokens - 1.0 if ok else tokens, now)
        while len(self._buckets) > self.max_entries:
            self._buckets.popitem(last=False)
        return ok

    def __len__(self) -> int:
        return len(self._buckets)


def _bytes_arg(d: dict[bytes, Bencodable], key: bytes, length: int | None = None) -> bytes:
    v = d.get(key)
    if not isinstance(v, bytes) or (length is not None and len(v) != length):
        raise DhtError(f"bad or missing {key.decode()!r}", ERR_PROTOCOL)
    return v


def _int_arg(d: dict[bytes, Bencodable], key: bytes) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, int):
        raise DhtError(f"bad {key.decode()!r}", ERR_PROTOCOL)
    return v


class Rpc:
    """One KRPC node: routing table, pending queries, and (server mode) the item store.

    ``server_mode=False`` (the default) is a BEP 43 read-only node: it marks its queries with
    ``ro=1`` and ignores incoming queries. ``stats`` counts dropped and refused input.
    """

    def __init__(
        self,
        node_id: bytes | None = None,
        *,
        server_mode: bool = False,
        now: float = 0.0,
        max_items: int = DEFAULT_MAX_ITEMS,
        rate_per_second: float = RATE_PER_SECOND,
        rate_burst: float = RATE_BURST,
    ) -> None:
        self.node_id = node_id if node_id is not None else random_node_id()
        self.server_mode = server_mode
        self.routing = RoutingTable(self.node_id)
        self.stats: Counter[str] = Counter()
        self.max_items = max_items
        self._pending: dict[bytes, _Pending] = {}
        self._next_tid = int.from_bytes(os.urandom(2), "big")
        self._store: OrderedDict[bytes, _Stored] = OrderedDict()
        self._secrets = [os.urandom(16), os.urandom(16)]
        self._rotated_at = now
        self._limiter = _RateLimiter(rate_per_second, rate_burst, MAX_RATE_ENTRIES)
        self._ip_votes: deque[str] = deque(maxlen=MAX_IP_VOTES)

    # -- outgoing queries ---------------------------------------------------------------------

    def query(
        self, addr: Addr, method: bytes, args: dict[bytes, Bencodable], now: float
    ) -> tuple[bytes, bytes]:
        """Build a query datagram; return ``(transaction id, datagram)``."""
        if len(self._pending) >= MAX_PENDING:
            raise DhtError("too many queries in flight")
        self._next_tid = (self._next_tid + 1) & 0xFFFF_FFFF
        tid = self._next_tid.to_bytes(4, "big")
        msg: dict[bytes, Bencodable] = {
            b"t": tid,
            b"y": b"q",
            b"q": method,
            b"a": {**args, b"id": self.node_id},
            b"v": VERSION,
        }
        if not self.server_mode:
            msg[b"ro"] = 1
        self._pending[tid] = _Pending(addr, method, now + QUERY_TIMEOUT)
        self.stats["queries_sent"] += 1
        return tid, bencode.encode(msg)

    def cancel(self, tid: bytes) -> None:
        """Forget a pending query (the driver gave up on it)."""
        self._pending.pop(tid, None)

    def expire(self, now: float) -> list[tuple[bytes, Addr]]:
        """Drop queries past their deadline; their nodes are marked as failing."""
        gone = [(t, p.addr) for t, p in self._pending.items() if p.deadline <= now]
        for tid, addr in gone:
            del self._pending[tid]
            self.routing.failed(addr)
            self.stats["timeouts"] += 1
        return gone

    # -- incoming datagrams -------------------------------------------------------------------

    def receive(
        self, data: bytes, addr: Addr, now: float
    ) -> tuple[bytes | None, Response | ErrorReply | None]:
        """Handle one datagram: ``(reply to send or None, event for the driver or None)``."""
        self.stats["datagrams_received"] += 1
        try:
            msg = bencode.decode(data, max_size=1500)
        except BencodeError:
            self.stats["malformed"] += 1
            return None, None
        if not isinstance(msg, dict):
            self.stats["malformed"] += 1
            return None, None
        tid = msg.get(b"t")
        kind = msg.get(b"y")
        if not isinstance(tid, bytes) or len(tid) > 16:
            self.stats["malformed"] += 1
            return None, None
        if kind == b"q":
            return self._on_query(msg, tid, addr, now), None
        pending = self._pending.get(tid)
        if pending is None or pending.addr != addr:
            # Late, duplicate, or from someone we did not ask: ignore.
            self.stats["unsolicited"] += 1
            return None, None
        if kind == b"r":
            body = msg.get(b"r")
            node_id = body.get(b"id") if isinstance(body, dict) else None
            if (
                not isinstance(body, dict)
                or not isinstance(node_id, bytes)
                or len(node_id) != ID_LEN
            ):
                self.stats["malformed"] += 1
                return None, None
            del self._pending[tid]
            if msg.get(b"ro") != 1:
                self.routing.add(node_id, addr, now)
            self._vote_ip(msg.get(b"ip"))
            self.stats["responses"] += 1
            return None, Response(tid, addr, node_id, body)
        if kind == b"e":
            err = msg.get(b"e")
            del self._pending[tid]
            code, text = ERR_GENERIC, ""
            if isinstance(err, list) and len(err) >= 2 and isinstance(err[0], int):
                code = err[0]
                if isinstance(err[1], bytes):
                    text = err[1][:200].decode("utf-8", "replace")
            self.stats[f"error_{code}"] += 1
            return None, ErrorReply(tid, addr, code, text)
        self.stats["malformed"] += 1
        return None, None

    def _vote_ip(self, compact: object) -> None:
        if isinstance(compact, bytes) and len(compact) == 6:
            self._ip_votes.append(socket.inet_ntoa(compact[:4]))

    @property
    def external_ip(self) -> str | None:
        """Our IPv4 address as most recent responders report it (BEP 42), if any did."""
        if not self._ip_votes:
            return None
        return Counter(self._ip_votes).most_common(1)[0][0]

    # -- serving (server mode only) -----------------------------------------------------------

    def _on_query(
        self, msg: dict[bytes, Bencodable], tid: bytes, addr: Addr, now: float
    ) -> bytes | None:
        if not self.server_mode:
            self.stats["queries_ignored_read_only"] += 1
            return None
        if not self._limiter.allow(addr, now):
            self.stats["rate_limited"] += 1
            return None
        self.stats["queries_received"] += 1
        try:
            method = msg.get(b"q")
            args = msg.get(b"a")
            if not isinstance(method, bytes) or not isinstance(args, dict):
                raise DhtError("query without method or arguments", ERR_PROTOCOL)
            sender = _bytes_arg(args, b"id", ID_LEN)
            if msg.get(b"ro") != 1:
                self.routing.add(sender, addr, now)
            body = self._serve(method, args, addr, now)
        except DhtError as exc:
            code = exc.code or ERR_GENERIC
            self.stats[f"refused_{code}"] += 1
            return bencode.encode(
                {b"t": tid, b"y": b"e", b"e": [code, str(exc).encode()], b"v": VERSION}
            )
        body[b"id"] = self.node_id
        reply: dict[bytes, Bencodable] = {b"t": tid, b"y": b"r", b"r": body, b"v": VERSION}
        compact = _compact_addr(addr)
        if compact is not None:
            reply[b"ip"] = compact  # BEP 42: tell the querier its address as we see it
        return bencode.encode(reply)

    def _serve(
        self, method: bytes, args: dict[bytes, Bencodable], addr: Addr, now: float
    ) -> dict[bytes, Bencodable]:
        if method == b"ping":
            return {}
        if method == b"find_node":
            target = _bytes_arg(args, b"target", ID_LEN)
            return {b"nodes": encode_compact_nodes(self.routing.closest(target))}
        if method == b"get_peers":
            # No peer store: answer with nodes and a token so searches route through us.
            target = _bytes_arg(args, b"info_hash", ID_LEN)
            return {
                b"nodes": encode_compact_nodes(self.routing.closest(target)),
                b"token": self._token(addr, now, 0),
            }
        if method == b"announce_peer":
            self._check_token(args, addr, now)
            return {}
        if method == b"get":
            return self._serve_get(args, addr, now)
        if method == b"put":
            return self._serve_put(args, addr, now)
        raise DhtError("method unknown", ERR_METHOD)

    def _serve_get(
        self, args: dict[bytes, Bencodable], addr: Addr, now: float
    ) -> dict[bytes, Bencodable]:
        target = _bytes_arg(args, b"target", ID_LEN)
        body: dict[bytes, Bencodable] = {
            b"nodes": encode_compact_nodes(self.routing.closest(target)),
            b"token": self._token(addr, now, 0),
        }
        stored = self._stored(target, now)
        if stored is not None:
            item = stored.item
            want_newer = _int_arg(args, b"seq")
            body[b"seq"] = item.seq
            if want_newer is None or item.seq > want_newer:
                body.update({b"k": item.public_key, b"sig": item.signature, b"v": item.value})
        return body

    def _serve_put(
        self, args: dict[bytes, Bencodable], addr: Addr, now: float
    ) -> dict[bytes, Bencodable]:
        self._check_token(args, addr, now)
        value = args.get(b"v")
        if not isinstance(value, bytes):
            # Only byte-string values (what pkarr stores); no immutable items.
            raise DhtError("only mutable items with byte-string values are stored", ERR_PROTOCOL)
        key = _bytes_arg(args, b"k", 32)
        sig = _bytes_arg(args, b"sig", 64)
        seq = _int_arg(args, b"seq")
        if seq is None:
            raise DhtError("missing seq", ERR_PROTOCOL)
        salt = args.get(b"salt", b"")
        if not isinstance(salt, bytes):
            raise DhtError("bad salt", ERR_PROTOCOL)
        try:
            item = MutableItem.verified(key, seq, value, sig, salt)
        except DhtError as exc:
            self.stats["bad_signature" if exc.code == ERR_BAD_SIGNATURE else "oversized"] += 1
            raise
        cas = _int_arg(args, b"cas")
        stored = self._stored(item.target, now)
        if stored is not None:
            if cas is not None and cas != stored.item.seq:
                raise DhtError("CAS mismatch", ERR_CAS)
            old = stored.item
            if item.seq < old.seq or (item.seq == old.seq and item.value != old.value):
                self.stats["seq_rollback"] += 1
                raise DhtError("sequence number less than current", ERR_SEQ)
        self._store.pop(item.target, None)
        self._store[item.target] = _Stored(item, now)
        while len(self._store) > self.max_items:
            self._store.popitem(last=False)
            self.stats["store_evicted"] += 1
        self.stats["items_stored"] += 1
        return {}

    def _stored(self, target: bytes, now: float) -> _Stored | None:
        stored = self._store.get(target)
        if stored is not None and now - stored.stored_at > ITEM_LIFETIME:
            del self._store[target]
            return None
        return stored

    def stored_item(self, target: bytes, now: float) -> MutableItem | None:
        """The item this node stores for ``target`` (server mode), if any."""
        stored = self._stored(target, now)
        return stored.item if stored else None

    def _store_unchecked(self, item: MutableItem, now: float) -> None:
        # Test hook: play a hostile node that serves whatever it likes.
        self._store[item.target] = _Stored(item, now)

    @property
    def store_size(self) -> int:
        return len(self._store)

    # -- tokens -------------------------------------------------------------------------------

    def _rotate(self, now: float) -> None:
        if now - self._rotated_at >= TOKEN_ROTATE:
            self._secrets = [os.urandom(16), self._secrets[0]]
            self._rotated_at = now

    def _token(self, addr: Addr, now: float, which: int) -> bytes:
        self._rotate(now)
        return hashlib.sha1(self._secrets[which] + addr[0].encode()).digest()[:8]

    def _check_token(self, args: dict[bytes, Bencodable], addr: Addr, now: float) -> None:
        token = args.get(b"token")
        if token not in (self._token(addr, now, 0), self._token(addr, now, 1)):
            self.stats["bad_token"] += 1
            raise DhtError("invalid token", ERR_PROTOCOL)


def _compact_addr(addr: Addr) -> bytes | None:
    try:
        return socket.inet_aton(addr[0]) + addr[1].to_bytes(2, "big")
    except (OSError, OverflowError):
        return None


def parse_item(response: Response, target: bytes) -> MutableItem | None:
    """The verified mutable item in a ``get`` response for ``target``, or ``None``.

    Raises :class:`DhtError` (206/205) for an item that is present but invalid.
    """
    body = response.body
    if b"v" not in body:
        return None
    key, sig, seq, value = body.get(b"k"), body.get(b"sig"), body.get(b"seq"), body.get(b"v")
    if not (
        isinstance(key, bytes)
        and len(key) == 32
        and isinstance(sig, bytes)
        and len(sig) == 64
        and isinstance(seq, int)
        and isinstance(value, bytes)
    ):
        raise DhtError("malformed item", ERR_PROTOCOL)
    item = MutableItem.verified(key, seq, value, sig)
    if item.target != target:
        raise DhtError("item key does not match the target", ERR_BAD_SIGNATURE)
    return item


@dataclass(slots=True)
class _Candidate:
    addr: Addr
    node_id: bytes | None
    state: str = "new"  # new, asked, answered, failed
    token: bytes | None = None


class Lookup:
    """Iterative closest-node search for ``target`` (Kademlia, ``alpha`` queries in flight).

    Feed it with :meth:`on_response` / :meth:`on_failure`; ask :meth:`next_addrs` what to query.
    Bounded in candidates and total queries so a hostile response cannot make it run forever.
    """

    MAX_CANDIDATES: Final = 256
    MAX_QUERIES: Final = 128

    def __init__(
        self,
        target: bytes,
        seeds: list[NodeInfo],
        bootstrap: Sequence[Addr] = (),
        *,
        k: int = K,
        alpha: int = 4,
    ) -> None:
        self.target = target
        self.k = k
        self.alpha = alpha
        self.queries = 0
        self._by_addr: dict[Addr, _Candidate] = {}
        for addr in bootstrap:
            self._by_addr.setdefault(addr, _Candidate(addr, None))
        for n in seeds:
            self._add(n.node_id, n.addr)

    def _add(self, node_id: bytes, addr: Addr) -> None:
        c = self._by_addr.get(addr)
        if c is not None:
            if c.node_id is None and c.state == "new":
                c.node_id = node_id
            return
        if len(self._by_addr) >= self.MAX_CANDIDATES:
            return
        self._by_addr[addr] = _Candidate(addr, node_id)

    def _dist(self, c: _Candidate) -> int:
        return -1 if c.node_id is None else distance(c.node_id, self.target)

    def _frontier(self) -> list[_Candidate]:
        live = [c for c in self._by_addr.values() if c.state != "failed"]
        live.sort(key=self._dist)
        return live[: self.k]

    def next_addrs(self) -> list[Addr]:
        """Addresses to query now (they are marked as asked)."""
        inflight = sum(1 for c in self._by_addr.values() if c.state == "asked")
        out: list[Addr] = []
        for c in self._frontier():
            if inflight >= self.alpha or self.queries >= self.MAX_QUERIES:
                break
            if c.state == "new":
                c.state = "asked"
                inflight += 1
                self.queries += 1
                out.append(c.addr)
        return out

    def on_response(
        self, addr: Addr, node_id: bytes, nodes: list[NodeInfo], token: bytes | None
    ) -> None:
        c = self._by_addr.get(addr)
        if c is None:
            return
        c.state, c.node_id, c.token = "answered", node_id, token
        for n in nodes[: 2 * self.k]:
            self._add(n.node_id, n.addr)

    def on_failure(self, addr: Addr) -> None:
        c = self._by_addr.get(addr)
        if c is not None:
            c.state = "failed"

    @property
    def done(self) -> bool:
        if any(c.state == "asked" for c in self._by_addr.values()):
            return False
        if self.queries >= self.MAX_QUERIES:
            return True
        return all(c.state != "new" for c in self._frontier())

    def closest_answered(self) -> list[tuple[NodeInfo, bytes | None]]:
        """The ``k`` nearest nodes that answered, with the write token each gave."""
        answered = [c for c in self._by_addr.values() if c.state == "answered" and c.node_id]
        answered.sort(key=self._dist)
        return [(NodeInfo(c.node_id, c.addr), c.token) for c in answered[: self.k] if c.node_id]
