"""The data pipeline yields the right windows, masks and batches."""

import numpy as np
import pytest

from meshsim.data.pipeline import (
    dataset_budget,
    iter_batches,
    prefetch,
    structure_graph,
    trajectory_graph,
)
from meshsim.tasks import cfd_task, cloth_task
from tests.conftest import synthetic_cfd_trajectory, synthetic_cloth_trajectory


@pytest.mark.parametrize(
    "task, make",
    [(cfd_task(), synthetic_cfd_trajectory), (cloth_task(), synthetic_cloth_trajectory)],
)
def test_windows_hold_the_right_frames(task, make):
    traj = make(seed=4)
    graph = trajectory_graph(traj)
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
    budget = dataset_budget(trajs)
    seen = set()
    for batch in [
        b for _, b in zip(range(4), iter_batches(trajs, task, batch_size=3, budget=budget, seed=1))
    ]:
        for b in range(3):
            mask = batch.graph.node_mask[b]
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
            assert es.mask[b].sum() == len(
                structure_graph(trajs[i]["cells"], 16).edge_sets["mesh"].senders
            )
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


def test_structure_graph_rejects_out_of_range_cells():
    with pytest.raises(ValueError, match="cells: node index 5 out of range for 4 nodes"):
        structure_graph(np.array([[0, 1, 5]], np.int32), 4)
