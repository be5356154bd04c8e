"""Temporal bundling: K frames per network call (Brandstetter et al., ICLR 2022).

Pinned here: K = 1 is the unbundled simulator; slice j of a bundle is the one-step
target of frame t+j+1 relative to frame t+j, scored against that frame; rollouts
advance K frames per call, return every frame and take prescribed nodes from the
truth of each frame; bundles combine with unrolled training (k calls, k·K frames);
every task trains bundled end to end.

The hand-built network `HalvingBundle` predicts `u_{t+1} = u_t / 2` exactly: scaling
by a power of two and Sterbenz subtraction are exact in float32, so the losses it
reaches are exactly 0, not merely small.
"""

import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meshsim
from meshsim import normalization as norm
from meshsim.config import (
    ConfigTypeError,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
    TrainConfig,
    apply_overrides,
)
from meshsim.data import infer_meta, write_hdf5_split
from meshsim.evaluation import load_rollouts_h5
from meshsim.evaluation.metrics import masked_mse
from meshsim.rollout import bundle_step, rollout, rollout_step, rollout_trajectory
from meshsim.runs import build_simulator, load_run, run_evaluation, run_training
from meshsim.tasks import cfd_task, cloth_task, relative_edge_features
from meshsim.training.batches import dataset_budget, iter_batches
from meshsim.training.multistep import unrolled_loss
from meshsim.training.step import TrainState, make_eval_loss, make_optimizer, make_train_step
from tests.conftest import synthetic_cfd_trajectory, synthetic_cloth_trajectory

TINY = dict(latent_size=8, num_message_passing_steps=1, mlp_hidden_layers=1)


class HalvingBundle(nn.Module):
    """A parameter-free "network" for u_{t+1} = u_t / 2 on the velocity input: slice j
    is u_{t+j+1} − u_{t+j} = −u_t / 2^(j+1) (identity normalizers assumed). `reverse`
    hands the slices out in the wrong order."""

    output_size: int = 2
    bundle_steps: int = 2
    reverse: bool = False

    @nn.compact
    def __call__(self, graph):
        u = graph.node_sets["mesh"].features[:, : self.output_size]  # [N, d]
        slices = [-u * 0.5 ** (j + 1) for j in range(self.bundle_steps)]
        return jnp.concatenate(slices[::-1] if self.reverse else slices, axis=-1)


def _halving_trajectory(steps: int = 9) -> dict:
    """cfd layout: simulated nodes halve every frame; prescribed ones (inflow, walls)
    change every frame, so a rollout that took them from the wrong frame would show."""
    traj = synthetic_cfd_trajectory(nx=4, ny=3, steps=steps)
    simulated = np.isin(traj["node_type"][0, :, 0], cfd_task().loss_node_types)
    t = np.arange(steps, dtype=np.float32)[:, None, None]
    u0 = traj["velocity"][0] + 1.0
    halving = u0[None] * np.float32(0.5) ** t
    moving = np.float32(0.1) * (t + 1) + traj["mesh_pos"][0][None]
    traj["velocity"] = np.where(simulated[None, :, None], halving, moving).astype(np.float32)
    return traj


def _identity_normalizers(task) -> norm.Normalizers:
    def one(size):
        return norm.fixed_normalizer(np.zeros(size), np.ones(size))

    return norm.Normalizers(
        nodes={k: one(f) for k, f in task.node_feature_sizes.items()},
        edges={k: one(f) for k, (_, _, f) in task.edge_types.items()},
        output=one(task.output_size),
    )


def _halving_sim(k: int = 2, reverse: bool = False) -> meshsim.Simulator:
    task = dataclasses.replace(cfd_task(), noise_std=0.0)
    return meshsim.Simulator(HalvingBundle(bundle_steps=k, reverse=reverse), task)


# ---------------------------------------------------------------------------- config


def test_bundle_steps_config_is_validated_and_reaches_the_model():
    assert ModelConfig().bundle_steps == 1
    with pytest.raises(ValueError, match=r"model.bundle_steps: expected an int ≥ 1, got 0"):
        ModelConfig(bundle_steps=0)
    with pytest.raises(ConfigTypeError, match=r"model.bundle_steps: expected an int ≥ 1"):
        ModelConfig(bundle_steps=1.5)
    with pytest.raises(ValueError, match=r"model.bundle_steps"):
        apply_overrides(ExperimentConfig(), ["model.bundle_steps=-2"])
    with pytest.raises(ValueError, match=r"bundle_steps: expected a positive int, got 0"):
        meshsim.MeshGraphNet(output_size=2, bundle_steps=0)
    config = apply_overrides(
        ExperimentConfig(), ["model.bundle_steps=3", "model.latent_size=8", "task.name=cloth"]
    )
    sim = build_simulator(config)
    assert sim.model.bundle_steps == 3 and sim.bundle_steps == 3
    out = sim.model.apply(sim.init_params(jax.random.key(0)), sim.template_graph())
    assert out.shape == (1, 3 * 3)  # K slices of the task's d = 3


def test_k1_is_the_unbundled_simulator_bit_for_bit():
    task = cfd_task()
    plain = meshsim.Simulator(meshsim.MeshGraphNet(output_size=2, **TINY), task)
    one = meshsim.Simulator(meshsim.MeshGraphNet(output_size=2, bundle_steps=1, **TINY), task)
    two = meshsim.Simulator(meshsim.MeshGraphNet(output_size=2, bundle_steps=2, **TINY), task)
    assert plain == one and plain.bundle_steps == 1  # the very same (hashable) simulator
    shapes = lambda sim: jax.tree_util.tree_map(  # noqa: E731
        jnp.shape, sim.init_params(jax.random.key(0))
    )
    assert shapes(one) == shapes(plain)
    # Only the decoder's last layer widens with K.
    flat_one = jax.tree_util.tree_flatten_with_path(shapes(one))[0]
    flat_two = jax.tree_util.tree_flatten_with_path(shapes(two))[0]
    differ = [jax.tree_util.keystr(p) for (p, a), (_, b) in zip(flat_one, flat_two) if a != b]
    assert differ and all("decoder" in p for p in differ), differ
    # The general bundle step at K = 1 is the one-frame rollout step.
    traj = synthetic_cfd_trajectory(nx=4, ny=3, steps=4)
    structure = task.structure(traj)
    fields = {k: jnp.asarray(v) for k, v in task.window(traj, 0, structure).fields.items()}
    fields = {k: v for k, v in fields.items() if not k.startswith("target|")}
    params, normalizers = one.init_params(jax.random.key(1)), _identity_normalizers(task)
    truth = jnp.asarray(traj["velocity"][1])
    args = dict(fields=fields, structure=structure)
    _, state = rollout_step(one, params, normalizers, prescribed=truth, **args)
    _, states = bundle_step(one, params, normalizers, prescribed=truth[None], **args)
    np.testing.assert_allclose(states[0], state, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="bundle_steps is 2; use predict_bundle"):
        two.predict(two.init_params(jax.random.key(0)), normalizers, fields, structure)


# ---------------------------------------------------------------------------- targets


def test_slices_are_scored_against_their_own_frames():
    """Loss 0 exactly when slice j equals the increment to frame t+j+1; the same slices
    in the wrong order are penalised."""
    traj = _halving_trajectory()
    sim = _halving_sim()
    budget = dataset_budget([traj], sim.task)
    batch = next(iter_batches([traj], sim.task, batch_size=2, budget=budget, horizon=2))
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params={},
        opt_state=None,
        normalizers=_identity_normalizers(sim.task),
    )
    assert float(make_eval_loss(sim)(state, batch)) == 0.0
    # Reversed, each slice misses its frame by u_t / 4: the loss is the weighted mean
    # over nodes and slices of |u_t|² / 16.
    fields = batch.fields
    weights = jax.vmap(sim.task.loss_weights)(fields, batch.graph.node_sets["mesh"].mask)
    expected = masked_mse(
        fields["velocity"] / 4, 0 * fields["velocity"], weights, feature_reduction="sum"
    )
    reversed_loss = make_eval_loss(_halving_sim(reverse=True))(state, batch)
    np.testing.assert_allclose(reversed_loss, expected, rtol=1e-6)
    assert float(expected) > 0
    # Unrolled: 2 calls of 2 frames (windows of 4 future frames), also exactly 0.
    batch4 = next(iter_batches([traj], sim.task, batch_size=2, budget=budget, horizon=4))
    fields = jax.tree_util.tree_map(lambda x: jnp.asarray(x[0]), batch4.fields)
    structure = jax.tree_util.tree_map(lambda x: x[0], batch4.graph)
    weights = sim.task.loss_weights(fields, structure.node_sets["mesh"].mask)
    args = (sim, {}, state.normalizers, fields, structure, weights)
    assert float(unrolled_loss(*args, horizon=2)) == 0.0
    with pytest.raises(ValueError, match=r"future\|velocity: expected \[N, ≥ 6, \.\.\.\]"):
        unrolled_loss(*args, horizon=3)  # 3 calls × 2 frames > the window's 4


def test_pushforward_scores_its_last_bundle_with_the_one_step_slice_loss():
    """After the frozen first call, the last call is a one-step example from the pushed
    state: slice j against the increment to the true frame t+j+1 of that call."""
    traj = _halving_trajectory()
    sim, reverse = _halving_sim(), _halving_sim(reverse=True)
    budget = dataset_budget([traj], sim.task)
    batch = next(iter_batches([traj], sim.task, batch_size=1, budget=budget, horizon=4))
    fields = jax.tree_util.tree_map(lambda x: jnp.asarray(x[0]), batch.fields)
    structure = jax.tree_util.tree_map(lambda x: x[0], batch.graph)
    weights = sim.task.loss_weights(fields, structure.node_sets["mesh"].mask)
    normalizers = _identity_normalizers(sim.task)
    args = ({}, normalizers, fields, structure, weights)
    assert float(unrolled_loss(sim, *args, horizon=2, mode="pushforward")) == 0.0
    # Reversed slices still sum to the right frame t+2 (u_t / 4), so the pushed state is
    # the truth; from it each slice of the last call misses by u_{t+2} / 4 = u_t / 16.
    # (A loss on the integrated states would see u_t / 16 on one frame and 0 on the other.)
    got = unrolled_loss(reverse, *args, horizon=2, mode="pushforward")
    u = fields["velocity"]
    expected = masked_mse(u / 16, 0 * u, weights, feature_reduction="sum")
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert float(expected) > 0


def test_unrolled_bundles_are_a_loop_of_bundle_steps_over_k_times_k_frames():
    task, traj = cloth_task(), synthetic_cloth_trajectory()
    sim = meshsim.Simulator(meshsim.MeshGraphNet(output_size=3, bundle_steps=2, **TINY), task)
    structure = task.structure(traj)
    fields = task.window(traj, 1, structure, horizon=4).fields
    fields = {k: jnp.asarray(v) for k, v in fields.items()}
    params, normalizers = sim.init_params(jax.random.key(0)), _identity_normalizers(task)
    weights = task.loss_weights(fields, structure.node_sets["mesh"].mask)
    got = unrolled_loss(sim, params, normalizers, fields, structure, weights, horizon=2)
    carry = {k: v for k, v in fields.items() if not k.startswith(("target|", "future|"))}
    truth, losses = traj["world_pos"], []
    for call in range(2):  # frames 2..3, then 4..5 (t = 1)
        frames = slice(2 + 2 * call, 4 + 2 * call)
        carry, states = bundle_step(
            sim,
            params,
            normalizers,
            fields=carry,
            structure=structure,
            prescribed=jnp.asarray(truth[frames]),
        )
        losses.append(masked_mse(states, truth[frames], weights, feature_reduction="sum"))
    np.testing.assert_allclose(got, np.mean(losses), rtol=1e-5)


@pytest.mark.parametrize(
    "make_task, make_traj",
    [(cfd_task, synthetic_cfd_trajectory), (cloth_task, synthetic_cloth_trajectory)],
)
def test_bundle_targets_are_one_step_targets_that_integrate_back_to_the_frames(
    make_task, make_traj
):
    task, traj = make_task(), make_traj()
    k, t = 3, task.history
    sim = meshsim.Simulator(
        meshsim.MeshGraphNet(output_size=task.output_size, bundle_steps=k, **TINY), task
    )
    structure = task.structure(traj)
    window = task.window(traj, t, structure, horizon=k)
    fields = {n: jnp.asarray(v) for n, v in window.fields.items()}
    x = np.asarray(traj[task.state_field], np.float64)
    targets = sim.bundle_targets(fields)  # [N, K, d]
    for j in range(k):  # noise off: Δx, or x_{+1} − 2x + x_{−1}, of the true frames
        expected = (
            x[t + j + 1] - x[t + j]
            if task.order == 1
            else (x[t + j + 1] - 2 * x[t + j] + x[t + j - 1])
        )
        np.testing.assert_allclose(targets[:, j], expected, rtol=1e-5, atol=1e-5)
    # With training noise, integrating the targets from the noisy state lands on the
    # noise-corrected first target, then on the true frames.
    noisy = task.add_noise(fields, jax.random.key(0), structure.node_sets["mesh"].mask)
    carry = {n: v for n, v in noisy.items() if not n.startswith(("target|", "future|"))}
    prescribed = jnp.swapaxes(fields["future|prescribed"], 0, 1)
    _, states = sim.advance_bundle(carry, sim.bundle_targets(noisy), prescribed)
    np.testing.assert_allclose(states[0], noisy[f"target|{task.state_field}"], atol=1e-5)
    np.testing.assert_allclose(states[1:], x[t + 2 : t + 1 + k], atol=1e-5)


# ---------------------------------------------------------------------------- rollouts


def test_edge_norms_of_padding_self_edges_have_finite_gradients():
    """Cloth trained through a rollout (bundled or unrolled) differentiates world-space
    edge features; padding edges join a node to itself, where |x| has no gradient."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    senders, receivers = np.array([0, 1, 3]), np.array([1, 2, 3])  # the last: padding
    features = relative_edge_features(x, senders, receivers)
    rel = x[senders] - x[receivers]
    np.testing.assert_array_equal(features[:, 3], jnp.linalg.norm(rel, axis=-1))
    grad = jax.grad(lambda x: relative_edge_features(x, senders, receivers).sum())(x)
    assert np.all(np.isfinite(grad))


def test_bundled_rollout_returns_every_frame_with_prescribed_nodes_per_frame():
    traj = _halving_trajectory(steps=9)
    truth = traj["velocity"]
    simulated = np.isin(traj["node_type"][0, :, 0], cfd_task().loss_node_types)
    normalizers = _identity_normalizers(cfd_task())
    for k in (2, 3):  # 7 steps: 4 calls of 2 (last truncated), 3 calls of 3 (ditto)
        sim = _halving_sim(k)
        pred = rollout_trajectory(sim, {}, normalizers, traj, steps=7, chunk=3)
        assert pred.shape == (8, *truth.shape[1:])
        np.testing.assert_array_equal(pred[:, ~simulated], truth[:8, ~simulated])
        np.testing.assert_array_equal(pred[:, simulated], truth[:8, simulated])  # exact
    # A trained-shape network: chunking stays invisible, prescribed nodes still exact.
    sim = meshsim.Simulator(meshsim.MeshGraphNet(output_size=2, bundle_steps=2, **TINY), cfd_task())
    params = sim.init_params(jax.random.key(0))
    one = rollout_trajectory(sim, params, normalizers, traj, chunk=100)
    chunked = rollout_trajectory(sim, params, normalizers, traj, chunk=3)
    assert one.shape == truth.shape  # 8 steps + the initial frame
    np.testing.assert_allclose(chunked, one, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(one[:, ~simulated], truth[:, ~simulated])
    assert not np.allclose(one[1:, simulated], truth[1:, simulated])


def test_scanned_rollout_truncates_the_last_call_and_keeps_its_fields():
    traj = _halving_trajectory(steps=9)
    sim = _halving_sim(2)
    task = sim.task
    structure = task.structure(traj)
    fields = {k: jnp.asarray(v) for k, v in task.window(traj, 0, structure).fields.items()}
    prescribed = jnp.asarray(task.prescribed_frames(traj, 0, 5))
    normalizers = _identity_normalizers(task)
    carry, states = jax.jit(
        lambda f, p: rollout(sim, {}, normalizers, fields=f, structure=structure, prescribed=p)
    )(fields, prescribed)
    assert states.shape == (5, *traj["velocity"].shape[1:])
    np.testing.assert_array_equal(states, traj["velocity"][1:6])
    np.testing.assert_array_equal(carry["velocity"], traj["velocity"][5])  # not frame 6


# ---------------------------------------------------------------------------- end to end


def _dataset(root, make, steps=10):
    train = [make(seed=i, steps=steps) for i in range(2)]
    valid = [make(seed=10, steps=steps)]
    meta = infer_meta(train[0], dt=0.01)
    write_hdf5_split(root, "train", train, meta)
    write_hdf5_split(root, "valid", valid, meta)
    return root


@pytest.mark.parametrize(
    "task, make, unroll",
    [("cfd", synthetic_cfd_trajectory, 1), ("cloth", synthetic_cloth_trajectory, 2)],
)
def test_bundled_training_and_rollout_end_to_end(task, make, unroll, tmp_path):
    root = _dataset(str(tmp_path / "data"), make)
    config = ExperimentConfig(
        name="bundled",
        task=task,
        data=DataConfig(path=root, batch_size=2, pool_size=2, prefetch=1),
        model=ModelConfig(bundle_steps=2, **TINY),
        train=TrainConfig(
            steps=4,
            accumulate_steps=2,
            log_every=2,
            eval_every=0,
            checkpoint_every=4,
            unroll_steps=unroll,
            optimizer=OptimizerConfig(learning_rate=1e-3),
        ),
    )
    workdir = str(tmp_path / "run")
    run_training(config, workdir, progress=False)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = [json.loads(line)["loss"] for line in f if "loss" in line]
    assert losses and all(np.isfinite(losses)), losses
    _, sim, state = load_run(workdir)
    assert sim.bundle_steps == 2
    assert state.normalizers.output.size == sim.task.output_size  # one normalizer per slice
    steps = 10 - 1 - sim.task.history  # odd for cfd: the last call is truncated
    result = run_evaluation(workdir, split="valid", num=1)
    assert result["steps"] == steps
    (rollout_group,) = load_rollouts_h5(os.path.join(workdir, "rollouts.h5"))
    pred = rollout_group["pred"]
    assert pred.shape[0] == steps + 1 and np.all(np.isfinite(pred))


def test_weather_trains_and_rolls_out_bundled(tmp_path):
    pytest.importorskip("xarray")
    from meshsim.data import weather as W
    from meshsim.tasks.weather import WeatherTask, weather_normalizers
    from tests.test_weather_data import synthetic_wb2

    path = tmp_path / "train.zarr"
    synthetic_wb2().to_zarr(path, zarr_format=2)
    data = W.WeatherDataset(path)
    task = WeatherTask(output_size=3, num_static=1, mesh_splits=1)
    structure = task.structure(data[0])
    model = meshsim.GraphCast(output_size=3, bundle_steps=2, **TINY)
    sim = meshsim.Simulator(model, task)
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-3))
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=sim.init_params(jax.random.key(0)),
        opt_state=None,
        normalizers=weather_normalizers(task, W.compute_statistics(data), structure),
    )
    state = state.replace(opt_state=tx.init(state.params))
    budget = dataset_budget([data[0]], task)
    batch = next(iter_batches(data, task, batch_size=2, budget=budget, seed=0, horizon=2))
    assert batch.fields["future|state"].shape[2] == 2
    state, metrics = make_train_step(sim, tx)(state, batch, jax.random.key(1))
    assert np.isfinite(float(metrics["loss"])) and int(metrics["skipped"]) == 0
    pred = rollout_trajectory(sim, state.params, state.normalizers, data[0], steps=3, chunk=3)
    assert pred.shape == (4, 40, 3) and np.all(np.isfinite(pred))
