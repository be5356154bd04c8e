"""Diverging training: a non-finite loss or gradient stops the run (or skips the update),
no checkpoint ever holds NaN, metrics stay valid JSON, evaluation refuses a NaN model.

The divergence is real: the tiny model trained with learning rate 1e3 has a finite
loss of ~1e20 at step 4 and an infinite gradient norm at step 5.
"""

from __future__ import annotations

import json
import math
import os
import re

import jax
import numpy as np
import pytest

import meshsim
from meshsim import atomic
from meshsim.config import OptimizerConfig
from meshsim.runs import load_run
from meshsim.tasks import cfd_task
from meshsim.training.batches import dataset_budget, iter_batches
from meshsim.training.step import (
    add_to_totals,
    count_nonfinite,
    empty_totals,
    init_train_state,
    make_optimizer,
    make_train_step,
)
from tests.conftest import synthetic_cfd_trajectory
from tests.test_cli_failures import check_error, run, write_tiny_dataset

DIVERGE = [
    "--set",
    "train.optimizer.learning_rate=1000.0",
    "--set",
    "train.steps=10",
    "--set",
    "train.log_every=1",
    "--set",
    "train.checkpoint_every=2",
]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    """The tiny config on 3 training trajectories of 10 frames (test_train's data), on
    which learning rate 1e3 diverges within a few steps."""
    return write_tiny_dataset(str(tmp_path_factory.mktemp("data")), num_train=3, frames=10)


@pytest.fixture(autouse=True)
def no_compilation_cache(monkeypatch):
    monkeypatch.setenv("MESHSIM_COMPILATION_CACHE", "")


def strict_json_lines(path: str) -> list[dict]:
    """Each line parsed by a reader that rejects NaN/Infinity tokens, as JSON does."""

    def reject(token):
        raise ValueError(f"invalid JSON token {token}")

    with open(path) as f:
        return [json.loads(line, parse_constant=reject) for line in f if line.strip()]


def all_checkpoints_finite(workdir: str) -> list[int]:
    """The checkpoint steps of a run, each checked for NaN/inf in its whole state."""
    from meshsim.runs import build_simulator
    from meshsim.runs.checkpoint import Checkpointer
    from meshsim.runs.workdir import load_config_of
    from meshsim.training.step import abstract_train_state

    config = load_config_of(workdir)
    like = abstract_train_state(
        build_simulator(config),
        make_optimizer(config.train.optimizer),
        max_accumulations=config.train.normalizer_max_accumulations,
    )
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    steps = checkpointer.all_steps()
    for step in steps:
        assert count_nonfinite(checkpointer.restore(like, step))[0] == 0, step
    checkpointer.close()
    return steps


def test_divergence_stops_before_the_next_checkpoint(capsys, tmp_path, config):
    workdir = str(tmp_path / "run")
    argv = ["train", "--config", config, "--workdir", workdir, *DIVERGE]
    line = check_error(capsys, argv, 1, "training stopped", "train.on_nonfinite=skip")
    found = re.search(r"step (\d+): (loss|gradient norm) (nan|inf).* checkpoint (\d+) stays", line)
    assert found, line
    bad, latest = int(found.group(1)), int(found.group(4))
    assert latest == 2 * ((bad - 1) // 2) >= 4, "the newest checkpoint before the bad step"
    assert all_checkpoints_finite(workdir)[-1] == latest
    records = strict_json_lines(os.path.join(workdir, "metrics.jsonl"))
    assert [r["step"] for r in records] == list(range(3, bad + 1))
    assert records[-1]["skipped"] == 1 and records[-1]["loss"] is None  # null, not NaN
    # Evaluating the run uses the last good checkpoint.
    assert run(["evaluate", "--workdir", workdir, "--num", "1", "--steps", "3"]) == 0
    capsys.readouterr()


def test_skip_policy_keeps_the_state_and_counts_skipped_updates(capsys, tmp_path, config):
    workdir = str(tmp_path / "run")
    argv = ["train", "--config", config, "--workdir", workdir, *DIVERGE]
    assert run([*argv, "--set", "train.on_nonfinite=skip"]) == 0
    capsys.readouterr()
    assert all_checkpoints_finite(workdir) == [6, 8, 10]
    records = strict_json_lines(os.path.join(workdir, "metrics.jsonl"))
    skipped = [r["skipped"] for r in records]
    assert len(records) == 8 and 0 < sum(skipped) < 8, skipped
    assert all((r["loss"] is None) == (r["skipped"] == 1) for r in records)
    _, _, state = load_run(workdir)
    assert int(state.step) == 10


def test_evaluate_refuses_a_model_with_nonfinite_parameters(capsys, tmp_path, config):
    from meshsim.runs.checkpoint import Checkpointer

    workdir = str(tmp_path / "run")
    assert run(["train", "--config", config, "--workdir", workdir, "--steps", "2"]) == 0
    _, _, state = load_run(workdir)
    poisoned = state.replace(
        step=state.step + 1, params=jax.tree_util.tree_map(lambda x: x * np.nan, state.params)
    )
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    checkpointer.save(3, poisoned)  # as a run before the guard could have written
    checkpointer.close()
    capsys.readouterr()
    check_error(
        capsys, ["evaluate", "--workdir", workdir], 1, "checkpoint 3", "non-finite parameters"
    )
    assert not os.path.exists(os.path.join(workdir, "metrics.json"))


def test_a_nonfinite_step_leaves_the_state_unchanged():
    """Inside the compiled step (`make_train_step(jit=False)` is the same function)."""
    task = cfd_task()
    trajs = [synthetic_cfd_trajectory(seed=i, steps=5) for i in range(2)]
    batch = next(iter_batches(trajs, task, batch_size=2, budget=dataset_budget(trajs, task)))
    sim = meshsim.Simulator(
        meshsim.MeshGraphNet(output_size=2, latent_size=8, num_message_passing_steps=1), task
    )
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-3))
    step = make_train_step(sim, tx)
    state = init_train_state(sim, tx, jax.random.key(0))
    state, metrics = step(state, batch, jax.random.key(1))  # a good step first
    assert int(metrics["skipped"]) == 0
    before = jax.tree_util.tree_map(np.asarray, state)
    velocity = batch.fields["velocity"].copy()
    velocity[0, 3, 0] = np.nan  # one bad value in a simulated node's input
    bad = batch._replace(fields={**batch.fields, "velocity": velocity})
    after, metrics = step(state, bad, jax.random.key(2))
    assert int(metrics["skipped"]) == 1 and not math.isfinite(float(metrics["loss"]))
    assert int(after.step) == int(before.step) + 1
    for a, b in zip(
        jax.tree_util.tree_leaves((before.params, before.opt_state, before.normalizers)),
        jax.tree_util.tree_leaves((after.params, after.opt_state, after.normalizers)),
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # bitwise unchanged


def test_totals_skip_nonfinite_steps_and_remember_the_first():
    totals = empty_totals()
    steps = [(1.0, 2.0, 0), (math.nan, math.inf, 1), (3.0, 4.0, 0), (math.inf, 1.0, 1)]
    for i, (loss, grad_norm, skipped) in enumerate(steps):
        metrics = {"loss": np.float32(loss), "grad_norm": np.float32(grad_norm)}
        totals = add_to_totals(totals, {**metrics, "skipped": np.int32(skipped)}, 10 + i)
    t = jax.device_get(totals)
    assert (float(t["loss"]), float(t["grad_norm"]), int(t["applied"])) == (4.0, 6.0, 2)
    assert (int(t["skipped"]), int(t["first_skipped_step"])) == (2, 11)
    assert math.isnan(t["first_skipped_loss"]) and math.isinf(t["first_skipped_grad_norm"])
    assert count_nonfinite({"a": np.array([1.0, np.nan]), "b": np.arange(3)}) == (1, 2)


def test_json_is_written_strictly(tmp_path):
    data = {"rmse": {"1": float("nan"), "all": float("inf")}, "ok": [1.5, -math.inf], "n": 3}
    path = atomic.write_json(tmp_path / "m.json", data)
    with open(path) as f:
        text = f.read()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"rmse": {"1": None, "all": None}, "ok": [1.5, None], "n": 3}
    assert atomic.dumps_json({"x": (1, float("nan"))}) == '{"x": [1, null]}'
