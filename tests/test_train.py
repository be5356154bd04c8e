"""Training: loss goes down, resume is bitwise identical, run directories, configs."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

import meshsim
from meshsim.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
)
from meshsim.data import infer_meta, write_hdf5_split
from meshsim.runs import (
    build_simulator,
    load_run,
    run_evaluation,
    run_rollouts,
    run_training,
)
from meshsim.tasks import cfd_task, cloth_task
from meshsim.training.batches import dataset_budget, iter_batches, window_indices
from meshsim.training.step import init_train_state, make_optimizer, make_train_step
from tests.conftest import synthetic_cfd_trajectory, synthetic_cloth_trajectory

TINY_MODEL = ModelConfig(latent_size=16, num_message_passing_steps=2, mlp_hidden_layers=1)


@pytest.fixture(scope="module")
def cfd_dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cfd"))
    train = [synthetic_cfd_trajectory(seed=i, steps=10) for i in range(3)]
    valid = [synthetic_cfd_trajectory(seed=10 + i, steps=10) for i in range(2)]
    meta = infer_meta(train[0], dt=0.01)
    write_hdf5_split(root, "train", train, meta)
    write_hdf5_split(root, "valid", valid, meta)
    return root


def _config(path, steps, **train):
    return ExperimentConfig(
        name="tiny",
        task="cfd",
        data=DataConfig(path=path, batch_size=2, pool_size=2, prefetch=2),
        model=TINY_MODEL,
        train=TrainConfig(
            steps=steps,
            accumulate_steps=3,
            log_every=2,
            eval_every=0,
            checkpoint_every=4,
            optimizer=OptimizerConfig(learning_rate=1e-3),
            **train,
        ),
    )


@pytest.mark.parametrize(
    "task, make",
    [(cfd_task(), synthetic_cfd_trajectory), (cloth_task(), synthetic_cloth_trajectory)],
)
def test_training_lowers_the_loss(task, make):
    trajs = [make(seed=i) for i in range(2)]
    batches = iter_batches(trajs, task, batch_size=2, budget=dataset_budget(trajs, task), seed=0)
    model = meshsim.MeshGraphNet(
        output_size=task.output_size, latent_size=16, num_message_passing_steps=2
    )
    sim = meshsim.Simulator(model, task)
    tx = make_optimizer(OptimizerConfig(learning_rate=3e-3))
    fixed = next(batches)  # one batch, so the decrease is not confounded by data variation
    state = init_train_state(sim, tx, jax.random.key(0))
    step = make_train_step(sim, tx)
    key = jax.random.key(1)
    losses = []
    for i in range(60):
        state, m = step(state, fixed, jax.random.fold_in(key, i))
        losses.append(float(m["loss"]))
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5]), losses


def test_window_stream_is_deterministic_and_covers_every_window():
    task = cfd_task()
    lengths = [5, 7, 6]
    a = window_indices(lengths, task, seed=3, pool_size=2)
    b = window_indices(lengths, task, seed=3, pool_size=2)
    first = [next(a) for _ in range(15)]
    assert first == [next(b) for _ in range(15)]
    # One epoch visits each (trajectory, t) with a target exactly once.
    expected = {(i, t) for i, n in enumerate(lengths) for t in range(n - 1)}
    assert set(first) == expected and len(first) == len(expected)


def test_batches_are_padded_and_masked():
    task = cfd_task()
    trajs = [synthetic_cfd_trajectory(nx=5, ny=4), synthetic_cfd_trajectory(nx=7, ny=5)]
    budget = dataset_budget(trajs, task)
    batch = next(iter_batches(trajs, task, batch_size=4, budget=budget, seed=0))
    assert batch.fields["velocity"].shape == (4, budget.n_node["mesh"], 2)
    node_mask = batch.graph.node_sets["mesh"].mask
    real = node_mask.sum(axis=1)
    assert set(real.tolist()) <= {20, 35}
    for b in range(4):  # padded nodes carry zero fields and are masked
        assert np.all(batch.fields["velocity"][b][~node_mask[b]] == 0)


def test_resume_equals_uninterrupted_run(cfd_dataset, tmp_path):
    full = run_training(_config(cfd_dataset, 10), str(tmp_path / "full"), progress=False)
    part = str(tmp_path / "part")
    run_training(_config(cfd_dataset, 10), part, max_steps=6, progress=False)
    resumed = run_training(_config(cfd_dataset, 10), part, progress=False)
    assert int(resumed.step) == int(full.step) == 10
    leaves_a = jax.tree_util.tree_leaves((full.params, full.opt_state, full.normalizers))
    leaves_b = jax.tree_util.tree_leaves((resumed.params, resumed.opt_state, resumed.normalizers))
    for a, b in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # bitwise
    # metrics.jsonl has each logged step once, in order.
    with open(os.path.join(part, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == [4, 6, 8, 10]


def test_run_directory_evaluation(cfd_dataset, tmp_path):
    workdir = str(tmp_path / "run")
    run_training(_config(cfd_dataset, 6), workdir, progress=False)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "6"]
    # Evaluation restores from a shape template: it never opens the training split.
    train_file = os.path.join(cfd_dataset, "train.h5")
    os.rename(train_file, train_file + ".hidden")
    try:
        config, sim, state = load_run(workdir)
        assert int(state.step) == 6 and config.model == TINY_MODEL
        assert sim.task.name == "cfd" and sim.model.latent_size == 16
        result = run_evaluation(workdir, split="valid", num=2, steps=5)
    finally:
        os.rename(train_file + ".hidden", train_file)
    assert set(result["rollout_rmse"]) == {"model", "persistence"}
    assert set(result["rollout_rmse"]["model"]) == {"1", "all"}
    with open(os.path.join(workdir, "metrics.json")) as f:
        assert json.load(f)["steps"] == 5
    assert os.path.exists(os.path.join(workdir, "rollouts.h5"))
    run_rollouts(workdir, split="valid", num=1, steps=3, export=True)
    assert os.path.exists(os.path.join(workdir, "paraview", "00000.xdmf"))
    assert os.path.exists(os.path.join(workdir, "paraview", "00000.h5"))


def test_changed_config_in_existing_workdir_is_refused(cfd_dataset, tmp_path):
    workdir = str(tmp_path / "run")
    run_training(_config(cfd_dataset, 2), workdir, progress=False)
    base = _config(cfd_dataset, 2)
    other = dataclasses.replace(base, task=dataclasses.replace(base.task, noise_std=0.5))
    with pytest.raises(ValueError, match="another config.json"):
        run_training(other, workdir, progress=False)


def test_config_overrides_and_round_trip():
    c = ExperimentConfig()
    c2 = apply_overrides(
        c,
        [
            "model.latent_size=64",
            "train.optimizer.learning_rate=3e-4",
            "model.remat=true",
            "task.name=cloth",
            "task.noise_std=0.01",
        ],
    )
    assert c2.model.latent_size == 64 and c2.model.remat is True
    assert c2.train.optimizer.learning_rate == 3e-4 and c2.task.name == "cloth"
    assert c2.task.noise_std == 0.01
    assert apply_overrides(c2, ["model.remat=none"]).model.remat is None
    assert config_from_dict(ExperimentConfig, json.loads(json.dumps(config_to_dict(c2)))) == c2
    with pytest.raises(ValueError, match=r"unknown key 'latent'; valid: \["):
        apply_overrides(c, ["model.latent=3"])
    with pytest.raises(
        ValueError, match="model.latent_size: expected an int ≥ 1 or None, got .big."
    ):
        apply_overrides(c, ["model.latent_size=big"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        apply_overrides(c, ["model.latent_size"])


def test_periodic_evaluation_is_logged(cfd_dataset, tmp_path):
    workdir = str(tmp_path / "run")
    config = _config(cfd_dataset, 6)
    config = dataclasses.replace(
        config,
        train=dataclasses.replace(
            config.train, eval_every=2, eval_trajectories=1, eval_rollout_steps=4
        ),
    )
    run_training(config, workdir, progress=False)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    evals = [r for r in rows if "eval/rmse_1" in r]
    # Evaluation starts after the 3 statistics-only steps: at steps 4 and 6.
    assert [r["step"] for r in evals] == [4, 6]
    assert all(np.isfinite(r["eval/rmse_all"]) for r in evals)


def test_model_is_chosen_by_name_and_every_model_field_is_reached():
    config = apply_overrides(
        ExperimentConfig(),
        ["model.layer_norm=false", "model.scan_unroll=3", "model.latent_size=8"],
    )
    sim = build_simulator(config)
    assert isinstance(sim.model, meshsim.MeshGraphNet)
    assert (sim.model.layer_norm, sim.model.scan_unroll, sim.model.latent_size) == (False, 3, 8)
    block_fields = {"block", *ModelConfig._BLOCK_FIELDS}
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"name"} - block_fields
    model_fields -= {"ensemble"}  # the ensemble section reaches the simulator (below)
    assert model_fields <= {f.name for f in dataclasses.fields(meshsim.EncodeProcessDecode)}
    members = ["model.ensemble.members=2", "model.ensemble.kind=initial"]
    assert build_simulator(apply_overrides(config, members)).members == 2
    # The block's settings reach the block (EncodeProcessDecode.block_options).
    assert set(ModelConfig._BLOCK_FIELDS) <= {
        f.name for f in dataclasses.fields(meshsim.TransformerBlock)
    }
    graphcast = build_simulator(apply_overrides(config, ["model.name=graphcast"]))
    assert isinstance(graphcast.model, meshsim.GraphCast)
    with pytest.raises(ValueError, match=r"model.name: expected one of \['graphcast', 'meshgraph"):
        build_simulator(apply_overrides(config, ["model.name=unet"]))
    with pytest.raises(ValueError, match="model.dtype: expected a dtype name"):
        build_simulator(apply_overrides(config, ["model.dtype=float7"]))


def test_bare_train_step_is_the_jitted_one():
    """`jit=False` hands out the pure step so jit, pmap or shard_map can each wrap it."""
    task = cfd_task()
    trajs = [synthetic_cfd_trajectory(seed=i, steps=5) for i in range(2)]
    batch = next(
        iter_batches(trajs, task, batch_size=2, budget=dataset_budget(trajs, task), seed=0)
    )
    sim = meshsim.Simulator(
        meshsim.MeshGraphNet(output_size=2, latent_size=8, num_message_passing_steps=1), task
    )
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-3))
    bare = make_train_step(sim, tx, jit=False)
    assert not hasattr(bare, "lower"), "jit=False must not return a jitted function"
    key = jax.random.key(3)
    a, ma = jax.jit(bare)(init_train_state(sim, tx, jax.random.key(0)), batch, key)
    b, mb = make_train_step(sim, tx)(init_train_state(sim, tx, jax.random.key(0)), batch, key)
    np.testing.assert_array_equal(ma["loss"], mb["loss"])
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_config_json_of_the_earlier_layout_reads_as_the_same_run():
    """A run directory written before the `task` section: `"task": "cfd"`, top-level
    noise, a `weather` section in every config (its variables now `data.variables`)."""
    from meshsim.config import config_from_dict

    new = config_to_dict(ExperimentConfig())
    old = {k: v for k, v in new.items() if k != "task"}
    old["data"] = {k: v for k, v in old["data"].items() if k != "variables"}
    weather = {"variables": [], "mesh_splits": 3, "radius_fraction": 0.6}
    cfd = config_from_dict(
        ExperimentConfig, {**old, "task": "cfd", "noise_std": 0.01, "weather": weather}
    )
    assert cfd.task.name == "cfd" and cfd.task.noise_std == 0.01
    # cfd's own options (the receptive field) at their defaults
    assert cfd.task.options == {"k_hop": 1, "dilation": 0, "dilation_levels": 2, "global_nodes": 0}
    weather = {**weather, "variables": ["u", "v"], "variable_weights": ["u=2"]}
    wx = config_from_dict(ExperimentConfig, {**old, "task": "weather", "weather": weather})
    assert wx.data.variables == ("u", "v")
    assert wx.task.options["mesh_splits"] == 3 and wx.task.options["variable_weights"] == ("u=2",)
