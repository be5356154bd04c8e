"""Multi-step losses: k = 1 is the one-step loss, unrolled = a loop of rollout steps,
pushforward trains only the last step, remat changes nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meshsim
from meshsim import normalization as norm
from meshsim.evaluation.metrics import masked_mse
from meshsim.rollout import rollout_step
from meshsim.tasks import cfd_task, cloth_task
from meshsim.training.multistep import horizon_at, unrolled_loss
from tests.conftest import synthetic_cfd_trajectory, synthetic_cloth_trajectory

CASES = {
    "cfd": (cfd_task, synthetic_cfd_trajectory),
    "cloth": (cloth_task, synthetic_cloth_trajectory),
}


def _setup(name, horizon=3):
    make_task, make_traj = CASES[name]
    task = make_task()
    traj = make_traj()
    structure = task.structure(traj)
    window = task.window(traj, task.order, structure, horizon=horizon)
    fields = {k: jnp.asarray(v) for k, v in window.fields.items()}
    model = meshsim.MeshGraphNet(
        output_size=task.output_size, latent_size=8, num_message_passing_steps=2
    )
    sim = meshsim.Simulator(model, task)
    params = sim.init_params(jax.random.key(0))
    rng = np.random.default_rng(0)
    sizes = task.node_feature_sizes
    normalizers = norm.Normalizers(
        nodes={
            k: norm.fixed_normalizer(rng.normal(size=f), 1 + rng.random(f))
            for k, f in sizes.items()
        },
        edges={
            k: norm.fixed_normalizer(np.zeros(f), np.ones(f))
            for k, (_, _, f) in task.edge_types.items()
        },
        output=norm.fixed_normalizer(
            0.01 * rng.normal(size=task.output_size), 0.1 + rng.random(task.output_size)
        ),
    )
    weights = task.loss_weights(fields, structure.node_sets[task.node_set].mask)
    return sim, params, normalizers, fields, structure, weights, traj


@pytest.mark.parametrize("name", ["cfd", "cloth"])
def test_one_step_equals_the_normalized_output_loss(name):
    sim, params, normalizers, fields, structure, weights, _ = _setup(name)
    graph = sim.task.build_graph(fields, structure)
    out = sim.apply(params, normalizers, graph)
    target = norm.normalize(normalizers.output, sim.task.target(fields))
    expected = masked_mse(out, target, weights, feature_reduction="sum")
    got = unrolled_loss(sim, params, normalizers, fields, structure, weights, horizon=1)
    np.testing.assert_allclose(got, expected, rtol=2e-4)


@pytest.mark.parametrize("name", ["cfd", "cloth"])
def test_unrolled_equals_a_loop_of_rollout_steps(name):
    sim, params, normalizers, fields, structure, weights, traj = _setup(name)
    state_field = sim.task.state_field
    carry = {k: v for k, v in fields.items() if not k.startswith(("target|", "future|"))}
    std = norm.mean_and_std(normalizers.output)[1]
    losses = []
    t0 = sim.task.order
    for k in range(3):
        carry, state = rollout_step(
            sim,
            params,
            normalizers,
            fields=carry,
            structure=structure,
            prescribed=jnp.asarray(traj[state_field][t0 + 1 + k]),
        )
        err = (state - traj[state_field][t0 + 1 + k]) / std
        losses.append(masked_mse(err, jnp.zeros_like(err), weights, feature_reduction="sum"))
    got = unrolled_loss(sim, params, normalizers, fields, structure, weights, horizon=3)
    np.testing.assert_allclose(got, np.mean(losses), rtol=2e-4)


def test_pushforward_trains_only_the_last_step_from_the_models_own_inputs():
    sim, params, normalizers, fields, structure, weights, traj = _setup("cfd")

    def pushforward(p):
        return unrolled_loss(
            sim, p, normalizers, fields, structure, weights, horizon=3, mode="pushforward"
        )

    # Reference: roll out 2 steps (no gradient needed), then a one-step loss whose only
    # differentiable input is the parameters.
    carry = {k: v for k, v in fields.items() if not k.startswith(("target|", "future|"))}
    for k in range(2):
        carry, _ = rollout_step(
            sim,
            params,
            normalizers,
            fields=carry,
            structure=structure,
            prescribed=jnp.asarray(traj["velocity"][2 + k]),
        )
    std = norm.mean_and_std(normalizers.output)[1]

    def last_step(p):
        _, state = rollout_step(
            sim,
            p,
            normalizers,
            fields=carry,
            structure=structure,
            prescribed=jnp.asarray(traj["velocity"][4]),
        )
        err = (state - traj["velocity"][4]) / std
        return masked_mse(err, jnp.zeros_like(err), weights, feature_reduction="sum")

    # Jitted: eagerly, each differentiated scan is traced and compiled op by op anew.
    value, grads = jax.jit(jax.value_and_grad(pushforward))(params)
    ref_value, ref_grads = jax.jit(jax.value_and_grad(last_step))(params)
    np.testing.assert_allclose(value, ref_value, rtol=2e-4)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-6)
    unrolled = jax.jit(
        jax.grad(
            lambda p: unrolled_loss(sim, p, normalizers, fields, structure, weights, horizon=3)
        )
    )(params)
    diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree_util.tree_leaves(unrolled), jax.tree_util.tree_leaves(grads))
    )
    assert diff > 1e-6  # the unrolled loss differs: it back-propagates through the rollout


def test_remat_changes_neither_loss_nor_gradients():
    sim, params, normalizers, fields, structure, weights, _ = _setup("cloth")

    def loss(p, remat):
        return unrolled_loss(
            sim, p, normalizers, fields, structure, weights, horizon=3, remat=remat
        )

    a = jax.jit(jax.value_and_grad(lambda p: loss(p, True)))(params)
    b = jax.jit(jax.value_and_grad(lambda p: loss(p, False)))(params)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    for x, y in zip(jax.tree_util.tree_leaves(a[1]), jax.tree_util.tree_leaves(b[1])):
        # remat reorders float sums: compare at the scale of the leaf
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(y))))


def test_curriculum_and_argument_errors():
    assert [horizon_at(s, max_horizon=3, schedule=10) for s in (0, 9, 10, 25, 99)] == [
        1,
        1,
        2,
        3,
        3,
    ]
    assert horizon_at(0, max_horizon=4, schedule=0) == 4
    sim, params, normalizers, fields, structure, weights, _ = _setup("cfd")
    with pytest.raises(ValueError, match="mode: expected one of"):
        unrolled_loss(
            sim, params, normalizers, fields, structure, weights, horizon=2, mode="teacher"
        )
    with pytest.raises(ValueError, match="horizon: expected ≥ 1, got 0"):
        unrolled_loss(sim, params, normalizers, fields, structure, weights, horizon=0)


def test_pipeline_windows_carry_the_horizon():
    from meshsim.training.batches import dataset_budget, iter_batches

    task = cfd_task()
    trajs = [synthetic_cfd_trajectory(seed=i, steps=6) for i in range(2)]
    budget = dataset_budget(trajs, task)
    batch = next(iter_batches(trajs, task, batch_size=3, budget=budget, horizon=4))
    n = budget.n_node["mesh"]
    assert batch.fields["future|velocity"].shape == (3, n, 4, 2)
    assert batch.fields["future|prescribed"].shape == (3, n, 4, 2)
    # With horizon 5 only t = 0 has 5 frames after it in a 6-frame trajectory.
    many = iter_batches(trajs, task, batch_size=1, budget=budget, horizon=5)
    num = trajs[0]["velocity"].shape[1]
    last_frames = [t["velocity"][5] for t in trajs]
    for _ in range(4):
        got = next(many).fields["future|velocity"][0, :num, -1]
        assert any(np.array_equal(got, f) for f in last_frames)
    with pytest.raises(ValueError, match="horizon: expected an int ≥ 1"):
        next(iter_batches(trajs, task, batch_size=1, budget=budget, horizon=0))


@pytest.mark.parametrize("mode", ["unrolled", "pushforward"])
def test_train_step_with_a_horizon_uses_the_unrolled_loss(mode):
    from meshsim.config import OptimizerConfig
    from meshsim.training.batches import dataset_budget, iter_batches
    from meshsim.training.step import init_train_state, make_optimizer, make_train_step

    task = cfd_task(noise_std=0.0)
    trajs = [synthetic_cfd_trajectory(seed=i, steps=8) for i in range(2)]
    budget = dataset_budget(trajs, task)
    batch = next(iter_batches(trajs, task, batch_size=2, budget=budget, horizon=3))
    sim = meshsim.Simulator(
        meshsim.MeshGraphNet(output_size=2, latent_size=8, num_message_passing_steps=1), task
    )
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-3))
    state = init_train_state(sim, tx, jax.random.key(0), max_accumulations=0)  # frozen stats
    step = make_train_step(sim, tx, horizon=3, mode=mode)
    # The jitted step donates its state's buffers: it gets a copy.
    new, metrics = step(jax.tree_util.tree_map(jnp.copy, state), batch, jax.random.key(1))

    @jax.jit  # one compiled program for both examples (eagerly, each traces its scans anew)
    def example_loss(fields, structure, key):
        w = task.loss_weights(fields, structure.node_sets["mesh"].mask)
        rng = key if mode == "pushforward" else None
        return unrolled_loss(
            sim,
            state.params,
            state.normalizers,
            fields,
            structure,
            w,
            horizon=3,
            mode=mode,
            rng=rng,
        )

    expected = []
    # Pushforward draws each example's depth from its own key: split(fold_in(rng, 1), B).
    keys = jax.random.split(jax.random.fold_in(jax.random.key(1), 1), 2)
    for b in range(2):
        fields = {k: jnp.asarray(v[b]) for k, v in batch.fields.items()}
        structure = jax.tree_util.tree_map(lambda x, b=b: x[b], batch.graph)
        expected.append(example_loss(fields, structure, keys[b]))
    np.testing.assert_allclose(metrics["loss"], np.mean(expected), rtol=1e-5)
    assert int(metrics["skipped"]) == 0 and int(new.step) == 1


@pytest.mark.parametrize("name", ["cfd", "cloth"])
def test_pushforward_depth_is_drawn_from_0_to_k_minus_1(name):
    """With a key, the scored call follows 0..k−1 frozen calls; depth 0 is the one-step
    loss (noisy input, noise-corrected target), depth k−1 the keyless pushforward."""
    sim, params, normalizers, fields, structure, weights, _ = _setup(name)
    args = (sim, params, normalizers, fields, structure, weights)
    one_step = unrolled_loss(*args, horizon=1)
    deepest = unrolled_loss(*args, horizon=3, mode="pushforward")
    # One compiled program for the 24 draws (eagerly, each call would trace and compile
    # its scans anew); the references stay eager.
    drawn_loss = jax.jit(lambda key: unrolled_loss(*args, horizon=3, mode="pushforward", rng=key))
    drawn = [float(drawn_loss(jax.random.key(i))) for i in range(24)]
    depth = [jax.random.randint(jax.random.key(i), (), 0, 3) for i in range(24)]
    assert {int(d) for d in depth} == {0, 1, 2}
    for value, d in zip(drawn, depth):
        if int(d) == 0:
            np.testing.assert_allclose(value, one_step, rtol=2e-4)
        if int(d) == 2:
            np.testing.assert_allclose(value, deepest, rtol=2e-4)
    assert len({round(v, 4) for v in drawn}) == 3  # three distinct depths were scored
