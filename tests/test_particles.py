"""The GNS particle task: edges rebuilt inside the step, history, noise, overflow, rollout.

The data is synthetic and exact: particles fly ballistically under gravity inside a
unit box (no collisions within the short trajectories), with a row of fixed wall
particles (type 1) along the bottom, so every quantity has a closed form.
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.spatial import cKDTree

from meshsim.graph import PaddingBudget
from meshsim.graph.window import pad_window, stack_windows
from meshsim.models import get_model
from meshsim.rollout import rollout_trajectory
from meshsim.simulator import Simulator
from meshsim.tasks import PARTICLES, ParticleTask, particle_task
from meshsim.tasks.particles import WALLS
from meshsim.training.step import init_train_state, make_train_step

RADIUS = 0.1
GRAVITY = -2e-4  # per frame²


def ballistic(seed: int = 0, frames: int = 14, fluid: int = 120, walls: int = 20):
    """(trajectory, meta) of free-flying particles plus fixed wall particles."""
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0.25, 0.75, (fluid, 2))
    v0 = rng.normal(0.0, 2e-3, (fluid, 2))
    t = np.arange(frames)[:, None, None]
    fly = x0 + v0 * t + 0.5 * np.array([0.0, GRAVITY]) * t * (t - 1)
    wall = np.stack([np.linspace(0.05, 0.95, walls), np.full(walls, 0.05)], axis=1)
    position = np.concatenate([fly, np.broadcast_to(wall, (frames, walls, 2))], axis=1)
    kind = np.concatenate([np.zeros(fluid, np.int32), np.ones(walls, np.int32)])
    meta = {
        "particles": {
            "dim": 2,
            "dt": 1.0,
            "bounds": [[0.0, 1.0], [0.0, 1.0]],
            "periodic": [False, False],
            "radius": RADIUS,
            "kinematic_types": [1],
            "walls": {"segments": [[[0.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]},
        }
    }
    trajectory = {
        "position": position.astype(np.float32),
        "particle_type": kind.reshape(1, -1, 1),
    }
    return trajectory, meta


def _window(task, trajectory, t, budget=None, horizon=1):
    graph = task.structure(trajectory)
    budget = budget or PaddingBudget.fit(graph)
    return pad_window(task.window(trajectory, t, graph, horizon=horizon), budget, task.node_set)


def _device(tree):
    return jax.tree_util.tree_map(jnp.asarray, tree)


def _built(task):
    """fields, structure -> the graph a step sees: dynamic edges, then features."""
    return lambda fields, structure: task.build_graph(
        fields, task.dynamic_structure(fields, structure)[0]
    )


def _simulator(task, latent=16, steps=2):
    model = get_model(
        "meshgraphnet",
        output_size=task.output_size,
        output_node_set=task.node_set,
        latent_size=latent,
        num_message_passing_steps=steps,
    )
    return Simulator(model=model, task=task)


def test_task_reads_its_geometry_from_meta():
    trajectory, meta = ballistic()
    task = particle_task(meta=meta)
    assert isinstance(task, ParticleTask)
    assert (task.radius, task.dim, task.kinematic_types) == (RADIUS, 2, (1,))
    assert task.periodic == (False, False) and len(task.walls) == 2
    # C = 5 velocities × 2 + 4 box distances + (distance, normal) to a wall + 9 types
    assert task.node_feature_sizes == {PARTICLES: 10 + 4 + 3 + 9, WALLS: 3}
    assert task.edge_types == {PARTICLES: (PARTICLES, PARTICLES, 3), WALLS: (WALLS, PARTICLES, 3)}
    assert task.dynamic_edge_sets == (PARTICLES, WALLS)
    with pytest.raises(ValueError, match="no 'particles' section"):
        particle_task(meta={"features": {}})


def test_edges_are_the_pairs_within_the_radius_of_the_current_state():
    trajectory, meta = ballistic()
    task = particle_task(meta=meta)
    for t in (5, 9):
        window = _window(task, trajectory, t)
        graph = jax.jit(_built(task))(*_device((window.fields, window.graph)))
        edges = graph.edge_sets[PARTICLES]
        mask = np.asarray(edges.mask)
        found = {
            (int(s), int(r))
            for s, r in zip(np.asarray(edges.senders)[mask], np.asarray(edges.receivers)[mask])
        }
        pairs = cKDTree(trajectory["position"][t]).query_pairs(RADIUS)
        assert found == {p for i, j in pairs for p in ((i, j), (j, i))}
        # features: relative displacement / R and its norm; padding slots are zero
        x = trajectory["position"][t]
        s, r = np.asarray(edges.senders)[mask], np.asarray(edges.receivers)[mask]
        expected = (x[s] - x[r]) / RADIUS
        features = np.asarray(edges.features)
        np.testing.assert_allclose(features[mask, :2], expected, atol=1e-5)
        np.testing.assert_allclose(features[mask, 2], np.linalg.norm(expected, axis=1), atol=1e-5)
        assert not features[~mask].any()
        assert int(edges.n_edge[0]) == mask.sum()


def test_node_features_are_velocity_history_wall_distances_and_type():
    trajectory, meta = ballistic()
    task = particle_task(meta=meta)
    t = 6
    window = _window(task, trajectory, t)
    graph = _built(task)(*_device((window.fields, window.graph)))
    nodes = np.asarray(graph.node_sets[PARTICLES].features)[: trajectory["position"].shape[1]]
    x = trajectory["position"].astype(np.float64)
    velocities = np.diff(x[t - 5 : t + 1], axis=0).swapaxes(0, 1).reshape(len(nodes), -1)
    np.testing.assert_allclose(nodes[:, :10], velocities, atol=1e-6)
    to_box = np.concatenate([x[t], 1.0 - x[t]], axis=1) / RADIUS
    np.testing.assert_allclose(nodes[:, 10:14], np.clip(to_box, -1, 1), atol=1e-5)
    # the wall particles along y = 0.05 are half a radius from the bottom segment
    walls = trajectory["particle_type"].reshape(-1) == 1
    np.testing.assert_allclose(nodes[walls, 14], 0.5, atol=1e-5)
    np.testing.assert_allclose(nodes[walls, 16], 1.0, atol=1e-6)  # normal +y, away from y = 0
    np.testing.assert_array_equal(nodes[:, 17:].argmax(1), trajectory["particle_type"].reshape(-1))


def test_wall_contact_edges_join_each_particle_near_a_wall_to_its_nearest_segment():
    trajectory, meta = ballistic()
    task = particle_task(meta=meta)
    window = _window(task, trajectory, 6)
    graph = _built(task)(*_device((window.fields, window.graph)))
    walls = graph.edge_sets[WALLS]
    mask = np.asarray(walls.mask)
    x = trajectory["position"][6].astype(np.float64)
    # segment 0 is y = 0, segment 1 is x = 0 (both long enough): distances y and x
    distance = np.stack([x[:, 1], x[:, 0]], axis=1)
    near = distance.min(1) < RADIUS
    receivers = np.asarray(walls.receivers)[mask]
    order = np.argsort(receivers)
    np.testing.assert_array_equal(receivers[order], np.where(near)[0])
    nearest = distance[near].argmin(1)  # ties (the corner particle): the first segment
    np.testing.assert_array_equal(np.asarray(walls.senders)[mask][order], nearest)
    to_wall = (
        np.where(nearest[:, None] == 0, [0.0, -1.0], [-1.0, 0.0]) * distance[near].min(1)[:, None]
    )
    features = np.asarray(walls.features)[mask][order]
    np.testing.assert_allclose(features[:, :2], to_wall / RADIUS, atol=1e-5)
    np.testing.assert_allclose(features[:, 2], distance[near].min(1) / RADIUS, atol=1e-5)
    nodes = np.asarray(graph.node_sets[WALLS].features)
    np.testing.assert_allclose(nodes[:2], [[10, 0, 10], [0, 10, 10]], atol=1e-5)


def test_true_accelerations_reproduce_the_trajectory_through_advance():
    """target() and integrate()/advance() are inverse, history shifting included."""
    trajectory, meta = ballistic()
    task = particle_task(meta=meta)
    fields = {
        k: jnp.asarray(v)
        for k, v in task.window(trajectory, 5, task.structure(trajectory)).fields.items()
    }
    x = trajectory["position"]
    for t in range(5, 12):
        fields["target|position"] = jnp.asarray(x[t + 1])
        accel = task.target(fields)
        np.testing.assert_allclose(accel[:120, 1], GRAVITY, atol=5e-7)  # float32 at |x| ~ 1
        nxt = task.integrate(fields, accel)
        fields = task.advance(fields, nxt, jnp.asarray(x[t + 1]))
        np.testing.assert_allclose(fields["position"], x[t + 1], atol=1e-6)
        np.testing.assert_allclose(fields["history|position"][:, 0], x[t - 4], atol=1e-6)


def test_predicted_positions_stay_in_the_container_unless_told_otherwise():
    trajectory, meta = ballistic()
    window = _window(particle_task(meta=meta), trajectory, 6)
    fields = _device(window.fields)
    down = jnp.zeros_like(fields["position"]).at[:, 1].set(-1.0)  # through the floor
    for contain in (True, False):
        task = particle_task(meta=meta, contain=contain)
        lo, hi = task.container  # the wall segments' extent: x ≥ 0, 0 ≤ y ≤ 1
        np.testing.assert_array_equal(lo, [0.0, 0.0])
        y = np.asarray(task.integrate(fields, down))[:140, 1]
        assert (y.min() == 0.0) == contain and (y.min() < -0.5) == (not contain)


def test_random_walk_noise():
    """Velocity noise of std σ/√C per step, accumulated: the newest input velocity has
    std σ, the oldest position none, walls none; the target follows the newest
    position, so integrating the target acceleration lands on the true next position
    moved by that position's noise."""
    trajectory, meta = ballistic(fluid=2000, walls=20)
    task = particle_task(meta=meta, noise_std=1e-3)
    window = _window(task, trajectory, 6)
    fields = _device(window.fields)
    mask = jnp.asarray(window.graph.node_sets[PARTICLES].mask)
    noisy = task.add_noise(fields, jax.random.key(0), mask)
    history = task.positions_history(fields)
    moved = np.asarray(task.positions_history(noisy) - history)
    fluid = np.asarray(window.fields["particle_type"] == 0) & np.asarray(mask)
    assert not moved[:, 0].any()  # the oldest position
    assert not moved[~fluid].any()  # walls and padding
    newest_velocity = moved[fluid, -1] - moved[fluid, -2]
    assert abs(newest_velocity.std() - 1e-3 / np.sqrt(5)) < 1e-4
    assert abs(moved[fluid, -1].std() - 1e-3) < 1e-4  # the walk's end: σ
    landed = task.integrate(noisy, task.target(noisy))
    np.testing.assert_allclose(landed, fields["target|position"] + moved[:, -1], atol=1e-6)


def test_training_overflow_is_never_applied_and_padding_does_not_change_the_loss():
    trajectory, meta = ballistic()
    task = particle_task(meta=meta, noise_std=0.0)
    sim = _simulator(task)
    tx = optax.adam(1e-3)
    state = init_train_state(sim, tx, jax.random.key(0))
    graph = task.structure(trajectory)
    fit = PaddingBudget.fit(graph)
    big = dataclasses.replace(
        fit,
        n_node={**fit.n_node, PARTICLES: fit.n_node[PARTICLES] + 64},
        n_edge={**fit.n_edge, PARTICLES: 4096, WALLS: fit.n_edge[WALLS] + 64},
    )
    step = make_train_step(sim, tx)
    losses = []
    for budget in (fit, big):
        batch = stack_windows([_window(task, trajectory, t, budget) for t in (5, 8)])
        new, metrics = step(jax.tree_util.tree_map(jnp.copy, state), batch, jax.random.key(1))
        assert int(metrics["overflow"]) == 0
        losses.append(float(metrics["loss"]))
        needed = int(metrics["edges_needed/particles"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    pairs = max(2 * len(cKDTree(trajectory["position"][t]).query_pairs(RADIUS)) for t in (5, 8))
    assert needed == pairs
    small = dataclasses.replace(fit, n_edge={**fit.n_edge, PARTICLES: 64})
    windows = [
        pad_window(task.window(trajectory, t, _cut(graph, 64)), small, task.node_set)
        for t in (5, 8)
    ]
    before = jax.tree_util.tree_map(np.asarray, state.params)
    new, metrics = step(state, stack_windows(windows), jax.random.key(1))
    assert int(metrics["overflow"]) == 1 and int(metrics["edges_needed/particles"]) == pairs
    after = jax.tree_util.tree_map(np.asarray, new.params)
    assert all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after))
    )


def _cut(graph, slots):
    edges = graph.edge_sets[PARTICLES]
    cut = edges.replace(
        features=edges.features[:slots],
        senders=edges.senders[:slots],
        receivers=edges.receivers[:slots],
        mask=edges.mask[:slots],
        n_edge=np.array([slots], np.int32),
    )
    return graph.replace(edge_sets={**graph.edge_sets, PARTICLES: cut})


def test_rollout_grows_a_short_edge_budget_and_matches_a_roomy_one(caplog):
    trajectory, meta = ballistic()
    task = particle_task(meta=meta)
    sim = _simulator(task)
    state = init_train_state(sim, optax.adam(1e-3), jax.random.key(0))
    roomy = rollout_trajectory(sim, state.params, state.normalizers, trajectory, chunk=4)

    class Tight(ParticleTask):  # sizes its edge slots far too small
        def edge_capacity(self, positions):
            return 64

    tight = Tight(**{f.name: getattr(task, f.name) for f in dataclasses.fields(task)})
    with caplog.at_level(logging.WARNING, logger="meshsim.rollout"):
        grown = rollout_trajectory(
            dataclasses.replace(sim, task=tight),
            state.params,
            state.normalizers,
            trajectory,
            chunk=4,
        )
    assert "growing the budget" in caplog.text
    np.testing.assert_allclose(grown, roomy, atol=1e-5)
    # kinematic particles follow the data exactly
    walls = trajectory["particle_type"].reshape(-1) == 1
    np.testing.assert_array_equal(grown[:, walls], trajectory["position"][5:, walls])


def test_predictions_are_permutation_equivariant():
    trajectory, meta = ballistic()
    task = particle_task(meta=meta)
    sim = _simulator(task)
    state = init_train_state(sim, optax.adam(1e-3), jax.random.key(3))
    # non-trivial statistics: accumulate once
    perm = np.random.default_rng(1).permutation(trajectory["position"].shape[1])
    shuffled = {
        "position": trajectory["position"][:, perm],
        "particle_type": trajectory["particle_type"][:, perm],
    }
    a = rollout_trajectory(sim, state.params, state.normalizers, trajectory, steps=3)
    b = rollout_trajectory(sim, state.params, state.normalizers, shuffled, steps=3)
    np.testing.assert_allclose(a[:, perm], b, atol=1e-5)


def test_periodic_edges_use_the_minimum_image():
    rng = np.random.default_rng(2)
    position = rng.uniform(0, 1, (8, 300, 2)).astype(np.float32)
    meta = {
        "particles": {
            "dim": 2,
            "bounds": [[0.0, 1.0], [0.0, 1.0]],
            "periodic": [True, True],
            "radius": 0.08,
        }
    }
    task = particle_task(meta=meta)
    trajectory = {"position": position, "particle_type": np.zeros((1, 300, 1), np.int32)}
    window = _window(task, trajectory, 6)
    graph = _built(task)(*_device((window.fields, window.graph)))
    edges = graph.edge_sets[PARTICLES]
    mask = np.asarray(edges.mask)
    pairs = cKDTree(position[6], boxsize=1.0).query_pairs(0.08)
    assert mask.sum() == 2 * len(pairs)
    assert np.asarray(edges.features)[mask, 2].max() <= 1.0 + 1e-5  # |rel| / R ≤ 1
    nodes = np.asarray(graph.node_sets[PARTICLES].features)
    assert not nodes[:300, 10:14].any()  # no box walls on periodic axes


def test_graph_parallelism_is_refused_with_the_reason():
    trajectory, meta = ballistic()
    task = particle_task(meta=meta)
    with pytest.raises(ValueError, match="rebuilt every step"):
        task.partition_positions(trajectory, task.structure(trajectory))
