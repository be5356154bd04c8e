"""Windows and batches: a graph structure plus the per-node fields of one example.

A `Window` is what a task cuts from a trajectory at one time: the graph
structure (node and edge sets with zero-width features: indices, counts and
masks are real) and a dict of per-node fields (`velocity [N, 2]`, `node_type
[N] int32`, `target|velocity`, ...) that live on the task's field node set.
A **batch** is a `Window` whose fields carry a leading `[B]` axis; its graph
is stacked too (`[B, ...]`, one mesh per example) or, when every example has
the same structure (a weather grid and its multimesh), held once and shared:
`graph_batch_axis` tells which, from the static rank of the graph mask.

Padding (`pad_window`) and stacking (`stack_windows`) live here, below both
training and rollout, so neither reaches into the data pipeline. Host side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph import DEFAULT_NODE_SET, MultiGraph, PaddingBudget, pad


class Window(NamedTuple):
    """One example, or a batch of them (leading `[B]` axis on every field).

    Fields:
      graph:  MultiGraph structure with zero-width features; leaves `[B, ...]` in a
              batch unless the structure is shared (see `graph_batch_axis`).
      fields: {name: [N, d] float32 | [N] int32} per-node fields of the task's node
              set; `[B, N, ...]` in a batch.
    """

    graph: MultiGraph
    fields: dict[str, np.ndarray]


Batch = Window  # a Window whose leaves carry a leading batch axis

# An optional window field, [N] int32: the mesh node each row holds. Absent, row i holds
# node i; a batch renumbered for graph parallelism (`meshsim.parallel.blocked`) carries
# it, so that per-node randomness (training noise, `node_normal`) is drawn per node,
# whatever the layout.
NODE_INDEX = "node|index"


def node_normal(rng: jax.Array, fields: dict, shape: tuple[int, ...]) -> jax.Array:
    """`shape` = [N, ...] float32 standard normal draws, one row per mesh node: row r
    holds node `fields[NODE_INDEX][r]`'s draw (without the field, node r's), so a
    renumbered layout of the same example draws the same values for the same nodes.

    Node i's draw is row i of `jax.random.normal(rng, [M, ...])` for any M > i: with
    jax's partitionable threefry (`jax_threefry_partitionable`, on by default) an
    element's bits depend on its index only. A renumbered layout has at least as many
    rows as the mesh has nodes, so it draws its own shape and gathers. Jit-safe.
    """
    draws = jax.random.normal(rng, shape, jnp.float32)
    index = fields.get(NODE_INDEX)
    return draws if index is None else draws[jnp.maximum(index, 0)]


def graph_batch_axis(batch: Window) -> int | None:
    """0 if the batch's graph is stacked per example, None if one structure is shared.

    Static (it reads the rank of `graph_mask`), so it is safe under jit.
    """
    return 0 if batch.graph.graph_mask.ndim == 2 else None


def pad_window(window: Window, budget: PaddingBudget, node_set: str = DEFAULT_NODE_SET) -> Window:
    """Pads the structure to `budget` and every field (on `node_set`) with zeros."""
    graph = pad(window.graph, budget)
    extra = budget.n_node[node_set] - window.graph.num_nodes(node_set)
    fields = {
        k: np.concatenate([v, np.zeros((extra,) + v.shape[1:], v.dtype)])
        for k, v in window.fields.items()
    }
    return Window(graph=graph, fields=fields)


def stack_windows(windows: Sequence[Window], *, shared_graph: bool = False) -> Window:
    """Stacks padded windows on a new leading axis (a batch).

    With `shared_graph`, every window must hold the same structure object's arrays and
    the batch keeps one copy of it instead of `B`.
    """
    if not windows:
        raise ValueError("windows: expected at least one window, got none")
    fields = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *[w.fields for w in windows])
    if shared_graph:
        return Window(graph=windows[0].graph, fields=fields)
    graph = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *[w.graph for w in windows])
    return Window(graph=graph, fields=fields)
