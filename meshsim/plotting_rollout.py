"""Curves of a mesh rollout against time: RMSE per step (model and persistence) and the
kinetic energy of model and truth (matplotlib).

Inputs are the JSON-ready series of `metrics.json` (`meshsim.evaluation`): lists of
floats with None where a value was not finite (a blown-up rollout), drawn as gaps.
Files are written atomically through the helpers of `meshsim.plotting`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from meshsim.plotting import _save_figure

__all__ = ["plot_kinetic_energy", "plot_rollout_rmse"]


def _series(values, name: str) -> np.ndarray:
    """`[T]` float64 with NaN for None; raises ValueError unless a non-empty 1-D list."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise TypeError(f"{name}: expected a list of numbers, got {type(values).__name__}")
    out = np.asarray([np.nan if v is None else v for v in values], np.float64)
    if out.ndim != 1 or out.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D list of numbers, got shape {out.shape}")
    return out


def _check_dt(dt: float | None) -> None:
    if dt is not None and not (isinstance(dt, int | float) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt: expected a finite number > 0 or None, got {dt!r}")


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
    return _save_figure(fig, path, dpi)


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

    _check_dt(dt)
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
    return _save_figure(fig, path, dpi)
