"""Rollouts to ParaView: XDMF time series and per-frame VTK files through meshio.

Fields are point data on the mesh: for a 2-D mesh `mesh_pos [N, 2]` is padded
with z = 0; a cloth rollout passes its `world_pos [T, N, 3]` as moving points
(`points_per_frame`). Files are written to temporary names and renamed
(`meshsim.atomic`), so a reader never sees a half-written file. Fields are read
one frame at a time (`value[t]`), so an h5py dataset streams from disk.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping

import numpy as np

from meshsim import atomic
from meshsim.atomic import AtomicFile, atomic_path
from meshsim.evaluation.rollouts_file import iter_rollouts_h5


def _cell_block(cells: np.ndarray) -> list[tuple[str, np.ndarray]]:
    cells = np.asarray(cells)
    if cells.ndim == 3:
        cells = cells[0]
    kinds = {1: "vertex", 3: "triangle", 4: "tetra"}  # vertices: particles, no mesh
    if cells.ndim != 2 or cells.shape[1] not in kinds:
        raise ValueError(f"cells: expected [C, 3], [C, 4] or [N, 1] vertices, got {cells.shape}")
    return [(kinds[cells.shape[1]], cells.astype(np.int64))]


def _points3(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"points: expected [N, 2] or [N, 3], got {points.shape}")
    if points.shape[1] == 2:
        points = np.concatenate([points, np.zeros((points.shape[0], 1))], axis=1)
    return points


def _shape(value) -> tuple[int, ...]:
    """The shape of an array or of a lazily read one (an h5py dataset), without reading it."""
    return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def _frame(value, t: int) -> np.ndarray:
    """Frame `t` of a `[T, ...]` array; an h5py dataset reads only that frame."""
    return np.asarray(value[t])


def _check_fields(fields: Mapping[str, np.ndarray], num_nodes: int) -> int:
    steps = None
    for name, value in fields.items():
        shape = _shape(value)
        if len(shape) not in (2, 3) or shape[1] != num_nodes:
            raise ValueError(f"fields[{name!r}]: expected [T, {num_nodes}, d], got {shape}")
        if steps is not None and shape[0] != steps:
            raise ValueError(f"fields[{name!r}]: expected {steps} frames, got {shape[0]}")
        steps = shape[0]
    if steps is None:
        raise ValueError("fields: expected at least one field")
    return steps


def export_xdmf(
    path: str | os.PathLike,
    mesh_pos: np.ndarray,
    cells: np.ndarray,
    fields: Mapping[str, np.ndarray],
    *,
    dt: float = 1.0,
) -> str:
    """Writes an XDMF time series (`path`, plus its `.h5`) of point fields on a fixed mesh.

    Args:
      mesh_pos: [N, 2] or [N, 3] (a leading axis of 1 is accepted).
      cells: [C, 3] triangles or [C, 4] tetrahedra.
      fields: {name: [T, N, d]} e.g. {"pred": ..., "truth": ..., "error": ...}: arrays
        or anything with `.shape` and `[t]` indexing (an h5py dataset).
      dt: time between frames.
    """
    import meshio

    mesh_pos = np.asarray(mesh_pos)
    if mesh_pos.ndim == 3:
        mesh_pos = mesh_pos[0]
    points = _points3(mesh_pos)
    steps = _check_fields(fields, points.shape[0])
    path = os.path.abspath(os.fspath(path))
    xdmf = AtomicFile(path)
    # meshio names the heavy-data file after the xdmf's stem and puts it in the *working
    # directory*, so the xdmf's temporary name fixes the .h5's: write from the target folder.
    h5 = AtomicFile(os.path.splitext(path)[0] + ".h5")
    h5.tmp = os.path.splitext(xdmf.tmp)[0] + ".h5"
    try:
        with contextlib.chdir(os.path.dirname(path)):
            with meshio.xdmf.TimeSeriesWriter(os.path.basename(xdmf.tmp)) as writer:
                writer.write_points_cells(points, _cell_block(cells))
                for t in range(steps):
                    data = {k: _frame(v, t) for k, v in fields.items()}
                    writer.write_data(t * dt, point_data=data)
        # Point the xdmf at the .h5's final name, then publish the .h5 first, the xdmf last.
        with open(xdmf.tmp) as f:
            text = f.read()
        old_ref, new_ref = os.path.basename(h5.tmp) + ":", os.path.basename(h5.path) + ":"
        if old_ref not in text:
            raise RuntimeError(f"meshio wrote no reference to {os.path.basename(h5.tmp)}")
        with open(xdmf.tmp, "w") as f:
            f.write(text.replace(old_ref, new_ref))
        h5.commit()
        xdmf.commit()
    except BaseException:
        xdmf.discard()
        h5.discard()
        raise
    return path


def export_vtk_frames(
    directory: str | os.PathLike,
    cells: np.ndarray,
    fields: Mapping[str, np.ndarray],
    *,
    mesh_pos: np.ndarray | None = None,
    points_per_frame: np.ndarray | None = None,
    prefix: str = "frame",
) -> list[str]:
    """One `.vtu` file per frame; points move when `points_per_frame [T, N, 3]` is given."""
    import meshio

    if (mesh_pos is None) == (points_per_frame is None):
        raise ValueError("pass exactly one of mesh_pos [N, d] or points_per_frame [T, N, 3]")
    if points_per_frame is not None:
        num_nodes = _shape(points_per_frame)[1]
    else:
        mesh_pos = np.asarray(mesh_pos)
        mesh_pos = mesh_pos[0] if mesh_pos.ndim == 3 else mesh_pos
        num_nodes = mesh_pos.shape[0]
    steps = _check_fields(fields, num_nodes)
    os.makedirs(directory, exist_ok=True)
    block = _cell_block(cells)
    paths = []
    for t in range(steps):
        points = _points3(_frame(points_per_frame, t) if points_per_frame is not None else mesh_pos)
        mesh = meshio.Mesh(points, block, point_data={k: _frame(v, t) for k, v in fields.items()})
        path = os.path.join(os.fspath(directory), f"{prefix}_{t:05d}.vtu")
        with atomic_path(path) as tmp:  # keeps the .vtu suffix: meshio picks the format
            mesh.write(tmp)
        paths.append(path)
    return paths


class _Frames:
    """Frame-indexed view `f(t) -> [N, d]` with a `shape`, read lazily (for exports)."""

    def __init__(self, shape: tuple[int, ...], frame: Callable[[int], np.ndarray]):
        self.shape, self._frame = shape, frame

    def __getitem__(self, t: int) -> np.ndarray:
        return self._frame(t)


def _export_fields(r: dict) -> dict:
    """pred, truth and error of a rollout group, frame by frame; truth and error are
    NaN on frames past the ground truth."""
    pred, truth = r["pred"], r["truth"]
    known = truth.shape[0]
    missing = np.full(pred.shape[1:], np.nan, np.float32)

    def truth_at(t):
        return truth[t] if t < known else missing

    return {
        "pred": pred,
        "truth": _Frames(pred.shape, truth_at),
        "error": _Frames(pred.shape, lambda t: pred[t] - truth_at(t)),
    }


def export_rollouts(path: str | os.PathLike, out: str | os.PathLike, task) -> str:
    """ParaView files for each rollout of `path` under `out/` (replaced as a whole).

    An XDMF time series per trajectory for fixed meshes, per-frame VTU files with
    moving points for Lagrangian tasks (`task.lagrangian`; particles, which have no
    cells, as vertices). Reads one frame at a time.
    """
    with atomic.staged_directory(out, replace=True) as tmp:
        for i, r in enumerate(iter_rollouts_h5(path)):
            fields = _export_fields(r)
            if task.lagrangian:  # the points themselves move; particles are bare vertices
                cells = r["cells"] if "cells" in r else np.arange(r["pred"].shape[1])[:, None]
                export_vtk_frames(
                    os.path.join(tmp, f"{i:05d}"), cells, fields, points_per_frame=r["pred"]
                )
            else:
                export_xdmf(os.path.join(tmp, f"{i:05d}.xdmf"), r["mesh_pos"], r["cells"], fields)
    return os.fspath(out)
