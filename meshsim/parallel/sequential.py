"""Sequential partitions on one device: the network on P parts of a graph in turn.

X-MeshGraphNet's idea (Nabian et al., 2024) without extra devices: the output node
set is cut into P parts by recursive coordinate bisection (`partition_nodes`), and
each part is widened by its **K-hop halo**, K = the message-passing steps the network
runs between input and output (the sum of its stages' steps). A part keeps

* every node (of any node set) from which an owned node can be reached along at
  most K edges (of any edge set), and
* every edge whose receiver is within K − 1 hops of an owned node (its sender is
  then within K hops, so it is kept too).

An owned node's output after K steps depends only on what lies within K hops of it
(each step moves information one edge along), and every message that reaches it
within K steps is computed inside the part: by induction, after step l every kept
node within K − l hops holds the full graph's latent (all of its incoming edges are
kept and their senders are exact one step earlier). Owned rows therefore equal the
full graph's rows to float rounding (only the matmul blocking and the order of the
parameter-gradient sums differ), with no halo exchange at all; the price is that
halo nodes are recomputed by every part that holds them.

`SequentialPartition.apply` gathers each part's inputs from the global graph, runs
the unchanged network on the P padded local graphs one after another (`lax.scan`),
each under `jax.checkpoint`, and takes every owned row back to global order. The
backward pass recomputes one part's forward at a time, so the activation memory of
a training step is about one part's (plus the small global inputs and outputs), and
the parameter gradient is the sum of the parts' shares, i.e. the full graph's.

Exact for any network whose steps pass messages along the graph's edges only (the
interaction and transformer blocks of `meshsim.models`, any node and edge sets).
Host side construction; `apply` is jit-safe and vmappable.

Trajectories on different meshes (`make_per_mesh_sequential_partition`): every
distinct mesh is cut once, all parts padded to one common budget
(`meshsim.parallel.per_mesh`), and `attach_parts` puts each example's own
`SequentialParts` in its structure (`MultiGraph.parts`), which `apply` reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from meshsim.graph import MultiGraph
from meshsim.graph.padding import PaddingBudget, pad
from meshsim.graph.window import Window
from meshsim.parallel import per_mesh
from meshsim.parallel.bisection import partition_nodes
from meshsim.parallel.partition import subgraph
from meshsim.parallel.partition_cache import PartitionCache, cached_parts
from meshsim.validation import check_int


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SequentialParts:
    """P padded local graphs with K-hop halos, stacked on a leading part axis.

    A pytree (arrays are leaves; sizes and names are static).

    Fields:
      graph:        MultiGraph whose every leaf has a leading [P] axis: part p's local
                    graph, padded to one budget (N_local_s rows per node set, E_local_k
                    per edge set, 2 graphs: the part and the padding graph).
      node_index:   {node set: [P, N_local_s] int32} global index of each local row;
                    -1 for padding rows. Rows: the owned nodes of the output node set
                    first (ascending), then the halo (ascending).
      edge_index:   {edge set: [P, E_local_k] int32} global index of each local edge;
                    -1 for padding edges.
      owner_flat:   [N_out] int32 owner part · N_local + local row of each global node
                    of the output node set: its row in the flattened [P · N_local] outputs
                    (-1 past the mesh's nodes when padded to a larger mesh's count).
      num_nodes:    ((node set, N_s), ...) global node counts (static; the largest of
                    several meshes' when padded to a common budget).
      num_parts:    P (static).
      hops:         K, the halo width in hops (static).
      output_node_set: the node set that is cut and whose rows are kept (static).
    """

    graph: MultiGraph
    node_index: Mapping[str, Any]
    edge_index: Mapping[str, Any]
    owner_flat: Any
    num_nodes: tuple[tuple[str, int], ...] = dataclasses.field(metadata=dict(static=True))
    num_parts: int = dataclasses.field(metadata=dict(static=True))
    hops: int = dataclasses.field(metadata=dict(static=True))
    output_node_set: str = dataclasses.field(metadata=dict(static=True))

    def num_local(self, node_set: str | None = None) -> int:
        """N_local: rows of each part's `node_set` (default: the output set), padding included."""
        return int(self.node_index[node_set or self.output_node_set].shape[1])

    def sizes(self) -> dict[str, tuple[int, ...]]:
        """{"owned": …, "nodes": …, "edges": …} per part (tuples of length P): owned
        output nodes, real nodes over all node sets, real edges over all edge sets.
        Host side."""
        index = {k: np.asarray(v) for k, v in self.node_index.items()}
        total = lambda d: tuple(int(c) for c in sum((v >= 0).sum(1) for v in d.values()))
        owner = np.asarray(self.owner_flat)
        owner = owner[owner >= 0] // self.num_local()
        owned = tuple(int(c) for c in np.bincount(owner, minlength=self.num_parts))
        edges = {k: np.asarray(v) for k, v in self.edge_index.items()}
        return {"owned": owned, "nodes": total(index), "edges": total(edges)}


def message_passing_hops(model: Any, structure: MultiGraph) -> int:
    """K: the message-passing steps of `model` on `structure` (Σ of its stages' steps),
    the hops an output row can see. A model without `resolved_stages` is refused."""
    if not hasattr(model, "resolved_stages"):
        raise ValueError(
            f"model: sequential partitions need a staged network (EncodeProcessDecode) "
            f"to count its message-passing steps, got {type(model).__name__}"
        )
    return int(sum(stage.steps for stage in model.resolved_stages(structure)))


def _reach(structure: MultiGraph, offsets: dict[str, int], total: int, seeds, hops: int):
    """([total, P] bool within `hops`, [total, P] bool within `hops` − 1 (`seeds` for
    hops 0)): nodes (all sets, flattened by `offsets`) from which a seed of part p
    (`seeds` [total, P] bool) is reachable along at most that many edges."""
    from scipy import sparse

    rows, cols = [], []
    for es in structure.edge_sets.values():
        rows.append(np.asarray(es.senders, np.int64) + offsets[es.sender])
        cols.append(np.asarray(es.receivers, np.int64) + offsets[es.receiver])
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    back = sparse.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(total, total))
    x = previous = sparse.csr_matrix(seeds.astype(np.float32))
    for _ in range(hops):
        previous, x = x, x + back @ x
        x.data[:] = 1.0
    return x.toarray() > 0, previous.toarray() > 0


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


def sequential_parts(
    structure: MultiGraph,
    positions: Any,
    num_parts: int,
    hops: int,
    *,
    output_node_set: str,
    multiple: int = 8,
    budget: PaddingBudget | None = None,
) -> SequentialParts:
    """Cuts `structure`'s output node set into `num_parts` parts with `hops`-hop halos.

    Args:
      structure: one unpadded graph (the structure every example shares).
      positions: [N_out, D] float positions of the output node set's nodes.
      num_parts: P ≥ 1, at most the output node set's node count.
      hops: K ≥ 0, the network's message-passing steps (`message_passing_hops`).
      output_node_set: the node set whose rows the network outputs.
      multiple: local budgets are rounded up to a multiple of this.
      budget: local budgets of at least these sizes (one budget for several meshes).

    Returns:
      `SequentialParts`. Host side; O(K · (N + E) · halo overlap) time.

    Raises:
      ValueError: naming the argument that is out of range or malformed.
    """
    plan = _checked_plan(structure, positions, num_parts, hops, output_node_set)
    return _assemble(structure, plan, multiple=multiple, budget=budget)


def _checked_plan(structure, positions, num_parts, hops, output_node_set, cache=None) -> _Plan:
    """`sequential_parts`' arguments checked, and their `_Plan` (the parts read from
    `cache`, a `PartitionCache`, when it holds them)."""
    if not isinstance(structure, MultiGraph):
        raise TypeError(f"structure: expected MultiGraph, got {type(structure).__name__}")
    structure.validate()
    if structure.num_graphs != 1:
        raise ValueError(f"structure: expected one unpadded graph, got {structure.num_graphs}")
    if output_node_set not in structure.node_sets:
        raise ValueError(
            f"output_node_set: expected one of {sorted(structure.node_sets)}, "
            f"got {output_node_set!r}"
        )
    n_out = structure.num_nodes(output_node_set)
    p_count = check_int("num_parts", num_parts, minimum=1, expected="a positive int")
    if p_count > n_out:
        raise ValueError(
            f"num_parts: expected at most the {n_out} nodes of node set "
            f"{output_node_set!r} (every part owns ≥ 1 node), got {p_count}"
        )
    k = check_int("hops", hops, minimum=0)
    pos = np.asarray(positions)
    if pos.ndim != 2 or pos.shape[0] != n_out:
        raise ValueError(f"positions: expected shape [{n_out}, D], got {pos.shape}")
    cut = lambda: {output_node_set: partition_nodes(pos, p_count)}
    points = {output_node_set: pos}
    parts = cached_parts(cache, "sequential", p_count, points, cut)[output_node_set]
    return _plan(structure, parts, p_count, k, output_node_set)


class _Plan(NamedTuple):
    """Which rows and edges each part of a mesh holds (`sequential_parts` before its
    local graphs are built)."""

    parts: np.ndarray  # [N_out] int part of each output node
    node_rows: dict  # {node set: [P arrays of global rows, owned output rows first]}
    edge_rows: dict  # {edge set: [P arrays of global edges]}
    num_parts: int
    hops: int
    output_node_set: str


def _plan(structure: MultiGraph, parts: np.ndarray, p_count: int, k: int, output_node_set: str):
    """The `_Plan` of validated arguments: each part's nodes within `k` hops of its
    owned output nodes, and the edges into nodes within k − 1 hops."""
    names = sorted(structure.node_sets)
    n_out = structure.num_nodes(output_node_set)
    offsets, total = {}, 0
    for s in names:
        offsets[s], total = total, total + structure.num_nodes(s)
    seeds = np.zeros((total, p_count), bool)
    seeds[offsets[output_node_set] + np.arange(n_out), parts] = True
    kept, inner = _reach(structure, offsets, total, seeds, k)  # ≤ K hops; ≤ K − 1 hops

    node_rows, edge_rows = {s: [] for s in names}, {e: [] for e in structure.edge_sets}
    for p in range(p_count):
        for s in names:
            idx = np.flatnonzero(kept[offsets[s] : offsets[s] + structure.num_nodes(s), p])
            if s == output_node_set:  # owned rows first, then the halo
                own = parts[idx] == p
                idx = np.concatenate([idx[own], idx[~own]])
            node_rows[s].append(idx)
        for e, es in structure.edge_sets.items():
            receivers = np.asarray(es.receivers, np.int64) + offsets[es.receiver]
            keep = inner[receivers, p] if k > 0 else np.zeros(receivers.size, bool)
            edge_rows[e].append(np.flatnonzero(keep))
    return _Plan(parts, node_rows, edge_rows, p_count, k, output_node_set)


def _plan_budget(plan: _Plan, multiple: int = 8) -> PaddingBudget:
    """The local budgets of a plan's parts: its largest part's rows (+ 1 padding row)
    and edges, rounded up to `multiple`."""
    return PaddingBudget(
        n_node={
            s: _round_up(max(r.size for r in rows) + 1, multiple)
            for s, rows in plan.node_rows.items()
        },
        n_edge={e: _round_up(max(r.size for r in v), multiple) for e, v in plan.edge_rows.items()},
        n_graph=2,
    )


def _assemble(
    structure: MultiGraph, plan: _Plan, *, multiple: int = 8, budget: PaddingBudget | None = None
) -> SequentialParts:
    """The `SequentialParts` of a plan, local budgets at least `budget`'s."""
    names = sorted(structure.node_sets)
    node_rows, edge_rows, parts = plan.node_rows, plan.edge_rows, plan.parts
    p_count, k, output_node_set = plan.num_parts, plan.hops, plan.output_node_set
    n_out = structure.num_nodes(output_node_set)
    budget = _plan_budget(plan, multiple).at_least(budget)
    n_local, n_edge = budget.n_node, budget.n_edge

    node_index = {s: np.full((p_count, n_local[s]), -1, np.int32) for s in names}
    edge_index = {e: np.full((p_count, n_edge[e]), -1, np.int32) for e in n_edge}
    owner_flat = np.zeros(n_out, np.int32)
    local_graphs = []
    for p in range(p_count):
        rows = {s: node_rows[s][p] for s in names}
        for s in names:
            node_index[s][p, : rows[s].size] = rows[s]
        owned = node_rows[output_node_set][p][: int((parts == p).sum())]
        owner_flat[owned] = p * n_local[output_node_set] + np.arange(owned.size)
        for e in structure.edge_sets:
            edge_index[e][p, : edge_rows[e][p].size] = edge_rows[e][p]
        local = subgraph(structure, rows, {e: edge_rows[e][p] for e in structure.edge_sets})
        local_graphs.append(pad(local, budget))
    stacked = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *local_graphs)
    return SequentialParts(
        graph=stacked,
        node_index=node_index,
        edge_index=edge_index,
        owner_flat=owner_flat,
        num_nodes=tuple((s, structure.num_nodes(s)) for s in names),
        num_parts=p_count,
        hops=k,
        output_node_set=output_node_set,
    )


def _take(x: jax.Array, index: jax.Array) -> jax.Array:
    """x [N, ...] rows by index [P, L] (-1: padding, 0 there) -> [P, L, ...]."""
    flat = index.reshape(-1)
    rows = jnp.take(x, jnp.maximum(flat, 0), axis=0)
    rows = jnp.where((flat >= 0).reshape((-1,) + (1,) * (x.ndim - 1)), rows, 0)
    return rows.reshape(index.shape + x.shape[1:])


@dataclasses.dataclass(frozen=True, eq=False)
class SequentialPartition:
    """A simulator's network run on P parts in turn on one device (`Simulator.partition`).

    Same interface as `meshsim.parallel.graph_parallel.GraphPartition`: inputs, targets
    and losses stay in the global node order; `apply` runs the network part by part.
    Hashed by identity (a static part of the simulator).

    Attributes:
      parts: the parts of the shared, unpadded structure (`sequential_parts`); with
        several meshes, the first mesh's in the common budget (a shape template).
      checkpoint: recompute each part's forward in the backward pass (True: activation
        memory of one part; False: XLA keeps every part's residuals, as the full graph).
      meshes: None for a shared structure; else every mesh's parts in one common
        budget, which `attach_parts` puts in the examples of a batch.
      index: {`per_mesh.mesh_fingerprint`: position in `meshes`}.
    """

    parts: SequentialParts
    checkpoint: bool = True
    meshes: tuple[SequentialParts, ...] | None = None
    index: Mapping[bytes, int] | None = None

    def attach_parts(self, batch: Window) -> Window:
        """`batch` with each example's parts in its structure (`MultiGraph.parts`,
        stacked [B, P, ...]) when the examples lie on several meshes; unchanged for a
        shared structure. Host side; ValueError naming an example whose mesh was not
        cut."""
        if self.meshes is None:
            return batch
        meshes = per_mesh.example_meshes(batch.graph, self.index)
        parts = per_mesh.stack([self.meshes[m] for m in meshes])
        return batch._replace(graph=batch.graph.replace(parts=parts))

    def apply(self, model: Any, params: Any, graph: MultiGraph) -> jax.Array:
        """The network on one example `graph` (global layout, normalized features, padded
        or not); returns [N_out, output_size] like `model.apply(params, graph)` on the real
        nodes (padding rows 0). Jit-safe; vmappable over examples."""
        sp = self.parts if graph.parts is None else graph.parts
        if model.output_node_set != sp.output_node_set:
            raise ValueError(
                f"model.output_node_set: the parts were cut on {sp.output_node_set!r}, "
                f"got {model.output_node_set!r}"
            )
        if self.meshes is not None and graph.parts is None:
            raise ValueError("graph.parts: expected the example's parts (`attach_parts`)")
        features = graph.features()
        nodes = {s: _take(x, sp.node_index[s]) for s, x in features.nodes.items()}
        edges = {e: _take(x, sp.edge_index[e]) for e, x in features.edges.items()}
        local = sp.graph.replace(
            node_sets={s: ns.replace(features=nodes[s]) for s, ns in sp.graph.node_sets.items()},
            edge_sets={e: es.replace(features=edges[e]) for e, es in sp.graph.edge_sets.items()},
        )

        def one_part(params, part: MultiGraph) -> jax.Array:
            return model.apply(params, part)  # [N_local, F]

        if self.checkpoint:
            one_part = jax.checkpoint(one_part)

        def body(carry, part):
            return carry, one_part(params, part)

        _, out = jax.lax.scan(body, None, local)  # [P, N_local, F]
        flat = out.reshape((-1,) + out.shape[2:])  # [P · N_local, F]
        result = _take(flat, sp.owner_flat[None])[0]  # [N_out, F]; 0 past the mesh's nodes
        rows = graph.node_sets[sp.output_node_set].features.shape[0]
        return jnp.pad(result[:rows], ((0, max(rows - result.shape[0], 0)), (0, 0)))


def make_sequential_partition(
    model: Any,
    structure: MultiGraph,
    positions: Mapping[str, Any],
    num_parts: int,
    *,
    checkpoint: bool = True,
    cache: PartitionCache | None = None,
) -> SequentialPartition:
    """The sequential partition of `structure` for `model` (`parallel.partitions`). Host side.

    Args:
      model: the staged network (its output node set is cut; its steps set the halo).
      structure: one unpadded graph (the structure every example shares).
      positions: {node set: [N_s, D] float} node positions (`Task.partition_positions`);
        only the output node set's are read.
      num_parts: P ≥ 1 parts.
      checkpoint: as in `SequentialPartition`.
      cache: where the mesh's parts are read from, or stored once cut (optional).

    Raises:
      ValueError: naming `parallel.partitions` when P exceeds the output nodes, or the
        argument that is malformed.
    """
    parts = _assemble(structure, _cut_plan(model, structure, positions, num_parts, cache))
    return SequentialPartition(parts=parts, checkpoint=checkpoint)


def _cut_plan(model, structure, positions, num_parts, cache=None) -> _Plan:
    """The `_Plan` of one mesh's parts for `model` (`make_sequential_partition`'s checks)."""
    out_set = getattr(model, "output_node_set", None)
    if out_set not in positions:
        raise ValueError(
            f"positions: expected the output node set {out_set!r}, got {sorted(positions)}"
        )
    hops = message_passing_hops(model, structure)
    try:
        return _checked_plan(structure, positions[out_set], num_parts, hops, out_set, cache)
    except ValueError as e:
        if str(e).startswith("num_parts"):
            raise ValueError(f"parallel.partitions={num_parts}: {e}") from e
        raise


def _padded(parts: SequentialParts, num_nodes: dict[str, int]) -> SequentialParts:
    """`parts` claiming the common node counts, `owner_flat` padded with -1 to them."""
    out_set = parts.output_node_set
    owner = np.asarray(parts.owner_flat)
    owner = np.pad(owner, (0, num_nodes[out_set] - owner.size), constant_values=-1)
    return dataclasses.replace(
        parts, owner_flat=owner.astype(np.int32), num_nodes=tuple(sorted(num_nodes.items()))
    )


def make_per_mesh_sequential_partition(
    model: Any,
    meshes: Sequence[tuple[MultiGraph, Mapping[str, Any]]],
    num_parts: int,
    *,
    checkpoint: bool = True,
    cache: PartitionCache | None = None,
) -> SequentialPartition:
    """Sequential partitions of several meshes, all padded to one common budget, for a
    dataset whose trajectories lie on different meshes. Host side.

    Args:
      model, num_parts, checkpoint, cache: as in `make_sequential_partition`.
      meshes: [(structure, positions)] per distinct mesh (`per_mesh.MeshCatalog.meshes`).
    """
    if not meshes:
        raise ValueError("meshes: expected at least one mesh, got none")
    plans = [_cut_plan(model, s, p, num_parts, cache) for s, p in meshes]  # each mesh cut once
    budget = per_mesh.common_budget([_plan_budget(plan) for plan in plans])
    counts = {
        s: max(structure.num_nodes(s) for structure, _ in meshes) for s in meshes[0][0].node_sets
    }
    cut = tuple(
        _padded(_assemble(structure, plan, budget=budget), counts)
        for (structure, _), plan in zip(meshes, plans)
    )
    return SequentialPartition(
        parts=cut[0],
        checkpoint=checkpoint,
        meshes=cut,
        index={per_mesh.mesh_fingerprint(s): i for i, (s, _) in enumerate(meshes)},
    )


__all__ = [
    "SequentialPartition",
    "SequentialParts",
    "make_per_mesh_sequential_partition",
    "make_sequential_partition",
    "message_passing_hops",
    "sequential_parts",
]
