"""Graphs from other things: mesh cells → edges, jraph interop, shape templates. Host side."""

from __future__ import annotations

from collections.abc import Mapping

import jraph
import numpy as np

from meshsim.graph.typed import (
    DEFAULT_NODE_SET,
    Array,
    EdgeSet,
    MultiGraph,
    NodeSet,
    edge_set,
    node_set,
)
from meshsim.validation import check_int


def unique_edges(cells: Array) -> np.ndarray:
    """[U, 2] int64 unique undirected edges (lo < hi) of cells, sorted lexicographically.

    Args:
      cells: [num_cells, k] int — every pair of a cell's k vertices is an edge
        (triangles k=3, tetrahedra k=4).

    Raises:
      ValueError: a cell repeats a node (a degenerate cell such as [0, 0, 1], which
        would give a self-loop edge), naming the first such cell and its nodes; or a
        negative index. No mesh of `meshsim.meshes` (`check_mesh` rejects them) or of
        the test datasets has such a cell, so one is reported as a defect of the data
        rather than dropped silently.
      TypeError: `cells` is not an integer array.
    """
    cells = np.asarray(cells)
    if cells.ndim != 2 or cells.shape[1] < 2:
        raise ValueError(f"cells: expected shape [num_cells, k ≥ 2], got {cells.shape}")
    if not np.issubdtype(cells.dtype, np.integer):
        raise TypeError(f"cells: expected an integer dtype, got {cells.dtype}")
    if cells.size and cells.min() < 0:
        bad = int(np.argmax((cells < 0).any(axis=1)))
        raise ValueError(
            f"cells: negative node index {int(cells[bad].min())} in cell {bad} = "
            f"{cells[bad].tolist()}; expected node indices ≥ 0"
        )
    degenerate = (np.diff(np.sort(cells, axis=1), axis=1) == 0).any(axis=1)
    if degenerate.any():
        bad = int(np.argmax(degenerate))
        raise ValueError(
            f"cells: cell {bad} = {cells[bad].tolist()} repeats a node (degenerate: it "
            f"would give a self-loop edge); expected {cells.shape[1]} distinct nodes per "
            f"cell ({int(degenerate.sum())} degenerate cell(s) in all)"
        )
    k = cells.shape[1]
    pairs = np.concatenate([cells[:, [i, j]] for i in range(k) for j in range(i + 1, k)]).astype(
        np.int64
    )
    pairs = np.sort(pairs, axis=1)
    return np.unique(pairs, axis=0).reshape(-1, 2)


def edges_from_cells(cells: Array) -> tuple[np.ndarray, np.ndarray]:
    """Unique mesh edges of triangles or tetrahedra, in both directions.

    Args:
      cells: [num_cells, 3] (triangles) or [num_cells, 4] (tetrahedra) int.

    Returns:
      (senders [2 * num_undirected_edges] int32, receivers [same] int32), sorted by
      receiver then sender.
    """
    cells = np.asarray(cells)
    if cells.ndim != 2 or cells.shape[1] not in (3, 4):
        raise ValueError(f"cells: expected shape [num_cells, 3 or 4], got {cells.shape}")
    pairs = unique_edges(cells)
    senders = np.concatenate([pairs[:, 0], pairs[:, 1]])
    receivers = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.lexsort((senders, receivers))
    return senders[order].astype(np.int32), receivers[order].astype(np.int32)


def placeholder_graph(
    node_sizes: Mapping[str, int], edge_types: Mapping[str, tuple[str, str, int]]
) -> MultiGraph:
    """A one-node-per-set graph with the given feature widths: a shape template.

    Parameter shapes of a graph network depend on feature widths only, so
    `jax.eval_shape(model.init, key, placeholder_graph(...))` gives a checkpoint's
    structure without reading any data.

    Args:
      node_sizes: {node set: feature width}.
      edge_types: {edge set: (sender set, receiver set, feature width)}.
    """
    widths = {f"node_sizes[{k!r}]": f for k, f in node_sizes.items()}
    for name, spec in edge_types.items():
        if not isinstance(spec, tuple | list) or len(spec) != 3:
            raise ValueError(
                f"edge_types[{name!r}]: expected (sender set, receiver set, width), got {spec!r}"
            )
        for end, node_set_name in zip(("sender", "receiver"), spec[:2]):
            if node_set_name not in node_sizes:
                raise ValueError(
                    f"edge_types[{name!r}] {end}: expected one of the node sets "
                    f"{sorted(node_sizes)}, got {node_set_name!r}"
                )
        widths[f"edge_types[{name!r}] width"] = spec[2]
    for where, width in widths.items():
        check_int(where, width, minimum=0, expected="a feature width (an int ≥ 0)")
    one = lambda width: np.zeros((1, width), np.float32)
    first = np.zeros(1, np.int32)
    return MultiGraph(
        node_sets={k: node_set(one(f)) for k, f in node_sizes.items()},
        edge_sets={
            k: edge_set(one(f), first, first, sender=s, receiver=r)
            for k, (s, r, f) in edge_types.items()
        },
        graph_mask=np.ones(1, bool),
    )


# --------------------------------------------------------------------------- jraph


def to_jraph(graph: MultiGraph, edge_set: str | None = None) -> jraph.GraphsTuple:
    """A `jraph.GraphsTuple` view of one edge set within one node set.

    `edge_set` may be omitted when the graph has only one. Its senders and receivers
    must index the same node set, which becomes the GraphsTuple's nodes.
    """
    if not isinstance(graph, MultiGraph):
        raise TypeError(f"graph: expected MultiGraph, got {type(graph).__name__}")
    if edge_set is None:
        if len(graph.edge_sets) != 1:
            raise ValueError(
                f"edge_set: graph has edge sets {sorted(graph.edge_sets)}; name the one to use"
            )
        (edge_set,) = graph.edge_sets
    if edge_set not in graph.edge_sets:
        raise ValueError(f"edge_set: expected one of {sorted(graph.edge_sets)}, got {edge_set!r}")
    es = graph.edge_sets[edge_set]
    if es.sender != es.receiver:
        raise ValueError(
            f"edge_set: {edge_set!r} joins node sets {es.sender!r} -> {es.receiver!r}; "
            "a jraph GraphsTuple has one node set"
        )
    ns = graph.node_sets[es.sender]
    return jraph.GraphsTuple(
        nodes=ns.features,
        edges=es.features,
        senders=es.senders,
        receivers=es.receivers,
        n_node=ns.n_node,
        n_edge=es.n_edge,
        globals=None,
    )


def from_jraph(
    graph: jraph.GraphsTuple,
    *,
    edge_set: str = "mesh",
    node_set: str = DEFAULT_NODE_SET,
    padded: bool = False,
) -> MultiGraph:
    """Converts a GraphsTuple (array nodes/edges) into a one-node-set, one-edge-set graph.

    With `padded=True` the graph follows `jraph.pad_with_graphs`: the last non-empty
    graph holds the padding and any empty graphs after it are padding too.
    """
    if not hasattr(graph.nodes, "shape") or not hasattr(graph.edges, "shape"):
        raise TypeError("graph: nodes and edges must be arrays (not nested dicts)")
    n_node = np.asarray(graph.n_node).astype(np.int32)
    n_edge = np.asarray(graph.n_edge).astype(np.int32)
    graph_mask = np.ones(n_node.shape[0], bool)
    if padded:
        trailing_empty = 0
        while trailing_empty < len(n_node) - 1 and n_node[-1 - trailing_empty] == 0:
            trailing_empty += 1
        graph_mask[len(n_node) - trailing_empty - 1 :] = False
    out = MultiGraph(
        node_sets={
            node_set: NodeSet(
                features=np.asarray(graph.nodes),
                n_node=n_node,
                mask=np.repeat(graph_mask, n_node),
            )
        },
        edge_sets={
            edge_set: EdgeSet(
                features=np.asarray(graph.edges),
                senders=np.asarray(graph.senders).astype(np.int32),
                receivers=np.asarray(graph.receivers).astype(np.int32),
                n_edge=n_edge,
                mask=np.repeat(graph_mask, n_edge),
                sender=node_set,
                receiver=node_set,
            )
        },
        graph_mask=graph_mask,
    )
    return out.validate()
