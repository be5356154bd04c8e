"""Multi-process training through jax.distributed: two processes on localhost (CPU).

Each process has 2 simulated CPU devices, so the run's mesh holds 4 data devices
across 2 processes; each process reads its own half of the trajectories. The
README's two-process launch is what this test types.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from meshsim.parallel.distributed import resolve
from tests.conftest import REPO, cpu_devices_env, tiny_cfd_run


def test_resolve_takes_arguments_then_variables_and_checks_them():
    assert resolve(environ={}) == {}
    args = resolve("localhost:1234", 2, 1, environ={})
    assert args == {"coordinator_address": "localhost:1234", "num_processes": 2, "process_id": 1}
    env = {"MESHSIM_COORDINATOR": "h:9", "MESHSIM_NUM_PROCESSES": "4", "MESHSIM_PROCESS_ID": "0"}
    assert resolve(environ=env)["num_processes"] == 4
    assert resolve(process_id=3, environ=env)["process_id"] == 3  # an argument wins
    with pytest.raises(ValueError, match="missing"):
        resolve("localhost:1234", environ={})
    with pytest.raises(ValueError, match="--coordinator: expected host:port"):
        resolve("localhost", 2, 0, environ={})
    with pytest.raises(ValueError, match="--process-id: expected < --num-processes=2, got 2"):
        resolve("localhost:1", 2, 2, environ={})
    with pytest.raises(ValueError, match="--num-processes: expected an int"):
        resolve("localhost:1", "two", 0, environ={})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_process_training_on_localhost(tmp_path):
    config = tiny_cfd_run(tmp_path, batch_size=4, steps=6, checkpoint_every=3)
    env = cpu_devices_env(2)
    port, workdir = _free_port(), tmp_path / "run"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "meshsim.cli", "train", "--config", config]
            + ["--workdir", str(workdir), "--distributed", "--coordinator", f"localhost:{port}"]
            + ["--num-processes", "2", "--process-id", str(i)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    for i, (_, err) in enumerate(outputs):
        assert f"process {i} of 2: 2 local devices, 4 in all" in err
        assert "data=4 x graph=1 (4 cpu devices), 2 processes, batch 4" in err
    with open(workdir / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    losses = [r["loss"] for r in records]
    assert [r["step"] for r in records] == [3, 4, 5, 6]  # written once, by process 0
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]

    # The checkpoint the two processes wrote is read by one process on one device.
    from meshsim.runs import load_run

    _, _, state = load_run(str(workdir))
    assert int(state.step) == 6
