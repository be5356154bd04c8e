"""Graphs with named edge sets: the data structure every network consumes.

A `MultiGraph` holds one node array and any number of named edge sets
(`"mesh"`, `"world"`, `"grid2mesh"`, ...). It is a pytree of arrays (NamedTuples
and a dict), so it passes through `jax.jit`, `vmap` and sharding unchanged.

Static shapes: a dataset of variable-size meshes is padded to a small ladder of
sizes (`PaddingBudget`), so only a few shapes are ever compiled. Padding follows
the jraph convention: one extra *padding graph* at the end owns every padded node
and edge; padded edges connect padded nodes only, so a padded edge can never send
a message to a real node. Explicit masks mark what is real.

Everything here that takes a whole graph and returns python/numpy values
(`validate`, `batch`, `unbatch`, `pad`, `PaddingBudget.fit`) runs host side,
before jit. `node_mask`/`edge_mask` are jit-safe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jraph
import numpy as np

Array = jax.Array | np.ndarray


class EdgeSet(NamedTuple):
    """One named set of directed edges.

    Fields:
      features:  [num_edges, edge_feature_size] float — per-edge features.
      senders:   [num_edges] int32 — index of the sending node in `MultiGraph.nodes`.
      receivers: [num_edges] int32 — index of the receiving node.
      n_edge:    [num_graphs] int32 — edges of this set in each graph of a batch.
      mask:      [num_edges] bool — True for real edges, False for padding.
    """

    features: Array
    senders: Array
    receivers: Array
    n_edge: Array
    mask: Array


class MultiGraph(NamedTuple):
    """Node features plus named edge sets; possibly a batch of several graphs.

    Fields:
      nodes:      [num_nodes, node_feature_size] float — per-node features.
      edge_sets:  {name: EdgeSet} — e.g. {"mesh": ...}; names sorted when iterated.
      n_node:     [num_graphs] int32 — nodes in each graph of the batch.
      node_mask:  [num_nodes] bool — True for real nodes, False for padding.
      graph_mask: [num_graphs] bool — True for real graphs, False for the padding graph.
    """

    nodes: Array
    edge_sets: Mapping[str, EdgeSet]
    n_node: Array
    node_mask: Array
    graph_mask: Array

    @property
    def num_nodes(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def num_graphs(self) -> int:
        return int(self.n_node.shape[0])

    def validate(self) -> MultiGraph:
        """Checks shapes, dtypes, index ranges and finiteness; returns self. Host side."""
        validate(self)
        return self


def make_graph(
    nodes: Array,
    edge_sets: Mapping[str, tuple[Array, Array, Array] | EdgeSet],
) -> MultiGraph:
    """Builds a single (unpadded) graph from numpy/jax arrays and validates it.

    Args:
      nodes: [num_nodes, F] float node features.
      edge_sets: {name: (features [E, Fe], senders [E], receivers [E])} or EdgeSets.

    Returns:
      A validated one-graph `MultiGraph` with all-True masks (numpy arrays).
    """
    nodes = np.asarray(nodes)
    if nodes.ndim != 2:
        raise ValueError(f"nodes: expected rank 2 [num_nodes, F], got shape {nodes.shape}")
    sets = {}
    for name, value in edge_sets.items():
        if isinstance(value, EdgeSet):
            features, senders, receivers = value.features, value.senders, value.receivers
        else:
            if len(value) != 3:
                raise ValueError(
                    f"edge_sets[{name!r}]: expected (features, senders, receivers), "
                    f"got a tuple of length {len(value)}"
                )
            features, senders, receivers = value
        senders = np.asarray(senders)
        num_edges = senders.shape[0] if senders.ndim == 1 else -1
        sets[name] = EdgeSet(
            features=np.asarray(features),
            senders=senders,
            receivers=np.asarray(receivers),
            n_edge=np.array([num_edges], np.int32),
            mask=np.ones([max(num_edges, 0)], bool),
        )
    graph = MultiGraph(
        nodes=nodes,
        edge_sets=sets,
        n_node=np.array([nodes.shape[0]], np.int32),
        node_mask=np.ones([nodes.shape[0]], bool),
        graph_mask=np.ones([1], bool),
    )
    return graph.validate()


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


def validate(graph: MultiGraph) -> None:
    """Raises ValueError/TypeError naming the first field that is malformed.

    Checks: ranks and dtypes; per-graph counts that add up to the array lengths;
    indices within [0, num_nodes); finite features; no empty graph (a real graph
    with zero nodes). Host side: it pulls arrays to numpy; do not call under jit.
    """
    if not isinstance(graph, MultiGraph):
        raise TypeError(f"graph: expected MultiGraph, got {type(graph).__name__}")
    nodes = _check_rank_dtype("nodes", graph.nodes, 2, "float")
    n_node = _check_rank_dtype("n_node", graph.n_node, 1, "int")
    node_mask = _check_rank_dtype("node_mask", graph.node_mask, 1, "bool")
    graph_mask = _check_rank_dtype("graph_mask", graph.graph_mask, 1, "bool")
    num_nodes, num_graphs = nodes.shape[0], n_node.shape[0]
    if num_nodes == 0 or num_graphs == 0:
        raise ValueError(f"nodes: empty graph (num_nodes={num_nodes}, num_graphs={num_graphs})")
    if (n_node < 0).any() or int(n_node.sum()) != num_nodes:
        raise ValueError(
            f"n_node: expected non-negative counts summing to num_nodes={num_nodes}, "
            f"got {n_node.tolist()} (sum {int(n_node.sum())})"
        )
    if graph_mask.shape[0] != num_graphs:
        raise ValueError(f"graph_mask: expected shape ({num_graphs},), got {graph_mask.shape}")
    if node_mask.shape[0] != num_nodes:
        raise ValueError(f"node_mask: expected shape ({num_nodes},), got {node_mask.shape}")
    empty = graph_mask & (n_node == 0)
    if empty.any():
        raise ValueError(f"n_node: real graph {int(np.argmax(empty))} is empty (0 nodes)")
    if not np.isfinite(nodes[node_mask].astype(np.float32)).all():
        bad = np.argwhere(~np.isfinite(nodes.astype(np.float32)))[0]
        raise ValueError(f"nodes: non-finite value at node {bad[0]}, feature {bad[1]}")
    if not isinstance(graph.edge_sets, Mapping):
        raise TypeError(f"edge_sets: expected a mapping, got {type(graph.edge_sets).__name__}")
    for name, es in graph.edge_sets.items():
        where = f"edge_sets[{name!r}]"
        if not isinstance(es, EdgeSet):
            raise TypeError(f"{where}: expected EdgeSet, got {type(es).__name__}")
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
        if n_edge.shape[0] != num_graphs:
            raise ValueError(f"{where}.n_edge: expected shape ({num_graphs},), got {n_edge.shape}")
        if (n_edge < 0).any() or int(n_edge.sum()) != num_edges:
            raise ValueError(
                f"{where}.n_edge: expected counts summing to {num_edges}, got {n_edge.tolist()}"
            )
        for field, idx in (("senders", senders), ("receivers", receivers)):
            if num_edges and (idx.min() < 0 or idx.max() >= num_nodes):
                bad = int(np.argmax((idx < 0) | (idx >= num_nodes)))
                raise ValueError(
                    f"{where}.{field}: index {int(idx[bad])} at edge {bad} is out of range "
                    f"[0, {num_nodes})"
                )
        if not np.isfinite(features[mask].astype(np.float32)).all():
            bad = np.argwhere(~np.isfinite(features.astype(np.float32)))[0]
            raise ValueError(f"{where}.features: non-finite value at edge {bad[0]}")


# --------------------------------------------------------------------------- masks


def node_mask(graph: MultiGraph) -> jax.Array:
    """[num_nodes] bool, True for real nodes. Jit-safe."""
    return jnp.asarray(graph.node_mask)


def edge_mask(graph: MultiGraph, name: str) -> jax.Array:
    """[num_edges] bool, True for real edges of `name`. Jit-safe."""
    return jnp.asarray(graph.edge_sets[name].mask)


# --------------------------------------------------------------------------- mesh → edges


def edges_from_cells(cells: Array) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected mesh edges of triangles or tetrahedra, in both directions.

    Args:
      cells: [num_cells, 3] (triangles) or [num_cells, 4] (tetrahedra) int.

    Returns:
      (senders [2 * num_undirected_edges] int32, receivers [same] int32), sorted by
      receiver then sender, so segment sums may use `indices_are_sorted=True`.
    """
    cells = np.asarray(cells)
    if cells.ndim != 2 or cells.shape[1] not in (3, 4):
        raise ValueError(f"cells: expected shape [num_cells, 3 or 4], got {cells.shape}")
    if not np.issubdtype(cells.dtype, np.integer):
        raise TypeError(f"cells: expected an integer dtype, got {cells.dtype}")
    if cells.size and cells.min() < 0:
        raise ValueError(f"cells: negative node index {int(cells.min())}")
    k = cells.shape[1]
    pairs = np.concatenate([cells[:, [i, j]] for i in range(k) for j in range(i + 1, k)])
    pairs = np.sort(pairs, axis=1)
    pairs = np.unique(pairs, axis=0)
    senders = np.concatenate([pairs[:, 0], pairs[:, 1]])
    receivers = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.lexsort((senders, receivers))
    return senders[order].astype(np.int32), receivers[order].astype(np.int32)


# --------------------------------------------------------------------------- batching


def batch(graphs: Sequence[MultiGraph]) -> MultiGraph:
    """Concatenates graphs into one graph whose `n_node` lists each. Host side.

    Edge indices are offset by the node counts before them. All graphs must have
    the same edge-set names and feature widths.
    """
    if not graphs:
        raise ValueError("graphs: expected at least one graph, got an empty sequence")
    names = sorted(graphs[0].edge_sets)
    for i, g in enumerate(graphs):
        if sorted(g.edge_sets) != names:
            raise ValueError(
                f"graphs[{i}].edge_sets: expected names {names}, got {sorted(g.edge_sets)}"
            )
    offsets = np.cumsum([0] + [g.num_nodes for g in graphs[:-1]])
    cat = np.concatenate
    edge_sets = {}
    for name in names:
        sets = [g.edge_sets[name] for g in graphs]
        edge_sets[name] = EdgeSet(
            features=cat([np.asarray(s.features) for s in sets]),
            senders=cat([np.asarray(s.senders) + o for s, o in zip(sets, offsets)]).astype(
                np.int32
            ),
            receivers=cat([np.asarray(s.receivers) + o for s, o in zip(sets, offsets)]).astype(
                np.int32
            ),
            n_edge=cat([np.asarray(s.n_edge) for s in sets]),
            mask=cat([np.asarray(s.mask) for s in sets]),
        )
    return MultiGraph(
        nodes=cat([np.asarray(g.nodes) for g in graphs]),
        edge_sets=edge_sets,
        n_node=cat([np.asarray(g.n_node) for g in graphs]),
        node_mask=cat([np.asarray(g.node_mask) for g in graphs]),
        graph_mask=cat([np.asarray(g.graph_mask) for g in graphs]),
    )


def unbatch(graph: MultiGraph, *, drop_padding: bool = True) -> list[MultiGraph]:
    """Splits a batched graph back into one graph per entry of `n_node`. Host side.

    The padding graph (graph_mask False) is dropped unless `drop_padding=False`.
    """
    n_node = np.asarray(graph.n_node)
    node_off = np.concatenate([[0], np.cumsum(n_node)])
    edge_off = {
        name: np.concatenate([[0], np.cumsum(np.asarray(es.n_edge))])
        for name, es in graph.edge_sets.items()
    }
    out = []
    for g in range(n_node.shape[0]):
        if drop_padding and not bool(np.asarray(graph.graph_mask)[g]):
            continue
        n0, n1 = node_off[g], node_off[g + 1]
        sets = {}
        for name, es in graph.edge_sets.items():
            e0, e1 = edge_off[name][g], edge_off[name][g + 1]
            sets[name] = EdgeSet(
                features=np.asarray(es.features)[e0:e1],
                senders=(np.asarray(es.senders)[e0:e1] - n0).astype(np.int32),
                receivers=(np.asarray(es.receivers)[e0:e1] - n0).astype(np.int32),
                n_edge=np.array([e1 - e0], np.int32),
                mask=np.asarray(es.mask)[e0:e1],
            )
        out.append(
            MultiGraph(
                nodes=np.asarray(graph.nodes)[n0:n1],
                edge_sets=sets,
                n_node=np.array([n1 - n0], np.int32),
                node_mask=np.asarray(graph.node_mask)[n0:n1],
                graph_mask=np.asarray(graph.graph_mask)[g : g + 1],
            )
        )
    return out


# --------------------------------------------------------------------------- padding


def bucket_size(n: int, *, multiple: int = 64, steps_per_octave: int = 4) -> int:
    """Smallest size on a geometric ladder (≤ 2^(1/steps_per_octave) waste) that is ≥ n.

    Ladder values are rounded up to `multiple`, so sizes are friendly to vector units;
    a dataset whose mesh sizes vary by 4x compiles at most 2*steps_per_octave+1 shapes.
    """
    if n <= multiple:
        return multiple
    exponent = math.ceil(math.log2(n) * steps_per_octave - 1e-9) / steps_per_octave
    size = math.ceil(2.0**exponent)
    return int(math.ceil(max(size, n) / multiple) * multiple)


class PaddingBudget(NamedTuple):
    """Static sizes a graph (batch) is padded to.

    Fields:
      n_node:  total nodes after padding, including at least one padding node.
      n_edge:  {edge set name: total edges after padding}.
      n_graph: graphs after padding, including the one padding graph.
    """

    n_node: int
    n_edge: Mapping[str, int]
    n_graph: int

    @classmethod
    def fit(
        cls,
        graph: MultiGraph,
        *,
        multiple: int = 64,
        steps_per_octave: int = 4,
        n_graph: int | None = None,
    ) -> PaddingBudget:
        """The bucket that holds `graph` (one graph or a batch) plus its padding graph."""
        return cls(
            n_node=bucket_size(
                graph.num_nodes + 1, multiple=multiple, steps_per_octave=steps_per_octave
            ),
            n_edge={
                name: bucket_size(
                    int(es.senders.shape[0]), multiple=multiple, steps_per_octave=steps_per_octave
                )
                for name, es in graph.edge_sets.items()
            },
            n_graph=n_graph if n_graph is not None else graph.num_graphs + 1,
        )

    @classmethod
    def for_dataset(
        cls,
        graphs: Sequence[MultiGraph],
        *,
        graphs_per_batch: int = 1,
        multiple: int = 64,
    ) -> PaddingBudget:
        """One budget large enough for any `graphs_per_batch` of the sample `graphs`.

        Uses the largest sample times `graphs_per_batch`, then rounds up to the ladder:
        a single compiled shape for the whole dataset (the Flax ogbg example's approach).
        """
        if not graphs:
            raise ValueError("graphs: expected at least one sample graph")
        max_nodes = max(g.num_nodes for g in graphs) * graphs_per_batch
        names = sorted(graphs[0].edge_sets)
        max_edges = {
            n: max(int(g.edge_sets[n].senders.shape[0]) for g in graphs) * graphs_per_batch
            for n in names
        }
        return cls(
            n_node=bucket_size(max_nodes + 1, multiple=multiple),
            n_edge={n: bucket_size(e, multiple=multiple) for n, e in max_edges.items()},
            n_graph=graphs_per_batch + 1,
        )


def pad(graph: MultiGraph, budget: PaddingBudget) -> MultiGraph:
    """Pads a graph (or batch) to `budget` by appending one padding graph. Host side.

    Padded nodes have zero features; padded edges have zero features and connect the
    last node (a padding node) to itself, so they only ever touch padding. Raises
    ValueError when the graph does not fit (the budget must leave ≥ 1 padding node).
    """
    num_nodes, num_graphs = graph.num_nodes, graph.num_graphs
    if budget.n_node < num_nodes + 1:
        raise ValueError(
            f"budget.n_node: expected ≥ num_nodes + 1 = {num_nodes + 1}, got {budget.n_node}"
        )
    if budget.n_graph < num_graphs + 1:
        raise ValueError(
            f"budget.n_graph: expected ≥ num_graphs + 1 = {num_graphs + 1}, got {budget.n_graph}"
        )
    if sorted(budget.n_edge) != sorted(graph.edge_sets):
        raise ValueError(
            f"budget.n_edge: expected edge sets {sorted(graph.edge_sets)}, "
            f"got {sorted(budget.n_edge)}"
        )
    extra_nodes = budget.n_node - num_nodes
    extra_graphs = budget.n_graph - num_graphs
    pad_node = budget.n_node - 1
    nodes = np.asarray(graph.nodes)

    def grow(a, extra, fill=0):
        a = np.asarray(a)
        return np.concatenate([a, np.full((extra,) + a.shape[1:], fill, a.dtype)])

    # The padding graph holds all padded nodes/edges; further padding graphs are empty.
    def counts(c, extra_items):
        return np.concatenate(
            [np.asarray(c), np.array([extra_items] + [0] * (extra_graphs - 1), np.int32)]
        )

    edge_sets = {}
    for name, es in graph.edge_sets.items():
        num_edges = int(es.senders.shape[0])
        if budget.n_edge[name] < num_edges:
            raise ValueError(
                f"budget.n_edge[{name!r}]: expected ≥ {num_edges}, got {budget.n_edge[name]}"
            )
        extra = budget.n_edge[name] - num_edges
        edge_sets[name] = EdgeSet(
            features=grow(es.features, extra),
            senders=grow(es.senders, extra, pad_node),
            receivers=grow(es.receivers, extra, pad_node),
            n_edge=counts(es.n_edge, extra),
            mask=grow(es.mask, extra, False),
        )
    return MultiGraph(
        nodes=grow(nodes, extra_nodes),
        edge_sets=edge_sets,
        n_node=counts(graph.n_node, extra_nodes),
        node_mask=grow(graph.node_mask, extra_nodes, False),
        graph_mask=grow(graph.graph_mask, extra_graphs, False),
    )


# --------------------------------------------------------------------------- jraph


def to_jraph(graph: MultiGraph, edge_set: str | None = None) -> jraph.GraphsTuple:
    """A `jraph.GraphsTuple` view of one edge set (the only one if `edge_set` is None)."""
    if edge_set is None:
        if len(graph.edge_sets) != 1:
            raise ValueError(
                f"edge_set: graph has edge sets {sorted(graph.edge_sets)}; name the one to use"
            )
        (edge_set,) = graph.edge_sets
    if edge_set not in graph.edge_sets:
        raise ValueError(f"edge_set: expected one of {sorted(graph.edge_sets)}, got {edge_set!r}")
    es = graph.edge_sets[edge_set]
    return jraph.GraphsTuple(
        nodes=graph.nodes,
        edges=es.features,
        senders=es.senders,
        receivers=es.receivers,
        n_node=graph.n_node,
        n_edge=es.n_edge,
        globals=None,
    )


def from_jraph(
    graph: jraph.GraphsTuple, *, edge_set: str = "mesh", padded: bool = False
) -> MultiGraph:
    """Converts a GraphsTuple (array nodes/edges) into a one-edge-set MultiGraph.

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
    node_mask = np.repeat(graph_mask, n_node)
    out = MultiGraph(
        nodes=np.asarray(graph.nodes),
        edge_sets={
            edge_set: EdgeSet(
                features=np.asarray(graph.edges),
                senders=np.asarray(graph.senders).astype(np.int32),
                receivers=np.asarray(graph.receivers).astype(np.int32),
                n_edge=n_edge,
                mask=np.repeat(graph_mask, n_edge),
            )
        },
        n_node=n_node,
        node_mask=node_mask,
        graph_mask=graph_mask,
    )
    return out.validate()
