"""Run directories: the files of a run, their bookkeeping, and loading a trained run.

A run directory (`meshsim train --workdir DIR`) holds `config.json`,
`checkpoints/<step>/` (orbax), `normalizers.json`, `metrics.jsonl` (one strict
JSON object per logged step: non-finite numbers are `null`), `tensorboard/`,
`dataset_meta.json` and `statistics.npz` for tasks built from their data, and after
evaluation `rollouts.h5`, `metrics.json` and plots. This module writes and checks
the bookkeeping files and loads a trained run (`load_run`, once per command);
`meshsim.runs.train` runs the training.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from typing import NamedTuple

from meshsim import atomic
from meshsim.config import ExperimentConfig, apply_overrides, config_from_dict, config_to_dict
from meshsim.runs.build import build_simulator
from meshsim.runs.checkpoint import Checkpointer
from meshsim.simulator import Simulator
from meshsim.training.step import TrainState, abstract_train_state, count_nonfinite, make_optimizer

logger = logging.getLogger(__name__)

DATASET_META = "dataset_meta.json"  # the data a task was built from (weather: channels)
STATISTICS = "statistics.npz"  # dataset statistics of tasks with fixed normalizers

# What `run_training` may create in a workdir: removed again when a fresh run fails
# before its first checkpoint (only the entries that did not exist before it).
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "normalizers.json",
    "tensorboard",
    "checkpoints",
    DATASET_META,
    STATISTICS,
)


def _config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts, with both values."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def prepare_workdir(config: ExperimentConfig, workdir: str, *, resuming: bool) -> None:
    """Writes config.json; a resumed run's config must match the stored one (train.steps,
    the `parallel` placement and `data.cache_bytes` aside: a run may resume on other
    devices, or with another cap on cached frames, which leaves the batches as they
    are). Without a
    checkpoint there is nothing to resume, so any config.json there (left by a run that
    failed early) is simply replaced."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    new = config_to_dict(config)
    if resuming and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        try:  # read as today's layout: settings added since then take their defaults
            old = config_to_dict(config_from_dict(ExperimentConfig, old))
        except (ValueError, TypeError):
            pass  # compared as stored
        a = {**old, "train": {**old.get("train", {}), "steps": None}, "parallel": None}
        b = {**new, "train": {**new["train"], "steps": None}, "parallel": None}
        for d in (a, b):  # older runs stored data.path as given, relative to their cwd
            if isinstance(d.get("data"), dict) and d["data"].get("path"):
                d["data"] = {**d["data"], "path": os.path.abspath(d["data"]["path"])}
            if isinstance(d.get("data"), dict):
                d["data"] = {**d["data"], "cache_bytes": None}
        diff = _config_diff(a, b)
        if diff:
            raise ValueError(
                f"workdir {workdir!r} holds a run with another config.json "
                f"({'; '.join(diff[:3])}{'; ...' if len(diff) > 3 else ''}); "
                "use a new --workdir or the same config"
            )
    atomic.write_json(path, new)


def remove_created(workdir: str, existed: dict[str, bool], workdir_existed: bool) -> None:
    """Removes the run files that did not exist before (a failed fresh run), and the
    workdir itself if this run created it and it is empty again."""
    for name in RUN_FILES:
        path = os.path.join(workdir, name)
        if existed[name] or not os.path.lexists(path):
            continue
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
    if not workdir_existed and os.path.isdir(workdir) and not os.listdir(workdir):
        os.rmdir(workdir)


def truncate_metrics(path: str, step: int) -> None:
    """Drops metrics.jsonl lines logged after `step` (a run resumed from an older
    checkpoint), and any line a killed process left half-written."""
    if not os.path.exists(path):
        return
    kept = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                logger.warning("%s: dropping an unreadable line: %r", path, line[:80])
                continue
            if isinstance(record, dict) and record.get("step", 0) <= step:
                kept.append(json.dumps(record) + "\n")
    atomic.write_text(path, "".join(kept))


class MetricsLog:
    """metrics.jsonl (strict JSON, flushed per line) plus TensorBoard when installed."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._file = open(self.path, "a")  # noqa: SIM115 - closed in close()
        try:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
        except ImportError:
            self._tb = None

    def write(self, record: dict) -> None:
        self._file.write(atomic.dumps_json(record) + "\n")  # NaN/inf as null
        self._file.flush()
        if self._tb is not None:
            for k, v in atomic.json_safe(record).items():
                if k != "step" and isinstance(v, int | float):
                    self._tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def load_config_of(workdir: str, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The config.json of a run directory, with `data.*` overrides (`--set data.path=...`
    where the dataset has moved since training).

    Raises:
      FileNotFoundError: no such directory, or no run in it.
      NotADirectoryError: `workdir` is a file.
      ValueError: an override outside `data`, or a bad one.
    """
    check_workdir(workdir)
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"workdir {workdir!r} does not exist")
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"workdir {workdir!r} holds no run (no config.json): train into it first"
        )
    with open(path) as f:
        config = config_from_dict(ExperimentConfig, json.load(f))
    if overrides:
        bad = [o for o in overrides if not o.strip().startswith("data.")]
        if bad:
            raise ValueError(
                f"--set {bad[0]}: only data.* settings (e.g. data.path, where the dataset "
                "moved) can be changed after training"
            )
        config = apply_overrides(config, overrides)
    return config


def check_workdir(workdir: str) -> None:
    """NotADirectoryError when `workdir` exists and is not a directory (e.g. a file)."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise NotADirectoryError(f"workdir {workdir!r} is not a directory")


class Run(NamedTuple):
    """A trained run, loaded once by a command (`open_run`)."""

    config: ExperimentConfig
    sim: Simulator  # task + model, built from the config and the stored dataset meta
    state: TrainState  # the newest readable checkpoint
    workdir: str


def load_meta(workdir: str) -> dict | None:
    """The dataset meta stored with a run (`dataset_meta.json`), or None."""
    path = os.path.join(workdir, DATASET_META)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_run(workdir: str) -> tuple[ExperimentConfig, Simulator, TrainState]:
    """(config, simulator, state) of the newest readable checkpoint in a run directory
    (`open_run` without the directory)."""
    return open_run(workdir)[:3]


def open_run(workdir: str, overrides: Sequence[str] = ()) -> Run:
    """The newest readable checkpoint of a run directory, with its config (and its
    `data.*` `overrides`, see `load_config_of`) and simulator.

    The restore template comes from `jax.eval_shape`, so no training data is opened.
    A damaged newest checkpoint is reported (WARNING) and an older one used.

    Raises:
      FileNotFoundError: no such run, or no checkpoint in it yet.
    """
    config = load_config_of(workdir, overrides)
    sim = build_simulator(config, load_meta(workdir))
    like = abstract_train_state(
        sim,
        make_optimizer(config.train.optimizer),
        max_accumulations=config.train.normalizer_max_accumulations,
    )
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        state = checkpointer.restore(like)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"workdir {workdir!r} has no checkpoint yet: train it first (meshsim train)"
        ) from None
    finally:
        checkpointer.close()
    return Run(config, sim, state, workdir)


def check_finite_model(run: Run) -> None:
    """Refuses a model whose parameters or normalizer statistics are NaN/inf."""
    state = run.state
    for what, tree in (("parameters", state.params), ("normalizer statistics", state.normalizers)):
        bad, total = count_nonfinite(tree)
        if bad:
            raise ValueError(
                f"workdir {run.workdir!r}: checkpoint {int(state.step)} has non-finite {what} "
                f"({bad} of {total} values NaN or inf): the run diverged; retrain it "
                "(train.on_nonfinite=stop keeps such checkpoints from being written)"
            )
