"""Segment reductions over edge receivers, correct under padding.

All functions are jit-safe and differentiable. `segment_ids` are receiver indices
`[num_edges] int32` into `num_segments` nodes. Padded edges point at a padding node
(see `meshsim.graph.pad`), so they never change a real node; an optional
`mask [num_edges] bool` additionally drops edges explicitly (for graphs built by
other conventions). Empty segments reduce to 0 for every reduction (not -inf).

`indices_are_sorted=True` may be passed when receivers are sorted (as produced by
`meshsim.graph.edges_from_cells`, `batch` and `pad`); it lets XLA pick a faster
scatter on some backends.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

AGGREGATIONS = ("sum", "mean", "max")


def _masked(data: jax.Array, mask: jax.Array | None, fill) -> jax.Array:
    if mask is None:
        return data
    mask = mask.reshape(mask.shape + (1,) * (data.ndim - 1))
    return jnp.where(mask, data, jnp.asarray(fill, data.dtype))


def segment_sum(
    data: jax.Array,
    segment_ids: jax.Array,
    num_segments: int,
    *,
    mask: jax.Array | None = None,
    indices_are_sorted: bool = False,
) -> jax.Array:
    """Sum of `data [E, ...]` per segment -> [num_segments, ...]. Accumulates in data's dtype
    unless it is lower than float32, in which case it accumulates in float32."""
    acc_dtype = jnp.promote_types(data.dtype, jnp.float32)
    out = jax.ops.segment_sum(
        _masked(data, mask, 0).astype(acc_dtype),
        segment_ids,
        num_segments=num_segments,
        indices_are_sorted=indices_are_sorted,
    )
    return out.astype(data.dtype)


def segment_count(
    segment_ids: jax.Array,
    num_segments: int,
    *,
    mask: jax.Array | None = None,
    indices_are_sorted: bool = False,
) -> jax.Array:
    """Number of (unmasked) entries per segment -> [num_segments] float32."""
    ones = jnp.ones(segment_ids.shape, jnp.float32)
    return segment_sum(
        ones, segment_ids, num_segments, mask=mask, indices_are_sorted=indices_are_sorted
    )


def segment_mean(
    data: jax.Array,
    segment_ids: jax.Array,
    num_segments: int,
    *,
    mask: jax.Array | None = None,
    indices_are_sorted: bool = False,
) -> jax.Array:
    """Mean of `data [E, ...]` per segment (0 for empty segments) -> [num_segments, ...]."""
    total = segment_sum(
        data, segment_ids, num_segments, mask=mask, indices_are_sorted=indices_are_sorted
    )
    count = segment_count(
        segment_ids, num_segments, mask=mask, indices_are_sorted=indices_are_sorted
    )
    count = jnp.maximum(count, 1.0).reshape((num_segments,) + (1,) * (data.ndim - 1))
    return (total / count).astype(data.dtype)


def segment_max(
    data: jax.Array,
    segment_ids: jax.Array,
    num_segments: int,
    *,
    mask: jax.Array | None = None,
    indices_are_sorted: bool = False,
) -> jax.Array:
    """Max of `data [E, ...]` per segment (0 for empty segments) -> [num_segments, ...]."""
    lowest = jnp.finfo(data.dtype).min if jnp.issubdtype(data.dtype, jnp.floating) else 0
    out = jax.ops.segment_max(
        _masked(data, mask, lowest),
        segment_ids,
        num_segments=num_segments,
        indices_are_sorted=indices_are_sorted,
    )
    count = segment_count(
        segment_ids, num_segments, mask=mask, indices_are_sorted=indices_are_sorted
    )
    empty = (count == 0).reshape((num_segments,) + (1,) * (data.ndim - 1))
    return jnp.where(empty, jnp.zeros_like(out), out)


def segment_softmax(
    logits: jax.Array,
    segment_ids: jax.Array,
    num_segments: int,
    *,
    mask: jax.Array | None = None,
    indices_are_sorted: bool = False,
) -> jax.Array:
    """Softmax of `logits [E, ...]` over the entries of each segment -> [E, ...].

    Numerically stable (the per-segment max is subtracted). Masked entries get weight 0
    and do not enter the normaliser of their segment.
    """
    seg_max = segment_max(
        logits, segment_ids, num_segments, mask=mask, indices_are_sorted=indices_are_sorted
    )
    shifted = logits - jax.lax.stop_gradient(seg_max)[segment_ids]
    weights = _masked(jnp.exp(shifted), mask, 0)
    denom = segment_sum(weights, segment_ids, num_segments, indices_are_sorted=indices_are_sorted)
    return weights / jnp.maximum(denom[segment_ids], jnp.finfo(logits.dtype).tiny)


def aggregate(
    kind: str,
    data: jax.Array,
    segment_ids: jax.Array,
    num_segments: int,
    *,
    mask: jax.Array | None = None,
    indices_are_sorted: bool = False,
) -> jax.Array:
    """Dispatches to segment_{sum,mean,max} by name; raises ValueError for others."""
    fns = {"sum": segment_sum, "mean": segment_mean, "max": segment_max}
    if kind not in fns:
        raise ValueError(f"aggregation: expected one of {AGGREGATIONS}, got {kind!r}")
    return fns[kind](
        data, segment_ids, num_segments, mask=mask, indices_are_sorted=indices_are_sorted
    )
