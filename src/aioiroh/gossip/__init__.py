"""iroh-gossip: topic-based publish/subscribe over HyParView + Plumtree (wire-compatible)."""

from .framing import ALPN_V0, ALPN_V1, MessageTooLarge
from .messages import GossipDecodeError, GossipError, PeerData, TopicId
from .net import (
    GOSSIP_ALPN,
    Event,
    Gossip,
    GossipTopic,
    Lagged,
    NeighborDown,
    NeighborUp,
    Received,
    TopicClosed,
)
from .proto import Config, HyparviewConfig, PlumtreeConfig

__all__ = [
    "ALPN_V0",
    "ALPN_V1",
    "GOSSIP_ALPN",
    "Config",
    "Event",
    "Gossip",
    "GossipDecodeError",
    "GossipError",
    "GossipTopic",
    "HyparviewConfig",
    "Lagged",
    "MessageTooLarge",
    "NeighborDown",
    "NeighborUp",
    "PeerData",
    "PlumtreeConfig",
    "Received",
    "TopicClosed",
    "TopicId",
]
