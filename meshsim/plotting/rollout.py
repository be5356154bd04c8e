"""A mesh rollout's figures: RMSE per step (model and persistence), the kinetic energy
of model and truth, and the comparison figure and animation of a `rollouts.h5`.

Curve inputs are the JSON-ready series of `metrics.json` (`meshsim.evaluation.scores`):
lists of floats with None where a value was not finite (a blown-up rollout), drawn
as gaps. Files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from meshsim import atomic
from meshsim.diagnostics import surface_faces
from meshsim.evaluation.rollouts_file import iter_rollouts_h5
from meshsim.plotting._figures import save_figure
from meshsim.plotting.mesh import animate_cloth, animate_rollout, plot_comparison
from meshsim.plotting.particles import animate_particles, plot_particles
from meshsim.validation import check_number

__all__ = ["plot_kinetic_energy", "plot_rollout_rmse"]


def _series(values, name: str) -> np.ndarray:
    """`[T]` float64 with NaN for None; raises ValueError unless a non-empty 1-D list."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise TypeError(f"{name}: expected a list of numbers, got {type(values).__name__}")
    out = np.asarray([np.nan if v is None else v for v in values], np.float64)
    if out.ndim != 1 or out.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D list of numbers, got shape {out.shape}")
    return out


def plot_rollout_rmse(
    per_step: Mapping[str, Sequence[float | None]],
    path: str | os.PathLike,
    *,
    horizons: Sequence[int] = (),
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """RMSE at each rollout step, one line per predictor, log-scale y.

    Args:
      per_step: {"model": `[S]`, "persistence": `[S]`, ...}: the RMSE at steps 1..S
        (`metrics.json`'s `rollout_rmse_per_step`); None entries are left out.
      path: the image to write (format from the suffix).
      horizons: steps marked with dotted vertical lines (e.g. 1, 10, 50).

    Returns:
      `path`, written atomically.

    Raises:
      ValueError, TypeError: an empty `per_step` or a series that is not a list of
        numbers; ValueError if no value is positive and finite (nothing to draw on a
        log scale).
    """
    from matplotlib.figure import Figure

    if not isinstance(per_step, Mapping) or not per_step:
        raise ValueError("per_step: expected a non-empty {name: [S] RMSE} mapping")
    series = {name: _series(v, f"per_step[{name!r}]") for name, v in per_step.items()}
    if not any(np.any(np.isfinite(s) & (s > 0)) for s in series.values()):
        raise ValueError("per_step: expected a positive finite RMSE somewhere, got none")
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for name, values in series.items():
        steps = np.arange(1, values.size + 1)
        ax.plot(steps, np.where(values > 0, values, np.nan), lw=1.2, label=name)
    for h in horizons:
        ax.axvline(h, color="0.6", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("rollout step")
    ax.set_ylabel("RMSE at the step (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title is not None:
        ax.set_title(title)
    return save_figure(fig, path, dpi)


def plot_kinetic_energy(
    trajectories: Sequence[Mapping[str, Sequence[float | None]]],
    path: str | os.PathLike,
    *,
    dt: float | None = None,
    max_trajectories: int = 4,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Kinetic energy against time, model (solid) and truth (dashed), per trajectory.

    Args:
      trajectories: per-trajectory diagnostics holding `kinetic_energy_model` `[S + 1]`
        and `kinetic_energy_truth` `[K]` (`metrics.json`'s
        `diagnostics.trajectories`); entries without them (a failed diagnosis) are
        skipped. The first `max_trajectories` are drawn, one colour each.
      dt: time between frames (x axis in time units), None: frame index.

    Returns:
      `path`, written atomically.

    Raises:
      ValueError: if no trajectory holds both series, or a bad `dt`.
    """
    from matplotlib.figure import Figure

    check_number("dt", dt, greater_than=0, optional=True)
    usable = [
        t
        for t in trajectories
        if isinstance(t, Mapping) and "kinetic_energy_model" in t and "kinetic_energy_truth" in t
    ][: max(1, int(max_trajectories))]
    if not usable:
        raise ValueError("trajectories: expected kinetic_energy_model and _truth series, got none")
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    scale = 1.0 if dt is None else dt
    for i, t in enumerate(usable):
        color = f"C{i % 10}"
        for key, style, label in (("model", "-", "model"), ("truth", "--", "truth")):
            values = _series(t[f"kinetic_energy_{key}"], f"trajectories[{i}].kinetic_energy_{key}")
            ax.plot(
                np.arange(values.size) * scale,
                values,
                style,
                color=color,
                lw=1.2,
                label=f"{label} #{i}" if len(usable) > 1 else label,
            )
    ax.set_xlabel("time" if dt is not None else "frame")
    ax.set_ylabel("kinetic energy ½∫|u|² dA")
    ax.grid(True, alpha=0.3)
    ax.legend(ncol=2, fontsize="small")
    if title is not None:
        ax.set_title(title)
    return save_figure(fig, path, dpi)


def plot_first_rollout(
    path: str | os.PathLike, workdir: str, task, *, frame: int | None, every: int
) -> list[str]:
    """Comparison figure and animation of the first rollout in `path`, over the frames
    that have ground truth."""
    rollouts = iter_rollouts_h5(path)
    try:
        r = next(rollouts, None)
        if r is None:
            raise ValueError(f"{path}: holds no rollout")
        known = min(r["pred"].shape[0], r["truth"].shape[0])
        pred, truth = r["pred"][:known], r["truth"][:known]
        cells = r["cells"][()] if "cells" in r else None
        mesh_pos = r["mesh_pos"][()] if "mesh_pos" in r else None
        kinds = r["particle_type"][()] if "particle_type" in r else None
    finally:
        rollouts.close()
    gif = os.path.join(workdir, "rollout.gif")
    if cells is None and kinds is not None:  # particles: dots coloured by speed
        kinematic = ~np.asarray(task.simulated_mask({"particle_type": kinds.reshape(-1)}))
        frame = known - 1 if frame is None else frame
        png = os.path.join(workdir, "comparison.png")
        still = plot_particles(pred, png, truth=truth, frame=frame, kinematic=kinematic)
        movie = animate_particles(pred, gif, truth=truth, kinematic=kinematic, every=every)
        return [str(still), *(str(p) for p in movie)]
    if task.lagrangian:  # the mesh moves: draw it (a solid's surface triangles)
        if cells is not None and np.asarray(cells).reshape(-1, np.shape(cells)[-1]).shape[1] == 4:
            cells = surface_faces(np.asarray(cells))[0]
        pred, truth = task.plot_positions(pred), task.plot_positions(truth)
        return [str(p) for p in animate_cloth(pred, cells, gif, truth=truth, every=every)]
    pred_scalar, label = task.plot_scalar(pred)
    truth_scalar, _ = task.plot_scalar(truth)
    frame = known - 1 if frame is None else frame
    fig = plot_comparison(
        mesh_pos, cells, pred_scalar[frame], truth_scalar[frame], title=f"{label}, step {frame}"
    )
    out = os.path.join(workdir, "comparison.png")
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100)
    paths = [out]
    paths += [
        str(p)
        for p in animate_rollout(mesh_pos, cells, pred_scalar, truth_scalar, gif, every=every)
    ]
    return paths
