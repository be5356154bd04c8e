"""Graph (domain) parallelism: one graph's parts on the devices of GRAPH_AXIS.

`meshsim.parallel.partition` splits a graph into K parts, each with its owned nodes,
a halo (the nodes owned elsewhere that send edges to owned ones) and the edges
into its owned nodes. Here every device runs the *unchanged* network
(`EncodeProcessDecode`: MeshGraphNet, GraphCast) on its part under
`jax.shard_map`. Encoders, edge updates and aggregations are local; the only
stale values are the halo rows of a node set after a step updates it, so the
network's `halo_exchange` hook refreshes them from their owners after every
message-passing step. Owned rows then equal the unpartitioned network's rows to
float rounding: each row sums the same messages in the same order; only matmul
blocking (fewer rows) and the order of the parameter-gradient sums differ.

Two exchanges, same result:

* "all_gather": every part puts its boundary rows (those some other part needs)
  in a padded buffer, `all_gather`s the K buffers and reads its halo from them.
  One collective per step; moves K·(K−1)·B·L values (B = largest boundary).
* "ppermute": one `ppermute` per round d = 1..K−1 (part q sends part q+d exactly
  the rows it needs; rounds with no traffic are skipped). Moves each halo latent
  once, in up to K−1 collectives per step.

Gradients flow back through either (the transpose of all_gather is a
reduce-scatter, of ppermute the reverse ppermute), so halo copies pass their
gradient to the owner. Losses and statistics must count each node once: weight
them with the owned mask and `psum` over GRAPH_AXIS (`owned_masked_mse`,
`PartitionedGraph.owned_graph` with `normalization.update(..., axis_name=GRAPH_AXIS)`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from meshsim.graph import GraphFeatures, MultiGraph, NodeSet, PaddingBudget
from meshsim.nn import HaloExchange
from meshsim.parallel.bisection import partition_nodes
from meshsim.parallel.partition import (
    HaloTables,
    PartitionedGraph,
    Round,
    partition_graph,
    validate_parts,
)
from meshsim.parallel.partition_cache import PartitionCache, cached_parts
from meshsim.parallel.partition_fields import gather_outputs, scatter_edge_fields, scatter_fields
from meshsim.parallel.sharding import GRAPH_AXIS

EXCHANGES = ("all_gather", "ppermute")


def _check_method(method: str) -> None:
    if method not in EXCHANGES:
        raise ValueError(f"method: expected one of {EXCHANGES}, got {method!r}")


def _all_gather(x: jax.Array, t: HaloTables, axis_name: str) -> jax.Array:
    buffer = x[t.send_rows]  # [B, L] this part's boundary rows
    everyone = jax.lax.all_gather(buffer, axis_name)  # [K, B, L]
    halo = everyone[jnp.maximum(t.owner, 0), t.send_slot]  # [H, L]
    return x.at[t.rows].set(halo, mode="drop")  # padding slots point past the end


def _ppermute(x: jax.Array, t: HaloTables, rounds: tuple[Round, ...], axis_name: str):
    for pairs, (send, recv) in zip(rounds, t.rounds):
        got = jax.lax.ppermute(x[send], axis_name, perm=pairs)  # zeros where nothing arrives
        x = x.at[recv].set(got, mode="drop")
    return x


def make_halo_exchange(
    tables: Mapping[str, HaloTables],
    rounds: Mapping[str, tuple[Round, ...]],
    *,
    method: str = "all_gather",
    axis_name: str = GRAPH_AXIS,
) -> HaloExchange:
    """The `halo_exchange` hook of one device; call inside `shard_map` over `axis_name`.

    Args:
      tables: {node set: HaloTables} of *this* part (the leading [K] axis removed).
      rounds: `PartitionedGraph.rounds` (static ppermute pairs).
      method: "all_gather" or "ppermute" (see the module docstring).
      axis_name: the mesh axis the parts are split over.

    Returns:
      exchange(nodes {set: [N_local_s, L]}, updated node sets) -> nodes with the halo
      rows of the updated sets replaced by their owners' rows.
    """
    _check_method(method)

    def exchange(nodes: dict[str, jax.Array], updated: tuple[str, ...]) -> dict[str, jax.Array]:
        nodes = dict(nodes)
        for name in updated:
            t = tables[name]
            if t.rows.shape[-1] == 0:  # no part has a halo in this node set
                continue
            if method == "all_gather":
                nodes[name] = _all_gather(nodes[name], t, axis_name)
            else:
                nodes[name] = _ppermute(nodes[name], t, rounds[name], axis_name)
        return nodes

    return exchange


def local_apply(
    model: Any,
    params: Any,
    graph: MultiGraph,
    tables: Mapping[str, HaloTables],
    rounds: Mapping[str, tuple[Round, ...]],
    *,
    method: str = "all_gather",
    axis_name: str = GRAPH_AXIS,
) -> jax.Array:
    """One part's forward pass; call inside `shard_map` over `axis_name`.

    Args:
      model: an `EncodeProcessDecode` (its `halo_exchange` is replaced).
      params: the (replicated) parameters of the unpartitioned model.
      graph: this part's local graph (no leading part axis).
      tables, rounds, method, axis_name: as in `make_halo_exchange`.

    Returns:
      [N_local of the output node set, output_size] float32; owned rows are the
      unpartitioned network's outputs, halo and padding rows are not.
    """
    exchange = make_halo_exchange(tables, rounds, method=method, axis_name=axis_name)
    return model.clone(halo_exchange=exchange).apply(params, graph)


def _check_mesh(pgraph: PartitionedGraph, mesh: Mesh) -> None:
    if GRAPH_AXIS not in mesh.shape or mesh.shape[GRAPH_AXIS] != pgraph.num_parts:
        raise ValueError(
            f"mesh: expected a {GRAPH_AXIS!r} axis of size {pgraph.num_parts} (the parts), "
            f"got axes {dict(mesh.shape)}"
        )


def _first(tree):
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def partitioned_apply(
    model: Any,
    params: Any,
    pgraph: PartitionedGraph,
    mesh: Mesh,
    *,
    method: str = "all_gather",
) -> jax.Array:
    """The network on every part at once, parts split over the mesh's GRAPH_AXIS.

    Args:
      model, params: the unpartitioned network and its parameters (replicated).
      pgraph: the partition; a pytree, so it may be an argument of the jitted caller.
        For new features on the same structure pass
        `pgraph.replace(graph=pgraph.graph.with_features(...))` (see `scatter_fields`).
      mesh: a mesh whose GRAPH_AXIS has `pgraph.num_parts` devices (devices along
        other axes repeat the computation).
      method: "all_gather" or "ppermute".

    Returns:
      [K, N_local, output_size] float32, split over GRAPH_AXIS;
      `partition_fields.gather_outputs` gives the global [N, output_size]. Jit-safe.
    """
    _check_method(method)
    _check_mesh(pgraph, mesh)
    spec, rounds = PartitionSpec(GRAPH_AXIS), dict(pgraph.rounds)

    def body(params, graph, tables):
        out = local_apply(model, params, _first(graph), _first(tables), rounds, method=method)
        return out[None]

    run = jax.shard_map(body, mesh=mesh, in_specs=(PartitionSpec(), spec, spec), out_specs=spec)
    return run(params, pgraph.graph, dict(pgraph.halo))


def owned_masked_mse(
    pred: jax.Array,
    target: jax.Array,
    weights: jax.Array,
    owned: jax.Array,
    *,
    axis_name: str = GRAPH_AXIS,
) -> jax.Array:
    """`metrics.masked_mse(..., feature_reduction="sum")` over all parts, each node once.

    Call inside `shard_map` over `axis_name`.

    Args:
      pred, target: [N_local, F] float this part's prediction and target.
      weights: [N_local] float or bool loss weights (0 on padding).
      owned: [N_local] bool the rows this part owns.

    Returns:
      [] float32, the same on every part: Σ_owned w·Σ_f err² / Σ_owned w over all parts.
    """
    w = jnp.where(owned, weights.astype(jnp.float32), 0.0)
    err = jnp.sum(jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32)), axis=-1)
    # Rows of weight 0 (padding, halo) may hold anything: select, never multiply.
    summed = jax.lax.psum(jnp.sum(jnp.where(w > 0, err * w, 0.0)), axis_name)
    total = jax.lax.psum(jnp.sum(w), axis_name)
    return summed / jnp.where(total > 0, total, 1.0)


def partitioned_loss(
    model: Any,
    params: Any,
    pgraph: PartitionedGraph,
    mesh: Mesh,
    targets: jax.Array,
    weights: jax.Array,
    *,
    method: str = "all_gather",
) -> jax.Array:
    """The masked MSE of the partitioned network, equal to the unpartitioned loss.

    Args:
      targets: [K, N_local, output_size] float (`scatter_fields` of the global targets).
      weights: [K, N_local] float or bool loss weights (`scatter_fields` of the global ones).
      others: as in `partitioned_apply`.

    Returns:
      [] float32, replicated. `jax.grad` of it w.r.t. `params` is the unpartitioned
      gradient (the transpose of the replicated parameters sums the parts' shares).
    """
    _check_method(method)
    _check_mesh(pgraph, mesh)
    out_set = model.output_node_set
    spec, rounds = PartitionSpec(GRAPH_AXIS), dict(pgraph.rounds)

    def body(params, graph, tables, owned, targets, weights):
        pred = local_apply(model, params, _first(graph), _first(tables), rounds, method=method)
        return owned_masked_mse(pred, targets[0], weights[0], owned[0])

    run = jax.shard_map(
        body,
        mesh=mesh,
        in_specs=(PartitionSpec(), spec, spec, spec, spec, spec),
        out_specs=PartitionSpec(),
    )
    return run(params, pgraph.graph, dict(pgraph.halo), pgraph.owned[out_set], targets, weights)


# --------------------------------------------------------------------------- in a simulator


@dataclasses.dataclass(frozen=True, eq=False)
class GraphPartition:
    """A simulator's network run graph-parallel (`Simulator.partition`).

    Inputs, targets and losses stay in the global node order (a few floats per node,
    replicated over GRAPH_AXIS); only the network, whose latents dominate memory and
    time, runs on the parts. `apply` scatters one example's normalized features to the
    parts, runs the network under `shard_map` over GRAPH_AXIS (manual over that axis
    only, so a DATA_AXIS of the mesh still splits the batch), and gathers the owners'
    output rows back. Its gradient is the unpartitioned one, so training, multi-step
    losses, normalizers and rollouts use it unchanged. Hashed by identity (a static
    part of the simulator).

    Attributes:
      pgraph: the partition of the shared, unpadded structure, replicated on `mesh`.
      mesh: a mesh with a GRAPH_AXIS of `pgraph.num_parts` devices.
      method: halo exchange, "all_gather" or "ppermute".
    """

    pgraph: PartitionedGraph
    mesh: Mesh
    method: str = "all_gather"

    def apply(self, model: Any, params: Any, graph: MultiGraph) -> jax.Array:
        """The network on one example `graph` (global layout, normalized features, padded
        or not); returns [N_out, output_size] like `model.apply(params, graph)` on the
        real nodes (padding rows 0). Jit-safe; vmappable over examples."""
        pg, out_set = self.pgraph, model.output_node_set
        features = graph.features()
        nodes = {
            s: scatter_fields(pg, x[: pg.parts[s].shape[0]], s) for s, x in features.nodes.items()
        }
        edges = {e: scatter_edge_fields(pg, x, e) for e, x in features.edges.items()}
        local = pg.graph.with_features(GraphFeatures(nodes=nodes, edges=edges))
        spec, rounds, method = PartitionSpec(GRAPH_AXIS), dict(pg.rounds), self.method

        def body(params, graph, tables):
            out = local_apply(model, params, _first(graph), _first(tables), rounds, method=method)
            return out[None]

        run = jax.shard_map(
            body,
            mesh=self.mesh,
            in_specs=(PartitionSpec(), spec, spec),
            out_specs=spec,
            axis_names=frozenset({GRAPH_AXIS}),
        )
        out = gather_outputs(pg, run(params, local, dict(pg.halo)), out_set)  # [N, F]
        rows = graph.node_sets[out_set].features.shape[0]
        return jnp.pad(out, ((0, rows - out.shape[0]), (0, 0)))


def cut_for_mesh(
    structure: MultiGraph,
    positions: Mapping[str, Any],
    mesh: Mesh,
    method: str,
    cache: PartitionCache | None = None,
) -> tuple[int, dict[str, np.ndarray]]:
    """(K = the mesh's GRAPH_AXIS size, {node set: [N_s] int part of each node}): the
    recursive coordinate bisection of `positions` that graph parallelism cuts along,
    read from `cache` when it holds this mesh's. Checks `method` and that every node
    set has positions. Host side."""
    _check_method(method)
    k = int(mesh.shape[GRAPH_AXIS])
    missing = sorted(set(structure.node_sets) - set(positions))
    if missing:
        raise ValueError(f"positions: expected every node set of the graph, missing {missing}")
    points = {s: positions[s] for s in structure.node_sets}
    return k, cached_parts(cache, "graph", k, points, lambda: partition_nodes(points, k))


def make_graph_partition(
    structure: MultiGraph,
    positions: Mapping[str, Any],
    mesh: Mesh,
    *,
    method: str = "all_gather",
) -> GraphPartition:
    """Cuts `structure` into the mesh's GRAPH_AXIS size of parts by recursive coordinate
    bisection of `positions` and places the tables on the mesh. Host side.

    Args:
      structure: one unpadded graph (the structure every example shares).
      positions: {node set: [N_s, D] float} positions of every node set.
      mesh: the run's device mesh.
      method: "all_gather" or "ppermute".
    """
    k, parts = cut_for_mesh(structure, positions, mesh, method)
    pgraph = partition_graph(structure, parts, k)
    pgraph = jax.device_put(pgraph, NamedSharding(mesh, PartitionSpec()))
    return GraphPartition(pgraph=pgraph, mesh=mesh, method=method)


# --------------------------------------------------------------------------- GSPMD layout


def _block(counts: np.ndarray, extra: int, multiple: int) -> int:
    return max(multiple, -(-(int(counts.max()) + extra) // multiple) * multiple)


def _blocked_rows(owner: np.ndarray, k: int, width: int) -> np.ndarray:
    """[n] row of each item when part p's items (ascending index) fill [p·width, ...)."""
    order = np.lexsort((np.arange(owner.size), owner))
    starts = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=k))[:-1]])
    rows = np.empty(owner.size, np.int64)
    rows[order] = owner[order] * width + np.arange(owner.size) - starts[owner[order]]
    return rows


def _blocked_budget(graph: MultiGraph, parts: dict, k: int, multiple: int = 8) -> PaddingBudget:
    """`blocked_budget` of validated `parts`: R_s = the largest part's nodes + 1 padding
    row, C_k = its edges (by receiver), rounded up to `multiple`."""
    rows = {s: _block(np.bincount(parts[s], minlength=k), 1, multiple) for s in graph.node_sets}
    edges = {
        e: _block(
            np.bincount(parts[es.receiver][np.asarray(es.receivers)], minlength=k), 0, multiple
        )
        for e, es in graph.edge_sets.items()
    }
    return PaddingBudget(n_node=rows, n_edge=edges, n_graph=1)


def blocked_budget(graph: MultiGraph, parts, num_parts: int, *, multiple: int = 8):
    """The block sizes `blocked_graph` gives these parts (n_node: R_s rows per part of
    each node set, one padding row included; n_edge: C_k edges per part of each edge
    set), without building the graph. Host side."""
    parts = validate_parts(graph, parts, num_parts)
    return _blocked_budget(graph, parts, int(num_parts), multiple)


def blocked_graph(
    graph: MultiGraph, parts, num_parts: int, *, multiple: int = 8, budget=None
) -> tuple[MultiGraph, dict[str, np.ndarray]]:
    """The graph renumbered so that splitting its node and edge axes K ways puts one
    spatial part on each device: the layout for GSPMD (`jit` of the unpartitioned
    network with `sharding.graph_shardings`), the alternative to halo exchange.

    Part p's nodes fill rows [p·R_s, (p+1)·R_s) of node set s (ascending global index,
    then ≥ 1 padding row); its edges (by receiver) rows [p·C_k, (p+1)·C_k) of edge
    set k; a padding edge joins the padding rows of its own block. One graph
    (n_node = [K·R_s]) whose masks mark the padding.

    Args:
      graph, parts, num_parts: as in `partition.partition_graph`.
      multiple: R_s and C_k are rounded up to a multiple of this.
      budget: a `PaddingBudget` of at least these R_s (`n_node`) and C_k (`n_edge`):
        one layout shared by several meshes.

    Returns:
      (graph, {node set: [N_s] int32 new row of each global node}). Host side.
    """
    parts = validate_parts(graph, parts, num_parts)
    return _blocked_graph(graph, parts, int(num_parts), multiple, budget)


def _blocked_graph(
    graph: MultiGraph,
    parts: dict,
    k: int,
    multiple: int = 8,
    budget: PaddingBudget | None = None,
) -> tuple[MultiGraph, dict[str, np.ndarray]]:
    """`blocked_graph` of validated `parts` (`validate_parts`)."""
    sizes = _blocked_budget(graph, parts, k, multiple).at_least(budget)
    width, edge_width = sizes.n_node, sizes.n_edge
    new_row, node_sets = {}, {}
    for s, ns in graph.node_sets.items():
        rows = new_row[s] = _blocked_rows(parts[s], k, width[s]).astype(np.int32)
        x = np.asarray(ns.features)
        features = np.zeros((k * width[s],) + x.shape[1:], x.dtype)
        features[rows] = x
        mask = np.zeros(k * width[s], bool)
        mask[rows] = True
        n_node = np.array([k * width[s]], np.int32)
        node_sets[s] = NodeSet(features=features, n_node=n_node, mask=mask)
    edge_sets = {}
    for e, es in graph.edge_sets.items():
        senders, receivers = np.asarray(es.senders), np.asarray(es.receivers)
        owner = parts[es.receiver][receivers]
        c = edge_width[e]
        slot = _blocked_rows(owner, k, c)
        block = np.repeat(np.arange(k), c)
        new_s = (block + 1) * width[es.sender] - 1  # the padding row of each block
        new_r = (block + 1) * width[es.receiver] - 1
        new_s[slot] = new_row[es.sender][senders]
        new_r[slot] = new_row[es.receiver][receivers]
        x = np.asarray(es.features)
        features = np.zeros((k * c,) + x.shape[1:], x.dtype)
        features[slot] = x
        mask = np.zeros(k * c, bool)
        mask[slot] = True
        edge_sets[e] = es.replace(
            features=features,
            senders=new_s.astype(np.int32),
            receivers=new_r.astype(np.int32),
            n_edge=np.array([k * c], np.int32),
            mask=mask,
        )
    out = MultiGraph(node_sets=node_sets, edge_sets=edge_sets, graph_mask=np.ones(1, bool))
    return out, new_row
