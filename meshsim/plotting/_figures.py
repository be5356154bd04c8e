"""Helpers the plotting modules share: input checks, colour ranges, atomic figure and
animation files. Private to `meshsim.plotting`."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from meshsim.atomic import atomic_path
from meshsim.validation import is_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- validation


def static_array(array: Any, ndim: int) -> np.ndarray:
    """Drops the leading length-1 axis of the trajectory layout, if present."""
    array = np.asarray(array)
    if array.ndim == ndim + 1 and array.shape[0] == 1:
        array = array[0]
    return array


def mesh_arrays(mesh_pos: Any, cells: Any, pos_dim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validates `mesh_pos [N, pos_dim]` float and `cells [C, 3]` int in range."""
    mesh_pos = static_array(mesh_pos, 2)
    cells = static_array(cells, 2)
    if mesh_pos.ndim != 2 or mesh_pos.shape[1] != pos_dim or mesh_pos.shape[0] < 3:
        raise ValueError(f"mesh_pos must have shape [N>=3, {pos_dim}], got {mesh_pos.shape}")
    if cells.ndim != 2 or cells.shape[1] != 3 or cells.shape[0] < 1:
        raise ValueError(f"cells must have shape [C>=1, 3] (triangles), got {cells.shape}")
    if not np.issubdtype(cells.dtype, np.integer):
        raise ValueError(f"cells must be integer node indices, got dtype {cells.dtype}")
    if cells.min() < 0 or cells.max() >= mesh_pos.shape[0]:
        raise ValueError(
            f"cells index nodes in [{cells.min()}, {cells.max()}] but mesh_pos has "
            f"{mesh_pos.shape[0]} nodes"
        )
    return mesh_pos.astype(np.float64), cells.astype(np.int64)


def field_array(values: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.shape != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(values.shape)}")
    return values


def check_frames(fps: float, every: int) -> None:
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not is_int(every, minimum=1):
        raise ValueError(f"every must be a positive int, got {every!r}")


def finite_range(*arrays: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


# ----------------------------------------------------------------------------- output files


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # the temporary keeps the suffix: it picks the format
        fig.savefig(tmp, dpi=dpi)
    return path


def write_animation(
    fig: Figure, draw_frame, frames: Sequence[int], path: Path, fps: float, dpi: int, mp4: bool
) -> list[Path]:
    """Writes `path` (GIF, Pillow) and, if `mp4` and ffmpeg exists, `path.with_suffix('.mp4')`."""
    from matplotlib import animation

    targets = [(path, animation.PillowWriter(fps=fps))]
    if mp4:
        if animation.writers.is_available("ffmpeg"):
            targets.append((path.with_suffix(".mp4"), animation.FFMpegWriter(fps=fps)))
        else:
            logger.info("ffmpeg not available; writing only %s", path)
    # Lay the figure out once, then freeze it: constrained layout on every frame
    # would double the cost and could make the panels jitter.
    draw_frame(frames[0])
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for target, writer in targets:
        with atomic_path(target) as tmp, writer.saving(fig, tmp, dpi):
            for t in frames:
                draw_frame(t)
                writer.grab_frame()
        written.append(target)
    return written


# ----------------------------------------------------------------------------- 2-D fields
