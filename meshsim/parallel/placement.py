"""Where a training run lives: its device mesh, and the steps compiled for it.

`meshsim train --set parallel.…` picks one of three layouts (`ParallelConfig`):

* **jit** (default; pjit style): one `jax.jit` step for the whole device mesh
  `(data, graph)` of `meshsim.parallel.sharding`. The batch is split over `data`
  (`NamedSharding`), the train state replicated (the optimizer state optionally
  split, `parallel.shard_optimizer`); XLA (GSPMD) inserts the gradient and
  statistics reductions. With `parallel.graph` = K > 1 every example's graph is
  also split into K spatial parts with halos: each device holds its part's nodes
  of every example (the blocked layout), and the network runs under `shard_map`
  over `graph` with halo exchange (`meshsim.parallel.blocked.BlockedPartition`).
* **pmap**: `jax.pmap` over the `data` devices; each device holds B / data
  examples and a copy of the state, and the step reduces the loss, gradients and
  normalizer statistics with `psum` (`make_train_step(axis_name=DATA_AXIS)`).

Every layout takes the step one device takes on the whole batch (same example
keys, same global means), so the loss curves agree to float rounding. Across
processes (`jax.distributed`, `meshsim train --distributed`) the mesh spans every
process's devices and each process feeds its own examples of the batch
(`process_batch_size`), read from its own shard of the trajectories.

Host side; the returned steps are pure and compiled on first use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jax
import numpy as np
from jax.sharding import Mesh

from meshsim.graph import MultiGraph
from meshsim.graph.window import Batch, Window, graph_batch_axis
from meshsim.parallel import sharding
from meshsim.parallel.partition_cache import PartitionCache
from meshsim.simulator import Simulator
from meshsim.training.step import TrainState, make_accumulate_step, make_train_step


class ParallelSettings(Protocol):
    """What a placement is made from: `meshsim.config.ParallelConfig` (`parallel.*`)."""

    backend: str  # "jit" or "pmap"
    data: int | None  # devices on the data axis (None: every device not used by `graph`)
    graph: int  # parts of each graph
    shard_optimizer: bool
    halo_exchange: str  # "all_gather" or "ppermute"
    ensemble: int  # devices on the ensemble axis (members of each example)
    partitions: int  # parts each graph is run in turn on one device (sequential partitions)


@dataclasses.dataclass(frozen=True)
class Placement:
    """A run's devices: the mesh, the backend, and the steps and placements for it.

    Attributes:
      parallel: the `ParallelConfig` it was made from.
      mesh: the `(DATA_AXIS, GRAPH_AXIS)` device mesh (all processes' devices).
      batch_size: B, examples per step over all devices and processes.
    """

    parallel: ParallelSettings
    mesh: Mesh
    batch_size: int

    @property
    def data(self) -> int:
        """Devices on the data axis."""
        return int(self.mesh.shape[sharding.DATA_AXIS])

    @property
    def ensemble(self) -> int:
        """Devices on the ensemble axis (1 when the mesh has none)."""
        return int(dict(self.mesh.shape).get(sharding.ENSEMBLE_AXIS, 1))

    @property
    def graph(self) -> int:
        """Parts of each graph (devices on the graph axis)."""
        return int(self.mesh.shape[sharding.GRAPH_AXIS])

    @property
    def process_batch_size(self) -> int:
        """Examples this process feeds per step (B / process count)."""
        return self.batch_size // jax.process_count()

    @property
    def is_single_device(self) -> bool:
        """True when the mesh is one device (no placement needed)."""
        return self.data * self.graph * self.ensemble == 1

    def describe(self) -> str:
        """'jit: data=4 x graph=2 (8 cpu devices), batch 8' — for logs."""
        procs = jax.process_count()
        where = f", {procs} processes" if procs > 1 else ""
        mesh = sharding.describe(self.mesh)
        return f"{self.parallel.backend}: {mesh}{where}, batch {self.batch_size}"

    # ------------------------------------------------------------------ simulator

    @property
    def partitions(self) -> int:
        """Parts each graph is run in turn on one device (`parallel.partitions`)."""
        return int(getattr(self.parallel, "partitions", 1))

    def simulator(
        self,
        sim: Simulator,
        meshes: Sequence[tuple[MultiGraph, Mapping[str, Any]]],
        cache: PartitionCache | None = None,
    ) -> Simulator:
        """`sim` with its network split into `graph` parts when `parallel.graph` > 1, or
        run on `partitions` parts in turn when `parallel.partitions` > 1.

        Graph parts run on examples in the blocked layout
        (`meshsim.parallel.blocked.BlockedPartition`), sequential parts
        (`meshsim.parallel.sequential.SequentialPartition`) on examples as they are:
        place batches for either with `batch_placer(the returned simulator)`, which
        also gives every example its own mesh's tables when there are several meshes.

        Args:
          meshes: [(structure, positions)] per distinct mesh of the training data
            (`meshsim.parallel.per_mesh.MeshCatalog.meshes`): one unpadded structure
            and its {node set: [N_s, D] float} positions to cut along
            (`Task.partition_positions`). Each is cut once; one mesh gives tables that
            are constants of the step.
          cache: where each mesh's parts are read from, or stored once cut
            (`meshsim.parallel.partition_cache`; optional).
        """
        if self.partitions > 1:
            from meshsim.parallel import sequential

            if len(meshes) == 1:
                partition = sequential.make_sequential_partition(
                    sim.model, *meshes[0], self.partitions, cache=cache
                )
            else:
                partition = sequential.make_per_mesh_sequential_partition(
                    sim.model, meshes, self.partitions, cache=cache
                )
            return dataclasses.replace(sim, partition=partition)
        if self.graph == 1:
            return sim
        from meshsim.parallel import blocked

        settings = dict(node_set=sim.task.node_set, method=self.parallel.halo_exchange, cache=cache)
        if len(meshes) == 1:
            partition = blocked.make_blocked_partition(*meshes[0], self.mesh, **settings)
        else:
            partition = blocked.make_per_mesh_blocked_partition(meshes, self.mesh, **settings)
        return dataclasses.replace(sim, partition=partition)

    # ------------------------------------------------------------------ state

    def place_state(self, state: TrainState) -> TrainState:
        """The state on the devices: replicated (jit: optimizer state optionally split
        over `data`; pmap: one copy per device on a leading [data] axis)."""
        if self.parallel.backend == "pmap":
            split = _data_sharding(self.mesh)
            copies = lambda x: np.broadcast_to(x, (self.data,) + np.shape(x))
            return jax.device_put(jax.tree_util.tree_map(copies, jax.device_get(state)), split)
        if self.is_single_device:
            return state
        return sharding.shard_train_state(
            state, self.mesh, shard_optimizer=self.parallel.shard_optimizer
        )

    def host_state(self, state: TrainState) -> TrainState:
        """The state as one device holds it (pmap: the first copy): what a checkpoint,
        an evaluation or a single-device reader takes."""
        if self.parallel.backend == "pmap":
            return jax.tree_util.tree_map(lambda x: x[0], state)
        return state

    def restore_template(self, abstract: TrainState) -> TrainState:
        """The restore template (`jax.ShapeDtypeStruct`s) for this layout, so a checkpoint
        written with any device count is read straight into place."""
        if self.parallel.backend == "pmap" or self.is_single_device:
            return abstract
        shardings = sharding.train_state_shardings(
            abstract, self.mesh, shard_optimizer=self.parallel.shard_optimizer
        )
        return sharding.abstract_with_shardings(abstract, shardings)

    # ------------------------------------------------------------------ batches

    def place_batch(self, batch: Batch) -> Batch:
        """This process's examples `[B / processes, ...]` on the devices: split over `data`
        (jit, one global array across processes) or reshaped to `[data, B / data, ...]`
        (pmap)."""
        if self.parallel.backend == "pmap":
            return _per_device(batch, self.data)
        if self.is_single_device:
            return jax.device_put(batch)
        if jax.process_count() == 1:
            return sharding.shard_batch(batch, self.mesh)
        shardings = sharding.batch_shardings(batch, self.mesh)
        return jax.tree_util.tree_map(
            lambda x, s: jax.make_array_from_process_local_data(s, np.asarray(x)), batch, shardings
        )

    def batch_placer(self, sim: Simulator) -> Callable[[Batch], Batch]:
        """How batches for `sim` (from `simulator`) go onto the devices: `place_batch`
        (after `attach_parts` for sequential parts), or for a graph-partitioned
        simulator the batch in the blocked layout with its nodes split over the graph
        devices and its examples over the data devices."""
        partition = sim.partition
        if hasattr(partition, "attach_parts"):
            return lambda batch: self.place_batch(partition.attach_parts(batch))
        if partition is None or not hasattr(partition, "block_batch"):
            return self.place_batch
        from meshsim.parallel.blocked import blocked_batch_shardings

        def place(batch: Batch) -> Batch:
            blocked = partition.block_batch(batch)
            return jax.device_put(blocked, blocked_batch_shardings(blocked, self.mesh))

        return place

    # ------------------------------------------------------------------ steps

    def train_step(self, sim: Simulator, tx, *, horizon: int = 1, mode: str = "unrolled"):
        """`step(state, batch, rng) -> (state, metrics)` for placed states and batches;
        metrics are scalars whatever the layout."""
        if self.ensemble > 1 and sim.members % self.ensemble:
            raise ValueError(
                f"parallel.ensemble={self.ensemble}: expected a divisor of "
                f"model.ensemble.members={sim.members} (each device computes an equal share)"
            )
        if self.parallel.backend != "pmap":
            members = None if sim.ensemble is None else sharding.member_sharding(self.mesh)
            return make_train_step(sim, tx, horizon=horizon, mode=mode, member_sharding=members)
        step = make_train_step(
            sim, tx, jit=False, horizon=horizon, mode=mode, axis_name=sharding.DATA_AXIS
        )
        return _pmapped(step, self.mesh, with_metrics=True)

    def accumulate_step(self, sim: Simulator):
        """`step(state, batch, rng) -> state`: normalizer statistics only."""
        if self.parallel.backend != "pmap":
            return make_accumulate_step(sim)
        step = make_accumulate_step(sim, jit=False, axis_name=sharding.DATA_AXIS)
        return _pmapped(step, self.mesh, with_metrics=False)


def _data_sharding(mesh: Mesh) -> jax.sharding.NamedSharding:
    """Leading axis over the data devices (the first device of each graph row)."""
    data_mesh = Mesh(mesh.devices[:, 0], (sharding.DATA_AXIS,))
    return jax.sharding.NamedSharding(data_mesh, jax.sharding.PartitionSpec(sharding.DATA_AXIS))


def _per_device(batch: Batch, devices: int) -> Batch:
    """[B, ...] leaves (a shared graph: none) -> [devices, B / devices, ...]."""
    split = lambda x: np.reshape(
        np.asarray(x), (devices, np.shape(x)[0] // devices) + np.shape(x)[1:]
    )
    graph = batch.graph
    if graph_batch_axis(batch) == 0:
        graph = jax.tree_util.tree_map(split, graph)
    return Window(graph=graph, fields=jax.tree_util.tree_map(split, batch.fields))


def _pmapped(step: Callable, mesh: Mesh, *, with_metrics: bool) -> Callable:
    """`step` under `jax.pmap` over the data devices (the state's copies donated); the
    batch's graph is mapped when stacked per example, broadcast when shared; metrics
    (the same on every device after the step's psum) are read from the first."""
    devices = mesh.devices[:, 0].tolist()
    compiled = {}

    def run(state, batch, rng):
        stacked = batch.graph.graph_mask.ndim == 3  # [data, B/data, 2]: one graph per example
        if stacked not in compiled:
            in_axes = (0, Window(graph=0 if stacked else None, fields=0), None)
            compiled[stacked] = jax.pmap(
                step,
                axis_name=sharding.DATA_AXIS,
                in_axes=in_axes,
                devices=devices,
                donate_argnums=0,
            )
        out = compiled[stacked](state, batch, rng)
        if not with_metrics:
            return out
        state, metrics = out
        return state, jax.tree_util.tree_map(lambda m: m[0], metrics)

    return run


def make_placement(
    parallel: ParallelSettings, *, batch_size: int, devices: Sequence[jax.Device] | None = None
) -> Placement:
    """The placement of a run from its `parallel` settings and global batch size.

    Raises:
      ValueError: naming the setting when the devices or the batch cannot be split as
        asked (sizes that do not divide, pmap with graph parallelism).
    """
    devices = list(jax.devices() if devices is None else devices)
    ensemble = int(getattr(parallel, "ensemble", 1))
    if ensemble > 1 and (parallel.backend == "pmap" or parallel.graph > 1):
        raise ValueError(
            f"parallel.ensemble={ensemble}: members are split over devices under "
            "parallel.backend=jit without graph parallelism (parallel.graph=1), got "
            f"backend={parallel.backend!r}, graph={parallel.graph}"
        )
    if parallel.backend == "pmap" and parallel.graph > 1:
        raise ValueError(
            f"parallel.graph={parallel.graph}: graph parallelism runs under "
            "parallel.backend=jit (shard_map with halo exchange), not pmap"
        )
    if parallel.graph > 1 and jax.process_count() > 1:
        raise ValueError(
            f"parallel.graph={parallel.graph}: graph parallelism runs in one process (its "
            "examples are split over the graph devices on the host); multi-process runs "
            "use parallel.graph=1"
        )
    if parallel.backend == "pmap" and jax.process_count() > 1:
        raise ValueError(
            "parallel.backend=pmap: a multi-process run (--distributed) uses "
            "parallel.backend=jit, whose mesh spans every process"
        )
    try:
        mesh = sharding.make_mesh(parallel.data, parallel.graph, devices, ensemble=ensemble)
    except ValueError as e:
        where = (
            f"parallel.data={parallel.data}, parallel.graph={parallel.graph}, "
            f"parallel.ensemble={ensemble}"
        )
        raise ValueError(f"{where}: {e}") from e
    data = int(mesh.shape[sharding.DATA_AXIS])
    procs = jax.process_count()
    if batch_size % data:
        raise ValueError(
            f"data.batch_size={batch_size}: expected a multiple of parallel.data={data} "
            "(each data device takes an equal share of the batch)"
        )
    if batch_size % procs:
        raise ValueError(
            f"data.batch_size={batch_size}: expected a multiple of the {procs} processes"
        )
    if procs > 1 and mesh.devices.size != len(devices):
        raise ValueError(
            f"parallel.data · parallel.graph = {mesh.devices.size}: a multi-process run "
            f"must use all {len(devices)} devices"
        )
    return Placement(parallel=parallel, mesh=mesh, batch_size=batch_size)


__all__ = ["Placement", "make_placement"]
