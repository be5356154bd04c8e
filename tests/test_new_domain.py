"""A new domain is one file outside the package: a task module and its data in a
temporary directory, named from the CLI (`--set task.module=... task.name=...`), trained,
evaluated, rolled out and plotted without touching `meshsim/`.

The domain is the heat equation on a triangle mesh (notebook 02's example): the state
is `temperature [T, N, 1]`, boundary nodes hold their values (WALL_BOUNDARY, prescribed)
and interior nodes diffuse. Train runs in one process, evaluate/rollout/plot in
another, so the task module is loaded again from the run's config.json, as a user's
later command would.
"""

import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import meshsim
from meshsim.data import infer_meta, write_hdf5_split
from tests.conftest import grid_cells

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HEAT_TASK = '''
"""The heat equation on a triangle mesh: a domain defined outside meshsim."""

from meshsim.node_types import NodeType
from meshsim.tasks import MeshTask, register_task


class HeatTask(MeshTask):
    """Temperature on a fixed mesh; boundary nodes are prescribed (Dirichlet)."""

    def plot_scalar(self, states):
        return states[..., 0], "temperature"


def heat_task(*, noise_std: float = 0.0, noise_gamma: float = 1.0) -> HeatTask:
    return HeatTask(
        name="heat",
        state_field="temperature",
        order=1,
        output_size=1,
        loss_node_types=(int(NodeType.NORMAL),),
        noise_std=noise_std,
        noise_gamma=noise_gamma,
    )


register_task("heat", heat_task)
'''


def heat_trajectory(seed: int, nx: int = 7, ny: int = 6, steps: int = 10) -> dict:
    """Explicit diffusion T ← T + 0.1 · Σ_neighbours (T_j − T_i) on interior nodes of a
    grid mesh; boundary nodes keep their initial temperature."""
    rng = np.random.default_rng(seed)
    points, cells = grid_cells(nx, ny)
    n = points.shape[0]
    x, y = points[:, 0], points[:, 1]
    boundary = (x == 0) | (x == 1) | (y == 0) | (y == 1)
    node_type = np.where(boundary, int(meshsim.NodeType.WALL_BOUNDARY), 0).astype(np.int32)
    senders, receivers = meshsim.edges_from_cells(cells)
    temperature = np.empty((steps, n, 1), np.float32)
    t = rng.normal(size=n).astype(np.float64)
    for k in range(steps):
        temperature[k, :, 0] = t
        flux = np.zeros(n)
        np.add.at(flux, receivers, t[senders] - t[receivers])
        t = np.where(boundary, t, t + 0.1 * flux)
    return {
        "cells": cells[None],
        "mesh_pos": points[None],
        "node_type": node_type[None, :, None],
        "temperature": temperature,
    }


def _meshsim(*argv: str, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from meshsim.cli import main; sys.exit(main())", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "MESHSIM_COMPILATION_CACHE": ""},
    )


def test_a_task_module_outside_the_package_trains_evaluates_rolls_out_and_plots(tmp_path):
    task_file = tmp_path / "heat.py"
    task_file.write_text(textwrap.dedent(HEAT_TASK))
    data = str(tmp_path / "data")
    for split, seeds in (("train", range(3)), ("valid", range(10, 12))):
        trajs = [heat_trajectory(s) for s in seeds]
        write_hdf5_split(data, split, trajs, infer_meta(trajs[0], dt=0.1))
    workdir = str(tmp_path / "run")
    overrides = [
        f"task.module={task_file}",
        "task.name=heat",
        f"data.path={data}",
        "model.latent_size=16",
        "model.num_message_passing_steps=2",
        "model.bundle_steps=1",
        "train.steps=20",
        "train.accumulate_steps=5",
        "train.log_every=10",
        "train.checkpoint_every=10",
    ]
    train = _meshsim(
        "train",
        "--config",
        os.path.join(REPO, "experiments", "cylinder_flow_lite.py"),
        "--workdir",
        workdir,
        *[a for o in overrides for a in ("--set", o)],
        cwd=str(tmp_path),
    )
    assert train.returncode == 0, train.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"]["name"] == "heat" and config["task"]["module"] == str(task_file)
    # Another process: the module is loaded again from config.json.
    script = textwrap.dedent(
        f"""
        from meshsim.cli import main
        for argv in (["evaluate", "--workdir", {workdir!r}],
                     ["rollout", "--workdir", {workdir!r}, "--num", "1"],
                     ["plot", "--workdir", {workdir!r}]):
            assert main(argv) == 0, argv
        """
    )
    later = subprocess.run(
        [sys.executable, "-c", script],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        env={**os.environ, "MESHSIM_COMPILATION_CACHE": ""},
    )
    assert later.returncode == 0, later.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # Scored as a mesh rollout from the first frame, against persistence, 9 steps.
    assert metrics["steps"] == 9 and metrics["num_trajectories"] == 1
    assert set(metrics["rollout_rmse"]) == {"model", "persistence"}
    assert metrics["diagnostics"] is None  # the heat task declares no diagnostics
    with h5py.File(tmp_path / "run" / "rollouts.h5") as f:
        assert f.attrs["state_field"] == "temperature"
        pred, truth, node_type = f["00000/pred"][()], f["00000/truth"][()], f["00000/node_type"]
        # Prescribed (boundary) nodes follow the truth exactly through the rollout.
        wall = node_type[()][:, 0] == int(meshsim.NodeType.WALL_BOUNDARY)
        np.testing.assert_array_equal(pred[:, wall], truth[:, wall])
    for name in ("loss.png", "comparison.png", "rollout.gif"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    assert "rollout RMSE" in later.stdout  # the evaluate summary


def test_an_unknown_task_name_lists_the_registered_ones(tmp_path):
    (tmp_path / "empty.py").write_text("# registers nothing\n")
    from meshsim.config import TaskConfig

    with pytest.raises(
        ValueError, match=r"^task\.name: expected one of \[.*'cfd'.*\].*got 'heat2'"
    ):
        TaskConfig(name="heat2", module=str(tmp_path / "empty.py"))
    with pytest.raises(FileNotFoundError, match="task.module: no such file"):
        TaskConfig(name="cfd", module=str(tmp_path / "missing.py"))


def test_a_task_file_is_stored_as_an_absolute_path(tmp_path, monkeypatch):
    """config.json keeps where the file is, so later commands run from anywhere."""
    from meshsim.config import TaskConfig
    from meshsim.tasks import registry

    monkeypatch.setattr(registry, "TASKS", dict(registry.TASKS))  # no task left behind
    (tmp_path / "heat_rel.py").write_text(
        textwrap.dedent(HEAT_TASK).replace('register_task("heat"', 'register_task("heat_rel"')
    )
    monkeypatch.chdir(tmp_path)
    config = TaskConfig(name="heat_rel", module="heat_rel.py")
    assert config.module == str(tmp_path / "heat_rel.py")
