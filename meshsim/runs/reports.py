"""What the demo reports for each way of scoring a run (`Task.scoring`).

`rollout_report`: rollout RMSE against persistence at horizons 1, 10, 50 and all,
the task's physical diagnostics (`Task.diagnostics.report_rows`), RMSE and energy
curves, the comparison figure and the rollout animation. `forecast_report`:
latitude-weighted RMSE and ACC by lead time against persistence and climatology,
forecast maps and an animation. Each writes its figures into the demo directory and
returns (the report's Markdown, whether the model passed, the demo's metrics).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from meshsim.rollout import rollout_trajectory
from meshsim.runs.build import open_split
from meshsim.runs.evaluate import plot_run
from meshsim.runs.workdir import STATISTICS, Run

# Rollout horizons (steps) at which the model must beat persistence; "all": every step.
PASS_HORIZONS = ("1", "10", "50", "all")
QUICK_PASS_HORIZONS = ("10", "50")  # the quick version's check
# Figures a rollout demo writes; any left from an earlier run is removed.
PLOTS = (
    "loss.png",
    "comparison.png",
    "rollout.gif",
    "rollout.mp4",
    "rmse.png",
    "kinetic_energy.png",
)
GATE_HOURS = (24.0, 72.0)  # a forecast demo must beat persistence at these lead times


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def passes(rmse: dict, horizons=PASS_HORIZONS) -> tuple[bool, dict[str, bool]]:
    """(whether the model beats persistence at every one of `horizons` that `rmse`
    has, {horizon: model < persistence}); False if it has none of them. A None
    (non-finite) model RMSE never beats."""
    at = {
        h: rmse["model"][h] is not None and rmse["model"][h] < rmse["persistence"][h]
        for h in horizons
        if h in rmse["model"]
    }
    return bool(at) and all(at.values()), at


def diagnostics_section(diagnostics: dict | None, kind=None) -> str:
    """The report's table of physical diagnostics (model vs truth) from a metrics.json
    `diagnostics` entry and the task's diagnostics class, or a line why there is none."""
    summary = (diagnostics or {}).get("summary")
    if not summary or kind is None:
        return "No physical diagnostics for this task."

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [
        f"| {cell(label)} | {_number(model)} | {_number(truth)} |"
        for label, model, truth in kind.report_rows(summary)
    ]
    energy = "kinetic_energy_ratio_final" in summary
    return "\n".join(
        [
            "Physical diagnostics, means over the held-out trajectories (per-frame series "
            f"in `metrics.json`). {kind.caption}",
            "",
            f"| diagnostic | model | {kind.reference_label} |",
            "|---|---|---|",
            *rows,
        ]
        + (["", "![kinetic energy against time](kinetic_energy.png)"] if energy else [])
    )


def _curve_plots(workdir: str, result: dict) -> list[str]:
    """rmse.png and, where the diagnostics hold energy series, kinetic_energy.png."""
    from meshsim.plotting import plot_kinetic_energy, plot_rollout_rmse

    horizons = [int(h) for h in ("1", "10", "50") if h in result["rollout_rmse"]["model"]]
    paths = [
        plot_rollout_rmse(
            result["rollout_rmse_per_step"],
            os.path.join(workdir, "rmse.png"),
            horizons=horizons,
            title="rollout RMSE per step, mean over held-out trajectories",
        )
    ]
    diagnostics = result.get("diagnostics") or {}
    flows = [t for t in diagnostics.get("trajectories", []) if t and "kinetic_energy_model" in t]
    if flows:
        paths.append(
            plot_kinetic_energy(
                flows,
                os.path.join(workdir, "kinetic_energy.png"),
                dt=flows[0].get("dt"),
                title="kinetic energy, held-out trajectories",
            )
        )
    return [str(p) for p in paths]


def _rmse_table(rmse: dict) -> str:
    keys = [k for k in ("1", "10", "50", "all") if k in rmse["model"]]
    lines = [
        "| rollout RMSE | " + " | ".join(f"h={k}" for k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for name in ("model", "persistence"):
        lines.append(f"| {name} | " + " | ".join(f"{rmse[name][k]:.4f}" for k in keys) + " |")
    return "\n".join(lines)


def rollout_report(
    workdir: str, run: Run, result: dict, *, title: str, quick: bool, timing: dict
) -> tuple[str, bool, dict[str, Any]]:
    """Figures, report and summary of a demo scored by rollouts (see the module doc)."""
    run_dir = run.workdir
    t0 = time.perf_counter()
    plots = plot_run(run_dir, run.sim.task) + _curve_plots(run_dir, result)
    moved = set()
    for src in plots:
        dst = os.path.join(workdir, os.path.basename(src))
        if os.path.abspath(src) != os.path.abspath(dst):
            os.replace(src, dst)
        moved.add(os.path.basename(src))
    for name in set(PLOTS) - moved:  # never leave a figure of an earlier run beside these
        if os.path.exists(os.path.join(workdir, name)):
            os.remove(os.path.join(workdir, name))
    timing = {**timing, "plots_s": round(time.perf_counter() - t0, 1)}
    rmse = result["rollout_rmse"]
    beats, beats_at = passes(rmse, QUICK_PASS_HORIZONS if quick else PASS_HORIZONS)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        train_log = [json.loads(line) for line in f if line.strip()]
    sps = [r["steps_per_sec"] for r in train_log if "steps_per_sec" in r]
    n_rollout_steps = result["steps"] * result["num_trajectories"]
    timing = {
        **timing,
        "train_steps_per_s_median": round(sorted(sps)[len(sps) // 2], 2) if sps else None,
        "rollout_steps_per_s": round(n_rollout_steps / max(timing["evaluate_s"], 1e-9), 1),
    }
    summary = {**result, "beats_persistence": beats, "beats_persistence_at": beats_at}
    checked = ", ".join(beats_at) or "(none: the rollout is too short)"
    if beats:
        verdict = f"The model beats persistence at every horizon checked ({checked})."
    else:
        lost = [h for h, ok in beats_at.items() if not ok] or list(beats_at)
        verdict = (
            f"The model does NOT beat persistence at every horizon checked ({checked}): "
            f"it loses at {', '.join(lost) or 'all of them'}."
        )
    kind, diagnosed = run.sim.task.diagnostics, (result.get("diagnostics") or {})
    gate = kind.gate(diagnosed["summary"]) if kind and diagnosed.get("summary") else None
    if gate is not None:  # the task's own bar (particles: constant velocity, no leaks)
        verdict = f"{verdict} {gate[1]}"
        summary["diagnostics_gate"] = gate[0]
        beats = beats and gate[0]
    summary["passed"] = beats  # persistence, and the task's own bar where it has one
    bar = " and meets its task's own bar (next line)" if gate is not None else ""
    config, n = run.config, result["num_trajectories"]
    report = f"""# meshsim demo: {title}

Latent {run.sim.model.latent_size}, {run.sim.model.num_message_passing_steps} message-passing
steps, {config.train.steps} training steps on {config.data.generate_train_trajectories}
generated trajectories of {config.data.generate_steps} frames.

Evaluated on {n} held-out trajectories ({result["split"]} split), rolled out
{result["steps"]} steps from the first frame:

{_rmse_table(rmse)}

RMSE-h is the root-mean-square error over all mesh nodes and the state's components,
averaged over the {n} held-out trajectories and over the first h steps of the rollout
from the first frame (all: every step); persistence keeps the initial frame for every
step. The demo passes if the model is below persistence at each of {checked}{bar}.

**{verdict}**

![rollout RMSE against the step, model and persistence](rmse.png)

{diagnostics_section(result.get("diagnostics"), run.sim.task.diagnostics)}

| stage | seconds |
|---|---|
| generate data | {timing["generate_s"]} |
| train | {timing["train_s"]} (median {timing["train_steps_per_s_median"]} steps/s) |
| roll out + evaluate | {timing["evaluate_s"]} ({timing["rollout_steps_per_s"]} steps/s, \
compilation included) |
| plots | {timing["plots_s"]} |

Files: `metrics.json`, `rollout.gif`, `comparison.png`, `rmse.png`, `loss.png`, `run/`
(checkpoints, `metrics.jsonl`, `rollouts.h5`).
"""
    return report, beats, {**summary, "timing": timing}


def _forecast_table(metrics: dict) -> str:
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
    """Forecast RMSE below persistence for every channel at 24 h and 72 h."""
    hours = metrics["lead_hours"]
    if any(h not in hours for h in GATE_HOURS):
        return False
    r = metrics["rmse"]
    return all(
        r["model"][c][hours.index(h)] < r["persistence"][c][hours.index(h)]
        for c in metrics["variables"]
        for h in GATE_HOURS
    )


def forecast_report(
    workdir: str, run: Run, metrics: dict, *, title: str, quick: bool, timing: dict
) -> tuple[str, bool, dict[str, Any]]:
    """Figures, report and summary of a demo scored by forecasts (see the module doc)."""
    del quick  # one gate for both sizes
    from meshsim.data.weather import WeatherStatistics
    from meshsim.plotting import (
        animate_forecast,
        plot_forecast_maps,
        plot_loss_curve,
        plot_score_curves,
    )

    plot_score_curves(os.path.join(workdir, "rmse.png"), metrics["lead_hours"], metrics["rmse"])
    plot_loss_curve(os.path.join(run.workdir, "metrics.jsonl"), os.path.join(workdir, "loss.png"))
    sim, state = run.sim, run.state
    dataset = open_split(run.config, metrics["split"])
    traj = dataset[0]
    steps = len(metrics["lead_hours"])
    history = sim.task.history
    pred = rollout_trajectory(
        sim, state.params, state.normalizers, traj, steps=steps, start=history, chunk=steps
    )
    truth = np.asarray(traj["state"])[history : history + steps + 1]
    channel = len(metrics["variables"]) - 1
    name = metrics["variables"][channel]
    lat, lon = dataset.latitudes, dataset.longitudes
    hours = metrics["lead_hours"]
    # the training climatology: maps show anomalies where it dominates the field
    stats = WeatherStatistics.load(os.path.join(run.workdir, STATISTICS))
    climatology = stats.climatology[:, stats.channels.index(name)]
    if dataset.meta.get("points"):  # a stretched grid or a point set: maps of points
        return _points_report(
            workdir,
            dataset,
            metrics,
            (pred[-1, :, channel], truth[-1, :, channel], climatology),
            title=title,
            timing=timing,
        )
    plot_forecast_maps(
        os.path.join(workdir, "maps.png"),
        pred[-1, :, channel],
        truth[-1, :, channel],
        lat,
        lon,
        climatology=climatology,
        title=f"{name} +{hours[-1]:g} h",
    )
    animate_forecast(
        os.path.join(workdir, "forecast.gif"),
        pred[1:, :, channel],
        truth[1:, :, channel],
        lat,
        lon,
        lead_hours=hours,
        climatology=climatology,
        title=name,
    )
    ok = beats_persistence(metrics)
    report = f"""# meshsim demo: {title}

GraphCast-style grid ↔ multimesh forecaster
({len(lat)} × {len(lon)} grid, {metrics["num_forecasts"]} validation forecasts; data
{timing["generate_s"]:.0f} s, training {timing["train_s"]:.0f} s on this machine).
Latitude-weighted RMSE and ACC (WeatherBench2 definitions) against persistence and the
training climatology:

{_forecast_table(metrics)}

Beats persistence for every channel at 24 h and 72 h: **{"yes" if ok else "NO"}**.

![RMSE by lead time](rmse.png)
![maps](maps.png)
![forecast](forecast.gif)
"""
    return report, ok, metrics


def _points_report(workdir, dataset, metrics, fields, *, title, timing):
    """The report of a demo on a point set: the scores overall (and for a stretched
    grid inside the fine region and outside it), and maps of `fields` = (forecast,
    truth, climatology) `[N]` each at the last lead time, on the globe (and zoomed to
    the region)."""
    from meshsim.plotting import plot_point_maps

    ok = beats_persistence(metrics)
    name, hours = metrics["variables"][-1], metrics["lead_hours"]
    lat, lon = dataset.point_latitudes, dataset.point_longitudes
    region = dataset.region_mask is not None
    maps = (("maps.png", None), ("region.png", getattr(dataset, "box", None)))
    for file, extent in maps[: 1 + region]:
        plot_point_maps(
            os.path.join(workdir, file),
            *fields[:2],
            lat,
            lon,
            extent=extent,
            climatology=fields[2],
            title=f"{name} +{hours[-1]:g} h",
        )
    sections = [_forecast_table(metrics)]
    for part in ("inside", "outside") if region else ():
        scores = {**metrics, **metrics["regions"][part]}
        sections.append(f"**{part} the region** {dataset.box}:\n\n{_forecast_table(scores)}")
    tables = "\n\n".join(sections)
    where = (
        f", {int(dataset.region_mask.sum())} of them in the fine region of a stretched grid"
        if region
        else ""
    )
    report = f"""# meshsim demo: {title}

GraphCast-style forecaster on {dataset.weights.size} points{where}
({metrics["num_forecasts"]} validation
forecasts; data {timing["generate_s"]:.0f} s, training {timing["train_s"]:.0f} s on this
machine). Area-weighted RMSE and ACC against persistence and the training climatology,
over all points:

{tables}

Beats persistence for every channel at 24 h and 72 h: **{"yes" if ok else "NO"}**.

![RMSE by lead time](rmse.png)
![maps](maps.png)
{"![the region](region.png)" if region else ""}
"""
    return report, ok, metrics


REPORTS = {"rollout": rollout_report, "forecast": forecast_report}
