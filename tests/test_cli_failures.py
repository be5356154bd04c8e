"""The `meshsim` command on bad input: one line on stderr, the right exit status, and
nothing half-written, so that the corrected command then succeeds.

Each case runs `meshsim.cli.main` in-process (capsys) and checks: the exit status
(2 for usage errors, 1 for failures), exactly one stderr line of the form
`meshsim <command>: error: ...` naming the problem, and no traceback; `--debug`
adds the traceback. Subprocesses are used only where a real process is needed
(a closed pipe).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from meshsim.cli import main
from meshsim.data import infer_meta, write_hdf5_split, write_tfrecord_split
from tests.conftest import synthetic_cfd_trajectory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_CONFIG = """
from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, OptimizerConfig, TrainConfig


def get_config():
    return ExperimentConfig(
        name="tiny",
        task="cfd",
        data=DataConfig(path={path!r}, batch_size=2, pool_size=2, prefetch=2),
        model=ModelConfig(latent_size=8, num_message_passing_steps=1, mlp_hidden_layers=1),
        train=TrainConfig(
            steps=4, accumulate_steps=2, log_every=2, eval_every=0, checkpoint_every=2,
            optimizer=OptimizerConfig(learning_rate=1e-3),
        ),
    )
"""


def write_tiny_dataset(root: str, *, num_train: int = 2, frames: int = 8) -> str:
    """Synthetic cfd data (train, and 2 valid trajectories) and `tiny.py`; returns its path."""
    train = [synthetic_cfd_trajectory(seed=i, steps=frames) for i in range(num_train)]
    valid = [synthetic_cfd_trajectory(seed=10 + i, steps=frames) for i in range(2)]
    meta = infer_meta(train[0], dt=0.01)
    write_hdf5_split(root, "train", train, meta)
    write_hdf5_split(root, "valid", valid, meta)
    config = os.path.join(root, "tiny.py")
    with open(config, "w") as f:
        f.write(TINY_CONFIG.format(path=root))
    return config


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[str, str]:
    """(dataset directory, tiny config path)."""
    root = str(tmp_path_factory.mktemp("data"))
    return root, write_tiny_dataset(root)


@pytest.fixture(scope="module")
def run_dir(data, tmp_path_factory) -> str:
    """A trained tiny run (4 steps)."""
    workdir = str(tmp_path_factory.mktemp("run") / "run")
    assert main(["train", "--config", data[1], "--workdir", workdir]) == 0
    return workdir


@pytest.fixture(autouse=True)
def no_compilation_cache(monkeypatch):
    monkeypatch.setenv("MESHSIM_COMPILATION_CACHE", "")


def run(argv: list[str]) -> int:
    """`main(argv)`'s exit status, usage errors (SystemExit from argparse) included."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


PROGRESS = re.compile(r"\d+/\d+ \[|%\|")  # a tqdm bar, drawn while the command worked


def check_error(capsys, argv: list[str], code: int, *words: str) -> str:
    """Runs `argv`; asserts the status and one error line naming `words` (besides any
    progress bar of the work done before the failure); returns it."""
    assert run(argv) == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    command = next((a for a in argv if not a.startswith("-")), "")
    assert lines[0].startswith(f"meshsim {command}: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def leftovers(directory: str) -> list[str]:
    """Temporary files or directories (`.<name>.<hex>.tmp...`) anywhere under `directory`."""
    found = []
    for root, dirs, files in os.walk(directory):
        found += [os.path.join(root, n) for n in dirs + files if ".tmp" in n or ".old" in n]
    return found


# ------------------------------------------------------------------- usage errors: exit 2

USAGE = [
    (["train", "--config", "c.py", "--workdir", "w", "--steps", "0"], ["--steps", "'0'"]),
    (["train", "--config", "c.py", "--workdir", "w", "--steps", "ten"], ["--steps", "'ten'"]),
    (["train", "--workdir", "w"], ["--config"]),
    (["rollout", "--workdir", "w", "--num", "0"], ["--num", "≥ 1"]),
    (["rollout", "--workdir", "w", "--steps", "-3"], ["--steps", "'-3'"]),
    (["rollout", "--workdir", "w", "--split", "../valid"], ["--split", "'../valid'"]),
    (["evaluate", "--workdir", "w", "--num", "-1"], ["--num"]),
    (["evaluate", "--workdir", "w", "--steps", "0"], ["--steps"]),
    (["generate", "cylinder_flow", "--out", "o", "--trajectories", "0"], ["--trajectories"]),
    (["generate", "flag", "--out", "o", "--mesh-resolution", "-1"], ["--mesh-resolution"]),
    (["generate", "flag", "--out", "o", "--mesh-resolution", "nan"], ["--mesh-resolution"]),
    (["generate", "flag", "--out", "o", "--steps", "2"], ["--steps", "≥ 3"]),
    (["generate", "flag", "--out", "o", "--seed", "-1"], ["--seed"]),
    (["generate", "weather", "--out", "o"], ["invalid choice", "'weather'"]),
    (["inspect", "d", "--max-trajectories", "-1"], ["--max-trajectories", "'-1'"]),
    (["convert", "a", "b", "--compression", "zip"], ["--compression"]),
    (["plot"], ["--workdir"]),
]


@pytest.mark.parametrize("argv, words", USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_are_one_line_with_status_2(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    check_error(capsys, argv, 2, *words)
    assert os.listdir(tmp_path) == [], "a usage error writes nothing"


def test_unknown_command_is_a_usage_error(capsys):
    assert run(["nosuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("meshsim: error: argument COMMAND: invalid choice")


# ------------------------------------------------------------------- failures: exit 1


def test_missing_paths_are_one_line_failures(capsys, tmp_path, data):
    missing = str(tmp_path / "nope")
    check_error(capsys, ["inspect", missing], 1, missing, "does not exist")
    check_error(capsys, ["inspect", data[1]], 1, "tiny.py", "not a directory")
    check_error(capsys, ["rollout", "--workdir", missing], 1, "does not exist", missing)
    check_error(capsys, ["evaluate", "--workdir", missing], 1, "does not exist")
    check_error(capsys, ["plot", "--workdir", missing], 1, "does not exist")
    check_error(capsys, ["plot", "--workdir", str(tmp_path)], 1, "holds no run")
    check_error(capsys, ["train", "--config", missing + ".py", "--workdir", missing], 1, "nope.py")
    check_error(capsys, ["demo", "--config", "missing.py", "--workdir", missing], 1, "missing.py")
    check_error(capsys, ["convert", missing, missing + "_h5"], 1, "does not exist")
    check_error(capsys, ["convert", data[1], missing + "_h5"], 1, "tiny.py", "not a directory")
    assert os.listdir(tmp_path) == []


def test_bad_config_and_data_fail_before_anything_is_written(capsys, tmp_path, data):
    workdir = str(tmp_path / "run")
    base = ["train", "--config", data[1], "--workdir", workdir]
    check_error(capsys, [*base, "--set", "model.latent_size=-3"], 1, "model.latent_size")
    check_error(capsys, [*base, "--set", "model.latent=3"], 1, "latent")
    check_error(capsys, [*base, "--set", "data.path=/nonexistent"], 1, "/nonexistent")
    check_error(capsys, [*base, "--set", "data.train_split=nope"], 1, "nope")
    assert os.listdir(tmp_path) == [], "no workdir, no config.json"


def test_rollout_failures_on_a_trained_run(capsys, run_dir):
    before = sorted(os.listdir(run_dir))
    check_error(capsys, ["evaluate", "--workdir", run_dir, "--split", "nope"], 1, "nope")
    check_error(capsys, ["rollout", "--workdir", run_dir, "--split", "test"], 1, "test")
    assert sorted(os.listdir(run_dir)) == before and not leftovers(run_dir)


def test_debug_shows_the_traceback_in_either_position(capsys, tmp_path):
    missing = str(tmp_path / "nope")
    for argv in (
        ["--debug", "rollout", "--workdir", missing],
        ["rollout", "--workdir", missing, "--debug"],
    ):
        assert run(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "FileNotFoundError" in err
        assert err.strip().splitlines()[-1].startswith("meshsim rollout: error: ")


def test_unexpected_errors_name_the_type_and_point_to_debug(capsys, tmp_path, monkeypatch):
    import meshsim.data

    def boom(*args, **kwargs):
        raise RuntimeError("something broke\ninside")

    monkeypatch.setattr(meshsim.data, "inspect_dataset", boom)
    line = check_error(capsys, ["inspect", str(tmp_path)], 1, "RuntimeError", "--debug")
    assert "something broke; inside" in line


def test_closed_stdout_ends_quietly(tmp_path):
    root = str(tmp_path / "d")
    write_hdf5_split(
        root, "train", [synthetic_cfd_trajectory()], infer_meta(synthetic_cfd_trajectory())
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    for reader in ("head -1", "true"):  # `true` never reads: the write always fails
        out = subprocess.run(
            f"{sys.executable} -m meshsim.cli inspect {root} | {reader}",
            shell=True, capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0
        assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr
        if reader.startswith("head"):
            assert out.stdout.startswith(f"dataset {root}")


# ----------------------------------------------------- failed commands leave nothing behind


def test_failed_convert_leaves_nothing_and_the_retry_succeeds(capsys, tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    trajs = [synthetic_cfd_trajectory(seed=i, steps=5) for i in range(2)]
    meta = infer_meta(trajs[0], dt=0.01)
    write_tfrecord_split(src, "train", trajs, meta)
    write_tfrecord_split(src, "valid", trajs, meta)
    valid = os.path.join(src, "valid.tfrecord")
    good = open(valid, "rb").read()
    with open(valid, "wb") as f:  # a record cut short: the second split fails
        f.write(good[: len(good) * 3 // 4])
    assert run(["convert", src, dst]) == 1
    assert "valid.tfrecord" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["src"], "no DST, no meta.json, no train.h5"
    with open(valid, "wb") as f:
        f.write(good)
    assert run(["convert", src, dst]) == 0
    assert sorted(os.listdir(dst)) == ["meta.json", "train.h5", "valid.h5"]
    # Into an existing dataset directory: a failure leaves it exactly as it was.
    with open(valid, "wb") as f:
        f.write(good[:-7])
    before = {n: os.path.getmtime(os.path.join(dst, n)) for n in os.listdir(dst)}
    assert run(["convert", src, dst]) == 1
    capsys.readouterr()
    assert {n: os.path.getmtime(os.path.join(dst, n)) for n in os.listdir(dst)} == before
    assert not leftovers(str(tmp_path))


def test_failed_generate_leaves_nothing_and_the_retry_succeeds(capsys, tmp_path, monkeypatch):
    import meshsim.solvers.cloth as cloth

    out = str(tmp_path / "flag" / "data")
    argv = ["generate", "flag", "--out", out, "--trajectories", "2", "--steps", "4"]
    check_error(capsys, [*argv, "--mesh-resolution", "-1"], 2, "--mesh-resolution")
    assert os.listdir(tmp_path) == []
    real, calls = cloth.cloth_trajectory, []

    def fails_second(*args, **kwargs):  # the simulator dies in the second trajectory
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("cloth solver diverged")
        return real(*args, **kwargs)

    monkeypatch.setattr(cloth, "cloth_trajectory", fails_second)
    check_error(capsys, [*argv, "--mesh-resolution", "0.1"], 1, "cloth solver diverged")
    assert os.listdir(tmp_path) == [], "no output directory, no meta.json, no parents"
    monkeypatch.setattr(cloth, "cloth_trajectory", real)
    assert run([*argv, "--mesh-resolution", "0.1"]) == 0
    assert sorted(os.listdir(out)) == ["meta.json", "train.h5"]
    assert not leftovers(str(tmp_path))


def test_failed_train_leaves_nothing_and_the_retry_succeeds(capsys, tmp_path, data):
    workdir = str(tmp_path / "run")
    argv = ["train", "--config", data[1], "--workdir", workdir]
    check_error(capsys, [*argv, "--set", "model.latent_size=-3"], 1, "latent_size")
    assert not os.path.exists(workdir)
    assert run([*argv, "--steps", "2"]) == 0
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2"]
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"]["latent_size"] == 8


def test_failed_rollout_leaves_nothing_and_the_retry_succeeds(capsys, run_dir, data):
    # The inflow of valid trajectory 1 varies in time: it cannot be rolled out past its end,
    # which fails after trajectory 0 was streamed into the temporary rollouts.h5.
    valid = [synthetic_cfd_trajectory(seed=10, steps=8), synthetic_cfd_trajectory(seed=11, steps=8)]
    valid[1]["velocity"] = valid[1]["velocity"] * np.linspace(1, 2, 8)[:, None, None]
    valid[1]["velocity"] = valid[1]["velocity"].astype(np.float32)
    write_hdf5_split(data[0], "ramp", valid, infer_meta(valid[0], dt=0.01))
    before = sorted(os.listdir(run_dir))
    argv = ["rollout", "--workdir", run_dir, "--split", "ramp", "--steps", "20", "--export"]
    check_error(capsys, argv, 1, "constant in time")
    assert sorted(os.listdir(run_dir)) == before and not leftovers(run_dir)
    assert run([*argv[:-3], "--num", "1", "--steps", "20", "--export"]) == 0
    assert os.path.exists(os.path.join(run_dir, "paraview", "00000.xdmf"))
    assert run(["plot", "--workdir", run_dir]) == 0
    assert {"loss.png", "comparison.png", "rollout.gif"} <= set(os.listdir(run_dir))
    assert not leftovers(run_dir)


def test_demo_refuses_data_generated_with_other_settings(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    workdir = str(tmp_path / "demo")
    argv = ["generate", "cylinder_flow", "--out", os.path.join(workdir, "data"), "--steps", "4"]
    assert run([*argv, "--trajectories", "1", "--mesh-resolution", "0.3"]) == 0
    line = check_error(capsys, ["demo", "--workdir", workdir, "--quick"], 1, "other settings")
    assert "train.h5" in line


def test_staged_directory_publishes_all_or_nothing(tmp_path):
    from meshsim.atomic import staged_directory

    target = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError), staged_directory(target) as tmp:
        Path(tmp, "x.h5").write_text("half")
        raise RuntimeError("fails")
    assert os.listdir(tmp_path) == [], "created parents are removed again"
    with staged_directory(target) as tmp:
        Path(tmp, "x.h5").write_text("1")
        assert not target.exists()  # nothing under the final name until the end
    assert os.listdir(target) == ["x.h5"]
    # Adding to an existing directory: carried files are seen in the stage, others kept.
    (target / "meta.json").write_text("{}")
    with staged_directory(target, carry=("meta.json",)) as tmp:
        assert os.listdir(tmp) == ["meta.json"]
        Path(tmp, "y.h5").write_text("2")
    assert sorted(os.listdir(target)) == ["meta.json", "x.h5", "y.h5"]
    # replace=True swaps the whole directory: no stale file survives.
    with staged_directory(target, replace=True) as tmp:
        Path(tmp, "z.h5").write_text("3")
    assert os.listdir(target) == ["z.h5"]
    assert sorted(os.listdir(target.parent)) == ["out"], "no temporary left"
    with pytest.raises(NotADirectoryError), staged_directory(target / "z.h5"):
        pass


def test_diurnal_channel_of_another_domain_is_a_one_line_failure(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["generate", "flag", "--out", "o", "--trajectories", "1", "--steps", "3", "--diurnal"]
    check_error(capsys, argv, 1, "--diurnal", "only the shallow_water domain", "'flag'")
    assert os.listdir(tmp_path) == [], "nothing is simulated or written"
