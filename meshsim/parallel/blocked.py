"""Graph parallelism with sharded inputs: examples in the blocked layout, parts on devices.

`GraphPartition` (graph_parallel.py) keeps a training example in global node order,
replicated on every device of GRAPH_AXIS, and scatters it to the parts inside the
network. Here the example itself is cut: `BlockedPartition.block_batch` renumbers a
batch on the host into the blocked layout (`graph_parallel.blocked_graph`: part p's
owned nodes fill rows [p·R, (p+1)·R) of each node set, then padding; its edges, by
receiver, rows [p·C, (p+1)·C) of each edge set), and `blocked_batch_shardings` split
those axes over GRAPH_AXIS. Each device then holds only its own part's fields,
targets, loss weights and edges: no array over the whole mesh's nodes sits on every
device. Everything outside the network (noise, graph features, normalisation,
targets, the masked loss) is elementwise or a masked sum, which `jit` keeps sharded
(sums become all-reduces; the edge features' gathers of sender positions across
parts become collectives of those few columns).

Inside the network (`BlockedPartition.apply`, under `shard_map` over GRAPH_AXIS) a
part moves its block into the local layout of `partition.partition_graph` (owned rows
first, in the same ascending global order as the block, then the halo), fills the
halo rows of its *inputs* from their owners with the same exchange the latents use,
runs the unchanged network with halo exchange after every step, and returns its owned
rows in block order. A halo copy therefore always equals its owner (training noise
included, since the noise is drawn on the owner's row), the outputs equal the
unpartitioned network's to float rounding, and gradients flow back through the
exchanges to the owners.

Trajectories on different meshes (`make_per_mesh_blocked_partition`): every distinct
mesh of the training data is cut once, all of their layouts and tables padded to one
common budget (`meshsim.parallel.per_mesh`). `block_batch` then lays each example out
by its own mesh's partition and puts that mesh's `BlockedTables` in the example's
structure (`MultiGraph.parts`, stacked `[B, K, ...]` and split over DATA_AXIS and
GRAPH_AXIS), which `apply` reads instead of the constants of a shared mesh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from meshsim.graph import GraphFeatures, MultiGraph, PaddingBudget
from meshsim.graph.window import NODE_INDEX, Window, graph_batch_axis
from meshsim.parallel import per_mesh
from meshsim.parallel.graph_parallel import (
    _blocked_budget,
    _blocked_graph,
    _first,
    cut_for_mesh,
    local_apply,
    make_halo_exchange,
)
from meshsim.parallel.partition import (
    HaloTables,
    PartitionedGraph,
    Round,
    _halo_plan,
    _HaloPlan,
    _local_budget,
    _partition_graph,
    validate_parts,
)
from meshsim.parallel.partition_cache import PartitionCache
from meshsim.parallel.partition_fields import _to_parts
from meshsim.parallel.sharding import DATA_AXIS, GRAPH_AXIS, graph_shardings


def _owned_rows(count: np.ndarray, rows: int) -> np.ndarray:
    """[K, rows] int32: row r of part p is row r of the other layout while r < count[p]
    (owned rows come first in both the block and the local layout, in the same order),
    -1 (a zero row, `partition_fields`' convention) after."""
    r = np.arange(rows)[None, :]
    return np.where(r < count[:, None], r, -1).astype(np.int32)


def _rows(x: jax.Array, index: jax.Array) -> jax.Array:
    """x [R, ...] → [L, ...] by `index` [L] int (-1: a zero row). Jit-safe."""
    return _to_parts(x, index, None, 0, "rows")


class BlockedTables(NamedTuple):
    """What the network needs of one mesh's partition; every leaf has a leading [K] axis
    (a further leading [B] when a batch carries one per example).

    Fields:
      local: the parts' local graphs (structure only, `PartitionedGraph.graph`).
      halo: {node set: HaloTables}.
      node_rows: {node set: [K, N_local_s] int32} block row of each local row (-1: zero).
      edge_rows: {edge set: [K, E_local_e] int32} block row of each local edge (-1: zero).
      out_rows: {node set: [K, R_s] int32} local row of each block row (-1: zero).
    """

    local: MultiGraph
    halo: Mapping[str, HaloTables]
    node_rows: Mapping[str, Any]
    edge_rows: Mapping[str, Any]
    out_rows: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, eq=False)
class BlockedMesh:
    """One mesh cut for the blocked layout. Host side (numpy).

    Attributes:
      pgraph: its partition (statistics; the tables come from it).
      structure: the mesh in the blocked layout (`blocked_graph`), one graph.
      source: {node set: [K·R_s] int64} the mesh node of each blocked row, -1 for padding.
      tables: its `BlockedTables`.
    """

    pgraph: PartitionedGraph
    structure: MultiGraph
    source: Mapping[str, np.ndarray]
    tables: BlockedTables


def _cut_mesh(
    structure: MultiGraph,
    parts: Mapping[str, np.ndarray],
    k: int,
    plan: _HaloPlan,
    local: PaddingBudget | None = None,
    block: PaddingBudget | None = None,
) -> BlockedMesh:
    """`structure` cut by validated `parts` (`validate_parts`) into K parts, whose
    `_halo_plan` is `plan`: local graphs at least `local`'s sizes, blocks (rows R_s,
    edges C_e per part) at least `block`'s."""
    pgraph = _partition_graph(structure, parts, k, plan, budget=local)
    blocked, new_row = _blocked_graph(structure, parts, k, budget=block)
    source = {}
    for s, rows in new_row.items():
        source[s] = np.full(blocked.num_nodes(s), -1, np.int64)
        source[s][rows] = np.arange(rows.size)
    stats = pgraph.stats()
    owned = {s: np.asarray(stats.owned[s]) for s in structure.node_sets}
    tables = BlockedTables(
        local=pgraph.graph,
        halo=dict(pgraph.halo),
        node_rows={s: _owned_rows(c, pgraph.num_local(s)) for s, c in owned.items()},
        edge_rows={
            e: _owned_rows(np.asarray(stats.edges[e]), pgraph.edge_index[e].shape[1])
            for e in structure.edge_sets
        },
        out_rows={s: _owned_rows(c, blocked.num_nodes(s) // k) for s, c in owned.items()},
    )
    return BlockedMesh(pgraph=pgraph, structure=blocked, source=source, tables=tables)


@dataclasses.dataclass(frozen=True, eq=False)
class BlockedPartition:
    """A simulator's network on examples in the blocked layout (`Simulator.partition`).

    Build with `make_blocked_partition` (every example on one mesh: its tables are
    constants of the step) or `make_per_mesh_blocked_partition` (examples on several
    meshes: each batch carries its examples' tables). Hashed by identity (a static
    part of the simulator).

    Attributes:
      meshes: the cut meshes (one for a shared mesh), all in one common layout.
      index: {`per_mesh.mesh_fingerprint`: position in `meshes`}.
      node_set: the node set a window's fields live on.
      mesh: a mesh with a GRAPH_AXIS of K devices.
      method: halo exchange, "all_gather" or "ppermute".
      rounds: {node set: ppermute rounds} the tables' rounds (static).
      structure: a shared mesh's blocked structure on the device mesh, its node and
        edge axes split over GRAPH_AXIS; None for several meshes.
      tables: a shared mesh's `BlockedTables`, split over GRAPH_AXIS; None for several
        meshes (the batch carries them).
    """

    meshes: tuple[BlockedMesh, ...]
    index: Mapping[bytes, int]
    node_set: str
    mesh: Mesh
    method: str
    rounds: Mapping[str, tuple[Round, ...]]
    structure: MultiGraph | None
    tables: BlockedTables | None

    @property
    def num_parts(self) -> int:
        return self.pgraph.num_parts

    @property
    def pgraph(self) -> PartitionedGraph:
        """The first mesh's partition (the only one for a shared mesh)."""
        return self.meshes[0].pgraph

    @property
    def source(self) -> Mapping[str, np.ndarray]:
        """{node set: [K·R_s]} the first mesh's node of each blocked row (-1: padding)."""
        return self.meshes[0].source

    @property
    def shared(self) -> bool:
        """True when every example lies on one mesh (the tables are constants)."""
        return self.structure is not None

    # ------------------------------------------------------------------ host side

    def block_fields(
        self, fields: Mapping[str, Any], *, axis: int = 0, mesh: int = 0
    ) -> dict[str, np.ndarray]:
        """Per-node arrays of `node_set` on mesh number `mesh` from global order
        ([..., N(+padding), ...] at `axis`) to the blocked layout ([..., K·R, ...];
        padding rows 0). Host side."""
        cut = self.meshes[mesh]
        src = cut.source[self.node_set]
        n = cut.pgraph.parts[self.node_set].shape[0]
        out = {}
        for name, x in fields.items():
            x = np.asarray(x)
            if x.shape[axis] < n:
                raise ValueError(
                    f"fields[{name!r}]: expected at least {n} rows (the partitioned mesh's "
                    f"nodes) on axis {axis}, got shape {x.shape}"
                )
            out[name] = _to_parts(x, src, None, axis, f"fields[{name!r}]")
        return out

    def block_batch(self, batch: Window) -> Window:
        """A batch (fields [B, N_pad, ...], structure stacked or shared, padded or not)
        in the blocked layout: fields [B, K·R, ...] plus the field `NODE_INDEX` [B, K·R]
        (each row's mesh node, -1 for padding; per-node noise follows it), and the
        blocked structure: shared for one mesh, else stacked per example with each
        example's `BlockedTables` in its `parts`. Host side; every example must lie on
        a partitioned mesh (ValueError naming the first that does not)."""
        if not self.shared:
            return self._block_per_example(batch)
        if graph_batch_axis(batch) == 0:
            mask = np.asarray(batch.graph.node_sets[self.node_set].mask)  # [B, N_pad]
            n = self.pgraph.parts[self.node_set].shape[0]
            if not (mask[:, :n].all() and not mask[:, n:].any()):
                raise ValueError(
                    f"batch: expected every example on the partitioned mesh ({n} nodes of "
                    f"{self.node_set!r}), got real-node counts {mask.sum(1).tolist()}"
                )
        fields = self.block_fields(batch.fields, axis=1)
        index = self.source[self.node_set].astype(np.int32)  # [K·R], -1 for padding
        size = next(iter(fields.values())).shape[0]
        fields[NODE_INDEX] = np.broadcast_to(index, (size, index.size)).copy()
        return Window(graph=self.structure, fields=fields)

    def _block_per_example(self, batch: Window) -> Window:
        meshes = per_mesh.example_meshes(batch.graph, self.index)
        examples, graphs = [], []
        for b, m in enumerate(meshes):
            one = {k: np.asarray(v)[b] for k, v in batch.fields.items()}
            cut = self.meshes[m]
            fields = self.block_fields(one, mesh=m)
            fields[NODE_INDEX] = cut.source[self.node_set].astype(np.int32)
            examples.append(fields)
            graphs.append(cut.structure.replace(parts=cut.tables))
        return Window(graph=per_mesh.stack(graphs), fields=per_mesh.stack(examples))

    def unblock(self, x, node_set: str | None = None, *, axis: int = 0, mesh: int = 0):
        """Blocked rows of mesh number `mesh` ([..., K·R, ...] at `axis`) back to global
        order [..., N, ...]."""
        node_set = self.node_set if node_set is None else node_set
        src = self.meshes[mesh].source[node_set]
        real = np.flatnonzero(src >= 0)
        order = np.argsort(src[real])
        return np.take(np.asarray(x), real[order], axis=axis)

    # ------------------------------------------------------------------ in the step

    def apply(self, model: Any, params: Any, graph: MultiGraph) -> jax.Array:
        """The network on one example in the blocked layout (node sets [K·R_s, F], edge
        sets [K·C_e, F], normalized features; its `parts` the example's tables when
        the examples lie on several meshes); returns [K·R_out, output_size] in block
        order, padding rows 0, split over GRAPH_AXIS. Jit-safe; vmappable."""
        features = graph.features()
        tables = self.tables if graph.parts is None else graph.parts
        if tables is None:
            raise ValueError("graph.parts: expected the example's tables (`block_batch`)")
        out_set = model.output_node_set
        spec, rounds, method = PartitionSpec(GRAPH_AXIS), dict(self.rounds), self.method

        def body(params, nodes, edges, t: BlockedTables):
            t = _first(t)
            x = {s: _rows(block, t.node_rows[s]) for s, block in nodes.items()}  # halo rows 0
            e = {k: _rows(block, t.edge_rows[k]) for k, block in edges.items()}
            exchange = make_halo_exchange(t.halo, rounds, method=method)
            x = exchange(x, tuple(x))  # the inputs' halo rows from their owners
            out = local_apply(
                model,
                params,
                t.local.with_features(GraphFeatures(nodes=x, edges=e)),
                t.halo,
                rounds,
                method=method,
            )
            return _rows(out, t.out_rows[out_set])  # [R_out, F_out]

        run = jax.shard_map(
            body,
            mesh=self.mesh,
            in_specs=(PartitionSpec(), spec, spec, spec),
            out_specs=spec,
            axis_names=frozenset({GRAPH_AXIS}),
        )
        return run(params, dict(features.nodes), dict(features.edges), tables)


def _check_node_set(structure: MultiGraph, node_set: str) -> None:
    if node_set not in structure.node_sets:
        raise ValueError(
            f"node_set: expected one of {sorted(structure.node_sets)}, got {node_set!r}"
        )


def make_blocked_partition(
    structure: MultiGraph,
    positions: Mapping[str, Any],
    mesh: Mesh,
    *,
    node_set: str,
    method: str = "all_gather",
    cache: PartitionCache | None = None,
) -> BlockedPartition:
    """Cuts `structure` into the mesh's GRAPH_AXIS size of parts (recursive coordinate
    bisection of `positions`) and places the blocked structure and the parts' tables on
    the mesh, split over GRAPH_AXIS. Host side.

    Args:
      structure: one unpadded graph (the structure every example shares).
      positions: {node set: [N_s, D] float} positions of every node set.
      mesh: the run's device mesh.
      node_set: the node set a window's fields live on (`Task.node_set`).
      method: "all_gather" or "ppermute".
      cache: where the mesh's parts are read from, or stored once cut (optional).
    """
    _check_node_set(structure, node_set)
    k, parts = cut_for_mesh(structure, positions, mesh, method, cache)
    parts = validate_parts(structure, parts, k)
    cut = _cut_mesh(structure, parts, k, _halo_plan(structure, parts, k))
    split = NamedSharding(mesh, PartitionSpec(GRAPH_AXIS))
    return BlockedPartition(
        meshes=(cut,),
        index={per_mesh.mesh_fingerprint(structure): 0},
        node_set=node_set,
        mesh=mesh,
        method=method,
        rounds=dict(cut.pgraph.rounds),
        structure=jax.device_put(cut.structure, graph_shardings(cut.structure, mesh)),
        tables=jax.device_put(cut.tables, split),
    )


def make_per_mesh_blocked_partition(
    meshes: Sequence[tuple[MultiGraph, Mapping[str, Any]]],
    mesh: Mesh,
    *,
    node_set: str,
    method: str = "all_gather",
    cache: PartitionCache | None = None,
) -> BlockedPartition:
    """Cuts each of several meshes into the mesh's GRAPH_AXIS size of parts, in one
    common layout (every mesh's blocks, local graphs and halo tables padded to the
    largest), for a dataset whose trajectories lie on different meshes. Host side.

    Args:
      meshes: [(structure, positions)] one unpadded graph and its {node set: [N_s, D]}
        positions per distinct mesh (`per_mesh.MeshCatalog.meshes`).
      mesh, node_set, method, cache: as in `make_blocked_partition`.
    """
    if not meshes:
        raise ValueError("meshes: expected at least one mesh, got none")
    planned, local, block = [], [], []
    for structure, positions in meshes:  # the sizes first: each mesh is planned once
        _check_node_set(structure, node_set)
        k, parts = cut_for_mesh(structure, positions, mesh, method, cache)
        parts = validate_parts(structure, parts, k)
        plan = _halo_plan(structure, parts, k)
        planned.append((parts, plan))
        local.append(_local_budget(plan))
        block.append(_blocked_budget(structure, parts, k))
    local, block = per_mesh.common_budget(local), per_mesh.common_budget(block)
    cuts = [
        _cut_mesh(structure, parts, k, plan, local, block)
        for (structure, _), (parts, plan) in zip(meshes, planned)
    ]
    rounds = {s: per_mesh.full_rounds(k) for s in cuts[0].structure.node_sets}
    for s in rounds:
        mine = [dict(c.pgraph.rounds)[s] for c in cuts]
        halo, send, widths = per_mesh.table_widths([c.tables.halo[s] for c in cuts], mine, k)
        for i, c in enumerate(cuts):
            padded = per_mesh.pad_halo_tables(
                c.tables.halo[s],
                mine[i],
                k=k,
                n_local=local.n_node[s],
                halo=halo,
                send=send,
                widths=widths,
            )
            tables = c.tables._replace(halo={**c.tables.halo, s: padded})
            cuts[i] = dataclasses.replace(c, tables=tables)
    return BlockedPartition(
        meshes=tuple(cuts),
        index={per_mesh.mesh_fingerprint(s): i for i, (s, _) in enumerate(meshes)},
        node_set=node_set,
        mesh=mesh,
        method=method,
        rounds=rounds,
        structure=None,
        tables=None,
    )


def blocked_batch_shardings(batch: Window, mesh: Mesh) -> Window:
    """Shardings of a batch in the blocked layout: fields [B, K·R, ...] split over
    DATA_AXIS (examples) and GRAPH_AXIS (nodes); a shared structure's node and edge
    axes over GRAPH_AXIS (`sharding.graph_shardings`); a structure stacked per example
    (several meshes) over DATA_AXIS and, for its node, edge and table axes, GRAPH_AXIS
    (its counts and graph mask over DATA_AXIS only)."""
    both = NamedSharding(mesh, PartitionSpec(DATA_AXIS, GRAPH_AXIS))
    fields = jax.tree_util.tree_map(lambda _: both, batch.fields)
    if graph_batch_axis(batch) != 0:
        return Window(graph=graph_shardings(batch.graph, mesh), fields=fields)
    examples = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    graph = batch.graph
    node = lambda ns: ns.replace(features=both, n_node=examples, mask=both)
    edge = lambda es: es.replace(
        features=both, senders=both, receivers=both, n_edge=examples, mask=both
    )
    shardings = graph.replace(
        node_sets={s: node(ns) for s, ns in graph.node_sets.items()},
        edge_sets={e: edge(es) for e, es in graph.edge_sets.items()},
        graph_mask=examples,
        parts=jax.tree_util.tree_map(lambda _: both, graph.parts),
    )
    return Window(graph=shardings, fields=fields)
