"""iroh-gossip: topic-based publish/subscribe over HyParView + Plumtree (wire-compatible)."""
