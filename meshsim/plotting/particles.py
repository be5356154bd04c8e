"""Particles drawn as dots coloured by speed: a prediction beside its truth, still or animated.

A particle state has no mesh to draw: each particle is a dot at its position,
coloured by its speed |x_t − x_{t−1}| / dt on one colour scale for both panels
and every frame (so a model that slows down looks darker). Kinematic particles
(walls, a moving lid) are grey. 2-D states are drawn in the plane; 3-D ones in
perspective.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from meshsim.plotting._figures import (
    check_frames,
    field_array,
    finite_range,
    save_figure,
    write_animation,
)

__all__ = ["animate_particles", "plot_particles"]


def _speeds(position: np.ndarray, dt: float) -> np.ndarray:
    """[T, N] backward-difference speeds (frame 0: the speed of frame 1)."""
    step = np.linalg.norm(np.diff(position, axis=0), axis=-1) / dt
    return np.concatenate([step[:1], step]) if len(step) else np.zeros(position.shape[:2])


def _limits(position: np.ndarray) -> list[tuple[float, float]]:
    finite = position[np.isfinite(position).all(-1)]
    if finite.size == 0:
        return [(0.0, 1.0)] * position.shape[-1]
    lo, hi = finite.min(0), finite.max(0)
    pad = 0.02 * max(float(np.max(hi - lo)), 1e-9)
    return [(float(a - pad), float(b + pad)) for a, b in zip(lo, hi)]


def _panels(fig, count: int, dim: int):
    kwargs = {"projection": "3d"} if dim == 3 else {}
    return [fig.add_subplot(1, count, i + 1, **kwargs) for i in range(count)]


def _draw(ax, x, speed, kinematic, limits, vrange, title):
    ax.cla()
    free = ~kinematic
    coords = [x[:, i] for i in range(x.shape[1])]
    ax.scatter(*[c[kinematic] for c in coords], s=2, c="0.6", linewidths=0)
    dots = ax.scatter(
        *[c[free] for c in coords],
        s=3,
        c=speed[free],
        cmap="viridis",
        vmin=vrange[0],
        vmax=vrange[1],
        linewidths=0,
    )
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    if x.shape[1] == 3:
        ax.set_zlim(*limits[2])
    else:
        ax.set_aspect("equal")
    ax.set_title(title)
    return dots


def _series(position, truth, kinematic, dt):
    position = np.asarray(position, np.float64)
    if position.ndim != 3 or position.shape[-1] not in (2, 3) or position.shape[0] < 1:
        raise ValueError(f"position: expected [T ≥ 1, N, 2 or 3], got {position.shape}")
    series = [("prediction", position)]
    if truth is not None:
        series.append(("truth", field_array(truth, "truth", position.shape).astype(np.float64)))
    kinematic = (
        np.zeros(position.shape[1], bool)
        if kinematic is None
        else np.asarray(kinematic, bool).reshape(-1)
    )
    if kinematic.shape != (position.shape[1],):
        raise ValueError(f"kinematic: expected [{position.shape[1]}] bool, got {kinematic.shape}")
    if not dt > 0:
        raise ValueError(f"dt: expected > 0, got {dt}")
    speeds = [_speeds(p, dt) for _, p in series]
    vrange = finite_range(*[s[:, ~kinematic] for s in speeds])
    limits = _limits(np.concatenate([p for _, p in series], axis=0))
    return series, speeds, kinematic, vrange, limits


def plot_particles(
    position: Any,
    path: str | os.PathLike,
    *,
    truth: Any = None,
    frame: int = -1,
    kinematic: Any = None,
    dt: float = 1.0,
    dpi: int = 100,
) -> Path:
    """One frame of a particle rollout `position [T, N, D]` beside `truth [T, N, D]`.

    Args:
      frame: the frame drawn (negative counts from the end).
      kinematic: [N] bool, particles drawn grey (walls).
      dt: time between frames (speeds are in position units per time).

    Returns:
      The PNG's path (written atomically).
    """
    from matplotlib.figure import Figure

    series, speeds, kinematic, vrange, limits = _series(position, truth, kinematic, dt)
    t = range(series[0][1].shape[0])[frame]
    dim = series[0][1].shape[-1]
    fig = Figure(figsize=(4.5 * len(series) + 0.8, 4.5), layout="constrained")
    axes = _panels(fig, len(series), dim)
    for ax, (name, x), speed in zip(axes, series, speeds, strict=True):
        dots = _draw(ax, x[t], speed[t], kinematic, limits, vrange, f"{name}, step {t}")
    fig.colorbar(dots, ax=axes, label="speed")
    return save_figure(fig, path, dpi)


def animate_particles(
    position: Any,
    path: str | os.PathLike,
    *,
    truth: Any = None,
    kinematic: Any = None,
    dt: float = 1.0,
    fps: float = 10,
    every: int = 1,
    dpi: int = 80,
    mp4: bool = False,
) -> list[Path]:
    """Animates a particle rollout (beside its truth), dots coloured by speed.

    Returns:
      The paths written (GIF, then MP4 when `mp4` and ffmpeg is available).

    Raises:
      ValueError: bad shapes, `fps <= 0`, `every < 1` or `dt <= 0`.
    """
    from matplotlib.figure import Figure

    series, speeds, kinematic, vrange, limits = _series(position, truth, kinematic, dt)
    check_frames(fps, every)
    dim = series[0][1].shape[-1]
    fig = Figure(figsize=(4.5 * len(series) + 0.8, 4.5), layout="constrained")
    axes = _panels(fig, len(series), dim)
    dots = [
        _draw(ax, x[0], s[0], kinematic, limits, vrange, name)
        for ax, (name, x), s in zip(axes, series, speeds, strict=True)
    ]
    fig.colorbar(dots[0], ax=axes, label="speed")

    def draw(t: int) -> None:
        for ax, (name, x), speed in zip(axes, series, speeds, strict=True):
            _draw(ax, x[t], speed[t], kinematic, limits, vrange, f"{name}, step {t}")

    frames = range(0, series[0][1].shape[0], every)
    return write_animation(fig, draw, frames, Path(path), fps, dpi, mp4)
