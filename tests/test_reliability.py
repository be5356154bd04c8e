"""Reliability of the `meshsim` commands: the run-directory lock, weather data checked
before training, task/data mismatches and config files as one line, clean-up of what
killed commands left, and messages that name the user's flag.

Commands run in-process (`meshsim.cli.main`) and are checked with
`tests.test_cli_failures.check_error`: the exit status, one stderr line, no traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from meshsim.cli import main
from meshsim.runs.lock import LOCK_FILE, RunLockedError, run_lock
from tests.test_cli_failures import check_error, leftovers, run, write_tiny_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HOLD_LOCK = """
import sys, time
from meshsim.runs.lock import run_lock
with run_lock(sys.argv[1], "train"):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture(autouse=True)
def no_compilation_cache(monkeypatch):
    monkeypatch.setenv("MESHSIM_COMPILATION_CACHE", "")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[str, str]:
    root = str(tmp_path_factory.mktemp("data"))
    return root, write_tiny_dataset(root)


@pytest.fixture(scope="module")
def run_dir(data, tmp_path_factory) -> str:
    workdir = str(tmp_path_factory.mktemp("run") / "run")
    assert main(["train", "--config", data[1], "--workdir", workdir]) == 0
    return workdir


def _holder(workdir: str) -> subprocess.Popen:
    """A process that holds `workdir`'s lock until killed."""
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, workdir], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


# ----------------------------------------------------------------------------- the lock


def test_lock_refuses_every_run_command_then_a_killed_holder_is_taken_over(
    capsys, caplog, data, run_dir
):
    holder = _holder(run_dir)
    try:
        words = ("is in use by", f"pid {holder.pid}", "host", "train")
        check_error(capsys, ["train", "--config", data[1], "--workdir", run_dir], 1, *words)
        check_error(capsys, ["evaluate", "--workdir", run_dir], 1, *words)
        check_error(capsys, ["rollout", "--workdir", run_dir], 1, *words)
        check_error(
            capsys,
            ["forecast", "--workdir", run_dir, "--init-time", "2000", "--steps", "1"]
            + ["--out", os.path.join(run_dir, "f.zarr")],
            1,
            *words,
        )
        check_error(capsys, ["plot", "--workdir", run_dir], 1, *words)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # kill -9 left the file, but the kernel released the flock: the lock is stale.
    assert os.path.exists(os.path.join(run_dir, LOCK_FILE))
    with caplog.at_level("WARNING", logger="meshsim.runs.lock"):
        assert run(["evaluate", "--workdir", run_dir]) == 0
    assert f"lock left by pid {holder.pid}" in caplog.text
    assert not os.path.exists(os.path.join(run_dir, LOCK_FILE))  # released on exit


def test_lock_is_reentrant_in_one_process_and_exclusive_across(tmp_path):
    with run_lock(str(tmp_path), "demo"), run_lock(str(tmp_path), "train"):
        assert os.path.exists(tmp_path / LOCK_FILE)
    assert not os.path.exists(tmp_path / LOCK_FILE)
    holder = _holder(str(tmp_path))
    try:
        with (
            pytest.raises(RunLockedError, match=f"pid {holder.pid}"),
            run_lock(str(tmp_path), "evaluate"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_workdir_that_is_a_file(capsys, tmp_path, data):
    path = tmp_path / "file"
    path.write_text("x")
    check_error(capsys, ["train", "--config", data[1], "--workdir", str(path)], 1, "is not a dir")
    check_error(capsys, ["evaluate", "--workdir", str(path)], 1, "is not a directory")
    assert path.read_text() == "x"


# -------------------------------------------------------- config files, task vs data


@pytest.mark.parametrize(
    "text, words",
    [
        ("model:\n  latent_size: 8\n", ["cannot be imported as Python", "SyntaxError"]),
        ("raise RuntimeError('no GPU here')\n", ["cannot be imported", "no GPU here"]),
        ("def get_config():\n    return 1 / 0\n", ["get_config()", "ZeroDivisionError"]),
    ],
)
def test_config_files_that_fail_name_the_file_and_the_error(capsys, tmp_path, text, words):
    path = tmp_path / "bad.py"
    path.write_text(text)
    argv = ["train", "--config", str(path), "--workdir", str(tmp_path / "w")]
    check_error(capsys, argv, 1, str(path), *words)
    binary = tmp_path / "bin.py"
    binary.write_bytes(b"\x00\xff\xfe" * 10)
    argv = ["train", "--config", str(binary), "--workdir", str(tmp_path / "w")]
    check_error(capsys, argv, 1, str(binary), "cannot be imported")
    yaml = tmp_path / "c.yaml"
    yaml.write_text("a: 1\n")
    check_error(capsys, ["train", "--config", str(yaml), "--workdir", "w"], 1, "not a Python")
    assert not (tmp_path / "w").exists()


def test_weather_task_on_mesh_data_and_forecast_on_a_mesh_run(capsys, tmp_path, data, run_dir):
    argv = ["train", "--config", data[1], "--workdir", str(tmp_path / "w")]
    line = check_error(capsys, [*argv, "--set", "task.name=weather"], 1, "task 'weather'", data[0])
    assert "channels" in line and "KeyError" not in line
    out = str(tmp_path / "f.zarr")
    argv = ["forecast", "--workdir", run_dir, "--init-time", "2000-01-01", "--steps", "1"]
    check_error(capsys, [*argv, "--out", out], 1, "task 'cfd'", "not forecasts")


def test_mesh_task_on_weather_data(capsys, tmp_path, data):
    xr = pytest.importorskip("xarray")
    from tests.test_weather_data import synthetic_wb2

    synthetic_wb2().to_zarr(tmp_path / "train.zarr", zarr_format=2)
    del xr
    argv = ["train", "--config", data[1], "--workdir", str(tmp_path / "w")]
    line = check_error(capsys, [*argv, "--set", f"data.path={tmp_path}"], 1, "task 'cfd'")
    assert "'cells'" in line and str(tmp_path) in line and "KeyError" not in line


# ---------------------------------------------------------------- weather validation


@pytest.fixture
def weather_config(tmp_path) -> str:
    path = tmp_path / "wx.py"
    path.write_text(
        "from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, TaskConfig\n"
        "def get_config():\n"
        f"    return ExperimentConfig(name='wx', task=TaskConfig(name='weather', "
        f"options={{'mesh_splits': 0}}), data=DataConfig(path={str(tmp_path / 'wx')!r}), "
        "model=ModelConfig(name='graphcast', latent_size=8, num_message_passing_steps=1))\n"
    )
    return str(path)


def _store(tmp_path, name: str, ds) -> str:
    os.makedirs(tmp_path / "wx", exist_ok=True)
    ds.to_zarr(tmp_path / "wx" / f"{name}.zarr", zarr_format=2)
    return str(tmp_path / "wx" / f"{name}.zarr")


def test_weather_data_is_validated_before_training(capsys, tmp_path, weather_config):
    pytest.importorskip("xarray")
    from tests.test_weather_data import synthetic_wb2

    argv = ["train", "--config", weather_config, "--workdir", str(tmp_path / "w")]
    good = synthetic_wb2()
    cases = [
        (good.drop_vars("time"), ["time: expected a datetime64 coordinate"]),
        (good.assign_coords(time=np.arange(good.sizes["time"])), ["time: expected datetime64"]),
        (
            good.assign_coords(latitude=np.linspace(-34, 34, good.sizes["latitude"])),
            ["latitude: expected a global grid", "-34°…34°", "data.regional=True"],
        ),
    ]
    for ds, words in cases:
        path = _store(tmp_path, "train", ds)
        check_error(capsys, argv, 1, path, *words)
        assert not (tmp_path / "w").exists()
        import shutil

        shutil.rmtree(path)
    _store(tmp_path, "train", good)
    valid = _store(tmp_path, "valid", good.drop_vars("2m_temperature"))
    check_error(capsys, argv, 1, valid, "variables:", "missing ['2m_temperature']")
    assert not (tmp_path / "w").exists()


def test_regional_setting_accepts_a_band(tmp_path):
    pytest.importorskip("xarray")
    from meshsim.data.weather import WeatherDataset
    from tests.test_weather_data import synthetic_wb2

    ds = synthetic_wb2()
    path = _store(tmp_path, "train", ds.assign_coords(latitude=np.linspace(-34, 34, 5)))
    with pytest.raises(ValueError, match="latitude"):
        WeatherDataset(path)
    assert WeatherDataset(path, regional=True).latitudes[0] == -34


# ------------------------------------------------------------- messages and clean-up


def test_short_trajectories_name_bundle_steps(capsys, tmp_path, data):
    argv = ["train", "--config", data[1], "--workdir", str(tmp_path / "w")]
    check_error(
        capsys,
        [*argv, "--set", "model.bundle_steps=16"],
        1,
        "needs 17 frames",
        "model.bundle_steps=16",
        "longest trajectory has 8",
        "--set model.bundle_steps=7",
    )


def test_shallow_water_resolution_names_the_flag(capsys, tmp_path):
    argv = ["generate", "shallow_water", "--out", str(tmp_path / "sw")]
    line = check_error(capsys, [*argv, "--mesh-resolution", "0.4"], 1, "--mesh-resolution", "0.4")
    assert "resolution_deg" not in line


def test_distributed_without_a_coordinator(capsys, tmp_path, data, monkeypatch):
    for name in ("MESHSIM_COORDINATOR", "MESHSIM_NUM_PROCESSES", "MESHSIM_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    import jax

    def no_cluster(**kwargs):
        raise ValueError("coordinator_address should be defined.")

    monkeypatch.setattr(jax.distributed, "initialize", no_cluster)
    argv = ["train", "--config", data[1], "--workdir", str(tmp_path / "w"), "--distributed"]
    check_error(capsys, argv, 1, "--distributed", "--coordinator host:port")


def test_config_json_stores_an_absolute_data_path_and_set_overrides_it(
    capsys, tmp_path, data, monkeypatch
):
    import shutil

    monkeypatch.chdir(os.path.dirname(data[0]))
    rel = os.path.basename(data[0])
    workdir = str(tmp_path / "run")
    argv = ["train", "--config", data[1], "--workdir", workdir, "--steps", "2"]
    assert run([*argv, "--set", f"data.path={rel}"]) == 0
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["data"]["path"] == os.path.abspath(rel)
    monkeypatch.chdir(tmp_path)  # elsewhere: still found
    assert run(["evaluate", "--workdir", workdir, "--num", "1"]) == 0
    moved = str(tmp_path / "moved")
    shutil.copytree(data[0], moved)
    stored = json.load(open(os.path.join(workdir, "config.json")))
    stored["data"]["path"] = str(tmp_path / "gone")
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(stored, f)
    check_error(capsys, ["evaluate", "--workdir", workdir], 1, "--set data.path=")
    assert run(["evaluate", "--workdir", workdir, "--set", f"data.path={moved}"]) == 0
    check_error(capsys, ["evaluate", "--workdir", workdir, "--set", "model.latent_size=4"], 1)


def test_leftovers_of_killed_commands_are_removed_by_the_next(capsys, tmp_path, data):
    dst = tmp_path / "h5"
    orphan = tmp_path / ".h5.0badc0de.tmp"  # an older version's staging directory
    orphan.mkdir()
    (orphan / "train.h5").write_bytes(b"half")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    orphan2 = tmp_path / f".h5.{dead}-0badc0de.tmp"
    orphan2.mkdir()
    from meshsim.data import infer_meta, write_tfrecord_split
    from tests.conftest import synthetic_cfd_trajectory

    src = tmp_path / "tf"
    trajs = [synthetic_cfd_trajectory(seed=0, steps=4)]
    write_tfrecord_split(str(src), "train", trajs, infer_meta(trajs[0], dt=0.01))
    assert run(["convert", str(src), str(dst)]) == 0
    assert not orphan.exists() and not orphan2.exists() and not leftovers(str(tmp_path))

    workdir = tmp_path / "run"
    argv = ["train", "--config", data[1], "--workdir", str(workdir), "--steps", "2"]
    assert run(argv) == 0
    killed_save = workdir / "checkpoints" / "4.orbax-checkpoint-tmp-1234"
    killed_save.mkdir()
    (workdir / ".metrics.json.999999-0badc0de.tmp.json").write_text("{")
    assert run(argv[:-2]) == 0
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
    assert not leftovers(str(workdir))


def test_deleted_checkpoints_stop_with_one_line_and_the_rerun_says_so(
    capsys, caplog, tmp_path, data, monkeypatch
):
    import shutil

    from meshsim.runs import checkpoint

    workdir = tmp_path / "run"
    original = checkpoint.write_manifest

    def delete_then_list(step_dir):  # the directory goes while checkpoint 4 is written
        if os.path.basename(step_dir) == "4":
            shutil.rmtree(os.path.dirname(step_dir))
        return original(step_dir)

    monkeypatch.setattr(checkpoint, "write_manifest", delete_then_list)
    argv = ["train", "--config", data[1], "--workdir", str(workdir)]
    check_error(capsys, argv, 1, "cannot save checkpoint 4", "removed during the run")
    monkeypatch.setattr(checkpoint, "write_manifest", original)
    with caplog.at_level("WARNING"):
        assert run(argv) == 0
    assert "no checkpoint" in caplog.text and "starts again from step 0" in caplog.text
