"""`rollouts.h5`: rollouts written trajectory by trajectory, chunk by chunk, and read back.

Layout, one group per trajectory::

    attrs: state_field
    /00000/pred      [S + 1, N, d] float32   frame 0 is the initial state
    /00000/truth     [K, N, d] float32       the ground truth of frames 0..K-1 (K ≤ S + 1)
    /00000/mesh_pos, cells, node_type        frame 0 of the trajectory's static fields

Frames past the end of the data (a rollout longer than the trajectory) have no
ground truth, so `truth` is shorter than `pred` there. The file is written under a
temporary name and appears whole or not at all (`meshsim.atomic`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

from meshsim import atomic

# Static fields stored with each rollout, when present (particles have a type, no mesh).
MESH_FIELDS = ("mesh_pos", "cells", "node_type", "particle_type")


class RolloutsWriter(atomic.AtomicWriter):
    """Writes `rollouts.h5` trajectory by trajectory, chunk by chunk; atomic.

    The file is built under a temporary name (`meshsim.atomic.AtomicWriter`) and
    published by `commit`; `discard` (or an exception in a `with` block) removes it.

    Args:
      path: the file to write, e.g. `<workdir>/rollouts.h5`.
      state_field: the task's state field, stored as the `state_field` attribute.
    """

    def __init__(self, path: str | os.PathLike, state_field: str):
        self._state_field = state_field
        self.count = 0
        super().__init__(path)

    def _open(self, tmp: str):
        import h5py

        return h5py.File(tmp, "w")

    def _finish(self, file) -> None:
        file.attrs["state_field"] = self._state_field
        file.flush()  # a full disk raises here; HDF5 can crash in close() instead
        file.close()

    def add(self, trajectory, frames: int, truth: np.ndarray) -> Callable[[int, np.ndarray], None]:
        """Starts the next trajectory's group: its `truth [K, N, d]`, its mesh and a
        pre-sized `pred [frames, N, d]`; returns `write(t, chunk)` that fills `pred[t:]`."""
        group = self._handle().create_group(f"{self.count:05d}")
        self.count += 1
        group["truth"] = np.asarray(truth, np.float32)
        for name in MESH_FIELDS:
            if name in trajectory:
                group[name] = np.asarray(trajectory[name])[0]
        pred = group.create_dataset("pred", shape=(frames, *truth.shape[1:]), dtype=np.float32)

        def write(t: int, chunk: np.ndarray) -> None:
            pred[t : t + chunk.shape[0]] = chunk

        return write


def iter_rollouts_h5(path: str | os.PathLike) -> Iterator[dict]:
    """The groups of a `rollouts.h5`, one at a time, as dicts of h5py datasets (read
    lazily: index them, e.g. `r["pred"][t]`). The file stays open while iterating."""
    import h5py

    with h5py.File(path, "r") as f:
        for _, group in sorted(f.items()):
            yield {k: group[k] for k in group}


def load_rollouts_h5(path: str | os.PathLike) -> list[dict]:
    """Every group of a `rollouts.h5` read into numpy arrays (small files only)."""
    return [{k: v[()] for k, v in r.items()} for r in iter_rollouts_h5(path)]
