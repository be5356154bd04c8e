"""Forecast scoring of a trained run, and `meshsim forecast`.

For tasks scored by forecasts (`Task.scoring == "forecast"`, the weather task):
`evaluate_forecasts` rolls a run out from many initial times of a split and scores
every lead time against persistence and climatology (latitude-weighted RMSE and
ACC, `meshsim.evaluation.forecast`); the climatology is the training split's
(stored in the run directory as `statistics.npz`). `run_forecast` writes forecasts
from many initial times in WeatherBench2's forecast convention.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence

import numpy as np

from meshsim import atomic
from meshsim.data.weather import WeatherStatistics, time_step
from meshsim.evaluation.forecast import (
    ForecastStore,
    average_scores,
    forecast_dataset,
    forecast_scores,
)
from meshsim.rollout import iter_rollout_batch
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
    batch: int = 8,
) -> dict:
    """Scores of forecasts from every `stride`-th initial time of the first `num`
    trajectories of `split`, `steps` lead times each (default: 12, i.e. 3 days of 6-h
    steps, or what the trajectories allow). Writes `metrics.json` in `workdir`.

    Returns:
      {"lead_hours": [L], "variables": [C channel names], "rmse": {"model" |
      "persistence" | "climatology": {channel: [L]}}, "acc": {"model" | "persistence":
      {channel: [L]}}, "num_forecasts", "split", "checkpoint_step"}; for a stretched
      grid (`meshsim.data.stretched`) also "regions": {"inside" | "outside": the same
      "rmse" and "acc" over the fine region's points and over the others}.
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
    weights = np.asarray(dataset.weights, np.float32)
    # Stretched grids: also the scores inside the fine region and outside it.
    mask = dataset.region_mask
    parts = {} if mask is None else {"inside": mask, "outside": ~np.asarray(mask)}
    scores, part_scores = [], {name: [] for name in parts}
    for i in range(n):
        traj = dataset[i]
        truth_all = np.asarray(traj["state"])
        traj = {**traj, "state": truth_all}  # read once, not again by every rollout
        starts = list(range(task.history, truth_all.shape[0] - steps, stride))
        done = 0
        for rows in iter_rollout_batch(
            sim, state.params, state.normalizers, traj, starts, steps=steps, batch=batch
        ):
            for pred in rows:
                start = starts[done]
                truth = truth_all[start : start + steps + 1]
                scores.append(
                    forecast_scores(pred, truth, stats.climatology, weights, stats.channels)
                )
                for name, where in parts.items():
                    part_scores[name].append(
                        forecast_scores(
                            pred, truth, stats.climatology, weights * where, stats.channels
                        )
                    )
                done += 1
    if not scores:
        raise ValueError(f"split {split!r}: no initial time with {steps} steps after it")
    hours = dataset.meta["time_step_hours"]
    result = {
        "lead_hours": [hours * (k + 1) for k in range(steps)],
        "variables": list(stats.channels),
        **average_scores(scores),
        "num_forecasts": len(scores),
        **({"regions": {k: average_scores(v) for k, v in part_scores.items()}} if parts else {}),
        "split": split,
        "checkpoint_step": int(state.step),
    }
    atomic.write_json(os.path.join(workdir, "metrics.json"), result)
    return result


def parse_init_times(text: str, times: np.ndarray) -> np.ndarray:
    """[I] datetime64[ns] initial times from `--init-times`: one time, a comma list, or a
    range `START/STOP` (every time of the data from START to STOP, both included) or
    `START/STOP/STEP` (STEP such as `12h` or `1D`: START, START+STEP, ... up to STOP).

    Raises:
      ValueError: naming the part that is not a time or a step, or an empty range.
    """
    text = text.strip()

    def time(part: str) -> np.datetime64:
        try:
            return np.datetime64(part.strip(), "ns")
        except ValueError as e:
            raise ValueError(
                f"init-times: expected a time such as 2000-01-03T06, got {part.strip()!r}"
            ) from e

    if "/" not in text:
        return np.array([time(p) for p in text.split(",") if p.strip()], "datetime64[ns]")
    parts = text.split("/")
    if len(parts) not in (2, 3):
        raise ValueError(f"init-times: expected START/STOP or START/STOP/STEP, got {text!r}")
    first, last = time(parts[0]), time(parts[1])
    if len(parts) == 2:
        times = np.asarray(times, "datetime64[ns]")
        out = times[(times >= first) & (times <= last)]
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([hHdD])\s*", parts[2])
        if match is None or int(match.group(1)) == 0:
            raise ValueError(f"init-times: expected a step such as 6h or 1D, got {parts[2]!r}")
        unit = "D" if match.group(2) in "dD" else "h"
        step = np.timedelta64(int(match.group(1)), unit).astype("m8[ns]")
        out = np.arange(first, last + np.timedelta64(1, "ns"), step)
    if out.size == 0:
        raise ValueError(f"init-times: the range {text!r} holds no time of the data")
    return out.astype("datetime64[ns]")


def run_forecast(
    workdir: str,
    *,
    init_times: str,
    steps: int,
    out: str,
    split: str = "valid",
    batch: int = 8,
    overrides: Sequence[str] = (),
):
    """Forecasts `steps` lead times from every initial time of `init_times` (see
    `parse_init_times`; times of `split`) and writes them to the new zarr store `out`
    in WeatherBench2's forecast convention (`meshsim.evaluation.forecast.
    forecast_dataset`: `time` = initialisation, `prediction_timedelta`, the source's
    layout, coordinate dtypes and units). Forecasts go `batch` initial times at a time
    through one compiled rollout (`meshsim.rollout.iter_rollout_batch`) and are
    appended to the store batch by batch. Returns `out`.

    Raises:
      ValueError: an initial time that is not a time of the split with an input time
        before it and `steps` frames after it (forcings beyond the data are not
        computed yet), or the run's task is not scored by forecasts.
      RunLockedError: another command works on the run (`meshsim.runs.lock`).

    `overrides`: `data.*` settings (`--set data.path=DIR` where the dataset has moved).
    """
    with run_lock(workdir, "forecast"):
        return _run_forecast(workdir, init_times, steps, out, split, batch, overrides)


def _locate(dataset, init_times: np.ndarray, steps: int, history: int, split: str) -> list:
    """[(trajectory index, [(position in init_times, start frame)])] for the init times."""
    by_trajectory: dict[int, list[tuple[int, int]]] = {}
    for k, t0 in enumerate(init_times):
        for i, (a, b) in enumerate(dataset.segments):
            hits = np.flatnonzero(dataset.times[a:b] == t0)
            if hits.size:
                trajectory, start, length = i, int(hits[0]), b - a
                break
        else:
            when = t0.astype("datetime64[s]")
            raise ValueError(f"init-times: {when} is not a time of split {split!r}")
        if start < history or start + steps > length - 1:
            raise ValueError(
                f"init-times: {t0.astype('datetime64[s]')} needs {history} earlier frame(s) "
                f"and {steps} after it in its trajectory (it has {start} and "
                f"{length - 1 - start})"
            )
        by_trajectory.setdefault(trajectory, []).append((k, start))
    return sorted(by_trajectory.items())


def _run_forecast(workdir, init_times, steps, out, split, batch, overrides):
    """`run_forecast` under the run's lock."""
    config, sim, state = open_run(workdir, overrides)[:3]
    if sim.task.scoring != "forecast":
        raise ValueError(
            f"workdir {workdir!r}: task {sim.task.name!r} is scored by rollouts, not forecasts; "
            "meshsim forecast needs a weather run (use meshsim rollout or evaluate)"
        )
    dataset = open_split(config, split)
    if dataset.meta.get("points"):
        raise ValueError(
            f"workdir {workdir!r}: forecasts on a point set (a stretched grid or an "
            "unstructured store) are not written as stores yet (WeatherBench2's forecast "
            "layout is a lat-lon grid); meshsim evaluate scores them"
        )
    wanted = parse_init_times(init_times, dataset.times)
    if np.unique(wanted).size != wanted.size or np.any(np.diff(wanted) <= np.timedelta64(0)):
        raise ValueError("init-times: expected increasing times without repeats")
    located = _locate(dataset, wanted, steps, sim.task.history, split)
    step = time_step(dataset.times) if len(dataset.times) > 1 else np.timedelta64(6, "h")
    leads = np.arange(1, steps + 1) * step

    def forecasts(rows, times):
        return forecast_dataset(
            rows[:, 1:],
            init_times=times,
            lead_times=leads,
            channels=dataset.meta["channels"],
            latitudes=dataset.latitudes,
            longitudes=dataset.longitudes,
            layout=dataset.layout,
        )

    with ForecastStore(out) as store:
        for i, items in located:  # trajectories in time order, init times increasing
            starts = [start for _, start in items]
            done = 0
            for rows in iter_rollout_batch(
                sim, state.params, state.normalizers, dataset[i], starts, steps=steps, batch=batch
            ):
                times = wanted[[k for k, _ in items[done : done + rows.shape[0]]]]
                store.append(forecasts(rows, times))
                done += rows.shape[0]
    logger.info("forecast: %d initial times × %d lead times -> %s", wanted.size, steps, out)
    return store.path


def format_scores(run: Run, metrics: dict) -> str:
    """The forecast scores as indented JSON for the terminal (null for a diverged value)."""
    del run
    return atomic.dumps_json(metrics, indent=2)
