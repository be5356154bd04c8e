"""Damaged checkpoints are reported and skipped; a killed `meshsim train` resumes exactly.

A checkpoint file cut short or emptied (a full disk, a copy interrupted) makes the
newest checkpoint unreadable: restoring logs a WARNING naming it and uses the
newest good one; training sets the damaged one aside and carries on, and the
result is bit-identical to a run that was never damaged (resume is exact).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meshsim.runs import load_run
from meshsim.runs.checkpoint import MANIFEST, Checkpointer, CheckpointError
from tests.test_cli_failures import REPO, check_error, run, write_tiny_dataset


def tree(step: int) -> dict:
    return {
        "w": jnp.arange(300.0) + step,
        "b": {"c": jnp.ones((3, 4)) * step},
        "n": jnp.int32(step),
    }


def largest_file(step_dir: str) -> str:
    files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs if f != MANIFEST]
    return max(files, key=os.path.getsize)


def truncate(path: str, size: int | None = None) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2 if size is None else size)


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """One JAX compilation cache for this module's in-process trains (a fresh directory
    each session, never the user's ~/.cache): the tiny run's programs compile once. A
    cached executable is the one XLA compiles for the same program, so the bit-for-bit
    comparisons are unchanged. (The subprocess killed at an arbitrary moment runs
    without it: a kill must not land in a cache write.)"""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MESHSIM_COMPILATION_CACHE", str(tmp_path_factory.mktemp("jax_cache")))
        yield


@pytest.fixture
def saved(tmp_path) -> Checkpointer:
    """Checkpoints 2, 4 and 6 of `tree`."""
    checkpointer = Checkpointer(tmp_path / "ckpt")
    for step in (2, 4, 6):
        checkpointer.save(step, tree(step))
    yield checkpointer
    checkpointer.close()


DAMAGE = {
    "truncated data file": lambda d: truncate(largest_file(d)),
    "empty _METADATA": lambda d: truncate(os.path.join(d, "default", "_METADATA"), 0),
    "empty _CHECKPOINT_METADATA": lambda d: truncate(os.path.join(d, "_CHECKPOINT_METADATA"), 0),
    "missing file": lambda d: os.remove(largest_file(d)),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_latest_checkpoint_falls_back_to_the_previous(saved, caplog, damage):
    DAMAGE[damage](saved.step_dir(6))
    with caplog.at_level(logging.WARNING, logger="meshsim.runs.checkpoint"):
        restored = saved.restore(tree(0))
    assert int(restored["n"]) == 4
    np.testing.assert_array_equal(restored["w"], tree(4)["w"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(saved.step_dir(6) in w for w in warnings), warnings
    assert saved.latest_step() == 6, "a reader does not move checkpoints"


def test_damage_is_found_without_a_manifest_too(saved, caplog):
    """Checkpoints of older versions have no manifest: orbax's own read error falls back."""
    os.remove(os.path.join(saved.step_dir(6), MANIFEST))
    truncate(os.path.join(saved.step_dir(6), "default", "_METADATA"), 0)
    with caplog.at_level(logging.WARNING, logger="meshsim.runs.checkpoint"):
        assert int(saved.restore(tree(0))["n"]) == 4
    assert f"{saved.step_dir(6)}: cannot be read" in caplog.text


def test_no_readable_checkpoint_is_a_clear_error(saved):
    for step in (2, 4, 6):
        truncate(largest_file(saved.step_dir(step)))
    with pytest.raises(CheckpointError, match=f"no readable checkpoint in {saved.directory}"):
        saved.restore(tree(0))
    with pytest.raises(CheckpointError, match="truncated"):
        saved.restore(tree(0), step=4)


def test_training_resumes_past_a_damaged_checkpoint(capsys, caplog, tmp_path):
    config = write_tiny_dataset(str(tmp_path / "data"))
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    argv = ["train", "--config", config, "--set", "train.steps=6", "--workdir"]
    assert run([*argv, full]) == 0
    assert run([*argv, part, "--steps", "4"]) == 0
    ckpt = os.path.join(part, "checkpoints")
    assert sorted(os.listdir(ckpt)) == ["2", "4"]
    truncate(largest_file(os.path.join(ckpt, "4")))
    with caplog.at_level(logging.WARNING):
        assert run([*argv, part]) == 0
    assert f"{os.path.join(ckpt, '4')}/" in caplog.text  # the damaged file, named
    assert "restored checkpoint 2 instead" in caplog.text
    assert sorted(os.listdir(ckpt)) == ["2", "4", "4.corrupt", "6"]
    assert_same_run(full, part)
    # With every checkpoint damaged, resuming is a one-line error naming the directory.
    for step in ("2", "4", "6"):
        truncate(largest_file(os.path.join(ckpt, step)))
    capsys.readouterr()
    check_error(capsys, [*argv, part], 1, f"no readable checkpoint in {ckpt}")


def assert_same_run(a: str, b: str) -> None:
    """Two run directories hold bit-identical final states (params, optimizer, stats)."""
    (_, _, sa), (_, _, sb) = load_run(a), load_run(b)
    assert int(sa.step) == int(sb.step)
    for x, y in zip(jax.tree_util.tree_leaves(sa), jax.tree_util.tree_leaves(sb), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_killed_training_resumes_bit_exactly(tmp_path):
    """A real `meshsim train` process killed with SIGKILL after its first checkpoint,
    resumed by `meshsim train` on the same workdir, ends where an uninterrupted run does."""
    config = write_tiny_dataset(str(tmp_path / "data"))
    sets = ["--set", "train.steps=200", "--set", "train.checkpoint_every=10"]
    sets += ["--set", "train.log_every=5"]
    killed, full = str(tmp_path / "killed"), str(tmp_path / "full")
    env = {**os.environ, "PYTHONPATH": REPO, "MESHSIM_COMPILATION_CACHE": ""}
    argv = [sys.executable, "-m", "meshsim.cli", "train", "--config", config, *sets]
    proc = subprocess.Popen(
        [*argv, "--workdir", killed],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = os.path.join(killed, "checkpoints")
    deadline = time.monotonic() + 300
    while not (os.path.isdir(ckpt) and any(n.isdigit() for n in os.listdir(ckpt))):
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert "200" not in os.listdir(ckpt), "killed before the end"
    assert main_train(config, sets, killed) == 0
    assert main_train(config, sets, full) == 0
    assert_same_run(full, killed)


def main_train(config: str, sets: list[str], workdir: str) -> int:
    return run(["train", "--config", config, *sets, "--workdir", workdir])
