"""Published particle datasets (LagrangeBench, DeepMind learning_to_simulate) read and
converted to meshsim's native particle dataset.

Source layouts (a directory with `metadata.json` and one file per split)::

    LagrangeBench          <split>.h5: one group per trajectory ("00000", ...), each with
                             position      [T, N, D] float32
                             particle_type [N] int (0 fluid, 1 wall, 2 moving wall, 3 rigid)
                           metadata.json: dim, dt (solver step), write_every, bounds,
                             default_connectivity_radius, periodic_boundary_conditions
                             (always 3 booleans, also in 2D), vel/acc mean/std, case, ...
    learning_to_simulate   <split>.tfrecord: one tf.train.SequenceExample per trajectory,
                             context  key (int64), particle_type (bytes: int64 [N])
                             lists    position (per step bytes: float32 [N*D]),
                                      step_context (per step bytes: float32 [C], optional)
                           metadata.json: dim, dt, bounds, sequence_length (T - 1),
                             default_connectivity_radius, vel/acc mean/std,
                             context_mean/std (with step_context); kinematic type 3.

A trajectory dict in meshsim's convention: `position [T, N, D] float32`, `particle_type
[1, N, 1] int32` and, where the source has it, `step_context [T, 1, C] float32`. The
native dataset's `meta.json` holds the MeshGraphNets schema plus a `"particles"` section
(dim, frame dt, bounds, periodic, radius, kinematic_types, vel/acc statistics, source).
Conversion lives in `meshsim.data.particle_convert`, inspection in
`meshsim.data.particle_inspect`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from meshsim.data import example_proto, hdf5, tfrecord
from meshsim.data.meta import DatasetFormatError

__all__ = [
    "KINEMATIC_TYPES",
    "PARTICLE_FORMATS",
    "iter_particle_trajectories",
    "load_particle_metadata",
    "num_particle_trajectories",
    "particle_format",
    "particle_section",
    "particle_splits",
    "split_path",
]

logger = logging.getLogger(__name__)

PARTICLE_FORMATS = ("lagrangebench", "learning_to_simulate")
# Particle ids whose motion is prescribed, not predicted: LagrangeBench's walls and moving
# walls; DeepMind's KINEMATIC_PARTICLE_ID (their train.py).
KINEMATIC_TYPES = {"lagrangebench": (1, 2), "learning_to_simulate": (3,)}
METADATA_FILENAME = "metadata.json"
_SUFFIX = {"lagrangebench": ".h5", "learning_to_simulate": ".tfrecord"}
_REQUIRED = {
    "lagrangebench": ("dim", "dt", "bounds", "default_connectivity_radius"),
    "learning_to_simulate": ("dim", "dt", "bounds", "default_connectivity_radius"),
}
_REQUIRED["lagrangebench"] += ("periodic_boundary_conditions",)
_REQUIRED["learning_to_simulate"] += ("sequence_length",)
_STATS = ("vel_mean", "vel_std", "acc_mean", "acc_std")
_MAPPED = {"dim", "dt", "bounds", "default_connectivity_radius", "periodic_boundary_conditions"}
_USUAL_SPLITS = ("train", "valid", "test")


# --------------------------------------------------------------------------- detection


def particle_format(directory: str | os.PathLike) -> str | None:
    """`"lagrangebench"`, `"learning_to_simulate"` or None (not a published particle layout).

    A directory is a published particle dataset when it holds `metadata.json` but no
    meshsim `meta.json`; `<split>.h5` files make it LagrangeBench, `<split>.tfrecord`
    files DeepMind's. A native meshsim directory (with `meta.json`) gives None.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory) or os.path.exists(os.path.join(directory, "meta.json")):
        return None
    if not os.path.isfile(os.path.join(directory, METADATA_FILENAME)):
        return None
    for fmt in PARTICLE_FORMATS:
        if particle_splits(directory, fmt):
            return fmt
    return None


def particle_splits(directory: str | os.PathLike, fmt: str) -> list[str]:
    """Split names with a file of `fmt`'s kind in `directory` (train/valid/test first)."""
    _check_format(fmt)
    suffix = _SUFFIX[fmt]
    names = {
        entry[: -len(suffix)]
        for entry in os.listdir(directory)
        if entry.endswith(suffix) and not entry.startswith(".") and len(entry) > len(suffix)
    }
    usual = [s for s in _USUAL_SPLITS if s in names]
    return usual + sorted(names - set(usual))


def _check_format(fmt: str) -> None:
    if fmt not in PARTICLE_FORMATS:
        raise ValueError(f"fmt: expected one of {PARTICLE_FORMATS}, got {fmt!r}")


def split_path(directory: str | os.PathLike, split: str, fmt: str) -> str:
    """`<directory>/<split>.h5` (LagrangeBench) or `.tfrecord` (learning_to_simulate)."""
    return os.path.join(os.fspath(directory), split + _SUFFIX[fmt])


# --------------------------------------------------------------------------- metadata


def _number(metadata: Mapping, key: str, path: str, *, positive: bool = True) -> float:
    value = metadata[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{path}: {key!r} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{path}: {key!r} must be > 0, got {value!r}")
    return float(value)


def load_particle_metadata(directory: str | os.PathLike, fmt: str) -> dict[str, Any]:
    """Reads and checks a publisher's `metadata.json`.

    Checks: the keys every reader needs (`dim` 2 or 3, `dt` > 0, `bounds` `[[lo, hi]] * dim`
    with lo < hi, `default_connectivity_radius` > 0; LagrangeBench also
    `periodic_boundary_conditions`, a list of ≥ dim booleans; DeepMind `sequence_length`,
    an int ≥ 1) and the lengths of `vel_*`/`acc_*` (dim) where present.

    Raises:
      FileNotFoundError: no metadata.json.
      ValueError: naming the file, the key, what was expected and what was found.
    """
    _check_format(fmt)
    path = os.path.join(os.fspath(directory), METADATA_FILENAME)
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"no {METADATA_FILENAME} at {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(metadata).__name__}")
    missing = [key for key in _REQUIRED[fmt] if key not in metadata]
    if missing:
        raise ValueError(
            f"{path}: missing required key{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))} ({fmt} metadata needs {list(_REQUIRED[fmt])})"
        )
    dim = metadata["dim"]
    if dim not in (2, 3) or isinstance(dim, bool):
        raise ValueError(f"{path}: 'dim' must be 2 or 3, got {dim!r}")
    _number(metadata, "dt", path)
    _number(metadata, "default_connectivity_radius", path)
    bounds = metadata["bounds"]
    try:
        array = np.asarray(bounds, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != (dim, 2) or not (array[:, 0] < array[:, 1]).all():
        raise ValueError(f"{path}: 'bounds' must be [[lo, hi]] * {dim} with lo < hi, got {bounds}")
    if fmt == "lagrangebench":
        pbc = metadata["periodic_boundary_conditions"]
        if not isinstance(pbc, list) or len(pbc) < dim or not all(isinstance(p, bool) for p in pbc):
            raise ValueError(
                f"{path}: 'periodic_boundary_conditions' must be a list of at least {dim} "
                f"booleans, got {pbc!r}"
            )
    else:
        length = metadata["sequence_length"]
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"{path}: 'sequence_length' must be an int >= 1, got {length!r}")
    for key in _STATS:
        if key in metadata and np.shape(metadata[key]) != (dim,):
            raise ValueError(f"{path}: {key!r} must hold {dim} numbers, got {metadata[key]!r}")
    return metadata


def particle_section(metadata: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """meshsim's `"particles"` meta section from a publisher's (checked) metadata.

    `dt` is the time between stored frames: LagrangeBench's `dt` is the solver step, so
    it is multiplied by `write_every` (kept, with `solver_dt`). `periodic` keeps the first
    `dim` entries (LagrangeBench always writes three). The publisher's `vel_*`/`acc_*`
    are copied here and under `source_stats`; `convert_particle_dataset` replaces the
    former with statistics of the converted training split. Other keys are kept as they
    are (case, solver, dx, viscosity, sequence_length, context_mean, ...).
    """
    _check_format(fmt)
    dim = int(metadata["dim"])
    section = {k: v for k, v in metadata.items() if k not in _MAPPED and k not in _STATS}
    section.update(dim=dim, dt=float(metadata["dt"]))
    if fmt == "lagrangebench":
        write_every = metadata.get("write_every", 1)
        section["dt"] = float(metadata["dt"]) * write_every
        section["solver_dt"] = float(metadata["dt"])
        periodic = [bool(p) for p in metadata["periodic_boundary_conditions"][:dim]]
    else:
        periodic = [False] * dim  # DeepMind's datasets are bounded boxes
    section.update(
        bounds=[[float(lo), float(hi)] for lo, hi in metadata["bounds"]],
        periodic=periodic,
        radius=float(metadata["default_connectivity_radius"]),
        kinematic_types=list(KINEMATIC_TYPES[fmt]),
        source=fmt,
    )
    stats = {key: [float(v) for v in metadata[key]] for key in _STATS if key in metadata}
    section.update(stats)
    if stats:
        section["source_stats"] = stats
    return section


# --------------------------------------------------------------------------- readers


def _check_position(position: np.ndarray, dim: int, where: str) -> np.ndarray:
    """`position` as `[T, N, dim] float32`, finite; DatasetFormatError otherwise."""
    if position.ndim != 3 or position.shape[2] != dim or position.dtype.kind != "f":
        raise DatasetFormatError(
            f"{where}: field 'position': expected a float [T, N, {dim}] array (dim from "
            f"{METADATA_FILENAME}), got {position.dtype.name} shape {list(position.shape)}"
        )
    position = position.astype(np.float32, copy=False)
    finite = np.isfinite(position)
    if not finite.all():
        first = [int(i) for i in np.unravel_index(int(np.argmin(finite)), position.shape)]
        raise DatasetFormatError(
            f"{where}: field 'position': expected finite values, got "
            f"{int(finite.size - finite.sum())} NaN/Inf, the first at index {first}"
        )
    return position


def _check_types(types: np.ndarray, num_particles: int, where: str) -> np.ndarray:
    """`types [N] int` as meshsim's `particle_type [1, N, 1] int32`."""
    if types.ndim != 1 or types.dtype.kind not in "iu" or len(types) != num_particles:
        raise DatasetFormatError(
            f"{where}: field 'particle_type': expected an int [N={num_particles}] array "
            f"(N from 'position'), got {types.dtype.name} shape {list(types.shape)}"
        )
    if types.size and (types.min() < 0 or types.max() > np.iinfo(np.int32).max):
        raise DatasetFormatError(
            f"{where}: field 'particle_type': ids must lie in [0, 2**31), got range "
            f"[{types.min()}, {types.max()}]"
        )
    return types.astype(np.int32).reshape(1, -1, 1)


def _iter_lagrangebench(path: str, metadata: Mapping[str, Any]) -> Iterator[dict]:
    with hdf5._open(path) as f:
        for name in f.keys():  # h5py lists groups in name order, as LagrangeBench reads them
            group, where = f[name], f"{path}: trajectory group {name!r}"
            if not hasattr(group, "keys") or "position" not in group:
                raise DatasetFormatError(
                    f"{where}: field 'position' is missing (LagrangeBench layout: "
                    "<group>/position [T, N, D], <group>/particle_type [N])"
                )
            if "particle_type" not in group:
                raise DatasetFormatError(f"{where}: field 'particle_type' is missing")
            position = _check_position(group["position"][()], int(metadata["dim"]), where)
            types = _check_types(group["particle_type"][()], position.shape[1], where)
            yield {"position": position, "particle_type": types}


def _float_steps(steps: list, name: str, where: str) -> list[np.ndarray]:
    """One raw-bytes entry per step, each decoded as little-endian `float32 [n]`."""
    out = []
    for t, value in enumerate(steps):
        if isinstance(value, np.ndarray) or len(value) != 1:
            raise DatasetFormatError(
                f"{where}: feature list {name!r} step {t}: expected one bytes entry "
                f"(raw float32 array), got {value!r:.60}"
            )
        if len(value[0]) % 4:
            raise DatasetFormatError(
                f"{where}: feature list {name!r} step {t}: {len(value[0])} bytes is not a "
                "whole number of float32 values"
            )
        out.append(np.frombuffer(value[0], dtype="<f4"))
    return out


def _decode_simulation(record: bytes, metadata: Mapping[str, Any], where: str) -> dict:
    """One DeepMind SequenceExample as a trajectory dict."""
    try:
        context, lists = example_proto.decode_sequence_example(record)
    except ValueError as e:
        raise DatasetFormatError(f"{where}: not a valid tf.train.SequenceExample: {e}") from None
    dim, frames = int(metadata["dim"]), int(metadata["sequence_length"]) + 1
    if "position" not in lists:
        raise DatasetFormatError(
            f"{where}: feature list 'position' is missing (found {sorted(lists)})"
        )
    steps = _float_steps(lists["position"], "position", where)
    if len(steps) != frames:
        raise DatasetFormatError(
            f"{where}: feature list 'position': expected {frames} steps (sequence_length + 1 "
            f"from {METADATA_FILENAME}), got {len(steps)}"
        )
    sizes = {len(s) for s in steps}
    if len(sizes) != 1 or sizes.pop() % dim:
        raise DatasetFormatError(
            f"{where}: feature list 'position': every step must hold N * {dim} float32 "
            f"values for one N, got sizes {sorted({len(s) for s in steps})}"
        )
    position = _check_position(np.stack(steps).reshape(frames, -1, dim), dim, where)
    raw = context.get("particle_type")
    if raw is None or isinstance(raw, np.ndarray) or len(raw) != 1 or len(raw[0]) % 8:
        raise DatasetFormatError(
            f"{where}: context feature 'particle_type': expected one bytes entry holding "
            f"int64 [N], got {raw!r:.60}"
        )
    out = {
        "position": position,
        "particle_type": _check_types(np.frombuffer(raw[0], "<i8"), position.shape[1], where),
    }
    if "step_context" in lists:
        ctx = _float_steps(lists["step_context"], "step_context", where)
        width = len(metadata.get("context_mean", ctx[0] if ctx else ()))
        if len(ctx) != frames or any(len(c) != width for c in ctx):
            raise DatasetFormatError(
                f"{where}: feature list 'step_context': expected {frames} steps of {width} "
                f"float32 (context_mean), got {len(ctx)} steps of sizes "
                f"{sorted({len(c) for c in ctx})}"
            )
        out["step_context"] = np.stack(ctx).astype(np.float32).reshape(frames, 1, width)
    return out


def _iter_simulations(path: str, metadata: Mapping[str, Any], verify: bool) -> Iterator[dict]:
    for index, record in enumerate(tfrecord.iter_tfrecord_records(path, verify_data_crc=verify)):
        yield _decode_simulation(record, metadata, f"{path}: record {index}")


def iter_particle_trajectories(
    directory: str | os.PathLike,
    split: str,
    *,
    fmt: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    verify_data_crc: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Streams one split of a published particle dataset, one trajectory in memory.

    Args:
      directory: the dataset directory (with `metadata.json`).
      split: e.g. `"train"`.
      fmt: `"lagrangebench"` or `"learning_to_simulate"`; default detected.
      metadata: the checked `metadata.json` (default read from `directory`).
      verify_data_crc: check TFRecord data CRCs.

    Yields:
      `{"position": [T, N, D] float32, "particle_type": [1, N, 1] int32}`, plus
      `"step_context": [T, 1, C] float32` where the DeepMind records hold it.

    Raises:
      DatasetFormatError: a trajectory breaks the layout (names file, trajectory, field).
    """
    directory = os.fspath(directory)
    fmt = fmt or particle_format(directory)
    if fmt is None:
        raise ValueError(f"{directory} is not a LagrangeBench or learning_to_simulate dataset")
    _check_format(fmt)
    metadata = load_particle_metadata(directory, fmt) if metadata is None else metadata
    path = split_path(directory, split, fmt)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no {split}{_SUFFIX[fmt]} in {directory}; splits: {particle_splits(directory, fmt)}"
        )
    if fmt == "lagrangebench":
        return _iter_lagrangebench(path, metadata)
    return _iter_simulations(path, metadata, verify_data_crc)


def num_particle_trajectories(directory: str | os.PathLike, split: str, fmt: str) -> int:
    """Trajectories in one split: HDF5 groups, or TFRecord records (headers only, so a
    truncated file fails here)."""
    path = split_path(os.fspath(directory), split, fmt)
    if fmt == "lagrangebench":
        with hdf5._open(path) as f:
            return len(f.keys())
    return len(tfrecord.index_tfrecord(path))
