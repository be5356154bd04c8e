"""Which edges of one list also appear in another, under `jit` (no N × N matrix).

MeshGraphNets' world edges join nodes close in world space *that the mesh does not
connect already*; `edges_in` answers "is (sender, receiver) a mesh edge?" for every
candidate at once: the reference edges are sorted by (receiver, sender) and each
query is found by a lexicographic binary search, O((E + Q) · log E), exact for any
number of nodes (no combined key that could overflow int32).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["edges_in"]


def edges_in(
    senders: jax.Array,
    receivers: jax.Array,
    ref_senders: jax.Array,
    ref_receivers: jax.Array,
    ref_mask: jax.Array | None = None,
) -> jax.Array:
    """[Q] bool: whether each edge (senders[q] → receivers[q]) is a real reference edge.

    Args:
      senders, receivers: [Q] int32 the edges asked about.
      ref_senders, ref_receivers: [E] int32 the reference edges (any order).
      ref_mask: [E] bool real reference edges (None: all); padding never matches.

    Jit-safe; the direction matters (i → j and j → i are different edges).
    """
    num = ref_senders.shape[0]
    if num == 0:
        return jnp.zeros(senders.shape, bool)
    big = jnp.iinfo(jnp.int32).max
    r = ref_receivers.astype(jnp.int32)
    s = ref_senders.astype(jnp.int32)
    if ref_mask is not None:  # padding sorts last and matches no real query
        r = jnp.where(ref_mask, r, big)
        s = jnp.where(ref_mask, s, big)
    order = jnp.lexsort((s, r))
    r, s = r[order], s[order]
    qr, qs = receivers.astype(jnp.int32), senders.astype(jnp.int32)

    def halve(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) // 2
        at = jnp.minimum(mid, num - 1)
        before = (r[at] < qr) | ((r[at] == qr) & (s[at] < qs))
        return jnp.where(before, mid + 1, lo), jnp.where(before, hi, mid)

    start = (jnp.zeros(qr.shape, jnp.int32), jnp.full(qr.shape, num, jnp.int32))
    lo, _ = jax.lax.fori_loop(0, math.ceil(math.log2(num + 1)) + 1, halve, start)
    at = jnp.minimum(lo, num - 1)
    return (lo < num) & (r[at] == qr) & (s[at] == qs) & (qr != big)
