"""Fault injection: each writing command killed (SIGKILL) at fixed points and retried,
two `train`s on one run directory, and a full disk under every writer.

* **kill -9.** `KILL_AT` runs a command in a subprocess with one library function
  wrapped so that its n-th call kills the process (a deterministic point, no timer).
  The retry (in-process) must succeed and its outputs must equal those of a command
  that was never interrupted; nothing temporary may be left.
* **Two trains, one workdir.** Both start together: one trains, the other is refused
  by the run's lock (`meshsim.runs.lock`) with one line naming the holder.
* **A full disk.** Where a private mount namespace can be made (`unshare -rm`, root or
  user namespaces), each command writes into a 4 MiB tmpfs filled to its last 16 KiB:
  exit 1, one line with the path and "no space left on device", no traceback, no
  crash, nothing temporary left. Everywhere, OSError(ENOSPC) is also injected at each
  writer in-process. (`forecast`'s cases are in tests/test_weather_cli.py, beside its
  weather run.)
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from meshsim.cli import main
from meshsim.data import infer_meta, write_tfrecord_split
from tests.conftest import synthetic_cfd_trajectory
from tests.test_cli_failures import check_error, leftovers, run, write_tiny_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `python -c KILL_AT MODULE:ATTR N ARGV...`: meshsim's main with MODULE.ATTR killing the
# process (SIGKILL: no clean-up runs) at the start of its N-th call.
KILL_AT = """
import importlib, os, signal, sys
target, nth = sys.argv[1], int(sys.argv[2])
module, _, attr = target.partition(":")
owner = importlib.import_module(module)
*path, name = attr.split(".")
for part in path:
    owner = getattr(owner, part)
original, calls = getattr(owner, name), [0]
def killing(*args, **kwargs):
    calls[0] += 1
    if calls[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)
setattr(owner, name, killing)
from meshsim.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _env() -> dict:
    """A subprocess's environment: this checkout, on CPU, with the module's compilation
    cache (`compilation_cache`, in os.environ)."""
    return dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")


def killed(target: str, nth: int, argv: list[str]) -> None:
    """Runs `meshsim argv` in a subprocess that SIGKILLs itself at `target`'s nth call."""
    out = subprocess.run(
        [sys.executable, "-c", KILL_AT, target, str(nth), *argv],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert out.returncode == -signal.SIGKILL, (target, out.returncode, out.stderr[-3000:])


def h5_arrays(path: str) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file by name."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return out


def same_h5(a: str, b: str) -> bool:
    x, y = h5_arrays(a), h5_arrays(b)
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def metrics_lines(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in records]


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """One JAX compilation cache for every command of this module, in-process and in
    the killed subprocesses alike (a fresh directory each session, never the user's
    ~/.cache): the tiny run's programs compile once instead of once per command. A
    cached executable is the one XLA compiles for the same program, so the
    bit-for-bit comparisons are unchanged; the kill points sit in meshsim's own
    writers, never inside JAX's cache writes."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MESHSIM_COMPILATION_CACHE", str(tmp_path_factory.mktemp("jax_cache")))
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[str, str]:
    root = str(tmp_path_factory.mktemp("data"))
    return root, write_tiny_dataset(root)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> str:
    """A tiny run trained, evaluated and rolled out without interruption."""
    workdir = str(tmp_path_factory.mktemp("ref") / "run")
    assert main(["train", "--config", data[1], "--workdir", workdir]) == 0
    assert main(["evaluate", "--workdir", workdir]) == 0
    os.rename(os.path.join(workdir, "rollouts.h5"), os.path.join(workdir, "evaluate.h5"))
    assert main(["rollout", "--workdir", workdir, "--export"]) == 0
    return workdir


@pytest.fixture(scope="module")
def tfrecords(tmp_path_factory) -> str:
    src = str(tmp_path_factory.mktemp("tf"))
    for split, seeds in (("train", (0, 1)), ("valid", (2,))):
        trajs = [synthetic_cfd_trajectory(seed=s, steps=5) for s in seeds]
        write_tfrecord_split(src, split, trajs, infer_meta(trajs[0], dt=0.01))
    return src


# --------------------------------------------------------------------------- kill -9

GENERATE = ["generate", "cylinder_flow", "--trajectories", "2", "--steps", "4"]
GENERATE += ["--mesh-resolution", "0.3"]


@pytest.mark.parametrize(
    "target, nth",
    [("meshsim.data.hdf5:HDF5Writer.write", 2), ("meshsim.data.hdf5:HDF5Writer.commit", 1)],
)
def test_generate_killed_then_retried(tmp_path, target, nth):
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    assert run([*GENERATE, "--out", ref]) == 0
    killed(target, nth, [*GENERATE, "--out", out])
    assert not os.path.exists(os.path.join(out, "train.h5"))
    assert run([*GENERATE, "--out", out]) == 0
    assert same_h5(os.path.join(ref, "train.h5"), os.path.join(out, "train.h5"))
    assert not leftovers(str(tmp_path))


@pytest.mark.parametrize(
    "target, nth",
    [("meshsim.data.hdf5:HDF5Writer.write", 2), ("meshsim.data.hdf5:HDF5Writer.commit", 2)],
)
def test_convert_killed_then_retried(tmp_path, tfrecords, target, nth):
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    assert run(["convert", tfrecords, ref]) == 0
    killed(target, nth, ["convert", tfrecords, out])
    assert not os.path.exists(out)
    assert run(["convert", tfrecords, out]) == 0
    for split in ("train", "valid"):
        assert same_h5(os.path.join(ref, f"{split}.h5"), os.path.join(out, f"{split}.h5"))
    assert not leftovers(str(tmp_path))


@pytest.mark.parametrize(
    "target, nth",
    [
        ("meshsim.runs.workdir:MetricsLog.write", 1),  # before the first checkpoint
        ("meshsim.runs.checkpoint:Checkpointer.save", 2),  # after checkpoint 2
        ("meshsim.runs.checkpoint:write_manifest", 2),  # checkpoint 4 without its manifest
    ],
)
def test_train_killed_then_retried(tmp_path, data, reference, target, nth):
    from meshsim.runs import open_run

    workdir = str(tmp_path / "run")
    argv = ["train", "--config", data[1], "--workdir", workdir]
    killed(target, nth, argv)
    assert run(argv) == 0
    assert metrics_lines(workdir) == metrics_lines(reference)
    a, b = open_run(reference).state, open_run(workdir).state
    for x, y in zip(
        __import__("jax").tree_util.tree_leaves(a), __import__("jax").tree_util.tree_leaves(b)
    ):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert not leftovers(workdir) and not os.path.exists(os.path.join(workdir, ".meshsim.lock"))


@pytest.mark.parametrize(
    "command, target, nth, output",
    [
        ("evaluate", "meshsim.evaluation.rollouts_file:RolloutsWriter.add", 2, "rollouts.h5"),
        ("evaluate", "meshsim.atomic:write_json", 1, "metrics.json"),
        ("rollout", "meshsim.plotting.paraview:export_xdmf", 2, "paraview"),
    ],
)
def test_scoring_killed_then_retried(tmp_path, reference, command, target, nth, output):
    workdir = str(tmp_path / "run")
    shutil.copytree(reference, workdir)
    for name in ("metrics.json", "rollouts.h5", "evaluate.h5", "paraview"):
        path = os.path.join(workdir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    argv = [command, "--workdir", workdir, *(["--export"] if command == "rollout" else [])]
    killed(target, nth, argv)
    assert not os.path.exists(os.path.join(workdir, output))
    assert run(argv) == 0
    expected = "evaluate.h5" if command == "evaluate" else "rollouts.h5"
    assert same_h5(os.path.join(reference, expected), os.path.join(workdir, "rollouts.h5"))
    with (
        open(os.path.join(reference, "metrics.json")) as f,
        open(os.path.join(workdir, "metrics.json")) as g,
    ):
        assert json.load(f) == json.load(g)
    if command == "rollout":
        assert sorted(os.listdir(os.path.join(workdir, "paraview"))) == sorted(
            os.listdir(os.path.join(reference, "paraview"))
        )
    assert not leftovers(workdir)


def test_two_trains_on_one_workdir(tmp_path, data):
    workdir = str(tmp_path / "run")
    argv = [sys.executable, "-m", "meshsim.cli", "train", "--config", data[1]]
    argv += ["--workdir", workdir]
    procs = [
        subprocess.Popen(argv, env=_env(), stderr=subprocess.PIPE, text=True, cwd=REPO)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    refused = next(err for code, err in results if code == 1)
    lines = [line for line in refused.splitlines() if "error" in line]
    assert len(lines) == 1 and "is in use by pid" in lines[0] and "Traceback" not in refused
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]


# ------------------------------------------------------------------------ full disk

SMALL_FS = """
set -e
mount -t tmpfs -o size=4m tmpfs "$1"
sh -c "$2"
dd if=/dev/zero of="$1/.fill" bs=4k 2>/dev/null || true
truncate -s -16K "$1/.fill"
shift 2
set +e
"$@"
echo "exit=$?"
rm "$1/.fill" 2>/dev/null
"""


def _small_fs_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _small_fs_available(), reason="no private mount namespace here")
@pytest.mark.parametrize("command", ["generate", "convert", "train", "rollout", "evaluate"])
def test_full_disk_is_one_clean_error(tmp_path, data, reference, tfrecords, command):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    setup = f"cp -r {reference} {mnt}/run && rm -f {mnt}/run/rollouts.h5 {mnt}/run/evaluate.h5"
    argv = {
        "generate": [*GENERATE, "--out", f"{mnt}/gen"],
        "convert": ["convert", tfrecords, f"{mnt}/conv"],
        "train": ["train", "--config", data[1], "--workdir", f"{mnt}/run"]
        + ["--set", "train.steps=8"],
        "rollout": ["rollout", "--workdir", f"{mnt}/run"],
        "evaluate": ["evaluate", "--workdir", f"{mnt}/run"],
    }[command]
    # Leftovers are listed inside the namespace, before the tmpfs goes away with it.
    listing = f'echo; find "{mnt}" -name ".*tmp*" -o -name "*orbax-checkpoint-tmp*"'
    script = SMALL_FS.replace('rm "$1/.fill" 2>/dev/null', listing)
    out = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(mnt), setup]
        + [sys.executable, "-m", "meshsim.cli", *argv],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert "exit=1" in out.stdout, (out.stdout[-2000:], out.stderr[-3000:])
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, out.stderr[-3000:]
    assert errors[0].startswith(f"meshsim {command}: error: ")
    assert "no space left on device" in errors[0] and str(mnt) in errors[0]
    assert "Traceback" not in out.stderr and "Segmentation" not in out.stderr
    assert out.stdout.split("exit=1")[1].strip() == "", out.stdout  # no temporaries left


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "/full/disk/file")


@pytest.mark.parametrize(
    "command, target",
    [
        ("generate", "meshsim.data.hdf5.HDF5Writer.write"),
        ("convert", "meshsim.data.hdf5.HDF5Writer.write"),
        ("train", "meshsim.runs.workdir.MetricsLog.write"),
        ("train", "meshsim.runs.checkpoint.write_manifest"),
        ("train", "meshsim.runs.workdir.atomic.write_json"),
        ("rollout", "meshsim.evaluation.rollouts_file.RolloutsWriter.add"),
        ("evaluate", "meshsim.runs.evaluate.atomic.write_json"),
    ],
)
def test_injected_enospc_at_each_writer(
    capsys, monkeypatch, tmp_path, data, reference, tfrecords, command, target
):
    monkeypatch.setattr(target, _enospc)
    workdir = str(tmp_path / "run")
    if command in ("rollout", "evaluate"):
        shutil.copytree(reference, workdir)
    argv = {
        "generate": [*GENERATE, "--out", str(tmp_path / "gen")],
        "convert": ["convert", tfrecords, str(tmp_path / "conv")],
        "train": ["train", "--config", data[1], "--workdir", workdir],
        "rollout": ["rollout", "--workdir", workdir],
        "evaluate": ["evaluate", "--workdir", workdir],
    }[command]
    before = sorted(os.listdir(workdir)) if os.path.isdir(workdir) else None
    check_error(capsys, argv, 1, "/full/disk/file: no space left on device")
    assert not leftovers(str(tmp_path))
    assert not os.path.exists(tmp_path / "gen") and not os.path.exists(tmp_path / "conv")
    if command == "train":  # a run that kept a checkpoint resumes; a fresh one left nothing
        assert not os.path.exists(workdir) or os.listdir(os.path.join(workdir, "checkpoints"))
        monkeypatch.undo()
        assert run(argv) == 0
    else:
        assert (sorted(os.listdir(workdir)) if os.path.isdir(workdir) else None) == before
