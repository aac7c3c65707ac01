"""The sans-I/O KRPC core, driven by hand: two Rpc objects exchanging datagrams in memory."""

from __future__ import annotations

import os

import pytest

from aioiroh.base.key import SecretKey
from aioiroh.dht import bencode
from aioiroh.dht.routing import (
    K,
    NodeInfo,
    RoutingTable,
    bep42_node_id,
    crc32c,
    decode_compact_nodes,
    is_bep42_valid,
    random_node_id,
)
from aioiroh.dht.rpc import (
    MAX_PENDING,
    TOKEN_ROTATE,
    DhtError,
    ErrorReply,
    Lookup,
    MutableItem,
    Response,
    Rpc,
    mutable_target,
    parse_item,
)

CLIENT = ("127.0.0.1", 1000)
SERVER = ("127.0.0.1", 2000)


def exchange(
    client: Rpc, server: Rpc, method: bytes, args: dict, now: float = 0.0
) -> Response | ErrorReply | None:
    _, data = client.query(SERVER, method, args, now)
    reply, event = server.receive(data, CLIENT, now)
    assert event is None
    if reply is None:
        return None
    _, event = client.receive(reply, SERVER, now)
    return event


def token_for(client: Rpc, server: Rpc, target: bytes, now: float = 0.0) -> bytes:
    r = exchange(client, server, b"get", {b"target": target}, now)
    assert isinstance(r, Response)
    token = r.body[b"token"]
    assert isinstance(token, bytes)
    return token


def put_args(item: MutableItem, token: bytes, extra: dict | None = None) -> dict:
    return {
        b"k": item.public_key,
        b"seq": item.seq,
        b"sig": item.signature,
        b"v": item.value,
        b"token": token,
        **(extra or {}),
    }


@pytest.fixture
def pair() -> tuple[Rpc, Rpc]:
    return Rpc(), Rpc(server_mode=True)


def test_ping_and_find_node_answer_with_our_id(pair: tuple[Rpc, Rpc]) -> None:
    client, server = pair
    r = exchange(client, server, b"ping", {})
    assert isinstance(r, Response) and r.node_id == server.node_id
    r = exchange(client, server, b"find_node", {b"target": random_node_id()})
    assert isinstance(r, Response) and isinstance(r.body[b"nodes"], bytes)
    # The client was read-only (ro=1), so the server did not add it to its table.
    assert len(server.routing) == 0
    assert len(client.routing) == 1


def test_read_only_node_ignores_queries(pair: tuple[Rpc, Rpc]) -> None:
    client, _ = pair
    other = Rpc(server_mode=True)
    _, data = other.query(CLIENT, b"ping", {}, 0.0)
    assert client.receive(data, SERVER, 0.0) == (None, None)
    assert client.stats["queries_ignored_read_only"] == 1


def test_put_then_get_returns_the_verified_item(pair: tuple[Rpc, Rpc]) -> None:
    client, server = pair
    key = SecretKey.generate()
    item = MutableItem.sign(key, 7, b"packet")
    token = token_for(client, server, item.target)
    assert isinstance(exchange(client, server, b"put", put_args(item, token)), Response)
    r = exchange(client, server, b"get", {b"target": item.target})
    assert isinstance(r, Response)
    assert parse_item(r, item.target) == item
    # A get that already has seq 7 does not receive the value again (BEP 44).
    r = exchange(client, server, b"get", {b"target": item.target, b"seq": 7})
    assert isinstance(r, Response) and b"v" not in r.body and r.body[b"seq"] == 7


@pytest.mark.parametrize(
    ("mutate", "code", "counter"),
    [
        (lambda a: {**a, b"sig": bytes(64)}, 206, "bad_signature"),
        (lambda a: {**a, b"v": b"x" * 1000}, 205, "oversized"),
        (lambda a: {**a, b"token": b"forged!!"}, 203, "bad_token"),
    ],
)
def test_bad_put_is_refused_with_the_bep44_code(
    pair: tuple[Rpc, Rpc], mutate, code: int, counter: str
) -> None:  # type: ignore[no-untyped-def]
    client, server = pair
    item = MutableItem.sign(SecretKey.generate(), 1, b"v")
    token = token_for(client, server, item.target)
    r = exchange(client, server, b"put", mutate(put_args(item, token)))
    assert isinstance(r, ErrorReply) and r.code == code
    assert server.stats[counter] == 1
    assert server.store_size == 0


def test_seq_rollback_and_cas_mismatch(pair: tuple[Rpc, Rpc]) -> None:
    client, server = pair
    key = SecretKey.generate()
    new, old = MutableItem.sign(key, 10, b"new"), MutableItem.sign(key, 9, b"old")
    token = token_for(client, server, new.target)
    assert isinstance(exchange(client, server, b"put", put_args(new, token)), Response)
    r = exchange(client, server, b"put", put_args(old, token))
    assert isinstance(r, ErrorReply) and r.code == 302
    same_seq = MutableItem.sign(key, 10, b"other")
    r = exchange(client, server, b"put", put_args(same_seq, token))
    assert isinstance(r, ErrorReply) and r.code == 302
    assert server.stats["seq_rollback"] == 2
    newer = MutableItem.sign(key, 11, b"newer")
    r = exchange(client, server, b"put", put_args(newer, token, {b"cas": 3}))
    assert isinstance(r, ErrorReply) and r.code == 301
    assert isinstance(
        exchange(client, server, b"put", put_args(newer, token, {b"cas": 10})), Response
    )
    assert server.stored_item(new.target, 0.0) == newer


def test_tokens_rotate_and_expire(pair: tuple[Rpc, Rpc]) -> None:
    client, server = pair
    item = MutableItem.sign(SecretKey.generate(), 1, b"v")
    token = token_for(client, server, item.target, 0.0)
    # Still valid one rotation later (previous secret), invalid after two.
    r = exchange(client, server, b"put", put_args(item, token), TOKEN_ROTATE + 1)
    assert isinstance(r, Response)
    r = exchange(client, server, b"put", put_args(item, token), 2 * TOKEN_ROTATE + 2)
    assert isinstance(r, ErrorReply) and r.code == 203


def test_store_is_bounded() -> None:
    client, server = Rpc(), Rpc(server_mode=True, max_items=5, rate_burst=1000)
    for i in range(8):
        item = MutableItem.sign(SecretKey.generate(), i, b"v")
        token = token_for(client, server, item.target)
        assert isinstance(exchange(client, server, b"put", put_args(item, token)), Response)
    assert server.store_size == 5
    assert server.stats["store_evicted"] == 3


def test_per_node_rate_limit_drops_excess_queries() -> None:
    client, server = Rpc(), Rpc(server_mode=True, rate_per_second=10, rate_burst=20)
    answered = sum(exchange(client, server, b"ping", {}, 0.0) is not None for _ in range(100))
    assert answered == 20
    assert server.stats["rate_limited"] == 80
    # Refills with time.
    assert exchange(client, server, b"ping", {}, 1.0) is not None
    # Another node is not affected by the first one's flood.
    _, data = Rpc().query(SERVER, b"ping", {}, 0.0)
    assert server.receive(data, ("127.0.0.1", 3000), 0.0)[0] is not None


@pytest.mark.parametrize(
    "data",
    [
        b"garbage",
        b"d1:t2:aa1:y1:qe",  # query without method
        bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"ping", b"a": {b"id": b"short"}}),
        bencode.encode({b"t": b"x" * 100, b"y": b"q"}),
        bencode.encode([1, 2, 3]),
        b"d" + b"1:a" * 2000 + b"e",
    ],
)
def test_malformed_datagrams_are_dropped_or_refused_and_counted(data: bytes) -> None:
    server = Rpc(server_mode=True)
    reply, event = server.receive(data, CLIENT, 0.0)
    assert event is None
    if reply is not None:
        msg = bencode.decode(reply)
        assert isinstance(msg, dict) and msg[b"y"] == b"e"
        assert server.stats["refused_203"] == 1
    else:
        assert server.stats["malformed"] == 1


def test_responses_from_the_wrong_address_or_unknown_tid_are_ignored(pair: tuple[Rpc, Rpc]) -> None:
    client, server = pair
    _, data = client.query(SERVER, b"ping", {}, 0.0)
    reply, _ = server.receive(data, CLIENT, 0.0)
    assert reply is not None
    assert client.receive(reply, ("127.0.0.9", 2000), 0.0) == (None, None)
    assert isinstance(client.receive(reply, SERVER, 0.0)[1], Response)
    assert client.receive(reply, SERVER, 0.0) == (None, None)  # duplicate
    assert client.stats["unsolicited"] == 2


def test_pending_queries_are_bounded_and_expire() -> None:
    rpc = Rpc()
    for _ in range(MAX_PENDING):
        rpc.query(SERVER, b"ping", {}, 0.0)
    with pytest.raises(DhtError):
        rpc.query(SERVER, b"ping", {}, 0.0)
    assert len(rpc.expire(10.0)) == MAX_PENDING
    rpc.query(SERVER, b"ping", {}, 10.0)


def test_routing_table_is_bounded_per_bucket() -> None:
    own = bytes(20)
    table = RoutingTable(own)
    # Every id with the top bit set lands in the same (farthest) bucket.
    for i in range(100):
        table.add(b"\x80" + os.urandom(19), ("127.0.0.1", 10000 + i), 0.0)
    assert len(table) == K
    for i in range(2000):
        table.add(os.urandom(20), ("127.0.0.2", 10000 + i), 0.0)
    assert len(table) <= 160 * K
    # A node that stops answering is replaced.
    victim = table.nodes()[0]
    for _ in range(3):
        table.failed(victim.addr)
    bucket_peer = bytes([victim.node_id[0]]) + os.urandom(19)
    assert table.add(bucket_peer, ("127.0.0.3", 1), 1.0) or len(table) <= 160 * K


def test_compact_nodes_parsing_is_bounded() -> None:
    raw = (os.urandom(20) + bytes([127, 0, 0, 1]) + (6881).to_bytes(2, "big")) * 200 + b"tail"
    assert len(decode_compact_nodes(raw)) == 4 * K


def test_lookup_converges_and_is_bounded() -> None:
    target = random_node_id()
    seeds = [NodeInfo(random_node_id(), ("127.0.0.1", 1000 + i)) for i in range(3)]
    lookup = Lookup(target, seeds)
    port = 5000
    while not lookup.done:
        asked = lookup.next_addrs()
        assert asked
        for addr in asked:
            # A hostile responder always offers fresh, ever-closer nodes.
            more = [NodeInfo(random_node_id(), ("127.0.0.1", port + j)) for j in range(16)]
            port += 16
            lookup.on_response(addr, random_node_id(), more, b"tok")
    assert lookup.queries <= Lookup.MAX_QUERIES
    assert len(lookup.closest_answered()) == K


def test_mutable_target_and_signature_match_bep44() -> None:
    key = SecretKey.generate()
    item = MutableItem.sign(key, 42, b"hello")
    assert item.target == mutable_target(key.public().to_bytes())
    key.public().verify(b"3:seqi42e1:v5:hello", item.signature)
    with pytest.raises(DhtError) as info:
        MutableItem.verified(item.public_key, 43, item.value, item.signature)
    assert info.value.code == 206


@pytest.mark.parametrize(
    ("ip", "rand", "prefix"),
    [
        ("124.31.75.21", 1, 0x5FBFB8),
        ("21.75.31.124", 86, 0x5A3CE8),
        ("65.23.51.170", 22, 0xA5D430),
        ("84.124.73.14", 65, 0x1B0320),
        ("43.213.53.83", 90, 0xE56F68),
    ],
)
def test_bep42_node_ids_match_the_spec_vectors(ip: str, rand: int, prefix: int) -> None:
    node_id = bep42_node_id(ip, rand)
    assert int.from_bytes(node_id[:3], "big") & 0xFFFFF8 == prefix
    assert node_id[-1] == rand
    assert is_bep42_valid(node_id, ip)
    assert not is_bep42_valid(bep42_node_id("8.8.8.8", rand), ip)
    assert is_bep42_valid(random_node_id(), "127.0.0.1")  # local addresses are exempt


def test_responses_tell_us_our_address(pair: tuple[Rpc, Rpc]) -> None:
    client, server = pair
    assert client.external_ip is None
    exchange(client, server, b"ping", {})
    assert client.external_ip == CLIENT[0]


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
