"""The weather task: GraphCast's typed graph, fixed normalizers, training and rollouts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("xarray")

import meshsim  # noqa: E402
from meshsim import normalization as norm  # noqa: E402
from meshsim.config import OptimizerConfig  # noqa: E402
from meshsim.data import weather as W  # noqa: E402
from meshsim.graph.window import pad_window  # noqa: E402
from meshsim.rollout import rollout  # noqa: E402
from meshsim.tasks.weather import WeatherTask, weather_normalizers  # noqa: E402
from meshsim.training.batches import dataset_budget, iter_batches  # noqa: E402
from meshsim.training.step import init_train_state, make_optimizer, make_train_step  # noqa: E402
from tests.test_weather_data import LAT, LON, synthetic_wb2  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = tmp_path_factory.mktemp("wx") / "train.zarr"
    ds = synthetic_wb2()
    # A smooth, predictable signal: a wave travelling east, so a model can learn it.
    t = np.arange(ds.sizes["time"])[:, None, None]
    lon = np.deg2rad(ds["longitude"].values)[None, None, :]
    lat = np.deg2rad(ds["latitude"].values)[None, :, None]
    ds["2m_temperature"][:] = 280 + 5 * np.cos(lat) * np.sin(lon - 0.3 * t)
    ds.to_zarr(path, zarr_format=2)
    data = W.WeatherDataset(path)
    stats = W.compute_statistics(data)
    task = WeatherTask(output_size=3, num_static=1, mesh_splits=1)
    structure = task.structure(data[0])
    sim = meshsim.Simulator(
        meshsim.GraphCast(output_size=3, latent_size=16, num_message_passing_steps=2), task
    )
    return data, stats, task, structure, sim


def test_graph_has_grid_and_mesh_sets_with_declared_widths(setup):
    data, stats, task, structure, _ = setup
    assert structure.num_nodes("grid") == 40 and structure.num_nodes("mesh") == 42
    window = task.window(data[0], 1, structure)
    graph = task.build_graph(window.fields, structure)
    for name, width in task.node_feature_sizes.items():
        assert graph.node_sets[name].features.shape[-1] == width
    for name, (sender, receiver, width) in task.edge_types.items():
        es = graph.edge_sets[name]
        assert (es.sender, es.receiver, es.features.shape[-1]) == (sender, receiver, width)
    assert task.structure(data[1]) is structure  # built once per grid


def test_window_fields_and_residual_target(setup):
    data, _, task, structure, _ = setup
    traj = data[0]
    w = task.window(traj, 3, structure)
    np.testing.assert_array_equal(w.fields["prev|state"], traj["state"][2])
    np.testing.assert_array_equal(w.fields["state"], traj["state"][3])
    np.testing.assert_array_equal(
        w.fields["forcing"], np.concatenate([traj["forcing"][3], traj["forcing"][4]], -1)
    )
    target = task.target({k: jnp.asarray(v) for k, v in w.fields.items()})
    np.testing.assert_allclose(target, traj["state"][4] - traj["state"][3], rtol=1e-6)
    np.testing.assert_allclose(w.fields["area_weight"], W.node_weights(LAT, LON))
    assert list(task.window_times(8)) == list(range(1, 7))
    with pytest.raises(ValueError, match="t: expected in range"):
        task.window(traj, 0, structure)
    long = task.window(traj, 1, structure, horizon=3)
    assert long.fields["future|state"].shape == (40, 3, 3)
    assert long.fields["future|prescribed"].shape == (40, 3, 10)


def test_fixed_normalizers_z_score_inputs_and_scale_residuals(setup):
    data, stats, task, structure, sim = setup
    normalizers = weather_normalizers(task, stats, structure)
    w = task.window(data[0], 2, structure)
    graph = task.build_graph(w.fields, structure)
    x = norm.normalize(normalizers.nodes["grid"], graph.node_sets["grid"].features)
    frames = np.asarray(W.read_frames(data.ds, data.channels, slice(0, 13)))
    z = (frames - stats.mean) / stats.std
    np.testing.assert_allclose(x[:, 3:6], z[2], rtol=1e-4, atol=1e-4)  # current state
    np.testing.assert_allclose(normalizers.output.mean, 0.0)
    np.testing.assert_allclose(normalizers.output.std, stats.diff_std, rtol=1e-6)
    # Fixed: a training update leaves them as they are.
    again = norm.update(normalizers.output, jnp.ones((5, 3)))
    np.testing.assert_array_equal(again.std, normalizers.output.std)


def _train(setup, steps):
    data, stats, task, structure, sim = setup
    tx = make_optimizer(OptimizerConfig(learning_rate=3e-3, decay_steps=10**6))
    state = init_train_state(sim, tx, jax.random.key(0))
    state = state.replace(normalizers=weather_normalizers(task, stats, structure))
    budget = dataset_budget([data[0]], task)
    batches = iter_batches(data, task, batch_size=2, budget=budget, seed=0)
    step = make_train_step(sim, tx)
    losses = []
    for i in range(steps):
        batch = next(batches)
        assert batch.graph.graph_mask.ndim == 1  # one shared structure per batch
        state, m = step(state, batch, jax.random.key(i))
        losses.append(float(m["loss"]))
    return state, losses, budget


def test_training_reduces_the_area_weighted_loss(setup):
    state, losses, _ = _train(setup, 60)
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5]), losses


def test_scanned_rollout_matches_a_python_loop_with_true_forcings(setup):
    data, stats, task, structure, sim = setup
    params = sim.init_params(jax.random.key(3))
    normalizers = weather_normalizers(task, stats, structure)
    traj = data[0]
    budget = meshsim.PaddingBudget.fit(structure)
    window = pad_window(task.window(traj, 1, structure), budget, task.node_set)
    fields = {k: v for k, v in window.fields.items() if not k.startswith("target|")}
    steps = 4
    prescribed = task.prescribed_frames(traj, 1, steps)
    prescribed = np.pad(prescribed, ((0, 0), (0, budget.n_node["grid"] - 40), (0, 0)))
    _, states = jax.jit(
        lambda f, s, p: rollout(sim, params, normalizers, fields=f, structure=s, prescribed=p)
    )(fields, window.graph, jnp.asarray(prescribed))
    # Reference: predict, then feed the prediction back with the forcings of the next step.
    prev, cur = traj["state"][0], traj["state"][1]
    for k in range(steps):
        f = task.window(traj, 1 + k, structure).fields
        f = {**f, "prev|state": prev, "state": cur}
        nxt = sim.predict(params, normalizers, f, structure)
        np.testing.assert_allclose(states[k, :40], nxt, rtol=2e-4, atol=2e-4)
        prev, cur = cur, np.asarray(nxt)


def test_task_from_meta_with_per_variable_and_level_weights():
    meta = {"channels": ["t/500", "t/1000", "z"], "static": ["lsm", "orography"]}
    task = meshsim.tasks.get_task("weather", meta=meta, variable_weights=("z=0.1",), mesh_splits=1)
    assert (task.output_size, task.num_static) == (3, 2)
    np.testing.assert_allclose(task.output_weights, [500 / 750, 1000 / 750, 0.1])
    flat = meshsim.tasks.get_task("weather", meta=meta, level_weighting=False)
    assert flat.output_weights == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="variable_weights: \\['q'\\] are not forecast"):
        meshsim.tasks.get_task("weather", meta=meta, variable_weights=("q=1",))
    with pytest.raises(ValueError, match="expected 'variable=weight ≥ 0', got 'z'"):
        meshsim.tasks.get_task("weather", meta=meta, variable_weights=("z",))
    with pytest.raises(ValueError, match="^variables: \\['q'\\] not in"):
        meshsim.tasks.get_task("weather", meta=meta, variables=("q",))
    with pytest.raises(ValueError, match="needs the dataset's meta"):
        meshsim.tasks.get_task("weather")
