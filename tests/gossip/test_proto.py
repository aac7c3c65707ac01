"""Sans-I/O protocol rules: Plumtree push/prune/graft, HyParView views, and the caps on
what a peer can make us remember."""

from __future__ import annotations

import random

from aioiroh.gossip.messages import (
    DeliveryScope,
    Disconnect,
    Gossip,
    Graft,
    IHave,
    IHaveMsg,
    Join,
    MessageId,
    Neighbor,
    PeerData,
    PeerInfo,
    Priority,
    Prune,
    Shuffle,
    ShuffleReply,
    TopicId,
)
from aioiroh.gossip.proto import (
    Config,
    DisconnectPeer,
    EmitEvent,
    NeighborUp,
    OutEvent,
    PlumtreeConfig,
    Received,
    ScheduleTimer,
    SendMessage,
    State,
    Timer,
)

T = TopicId.from_name("proto")


def sends(out: list[OutEvent[int]]) -> list[tuple[int, object]]:
    return [(e.peer, e.message) for e in out if isinstance(e, SendMessage)]


def received(out: list[OutEvent[int]]) -> list[Received[int]]:
    return [e.event for e in out if isinstance(e, EmitEvent) and isinstance(e.event, Received)]


def timers(out: list[OutEvent[int]], kind: str) -> list[ScheduleTimer[int]]:
    return [e for e in out if isinstance(e, ScheduleTimer) and e.timer.kind == kind]


def gossip(content: bytes, rnd: int = 0) -> Gossip:
    return Gossip(MessageId.from_content(content), content, DeliveryScope(rnd))


def joined_node(
    me: int = 1, neighbors: tuple[int, ...] = (2, 3), config: Config | None = None
) -> State[int]:
    st: State[int] = State(me, None, config, random.Random(0))
    st.join(T, [], 0.0)
    for n in neighbors:
        st.handle_message(n, T, Join(None), 0.0)
    return st


def test_join_makes_both_sides_neighbors_and_forwards_the_newcomer() -> None:
    st = joined_node(1, (2,))
    out = st.handle_message(3, T, Join(PeerData(b"addr")), 0.0)
    assert NeighborUp(3) in [e.event for e in out if isinstance(e, EmitEvent)]
    msgs = sends(out)
    assert (3, Neighbor(Priority.HIGH, None)) in msgs
    fwd = [m for p, m in msgs if p == 2]
    assert fwd and fwd[0].peer == PeerInfo(3, PeerData(b"addr"))  # type: ignore[attr-defined]
    assert fwd[0].ttl == 6  # type: ignore[attr-defined]


def test_gossip_is_delivered_once_and_pushed_to_the_other_eager_peers() -> None:
    st = joined_node()
    out = st.handle_message(2, T, gossip(b"hi"), 0.0)
    assert [r.content for r in received(out)] == [b"hi"]
    assert received(out)[0].delivered_from == 2
    pushed = [(p, m) for p, m in sends(out) if isinstance(m, Gossip)]
    assert pushed == [(3, gossip(b"hi", 1))]  # round incremented, not back to the sender
    # The same message again: no delivery, and the sender is pruned to lazy.
    out = st.handle_message(3, T, gossip(b"hi", 4), 0.0)
    assert received(out) == []
    assert sends(out) == [(3, Prune())]
    assert 3 in st.topics[T].gossip.lazy


def test_a_message_whose_id_is_not_its_hash_is_ignored() -> None:
    st = joined_node()
    spoof = Gossip(MessageId.from_content(b"x"), b"y", DeliveryScope(0))
    out = st.handle_message(2, T, spoof, 0.0)
    assert received(out) == [] and sends(out) == []


def test_ihave_then_graft_after_the_timeout_asks_the_announcers_in_turn() -> None:
    st = joined_node()
    mid = MessageId.from_content(b"later")
    st.handle_message(2, T, IHaveMsg((IHave(mid, 1),)), 0.0)
    out = st.handle_message(3, T, IHaveMsg((IHave(mid, 2),)), 0.0)
    assert timers(out, "graft") == []  # one timer per message id
    timer = st.topics[T].gossip
    assert mid in timer.missing
    out = st.handle_timer(_timer(mid), 0.08)
    assert (2, Graft(mid, 1)) in sends(out)
    [again] = timers(out, "graft")
    assert abs(again.delay - 0.04) < 1e-9
    out = st.handle_timer(_timer(mid), 0.12)
    assert (3, Graft(mid, 2)) in sends(out)
    # A graft for a message we have is answered with its content.
    st.handle_message(2, T, gossip(b"later", 3), 0.13)
    out = st.handle_message(3, T, Graft(mid, 0), 0.14)
    assert sends(out) == [(3, gossip(b"later", 4))]


def _timer(mid: MessageId) -> Timer[int]:
    return Timer(T, "graft", mid)


def test_tree_optimization_grafts_a_much_closer_lazy_peer_and_prunes_the_sender() -> None:
    st = joined_node()
    # As in Rust's test: IHave from 2 at round 2, then the payload from 3 at round 9 (>= 7 more).
    st.handle_message(3, T, Prune(), 0.0)
    mid = MessageId.from_content(b"hi2")
    st.handle_message(2, T, IHaveMsg((IHave(mid, 2),)), 0.0)
    st.topics[T].gossip.lazy[2] = None
    st.topics[T].gossip.eager.pop(2, None)
    out = st.handle_message(3, T, gossip(b"hi2", 9), 0.0)
    assert (2, Graft(None, 2)) in sends(out)
    assert (3, Prune()) in sends(out)
    # Round 6 is not enough: nothing happens.
    st2 = joined_node()
    mid = MessageId.from_content(b"hi")
    st2.handle_message(2, T, IHaveMsg((IHave(mid, 2),)), 0.0)
    out = st2.handle_message(3, T, gossip(b"hi", 6), 0.0)
    assert not [m for _, m in sends(out) if isinstance(m, Graft | Prune)]


def test_lazy_peers_get_batched_ihaves_after_the_dispatch_timeout() -> None:
    st = joined_node()
    st.handle_message(3, T, Prune(), 0.0)  # 3 is lazy now
    out = st.broadcast(T, b"one", 0.0)
    assert [p for p, m in sends(out) if isinstance(m, Gossip)] == [2]
    [dispatch] = timers(out, "lazy")
    assert dispatch.delay == 0.005
    st.broadcast(T, b"two", 0.001)
    out = st.handle_timer(dispatch.timer, 0.005)
    [(peer, msg)] = sends(out)
    assert peer == 3 and isinstance(msg, IHaveMsg) and len(msg.ihaves) == 2


def test_message_cache_is_evicted_after_the_retention() -> None:
    st = joined_node()
    st.handle_message(2, T, gossip(b"old"), 0.0)
    pt = st.topics[T].gossip
    assert len(pt.cache) == 1
    st.handle_timer(Timer(T, "evict"), 29.0)
    assert len(pt.cache) == 1
    st.handle_timer(Timer(T, "evict"), 31.0)
    assert len(pt.cache) == 0 and pt.cached_bytes == 0
    # The id is remembered longer (90 s), so a late copy is still a duplicate.
    assert received(st.handle_message(3, T, gossip(b"old"), 60.0)) == []


def test_an_ihave_flood_for_unknown_ids_is_capped() -> None:
    cfg = Config(broadcast=PlumtreeConfig(max_missing=100))
    st = joined_node(config=cfg)
    total_timers = 0
    for batch in range(50):
        ihaves = tuple(
            IHave(MessageId(batch.to_bytes(2, "big") + bytes(30 - 2) + i.to_bytes(2, "big")), 0)
            for i in range(100)
        )
        total_timers += len(timers(st.handle_message(2, T, IHaveMsg(ihaves), 0.0), "graft"))
    assert len(st.topics[T].gossip.missing) == 100
    assert total_timers == 100


def test_a_gossip_flood_keeps_cache_and_seen_ids_within_their_caps() -> None:
    cfg = Config(broadcast=PlumtreeConfig(max_cached_bytes=64 * 1024, max_seen_ids=500))
    st = joined_node(config=cfg)
    for i in range(2000):
        st.handle_message(2, T, gossip(i.to_bytes(4, "big") + bytes(1000)), 0.0)
    pt = st.topics[T].gossip
    assert pt.cached_bytes <= 64 * 1024
    assert len(pt.received) <= 500


def test_shuffle_with_many_nodes_fills_the_passive_view_only_up_to_capacity() -> None:
    st = joined_node(1, (2,))
    nodes = tuple(PeerInfo(100 + i, PeerData(b"d" * 10)) for i in range(300))
    out = st.handle_message(2, T, Shuffle(50, nodes, 0), 0.0)
    topic = st.topics[T]
    assert len(topic.passive) == 30
    assert len(topic.swarm.peer_data) <= 4 * (5 + 30)
    replies = [m for p, m in sends(out) if p == 50]
    assert replies and isinstance(replies[0], ShuffleReply)


def test_a_full_active_view_evicts_a_random_neighbor_with_disconnect() -> None:
    st = joined_node(1, (2, 3, 4, 5, 6))
    out = st.handle_message(7, T, Join(None), 0.0)
    topic = st.topics[T]
    assert len(topic.active) == 5 and 7 in topic.active
    [(victim, disc)] = [(p, m) for p, m in sends(out) if isinstance(m, Disconnect)]
    assert disc == Disconnect(True) and victim not in topic.active
    assert victim in topic.passive
    assert DisconnectPeer(victim) in out


def test_messages_for_topics_we_did_not_join_and_joins_by_ourselves_are_ignored() -> None:
    st = joined_node()
    assert st.handle_message(2, TopicId.from_name("other"), Join(None), 0.0) == []
    assert 1 not in st.topics[T].active
    st.handle_message(1, T, Join(None), 0.0)
    assert 1 not in st.topics[T].active


def test_quit_sends_disconnect_to_every_neighbor_and_drops_the_topic() -> None:
    st = joined_node()
    out = st.quit(T, 1.0)
    assert {p for p, m in sends(out) if m == Disconnect(False)} == {2, 3}
    assert T not in st.topics
