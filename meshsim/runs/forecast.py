"""Forecast scoring of a trained run, and `meshsim forecast`.

For tasks scored by forecasts (`Task.scoring == "forecast"`, the weather task):
`evaluate_forecasts` rolls a run out from many initial times of a split and scores
every lead time against persistence and climatology (latitude-weighted RMSE and
ACC, `meshsim.evaluation.forecast`); the climatology is the training split's
(stored in the run directory as `statistics.npz`). `run_forecast` writes one
forecast in WeatherBench2 layout.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from meshsim import atomic
from meshsim.data.weather import WeatherStatistics, node_weights
from meshsim.evaluation.forecast import (
    average_scores,
    forecast_dataset,
    forecast_scores,
    write_zarr,
)
from meshsim.rollout import rollout_trajectory
from meshsim.runs.build import open_split
from meshsim.runs.lock import run_lock
from meshsim.runs.workdir import STATISTICS, Run, open_run

logger = logging.getLogger(__name__)


def _statistics(workdir: str) -> WeatherStatistics:
    path = os.path.join(workdir, STATISTICS)
    if not os.path.exists(path):
        raise FileNotFoundError(f"workdir {workdir!r}: no statistics.npz (not a weather run?)")
    return WeatherStatistics.load(path)


def evaluate_forecasts(
    run: Run | str,
    *,
    split: str = "valid",
    num: int | None = None,
    steps: int | None = None,
    stride: int = 4,
) -> dict:
    """Scores of forecasts from every `stride`-th initial time of the first `num`
    trajectories of `split`, `steps` lead times each (default: 12, i.e. 3 days of 6-h
    steps, or what the trajectories allow). Writes `metrics.json` in `workdir`.

    Returns:
      {"lead_hours": [L], "variables": [C channel names], "rmse": {"model" |
      "persistence" | "climatology": {channel: [L]}}, "acc": {"model" | "persistence":
      {channel: [L]}}, "num_forecasts", "split", "checkpoint_step"}.
    """
    run = open_run(run) if isinstance(run, str) else run
    config, sim, state = run.config, run.sim, run.state
    workdir = run.workdir
    stats = _statistics(workdir)
    dataset = open_split(config, split)
    task = sim.task
    if list(dataset.meta["channels"]) != list(stats.channels):
        raise ValueError(
            f"split {split!r}: channels {dataset.meta['channels']} differ from the run's "
            f"{list(stats.channels)}"
        )
    n = len(dataset) if num is None else min(num, len(dataset))
    shortest = min(b - a for a, b in dataset.segments[:n])  # frames per trajectory
    steps = min(12, shortest - 1 - task.history) if steps is None else steps
    if not 1 <= steps <= shortest - 1 - task.history:
        raise ValueError(
            f"steps: expected 1..{shortest - 1 - task.history} (the shortest trajectory of "
            f"{split!r} has {shortest} frames), got {steps}"
        )
    weights = node_weights(dataset.latitudes, dataset.longitudes)
    scores = []
    for i in range(n):
        traj = dataset[i]
        truth_all = np.asarray(traj["state"])
        traj = {**traj, "state": truth_all}  # read once, not again by every rollout
        for start in range(task.history, truth_all.shape[0] - steps, stride):
            pred = rollout_trajectory(
                sim, state.params, state.normalizers, traj, steps=steps, start=start, chunk=steps
            )
            truth = truth_all[start : start + steps + 1]
            scores.append(forecast_scores(pred, truth, stats.climatology, weights, stats.channels))
    if not scores:
        raise ValueError(f"split {split!r}: no initial time with {steps} steps after it")
    hours = dataset.meta["time_step_hours"]
    result = {
        "lead_hours": [hours * (k + 1) for k in range(steps)],
        "variables": list(stats.channels),
        **average_scores(scores),
        "num_forecasts": len(scores),
        "split": split,
        "checkpoint_step": int(state.step),
    }
    atomic.write_json(os.path.join(workdir, "metrics.json"), result)
    return result


def run_forecast(
    workdir: str,
    *,
    init_time: str,
    steps: int,
    out: str,
    split: str = "valid",
    overrides: Sequence[str] = (),
):
    """Forecasts `steps` lead times from `init_time` (a time of `split`) and writes them
    to the new zarr store `out` (WeatherBench2 layout: `init_time`,
    `prediction_timedelta`, `level`, `latitude`, `longitude`). Returns `out`.

    Raises:
      ValueError: `init_time` is not a time of the split with an input time before it
        and `steps` frames after it (forcings beyond the data are not computed yet), or
        the run's task is not scored by forecasts.
      RunLockedError: another command works on the run (`meshsim.runs.lock`).

    `overrides`: `data.*` settings (`--set data.path=DIR` where the dataset has moved).
    """
    with run_lock(workdir, "forecast"):
        return _run_forecast(workdir, init_time, steps, out, split, overrides)


def _run_forecast(workdir, init_time, steps, out, split, overrides):
    """`run_forecast` under the run's lock."""
    config, sim, state = open_run(workdir, overrides)[:3]
    if sim.task.scoring != "forecast":
        raise ValueError(
            f"workdir {workdir!r}: task {sim.task.name!r} is scored by rollouts, not forecasts; "
            "meshsim forecast needs a weather run (use meshsim rollout or evaluate)"
        )
    dataset = open_split(config, split)
    try:
        t0 = np.datetime64(init_time, "ns")
    except ValueError as e:
        raise ValueError(
            f"init-time: expected a time such as 2000-01-03T06, got {init_time!r}"
        ) from e
    for i, (a, b) in enumerate(dataset.segments):
        hits = np.flatnonzero(dataset.times[a:b] == t0)
        if hits.size:
            traj, start = dataset[i], int(hits[0])
            break
    else:
        raise ValueError(f"init-time: {init_time} is not a time of split {split!r}")
    length = traj["state"].shape[0]
    if start < sim.task.history or start + steps > length - 1:
        raise ValueError(
            f"init-time {init_time}: needs {sim.task.history} earlier frame(s) and {steps} "
            f"after it in its trajectory (it has {start} and {length - 1 - start})"
        )
    pred = rollout_trajectory(
        sim, state.params, state.normalizers, traj, steps=steps, start=start, chunk=steps
    )
    step = np.diff(dataset.times[:2])[0] if len(dataset.times) > 1 else np.timedelta64(6, "h")
    ds = forecast_dataset(
        pred[None, 1:],
        init_times=[t0],
        lead_times=np.arange(1, steps + 1) * step,
        channels=dataset.meta["channels"],
        latitudes=dataset.latitudes,
        longitudes=dataset.longitudes,
    )
    return write_zarr(ds, out)


def format_scores(run: Run, metrics: dict) -> str:
    """The forecast scores as indented JSON for the terminal (null for a diverged value)."""
    del run
    return atomic.dumps_json(metrics, indent=2)
