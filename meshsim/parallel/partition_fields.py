"""Per-node and per-edge arrays between the global layout and a `PartitionedGraph`'s.

`scatter_fields` / `scatter_edge_fields` take global arrays to the stacked
[K, N_local] (or [K, E_local]) layout, owned and halo rows alike, padding rows 0;
`gather_outputs` brings per-part results back to global node order from the owners'
rows. Gathers only: jit-safe for jax arrays, numpy in and out for numpy arrays.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph.typed import DEFAULT_NODE_SET

# The partitions these functions read: a `meshsim.parallel.partition.PartitionedGraph`
# (not imported: that module builds on this one).
PartitionedGraph = Any


def _numpy(*arrays) -> bool:
    return all(isinstance(a, np.ndarray | np.generic) for a in arrays)


def _to_parts(x, index, total: int | None, axis: int, where: str):
    """x [..., total, ...] (item axis at `axis`) -> [..., K, L, ...] by `index` [K, L]."""
    xp = np if _numpy(x, index) else jnp
    x = xp.asarray(x)
    ax = axis % x.ndim
    if total is not None and x.shape[ax] != total:
        raise ValueError(f"{where}: expected {total} entries on axis {axis}, got shape {x.shape}")
    flat = index.reshape(-1)
    taken = xp.take(x, xp.maximum(flat, 0), axis=ax)
    keep = (flat >= 0).reshape((-1,) + (1,) * (x.ndim - ax - 1))
    taken = xp.where(keep, taken, xp.zeros((), x.dtype))
    return taken.reshape(x.shape[:ax] + index.shape + x.shape[ax + 1 :])


def scatter_fields(pgraph: PartitionedGraph, fields, node_set: str = DEFAULT_NODE_SET, *, axis=0):
    """Per-node arrays from the global layout to the partitioned one (owned and halo rows).

    Args:
      pgraph: the partition.
      fields: a pytree of arrays [..., N_s, ...] whose axis `axis` runs over the global
        nodes of `node_set` (e.g. {"velocity": [N, 2] float32, "node_type": [N] int32},
        or [B, N, F] with axis=1).
      node_set: which node set the rows belong to.
      axis: the node axis.

    Returns:
      The same pytree with that axis replaced by [K, N_local] (padding rows 0). A gather:
      jit-safe for jax arrays, numpy in and out for numpy arrays.
    """
    index, total = pgraph.global_index[node_set], pgraph.parts[node_set].shape[0]
    where = f"fields of node set {node_set!r}"
    return jax.tree_util.tree_map(lambda x: _to_parts(x, index, total, axis, where), fields)


def scatter_edge_fields(pgraph: PartitionedGraph, fields, edge_set: str, *, axis=0):
    """Per-edge arrays [..., E_k, ...] to the partitioned layout [..., K, E_local, ...]
    (padding rows 0); like `scatter_fields`."""
    index = pgraph.edge_index[edge_set]
    total = int((index >= 0).sum()) if _numpy(index) else None  # checked outside jit only
    where = f"fields of edge set {edge_set!r}"
    return jax.tree_util.tree_map(lambda x: _to_parts(x, index, total, axis, where), fields)


def gather_outputs(pgraph: PartitionedGraph, outputs, node_set: str = DEFAULT_NODE_SET, *, axis=0):
    """Per-node arrays from the partitioned layout back to the global one, owners' rows only.

    Args:
      outputs: a pytree of arrays [..., K, N_local, ...] with the part axis at `axis`.

    Returns:
      The same pytree with [K, N_local] replaced by [N_s] in global node order. A gather:
      jit-safe for jax arrays.
    """
    k, n_local = pgraph.num_parts, pgraph.num_local(node_set)
    rows = pgraph.owner_flat[node_set]

    def one(y):
        xp = np if _numpy(y, rows) else jnp
        y = xp.asarray(y)
        ax = axis % y.ndim
        if y.shape[ax : ax + 2] != (k, n_local):
            raise ValueError(
                f"outputs of node set {node_set!r}: expected [{k}, {n_local}] at axis {axis}, "
                f"got shape {y.shape}"
            )
        flat = y.reshape(y.shape[:ax] + (k * n_local,) + y.shape[ax + 2 :])
        return xp.take(flat, rows, axis=ax)

    return jax.tree_util.tree_map(one, outputs)
