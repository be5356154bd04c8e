"""Every built-in task trains with the transformer block (`model.block=transformer`):
a tiny network built from a config, a few Adam steps on one fixed batch of the task's
own (synthetic) data; the loss stays finite and goes down. The cylinder-flow case also
carries the wider receptive field (K-hop, dilated and global edge sets), and
`meshsim train --set model.block=transformer` runs from the command line."""

import json
import os

import jax
import numpy as np
import pytest

from meshsim.config import (
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
    TaskConfig,
    apply_overrides,
)
from meshsim.runs import build_simulator
from meshsim.tasks import TASKS
from meshsim.training.batches import dataset_budget, iter_batches
from meshsim.training.step import init_train_state, make_optimizer, make_train_step
from tests.conftest import REPO, synthetic_cfd_trajectory, synthetic_cloth_trajectory
from tests.contact_data import (
    airfoil_meta,
    airfoil_trajectory,
    plate_meta,
    plate_trajectory,
    sphere_meta,
    sphere_trajectory,
)

# One unscanned step, no remat (compiled twice as fast; the block under nn.scan and
# remat is tests/test_transformer_block.py's).
TINY = [
    "model.latent_size=16",
    "model.num_message_passing_steps=1",
    "model.mlp_hidden_layers=1",
    "model.remat=false",
]


@pytest.fixture(autouse=True, scope="module")
def fast_compiles():
    """XLA without most optimisations: these steps run in milliseconds, and compiling
    nine optimised train steps costs ~3 times as long."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


def _weather(tmp_path):
    from meshsim.data import weather as W
    from tests.test_weather_data import synthetic_wb2

    synthetic_wb2().to_zarr(tmp_path / "train.zarr", zarr_format=2)
    data = W.open_weather_split(tmp_path, "train")
    return [data[0]], dict(data.meta), {"mesh_splits": 1}


def _particles(tmp_path):
    from tests.test_particles import ballistic

    trajectory, meta = ballistic(frames=8, fluid=60, walls=10)
    return [trajectory], meta, {}


# task name -> (trajectories, dataset meta or None, task options)
DATA = {
    "cfd": lambda _: (
        [synthetic_cfd_trajectory(seed=0, steps=6)],
        None,
        {"k_hop": 2, "dilation": 2, "global_nodes": 2},
    ),
    "cloth": lambda _: ([synthetic_cloth_trajectory(seed=0, steps=6)], None, {}),
    "airfoil": lambda _: ([airfoil_trajectory(0, 6)], airfoil_meta(6), {}),
    "deforming_plate": lambda _: ([plate_trajectory(0, 6)], plate_meta(6), {}),
    "sphere_simple": lambda _: ([sphere_trajectory(0, 6)], sphere_meta(6), {}),
    "flag_dynamic": lambda _: ([sphere_trajectory(1, 6)], sphere_meta(6), {}),
    "weather": _weather,
    "particles": _particles,
}


def test_every_built_in_task_has_a_case():
    built_in = {n for n, factory in TASKS.items() if factory.__module__.startswith("meshsim.")}
    assert set(DATA) == built_in


@pytest.mark.parametrize("name", sorted(DATA))
def test_trains_with_the_transformer_block(name, tmp_path):
    trajectories, meta, options = DATA[name](tmp_path)
    config = ExperimentConfig(task=TaskConfig(name=name, options=options), model=ModelConfig())
    config = apply_overrides(config, ["model.block=transformer", "model.num_heads=2", *TINY])
    sim = build_simulator(config, meta)
    assert sim.model.block.__name__ == "TransformerBlock"
    task = sim.task
    batches = iter_batches(
        trajectories, task, batch_size=1, budget=dataset_budget(trajectories, task), seed=0
    )
    fixed = next(batches)
    tx = make_optimizer(OptimizerConfig(learning_rate=3e-3))
    state = init_train_state(sim, tx, jax.random.key(0))
    step = make_train_step(sim, tx)
    losses = []
    for i in range(12):
        state, metrics = step(state, fixed, jax.random.key(i))
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses)), losses
    assert np.mean(losses[-3:]) < losses[0], losses


def test_cli_trains_with_the_transformer_block(tmp_path, monkeypatch):
    from meshsim.cli import main
    from meshsim.data import infer_meta, write_hdf5_split

    trajectories = [synthetic_cfd_trajectory(seed=i, steps=6) for i in range(2)]
    write_hdf5_split(tmp_path / "data", "train", trajectories, infer_meta(trajectories[0], dt=0.01))
    monkeypatch.chdir(REPO)
    workdir = str(tmp_path / "run")
    argv = ["train", "--config", "experiments/cylinder_flow_lite.py", "--workdir", workdir]
    for setting in (
        f"data.path={tmp_path / 'data'}",
        "model.block=transformer",
        "model.norm=rms",
        *TINY,
        "model.bundle_steps=1",
        "train.steps=4",
        "train.accumulate_steps=1",
        "train.log_every=1",
        "train.checkpoint_every=4",
    ):
        argv += ["--set", setting]
    assert main(argv) == 0
    with open(os.path.join(workdir, "config.json")) as f:
        model = json.load(f)["model"]
    assert (model["block"], model["norm"]) == ("transformer", "rms")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
