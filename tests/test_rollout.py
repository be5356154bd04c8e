"""Rollouts: scan equals a Python loop, boundaries hold, chunking is invisible."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meshsim
from meshsim.config import OptimizerConfig
from meshsim.graph.window import pad_window
from meshsim.rollout import rollout, rollout_step, rollout_trajectory
from meshsim.tasks import cfd_task, cloth_task
from meshsim.training.batches import dataset_budget, iter_batches
from meshsim.training.step import init_train_state, make_accumulate_step, make_optimizer
from tests.conftest import synthetic_cfd_trajectory, synthetic_cloth_trajectory

CASES = [(cfd_task(), synthetic_cfd_trajectory), (cloth_task(), synthetic_cloth_trajectory)]


def _setup(task, make):
    traj = make(seed=1)
    model = meshsim.MeshGraphNet(
        output_size=task.output_size, latent_size=16, num_message_passing_steps=2
    )
    sim = meshsim.Simulator(model, task)
    batch = next(iter_batches([traj], task, batch_size=1, budget=dataset_budget([traj], task)))
    state = init_train_state(sim, make_optimizer(OptimizerConfig()), jax.random.key(0))
    # Non-trivial normalizers: accumulate a few statistics.
    acc = make_accumulate_step(sim)
    for i in range(3):
        state = acc(state, batch, jax.random.key(i))
    return traj, sim, state


@pytest.mark.parametrize("task, make", CASES)
def test_scan_equals_python_loop(task, make):
    traj, sim, state = _setup(task, make)
    graph = task.structure(traj)
    start = task.order - 1
    window = pad_window(task.window(traj, start, graph), meshsim.PaddingBudget.fit(graph))
    fields = {k: jnp.asarray(v) for k, v in window.fields.items() if not k.startswith("target|")}
    pad_n = window.graph.num_nodes("mesh") - graph.num_nodes("mesh")
    truth = np.asarray(traj[task.state_field])
    prescribed = np.pad(truth[start + 1 : start + 6], ((0, 0), (0, pad_n), (0, 0)))
    args = (sim, state.params, state.normalizers)
    _, scanned = jax.jit(
        lambda f, p: rollout(*args, fields=f, structure=window.graph, prescribed=p)
    )(fields, prescribed)
    step = jax.jit(lambda f, p: rollout_step(*args, fields=f, structure=window.graph, prescribed=p))
    looped = []
    for k in range(5):
        fields, s = step(fields, prescribed[k])
        looped.append(s)
    np.testing.assert_allclose(scanned, np.stack(looped), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("task, make", CASES)
def test_chunking_is_invisible_and_boundaries_hold(task, make):
    traj, sim, state = _setup(task, make)
    one = rollout_trajectory(sim, state.params, state.normalizers, traj, chunk=100)
    chunked = rollout_trajectory(sim, state.params, state.normalizers, traj, chunk=3)
    np.testing.assert_allclose(chunked, one, rtol=1e-5, atol=1e-6)
    start = task.order - 1
    truth = np.asarray(traj[task.state_field])[start:]
    assert one.shape == truth.shape
    node_type = traj["node_type"][0, :, 0]
    prescribed = ~np.isin(node_type, task.loss_node_types)
    assert prescribed.any() and (~prescribed).any()
    # Prescribed nodes follow the ground truth exactly; simulated ones are predicted.
    np.testing.assert_array_equal(one[:, prescribed], truth[:, prescribed])
    assert not np.allclose(one[1:, ~prescribed], truth[1:, ~prescribed])


def test_rollout_rejects_bad_lengths():
    task, make = CASES[0]
    traj, sim, state = _setup(task, make)
    with pytest.raises(ValueError, match=r"steps: expected 1\.\.11 from frame 0, got 0"):
        rollout_trajectory(sim, state.params, state.normalizers, traj, steps=0)
    # Past the data only where the prescribed values are constant: here the inflow varies.
    ramp = 1.0 + 0.1 * np.arange(traj["velocity"].shape[0])[:, None, None]
    varying = dict(traj, velocity=(traj["velocity"] * ramp).astype(np.float32))
    with pytest.raises(
        ValueError, match=r"steps: expected 1\.\.11 from frame 0, got 50: .* changes by up to"
    ):
        rollout_trajectory(sim, state.params, state.normalizers, varying, steps=50)
