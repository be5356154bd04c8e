"""Published particle datasets (LagrangeBench, learning_to_simulate) converted to meshsim's
native particle dataset: `meta.json` (MeshGraphNets schema plus a `"particles"` section)
and `<split>.h5` files, written by `HDF5Writer`, one trajectory in memory at a time.

Fields: `position` dynamic `[T, -1, D] float32`, `particle_type` static `[1, -1, 1] int32`
and, for DeepMind datasets with global context, `step_context` dynamic `[T, 1, C] float32`.
The readers are in `meshsim.data.particles`.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from meshsim.atomic import staged_directory
from meshsim.data import hdf5
from meshsim.data.meta import save_meta
from meshsim.data.particles import (
    iter_particle_trajectories,
    load_particle_metadata,
    num_particle_trajectories,
    particle_format,
    particle_section,
    particle_splits,
    split_path,
)

__all__ = ["convert_particle_dataset", "particle_meta"]

logger = logging.getLogger(__name__)


def particle_meta(
    section: Mapping[str, Any], *, frames: int, context_width: int | None = None
) -> dict[str, Any]:
    """meshsim's `meta.json` for a particle dataset of `frames`-long trajectories."""
    dim = int(section["dim"])
    features = {
        "position": {"type": "dynamic", "shape": [frames, -1, dim], "dtype": "float32"},
        "particle_type": {"type": "static", "shape": [1, -1, 1], "dtype": "int32"},
    }
    if context_width is not None:
        features["step_context"] = {
            "type": "dynamic",
            "shape": [frames, 1, context_width],
            "dtype": "float32",
        }
    return {
        "simulator": section.get("source", "particles"),
        "dt": section["dt"],
        "features": features,
        "field_names": list(features),
        "trajectory_length": frames,
        "particles": dict(section),
    }


class _Moments:
    """Per-dimension mean and std of a stream of `[M, D]` samples (Chan et al.'s merge)."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, samples: np.ndarray) -> None:  # samples: [M, D]
        m = len(samples)
        if m == 0:
            return
        samples = samples.astype(np.float64)
        mean = samples.mean(0)
        m2 = ((samples - mean) ** 2).sum(0)
        total = self.count + m
        delta = mean - self.mean
        self.mean = self.mean + delta * m / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * m / total
        self.count = total

    def result(self) -> tuple[list[float], list[float]] | None:
        if not self.count:
            return None
        return np.asarray(self.mean).tolist(), np.sqrt(self.m2 / self.count).tolist()


def _differences(position: np.ndarray, section: Mapping[str, Any]) -> tuple:
    """Velocities `[T-1, N, D]` and accelerations `[T-2, N, D]` per frame (float64), with
    the minimum image on periodic axes."""
    vel = np.diff(position.astype(np.float64), axis=0)
    bounds = np.asarray(section["bounds"], np.float64)
    for axis, periodic in enumerate(section["periodic"]):
        if periodic:
            size = bounds[axis, 1] - bounds[axis, 0]
            vel[..., axis] -= size * np.round(vel[..., axis] / size)
    return vel, np.diff(vel, axis=0)


def _with_statistics(trajectories, section, vel: _Moments, acc: _Moments):
    """Passes trajectories through, accumulating fluid velocity/acceleration moments."""
    kinematic = list(section["kinematic_types"])
    for trajectory in trajectories:
        fluid = ~np.isin(trajectory["particle_type"][0, :, 0], kinematic)
        v, a = _differences(trajectory["position"][:, fluid], section)
        vel.add(v.reshape(-1, v.shape[-1]))
        acc.add(a.reshape(-1, a.shape[-1]))
        yield trajectory


def _split_lengths(directory: str, splits: Sequence[str], fmt: str, metadata) -> dict:
    """Frames per trajectory of each split, read from headers only."""
    if fmt == "learning_to_simulate":
        return {split: {int(metadata["sequence_length"]) + 1} for split in splits}
    lengths = {}
    for split in splits:
        path = split_path(directory, split, fmt)
        with hdf5._open(path) as f:
            lengths[split] = {
                int(f[g]["position"].shape[0])
                for g in f.keys()
                if hasattr(f[g], "keys") and "position" in f[g] and f[g]["position"].ndim == 3
            }
    return lengths


def convert_particle_dataset(
    src_dir: str | os.PathLike,
    dst_dir: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    progress: bool = True,
    compression: str | None = None,
    verify_data_crc: bool = True,
) -> dict[str, int]:
    """Converts a LagrangeBench or learning_to_simulate dataset to a native one.

    Streams one trajectory at a time. All files (`meta.json`, `<split>.h5`) appear in
    `dst_dir` together or not at all (`meshsim.atomic.staged_directory`). When the
    training split is converted, `vel_mean/std` and `acc_mean/std` in the `"particles"`
    section are recomputed from it (fluid particles, per frame, minimum image on periodic
    axes); the publisher's values stay under `source_stats`.

    Args:
      src_dir: the published dataset directory.
      dst_dir: the output directory; must differ from `src_dir`.
      splits: splits to convert (default all found).
      progress: show a tqdm bar per split.
      compression: HDF5 compression (None, "gzip", "lzf").
      verify_data_crc: check TFRecord data CRCs.

    Returns:
      `{split: number of trajectories}`.

    Raises:
      ValueError: not a particle dataset, unknown splits, splits whose trajectories differ
        in length (one meta.json holds one length: convert them into separate
        directories), or a bad file (DatasetFormatError naming file, trajectory, field).
    """
    from tqdm.auto import tqdm

    src_dir, dst_dir = os.fspath(src_dir), os.fspath(dst_dir)
    fmt = particle_format(src_dir)
    if fmt is None:
        raise ValueError(f"{src_dir} is not a LagrangeBench or learning_to_simulate dataset")
    if os.path.abspath(src_dir) == os.path.abspath(dst_dir):
        raise ValueError(f"dst_dir: must differ from src_dir ({src_dir}): file names collide")
    if compression not in hdf5.COMPRESSIONS:
        raise ValueError(f"compression: expected one of {hdf5.COMPRESSIONS}, got {compression!r}")
    metadata = load_particle_metadata(src_dir, fmt)
    available = particle_splits(src_dir, fmt)
    if isinstance(splits, str):
        raise TypeError(f"splits: expected a sequence of split names, got the string {splits!r}")
    splits = list(available if splits is None else splits)
    missing = [s for s in splits if s not in available]
    if missing or not splits:
        raise ValueError(f"splits {missing or splits} not in {src_dir}; found {available}")
    splits.sort(key=lambda s: s != "train")  # train first: its statistics go into meta.json
    totals = {s: num_particle_trajectories(src_dir, s, fmt) for s in splits}
    lengths = _split_lengths(src_dir, splits, fmt, metadata)
    found = sorted(set().union(*lengths.values()))
    if len(found) > 1:
        raise ValueError(
            f"{src_dir}: trajectories differ in length between or within splits "
            f"({ {s: sorted(v) for s, v in lengths.items()} }); one meta.json holds one "
            "trajectory length: convert those splits into separate directories (--splits)"
        )
    section = particle_section(metadata, fmt)
    counts: dict[str, int] = {}
    with staged_directory(dst_dir) as tmp:
        meta = None
        for split in splits:
            stream = iter_particle_trajectories(
                src_dir, split, fmt=fmt, metadata=metadata, verify_data_crc=verify_data_crc
            )
            first = next(stream, None)
            stream = stream if first is None else itertools.chain([first], stream)
            if meta is None:
                frames = first["position"].shape[0] if first is not None else (found or [1])[0]
                width = None
                if first is not None and "step_context" in first:
                    width = first["step_context"].shape[-1]
                meta = particle_meta(section, frames=frames, context_width=width)
                meta["converted_from"] = {"format": fmt, "directory": os.path.abspath(src_dir)}
            vel, acc = _Moments(), _Moments()
            if split == "train":
                stream = _with_statistics(stream, section, vel, acc)
            bar = tqdm(stream, total=totals[split], desc=f"convert {split}", disable=not progress)
            with hdf5.HDF5Writer(tmp, split, meta, compression=compression) as writer:
                for trajectory in bar:
                    writer.write(trajectory)
                for name, moments in (("vel", vel), ("acc", acc)):
                    if (result := moments.result()) is not None:
                        writer.meta["particles"][f"{name}_mean"] = result[0]
                        writer.meta["particles"][f"{name}_std"] = result[1]
            meta = writer.meta
            save_meta(meta, tmp)
            counts[split] = writer.num_written
    logger.info("converted %s dataset %s to %s: %s", fmt, src_dir, dst_dir, counts)
    return counts
