"""`meshsim demo`: generate the built-in data, train, evaluate and report, for any task.

One driver for every preset: it generates the config's built-in dataset
(`data.generate_*`) into `WORKDIR/data` unless it is there already (an existing
HDF5 split is checked against the config: the same generator settings,
trajectory count and length), trains into `WORKDIR/run` (resuming an interrupted
run), scores the run the way its task asks (`Task.scoring`), and writes what that
scoring reports (`meshsim.runs.reports`): `metrics.json`, `report.md` and its
figures. Evaluation, figures, `metrics.json` and the report are always redone
from the run at hand. The demo returns 0 if the model passed its scoring's gate
(beating persistence), else 1.

`--quick` applies the preset's `QUICK_OVERRIDES` (a list of `--set` overrides in
the preset file): a minutes-long smoke version, checked at the horizons it has.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time

from meshsim import atomic
from meshsim.config import ExperimentConfig, apply_overrides, load_config
from meshsim.runs.evaluate import evaluate_run
from meshsim.runs.reports import REPORTS
from meshsim.runs.train import run_training
from meshsim.runs.workdir import open_run

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = os.path.join("experiments", "cylinder_flow_lite.py")


def quick_overrides(config_path: str) -> list[str]:
    """The preset's `QUICK_OVERRIDES` (its smoke-test size).

    Raises:
      ValueError: the preset defines none.
    """
    spec = importlib.util.spec_from_file_location("meshsim_demo_preset", config_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    overrides = getattr(module, "QUICK_OVERRIDES", None)
    if overrides is None:
        raise ValueError(f"--quick: {config_path!r} defines no QUICK_OVERRIDES list")
    return list(overrides)


def _check_existing(config: ExperimentConfig, split: str, n: int) -> None:
    """Raises ValueError if an existing generated HDF5 split does not match the config."""
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


def generate(config: ExperimentConfig) -> dict[str, float]:
    """Generates the config's built-in splits that are not there yet; {split: seconds}."""
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
        if os.path.exists(os.path.join(d.path, f"{split}.zarr")):
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
            diurnal=d.generate_diurnal,
            progress=True,
            **(
                {"region": d.generate_region, "region_resolution": d.generate_region_resolution}
                if d.generate_region
                else {}
            ),
        )
        seconds[split] = time.perf_counter() - t0
    return seconds


def run_demo(
    workdir: str = "runs/demo", *, config_path: str = DEFAULT_CONFIG, quick: bool = False
) -> int:
    """Runs the whole demo into `workdir` (see the module doc); returns 0 if the model
    passed its scoring's gate, 1 otherwise. The report is `workdir/report.md`."""
    if not os.path.exists(config_path):
        raise FileNotFoundError(
            f"config: {config_path!r} not found; run the demo from the repository root "
            "(make demo) or pass a config path"
        )
    overrides = [f"data.path={os.path.join(workdir, 'data')}"]
    if quick:
        overrides += quick_overrides(config_path)
    config = apply_overrides(load_config(config_path), overrides)
    t0 = time.perf_counter()
    gen_seconds = generate(config)
    t1 = time.perf_counter()
    run_dir = os.path.join(workdir, "run")
    run_training(config, run_dir)
    t2 = time.perf_counter()
    run = open_run(run_dir)
    metrics = evaluate_run(run, split=config.data.valid_split)
    t3 = time.perf_counter()
    timing = {
        "generate_s": round(t1 - t0, 1),
        "generate_s_per_split": {k: round(v, 1) for k, v in gen_seconds.items()},
        "train_s": round(t2 - t1, 1),
        "evaluate_s": round(t3 - t2, 1),
    }
    title = f"{config.name} (`{os.path.relpath(config_path)}`{', quick' if quick else ''})"
    report, passed, summary = REPORTS[run.sim.task.scoring](
        workdir, run, metrics, title=title, quick=quick, timing=timing
    )
    summary = {**summary, "config": os.path.relpath(config_path)}
    atomic.write_json(os.path.join(workdir, "metrics.json"), summary)
    atomic.write_text(os.path.join(workdir, "report.md"), report)
    logger.info("demo: %s", "passed" if passed else "did NOT pass")
    return 0 if passed else 1
