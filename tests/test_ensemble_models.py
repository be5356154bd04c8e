"""Stochastic models and CRPS training (issue 25): FGN-style conditional LayerNorms and
perturbed initial states as configuration of the staged network, the CRPS train step
over M members, and members sharded over an `ensemble` device-mesh axis."""

import json
import os
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meshsim
from meshsim.config import (
    EnsembleConfig,
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
    ParallelConfig,
    apply_overrides,
)
from meshsim.graph import placeholder_graph
from meshsim.graph.window import graph_batch_axis
from meshsim.models import GraphCast, MeshGraphNet, count_params
from meshsim.models.ensemble import Ensemble, member_keys, network_noise
from meshsim.tasks import cfd_task
from meshsim.training.batches import dataset_budget, iter_batches
from meshsim.training.crps import crps_loss
from meshsim.training.ensemble_loss import ensemble_loss, member_inputs
from meshsim.training.step import _noisy_fields, _prepare, init_train_state, make_optimizer
from tests.conftest import run_on_cpu_devices, synthetic_cfd_trajectory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _graphcast_graph(rng):
    graph = placeholder_graph(
        {"grid": 5, "mesh": 7},
        {
            "grid2mesh": ("grid", "mesh", 4),
            "mesh": ("mesh", "mesh", 4),
            "mesh2grid": ("mesh", "grid", 4),
        },
    )
    keys = iter(jax.random.split(rng, 8))
    return graph.replace(
        node_sets={
            k: ns.replace(features=jax.random.normal(next(keys), ns.features.shape))
            for k, ns in graph.node_sets.items()
        },
        edge_sets={
            k: es.replace(features=jax.random.normal(next(keys), es.features.shape))
            for k, es in graph.edge_sets.items()
        },
    )


def _mgn_graph(rng):
    graph = placeholder_graph({"mesh": 6}, {"mesh": ("mesh", "mesh", 3)})
    a, b = jax.random.split(rng)
    ns, es = graph.node_sets["mesh"], graph.edge_sets["mesh"]
    return graph.replace(
        node_sets={"mesh": ns.replace(features=jax.random.normal(a, ns.features.shape))},
        edge_sets={"mesh": es.replace(features=jax.random.normal(b, es.features.shape))},
    )


NETWORKS = {
    "graphcast": (
        lambda **kw: GraphCast(output_size=3, latent_size=8, num_message_passing_steps=2, **kw),
        _graphcast_graph,
    ),
    "meshgraphnet": (
        lambda **kw: MeshGraphNet(output_size=2, latent_size=8, num_message_passing_steps=2, **kw),
        _mgn_graph,
    ),
}


def _with_deterministic_params(fgn_params, det_params):
    """The FGN network's parameters with every shared leaf taken from the deterministic
    network (the noise maps stay as initialised)."""
    flat = dict(jax.tree_util.tree_flatten_with_path(fgn_params)[0])
    for path, leaf in jax.tree_util.tree_flatten_with_path(det_params)[0]:
        assert flat[path].shape == leaf.shape, path
        flat[path] = leaf
    treedef = jax.tree_util.tree_structure(fgn_params)
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(fgn_params)[0]]
    return jax.tree_util.tree_unflatten(treedef, [flat[p] for p in paths])


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_fgn_network_at_init_computes_the_deterministic_function(name):
    build, make_graph = NETWORKS[name]
    graph = make_graph(jax.random.key(1))
    det, fgn = build(), build(noise_size=4)
    det_params = det.init(jax.random.key(0), graph)
    fgn_params = _with_deterministic_params(fgn.init(jax.random.key(5), graph), det_params)
    extra = count_params(fgn_params) - count_params(det_params)
    names = {str(p[-2]) for p, _ in jax.tree_util.tree_flatten_with_path(fgn_params)[0]}
    assert extra > 0 and any("noise_scale" in n for n in names)
    assert not any(
        "noise" in str(p) for p, _ in jax.tree_util.tree_flatten_with_path(det_params)[0]
    )
    want = det.apply(det_params, graph)
    for seed in range(3):
        z = jax.random.normal(jax.random.key(10 + seed), (4,))
        np.testing.assert_array_equal(fgn.apply(fgn_params, graph, z), want)
    # Once the noise maps are not zero, different noise gives different outputs.
    moved = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.3 if "noise_" in str(p) else x, fgn_params
    )
    a = fgn.apply(moved, graph, jnp.ones(4))
    b = fgn.apply(moved, graph, -jnp.ones(4))
    assert float(jnp.max(jnp.abs(a - b))) > 1e-3


def test_deterministic_network_refuses_noise_and_blocks_without_noise_are_refused():
    graph = _mgn_graph(jax.random.key(0))
    det = NETWORKS["meshgraphnet"][0]()
    params = det.init(jax.random.key(0), graph)
    with pytest.raises(ValueError, match="noise"):
        det.apply(params, graph, jnp.zeros(4))
    with pytest.raises(ValueError, match="noise_size"):
        MeshGraphNet(output_size=2, noise_size=4, block=meshsim.models.BLOCKS["transformer"])


def test_default_config_builds_the_unchanged_network():
    from meshsim.runs.build import build_simulator

    config = ExperimentConfig(model=ModelConfig(latent_size=8, num_message_passing_steps=1))
    sim = build_simulator(config, None)
    assert sim.ensemble is None and sim.model.noise_size == 0
    fgn = apply_overrides(
        config,
        ["model.ensemble.members=4", "model.ensemble.kind=fgn", "model.ensemble.noise_size=3"],
    )
    sim_fgn = build_simulator(fgn, None)
    assert sim_fgn.members == 4 and sim_fgn.model.noise_size == 3
    det_count = count_params(sim.init_params(jax.random.key(0)))
    assert count_params(sim_fgn.init_params(jax.random.key(0))) > det_count
    initial = build_simulator(
        apply_overrides(config, ["model.ensemble.members=2", "model.ensemble.kind=initial"]), None
    )
    assert initial.model.noise_size == 0
    assert count_params(initial.init_params(jax.random.key(0))) == det_count


def test_ensemble_settings_are_validated_by_name():
    from meshsim.runs.build import build_simulator

    no_kind = ExperimentConfig(model=ModelConfig(ensemble=EnsembleConfig(members=4)))
    with pytest.raises(ValueError, match="model.ensemble.kind"):
        build_simulator(no_kind, None)
    with pytest.raises(ValueError, match="model.ensemble.kind"):
        EnsembleConfig(members=2, kind="diffusion")
    with pytest.raises(ValueError, match="model.ensemble.alpha"):
        EnsembleConfig(members=2, kind="fgn", alpha=1.5)
    with pytest.raises(ValueError, match="model.ensemble.members"):
        EnsembleConfig(members=0)
    from meshsim.parallel.placement import make_placement

    with pytest.raises(ValueError, match="parallel.ensemble=2: members are split"):
        make_placement(ParallelConfig(ensemble=2, backend="pmap"), batch_size=1)
    with pytest.raises(ValueError, match="model.ensemble.initial_std"):
        Ensemble(members=2, kind="initial", initial_std=-1.0)


def test_fgn_plus_initial_draws_both_a_noise_and_a_perturbed_state_per_member():
    sim, _, state, batch = _cfd_setup("fgn+initial", members=3, initial_std=0.5)
    assert sim.model.noise_size == 4
    keys = jax.random.split(jax.random.key(4), 2)
    inputs = member_inputs(sim, state.normalizers, batch, batch.fields, keys, calls=2)
    assert inputs["noise"].shape == (2, 3, 2, 4)
    field = sim.task.state_field
    states = np.asarray(inputs["state"])  # [B, M, N, d]
    assert states.shape == (2, 3, *batch.fields[field].shape[1:])
    # each member starts from its own state; a fixed member's noise and state match the
    # kinds alone (same keys)
    assert float(np.abs(states[:, 0] - states[:, 1]).max()) > 0
    for kind in ("fgn", "initial"):
        alone, _, _, _ = _cfd_setup(kind, members=3, initial_std=0.5)
        one = member_inputs(alone, state.normalizers, batch, batch.fields, keys, calls=2)
        key = "noise" if kind == "fgn" else "state"
        np.testing.assert_array_equal(np.asarray(one[key]), np.asarray(inputs[key]))


@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
def test_fgn_noise_is_correlated_between_calls_by_noise_correlation(rho):
    ens = Ensemble(members=2, kind="fgn", noise_size=2000, noise_correlation=rho)
    key = member_keys(jax.random.key(0), 2)[1]
    calls = np.stack([np.asarray(network_noise(ens, key, c)) for c in range(4)])
    # every call's noise is N(0, I); two calls' noises correlate by rho
    assert abs(calls.std() - 1.0) < 0.05
    for a, b in ((0, 1), (1, 2), (0, 3)):
        assert abs(np.corrcoef(calls[a], calls[b])[0, 1] - rho) < 0.06, (a, b)
    if rho == 1.0:
        np.testing.assert_allclose(calls, np.broadcast_to(calls[0], calls.shape), atol=1e-6)
    with pytest.raises(ValueError, match="model.ensemble.noise_correlation"):
        Ensemble(members=2, kind="fgn", noise_correlation=1.5)


def _cfd_setup(kind, members=4, **ensemble):
    task = cfd_task()
    trajs = [synthetic_cfd_trajectory(seed=i) for i in range(2)]
    batch = next(iter_batches(trajs, task, batch_size=2, budget=dataset_budget(trajs, task)))
    ens = Ensemble(members=members, kind=kind, noise_size=4, **ensemble)
    model = MeshGraphNet(
        output_size=2, latent_size=8, num_message_passing_steps=1, noise_size=ens.network_noise_size
    )
    sim = meshsim.Simulator(model, task, ensemble=ens)
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-3))
    state = init_train_state(sim, tx, jax.random.key(0))
    return sim, tx, state, batch


@pytest.mark.parametrize(
    "kind, extra",
    [("fgn", {}), ("initial", {"initial_std": 0.0}), ("fgn+initial", {"initial_std": 0.0})],
)
def test_identical_members_score_their_mean_absolute_error(kind, extra):
    # Members that cannot differ (FGN maps at zero; no initial perturbation): the fair
    # CRPS is the absolute error of the one deterministic prediction.
    sim, _, state, batch = _cfd_setup(kind, loss="fair", **extra)
    fields = _noisy_fields(sim, batch, jax.random.key(3), None)
    features, targets, weights = _prepare(sim, batch._replace(fields=fields), None)
    keys = jax.random.split(jax.random.key(4), 2)
    # Jitted: one compiled program each (eagerly, every scan is traced and compiled anew).
    loss = jax.jit(ensemble_loss, static_argnums=0)(
        sim, state.params, state.normalizers, batch, fields, weights, keys
    )
    norm = meshsim.normalization
    pred = jax.jit(
        jax.vmap(
            lambda f, g: sim.apply(state.params, state.normalizers, g.with_features(f)),
            in_axes=(0, graph_batch_axis(batch)),
        )
    )(features, batch.graph)
    error = jnp.abs(pred - norm.normalize(state.normalizers.output, targets)).sum(-1)
    want = jnp.sum(error * weights) / jnp.sum(weights)
    np.testing.assert_allclose(loss, want, rtol=1e-5)


def test_crps_over_members_matches_members_predicted_one_by_one():
    sim, _, state, batch = _cfd_setup("fgn", members=3, loss="afcrps", alpha=0.9)
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.2 if "noise_" in str(p) else x, state.params
    )
    fields = _noisy_fields(sim, batch, jax.random.key(3), None)
    features, targets, weights = _prepare(sim, batch._replace(fields=fields), None)
    keys = jax.random.split(jax.random.key(4), 2)
    loss = jax.jit(
        lambda p: ensemble_loss(sim, p, state.normalizers, batch, fields, weights, keys)
    )(params)
    target = meshsim.normalization.normalize(state.normalizers.output, targets)
    # One compiled member prediction for the 2 × 3 calls (eagerly, each call would trace
    # and compile the processor's scan anew).
    member = jax.jit(
        lambda graph, key: sim.apply(
            params, state.normalizers, graph, network_noise(sim.ensemble, key)
        )
    )
    per_example, totals = [], []
    for b in range(2):
        structure = batch.graph
        if graph_batch_axis(batch) == 0:
            structure = jax.tree_util.tree_map(lambda x, b=b: x[b], structure)
        graph = structure.with_features(jax.tree_util.tree_map(lambda x, b=b: x[b], features))
        members = jnp.stack([member(graph, k) for k in member_keys(keys[b], 3)])
        assert float(jnp.std(members, axis=0).max()) > 1e-4  # the members differ
        cw = jnp.ones(2)
        per_example.append(crps_loss(members, target[b], weights[b], cw, kind="afcrps", alpha=0.9))
        totals.append(jnp.sum(weights[b]))
    want = sum(p * t for p, t in zip(per_example, totals)) / sum(totals)
    np.testing.assert_allclose(loss, want, rtol=1e-5)


def test_initial_state_members_differ_and_unrolled_ensembles_train():
    sim, tx, state, _ = _cfd_setup("initial", initial_std=0.5)
    task = sim.task
    trajs = [synthetic_cfd_trajectory(seed=i) for i in range(2)]
    budget = dataset_budget(trajs, task)
    batch = next(iter_batches(trajs, task, batch_size=2, budget=budget, horizon=2))
    step = meshsim.training.make_train_step(sim, tx, horizon=2)
    losses = []
    for i in range(4):
        state, metrics = step(state, batch, jax.random.key(i))
        assert int(metrics["skipped"]) == 0
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses))
    fields = jax.tree_util.tree_map(lambda x: x[0], batch.fields)
    structure = batch.graph
    if graph_batch_axis(batch) == 0:
        structure = jax.tree_util.tree_map(lambda x: x[0], structure)
    a, b = (
        sim.member_fields(state.normalizers, fields, structure, k)["velocity"]
        for k in member_keys(jax.random.key(0), 2)
    )
    assert float(jnp.max(jnp.abs(a - b))) > 0
    with pytest.raises(ValueError, match="unroll_mode"):
        meshsim.training.make_train_step(sim, tx, horizon=2, mode="pushforward")


def test_weather_preset_with_four_members_lowers_its_crps(tmp_path):
    pytest.importorskip("xarray")
    from meshsim.cli import main
    from tests.wb2_data import wb2_era5_like, write_wb2

    data = tmp_path / "wx"
    os.makedirs(data)
    start = np.datetime64("2016-01-01", "ns")
    times = np.arange(start, start + np.timedelta64(2, "D"), np.timedelta64(6, "h"))
    write_wb2(wb2_era5_like(resolution=45.0, times=times, seed=1), data / "train.zarr")
    sets = [
        f"data.path={data}",
        "data.batch_size=2",
        "task.options.mesh_splits=0",
        "model.latent_size=16",
        "model.num_message_passing_steps=1",
        "model.ensemble.members=4",
        "model.ensemble.kind=fgn",
        "model.ensemble.noise_size=4",
        "train.steps=40",
        "train.unroll_steps=1",
        "train.log_every=10",
        "train.checkpoint_every=40",
        "train.optimizer.learning_rate=3e-3",
    ]
    workdir = tmp_path / "run"
    preset = os.path.join(ROOT, "experiments", "weather_shallow_water.py")
    argv = ["train", "--config", preset, "--workdir", str(workdir)]
    assert main([*argv, *[f"--set={s}" for s in sets]]) == 0
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    losses = [json.loads(x)["loss"] for x in lines if '"loss"' in x]
    assert len(losses) >= 3
    assert losses[-1] < 0.8 * losses[0], losses


SHARDED = textwrap.dedent(
    """
    import jax, numpy as np, optax
    import meshsim
    from meshsim.config import ParallelConfig
    from meshsim.models.ensemble import Ensemble
    from meshsim.parallel.placement import make_placement
    from meshsim.tasks import cfd_task
    from meshsim.training.batches import dataset_budget, iter_batches
    from meshsim.training.step import init_train_state, make_train_step
    from tests.conftest import synthetic_cfd_trajectory

    assert jax.device_count() == 4, jax.devices()
    task = cfd_task()
    trajs = [synthetic_cfd_trajectory(seed=i) for i in range(2)]
    batch = next(iter_batches(trajs, task, batch_size=2, budget=dataset_budget(trajs, task)))
    for kind in ("fgn", "initial", "fgn+initial"):
        ens = Ensemble(members=4, kind=kind, noise_size=4, initial_std=0.3)
        model = meshsim.MeshGraphNet(output_size=2, latent_size=8, num_message_passing_steps=2,
                                     noise_size=ens.network_noise_size)
        sim = meshsim.Simulator(model, task, ensemble=ens)
        # plain gradient descent with rate 1: a step's parameter change is its gradient
        # (Adam's first step, g / |g|, would magnify rounding in near-zero gradients)
        tx = optax.sgd(1.0)
        state0 = init_train_state(sim, tx, jax.random.key(0))
        # the noise maps away from zero, so the members differ
        state0 = state0.replace(params=jax.tree_util.tree_map_with_path(
            lambda p, x: x + 0.2 if "noise_" in str(p) else x, state0.params))
        key = jax.random.key(1)
        ref_step = make_train_step(sim, tx)
        state0 = jax.device_get(state0)  # host copies: each step donates its own
        one = jax.device_put(batch, jax.devices()[0])
        ref_state, ref = ref_step(jax.device_put(state0, jax.devices()[0]), one, key)
        parallel = ParallelConfig(data=1, ensemble=4)
        placement = make_placement(parallel, batch_size=2)
        assert placement.ensemble == 4 and placement.data == 1
        step = placement.train_step(sim, tx)
        state, m = step(placement.place_state(state0), placement.place_batch(batch), key)
        np.testing.assert_allclose(m["loss"], ref["loss"], rtol=1e-5)
        np.testing.assert_allclose(m["grad_norm"], ref["grad_norm"], rtol=1e-5)
        before = jax.tree_util.tree_leaves(state0.params)
        after = jax.tree_util.tree_leaves(state.params)
        ref_after = jax.tree_util.tree_leaves(ref_state.params)
        grads = [np.asarray(p0) - np.asarray(a) for p0, a in zip(before, after)]
        ref_grads = [np.asarray(p0) - np.asarray(b) for p0, b in zip(before, ref_after)]
        # to 1e-5 of the largest gradient component (summation order differs by device)
        scale = max(float(np.max(np.abs(g))) for g in ref_grads)
        worst = max(float(np.max(np.abs(g - r))) for g, r in zip(grads, ref_grads)) / scale
        assert worst <= 1e-5, worst
        print("ENSEMBLE_SHARDED_OK", kind, float(m["loss"]), float(ref["loss"]),
              float(m["grad_norm"]), float(ref["grad_norm"]), worst)
    """
)


def test_members_sharded_over_four_devices_match_one_device():
    out = run_on_cpu_devices(SHARDED, 4)
    assert out.count("ENSEMBLE_SHARDED_OK") == 3, out
