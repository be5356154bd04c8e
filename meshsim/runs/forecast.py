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
from meshsim.evaluation.forecast import ForecastReader, ForecastStore, forecast_dataset
from meshsim.evaluation.forecast_table import ForecastTable
from meshsim.rollout_batch import iter_rollout_batch
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

    An ensemble run (`model.ensemble.members` M > 1) rolls out M members per initial
    time; a deterministic run is a one-member ensemble.

    Returns:
      {"lead_hours": [L], "variables": [C channel names], "num_forecasts", "split",
      "checkpoint_step"} and the table of `meshsim.evaluation.forecast_table.
      ForecastTable`: "rmse" {"model" (the ensemble mean) | "persistence" |
      "climatology": {channel: [L]}}, "acc", "ensemble" (CRPS, spread/skill, rank
      histograms...), "spectra" on a global lat-lon grid, "regions" on a stretched grid.
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
    table = _table(dataset, stats)
    members = sim.members if sim.ensemble is not None else None
    for i in range(n):
        traj = dataset[i]
        truth_all = np.asarray(traj["state"])
        traj = {**traj, "state": truth_all}  # read once, not again by every rollout
        starts = list(range(task.history, truth_all.shape[0] - steps, stride))
        done = 0
        for rows in iter_rollout_batch(
            sim,
            state.params,
            state.normalizers,
            traj,
            starts,
            steps=steps,
            batch=batch,
            members=members,
        ):
            for pred in rows:  # [L + 1, N, C], or [M, L + 1, N, C]
                start = starts[done]
                table.add(pred, truth_all[start : start + steps + 1])
                done += 1
    if not len(table):
        raise ValueError(f"split {split!r}: no initial time with {steps} steps after it")
    hours = dataset.meta["time_step_hours"]
    result = {
        "lead_hours": [hours * (k + 1) for k in range(steps)],
        "variables": list(stats.channels),
        **table.result(),
        "num_forecasts": len(table),
        "split": split,
        "checkpoint_step": int(state.step),
    }
    atomic.write_json(os.path.join(workdir, "metrics.json"), result)
    return result


def score_forecast_store(run: Run | str, path: str, *, split: str = "valid") -> dict:
    """Scores a forecast store read back (`meshsim evaluate --forecast STORE`): a store of
    `meshsim forecast`, deterministic or with members along `realization`, or another
    forecaster's in WeatherBench2's convention on the run's grid, against the truth of
    `split` (its initial times must be times of the split, its lead times whole data
    steps). Writes `metrics.json` in the run directory.

    Returns:
      As `evaluate_forecasts`, with "forecast": the store's path, and "members".

    Raises:
      ValueError: channels, grid or dims the store does not have, an initial time not
        in the split or without the lead times after it, lead times off the data's steps.
    """
    run = open_run(run) if isinstance(run, str) else run
    stats = _statistics(run.workdir)
    dataset = open_split(run.config, split)
    if dataset.meta.get("points"):
        raise ValueError(
            f"split {split!r}: forecast stores are lat-lon grids, the data are a point set"
        )
    reader = ForecastReader(path, stats.channels, dataset.latitudes, dataset.longitudes)
    step = _data_step(dataset)
    steps = reader.lead_times.size
    expected = (np.arange(1, steps + 1) * step).astype("timedelta64[ns]")
    if not np.array_equal(reader.lead_times, expected):
        raise ValueError(
            f"{path}: prediction_timedelta: expected the data's steps {expected[:3]}..., got "
            f"{reader.lead_times[:3]}..."
        )
    located = dict(_locate(dataset, reader.init_times, steps, 0, split))
    where = {k: (i, start) for i, items in located.items() for k, start in items}
    table = _table(dataset, stats)
    cached = (None, None)  # (trajectory, its states): forecasts come in time order
    done = 0
    for _, forecasts in reader:
        for members in forecasts:  # [M, L, N, C]
            i, start = where[done]
            if cached[0] != i:
                cached = (i, np.asarray(dataset[i]["state"]))
            truth = cached[1][start : start + steps + 1]
            initial = np.broadcast_to(truth[:1], (members.shape[0], *truth.shape[1:]))
            table.add(np.concatenate([initial[:, None], members], axis=1), truth)
            done += 1
    hours = dataset.meta["time_step_hours"]
    result = {
        "lead_hours": [hours * (k + 1) for k in range(steps)],
        "variables": list(stats.channels),
        **table.result(),
        "num_forecasts": len(table),
        "members": reader.members,
        "forecast": os.path.abspath(path),
        "split": split,
        "checkpoint_step": int(run.state.step),
    }
    atomic.write_json(os.path.join(run.workdir, "metrics.json"), result)
    return result


def _data_step(dataset) -> np.timedelta64:
    """The split's time step (6 h for a single time: nothing to measure it from)."""
    return time_step(dataset.times) if len(dataset.times) > 1 else np.timedelta64(6, "h")


def _table(dataset, stats: WeatherStatistics) -> ForecastTable:
    """The empty score table of forecasts on `dataset`'s nodes: spectra on a global lat-lon
    grid (not a point set, not a regional grid), inside/outside scores on a stretched
    grid."""
    grid = None
    if not dataset.meta.get("points") and not dataset.regional:
        grid = (dataset.latitudes, len(dataset.longitudes))
    return ForecastTable(
        stats.channels, stats.climatology, dataset.weights, grid=grid, region=dataset.region_mask
    )


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
    members: int | None = None,
    seed: int = 0,
    overrides: Sequence[str] = (),
):
    """Forecasts `steps` lead times from every initial time of `init_times` (see
    `parse_init_times`; times of `split`) and writes them to the new zarr store `out`
    in WeatherBench2's forecast convention (`meshsim.evaluation.forecast.
    forecast_dataset`: `time` = initialisation, `prediction_timedelta`, the source's
    layout, coordinate dtypes and units). Forecasts go `batch` initial times at a time
    through one compiled rollout (`meshsim.rollout.iter_rollout_batch`) and are
    appended to the store batch by batch. With `members` M, an ensemble run
    (`model.ensemble.kind`) writes M members per initial time along WB2's `realization`
    dim (`meshsim.rollout.iter_rollout_batch`, drawn from `seed`). Returns `out`.

    Raises:
      ValueError: an initial time that is not a time of the split with an input time
        before it and `steps` frames after it (forcings beyond the data are not
        computed yet), the run's task is not scored by forecasts, or `members` for a
        deterministic run.
      RunLockedError: another command works on the run (`meshsim.runs.lock`).

    `overrides`: `data.*` settings (`--set data.path=DIR` where the dataset has moved).
    """
    with run_lock(workdir, "forecast"):
        return _run_forecast(
            workdir, init_times, steps, out, split, batch, (members, seed), overrides
        )


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


def _run_forecast(workdir, init_times, steps, out, split, batch, ensemble, overrides):
    """`run_forecast` under the run's lock; `ensemble`: (members, seed)."""
    config, sim, state = open_run(workdir, overrides)[:3]
    members, seed = ensemble
    if members is not None and sim.ensemble is None:
        raise ValueError(
            f"members: the run in {workdir!r} is deterministic (model.ensemble.kind is None); "
            f"its {members} members would be one forecast repeated"
        )
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
    step = _data_step(dataset)
    leads = np.arange(1, steps + 1) * step

    def forecasts(rows, times):  # rows [b, (M,) steps + 1, N, C]
        return forecast_dataset(
            rows[..., 1:, :, :],
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
                sim,
                state.params,
                state.normalizers,
                dataset[i],
                starts,
                steps=steps,
                batch=batch,
                members=members,
                seed=seed,
            ):
                times = wanted[[k for k, _ in items[done : done + rows.shape[0]]]]
                store.append(forecasts(rows, times))
                done += rows.shape[0]
    logger.info("forecast: %d initial times × %d lead times -> %s", wanted.size, steps, out)
    return store.path


def format_scores(run: Run, metrics: dict) -> str:
    """The forecast scores as indented JSON for the terminal (null for a diverged value),
    without the spectra and rank histograms (metrics.json in the run holds them)."""
    shown = {k: v for k, v in metrics.items() if k != "spectra"}
    if "ensemble" in shown:
        shown["ensemble"] = {k: v for k, v in shown["ensemble"].items() if k != "rank_histogram"}
    del run
    return atomic.dumps_json(shown, indent=2)
