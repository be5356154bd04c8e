"""Summaries of particle datasets (native, LagrangeBench or learning_to_simulate layout).

What `meshsim inspect` prints for particles: per split the trajectory, frame and particle
counts, the particle types, and the mean number of neighbours per particle within the
connectivity radius on frame 0 of the first trajectory: the edge count that a padding
budget for a radius graph needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from meshsim.data import hdf5
from meshsim.data.meta import load_meta
from meshsim.data.particles import (
    iter_particle_trajectories,
    load_particle_metadata,
    num_particle_trajectories,
    particle_format,
    particle_section,
    particle_splits,
    split_path,
)
from meshsim.validation import check_int

__all__ = [
    "format_particle_inspection",
    "inspect_particle_dataset",
    "is_particle_dataset",
    "radius_neighbours",
]

_FIELDS = ("position", "particle_type")


def is_particle_dataset(directory: str | os.PathLike) -> bool:
    """True for a published particle layout or a native dataset with a `"particles"` meta."""
    directory = os.fspath(directory)
    if particle_format(directory) is not None:
        return True
    path = os.path.join(directory, "meta.json")
    if not os.path.isfile(path):
        return False
    try:
        return "particles" in load_meta(directory)
    except ValueError:
        return False  # the mesh inspector reports the bad meta.json


def radius_neighbours(
    position: np.ndarray,
    radius: float,
    *,
    bounds: Sequence[Sequence[float]] | None = None,
    periodic: Sequence[bool] | None = None,
) -> dict[str, float]:
    """Pairs of particles at distance ≤ `radius` (host side, `scipy.spatial.cKDTree`).

    Args:
      position: `[N, D] float` positions of one frame.
      radius: the connectivity radius (> 0).
      bounds: `[[lo, hi]] * D`, needed where an axis is periodic.
      periodic: `[D] bool`; periodic axes use the minimum image (box `hi - lo`).

    Returns:
      `{"particles": N, "edges": directed edges (2 × pairs, no self edges),
      "mean": edges / N}`. Cost: O(N log N + edges).
    """
    from scipy.spatial import cKDTree

    position = np.asarray(position, dtype=np.float64)
    if position.ndim != 2:
        raise ValueError(f"position: expected [N, D], got shape {list(position.shape)}")
    if not radius > 0:
        raise ValueError(f"radius: expected > 0, got {radius!r}")
    boxsize = None
    if periodic is not None and any(periodic):
        if bounds is None:
            raise ValueError("bounds: needed for periodic axes, got None")
        box = np.asarray(bounds, np.float64)
        lo, size = box[:, 0], box[:, 1] - box[:, 0]
        mask = np.asarray(periodic, bool)
        # cKDTree wraps axes with boxsize > 0 and leaves those with 0 open.
        boxsize = np.where(mask, size, 0.0)
        position = np.where(mask, np.mod(position - lo, np.where(mask, size, 1.0)), position)
        position = np.where(mask & (position >= size), 0.0, position)  # mod rounding to size
    tree = cKDTree(position, boxsize=boxsize)
    pairs = len(tree.query_pairs(radius, output_type="ndarray"))
    n = len(position)
    return {"particles": n, "edges": 2 * pairs, "mean": 2 * pairs / n if n else 0.0}


def _stats(values: list[int]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": int(min(values)), "mean": float(np.mean(values)), "max": int(max(values))}


def _source(directory: str) -> tuple[str, dict, list[str], tuple]:
    """(format, particles section, splits, (iterate(split), count(split), path(split)))."""
    fmt = particle_format(directory)
    if fmt is None:
        meta = load_meta(directory)
        names = {e[:-3] for e in os.listdir(directory) if e.endswith(".h5") and e[0] != "."}
        usual = [s for s in ("train", "valid", "test") if s in names]
        splits = usual + sorted(names - set(usual))

        def iterate(split: str) -> Iterator[dict]:
            return hdf5.iter_hdf5_trajectories(directory, split, meta=meta, fields=_FIELDS)

        def count(split: str) -> int:
            return hdf5.num_trajectories(directory, split)

        def path(split: str) -> str:
            return hdf5.hdf5_path(directory, split)

        return "hdf5", dict(meta["particles"]), splits, (iterate, count, path)
    metadata = load_particle_metadata(directory, fmt)

    def iterate(split: str) -> Iterator[dict]:
        return iter_particle_trajectories(directory, split, fmt=fmt, metadata=metadata)

    def count(split: str) -> int:
        return num_particle_trajectories(directory, split, fmt)

    def path(split: str) -> str:
        return split_path(directory, split, fmt)

    section = particle_section(metadata, fmt)
    return fmt, section, particle_splits(directory, fmt), (iterate, count, path)


def inspect_particle_dataset(
    directory: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    max_trajectories: int | None = None,
) -> dict[str, Any]:
    """Summarizes a particle dataset directory (native, LagrangeBench or DeepMind).

    Reads every trajectory (up to `max_trajectories` per split), checking each as the
    readers do (shapes, types, finite positions, TFRecord CRCs).

    Returns:
      `{"directory", "kind": "particles", "format", "particles": the meta section (dim,
      dt, radius, bounds, periodic, kinematic_types, source, ...), "splits": {split:
      {"path", "num_trajectories", "inspected", "frames", "particles": {"min", "mean",
      "max"} or None, "types": {id: count summed over inspected trajectories}}},
      "neighbours": {"split", "trajectory": 0, "frame": 0, "particles", "edges", "mean"}
      or None}`.
    """
    directory = os.fspath(directory)
    check_int("max_trajectories", max_trajectories, minimum=0, optional=True)
    fmt, section, found, (iterate, count, path) = _source(directory)
    report: dict[str, Any] = {
        "directory": directory,
        "kind": "particles",
        "format": fmt,
        "particles": section,
        "splits": {},
        "neighbours": None,
    }
    for split in found if splits is None else splits:
        frames, sizes, types, inspected = [], [], {}, 0
        for index, trajectory in enumerate(iterate(split)):
            if max_trajectories is not None and index >= max_trajectories:
                break
            inspected += 1
            position = trajectory["position"]  # [T, N, D] float32
            frames.append(position.shape[0])
            sizes.append(position.shape[1])
            ids, counts = np.unique(trajectory["particle_type"], return_counts=True)
            for i, c in zip(ids.tolist(), counts.tolist(), strict=True):
                types[i] = types.get(i, 0) + c
            if report["neighbours"] is None and position.shape[0]:
                report["neighbours"] = {
                    "split": split,
                    "trajectory": index,
                    "frame": 0,
                    **radius_neighbours(
                        position[0],
                        section["radius"],
                        bounds=section["bounds"],
                        periodic=section["periodic"],
                    ),
                }
        report["splits"][split] = {
            "path": path(split),
            "num_trajectories": count(split),
            "inspected": inspected,
            "frames": _stats(frames),
            "particles": _stats(sizes),
            "types": {str(k): v for k, v in sorted(types.items())},
        }
    return report


def format_particle_inspection(report: Mapping[str, Any]) -> str:
    """Renders `inspect_particle_dataset`'s report as plain text for the CLI."""
    p = report["particles"]
    lines = [
        f"particle dataset {report['directory']} (format {report['format']}, "
        f"source {p.get('source', '-')})",
        f"  dim {p['dim']}, dt {p['dt']:g} per frame, radius {p['radius']:g}, "
        f"bounds {p['bounds']}, periodic {p['periodic']}, "
        f"kinematic types {p['kinematic_types']}",
    ]

    def fmt(stats):
        if stats is None:
            return "-"
        return f"{stats['min']}/{stats['mean']:.1f}/{stats['max']}"

    lines.append(
        f"  {'split':<10} {'trajectories':>12}  {'frames min/mean/max':>22}"
        f"  {'particles min/mean/max':>24}  types (id: particles)"
    )
    for split, info in report["splits"].items():
        count = str(info["num_trajectories"])
        if info["inspected"] != info["num_trajectories"]:
            count += f" ({info['inspected']} read)"
        types = ", ".join(f"{k}: {v}" for k, v in info["types"].items()) or "-"
        lines.append(
            f"  {split:<10} {count:>12}  {fmt(info['frames']):>22}"
            f"  {fmt(info['particles']):>24}  {types}"
        )
    n = report["neighbours"]
    if n is not None:
        lines.append(
            f"neighbours within radius {p['radius']:g} on frame 0 of {n['split']} trajectory "
            f"{n['trajectory']}: {n['mean']:.2f} per particle ({n['edges']} directed edges, "
            f"{n['particles']} particles)"
        )
    return "\n".join(lines)
