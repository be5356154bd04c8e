"""Plots and animations of mesh fields, cloth and training curves (matplotlib).

matplotlib is imported inside the functions, so `import meshsim` works without
it. Figures are built with `matplotlib.figure.Figure` rather than `pyplot`: no
global figure registry, nothing to close, and no display needed (headless-safe).
Files are written to a temporary name in the target folder and renamed
(`meshsim.atomic.atomic_path`), so a reader never sees a half-written file; the
target folder is created if needed.

Static mesh fields may be given as `[N, 2]`/`[C, 3]` or in the trajectory layout
with a leading axis of length 1 (`[1, N, 2]`, `[1, C, 3]`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from meshsim.plotting._figures import (
    check_frames,
    field_array,
    finite_range,
    mesh_arrays,
    save_figure,
    write_animation,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "animate_cloth",
    "animate_rollout",
    "plot_cloth",
    "plot_comparison",
    "plot_field",
    "plot_loss_curve",
]


def plot_field(
    ax: Axes,
    mesh_pos: Any,
    cells: Any,
    values: Any,
    *,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    colorbar_label: str | None = None,
    title: str | None = None,
    shading: str = "gouraud",
    show_mesh: bool = False,
):
    """Draws a nodal field on a triangle mesh with `tripcolor`.

    Args:
        ax: a 2-D matplotlib Axes.
        mesh_pos: `[N, 2]` float node positions.
        cells: `[C, 3]` int triangles (node indices).
        values: `[N]` float, one value per node.
        cmap: colour map.
        vmin: lower colour limit (None: the data's).
        vmax: upper colour limit (None: the data's).
        colorbar: add a colorbar beside `ax`; `colorbar_label` labels it.
        title: axes title.
        shading: "gouraud" (smooth) or "flat" (per triangle, mean of its nodes).
        show_mesh: overlay the triangle edges.

    Returns:
        The mappable (a `TriMesh` or `PolyCollection`); `set_array` updates it.

    Raises:
        ValueError: on bad shapes, out-of-range cells or an unknown shading.
    """
    import matplotlib.tri as mtri

    mesh_pos, cells = mesh_arrays(mesh_pos, cells)
    values = field_array(values, "values", (mesh_pos.shape[0],))
    if shading not in ("gouraud", "flat"):
        raise ValueError(f"shading must be 'gouraud' or 'flat', got {shading!r}")
    triangulation = mtri.Triangulation(mesh_pos[:, 0], mesh_pos[:, 1], cells)
    mappable = ax.tripcolor(triangulation, values, cmap=cmap, vmin=vmin, vmax=vmax, shading=shading)
    if show_mesh:
        ax.triplot(triangulation, color="k", linewidth=0.2, alpha=0.5)
    ax.set_aspect("equal")
    if title is not None:
        ax.set_title(title)
    if colorbar:
        bar = ax.figure.colorbar(mappable, ax=ax, shrink=0.8)
        if colorbar_label is not None:
            bar.set_label(colorbar_label)
    return mappable


def _comparison_panels(fig, mesh_pos, cells, pred, truth, cmap, error_cmap):
    """Draws frame 0 of `pred`, `truth` `[T, N]` and their error, scaled over all frames.

    Prediction and truth both use the truth's colour limits: a blown-up prediction
    saturates its own panel instead of washing out the truth's. The error gets its
    own range, symmetric about 0."""
    err = pred - truth
    finite_err = np.abs(err[np.isfinite(err)])
    erange = float(finite_err.max()) if finite_err.size and finite_err.max() > 0 else 1.0
    vmin, vmax = finite_range(truth)
    axes = fig.subplots(1, 3)
    kw = dict(cmap=cmap, vmin=vmin, vmax=vmax)
    p = plot_field(axes[0], mesh_pos, cells, pred[0], title="prediction", **kw)
    t = plot_field(axes[1], mesh_pos, cells, truth[0], title="truth", **kw)
    kw = dict(cmap=error_cmap, vmin=-erange, vmax=erange, title="error (prediction - truth)")
    e = plot_field(axes[2], mesh_pos, cells, err[0], **kw)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return (p, t, e), err


def _wide_figure(mesh_pos: np.ndarray, panels: int, figsize):
    from matplotlib.figure import Figure

    if figsize is None:
        span = np.ptp(mesh_pos, axis=0)
        aspect = float(span[1] / span[0]) if span[0] > 0 else 1.0
        figsize = (5.0 * panels, max(1.5, min(5.0, 4.2 * aspect + 0.8)))
    return Figure(figsize=figsize, layout="constrained")


def plot_comparison(
    mesh_pos: Any,
    cells: Any,
    pred: Any,
    truth: Any,
    *,
    title: str | None = None,
    cmap: str = "viridis",
    error_cmap: str = "RdBu_r",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Three panels: prediction | truth | error, for `pred [N]`, `truth [N]`.

    Prediction and truth share the truth's colour limits (min/max of `truth`), so a
    prediction far off the truth saturates rather than washing out the truth panel;
    the error `pred - truth` has its own diverging scale, symmetric about 0.

    Returns:
        A `matplotlib.figure.Figure` (not registered with pyplot; `fig.savefig(...)`).

    Raises:
        ValueError: on bad shapes.
    """
    mesh_pos, cells = mesh_arrays(mesh_pos, cells)
    n = mesh_pos.shape[0]
    pred = field_array(pred, "pred", (n,))
    truth = field_array(truth, "truth", (n,))
    fig = _wide_figure(mesh_pos, 3, figsize)
    _comparison_panels(fig, mesh_pos, cells, pred[None], truth[None], cmap, error_cmap)
    if title is not None:
        fig.suptitle(title)
    return fig


def animate_rollout(
    mesh_pos: Any,
    cells: Any,
    pred: Any,
    truth: Any,
    path: str | os.PathLike,
    *,
    fps: float = 10,
    every: int = 1,
    title: str | None = None,
    cmap: str = "viridis",
    error_cmap: str = "RdBu_r",
    dpi: int = 80,
    mp4: bool = True,
) -> list[Path]:
    """Animates a rollout as prediction | truth | error panels.

    Colour scales are fixed over the whole rollout so frames are comparable: the
    truth's range (over all frames) for prediction and truth, a symmetric range of
    the error for the error (as `plot_comparison`).
    Frames `0, every, 2*every, ...` are drawn, i.e. `ceil(T / every)` of them.
    Cost: one render per frame, ~0.15 s for 2,000 nodes at dpi 80 on one CPU core.

    Args:
        mesh_pos: `[N, 2]` float.
        cells: `[C, 3]` int triangles.
        pred: `[T, N]` predicted scalar field (e.g. velocity magnitude).
        truth: `[T, N]` reference field.
        path: GIF file to write.
        fps: frames per second; every: keep one frame in `every`.
        mp4: also write `path` with suffix `.mp4` when ffmpeg is available.

    Returns:
        The paths written (the GIF first).

    Raises:
        ValueError: on bad shapes, `fps <= 0` or `every < 1`.
    """
    mesh_pos, cells = mesh_arrays(mesh_pos, cells)
    pred = np.asarray(pred, np.float64)
    if pred.ndim != 2 or pred.shape[1] != mesh_pos.shape[0] or pred.shape[0] < 1:
        raise ValueError(f"pred must have shape [T, N={mesh_pos.shape[0]}], got {pred.shape}")
    truth = field_array(truth, "truth", pred.shape)
    check_frames(fps, every)
    fig = _wide_figure(mesh_pos, 3, None)
    panels, err = _comparison_panels(fig, mesh_pos, cells, pred, truth, cmap, error_cmap)
    heading = fig.suptitle("")

    def draw(t: int) -> None:
        for mappable, values in zip(panels, (pred[t], truth[t], err[t]), strict=True):
            mappable.set_array(values)
        heading.set_text(f"{title + ' - ' if title else ''}step {t}")

    return write_animation(fig, draw, range(0, pred.shape[0], every), Path(path), fps, dpi, mp4)


# ----------------------------------------------------------------------------- cloth (3-D)


def plot_cloth(
    ax3d: Axes,
    world_pos: Any,
    cells: Any,
    *,
    color: str = "tab:blue",
    alpha: float = 0.9,
    title: str | None = None,
    limits: np.ndarray | None = None,
):
    """Draws a cloth surface `world_pos [N, 3]`, `cells [C, 3]` with `plot_trisurf`.

    Args:
        ax3d: an Axes made with `projection="3d"`.
        limits: optional `[3, 2]` (min, max) per axis; default: the data, equal aspect.

    Returns:
        The `Poly3DCollection`.

    Raises:
        ValueError: if `ax3d` is not 3-D or on bad shapes.
    """
    if getattr(ax3d, "name", None) != "3d":
        raise ValueError("ax3d must be a 3-D Axes (projection='3d')")
    world_pos, cells = mesh_arrays(world_pos, cells, pos_dim=3)
    if limits is None:
        limits = _cube_limits(world_pos)
    surface = ax3d.plot_trisurf(
        world_pos[:, 0],
        world_pos[:, 1],
        world_pos[:, 2],
        triangles=cells,
        color=color,
        alpha=alpha,
        linewidth=0.1,
        edgecolor="k",
        shade=True,
    )
    ax3d.set_xlim(*limits[0])
    ax3d.set_ylim(*limits[1])
    ax3d.set_zlim(*limits[2])
    if title is not None:
        ax3d.set_title(title)
    return surface


def _cube_limits(points: np.ndarray) -> np.ndarray:
    """`[3, 2]` limits of a cube around `points [..., 3]` (equal scale on all axes)."""
    flat = points.reshape(-1, 3)
    lo, hi = flat.min(axis=0), flat.max(axis=0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6)
    return np.stack([centre - half, centre + half], axis=1)


def animate_cloth(
    world_pos: Any,
    cells: Any,
    path: str | os.PathLike,
    *,
    truth: Any = None,
    fps: float = 10,
    every: int = 1,
    title: str | None = None,
    dpi: int = 80,
    mp4: bool = True,
) -> list[Path]:
    """Animates a cloth rollout `world_pos [T, N, 3]` (beside `truth [T, N, 3]` if given).

    Axis limits are fixed over the whole rollout (the truth's extent, if given). Each
    frame redraws the surface (`plot_trisurf`), ~0.2 s per frame for two panels of 700
    triangles.

    Returns:
        The paths written (GIF, then MP4 when `mp4` and ffmpeg is available).

    Raises:
        ValueError: on bad shapes, `fps <= 0` or `every < 1`.
    """
    from matplotlib.figure import Figure

    world_pos = np.asarray(world_pos, np.float64)
    if world_pos.ndim != 3 or world_pos.shape[2] != 3 or world_pos.shape[0] < 1:
        raise ValueError(f"world_pos must have shape [T, N, 3], got {world_pos.shape}")
    _, cells = mesh_arrays(world_pos[0], cells, pos_dim=3)
    series = [("prediction", world_pos, "tab:blue")]
    if truth is not None:
        series.append(("truth", field_array(truth, "truth", world_pos.shape), "tab:orange"))
    check_frames(fps, every)
    # The truth's extent when there is one: a prediction that drifts away leaves the
    # frame instead of shrinking every frame to a dot.
    limits = _cube_limits(series[-1][1])
    fig = Figure(figsize=(4.5 * len(series), 4.5), layout="constrained")
    axes = [fig.add_subplot(1, len(series), i + 1, projection="3d") for i in range(len(series))]
    heading = fig.suptitle("")

    def draw(t: int) -> None:
        for ax, (name, positions, color) in zip(axes, series, strict=True):
            ax.cla()
            plot_cloth(ax, positions[t], cells, color=color, title=name, limits=limits)
        heading.set_text(f"{title + ' - ' if title else ''}step {t}")

    frames = range(0, world_pos.shape[0], every)
    return write_animation(fig, draw, frames, Path(path), fps, dpi, mp4)


# ----------------------------------------------------------------------------- training curves


def _read_records(metrics: str | os.PathLike | Sequence[Mapping[str, Any]]) -> list[Mapping]:
    if isinstance(metrics, str | os.PathLike):
        with open(metrics) as f:
            return [json.loads(line) for line in f if line.strip()]
    if not isinstance(metrics, Sequence) or not all(isinstance(r, Mapping) for r in metrics):
        raise ValueError("metrics must be a metrics.jsonl path or a list of dicts")
    return list(metrics)


def _positive_series(records, key: str, step_key: str) -> tuple[np.ndarray, np.ndarray]:
    steps, values = [], []
    for i, record in enumerate(records):
        value = record.get(key)
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            steps.append(record.get(step_key, i))
            values.append(value)
    return np.asarray(steps, np.float64), np.asarray(values, np.float64)


def plot_loss_curve(
    metrics: str | os.PathLike | Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    loss_key: str = "loss",
    step_key: str = "step",
    eval_prefix: str = "eval",
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Plots training loss against step on a log scale, with evaluation points.

    Each record (a line of `metrics.jsonl`, or a dict) may hold `step_key`
    (default: its index), `loss_key`, and evaluation scalars whose key starts with
    `eval_prefix` (e.g. `"eval/rmse_1"`), drawn as markers. Non-positive and
    non-finite values are left out (log scale).

    Returns:
        `path`, written atomically as an image (format from its suffix).

    Raises:
        ValueError: if `metrics` is neither a path nor a list of dicts, or holds no
            positive `loss_key` value.
    """
    from matplotlib.figure import Figure

    records = _read_records(metrics)
    steps, losses = _positive_series(records, loss_key, step_key)
    if losses.size == 0:
        raise ValueError(f"metrics hold no positive finite {loss_key!r} values")
    eval_keys = sorted(
        {k for r in records for k in r if k.startswith(eval_prefix) and k != step_key}
    )
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, losses, lw=1, label=loss_key)
    for key in eval_keys:
        eval_steps, values = _positive_series(records, key, step_key)
        if values.size:
            ax.plot(eval_steps, values, "o-", ms=4, lw=0.8, label=key)
    ax.set_yscale("log")
    ax.set_xlabel(step_key)
    ax.set_ylabel("value (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title is not None:
        ax.set_title(title)
    return save_figure(fig, path, dpi)
