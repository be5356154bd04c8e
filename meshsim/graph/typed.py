"""Typed graphs: named node sets and named edge sets, each edge set naming its ends.

A `MultiGraph` holds node sets (`"mesh"`; `"grid"` and `"mesh"` for weather)
and edge sets (`"mesh"`, `"world"`, `"grid2mesh"`, ...). Each `EdgeSet` names
the node set its senders index and the one its receivers index, so grid nodes
with hundreds of channels and mesh nodes with three structural features keep
their own widths, and a network can run an edge set from one node set into
another (the idea of GraphCast's typed graphs).

All three are pytrees: array fields are leaves, the node-set names of an edge
set are static (part of the tree structure), so a graph passes through
`jax.jit`, `vmap` and sharding unchanged and jit specialises on its typing.
Several graphs batched into one keep per-graph counts (`n_node`, `n_edge`)
and masks; see `meshsim.graph.padding`.

`validate` and `make_graph` run host side, before jit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

Array = jax.Array | np.ndarray

DEFAULT_NODE_SET = "mesh"  # the node set of a one-mesh graph (make_graph with an array)


def _pytree(data_fields: tuple[str, ...], meta_fields: tuple[str, ...] = ()):
    def wrap(cls):
        cls = dataclasses.dataclass(frozen=True, eq=False)(cls)
        return jax.tree_util.register_dataclass(
            cls, data_fields=list(data_fields), meta_fields=list(meta_fields)
        )

    return wrap


@_pytree(("features", "n_node", "mask"))
class NodeSet:
    """One named set of nodes.

    Fields:
      features: [num_nodes, F] float — per-node features (F may be 0 for a bare structure).
      n_node:   [num_graphs] int32 — nodes of this set in each graph of a batch.
      mask:     [num_nodes] bool — True for real nodes, False for padding.
    """

    features: Array
    n_node: Array
    mask: Array

    @property
    def num_nodes(self) -> int:
        """Rows of `features` (padding included); static, so usable under jit."""
        return int(self.features.shape[-2])

    def replace(self, **changes) -> NodeSet:
        """A copy with the given fields changed (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)


@_pytree(("features", "senders", "receivers", "n_edge", "mask"), ("sender", "receiver"))
class EdgeSet:
    """One named set of directed edges from node set `sender` to node set `receiver`.

    Fields:
      features:  [num_edges, F] float — per-edge features.
      senders:   [num_edges] int32 — index into `node_sets[sender]`.
      receivers: [num_edges] int32 — index into `node_sets[receiver]`.
      n_edge:    [num_graphs] int32 — edges of this set in each graph of a batch.
      mask:      [num_edges] bool — True for real edges, False for padding.
      sender:    name of the node set senders index (static).
      receiver:  name of the node set receivers index (static).
    """

    features: Array
    senders: Array
    receivers: Array
    n_edge: Array
    mask: Array
    sender: str = DEFAULT_NODE_SET
    receiver: str = DEFAULT_NODE_SET

    @property
    def num_edges(self) -> int:
        """Entries of `senders` (padding included); static, so usable under jit."""
        return int(self.senders.shape[-1])

    def replace(self, **changes) -> EdgeSet:
        """A copy with the given fields changed (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)


@_pytree(("node_sets", "edge_sets", "graph_mask", "parts"))
class MultiGraph:
    """Named node sets and named edge sets; possibly a batch of several graphs.

    Fields:
      node_sets:  {name: NodeSet} — e.g. {"mesh": ...} or {"grid": ..., "mesh": ...}.
      edge_sets:  {name: EdgeSet} — e.g. {"mesh": ...}, {"grid2mesh": ..., "mesh": ...}.
      graph_mask: [num_graphs] bool — True for real graphs, False for padding graphs.
      parts:      None, or the tables a `Simulator.partition` runs this example's mesh
                  with when the examples of a batch lie on different meshes (one pytree
                  per example, `meshsim.parallel.per_mesh`); opaque to everything else,
                  and kept by `replace` and `with_features`.

    Names are iterated in sorted order (pytree dicts are sorted), which fixes the
    order of parameters and of aggregated messages.
    """

    node_sets: Mapping[str, NodeSet]
    edge_sets: Mapping[str, EdgeSet]
    graph_mask: Array
    parts: Any = None

    @property
    def num_graphs(self) -> int:
        """Graphs in the batch, padding graph included (the length of `graph_mask`)."""
        return int(self.graph_mask.shape[-1])

    def num_nodes(self, node_set: str) -> int:
        """Rows of node set `node_set` (padding included)."""
        return self.node_sets[node_set].num_nodes

    def replace(self, **changes) -> MultiGraph:
        """A copy with the given fields changed (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def validate(self) -> MultiGraph:
        """Checks shapes, dtypes, index ranges, typing and finiteness; returns self. Host side."""
        validate(self)
        return self

    def features(self) -> GraphFeatures:
        """The feature arrays alone (see `with_features`)."""
        return GraphFeatures(
            nodes={k: v.features for k, v in self.node_sets.items()},
            edges={k: v.features for k, v in self.edge_sets.items()},
        )

    def with_features(self, features: GraphFeatures) -> MultiGraph:
        """This structure with the given node and edge features. Jit-safe.

        Splitting features from structure lets a batch of examples that share one
        fixed structure carry `[B, ...]` features but a single copy of the indices.
        """
        return self.replace(
            node_sets={k: v.replace(features=features.nodes[k]) for k, v in self.node_sets.items()},
            edge_sets={k: v.replace(features=features.edges[k]) for k, v in self.edge_sets.items()},
        )


class GraphFeatures(NamedTuple):
    """A graph's features alone, without its structure (see `MultiGraph.with_features`).

    Fields:
      nodes: {node set: [N_s, F_s] float}.
      edges: {edge set: [E_k, F_k] float}.
    """

    nodes: dict[str, Any]
    edges: dict[str, Any]


def node_set(features: Array, *, name: str = "features") -> NodeSet:
    """A one-graph `NodeSet` with every node real. Host side; `name` is used in errors."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"{name}: expected rank 2 [num_nodes, F], got shape {features.shape}")
    n = features.shape[0]
    return NodeSet(features=features, n_node=np.array([n], np.int32), mask=np.ones(n, bool))


def edge_set(
    features: Array,
    senders: Array,
    receivers: Array,
    *,
    sender: str = DEFAULT_NODE_SET,
    receiver: str = DEFAULT_NODE_SET,
    name: str = "edge_set",
) -> EdgeSet:
    """A one-graph `EdgeSet` with every edge real. Host side; checks ranks, index dtypes
    and lengths (index ranges are checked by `make_graph` / `validate`); `name` is used
    in errors."""
    senders, receivers, features = np.asarray(senders), np.asarray(receivers), np.asarray(features)
    for field, array, rank in (("senders", senders, 1), ("receivers", receivers, 1)):
        if array.ndim != rank:
            raise ValueError(f"{name}.{field}: expected rank 1, got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{name}.{field}: expected dtype int32, got {array.dtype}")
    if features.ndim != 2:
        raise ValueError(f"{name}.features: expected rank 2, got shape {features.shape}")
    num_edges = senders.shape[0]
    for field, array in (("receivers", receivers), ("features", features)):
        if array.shape[0] != num_edges:
            raise ValueError(
                f"{name}.{field}: expected length {num_edges} (= len(senders)), "
                f"got {array.shape[0]}"
            )
    return EdgeSet(
        features=features,
        senders=senders,
        receivers=receivers,
        n_edge=np.array([num_edges], np.int32),
        mask=np.ones(num_edges, bool),
        sender=sender,
        receiver=receiver,
    )


def make_graph(
    nodes: Array | Mapping[str, Array],
    edge_sets: Mapping[str, tuple | EdgeSet],
) -> MultiGraph:
    """Builds a single (unpadded) graph from numpy/jax arrays and validates it.

    Args:
      nodes: [num_nodes, F] features of the one node set (named "mesh"), or
        {node set name: [N_s, F_s]} for several.
      edge_sets: {name: (features [E, Fe], senders [E], receivers [E])} for an edge
        set within the only node set, {name: (features, senders, receivers, sender,
        receiver)} naming the node sets of its ends, or {name: EdgeSet}.

    Returns:
      A validated one-graph `MultiGraph` with all-True masks (numpy arrays).

    Example (two node sets)::

        make_graph({"grid": grid_x, "mesh": mesh_x},
                   {"grid2mesh": (e, s, r, "grid", "mesh"), "mesh": (e2, s2, r2, "mesh", "mesh")})
    """
    if isinstance(nodes, Mapping):
        node_sets = {k: node_set(v, name=f"nodes[{k!r}]") for k, v in nodes.items()}
    else:
        node_sets = {DEFAULT_NODE_SET: node_set(nodes, name="nodes")}
    sets = {}
    for name, value in edge_sets.items():
        where = f"edge_sets[{name!r}]"
        if isinstance(value, EdgeSet):
            value = (value.features, value.senders, value.receivers, value.sender, value.receiver)
        if not isinstance(value, tuple | list) or len(value) not in (3, 5):
            got = type(value).__name__
            if isinstance(value, tuple | list):
                got += f" of length {len(value)}"
            raise ValueError(
                f"{where}: expected (features, senders, receivers[, sender, receiver]), got {got}"
            )
        if len(value) == 3:
            if len(node_sets) != 1:
                raise ValueError(
                    f"{where}: the graph has node sets {sorted(node_sets)}; give "
                    "(features, senders, receivers, sender, receiver) to name the edge set's ends"
                )
            (only,) = node_sets
            value = (*value, only, only)
        features, senders, receivers, sender, receiver = value
        sets[name] = edge_set(
            features, senders, receivers, sender=sender, receiver=receiver, name=where
        )
    return MultiGraph(node_sets=node_sets, edge_sets=sets, graph_mask=np.ones(1, bool)).validate()


# --------------------------------------------------------------------------- validation


def _check_rank_dtype(name: str, array, rank: int, kind: str) -> np.ndarray:
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
        raise TypeError(f"{name}: expected an array, got {type(array).__name__}")
    if array.ndim != rank:
        raise ValueError(f"{name}: expected rank {rank}, got shape {tuple(array.shape)}")
    dtype = np.dtype(array.dtype)
    if kind == "int" and dtype != np.int32:
        raise TypeError(f"{name}: expected dtype int32, got {dtype}")
    if kind == "float" and not np.issubdtype(dtype, np.floating) and dtype.name != "bfloat16":
        raise TypeError(f"{name}: expected a floating dtype, got {dtype}")
    if kind == "bool" and dtype != np.bool_:
        raise TypeError(f"{name}: expected dtype bool, got {dtype}")
    return np.asarray(array)


def _check_counts(where: str, counts: np.ndarray, total: int, num_graphs: int) -> None:
    if counts.shape[0] != num_graphs:
        raise ValueError(f"{where}: expected shape ({num_graphs},), got {counts.shape}")
    if (counts < 0).any() or int(counts.sum()) != total:
        raise ValueError(
            f"{where}: expected non-negative counts summing to {total}, "
            f"got {counts.tolist()} (sum {int(counts.sum())})"
        )


def _check_finite(where: str, features: np.ndarray, mask: np.ndarray, item: str) -> None:
    real = features[mask].astype(np.float32)
    if not np.isfinite(real).all():
        row, col = np.argwhere(~np.isfinite(real))[0]
        index = int(np.flatnonzero(mask)[row])
        raise ValueError(f"{where}: non-finite value at {item} {index}, feature {int(col)}")


def _validate_node_set(where: str, ns: NodeSet, num_graphs: int, graph_mask: np.ndarray):
    """Returns (graph_of_node [N] int: which graph each node belongs to, mask [N] bool)."""
    if not isinstance(ns, NodeSet):
        raise TypeError(f"{where}: expected NodeSet, got {type(ns).__name__}")
    features = _check_rank_dtype(f"{where}.features", ns.features, 2, "float")
    n_node = _check_rank_dtype(f"{where}.n_node", ns.n_node, 1, "int")
    mask = _check_rank_dtype(f"{where}.mask", ns.mask, 1, "bool")
    num_nodes = features.shape[0]
    _check_counts(f"{where}.n_node", n_node, num_nodes, num_graphs)
    if mask.shape[0] != num_nodes:
        raise ValueError(f"{where}.mask: expected shape ({num_nodes},), got {mask.shape}")
    empty = graph_mask & (n_node == 0)
    if empty.any():
        raise ValueError(f"{where}.n_node: real graph {int(np.argmax(empty))} has 0 nodes")
    _check_finite(f"{where}.features", features, mask, "node")
    return np.repeat(np.arange(num_graphs), n_node), mask


def validate(graph: MultiGraph) -> None:
    """Raises ValueError/TypeError naming the first field that is malformed.

    Checks: ranks and dtypes; per-graph counts that add up to the array lengths;
    every edge set's ends name existing node sets and its indices lie within
    *those* node sets; every edge joins nodes of its own graph; finite real
    features; no real graph with an empty node set. Host side (pulls arrays to
    numpy): do not call under jit.
    """
    if not isinstance(graph, MultiGraph):
        raise TypeError(f"graph: expected MultiGraph, got {type(graph).__name__}")
    graph_mask = _check_rank_dtype("graph_mask", graph.graph_mask, 1, "bool")
    num_graphs = graph_mask.shape[0]
    if num_graphs == 0:
        raise ValueError("graph_mask: expected at least one graph, got shape (0,)")
    for field in ("node_sets", "edge_sets"):
        if not isinstance(getattr(graph, field), Mapping):
            raise TypeError(
                f"{field}: expected a mapping, got {type(getattr(graph, field)).__name__}"
            )
    if not graph.node_sets:
        raise ValueError("node_sets: expected at least one node set, got none")
    checked = {
        name: _validate_node_set(f"node_sets[{name!r}]", ns, num_graphs, graph_mask)
        for name, ns in graph.node_sets.items()
    }
    graph_of = {name: g for name, (g, _) in checked.items()}
    node_mask = {name: m for name, (_, m) in checked.items()}
    for name, es in graph.edge_sets.items():
        where = f"edge_sets[{name!r}]"
        if not isinstance(es, EdgeSet):
            raise TypeError(f"{where}: expected EdgeSet, got {type(es).__name__}")
        for end in ("sender", "receiver"):
            if getattr(es, end) not in graph.node_sets:
                raise ValueError(
                    f"{where}.{end}: expected one of the node sets {sorted(graph.node_sets)}, "
                    f"got {getattr(es, end)!r}"
                )
        features = _check_rank_dtype(f"{where}.features", es.features, 2, "float")
        senders = _check_rank_dtype(f"{where}.senders", es.senders, 1, "int")
        receivers = _check_rank_dtype(f"{where}.receivers", es.receivers, 1, "int")
        n_edge = _check_rank_dtype(f"{where}.n_edge", es.n_edge, 1, "int")
        mask = _check_rank_dtype(f"{where}.mask", es.mask, 1, "bool")
        num_edges = senders.shape[0]
        for field, arr in (("receivers", receivers), ("features", features), ("mask", mask)):
            if arr.shape[0] != num_edges:
                raise ValueError(
                    f"{where}.{field}: expected length {num_edges} (= len(senders)), "
                    f"got {arr.shape[0]}"
                )
        _check_counts(f"{where}.n_edge", n_edge, num_edges, num_graphs)
        graph_of_edge = np.repeat(np.arange(num_graphs), n_edge)
        for field, idx, end in (
            ("senders", senders, es.sender),
            ("receivers", receivers, es.receiver),
        ):
            size = graph.node_sets[end].num_nodes
            if num_edges and (idx.min() < 0 or idx.max() >= size):
                bad = int(np.argmax((idx < 0) | (idx >= size)))
                raise ValueError(
                    f"{where}.{field}: index {int(idx[bad])} at edge {bad} is out of range "
                    f"[0, {size}) of node set {end!r}"
                )
            if num_edges and (graph_of[end][idx] != graph_of_edge).any():
                bad = int(np.argmax(graph_of[end][idx] != graph_of_edge))
                raise ValueError(
                    f"{where}.{field}: edge {bad} of graph {int(graph_of_edge[bad])} points at "
                    f"node {int(idx[bad])} of graph {int(graph_of[end][idx[bad]])} in {end!r}"
                )
            # Blocks do not re-mask messages: a padding edge must only touch padding nodes.
            leak = ~mask & node_mask[end][idx]
            if leak.any():
                bad = int(np.argmax(leak))
                raise ValueError(
                    f"{where}.{field}: masked (padding) edge {bad} points at real node "
                    f"{int(idx[bad])} of {end!r}; padding edges must join padding nodes"
                )
        _check_finite(f"{where}.features", features, mask, "edge")
