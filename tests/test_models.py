"""Properties of the encode-process-decode network and the MeshGraphNet configuration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meshsim
from meshsim.models import EncodeProcessDecode, meshgraphnet_param_count
from tests.conftest import mesh_graph, np_mlp

SMALL = dict(output_size=3, latent_size=16, num_message_passing_steps=3)


def _init(model, graph, seed=0):
    return jax.jit(model.init)(jax.random.key(seed), graph)


# ------------------------------------------------------------------ slow numpy reference


def _np_forward(params, graph, steps):
    """MeshGraphNet forward pass with explicit Python loops over nodes: the slow reference."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["params"])
    es = graph.edge_sets["mesh"]
    v = np_mlp(p["encoder_node_mesh"], [graph.node_sets["mesh"].features], True)
    e = np_mlp(p["encoder_edge_mesh"], [es.features], True)
    for k in range(steps):
        pk = jax.tree_util.tree_map(lambda a, k=k: a[k], p["processor"])
        m = np_mlp(pk["edge_mesh"], [e, v[es.senders], v[es.receivers]], True)
        agg = np.zeros_like(v)
        for j in range(len(es.senders)):  # explicit loop: the dense definition of Σ_j m_ij
            agg[es.receivers[j]] += m[j]
        v = v + np_mlp(pk["node_mesh"], [v, agg], True)  # messages: the edge MLP's outputs
        e = e + m
    return np_mlp(p["decoder_mesh"], [v], False)


def test_agrees_with_slow_numpy_reference():
    g = mesh_graph(4, 4)
    model = meshsim.MeshGraphNet(**SMALL)
    params = _init(model, g)
    np.testing.assert_allclose(
        model.apply(params, g), _np_forward(params, g, 3), rtol=2e-4, atol=2e-4
    )


# ------------------------------------------------------------------ symmetry and padding


def test_permutation_equivariance():
    g = mesh_graph(4, 3, seed=3)
    model = meshsim.MeshGraphNet(**SMALL)
    params = _init(model, g)
    out = np.asarray(model.apply(params, g))
    rng = np.random.default_rng(0)
    perm = rng.permutation(g.num_nodes("mesh"))  # new node i is old node perm[i]
    inv = np.argsort(perm)
    es = g.edge_sets["mesh"]
    eperm = rng.permutation(len(es.senders))
    pg = meshsim.make_graph(
        g.node_sets["mesh"].features[perm],
        {
            "mesh": (
                es.features[eperm],
                inv[es.senders[eperm]].astype(np.int32),
                inv[es.receivers[eperm]].astype(np.int32),
            )
        },
    )
    np.testing.assert_allclose(model.apply(params, pg), out[perm], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("aggregation", ["sum", "mean", "max"])
def test_padding_invariance(aggregation):
    g = mesh_graph(5, 3)
    model = meshsim.MeshGraphNet(**SMALL, aggregation=aggregation)
    params = _init(model, g)
    out = model.apply(params, g)
    n = g.num_nodes("mesh")
    padded = meshsim.pad(g, meshsim.PaddingBudget({"mesh": n + 37}, {"mesh": 200}, 3))
    pout = model.apply(params, padded)
    assert np.all(np.isfinite(pout))
    # Not bitwise: XLA blocks a matmul's rows differently for another row count, which
    # reorders float32 sums (~1e-6 here). A leak from padding would be O(1).
    np.testing.assert_allclose(np.asarray(pout)[:n], out, rtol=1e-5, atol=1e-5)


def test_batching_equals_separate_runs():
    a, b = mesh_graph(3, 3, seed=1), mesh_graph(4, 5, seed=2)
    model = meshsim.MeshGraphNet(**SMALL)
    params = _init(model, a)
    ab = model.apply(params, meshsim.batch([a, b]))
    n = a.num_nodes("mesh")
    np.testing.assert_allclose(ab[:n], model.apply(params, a), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ab[n:], model.apply(params, b), rtol=1e-6, atol=1e-6)


def test_several_edge_sets():
    g = mesh_graph(4, 3)
    es = g.edge_sets["mesh"]
    world = es.replace(features=es.features[:, :2] * 2)  # a second set with other features
    g2 = g.replace(edge_sets={"mesh": es, "world": world})
    model = meshsim.MeshGraphNet(**SMALL)
    params = _init(model, g2)
    expected = meshgraphnet_param_count(
        node_input=5, edge_inputs={"mesh": 3, "world": 2}, output_size=3, latent=16, steps=3
    )
    assert meshsim.count_params(params) == expected
    assert model.apply(params, g2).shape == (g.num_nodes("mesh"), 3)


# ------------------------------------------------------------------ compilation


def test_jit_and_eager_agree():
    g = mesh_graph(4, 3)
    model = meshsim.MeshGraphNet(**SMALL)
    params = _init(model, g)
    with jax.disable_jit():
        eager = model.apply(params, g)
    np.testing.assert_allclose(jax.jit(model.apply)(params, g), eager, rtol=1e-5, atol=1e-5)


def test_same_bucket_does_not_recompile():
    a, b = mesh_graph(5, 4, seed=1), mesh_graph(4, 4, seed=2)  # 20 and 16 nodes
    budget = meshsim.PaddingBudget.for_dataset([a, b])
    model = meshsim.MeshGraphNet(**SMALL)
    traces = []

    @jax.jit
    def forward(params, graph):
        traces.append(1)  # runs only while tracing
        return model.apply(params, graph)

    params = _init(model, a)
    forward(params, meshsim.pad(a, budget))
    forward(params, meshsim.pad(b, budget))
    assert len(traces) == 1


def test_options_do_not_change_the_function():
    """concat trick, remat and scan unrolling are implementation choices: same outputs."""
    g = mesh_graph(4, 4)
    base = meshsim.MeshGraphNet(**SMALL)
    params = _init(base, g)

    def outputs_and_grad(model):
        """(outputs, gradient of their sum of squares): one compiled program per model
        (eagerly, each apply and grad traced and compiled the processor's scan anew)."""

        def loss(p):
            out = model.apply(p, g)
            return jnp.sum(out**2), out

        (_, out), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
        return out, grad

    out, grad = outputs_and_grad(base)
    for option in (
        dict(concat_trick=False),
        dict(remat=True),
        dict(remat=False),
        dict(scan_unroll=3),
    ):
        model = meshsim.MeshGraphNet(**SMALL, **option)
        out2, grad2 = outputs_and_grad(model)
        np.testing.assert_allclose(out2, out, rtol=1e-5, atol=1e-5)
        jax.tree_util.tree_map(
            lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4), grad, grad2
        )


def test_bf16_matmuls_stay_close_to_f32():
    g = mesh_graph(4, 4)
    params = _init(meshsim.MeshGraphNet(**SMALL), g)
    f32 = meshsim.MeshGraphNet(**SMALL).apply(params, g)
    bf16 = meshsim.MeshGraphNet(**SMALL, dtype=jnp.bfloat16).apply(params, g)
    assert bf16.dtype == jnp.float32
    rel = np.linalg.norm(bf16 - f32) / np.linalg.norm(f32)
    assert rel < 0.05, rel  # bf16 keeps 8 mantissa bits: ~1% error per layer, 3 steps deep


# ------------------------------------------------------------------ configuration


def test_paper_configuration_parameter_count():
    g = mesh_graph(3, 3, node_features=11)  # cylinder flow: velocity(2) + one-hot(9)
    model = meshsim.MeshGraphNet(output_size=2)
    assert (model.latent_size, model.num_message_passing_steps, model.mlp_hidden_layers) == (
        128,
        15,
        2,
    )
    params = jax.eval_shape(lambda: _init(model, g))
    n = sum(x.size for x in jax.tree_util.tree_leaves(params))
    # Closed form, written out: encoder node MLP 11→128→128→128 (+LN), edge MLP 3→...,
    # per step edge MLP 384→128→128→128 (+LN) and node MLP 256→...; decoder 128→128→128→2.
    dense = lambda sizes: sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))  # noqa: E731
    ln = 256
    expected = (
        dense([11, 128, 128, 128])
        + ln
        + dense([3, 128, 128, 128])
        + ln
        + 15 * (dense([384, 128, 128, 128]) + ln + dense([256, 128, 128, 128]) + ln)
        + dense([128, 128, 128, 2])
    )
    assert (
        n
        == expected
        == meshgraphnet_param_count(node_input=11, edge_inputs={"mesh": 3}, output_size=2)
    )
    assert expected == 2_332_930


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(activation="sigmoidish"), "activation: expected one of"),
        (dict(aggregation="median"), "aggregation: expected one of"),
        (dict(latent_size=0), "latent_size: expected a positive int, got 0"),
        (dict(num_message_passing_steps=-1), "num_message_passing_steps: expected a positive"),
        (dict(mlp_hidden_layers=-2), "mlp_hidden_layers: expected an int ≥ 0"),
        (dict(scan_unroll=0), "scan_unroll: expected a positive int, got 0"),
        (dict(latent_size=True), "latent_size: expected a positive int, got True"),
    ],
)
def test_bad_configuration_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EncodeProcessDecode(**{"output_size": 2, **kwargs})
