"""Weather runs: forecast scores of a trained run, forecasts as zarr, the weather demo.

`evaluate_forecasts` rolls a run out from many initial times of a split and scores
every lead time against persistence and climatology (latitude-weighted RMSE and
ACC, `meshsim.forecast`); the climatology is the training split's (stored in the
run directory as `statistics.npz`). `run_forecast` writes one forecast in
WeatherBench2 layout. `run_weather_demo` is `make demo-weather`.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from meshsim import atomic
from meshsim.data.weather import WeatherStatistics, node_weights
from meshsim.forecast import average_scores, forecast_dataset, forecast_scores, write_zarr
from meshsim.rollout import rollout_trajectory

logger = logging.getLogger(__name__)

GATE_HOURS = (24.0, 72.0)  # the demo must beat persistence at these lead times


def _statistics(workdir: str) -> WeatherStatistics:
    path = os.path.join(workdir, "statistics.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"workdir {workdir!r}: no statistics.npz (not a weather run?)")
    return WeatherStatistics.load(path)


def evaluate_forecasts(
    workdir: str,
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
    from meshsim.experiment import load_run, open_split

    config, sim, state = load_run(workdir)
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


def run_forecast(workdir: str, *, init_time: str, steps: int, out: str, split: str = "valid"):
    """Forecasts `steps` lead times from `init_time` (a time of `split`) and writes them
    to the new zarr store `out` (WeatherBench2 layout: `init_time`,
    `prediction_timedelta`, `level`, `latitude`, `longitude`). Returns `out`.

    Raises:
      ValueError: `init_time` is not a time of the split with an input time before it
        and `steps` frames after it (forcings beyond the data are not computed yet).
    """
    from meshsim.experiment import load_run, open_split

    config, sim, state = load_run(workdir)
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


def _table(metrics: dict) -> str:
    hours = metrics["lead_hours"]
    cols = [hours.index(h) for h in GATE_HOURS if h in hours]
    lines = [
        "| channel | lead (h) | RMSE model | persistence | climatology | ACC model "
        "| ACC persistence |",
        "|" + "---|" * 7,
    ]
    for c in metrics["variables"]:
        for k in cols:
            r, a = metrics["rmse"], metrics["acc"]
            lines.append(
                f"| {c} | {hours[k]:g} | {r['model'][c][k]:.4g} | {r['persistence'][c][k]:.4g} "
                f"| {r['climatology'][c][k]:.4g} | {a['model'][c][k]:.3f} "
                f"| {a['persistence'][c][k]:.3f} |"
            )
    return "\n".join(lines)


def beats_persistence(metrics: dict) -> bool:
    """Model RMSE below persistence for every channel at 24 h and 72 h."""
    hours = metrics["lead_hours"]
    if any(h not in hours for h in GATE_HOURS):
        return False
    r = metrics["rmse"]
    return all(
        r["model"][c][hours.index(h)] < r["persistence"][c][hours.index(h)]
        for c in metrics["variables"]
        for h in GATE_HOURS
    )


def run_weather_demo(workdir: str, config, *, quick: bool = False) -> int:
    """Generates shallow-water data, trains, forecasts and reports; 0 if the model beats
    persistence for every channel at 24 h and 72 h, else 1."""
    from meshsim import plotting
    from meshsim.experiment import load_run, open_split, run_training
    from meshsim.plotting_weather import animate_forecast, plot_forecast_maps, plot_score_curves
    from meshsim.solvers.generate import generate_dataset

    d = config.data
    t0 = time.perf_counter()
    for split, count in (
        (d.train_split, d.generate_train_trajectories),
        (d.valid_split, d.generate_valid_trajectories),
    ):
        if not os.path.exists(os.path.join(d.path, f"{split}.zarr")):
            generate_dataset(
                "shallow_water",
                d.path,
                trajectories=count,
                steps=d.generate_steps,
                seed=d.generate_seed,
                split=split,
                mesh_resolution=d.generate_mesh_resolution,
                progress=True,
            )
    t_data = time.perf_counter() - t0
    run_dir = os.path.join(workdir, "run")
    run_training(config, run_dir)
    t_train = time.perf_counter() - t0 - t_data
    metrics = evaluate_forecasts(run_dir, split=d.valid_split)
    atomic.write_json(os.path.join(workdir, "metrics.json"), metrics)
    # Figures: scores by lead time, maps and an animation of the first forecast.
    plot_score_curves(os.path.join(workdir, "rmse.png"), metrics["lead_hours"], metrics["rmse"])
    plotting.plot_loss_curve(
        os.path.join(run_dir, "metrics.jsonl"), os.path.join(workdir, "loss.png")
    )
    _, sim, state = load_run(run_dir)
    dataset = open_split(config, d.valid_split)
    traj = dataset[0]
    steps = len(metrics["lead_hours"])
    pred = rollout_trajectory(
        sim, state.params, state.normalizers, traj, steps=steps, start=sim.task.history, chunk=steps
    )
    truth = np.asarray(traj["state"])[sim.task.history : sim.task.history + steps + 1]
    channel = len(metrics["variables"]) - 1
    name = metrics["variables"][channel]
    lat, lon = dataset.latitudes, dataset.longitudes
    plot_forecast_maps(
        os.path.join(workdir, "maps.png"),
        pred[-1, :, channel],
        truth[-1, :, channel],
        lat,
        lon,
        title=f"{name} +{steps * 6} h",
    )
    animate_forecast(
        os.path.join(workdir, "forecast.gif"),
        pred[1:, :, channel],
        truth[1:, :, channel],
        lat,
        lon,
        lead_hours=metrics["lead_hours"],
        title=name,
    )
    ok = beats_persistence(metrics)
    report = f"""# meshsim weather demo

GraphCast-style grid ↔ multimesh forecaster on built-in shallow-water data
({len(dataset.latitudes)} × {len(dataset.longitudes)} grid, {metrics["num_forecasts"]}
validation forecasts; data {t_data:.0f} s, training {t_train:.0f} s on this machine).
Latitude-weighted RMSE and ACC (WeatherBench2 definitions) against persistence and the
training climatology:

{_table(metrics)}

Beats persistence for every channel at 24 h and 72 h: **{"yes" if ok else "NO"}**.

![RMSE by lead time](rmse.png)
![maps](maps.png)
![forecast](forecast.gif)
"""
    atomic.write_text(os.path.join(workdir, "report.md"), report)
    logger.info("weather demo: %s", "beats persistence" if ok else "does NOT beat persistence")
    return 0 if ok else 1
