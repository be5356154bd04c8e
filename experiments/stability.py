"""Rollout stability study: which training recipe keeps long rollouts stable, at equal
training time.

For cylinder flow (`experiments/cylinder_flow_lite.py`'s data and model) and cloth
(`experiments/flag_simple_lite.py`), each configuration of `variants(task)` is trained for the
same wall-clock budget and scored by the package's own evaluation
(`meshsim.runs.run_evaluation`: rollouts of every validation trajectory from its
first frame, RMSE at horizons 1/10/50/all against persistence). From the stored
rollouts (`rollouts.h5`) the study adds the first step at which the model's per-step
RMSE (over the validation trajectories) exceeds persistence's, and the same for the
cumulative RMSE the horizon table reports.

Equal time, how: training runs in chunks (`run_training(..., max_steps=...)`, which
resumes bitwise). The first chunk trains a short warm-up; its steady-state steps/s
(the median of the logged intervals, leaving out those that include a compilation)
sizes the next chunk so that the sum over trained steps of 1 / (steps/s at that
step's rollout horizon) meets `--budget-s`. A curriculum (`train.unroll_schedule`)
changes the step cost as the horizon grows, so each new horizon is measured in a
short chunk of its own before the rest is planned. The budget therefore counts
steady-state training time only; compilation, checkpoints, the statistics-only
warm-up steps (the same for every configuration) and evaluation are reported apart
(`train_wall_s`). A configuration trains at least the first chunk (`--probe-steps`),
which may already exceed a small budget; the report flags those rows. Other
processes sharing the cores move the measured rates; the load averages are recorded
with the results.

Usage (from the repository root)::

    .venv/bin/python experiments/stability.py --budget-s 180 --cloth-budget-s 90
    .venv/bin/python experiments/stability.py --tasks "" --add-demo /tmp/demo-check
    .venv/bin/python experiments/stability.py --smoke --out /tmp/stab   # ~1 min CPU per task

Writes `<out>/stability.json` and `<out>/stability.md` (default
`experiments/results/`), runs under `--workdir` (default `runs/stability`). A run
of some tasks or configurations (`--tasks`, `--configs`) updates those entries of
an existing `stability.json` and keeps the others; `--add-demo` adds finished
`meshsim demo` runs (the check at the demo's own scale) to the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import math
import os
import platform
import shutil
import statistics
import sys
import time

import numpy as np

from meshsim import atomic
from meshsim.config import (
    ExperimentConfig,
    ModelConfig,
    apply_overrides,
    lite_train_config,
    load_config,
)
from meshsim.evaluation import metrics as M
from meshsim.training.multistep import horizon_at

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

logger = logging.getLogger("stability")

# ----------------------------------------------------------------------------- setup

# Per task: the preset whose data settings the study uses, where its dataset may be
# copied from, the smoke-mode sizes. The network (the lite presets' latent 64, 8 steps)
# and the training settings (`lite_train_config()`, the task's paper noise) are pinned
# in `base_config`, so that editing a preset's defaults does not move the baseline.
TASKS = {
    "cylinder": {
        "preset": "experiments/cylinder_flow_lite.py",
        "reuse": "runs/demo/data",  # the demo's data, copied when its settings match
        "smoke": [
            "data.generate_train_trajectories=2",
            "data.generate_valid_trajectories=1",
            "data.generate_steps=24",
            "data.generate_mesh_resolution=0.4",
        ],
    },
    "cloth": {
        "preset": "experiments/flag_simple_lite.py",
        "reuse": None,
        "smoke": [
            "data.generate_train_trajectories=2",
            "data.generate_valid_trajectories=1",
            "data.generate_steps=16",
            "data.generate_mesh_resolution=0.4",
        ],
    },
}

# Smoke-mode training: a tiny network, a few statistics-only steps, frequent logs.
SMOKE_TRAIN = [
    "model.latent_size=8",
    "model.num_message_passing_steps=1",
    "model.mlp_hidden_layers=1",
    "train.accumulate_steps=2",
    "train.normalizer_max_accumulations=100",
]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One training recipe: `overrides` on the pinned baseline (`apply_overrides` syntax).

    `smoke` replaces overrides whose sizes (a curriculum's schedule, a bundle longer
    than the smoke trajectories allow) only make sense at real scale.
    """

    name: str
    about: str
    overrides: tuple[str, ...] = ()
    smoke: tuple[str, ...] = ()


def _noise(task: str, factor: float) -> str:
    base = {"cylinder": 0.02, "cloth": 0.003}[task]  # the tasks' paper values
    return f"task.noise_std={base * factor:g}"


def variants(task: str) -> list[Variant]:
    """The configurations of one task. Curriculum schedules are in training steps (the
    real budgets train a few hundred steps under contention)."""
    schedule = {"cylinder": 100, "cloth": 60}[task]
    curriculum = (f"train.unroll_schedule={schedule}",)
    return [
        Variant("onestep", "one-step loss + paper noise (baseline)", (_noise(task, 1),)),
        Variant("onestep_noise3", "one-step loss, 3× noise", (_noise(task, 3),)),
        Variant(
            "pushforward2",
            "pushforward k=2, paper noise",
            (_noise(task, 1), "train.unroll_steps=2", "train.unroll_mode=pushforward"),
        ),
        Variant(
            "pushforward3_noise3",
            "pushforward k=3, 3× noise",
            (_noise(task, 3), "train.unroll_steps=3", "train.unroll_mode=pushforward"),
        ),
        Variant(
            "unrolled3_curriculum",
            f"unrolled k=3 (gradients through the rollout), +1 step every {schedule}",
            (_noise(task, 1), "train.unroll_steps=3", "train.unroll_mode=unrolled", *curriculum),
            smoke=("train.unroll_schedule=2",),
        ),
        *[_bundled(task, k) for k in (2, 8, 16)],
        *[_bundled(task, k, pushforward=2) for k in (4, 8)],
    ]


def _bundled(task: str, k: int, pushforward: int = 1) -> Variant:
    """Temporal bundling K=k with the one-step loss, or with pushforward over
    `pushforward` calls; paper noise. Smoke runs bundle 2 frames (short trajectories)."""
    name, about, overrides = f"bundle{k}", f"temporal bundling K={k}", [_noise(task, 1)]
    overrides.append(f"model.bundle_steps={k}")
    if pushforward > 1:
        name += f"_pushforward{pushforward}"
        about += f" + pushforward k={pushforward} ({k * pushforward} frames ahead)"
        overrides += [f"train.unroll_steps={pushforward}", "train.unroll_mode=pushforward"]
    else:
        about += ", one-step loss"
    smoke = () if k == 2 and pushforward == 1 else ("model.bundle_steps=2",)
    return Variant(name, about + ", paper noise", tuple(overrides), smoke)


def base_config(task: str, data_path: str, *, smoke: bool) -> ExperimentConfig:
    """The preset's data settings with the study's pinned network and training settings."""
    spec = TASKS[task]
    config = load_config(os.path.join(REPO, spec["preset"]))
    train = dataclasses.replace(
        lite_train_config(),
        steps=10_000_000,  # chunks stop at max_steps; the schedule does not depend on it
        log_every=2 if smoke else 10,
        checkpoint_every=10_000_000,
        keep_checkpoints=1,
    )
    model = ModelConfig(latent_size=64, num_message_passing_steps=8)  # the lite network
    task = dataclasses.replace(config.task, noise_std=None, noise_gamma=None)
    config = dataclasses.replace(config, model=model, train=train, task=task)
    overrides = spec["smoke"] + SMOKE_TRAIN if smoke else []
    return apply_overrides(config, [*overrides, f"data.path={data_path}"])


def variant_overrides(variant: Variant, *, smoke: bool) -> list[str]:
    """The variant's overrides, its `smoke` ones replacing those of the same keys."""
    if not smoke:
        return list(variant.overrides)
    keys = {o.split("=", 1)[0] for o in variant.smoke}
    kept = [o for o in variant.overrides if o.split("=", 1)[0] not in keys]
    return kept + list(variant.smoke)


# ----------------------------------------------------------------------------- data


def _dataset_matches(config: ExperimentConfig, path: str) -> bool:
    """Whether `path` holds train and valid splits generated with the config's settings."""
    from meshsim.data import open_dataset

    d = config.data
    want = {"domain": d.generate_domain, "seed": d.generate_seed}
    want["mesh_resolution"] = d.generate_mesh_resolution
    for split, n in ((d.train_split, d.generate_train_trajectories), (d.valid_split, 0)):
        if not os.path.exists(os.path.join(path, f"{split}.h5")):
            return False
        ds = open_dataset(path, split)
        if ds.meta.get("generator") != want or ds.meta.get("trajectory_length") != d.generate_steps:
            return False
        if split == d.train_split and len(ds) != n:
            return False
        if split == d.valid_split and len(ds) != d.generate_valid_trajectories:
            return False
    return True


def prepare_data(task: str, config: ExperimentConfig, *, smoke: bool) -> dict:
    """Makes `config.data.path` hold the config's dataset: kept if it matches, copied
    from the task's `reuse` directory if that matches, generated otherwise."""
    from meshsim.solvers.generate import generate_dataset

    d = config.data
    path = d.path
    reuse = TASKS[task]["reuse"]
    if _dataset_matches(config, path):
        return {"path": path, "source": "existing"}
    if os.path.exists(path):
        shutil.rmtree(path)
    if not smoke and reuse and _dataset_matches(config, os.path.join(REPO, reuse)):
        shutil.copytree(os.path.join(REPO, reuse), path)
        return {"path": path, "source": f"copied from {reuse}"}
    t0 = time.perf_counter()
    for split, n in (
        (d.train_split, d.generate_train_trajectories),
        (d.valid_split, d.generate_valid_trajectories),
    ):
        generate_dataset(
            d.generate_domain,
            path,
            trajectories=n,
            steps=d.generate_steps,
            seed=d.generate_seed,
            split=split,
            mesh_resolution=d.generate_mesh_resolution,
        )
    return {"path": path, "source": f"generated in {time.perf_counter() - t0:.0f} s"}


# ----------------------------------------------------------------------------- training


def _horizon(config: ExperimentConfig, step: int) -> int:
    """The rollout horizon the trainer uses for global step `step` (0-based)."""
    tc = config.train
    return horizon_at(
        step - tc.accumulate_steps, max_horizon=tc.unroll_steps, schedule=tc.unroll_schedule
    )


def _read_log(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _clean_rates(config: ExperimentConfig, records: list[dict], start: int) -> dict[int, list]:
    """{horizon: [steps/s]} from the log intervals of one chunk that started at global
    step `start`, leaving out the first interval of the chunk and the first interval of
    each horizon (they include a compilation) and intervals spanning two horizons."""
    every = config.train.log_every
    out: dict[int, list] = {}
    seen: set[int] = set()
    for r in records:
        if r["step"] <= start or "steps_per_sec" not in r:
            continue
        first, last = _horizon(config, r["step"] - every), _horizon(config, r["step"] - 1)
        fresh = r["step"] - every <= start or first not in seen
        seen.update((first, last))
        if fresh or first != last:
            continue
        out.setdefault(last, []).append(r["steps_per_sec"])
    return out


def _rate(samples: dict[int, list], horizon: int, fallback: float) -> float:
    if samples.get(horizon):
        return statistics.median(samples[horizon])
    return fallback


def _next_boundary(config: ExperimentConfig, step: int) -> float:
    """The first global step after `step` whose horizon differs (inf: none)."""
    tc = config.train
    h = _horizon(config, step)
    if tc.unroll_schedule <= 0 or h >= tc.unroll_steps:
        return math.inf
    return tc.accumulate_steps + h * tc.unroll_schedule


def _plan(config, samples, step: int, budget_s: float, probe_steps: int, fallback: float) -> int:
    """The end of the next chunk: as far as `budget_s` reaches at the measured rates, or
    `probe_steps` into the first horizon whose rate is not measured yet."""
    s = step
    while True:
        h = _horizon(config, s)
        if not samples.get(h):  # measure a new horizon first
            return s + probe_steps
        rate = _rate(samples, h, fallback)
        boundary = _next_boundary(config, s)
        fits = int(budget_s * rate)
        if s + fits < boundary:
            return s + max(fits, 1)
        budget_s -= (boundary - s) / rate
        s = int(boundary)


def train_for_budget(
    config: ExperimentConfig, workdir: str, *, budget_s: float, probe_steps: int
) -> dict:
    """Trains until the steady-state training time (see the module doc) meets `budget_s`.

    Returns the bookkeeping: steps trained, steps/s per horizon, the estimated training
    seconds and the wall seconds of the `run_training` calls.
    """
    from meshsim.runs import run_training

    tc = config.train
    start = tc.accumulate_steps
    samples: dict[int, list] = {}
    spent = 0.0
    wall = 0.0
    step, end, chunks = 0, start + probe_steps, 0
    while True:
        t0 = time.perf_counter()
        run_training(config, workdir, max_steps=end, progress=False)
        took = time.perf_counter() - t0
        wall += took
        chunks += 1
        for h, values in _clean_rates(config, _read_log(workdir), max(step, start)).items():
            samples.setdefault(h, []).extend(values)
        trained = range(max(step, start), end)
        fallback = max(len(trained), 1) / took  # compilation included: pessimistic
        spent += sum(1.0 / _rate(samples, _horizon(config, s), fallback) for s in trained)
        step = end
        remaining = budget_s - spent
        if remaining <= 0:
            break
        end = _plan(config, samples, step, remaining, probe_steps, fallback)
    rates = {str(h): round(statistics.median(v), 3) for h, v in sorted(samples.items()) if v}
    return {
        "steps_trained": step - start,
        "steps_per_s": rates,
        "estimated_train_s": round(spent, 1),
        "train_wall_s": round(wall, 1),
        "chunks": chunks,
    }


# ----------------------------------------------------------------------------- scoring


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _first_exceed(model: np.ndarray, persistence: np.ndarray) -> int | None:
    """First step t ≥ 1 with model > persistence (a non-finite model error counts)."""
    worse = ~np.isfinite(model[1:]) | (model[1:] > persistence[1:])
    hits = np.flatnonzero(worse)
    return int(hits[0]) + 1 if hits.size else None


def per_step_rmse(rollouts_path: str) -> tuple[np.ndarray, np.ndarray]:
    """[T] per-step RMSE of the model and of persistence over the rollouts of a run
    (mean over trajectories of each frame's MSE, as `evaluation.rollout_metrics` scores
    a frame); frame 0 is the initial state (error 0)."""
    from meshsim.evaluation import iter_rollouts_h5

    model, persistence = [], []
    for r in iter_rollouts_h5(rollouts_path):
        truth = r["truth"][()]
        pred = r["pred"][: truth.shape[0]]
        model.append(np.asarray(M.per_step_mse(pred, truth), np.float64))
        same = np.broadcast_to(truth[0], truth.shape)
        persistence.append(np.asarray(M.per_step_mse(same, truth), np.float64))
    shortest = min(len(m) for m in model)
    model_mse = np.mean([m[:shortest] for m in model], axis=0)
    persistence_mse = np.mean([p[:shortest] for p in persistence], axis=0)
    return np.sqrt(model_mse), np.sqrt(persistence_mse)


def score(workdir: str, split: str) -> dict:
    """The package's evaluation of a run plus first-exceed steps and per-step curves."""
    from meshsim.runs import run_evaluation

    t0 = time.perf_counter()
    result = run_evaluation(workdir, split=split)
    model, persistence = per_step_rmse(os.path.join(workdir, "rollouts.h5"))
    steps = np.arange(1, len(model))
    model_cum = np.sqrt(np.cumsum(model[1:] ** 2) / steps)
    persistence_cum = np.sqrt(np.cumsum(persistence[1:] ** 2) / steps)
    rmse = {
        who: {k: _finite_or_none(v) for k, v in values.items()}
        for who, values in result["rollout_rmse"].items()
    }
    return {
        "rmse": rmse,
        "first_exceed_step": _first_exceed(model, persistence),
        "first_exceed_step_cumulative": _first_exceed(
            np.concatenate([[0.0], model_cum]), np.concatenate([[0.0], persistence_cum])
        ),
        "rollout_steps": result["steps"],
        "num_trajectories": result["num_trajectories"],
        "evaluate_s": round(time.perf_counter() - t0, 1),
        "per_step_rmse": {
            "model": [_finite_or_none(round(float(x), 5)) for x in model],
            "persistence": [round(float(x), 5) for x in persistence],
        },
    }


# ----------------------------------------------------------------------------- study


def run_task(task: str, args, names: set[str] | None) -> dict:
    smoke = args.smoke
    data_path = os.path.join(args.workdir, "data", task)
    base = base_config(task, data_path, smoke=smoke)
    data = prepare_data(task, base, smoke=smoke)
    budget = args.budget_s if task == "cylinder" else args.cloth_budget_s
    probe = args.probe_steps
    out = {"budget_s": budget, "probe_steps": probe, "dataset": data, "configs": {}}
    out["dataset"]["settings"] = dataclasses.asdict(base.data)
    for variant in variants(task):
        if names is not None and variant.name not in names:
            continue
        overrides = variant_overrides(variant, smoke=smoke)
        config = apply_overrides(base, overrides)
        workdir = os.path.join(args.workdir, task, variant.name)
        if os.path.exists(workdir):
            shutil.rmtree(workdir)
        logger.info("%s/%s: training for %.0f s", task, variant.name, budget)
        entry = {"about": variant.about, "overrides": overrides}
        entry["load_before"] = [round(x, 2) for x in os.getloadavg()]
        try:
            entry.update(train_for_budget(config, workdir, budget_s=budget, probe_steps=probe))
            entry.update(score(workdir, config.data.valid_split))
        except (ArithmeticError, ValueError) as e:  # a diverged run is a result too
            logger.warning("%s/%s failed: %s", task, variant.name, e)
            entry.update({"error": str(e), "rmse": None, "first_exceed_step": 1})
        entry["load_after"] = [round(x, 2) for x in os.getloadavg()]
        out["configs"][variant.name] = entry
        logger.info("%s/%s: %s", task, variant.name, _summary(entry))
    return out


def _summary(entry: dict) -> str:
    if entry.get("rmse") is None:
        return f"failed: {entry.get('error')}"
    m = entry["rmse"]["model"]
    return (
        f"{entry['steps_trained']} steps, rmse "
        + ", ".join(f"{k}={v:.4g}" for k, v in m.items() if v is not None)
        + f", first exceed {entry['first_exceed_step']}"
    )


def machine_note() -> dict:
    import jax

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
    }


# ----------------------------------------------------------------------------- report


def _fmt(x) -> str:
    if x is None:
        return "—"
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Rollout stability at equal training time",
        "",
        "Written by `experiments/stability.py`"
        + (" (`--smoke`: tiny sizes, numbers meaningless)" if results.get("smoke") else "")
        + ". Each configuration trains for the same steady-state training time (the",
        "budget; steps = budget × the steps/s measured in a warm-up chunk and again for each",
        "new curriculum horizon); compilation, checkpoints and the statistics-only steps are",
        "outside it (`wall s` is the whole training). Evaluation is `meshsim.runs.run_evaluation`",
        "on every validation trajectory, rolled out from its first frame to its end. RMSE at",
        "h is the RMSE over steps 1..h (the package's metric); *first exceed* is the first",
        "step at which the model's per-step RMSE (averaged over trajectories) exceeds",
        "persistence's, and *cum.* the same for the RMSE over steps 1..t (— : never).",
        "",
        f"Machine: {m['cpu_count']} CPU cores ({m['processor']}, {m['platform']}), jax "
        f"{m['jax']}, {', '.join(m['devices'])}; {m['date']}. The cores are shared with other",
        "processes (test suites, other training runs), so the measured steps/s, and with them",
        "the steps each configuration got, carry that contention; `load` is the 1-minute",
        "load average before and after each configuration.",
    ]
    for task, t in results["tasks"].items():
        ds = t["dataset"]["settings"]
        lines += [
            "",
            f"## {task}",
            "",
            f"Budget {t['budget_s']:g} s of training per configuration; data: "
            f"{ds['generate_train_trajectories']} train / {ds['generate_valid_trajectories']} "
            f"valid generated trajectories of {ds['generate_steps']} frames "
            f"(mesh resolution {ds['generate_mesh_resolution']:g}; {t['dataset']['source']}).",
            "",
            "| config | steps | steps/s (by horizon) | train s | wall s | h=1 | h=10 | h=50 "
            "| h=all | first exceed | cum. | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        persistence = None
        for name, c in t["configs"].items():
            if c.get("rmse") is None:
                lines.append(f"| {name} | failed: {c.get('error', '')[:80]} ||||||||||")
                continue
            persistence = c["rmse"]["persistence"]
            rm = c["rmse"]["model"]
            rates = ", ".join(f"{k}: {v:.2f}" for k, v in c["steps_per_s"].items())
            cells = [
                name,
                str(c["steps_trained"]),
                rates,
                f"{c['estimated_train_s']:.0f}",
                f"{c['train_wall_s']:.0f}",
                *[_bold_if_better(rm.get(h), persistence.get(h)) for h in ("1", "10", "50", "all")],
                _fmt(c["first_exceed_step"]),
                _fmt(c["first_exceed_step_cumulative"]),
                f"{c['load_before'][0]:.1f}→{c['load_after'][0]:.1f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if persistence is not None:
            cells = ["persistence", "", "", "", ""]
            cells += [_fmt(persistence.get(h)) for h in ("1", "10", "50", "all")]
            lines.append("| " + " | ".join(cells + ["", "", ""]) + " |")
        lines += ["", "Configurations:", ""]
        for name, c in t["configs"].items():
            lines.append(f"- `{name}`: {c['about']} (`{' '.join(c['overrides'])}`)")
        lines.append("")
        lines.append("Bold RMSE: below persistence at that horizon.")
        lines += _best_lines(t["configs"])
        over = [
            n
            for n, c in t["configs"].items()
            if c.get("estimated_train_s", 0) > t["budget_s"]
            and c.get("steps_trained", 0) <= t["probe_steps"]
        ]
        if over:
            lines += [
                "",
                f"Over budget (`train s` > {t['budget_s']:g}): {', '.join(over)}: the first chunk "
                f"({t['probe_steps']} steps, the least a configuration trains) already took longer "
                "than the budget at the measured steps/s, so these rows compare equal step counts "
                "rather than equal time.",
            ]
    lines += _demo_lines(results.get("demo_checks", {}))
    return "\n".join(lines) + "\n"


def _best_lines(configs: dict) -> list[str]:
    """Which configuration is best over the full rollout, and which beat persistence at
    every horizon: the study's answer for a task's defaults."""
    scored = {n: c["rmse"] for n, c in configs.items() if c.get("rmse") is not None}
    if not scored:
        return []
    best = min(scored, key=lambda n: scored[n]["model"]["all"])
    winners = [
        n
        for n, r in scored.items()
        if all(r["model"][h] < r["persistence"][h] for h in ("1", "10", "50", "all"))
    ]
    return [
        f"Lowest full-rollout RMSE: `{best}` ({_fmt(scored[best]['model']['all'])}). Below "
        "persistence at every horizon: "
        + (", ".join(f"`{n}`" for n in winners) if winners else "none")
        + "."
    ]


def _demo_lines(checks: dict) -> list[str]:
    if not checks:
        return []
    lines = [
        "",
        "## Checks at the demo's scale",
        "",
        "Full `meshsim demo` runs (16 trajectories, 4 held out, 299-step rollouts) with",
        "settings the study suggested; wall seconds as measured, under the contention of the",
        "time. The pushforward runs here predate two changes: they always ran k − 1 frozen",
        "steps (now drawn from 0..k − 1) and scored a bundle by its integrated states (now",
        "its slices); for K = 1 the loss itself is the same.",
        "",
        "| run | settings | train s (median steps/s) | h=1 | h=10 | h=50 | h=all |",
        "|---|---|---|---|---|---|---|",
    ]
    persistence = None
    for name, c in checks.items():
        t = c["train"]
        settings = f"{t['steps']} steps, noise {c['noise_std'] or 'paper'}"
        if t["unroll_steps"] > 1:
            settings += f", {t['unroll_mode']} k={t['unroll_steps']}"
            if t["unroll_schedule"]:
                settings += f" (+1 every {t['unroll_schedule']})"
        if (c["model"].get("bundle_steps") or 1) > 1:
            settings += f", bundle K={c['model']['bundle_steps']}"
        timing = c.get("timing") or {}
        rm, persistence = c["rmse"]["model"], c["rmse"]["persistence"]
        cells = [
            f"`{name}`",
            settings,
            f"{timing.get('train_s')} ({timing.get('train_steps_per_s_median')})",
            *[_bold_if_better(rm.get(h), persistence.get(h)) for h in ("1", "10", "50", "all")],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if persistence is not None:
        cells = ["persistence", "", ""] + [
            _fmt(persistence.get(h)) for h in ("1", "10", "50", "all")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _bold_if_better(model, persistence) -> str:
    text = _fmt(model)
    if model is not None and persistence is not None and model < persistence:
        return f"**{text}**"
    return text


# ----------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-s", type=float, default=180.0, help="cylinder training seconds")
    p.add_argument("--cloth-budget-s", type=float, default=90.0, help="cloth training seconds")
    p.add_argument("--probe-steps", type=int, default=60, help="steps of a rate-measuring chunk")
    p.add_argument("--tasks", default="cylinder,cloth", help="comma-separated: cylinder,cloth")
    p.add_argument("--configs", default=None, help="comma-separated config names (default all)")
    p.add_argument("--workdir", default=os.path.join(REPO, "runs", "stability"))
    p.add_argument("--out", default=os.path.join(REPO, "experiments", "results"))
    p.add_argument("--smoke", action="store_true", help="tiny sizes, ~1 min CPU per task")
    p.add_argument(
        "--add-demo",
        action="append",
        default=[],
        metavar="WORKDIR",
        help="add a finished `meshsim demo` run to the report (with --tasks '' : nothing else)",
    )
    args = p.parse_args(argv)
    if args.smoke and "--budget-s" not in (argv or sys.argv):
        args.budget_s = args.cloth_budget_s = 0.01  # one chunk each: compiling dominates
        args.probe_steps = 4
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]  # "": none
    unknown = set(tasks) - set(TASKS)
    if unknown:
        p.error(f"--tasks: unknown {sorted(unknown)}; valid: {sorted(TASKS)}")
    args.tasks = tasks
    return args


def _read_results(path: str, smoke: bool) -> dict:
    """The results file's tasks (of the same mode), or none."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        old = json.load(f)
    return old.get("tasks", {}) if old.get("smoke") == smoke else {}


def demo_check(workdir: str) -> dict:
    """The result of a full `meshsim demo` run (its metrics.json and training settings),
    the check at the demo's own scale of what the study suggests."""
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(workdir, "run", "config.json")) as f:
        config = json.load(f)
    defaults = {"steps": None, "unroll_steps": 1, "unroll_mode": "unrolled", "unroll_schedule": 0}
    return {
        "config": metrics.get("config"),
        # config.json of either layout: the task section, or top-level noise (older runs)
        "noise_std": (config["task"] if isinstance(config.get("task"), dict) else config).get(
            "noise_std"
        ),
        "model": {k: config["model"].get(k) for k in ("latent_size", "bundle_steps")},
        "train": {k: config["train"].get(k, v) for k, v in defaults.items()},  # older runs
        "rmse": metrics["rollout_rmse"],
        "timing": metrics.get("timing"),
    }


def write_results(
    out: str, task: str | None, new: dict | None, *, smoke: bool, partial: bool, demos=()
) -> dict:
    """Merges one task's results (and demo checks) into `<out>/stability.json` (read
    again just before writing, so studies of different tasks may run side by side) and
    rewrites the markdown. `partial`: `new` holds some configurations only; the others
    are kept."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "stability.json")
    tasks = _read_results(path, smoke)
    checks = {}
    if os.path.exists(path):
        with open(path) as f:
            checks = json.load(f).get("demo_checks", {})
    if task is not None:
        if partial and task in tasks:
            new = {**new, "configs": {**tasks[task]["configs"], **new["configs"]}}
        tasks[task] = new
    for workdir in demos:
        checks[os.path.basename(os.path.normpath(workdir))] = demo_check(workdir)
    results = {"smoke": smoke, "machine": machine_note(), "tasks": tasks}
    if checks:
        results["demo_checks"] = checks
    atomic.write_json(path, results)
    atomic.write_text(os.path.join(out, "stability.md"), markdown(results))
    return results


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    args = parse_args(argv)
    names = None if args.configs is None else {c.strip() for c in args.configs.split(",")}
    results = None
    for task in args.tasks:
        new = run_task(task, args, names)
        results = write_results(args.out, task, new, smoke=args.smoke, partial=names is not None)
    if args.add_demo or not args.tasks:  # add demo checks, or only re-render the report
        results = write_results(
            args.out, None, None, smoke=args.smoke, partial=True, demos=args.add_demo
        )
    if results is not None:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
