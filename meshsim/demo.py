"""`meshsim demo`: generate cylinder flow, train a lite MeshGraphNet, roll out, report.

Writes into the work directory: `data/` (the generated dataset), the run
(`config.json`, checkpoints, `metrics.jsonl`), `metrics.json`, `report.md`,
`rollout.gif`, `comparison.png` and `loss.png`. Data generation is skipped when
the dataset is already there (checked against the config: the same generator
settings, trajectory count and length) and training resumes, so an interrupted
demo continues where it stopped. Evaluation, plots, `metrics.json` and the
report's table are always redone from the run at hand, never left from an
earlier one. The demo checks that the model beats the persistence baseline at
every rollout horizon of the report, 1, 10, 50 and all (`PASS_HORIZONS`), and
exits non-zero if it does not; the quick version (too short to be held to that)
checks the horizons 10 and 50 it has, as before (`QUICK_PASS_HORIZONS`). The
report also shows the RMSE against the step (`rmse.png`), the kinetic energy of
model and truth against time (`kinetic_energy.png`) and the Strouhal number and
mean |∇·u| of model and truth (`meshsim.diagnostics`).
"""

from __future__ import annotations

import json
import logging
import os
import time

from meshsim import atomic
from meshsim.config import ExperimentConfig, apply_overrides, load_config

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = os.path.join("experiments", "cylinder_flow_lite.py")

# Minutes-long variant used by the test suite: a coarse mesh, short trajectories.
QUICK_OVERRIDES = [
    "data.generate_train_trajectories=3",
    "data.generate_valid_trajectories=1",
    "data.generate_steps=40",
    "model.latent_size=16",
    "model.num_message_passing_steps=2",
    "train.steps=60",
    "train.accumulate_steps=10",
    "train.checkpoint_every=30",
    "train.log_every=10",
    "data.generate_mesh_resolution=0.4",
]


PLOTS = (
    "loss.png",
    "comparison.png",
    "rollout.gif",
    "rollout.mp4",
    "rmse.png",
    "kinetic_energy.png",
)
# Rollout horizons (steps) at which the model must beat persistence; "all": every step.
PASS_HORIZONS = ("1", "10", "50", "all")
QUICK_PASS_HORIZONS = ("10", "50")  # the quick version's check, unchanged


def _check_existing(config: ExperimentConfig, split: str, n: int) -> None:
    """Raises ValueError if an existing generated split does not match the config."""
    from meshsim.data import open_dataset

    d = config.data
    dataset = open_dataset(d.path, split)
    expected = {
        "generator": {
            "domain": d.generate_domain,
            "seed": d.generate_seed,
            "mesh_resolution": d.generate_mesh_resolution,
        },
        "trajectories": n,
        "trajectory_length": d.generate_steps,
    }
    found = {
        "generator": dataset.meta.get("generator"),
        "trajectories": len(dataset),
        "trajectory_length": dataset.meta.get("trajectory_length"),
    }
    if found != expected:
        raise ValueError(
            f"{dataset.path} was generated with other settings ({found}, the config asks "
            f"for {expected}): use another --workdir, or remove {d.path}"
        )


# The weather demo's smoke version for the test suite.
WEATHER_QUICK_OVERRIDES = [
    "data.generate_train_trajectories=2",
    "data.generate_valid_trajectories=1",
    "data.generate_steps=16",
    "data.generate_mesh_resolution=0.5",
    "data.batch_size=2",
    "weather.mesh_splits=1",
    "model.latent_size=8",
    "model.num_message_passing_steps=1",
    "train.steps=6",
    "train.unroll_steps=2",
    "train.unroll_schedule=3",
    "train.checkpoint_every=3",
    "train.log_every=3",
]


def _generate(config: ExperimentConfig) -> dict[str, float]:
    from meshsim.solvers.generate import generate_dataset

    d = config.data
    seconds = {}
    for split, n in (
        (d.train_split, d.generate_train_trajectories),
        (d.valid_split, d.generate_valid_trajectories),
    ):
        if os.path.exists(os.path.join(d.path, f"{split}.h5")):
            _check_existing(config, split, n)
            continue
        t0 = time.perf_counter()
        generate_dataset(
            d.generate_domain,
            d.path,
            trajectories=n,
            steps=d.generate_steps,
            seed=d.generate_seed,
            split=split,
            mesh_resolution=d.generate_mesh_resolution,
            progress=True,
        )
        seconds[split] = time.perf_counter() - t0
    return seconds


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


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _diagnostics_section(diagnostics: dict | None) -> str:
    """The report's table of physical diagnostics (model vs truth), or a line why none."""
    summary = (diagnostics or {}).get("summary")
    if not summary:
        return "No physical diagnostics for this task."
    if "strouhal_model" in summary:
        s = summary
        return f"""Physical diagnostics, means over the held-out trajectories (per-frame series in
`metrics.json`; Strouhal number St = f D / U from the cross-flow velocity at a probe
2 D behind the obstacle, over the frames with truth, {s["strouhal_trajectories"]} of them
with shedding measurable in both; mean |∇·u| is the area-weighted mean over cells
of the P1 divergence, averaged over time):

| diagnostic | model | truth |
|---|---|---|
| Strouhal number | {_number(s["strouhal_model"])} | {_number(s["strouhal_truth"])} |
| mean \\|∇·u\\| | {_number(s["mean_abs_divergence_model"])} | \
{_number(s["mean_abs_divergence_truth"])} |
| kinetic energy at the last frame, model / truth | \
{_number(s["kinetic_energy_ratio_final"])} | 1 |

![kinetic energy against time](kinetic_energy.png)"""
    s = summary
    return f"""Physical diagnostics, means over the held-out trajectories and frames:

| diagnostic | model | truth |
|---|---|---|
| mean \\|edge strain\\| | {_number(s["mean_abs_strain_model"])} | \
{_number(s["mean_abs_strain_truth"])} |
| strain error \\|strain_model − strain_truth\\| | {_number(s["strain_error"])} | 0 |"""


def _curve_plots(workdir: str, result: dict) -> list[str]:
    """rmse.png and, for a flow, kinetic_energy.png, written into `workdir`."""
    from meshsim.plotting_rollout import plot_kinetic_energy, plot_rollout_rmse

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


def _table(rmse: dict) -> str:
    keys = [k for k in ("1", "10", "50", "all") if k in rmse["model"]]
    lines = [
        "| rollout RMSE | " + " | ".join(f"h={k}" for k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for name in ("model", "persistence"):
        lines.append(f"| {name} | " + " | ".join(f"{rmse[name][k]:.4f}" for k in keys) + " |")
    return "\n".join(lines)


def run_demo(
    workdir: str = "runs/demo", *, config_path: str = DEFAULT_CONFIG, quick: bool = False
) -> int:
    """Runs the whole demo; returns 0 if the model beats persistence at every horizon of
    `PASS_HORIZONS` (`QUICK_PASS_HORIZONS` with `quick`), 1 otherwise."""
    from meshsim.experiment import run_evaluation, run_plots, run_training

    overrides = [f"data.path={os.path.join(workdir, 'data')}"]
    if not os.path.exists(config_path):
        raise FileNotFoundError(
            f"config: {config_path!r} not found; run the demo from the repository root "
            "(make demo) or pass a config path"
        )
    config = load_config(config_path)
    if config.task == "weather":  # the weather demo: forecasts scored by lead time
        from meshsim.weather_runs import run_weather_demo

        weather_quick = WEATHER_QUICK_OVERRIDES if quick else []
        config = apply_overrides(config, overrides + weather_quick)
        return run_weather_demo(workdir, config, quick=quick)
    config = apply_overrides(config, overrides + (QUICK_OVERRIDES if quick else []))
    t0 = time.perf_counter()
    gen_seconds = _generate(config)
    t1 = time.perf_counter()
    run_dir = os.path.join(workdir, "run")
    run_training(config, run_dir)
    t2 = time.perf_counter()
    result = run_evaluation(run_dir, split=config.data.valid_split)
    t3 = time.perf_counter()
    plots = run_plots(run_dir)
    plots += _curve_plots(run_dir, result)
    t4 = time.perf_counter()

    rmse = result["rollout_rmse"]
    beats, beats_at = passes(rmse, QUICK_PASS_HORIZONS if quick else PASS_HORIZONS)
    horizons = list(beats_at)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        train_log = [json.loads(line) for line in f if line.strip()]
    sps = [r["steps_per_sec"] for r in train_log if "steps_per_sec" in r]
    n_rollout_steps = result["steps"] * result["num_trajectories"]
    timing = {
        "generate_s": round(t1 - t0, 1),
        "generate_s_per_split": {k: round(v, 1) for k, v in gen_seconds.items()},
        "train_s": round(t2 - t1, 1),
        "train_steps_per_s_median": round(sorted(sps)[len(sps) // 2], 2) if sps else None,
        "evaluate_s": round(t3 - t2, 1),
        "rollout_steps_per_s": round(n_rollout_steps / max(t3 - t2, 1e-9), 1),
        "plots_s": round(t4 - t3, 1),
    }
    summary = {
        **result,
        "beats_persistence": beats,  # at every horizon of beats_persistence_at
        "beats_persistence_at": beats_at,
        "timing": timing,
        "config": os.path.relpath(config_path),
    }
    atomic.write_json(os.path.join(workdir, "metrics.json"), summary)
    moved = set()
    for src in plots:
        dst = os.path.join(workdir, os.path.basename(src))
        if os.path.abspath(src) != os.path.abspath(dst):
            os.replace(src, dst)
        moved.add(os.path.basename(src))
    for name in set(PLOTS) - moved:  # never leave a figure of an earlier run beside these
        if os.path.exists(os.path.join(workdir, name)):
            os.remove(os.path.join(workdir, name))
    checked = ", ".join(horizons) or "(none: the rollout is too short)"
    if beats:
        verdict = f"The model beats persistence at every horizon checked ({checked})."
    else:
        lost = [h for h, ok in beats_at.items() if not ok] or horizons
        verdict = (
            f"The model does NOT beat persistence at every horizon checked ({checked}): "
            f"it loses at {', '.join(lost) or 'all of them'}."
        )
    trajectories = result["num_trajectories"]
    compiled = ", compilation included"
    report = f"""# meshsim demo: cylinder flow

Config `{os.path.relpath(config_path)}`{" (quick)" if quick else ""}: latent
{config.model.latent_size}, {config.model.num_message_passing_steps} message-passing steps,
{config.train.steps} training steps on {config.data.generate_train_trajectories} generated
trajectories of {config.data.generate_steps} frames.

Evaluated on {result["num_trajectories"]} held-out trajectories ({result["split"]} split),
rolled out {result["steps"]} steps from the first frame:

{_table(rmse)}

RMSE-h is the root-mean-square error over all mesh nodes and both velocity components,
averaged over the {trajectories} held-out trajectories and over the first h steps of the
rollout from the first frame (all: every step); persistence keeps the initial frame
for every step. The demo passes if the model is below persistence at each of
{checked}.

**{verdict}**

![rollout RMSE against the step, model and persistence](rmse.png)

{_diagnostics_section(result.get("diagnostics"))}

| stage | seconds |
|---|---|
| generate data | {timing["generate_s"]} |
| train | {timing["train_s"]} (median {timing["train_steps_per_s_median"]} steps/s) |
| roll out + evaluate | {timing["evaluate_s"]} ({timing["rollout_steps_per_s"]} steps/s{compiled}) |
| plots | {timing["plots_s"]} |

Files: `metrics.json`, `rollout.gif`, `comparison.png`, `rmse.png`, `kinetic_energy.png`,
`loss.png`, `run/` (checkpoints, `metrics.jsonl`, `rollouts.h5`).
"""
    atomic.write_text(os.path.join(workdir, "report.md"), report)
    print(report)
    return 0 if beats else 1
