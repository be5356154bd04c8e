"""Argument checks shared by the diagnostics (host side, numpy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from meshsim.meshes.quality import signed_areas

_RELATIVE_TOLERANCE = 1e-12
# FFT zero padding: the parabolic peak fit's bias is then far below 0.1%.
_FFT_PADDING = 8


class MissingFlowParameter(ValueError):
    """dt, the obstacle or the inflow cannot be found, so no Strouhal number."""


# ----------------------------------------------------------------------------- validation


def _static(x: Any, name: str, ndim: int) -> np.ndarray:
    """`x` with `ndim` axes, after dropping one leading axis of 1 (trajectory layout)."""
    x = np.asarray(x)
    if x.ndim == ndim + 1 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} axes (or a leading axis of 1), got {x.shape}")
    return x


def _mesh(mesh_pos: Any, cells: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validated `(mesh_pos [N, 2] float64, cells [C, 3] int64 | None)`."""
    pos = _static(mesh_pos, "mesh_pos", 2)
    if pos.shape[1] != 2 or pos.shape[0] == 0:
        raise ValueError(f"mesh_pos: expected shape [N >= 1, 2], got {pos.shape}")
    if not np.issubdtype(pos.dtype, np.floating):
        raise TypeError(f"mesh_pos: expected a float array, got dtype {pos.dtype}")
    if not np.isfinite(pos).all():
        raise ValueError("mesh_pos: expected finite positions, got NaN or inf")
    if cells is None:
        return pos.astype(np.float64), None
    cells = _static(cells, "cells", 2)
    if cells.shape[1] != 3 or cells.shape[0] == 0:
        raise ValueError(f"cells: expected shape [C >= 1, 3], got {cells.shape}")
    if not np.issubdtype(cells.dtype, np.integer):
        raise TypeError(f"cells: expected an integer array, got dtype {cells.dtype}")
    if cells.min() < 0 or cells.max() >= len(pos):
        raise ValueError(
            f"cells: expected node indices in 0..{len(pos) - 1}, got {cells.min()}..{cells.max()}"
        )
    return pos.astype(np.float64), cells.astype(np.int64)


def _trajectory(x: Any, name: str, num_nodes: int, dims: int | None = None) -> np.ndarray:
    """Validated `[T, N, F] float64`; `dims` fixes F."""
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name}: expected a real array, got dtype {x.dtype}")
    bad = x.ndim != 3 or x.shape[0] == 0 or x.shape[1] != num_nodes
    if bad or (dims is not None and x.shape[2] != dims):
        want = f"[T >= 1, {num_nodes}, {dims or 'F'}]"
        raise ValueError(f"{name}: expected shape {want}, got {x.shape}")
    return x.astype(np.float64)


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def _areas(pos: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """`[C] float64` signed cell areas; raises on degenerate cells."""
    area = signed_areas(pos, cells)
    diagonal = float(np.linalg.norm(pos.max(0) - pos.min(0))) or 1.0
    bad = np.flatnonzero(np.abs(area) <= _RELATIVE_TOLERANCE * diagonal**2)
    if bad.size:
        raise ValueError(f"cells: expected non-degenerate cells, cell {bad[0]} has area 0")
    return area


def _node_types(node_type: Any, num_nodes: int) -> np.ndarray:
    types = np.asarray(node_type)
    if types.shape in ((num_nodes, 1), (1, num_nodes, 1)):
        types = types.reshape(num_nodes)
    if types.shape != (num_nodes,):
        raise ValueError(f"node_type: expected shape [{num_nodes}] or [1, N, 1], got {types.shape}")
    if not np.issubdtype(types.dtype, np.integer):
        raise TypeError(f"node_type: expected an integer array, got dtype {types.dtype}")
    return types
