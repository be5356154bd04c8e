"""Device meshes with named axes, and where a batch, a train state and a graph live on them.

A run spreads over a 2-D device mesh `(DATA_AXIS, GRAPH_AXIS)`: the examples of a
batch are split over `data`, the partitions of one graph over `graph` (graph
parallelism with halo exchange, `meshsim.parallel.graph_parallel`). Everything here is
placement: `NamedSharding`s built from `PartitionSpec`s that name these axes,
and `jax.device_put` with them. The steps themselves stay pure functions that
`jit` compiles for whatever placement their arguments have.

    mesh = make_mesh(graph=2)                 # 8 devices -> data 4 x graph 2
    state = shard_train_state(state, mesh, shard_optimizer=True)
    batch = shard_batch(batch, mesh)

Host side; cheap (no compilation), except that `device_put` copies the arrays.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from meshsim.graph import MultiGraph
from meshsim.graph.window import Window, graph_batch_axis
from meshsim.validation import check_int

# The examples of a batch: each device on this axis gets B / data examples, and
# gradients and normalizer statistics are reduced over it.
DATA_AXIS = "data"
# The partitions of one graph (graph/domain parallelism): each device on this axis
# holds one spatial part of every example's graph plus its halo; halo latents are
# exchanged over it every message-passing step. It is the minor (fastest-varying)
# axis of the mesh, so a graph's parts sit on neighbouring devices, which share the
# fastest links on accelerators (the halo traffic is per step, the data traffic per
# batch).
GRAPH_AXIS = "graph"
AXES = (DATA_AXIS, GRAPH_AXIS)
# The members of an ensemble (`model.ensemble.members`): each device on this axis
# computes M / ensemble members of every example; the mesh has this axis (between
# data and graph) only when it has more than one device.
ENSEMBLE_AXIS = "ensemble"


def make_mesh(
    data: int | None = None,
    graph: int = 1,
    devices: Sequence[jax.Device] | None = None,
    ensemble: int = 1,
) -> Mesh:
    """A `(DATA_AXIS, GRAPH_AXIS)` device mesh of shape `(data, graph)`, or with
    `ensemble` > 1 a `(DATA_AXIS, ENSEMBLE_AXIS, GRAPH_AXIS)` one.

    Args:
      data: devices on the data axis; None: all the devices `graph` and `ensemble` leave.
      graph: devices on the graph axis (partitions of each graph).
      devices: the devices to use (default `jax.devices()`); the mesh takes the first
        `data · ensemble · graph` of them, which must divide their number.
      ensemble: devices on the ensemble axis (members of each example).

    Returns:
      A `jax.sharding.Mesh` with axis names `AXES` (ENSEMBLE_AXIS in the middle when
      `ensemble` > 1).

    Raises:
      ValueError: if a size is not a positive int, or `data · graph` does not divide
        the number of devices (the message gives the sizes that would).
    """
    graph = check_int("graph", graph, minimum=1, expected="a positive int")
    ensemble = check_int("ensemble", ensemble, minimum=1, expected="a positive int")
    data = check_int("data", data, minimum=1, optional=True, expected="a positive int")
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    names = "graph" if ensemble == 1 else "graph · ensemble"
    sizes = f"{graph}" if ensemble == 1 else f"{graph} · {ensemble}"
    if data is None:
        if n % (graph * ensemble):
            raise ValueError(f"{names}: expected a divisor of the {n} devices, got {sizes}")
        data = n // (graph * ensemble)
    used = data * graph * ensemble
    if used > n or n % used:
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        raise ValueError(
            f"data · {names} = {data} · {sizes} = {used}: expected a divisor of the {n} "
            f"devices ({divisors})"
        )
    chosen = np.array(devices[:used], dtype=object)
    if ensemble == 1:
        return Mesh(chosen.reshape(data, graph), AXES)
    return Mesh(chosen.reshape(data, ensemble, graph), (DATA_AXIS, ENSEMBLE_AXIS, GRAPH_AXIS))


def member_sharding(mesh: Mesh) -> NamedSharding:
    """`[B, M, ...]` arrays of an ensemble: examples over DATA_AXIS, members over
    ENSEMBLE_AXIS (replicated when the mesh has no such axis)."""
    members = ENSEMBLE_AXIS if ENSEMBLE_AXIS in mesh.axis_names else None
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS, members))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over DATA_AXIS, everything else replicated."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def batch_shardings(batch: Window, mesh: Mesh) -> Window:
    """The sharding of every leaf of `batch` (a pytree like it): fields `[B, ...]` over
    DATA_AXIS; the graph too when it is stacked per example, replicated when one
    structure is shared by the batch (`meshsim.graph.window.graph_batch_axis`)."""
    split, copy = batch_sharding(mesh), replicated(mesh)
    graph = split if graph_batch_axis(batch) == 0 else copy
    return Window(
        graph=jax.tree_util.tree_map(lambda _: graph, batch.graph),
        fields=jax.tree_util.tree_map(lambda _: split, batch.fields),
    )


def shard_batch(batch: Window, mesh: Mesh) -> Window:
    """Places a batch (see `batch_shardings`) on the mesh.

    Raises:
      ValueError: if the batch size does not divide evenly over DATA_AXIS.
    """
    data = mesh.shape[DATA_AXIS]
    sizes = {int(np.shape(x)[0]) for x in jax.tree_util.tree_leaves(batch.fields)}
    if graph_batch_axis(batch) == 0:
        sizes |= {int(np.shape(x)[0]) for x in jax.tree_util.tree_leaves(batch.graph)}
    if len(sizes) != 1:
        raise ValueError(f"batch: expected one leading batch size, got {sorted(sizes)}")
    (size,) = sizes
    if size % data:
        raise ValueError(
            f"batch size {size}: expected a multiple of the {data} devices on the "
            f"{DATA_AXIS!r} axis"
        )
    return jax.device_put(batch, batch_shardings(batch, mesh))


def _optimizer_leaf_sharding(x, mesh: Mesh) -> NamedSharding:
    """Split the largest axis that the data axis divides (first on ties); else replicate."""
    data = mesh.shape[DATA_AXIS]
    shape = tuple(np.shape(x))
    candidates = [i for i, n in enumerate(shape) if n % data == 0 and n >= data]
    if data == 1 or not candidates:
        return replicated(mesh)
    axis = max(candidates, key=lambda i: (shape[i], -i))
    spec = [None] * len(shape)
    spec[axis] = DATA_AXIS
    return NamedSharding(mesh, PartitionSpec(*spec))


def train_state_shardings(state: Any, mesh: Mesh, *, shard_optimizer: bool = False) -> Any:
    """The sharding of every leaf of a train state (a pytree like it).

    Parameters, normalizers and the step are replicated. With `shard_optimizer`, each
    optimizer-state leaf (`state.opt_state`: Adam's moments have the parameters' shapes)
    is split over DATA_AXIS along its largest axis that the axis size divides, and
    replicated when none does (scalars, odd sizes): ZeRO-1-style, it saves optimizer
    memory (2/3 of Adam's state) at the cost of gathers inside the update.

    Works on concrete arrays and on `jax.ShapeDtypeStruct`s (an abstract state).
    """
    copy = replicated(mesh)
    shardings = jax.tree_util.tree_map(lambda _: copy, state)
    if shard_optimizer:
        opt = jax.tree_util.tree_map(lambda x: _optimizer_leaf_sharding(x, mesh), state.opt_state)
        shardings = dataclasses.replace(shardings, opt_state=opt)
    return shardings


def shard_train_state(state: Any, mesh: Mesh, *, shard_optimizer: bool = False) -> Any:
    """Places a train state on the mesh (see `train_state_shardings`)."""
    return jax.device_put(
        state, train_state_shardings(state, mesh, shard_optimizer=shard_optimizer)
    )


def abstract_with_shardings(tree: Any, shardings: Any) -> Any:
    """`jax.ShapeDtypeStruct`s of `tree`'s leaves carrying `shardings` (a pytree like it).

    The restore template for a checkpoint read onto another device count or layout:
    `Checkpointer.restore(abstract_with_shardings(abstract_state, shardings))` places
    every array as given, whatever sharding it was saved with.
    """
    return jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s), tree, shardings
    )


def graph_shardings(graph: MultiGraph, mesh: Mesh) -> MultiGraph:
    """Shardings for a graph in the blocked layout (`meshsim.parallel.partition.blocked_graph`)
    run by GSPMD: node and edge arrays split over GRAPH_AXIS along their first axis,
    counts and the graph mask replicated. Every node and edge count must be a multiple
    of the GRAPH_AXIS size.
    """
    split = NamedSharding(mesh, PartitionSpec(GRAPH_AXIS))
    copy = replicated(mesh)
    k = mesh.shape[GRAPH_AXIS]
    for where, n in [(f"node set {s!r}", ns.num_nodes) for s, ns in graph.node_sets.items()] + [
        (f"edge set {e!r}", es.num_edges) for e, es in graph.edge_sets.items()
    ]:
        if n % k:
            raise ValueError(f"{where}: expected a multiple of the {k} graph devices, got {n}")
    node = lambda ns: ns.replace(features=split, n_node=copy, mask=split)
    edge = lambda es: es.replace(
        features=split, senders=split, receivers=split, n_edge=copy, mask=split
    )
    return MultiGraph(
        node_sets={s: node(ns) for s, ns in graph.node_sets.items()},
        edge_sets={e: edge(es) for e, es in graph.edge_sets.items()},
        graph_mask=copy,
    )


def describe(mesh: Mesh) -> str:
    """'data=4 x graph=2 (8 cpu devices)' — for logs."""
    sizes = " x ".join(f"{name}={mesh.shape[name]}" for name in mesh.axis_names)
    devices = mesh.devices.reshape(-1)
    return f"{sizes} ({math.prod(mesh.devices.shape)} {devices[0].platform} devices)"
