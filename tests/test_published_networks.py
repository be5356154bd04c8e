"""meshsim's MeshGraphNet and GraphCast compute DeepMind's published function.

meshsim's weights are copied into the reference (`tests/reference_networks.py`,
written from the papers' equations and the published code's structure); outputs,
parameter gradients and input gradients must agree to 1e-5 relative (max |a − b| /
max |b| per array; float32, differences come from summation order and the concat
trick). Parameter counts equal DeepMind's implementation's, exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meshsim
from meshsim.meshes.sphere import latlon_grid
from meshsim.models import graphcast_param_count
from meshsim.nn import LAYER_NORM_EPSILON
from meshsim.tasks.weather import WeatherTask
from tests import reference_networks as ref
from tests.conftest import grid_cells

RTOL = 1e-5


def _perturbed(params, seed=1):
    """Random weights everywhere, LayerNorm scales and offsets included (the
    initial 1 and 0 would hide a swapped or missing LayerNorm parameter)."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [a + 0.3 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)]
    return jax.tree_util.tree_unflatten(tree, noisy)


def _close(a, b, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.abs(b).max()
    if scale == 0:
        assert np.abs(a).max() == 0, what
        return 0.0
    rel = np.abs(a - b).max() / scale
    assert rel <= RTOL, f"{what}: relative difference {rel:.2e}"
    return rel


def _compare_trees(ours, theirs, what):
    flat_ours = jax.tree_util.tree_leaves_with_path(ours)
    flat_theirs = jax.tree_util.tree_leaves(theirs)
    assert len(flat_ours) == len(flat_theirs)
    return max(_close(a, b, f"{what} {p}") for (p, a), b in zip(flat_ours, flat_theirs))


# --------------------------------------------------------------------------- MeshGraphNet


def _mesh_graph(world: bool, seed=0):
    rng = np.random.default_rng(seed)
    pos, cells = grid_cells(5, 4)
    senders, receivers = meshsim.edges_from_cells(cells)
    n = pos.shape[0]
    rel = pos[senders] - pos[receivers]
    edge_sets = {
        "mesh": (
            np.concatenate([rel, np.linalg.norm(rel, axis=1, keepdims=True)], 1),
            senders,
            receivers,
        )
    }
    if world:  # a few extra pairs with their own features (contact-like)
        ws, wr = rng.integers(0, n, 7), rng.integers(0, n, 7)
        edge_sets["world"] = (rng.normal(size=(7, 4)).astype(np.float32), ws, wr)
    nodes = rng.normal(size=(n, 11)).astype(np.float32)
    edge_sets = {
        k: (f.astype(np.float32), s.astype(np.int32), r.astype(np.int32))
        for k, (f, s, r) in edge_sets.items()
    }
    return nodes, edge_sets


@pytest.mark.parametrize("world", [False, True], ids=["mesh edges", "mesh + world edges"])
def test_meshgraphnet_equals_the_published_equations(world):
    nodes, edge_sets = _mesh_graph(world)
    steps = 3
    model = meshsim.MeshGraphNet(output_size=2, latent_size=16, num_message_passing_steps=steps)
    graph = meshsim.make_graph(nodes, edge_sets)
    params = _perturbed(model.init(jax.random.key(0), graph))
    cotangent = jax.random.normal(jax.random.key(2), (nodes.shape[0], 2))

    def ours(p, x):
        g = graph.replace(node_sets={"mesh": graph.node_sets["mesh"].replace(features=x)})
        return jnp.sum(model.apply(p, g) * cotangent)

    def theirs(p, x):
        return jnp.sum(ref.meshgraphnet(p, x, edge_sets) * cotangent)

    copied = ref.from_meshsim_meshgraphnet(params, steps, edge_sets)
    _close(model.apply(params, graph), ref.meshgraphnet(copied, nodes, edge_sets), "outputs")
    (gp, gx) = jax.jit(jax.grad(ours, argnums=(0, 1)))(params, nodes)
    (rp, rx) = jax.jit(jax.grad(theirs, argnums=(0, 1)))(copied, nodes)
    _close(gx, rx, "input gradients")
    _compare_trees(ref.from_meshsim_meshgraphnet(gp, steps, edge_sets), rp, "parameter gradients")


# --------------------------------------------------------------------------- GraphCast


def _weather_graph():
    task = WeatherTask(output_size=3, num_static=1, mesh_splits=1)
    lat, lon = latlon_grid(30.0)
    structure = task.structure({"latitude": lat, "longitude": lon})
    n = structure.num_nodes("grid")
    rng = np.random.default_rng(0)
    fields = {
        "prev|state": rng.normal(size=(n, 3)),
        "state": rng.normal(size=(n, 3)),
        "forcing": rng.normal(size=(n, 10)),
        "static": rng.normal(size=(n, 1)),
    }
    fields = {k: jnp.asarray(v, jnp.float32) for k, v in fields.items()}
    return task, structure, task.build_graph(fields, structure)


def test_graphcast_equals_the_published_equations():
    task, structure, graph = _weather_graph()
    steps = 2
    model = meshsim.GraphCast(output_size=3, latent_size=16, num_message_passing_steps=steps)
    params = _perturbed(model.init(jax.random.key(0), graph))
    grid_features = graph.node_sets["grid"].features
    inputs, positions = grid_features[:, : task.input_width], grid_features[:, task.input_width :]
    mesh_positions = structure.node_sets["mesh"].features
    edge_sets = {
        k: (es.features, es.senders, es.receivers) for k, es in structure.edge_sets.items()
    }
    cotangent = jax.random.normal(jax.random.key(2), (grid_features.shape[0], 3))

    def ours(p, x):
        grid = graph.node_sets["grid"].replace(features=jnp.concatenate([x, positions], -1))
        return jnp.sum(
            model.apply(p, graph.replace(node_sets={**graph.node_sets, "grid": grid})) * cotangent
        )

    def theirs(p, x):
        return jnp.sum(ref.graphcast(p, x, positions, mesh_positions, edge_sets) * cotangent)

    copied = ref.from_meshsim_graphcast(params, steps)
    out_ref = ref.graphcast(copied, inputs, positions, mesh_positions, edge_sets)
    _close(model.apply(params, graph), out_ref, "outputs")
    (gp, gx) = jax.jit(jax.grad(ours, argnums=(0, 1)))(params, inputs)
    (rp, rx) = jax.jit(jax.grad(theirs, argnums=(0, 1)))(copied, inputs)
    _close(gx, rx, "input gradients")
    _compare_trees(ref.from_meshsim_graphcast(gp, steps), rp, "parameter gradients")
    # The mesh-node MLP of mesh2grid is built, as in DeepMind's code, and feeds nothing.
    assert not np.any(np.asarray(gp["params"]["mesh2grid"]["node_mesh"]["linear_0_kernel"]))


def test_the_old_message_rule_would_fail_the_reference():
    """The check has teeth: summing the residual-updated edge latents (meshsim's rule
    before) instead of the MLP outputs changes MeshGraphNet's outputs far past 1e-5."""
    nodes, edge_sets = _mesh_graph(world=False)
    model = meshsim.MeshGraphNet(output_size=2, latent_size=16, num_message_passing_steps=3)
    graph = meshsim.make_graph(nodes, edge_sets)
    params = _perturbed(model.init(jax.random.key(0), graph))
    copied = ref.from_meshsim_meshgraphnet(params, 3, edge_sets)
    out = np.asarray(model.apply(params, graph))

    def old_step(p, nodes_, edges, typed, node_sets, act):
        ((k, (s, r, senders, receivers)),) = typed.items()
        x = jnp.concatenate([edges[k], nodes_[s][senders], nodes_[r][receivers]], -1)
        e = edges[k] + ref.mlp(p["edge"][k], x, act)
        agg = ref.segment_sum(e, receivers, nodes_["mesh"].shape[0])
        v = nodes_["mesh"] + ref.mlp(
            p["node"]["mesh"], jnp.concatenate([nodes_["mesh"], agg], -1), act
        )
        return {"mesh": v}, {k: e}

    original, ref.step = ref.step, old_step
    try:
        old = np.asarray(ref.meshgraphnet(copied, nodes, edge_sets))
    finally:
        ref.step = original
    assert np.abs(out - old).max() / np.abs(old).max() > 1e-2
    assert LAYER_NORM_EPSILON == ref.EPSILON == 1e-5


# --------------------------------------------------------------------------- sizes


def test_graphcast_parameter_count_equals_deepminds():
    """The formula counts DeepMind's implementation: at latent 64, 8 mesh steps, 8
    grid inputs and 6 outputs it is 337,222 (meshsim's network before counted 319,814:
    no grid MLP in grid2mesh, no mesh MLP in mesh2grid, a 3-wide mesh embedder)."""
    assert (
        graphcast_param_count(
            grid_inputs=11, mesh_inputs=11, output_size=6, latent=64, mesh_steps=8
        )
        == 337_222
    )
    difference = 8 * 64 + 2 * (64 * 64 + 64 + 64 * 64 + 64 + 2 * 64)  # C_in·L + 2·MLP(L→L)
    assert 337_222 - difference == 319_814
    task, _, graph = _weather_graph()
    model = meshsim.GraphCast(output_size=3, latent_size=16, num_message_passing_steps=2)
    count = meshsim.count_params(model.init(jax.random.key(0), graph))
    sizes = task.node_feature_sizes
    assert count == graphcast_param_count(
        grid_inputs=sizes["grid"], mesh_inputs=sizes["mesh"], output_size=3, latent=16, mesh_steps=2
    )


def test_initial_weights_are_the_published_truncated_normal():
    """Sonnet's and Haiku's Linear: a normal truncated at ±2σ with σ = 1/√fan_in (the
    draw's std is then 0.880/√fan_in), biases 0."""
    model = meshsim.MeshGraphNet(output_size=2, latent_size=256, num_message_passing_steps=1)
    nodes, edge_sets = _mesh_graph(world=False)
    params = model.init(jax.random.key(0), meshsim.make_graph(nodes, edge_sets))["params"]
    kernel = np.asarray(params["processor"]["edge_mesh"]["linear_0_kernel"])  # fan_in 768
    fan_in = kernel.shape[0]
    assert np.abs(kernel).max() <= 2 / np.sqrt(fan_in)
    assert kernel.std() * np.sqrt(fan_in) == pytest.approx(0.8796, abs=0.01)
    assert not np.any(np.asarray(params["processor"]["edge_mesh"]["linear_0_bias"]))
