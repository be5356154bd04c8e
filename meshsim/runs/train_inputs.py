"""What a training run reads before its loop: this process's shard of the
trajectories, their lengths, the static fields each trajectory's graph is built
from, and the simulator placed on the devices, its meshes cut into parts once
(`meshsim.parallel`; the parts kept beside the dataset, `PartitionCache`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import jax

from meshsim.data.frame_cache import FrameCache
from meshsim.parallel.partition_cache import PARTITIONS_DIR, PartitionCache
from meshsim.parallel.per_mesh import MeshCatalog
from meshsim.parallel.placement import Placement
from meshsim.simulator import Simulator
from meshsim.tasks import Task
from meshsim.training.batches import OutOfCore

logger = logging.getLogger(__name__)


class ProcessShard(Sequence):
    """Trajectories `process_index::process_count` of a dataset: what one process reads."""

    def __init__(self, dataset, index: int, count: int):
        self._dataset, self._indices = dataset, list(range(index, len(dataset), count))
        self.path = getattr(dataset, "path", "trajectories")

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i):
        return self._dataset[self._indices[i]]

    def lazy(self, i, cache):
        """Trajectory i read frame by frame (`meshsim.data.Dataset.lazy`)."""
        return self._dataset.lazy(self._indices[i], cache)


def process_shard(dataset, lengths: list[int]):
    """(this process's trajectories, their lengths); the whole dataset in one process."""
    count, index = jax.process_count(), jax.process_index()
    if count == 1:
        return dataset, lengths
    if len(dataset) < count:
        raise ValueError(
            f"{getattr(dataset, 'path', 'dataset')}: {len(dataset)} trajectories cannot feed "
            f"{count} processes (each reads its own shard)"
        )
    return ProcessShard(dataset, index, count), lengths[index::count]


def distinct_meshes(statics: Sequence, task: Task) -> MeshCatalog:
    """The distinct meshes of the training trajectories (graph parallelism and
    sequential partitions cut each once), with the positions to cut them along."""
    catalog = MeshCatalog()
    for i in range(len(statics)):  # by index: out of core, statics is a lazy sequence
        static = statics[i]
        structure = task.structure(static)
        catalog.add(structure, lambda t=static, g=structure: task.partition_positions(t, g))
    return catalog


def placed_simulator(
    placement: Placement, sim: Simulator, statics: Sequence, data_path: str | None = None
) -> Simulator:
    """The simulator the steps run: graph-partitioned when `parallel.graph` > 1, run on
    sequential parts when `parallel.partitions` > 1. Each mesh's parts are kept in
    `<data_path>/partitions/` (`PartitionCache`) and read from there by later runs."""
    if placement.graph == 1 and placement.partitions == 1:
        return sim
    catalog = distinct_meshes(statics, sim.task)
    cache = PartitionCache(os.path.join(data_path, PARTITIONS_DIR)) if data_path else None
    placed = placement.simulator(sim, catalog.meshes, cache)
    if len(catalog) > 1:
        logger.info("partitions: %d distinct meshes, each cut once", len(catalog))
    if cache is not None and cache.read:
        logger.info("partitions: %d read from %s", cache.read, cache.directory)
    if placement.partitions > 1:
        sizes = placed.partition.parts.sizes()
        logger.info(
            "sequential partitions: %d parts of up to %d nodes and %d edges (%d hops of halo)",
            placement.partitions,
            max(sizes["nodes"]),
            max(sizes["edges"]),
            placed.partition.parts.hops,
        )
        return placed
    stats = placed.partition.pgraph.stats()
    logger.info(
        "graph parallel: %d parts, halo %.2f%% of the nodes",
        placement.graph,
        100 * stats.halo_fraction(),
    )
    return placed


def trajectory_lengths(dataset, task: Task) -> list[int]:
    """Frames per trajectory: from meta.json for fixed-length fields (no data read),
    otherwise by reading the state field of each trajectory."""
    feature = dataset.meta.get("features", {}).get(task.state_sources[0], {})
    shape = feature.get("shape") or [-1]
    if feature.get("type") == "dynamic" and shape[0] > 0:  # [T, -1, d] with T fixed
        return [int(shape[0])] * len(dataset)
    first = task.state_sources[0]
    return [int(t[first].shape[0]) for t in dataset.iter(fields=[first])]


def trajectory_statics(dataset, task: Task, cache: FrameCache | None = None):
    """The fields each trajectory's structure is built from (not the dynamic ones); out
    of core (`cache`), lazy trajectories read one at a time when indexed instead, so
    a structure that samples frames (world edges) reads only those."""
    if cache is not None:
        return OutOfCore(dataset, cache)
    fields = task.structure_fields
    return list(dataset.iter(fields=None if fields is None else list(fields)))
