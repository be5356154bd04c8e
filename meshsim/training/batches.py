"""Training windows → padded, stacked batches, prefetched in the background.

A batch stacks `batch_size` windows (`meshsim.graph.window`) on a leading axis: every
field is `[B, ...]`, each window padded to the same `PaddingBudget`; the graph is
stacked too, or held once when the task's structure is shared. The trainer `vmap`s
the model over that axis, and the same axis is what a data-parallel run shards
across devices.

Order is a pure function of `(seed, step)`: each epoch permutes the trajectories
(seeded by `seed` and the epoch), walks them in groups of `pool_size` resident
trajectories and shuffles all windows of a group. Resuming at step s skips
s·B indices without loading anything, so an interrupted run sees exactly the
batches an uninterrupted one would.

Out of core (a `FrameCache`, `data.cache_bytes`): the pool holds each trajectory's
static fields and structure only, and a window reads just its frames from disk
through the cache, whose bytes never pass its cap (`meshsim.data.hdf5_lazy`). The
windows, hence the batches, are those of the in-memory pipeline.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np

from meshsim.data.frame_cache import FrameCache
from meshsim.graph import PaddingBudget
from meshsim.graph.window import Batch, pad_window, stack_windows
from meshsim.tasks.base import Task
from meshsim.validation import check_int, is_int

logger = logging.getLogger(__name__)


def _nonempty(trajectories: Sequence) -> int:
    """len(trajectories), or a ValueError naming the split file (a Dataset's `path`)."""
    count = len(trajectories)
    if count == 0:
        source = getattr(trajectories, "path", type(trajectories).__name__)
        raise ValueError(f"trajectories: expected at least one trajectory, got none ({source})")
    return count


def _structure(task: Task, trajectories: Sequence, index: int):
    """`task.structure` of trajectory `index`; a bad mesh (e.g. a degenerate cell) names
    the split file and the trajectory."""
    trajectory = trajectories[index]
    try:
        return trajectory, task.structure(trajectory)
    except ValueError as e:
        source = getattr(trajectories, "path", "trajectories")
        raise ValueError(f"{source}: trajectory {index}: {e}") from e


def dataset_budget(trajectories: Sequence, task: Task, *, multiple: int = 64) -> PaddingBudget:
    """One padding budget (single graph + padding graph) for every structure of a dataset.

    Args:
      trajectories: random-access trajectories (only their static fields are read by
        the mesh tasks; pass `dataset.iter(fields=[...])` results to read less).
      task: builds each trajectory's structure.
    """
    graphs = [_structure(task, trajectories, i)[1] for i in range(_nonempty(trajectories))]
    return PaddingBudget.for_dataset(graphs, graphs_per_batch=1, multiple=multiple)


def window_indices(
    lengths: Sequence[int],
    task: Task,
    *,
    seed: int,
    pool_size: int,
    shuffle: bool = True,
    horizon: int = 1,
) -> Iterator[tuple[int, int]]:
    """Endless (trajectory, t) stream, a pure function of its arguments (see module doc).

    `horizon`: targets per window (multi-step training); only times with that many
    frames after them are drawn.
    """
    if not lengths:
        raise ValueError("lengths: the dataset has no trajectory")
    pool_size = check_int("pool_size", pool_size, minimum=1)
    bad = [n for n in lengths if not is_int(n, minimum=0)]
    if bad:
        raise ValueError(f"lengths: expected ints ≥ 0 (frames per trajectory), got {bad[0]!r}")
    times = [task.window_times(n, horizon) for n in lengths]
    if not any(len(t) for t in times):
        raise ValueError(
            f"lengths: no trajectory is long enough for an order-{task.order} window: {lengths}"
        )
    epoch = 0
    while True:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
        for g in range(0, len(order), pool_size):
            group = order[g : g + pool_size]
            pairs = np.array([(i, t) for i in group for t in times[i]], np.int64).reshape(-1, 2)
            if shuffle:
                pairs = pairs[rng.permutation(len(pairs))]
            for i, t in pairs:
                yield int(i), int(t)
        epoch += 1


class OutOfCore(Sequence):
    """The trajectories of a dataset that reads frames on demand (`lazy(i, cache)`: an
    HDF5 `meshsim.data.Dataset`, a `meshsim.data.weather.WeatherDataset`), as lazy
    trajectories reading through `cache`.

    Nothing is read until a trajectory is indexed; indexing reads its static fields.
    """

    def __init__(self, dataset: Sequence, cache: FrameCache):
        if not callable(getattr(dataset, "lazy", None)):
            raise ValueError(
                "cache_bytes: out-of-core batches need a dataset that reads frames on demand "
                f"(an HDF5 split or a WeatherBench2 grid store), got {type(dataset).__name__}"
            )
        if not isinstance(cache, FrameCache):
            raise TypeError(f"cache: expected a FrameCache, got {type(cache).__name__}")
        self.dataset, self.cache = dataset, cache
        self.path = getattr(dataset, "path", type(dataset).__name__)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset.lazy(index, self.cache)


class _TrajectoryCache:
    """The last `size` trajectories loaded, with their structure graphs."""

    def __init__(self, trajectories: Sequence, task: Task, size: int):
        self._trajectories = trajectories
        self._task = task
        self._size = size
        self._cache: OrderedDict[int, tuple] = OrderedDict()

    def get(self, index: int):
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        entry = _structure(self._task, self._trajectories, index)
        self._cache[index] = entry
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return entry


def iter_batches(
    trajectories: Sequence,
    task: Task,
    *,
    batch_size: int,
    budget: PaddingBudget,
    seed: int = 0,
    start_step: int = 0,
    pool_size: int = 16,
    shuffle: bool = True,
    lengths: Sequence[int] | None = None,
    horizon: int = 1,
    cache: FrameCache | None = None,
) -> Iterator[Batch]:
    """Endless batches of training windows, starting at batch `start_step`. Host side.

    Args:
      trajectories: random-access sequence of trajectory dicts (a list, or
        `meshsim.data.open_dataset(...)`).
      task: decides which fields a window holds.
      batch_size: windows per batch (B).
      budget: padding for one window (see `dataset_budget`).
      seed: with `start_step`, what the batch stream is a pure function of.
      start_step: the step the stream starts at (a resumed run's step).
      pool_size: trajectories resident at once (memory vs. shuffle quality).
      lengths: trajectory lengths, if known (avoids loading each once to count).
      horizon: targets per window (`Task.window`); > 1 for multi-step training.
      cache: read out of core through this byte-bounded frame cache (`OutOfCore`):
        the pool then holds static fields and structures only. None: whole
        trajectories are loaded (the in-memory pipeline).
    """
    if cache is not None:
        trajectories = OutOfCore(trajectories, cache)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    horizon = check_int("horizon", horizon, minimum=1)
    start_step = check_int("start_step", start_step, minimum=0)
    count = _nonempty(trajectories)
    if lengths is None:
        lengths = [task.num_frames(trajectories[i]) for i in range(count)]
    elif len(lengths) != count:
        raise ValueError(
            f"lengths: expected {count} entries (one per trajectory), got {len(lengths)}"
        )
    indices = window_indices(
        lengths, task, seed=seed, pool_size=pool_size, shuffle=shuffle, horizon=horizon
    )
    for _ in range(start_step * batch_size):
        next(indices)
    cache = _TrajectoryCache(trajectories, task, pool_size)
    while True:
        windows = []
        for _ in range(batch_size):
            i, t = next(indices)
            traj, graph = cache.get(i)
            window = task.window(traj, t, graph, horizon)
            windows.append(pad_window(window, budget, task.node_set))
        yield stack_windows(windows, shared_graph=task.shared_structure)


def prefetch(
    iterator: Iterator, size: int = 2, transfer: Callable | None = jax.device_put
) -> Iterator:
    """Runs `iterator` (and `transfer`, e.g. device_put or a sharded put) in a background
    thread, `size` items ahead, so the device never waits for the host.

    Exceptions in the producer are re-raised in the consumer. Closing the returned
    generator stops the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=check_int("size", size, minimum=1))
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterator:
                if stop.is_set():
                    return
                q.put(transfer(item) if transfer else item)
            q.put(done)
        except BaseException as e:  # surfaced in the consumer
            q.put(e)

    thread = threading.Thread(target=produce, name="meshsim-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
