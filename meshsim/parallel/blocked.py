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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from meshsim.graph import GraphFeatures, MultiGraph
from meshsim.graph.window import NODE_INDEX, Window, graph_batch_axis
from meshsim.parallel.graph_parallel import (
    _first,
    blocked_graph,
    cut_for_mesh,
    local_apply,
    make_halo_exchange,
)
from meshsim.parallel.partition import PartitionedGraph, partition_graph
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


@dataclasses.dataclass(frozen=True, eq=False)
class BlockedPartition:
    """A simulator's network on examples in the blocked layout (`Simulator.partition`).

    Build with `make_blocked_partition`. Hashed by identity (a static part of the
    simulator).

    Attributes:
      pgraph: the host-side partition of the shared structure (statistics, tables).
      structure: the shared structure in the blocked layout (`blocked_graph`), on the
        mesh with its node and edge axes split over GRAPH_AXIS.
      source: {node set: [K·R_s] int64} the global node of each blocked row, -1 for padding.
      node_set: the node set a window's fields live on.
      mesh: a mesh with a GRAPH_AXIS of `pgraph.num_parts` devices.
      method: halo exchange, "all_gather" or "ppermute".
      local: the parts' local graphs [K, ...] (structure only), split over GRAPH_AXIS.
      tables: {node set: HaloTables [K, ...]}, split over GRAPH_AXIS.
      node_rows: {node set: [K, N_local_s] int32} block row of each local row (-1: zero).
      edge_rows: {edge set: [K, E_local_e] int32} block row of each local edge (-1: zero).
      out_rows: {node set: [K, R_s] int32} local row of each block row (-1: zero).
    """

    pgraph: PartitionedGraph
    structure: MultiGraph
    source: Mapping[str, np.ndarray]
    node_set: str
    mesh: Mesh
    method: str
    local: MultiGraph
    tables: Mapping[str, Any]
    node_rows: Mapping[str, jax.Array]
    edge_rows: Mapping[str, jax.Array]
    out_rows: Mapping[str, jax.Array]

    @property
    def num_parts(self) -> int:
        return self.pgraph.num_parts

    # ------------------------------------------------------------------ host side

    def block_fields(self, fields: Mapping[str, Any], *, axis: int = 0) -> dict[str, np.ndarray]:
        """Per-node arrays of `node_set` from global order ([..., N(+padding), ...] at
        `axis`) to the blocked layout ([..., K·R, ...]; padding rows 0). Host side."""
        src = self.source[self.node_set]
        n = self.pgraph.parts[self.node_set].shape[0]
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
        """A batch (fields [B, N_pad, ...], the partitioned structure stacked or shared,
        padded or not) in the blocked layout: fields [B, K·R, ...] and the shared blocked
        structure, plus the field `NODE_INDEX` [B, K·R] (each row's mesh node, -1 for
        padding; per-node noise follows it). Host side; every example must be on the
        partitioned mesh (`runs.train` compares every trajectory's mesh; a stacked
        batch's node masks are checked here)."""
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

    def unblock(self, x, node_set: str | None = None, *, axis: int = 0) -> np.ndarray:
        """Blocked rows ([..., K·R, ...] at `axis`) back to global order [..., N, ...]."""
        node_set = self.node_set if node_set is None else node_set
        src = self.source[node_set]
        real = np.flatnonzero(src >= 0)
        order = np.argsort(src[real])
        return np.take(np.asarray(x), real[order], axis=axis)

    # ------------------------------------------------------------------ in the step

    def apply(self, model: Any, params: Any, graph: MultiGraph) -> jax.Array:
        """The network on one example in the blocked layout (node sets [K·R_s, F], edge
        sets [K·C_e, F], normalized features); returns [K·R_out, output_size] in block
        order, padding rows 0, split over GRAPH_AXIS. Jit-safe; vmappable over examples."""
        features = graph.features()
        out_set = model.output_node_set
        spec, rounds, method = PartitionSpec(GRAPH_AXIS), dict(self.pgraph.rounds), self.method

        def body(params, nodes, edges, local, tables, node_rows, edge_rows, out_rows):
            local, tables = _first(local), _first(tables)
            x = {s: _rows(block, node_rows[s][0]) for s, block in nodes.items()}  # halo rows 0
            e = {k: _rows(block, edge_rows[k][0]) for k, block in edges.items()}
            exchange = make_halo_exchange(tables, rounds, method=method)
            x = exchange(x, tuple(x))  # the inputs' halo rows from their owners
            out = local_apply(
                model,
                params,
                local.with_features(GraphFeatures(nodes=x, edges=e)),
                tables,
                rounds,
                method=method,
            )
            return _rows(out, out_rows[out_set][0])  # [R_out, F_out]

        run = jax.shard_map(
            body,
            mesh=self.mesh,
            in_specs=(PartitionSpec(), spec, spec, spec, spec, spec, spec, spec),
            out_specs=spec,
            axis_names=frozenset({GRAPH_AXIS}),
        )
        return run(
            params,
            dict(features.nodes),
            dict(features.edges),
            self.local,
            dict(self.tables),
            dict(self.node_rows),
            dict(self.edge_rows),
            dict(self.out_rows),
        )


def make_blocked_partition(
    structure: MultiGraph,
    positions: Mapping[str, Any],
    mesh: Mesh,
    *,
    node_set: str,
    method: str = "all_gather",
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
    """
    if node_set not in structure.node_sets:
        raise ValueError(
            f"node_set: expected one of {sorted(structure.node_sets)}, got {node_set!r}"
        )
    k, parts = cut_for_mesh(structure, positions, mesh, method)
    pgraph = partition_graph(structure, parts, k)
    blocked, new_row = blocked_graph(structure, parts, k)
    source = {}
    for s, rows in new_row.items():
        source[s] = np.full(blocked.num_nodes(s), -1, np.int64)
        source[s][rows] = np.arange(rows.size)
    stats = pgraph.stats()
    owned = {s: np.asarray(stats.owned[s]) for s in structure.node_sets}
    node_rows = {s: _owned_rows(c, pgraph.num_local(s)) for s, c in owned.items()}
    edge_rows = {
        e: _owned_rows(np.asarray(stats.edges[e]), pgraph.edge_index[e].shape[1])
        for e in structure.edge_sets
    }
    out_rows = {s: _owned_rows(c, blocked.num_nodes(s) // k) for s, c in owned.items()}
    split = NamedSharding(mesh, PartitionSpec(GRAPH_AXIS))
    return BlockedPartition(
        pgraph=pgraph,
        structure=jax.device_put(blocked, graph_shardings(blocked, mesh)),
        source=source,
        node_set=node_set,
        mesh=mesh,
        method=method,
        local=jax.device_put(pgraph.graph, split),
        tables=jax.device_put(dict(pgraph.halo), split),
        node_rows=jax.device_put(node_rows, split),
        edge_rows=jax.device_put(edge_rows, split),
        out_rows=jax.device_put(out_rows, split),
    )


def blocked_batch_shardings(batch: Window, mesh: Mesh) -> Window:
    """Shardings of a batch in the blocked layout: fields [B, K·R, ...] split over
    DATA_AXIS (examples) and GRAPH_AXIS (nodes); the shared structure's node and edge
    axes over GRAPH_AXIS (`sharding.graph_shardings`)."""
    if graph_batch_axis(batch) == 0:
        raise ValueError("batch: expected the shared blocked structure (`block_batch`)")
    fields = NamedSharding(mesh, PartitionSpec(DATA_AXIS, GRAPH_AXIS))
    return Window(
        graph=graph_shardings(batch.graph, mesh),
        fields=jax.tree_util.tree_map(lambda _: fields, batch.fields),
    )
