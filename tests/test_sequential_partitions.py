"""Sequential partitions on one device (`meshsim.parallel.sequential`).

A channel mesh with a cylinder is cut into P parts with K-hop halos. The parts'
node and edge sets are checked against a breadth-first search written here; the
network run part by part must equal the whole graph on every real node (outputs to
1e-6, gradients of a masked loss to 1e-5), with padding in the global graph; a halo
one hop too narrow must not. A training run with `parallel.partitions=2` logs the
losses of the one-part run, and bad settings are refused by name.
"""

import json
import os

import jax
import jax.numpy as jnp
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
)
from meshsim.graph.padding import PaddingBudget, pad
from meshsim.meshes import channel_mesh
from meshsim.models import MeshGraphNet
from meshsim.parallel.sequential import (
    SequentialPartition,
    make_sequential_partition,
    message_passing_hops,
    sequential_parts,
)
from tests.conftest import synthetic_cfd_trajectory

STEPS = 3  # message-passing steps of the test network: the halo is 3 hops wide


@pytest.fixture(scope="module")
def channel():
    """(graph, padded graph, positions [N, 2], model, params) on a channel mesh."""
    mesh = channel_mesh(resolution=0.35)
    senders, receivers = meshsim.edges_from_cells(mesh.cells)
    pos = mesh.points.astype(np.float32)
    rel = pos[senders] - pos[receivers]
    edges = np.concatenate([rel, np.linalg.norm(rel, axis=1, keepdims=True)], 1)
    nodes = np.random.default_rng(0).normal(size=(mesh.num_nodes, 5)).astype(np.float32)
    graph = meshsim.make_graph(nodes, {"mesh": (edges, senders, receivers)})
    budget = PaddingBudget(
        n_node={"mesh": graph.num_nodes("mesh") + 11},
        n_edge={"mesh": len(senders) + 17},
        n_graph=2,
    )
    model = MeshGraphNet(
        output_size=2, latent_size=16, num_message_passing_steps=STEPS, mlp_hidden_layers=1
    )
    # Random weights with non-trivial biases and scales (no compiled init: seconds).
    rng = np.random.default_rng(1)
    shapes = jax.eval_shape(model.init, jax.random.key(0), graph)
    params = jax.tree_util.tree_map(
        lambda x: (rng.normal(size=x.shape) / np.sqrt(x.shape[0])).astype(np.float32), shapes
    )
    return graph, pad(graph, budget), mesh.points, model, params


def _within(senders, receivers, seeds, hops):
    """Nodes from which a seed is reachable along ≤ hops directed edges (plain BFS)."""
    into = {}
    for s, r in zip(senders.tolist(), receivers.tolist()):
        into.setdefault(r, []).append(s)
    reached, frontier = set(seeds), set(seeds)
    for _ in range(hops):
        frontier = {s for r in frontier for s in into.get(r, [])} - reached
        reached |= frontier
    return reached


@pytest.mark.parametrize("num_parts", [2, 3])
def test_parts_hold_the_k_hop_neighbourhood_of_their_owned_nodes(channel, num_parts):
    graph, _, positions, model, _ = channel
    assert message_passing_hops(model, graph) == STEPS
    sp = make_sequential_partition(model, graph, {"mesh": positions}, num_parts).parts
    es = graph.edge_sets["mesh"]
    senders, receivers = np.asarray(es.senders), np.asarray(es.receivers)
    owner = np.asarray(sp.owner_flat) // sp.num_local()
    n = graph.num_nodes("mesh")
    assert sorted(np.asarray(sp.owner_flat).tolist()) == sorted(set(sp.owner_flat.tolist()))
    assert np.bincount(owner).max() - np.bincount(owner).min() <= 1  # balanced to ±1
    index, edge_index = np.asarray(sp.node_index["mesh"]), np.asarray(sp.edge_index["mesh"])
    for p in range(num_parts):
        owned = np.flatnonzero(owner == p)
        rows = index[p][index[p] >= 0]
        assert rows[: owned.size].tolist() == owned.tolist()  # owned rows first
        assert set(rows.tolist()) == _within(senders, receivers, owned.tolist(), STEPS)
        inner = _within(senders, receivers, owned.tolist(), STEPS - 1)
        want = {i for i, r in enumerate(receivers.tolist()) if r in inner}
        assert set(edge_index[p][edge_index[p] >= 0].tolist()) == want
        assert rows.size < n  # a part is smaller than the graph


@pytest.mark.parametrize("num_parts", [2, 3, 4])
def test_parts_in_turn_equal_the_whole_graph(channel, num_parts):
    graph, padded, positions, model, params = channel
    partition = make_sequential_partition(model, graph, {"mesh": positions}, num_parts)
    n = graph.num_nodes("mesh")
    full = np.asarray(model.apply(params, padded))[:n]
    out = np.asarray(jax.jit(lambda p, g: partition.apply(model, p, g))(params, padded))
    assert out.shape == (padded.num_nodes("mesh"), 2)
    assert np.all(out[n:] == 0)  # padding rows
    scale = max(1.0, float(np.abs(full).max()))
    assert np.abs(out[:n] - full).max() <= 1e-6 * scale


def test_a_halo_one_hop_too_narrow_differs(channel):
    graph, padded, positions, model, params = channel
    narrow = sequential_parts(graph, positions, 2, STEPS - 1, output_node_set="mesh")
    n = graph.num_nodes("mesh")
    full = np.asarray(model.apply(params, padded))[:n]
    out = np.asarray(SequentialPartition(narrow).apply(model, params, padded))[:n]
    assert np.abs(out - full).max() > 1e-3


def test_gradients_equal_the_whole_graph(channel):
    graph, padded, positions, model, params = channel
    partition = make_sequential_partition(model, graph, {"mesh": positions}, 3)
    n = graph.num_nodes("mesh")
    target = jax.random.normal(jax.random.key(1), (padded.num_nodes("mesh"), 2))
    weights = jnp.asarray(padded.node_sets["mesh"].mask, jnp.float32)

    def loss(params, apply):
        err = jnp.sum(jnp.square(apply(params, padded) - target), -1)
        return jnp.sum(jnp.where(weights > 0, err, 0.0)) / jnp.sum(weights)

    want = jax.jit(jax.grad(lambda p: loss(p, model.apply)))(params)
    got = jax.jit(jax.grad(lambda p: loss(p, lambda q, g: partition.apply(model, q, g))))(params)
    diffs = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), want, got)
    assert max(jax.tree_util.tree_leaves(diffs)) < 1e-5
    assert n < padded.num_nodes("mesh")


def test_training_with_partitions_logs_the_one_part_losses(tmp_path):
    from meshsim.data import infer_meta, write_hdf5_split
    from meshsim.runs import run_training

    data = str(tmp_path / "data")
    train = [synthetic_cfd_trajectory(nx=9, ny=7, seed=i, steps=6) for i in range(2)]
    write_hdf5_split(data, "train", train, infer_meta(train[0], dt=0.01))
    base = ExperimentConfig(
        name="seq",
        task="cfd",
        data=DataConfig(path=data, batch_size=2, pool_size=2, prefetch=1),
        model=ModelConfig(latent_size=16, num_message_passing_steps=2, mlp_hidden_layers=1),
        train=TrainConfig(
            steps=2,
            accumulate_steps=1,
            log_every=1,
            eval_every=0,
            checkpoint_every=3,
            optimizer=OptimizerConfig(learning_rate=1e-3),
        ),
    )
    losses, params = {}, {}
    for p in (1, 2):
        workdir = str(tmp_path / f"p{p}")
        state = run_training(
            apply_overrides(base, [f"parallel.partitions={p}"]), workdir, progress=False
        )
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            losses[p] = [r["loss"] for r in map(json.loads, f) if "loss" in r]
        params[p] = jax.tree_util.tree_leaves(state.params)
    assert len(losses[2]) == len(losses[1]) == 1  # 2 steps, 1 statistics-only
    np.testing.assert_allclose(losses[2], losses[1], rtol=1e-5)
    assert max(float(np.abs(a - b).max()) for a, b in zip(params[1], params[2])) < 1e-4


def test_bad_settings_are_refused_by_name(channel):
    graph, _, positions, model, _ = channel
    n = graph.num_nodes("mesh")
    with pytest.raises(ValueError, match=rf"parallel.partitions={n + 1}: num_parts.*{n} nodes"):
        make_sequential_partition(model, graph, {"mesh": positions}, n + 1)
    with pytest.raises(ValueError, match="positions"):
        make_sequential_partition(model, graph, {"grid": positions}, 2)
    with pytest.raises(ValueError, match="parallel.partitions: expected an int ≥ 1, got 0"):
        apply_overrides(ExperimentConfig(), ["parallel.partitions=0"])
    with pytest.raises(ValueError, match=r"parallel.partitions=2: .*parallel.graph=2"):
        apply_overrides(ExperimentConfig(), ["parallel.graph=2", "parallel.partitions=2"])
    fgn = ["model.ensemble.kind=fgn", "model.ensemble.members=2", "parallel.partitions=2"]
    with pytest.raises(ValueError, match=r"parallel.partitions=2: .*FGN"):
        apply_overrides(ExperimentConfig(), fgn)
