"""The data pipeline yields the right windows, masks and batches."""

import dataclasses

import jax
import numpy as np
import pytest

from meshsim import MeshGraphNet, Simulator
from meshsim.config import OptimizerConfig
from meshsim.graph.window import graph_batch_axis
from meshsim.tasks import cfd_task, cloth_task
from meshsim.training.batches import dataset_budget, iter_batches, prefetch
from meshsim.training.step import init_train_state, make_eval_loss, make_optimizer
from tests.conftest import synthetic_cfd_trajectory, synthetic_cloth_trajectory


@pytest.mark.parametrize(
    "task, make",
    [(cfd_task(), synthetic_cfd_trajectory), (cloth_task(), synthetic_cloth_trajectory)],
)
def test_windows_hold_the_right_frames(task, make):
    traj = make(seed=4)
    graph = task.structure(traj)
    state = traj[task.state_field]
    for t in task.window_times(state.shape[0]):
        w = task.window(traj, t, graph)
        np.testing.assert_array_equal(w.fields[task.state_field], state[t])
        np.testing.assert_array_equal(w.fields[f"target|{task.state_field}"], state[t + 1])
        if task.order == 2:
            np.testing.assert_array_equal(w.fields[f"prev|{task.state_field}"], state[t - 1])
    assert list(task.window_times(state.shape[0])) == list(
        range(task.order - 1, state.shape[0] - 1)
    )
    with pytest.raises(ValueError, match="t: expected in range"):
        task.window(traj, state.shape[0] - 1, graph)


def test_batch_windows_match_trajectories_through_the_masks():
    task = cfd_task()
    trajs = [synthetic_cfd_trajectory(nx=4, ny=4, steps=5, seed=s) for s in range(3)]
    budget = dataset_budget(trajs, task)
    seen = set()
    for batch in [
        b for _, b in zip(range(4), iter_batches(trajs, task, batch_size=3, budget=budget, seed=1))
    ]:
        for b in range(3):
            mask = batch.graph.node_sets["mesh"].mask[b]
            vel = batch.fields["velocity"][b][mask]
            match = [
                (i, t)
                for i, tr in enumerate(trajs)
                for t in range(4)
                if np.array_equal(tr["velocity"][t], vel)
            ]
            assert len(match) == 1
            i, t = match[0]
            np.testing.assert_array_equal(
                batch.fields["target|velocity"][b][mask], trajs[i]["velocity"][t + 1]
            )
            es = batch.graph.edge_sets["mesh"]
            assert es.mask[b].sum() == task.structure(trajs[i]).edge_sets["mesh"].num_edges
            seen.add(match[0])
    assert len(seen) == 12  # 4 batches of 3 = exactly one epoch of 12 windows


def test_prefetch_preserves_order_and_reraises():
    assert list(prefetch(iter(range(10)), size=3, transfer=None)) == list(range(10))

    def broken():
        yield 1
        raise RuntimeError("reader failed")

    it = prefetch(broken(), transfer=None)
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="reader failed"):
        next(it)


def test_mesh_structure_rejects_out_of_range_cells():
    traj = {"cells": np.array([[[0, 1, 5]]], np.int32), "mesh_pos": np.zeros((1, 4, 2))}
    with pytest.raises(ValueError, match="cells: node index 5 out of range for 4 nodes"):
        cfd_task().structure(traj)


def test_shared_structure_is_held_once_per_batch():
    """A task whose examples share one structure (the weather graph) batches its fields but
    keeps a single copy of the graph, and the train step runs on such a batch unchanged."""
    task = dataclasses.replace(cfd_task(), shared_structure=True)
    traj = synthetic_cfd_trajectory(nx=4, ny=4, steps=6, seed=0)
    budget = dataset_budget([traj], task)
    batch = next(iter_batches([traj], task, batch_size=3, budget=budget, seed=0))
    assert batch.graph.graph_mask.shape == (2,) and graph_batch_axis(batch) is None
    assert batch.fields["velocity"].shape == (3, budget.n_node["mesh"], 2)
    stacked = next(iter_batches([traj], cfd_task(), batch_size=3, budget=budget, seed=0))
    assert graph_batch_axis(stacked) == 0
    # Same windows, same loss, whether the structure is shared or stacked.
    model = MeshGraphNet(output_size=2, latent_size=8, num_message_passing_steps=1)
    tx = make_optimizer(OptimizerConfig())
    state = init_train_state(Simulator(model, task), tx, jax.random.key(0))
    shared = make_eval_loss(Simulator(model, task))(state, batch)
    per_example = make_eval_loss(Simulator(model, cfd_task()))(state, stacked)
    np.testing.assert_allclose(shared, per_example, rtol=1e-6)
