"""The staged encode-process-decode network on a two-node-set graph (grid + mesh).

A numpy reference written from the definition (explicit loops for every
aggregation) pins the forward pass; properties (permutation equivariance per
node set, padding, batching, jit) hold for any stages; stage semantics
(untouched node sets, shared weights, validation), the GraphCast configuration
and a user-defined attention block are checked on the same small graph.
"""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meshsim
from meshsim import ops
from meshsim.graph import GraphFeatures
from meshsim.models import EncodeProcessDecode, Stage
from meshsim.nn import InteractionBlock
from tests.conftest import np_mlp
from tests.test_typed_graph import two_set_graph

LATENT = 8
STAGES = (
    Stage(("grid2mesh",), 1, name="g2m"),
    Stage(("mesh",), 2, name="proc"),
    Stage(("mesh2grid",), 1, name="m2g"),
)


def staged(**kwargs) -> EncodeProcessDecode:
    config = dict(
        output_size=2,
        output_node_set="grid",
        latent_size=LATENT,
        mlp_hidden_layers=1,
        stages=STAGES,
        remat=False,
    )
    return EncodeProcessDecode(**{**config, **kwargs})


def _init(model, graph, seed=0):
    """Random parameters of the model's shapes (non-trivial biases and LayerNorm too).

    `jax.eval_shape` plus numpy: compiling `model.init` would cost seconds per model.
    """
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name.endswith("kernel"):
            x = rng.normal(size=shape) / np.sqrt(shape[-2])
        elif name == "scale":
            x = 1 + 0.2 * rng.normal(size=shape)
        else:
            x = 0.2 * rng.normal(size=shape)
        return x.astype(np.float32)

    shapes = jax.eval_shape(model.init, jax.random.key(0), graph)
    return jax.tree_util.tree_map_with_path(fill, shapes)


_JITTED: dict = {}


def apply(model, params, graph) -> np.ndarray:
    """`model.apply` under one jit per model configuration (compiled once per graph shape).

    Eager application compiles every primitive per shape, ~3x slower on these sizes.
    """
    if model not in _JITTED:
        _JITTED[model] = jax.jit(model.apply)
    return np.asarray(_JITTED[model](params, graph))


@pytest.fixture(scope="module")
def graph():
    return two_set_graph(0)


@pytest.fixture(scope="module")
def model_and_params(graph):
    model = staged()
    return model, _init(model, graph)


# ------------------------------------------------------------------ slow numpy reference

ACT = {"relu": lambda x: np.maximum(x, 0), "swish": lambda x: x / (1 + np.exp(-x))}


def _np_aggregate(kind, messages, receivers, num_nodes):
    """Σ / mean / max of the messages into each receiver, one edge at a time (0 if none)."""
    out = np.zeros((num_nodes, messages.shape[1]))
    if kind == "max":
        out[:] = -np.inf
    count = np.zeros(num_nodes)
    for j, r in enumerate(receivers):
        count[r] += 1
        out[r] = np.maximum(out[r], messages[j]) if kind == "max" else out[r] + messages[j]
    if kind == "mean":
        out /= np.maximum(count, 1)[:, None]
    out[count == 0] = 0.0
    return out


def np_forward(params, graph, stages, *, output_node_set="grid", act="relu", aggregation="sum"):
    """The staged network from its definition: the slow reference.

    Encoder MLP per node set / edge set; per step of a stage, from the latents before
    the step: every edge set k of the stage computes m_k = MLP([e_k, v_s[senders],
    v_r[receivers]]); every node set n the stage touches computes u_n = MLP([v_n,
    agg(m_k) for k into n, sorted by name]) (just MLP(v_n) for a set that only sends);
    then e_k += m_k and v_n += u_n (MeshGraphNets' and GraphCast's rule). Decoder on
    the output set.
    """
    act = ACT[act]
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["params"])
    v = {
        k: np_mlp(p[f"encoder_node_{k}"], [ns.features.astype(np.float64)], True, act)
        for k, ns in graph.node_sets.items()
    }
    e = {
        k: np_mlp(p[f"encoder_edge_{k}"], [es.features.astype(np.float64)], True, act)
        for k, es in graph.edge_sets.items()
    }
    for stage in stages:
        scope = p[stage.name]
        for step in range(stage.steps):
            ps = scope
            if stage.steps > 1 and not stage.shared:  # scanned, unshared: a leading step axis
                ps = jax.tree_util.tree_map(lambda a, step=step: a[step], scope)
            messages, incoming, touched = {}, {}, set()
            for k in sorted(stage.edge_sets):
                es = graph.edge_sets[k]
                vs, vr = v[es.sender], v[es.receiver]
                parts = [e[k], vs[es.senders], vr[es.receivers]]
                messages[k] = np_mlp(ps[f"edge_{k}"], parts, True, act)
                agg = _np_aggregate(aggregation, messages[k], es.receivers, vr.shape[0])
                incoming.setdefault(es.receiver, []).append(agg)
                touched |= {es.sender, es.receiver}
            updates = {
                n: np_mlp(ps[f"node_{n}"], [v[n], *incoming.get(n, [])], True, act)
                for n in sorted(touched)
            }
            # A node set no edge set of the stage touches has no MLP in it.
            assert {k[len("node_") :] for k in ps if k.startswith("node_")} == touched
            e = {k: e[k] + messages.get(k, 0) for k in e}
            v = {n: v[n] + updates.get(n, 0) for n in v}
    return np_mlp(p[f"decoder_{output_node_set}"], [v[output_node_set]], False, act)


_MEAN_STAGES = (Stage(("mesh", "grid2mesh"), 2, name="a"), Stage(("mesh2grid",), name="b"))
_MAX_STAGES = (Stage(("grid2mesh",), name="a"), Stage(("mesh",), 3, True, name="b"))
# name: (model keywords over `staged()`, the stages the reference runs)
CONFIGS = {
    "explicit stages, sum": ({}, STAGES),
    # stages=None: one stage over every edge set; grid2mesh and mesh both flow into mesh.
    "default stages": (
        dict(stages=None, num_message_passing_steps=2, mlp_hidden_layers=2),
        (Stage(("grid2mesh", "mesh", "mesh2grid"), 2, name="processor"),),
    ),
    "two edge sets into mesh, mean": (dict(stages=_MEAN_STAGES, aggregation="mean"), _MEAN_STAGES),
    "shared, max, decode on mesh": (
        dict(stages=_MAX_STAGES, aggregation="max", output_node_set="mesh"),
        _MAX_STAGES,
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_agrees_with_slow_numpy_reference(graph, name):
    kwargs, stages = CONFIGS[name]
    model = staged(**kwargs)
    params = _init(model, graph, seed=1)
    expected = np_forward(
        params,
        graph,
        stages,
        output_node_set=model.output_node_set,
        aggregation=model.aggregation,
    )
    out = apply(model, params, graph)
    assert out.shape == (graph.num_nodes(model.output_node_set), 2)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ properties


def permute_graph(graph, seed=0):
    """The graph with each node set and each edge set independently permuted.

    Returns (permuted graph, {node set: perm}) with new node i of set k = old perm[k][i].
    """
    rng = np.random.default_rng(seed)
    perm = {k: rng.permutation(graph.num_nodes(k)) for k in graph.node_sets}
    inv = {k: np.argsort(p) for k, p in perm.items()}
    edges = {}
    for k, es in graph.edge_sets.items():
        ep = rng.permutation(es.num_edges)
        edges[k] = (
            es.features[ep],
            inv[es.sender][es.senders[ep]].astype(np.int32),
            inv[es.receiver][es.receivers[ep]].astype(np.int32),
            es.sender,
            es.receiver,
        )
    nodes = {k: ns.features[perm[k]] for k, ns in graph.node_sets.items()}
    return meshsim.make_graph(nodes, edges), perm


def _assert_equivariant(model, params, graph, seed=0):
    out = apply(model, params, graph)
    permuted, perm = permute_graph(graph, seed)
    assert not np.array_equal(perm["grid"], np.arange(len(perm["grid"])))
    np.testing.assert_allclose(
        apply(model, params, permuted), out[perm[model.output_node_set]], rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("output_node_set", ["grid", "mesh"])
def test_permutation_equivariance_per_node_set(output_node_set):
    g = two_set_graph(3, n_grid=9, n_mesh=5)
    model = staged(output_node_set=output_node_set)
    params = _init(model, g)
    _assert_equivariant(model, params, g, seed=1)


@pytest.mark.parametrize(
    "aggregation, name",
    [
        ("sum", "explicit stages, sum"),
        ("mean", "two edge sets into mesh, mean"),
        ("max", "shared, max, decode on mesh"),
    ],
)
def test_padding_invariance(graph, aggregation, name):
    model = staged(**CONFIGS[name][0])
    assert model.aggregation == aggregation
    params = _init(model, graph)
    out = apply(model, params, graph)
    budget = meshsim.PaddingBudget(
        n_node={"grid": 16, "mesh": 9},
        n_edge={"grid2mesh": 20, "mesh": 17, "mesh2grid": 13},
        n_graph=3,
    )
    padded = meshsim.pad(graph, budget)
    pout = apply(model, params, padded)
    n = graph.num_nodes(model.output_node_set)
    assert pout.shape == (budget.n_node[model.output_node_set], 2) and np.isfinite(pout).all()
    np.testing.assert_allclose(pout[:n], out, rtol=1e-5, atol=1e-5)


def test_batching_equals_separate_runs(model_and_params):
    model, params = model_and_params
    a, b = two_set_graph(1), two_set_graph(2, n_grid=9, n_mesh=5)
    ab = apply(model, params, meshsim.batch([a, b]))
    n = a.num_nodes("grid")
    assert ab.shape == (n + b.num_nodes("grid"), 2)
    np.testing.assert_allclose(ab[:n], apply(model, params, a), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ab[n:], apply(model, params, b), rtol=1e-5, atol=1e-5)


def test_jit_and_eager_agree(graph, model_and_params):
    model, params = model_and_params
    with jax.disable_jit():
        eager = model.apply(params, graph)
    np.testing.assert_allclose(apply(model, params, graph), eager, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ stages


def test_node_set_the_stage_does_not_touch_is_unchanged(graph):
    model = staged(stages=(Stage(("mesh",), 1, name="m"),))
    params = _init(model, graph)
    assert set(params["params"]["m"]) == {"edge_mesh", "node_mesh"}
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["params"])
    relu = ACT["relu"]
    grid = graph.node_sets["grid"].features.astype(np.float64)
    expected = np_mlp(
        p["decoder_grid"], [np_mlp(p["encoder_node_grid"], [grid], True, relu)], False, relu
    )
    np.testing.assert_allclose(apply(model, params, graph), expected, rtol=1e-5, atol=1e-5)


def test_a_set_that_only_sends_is_updated_from_itself(graph):
    """GraphCast's grid2mesh also updates the grid: v_grid += MLP(v_grid), no messages."""
    model = staged(stages=(Stage(("grid2mesh",), 1, name="g2m"),))
    params = _init(model, graph)
    assert set(params["params"]["g2m"]) == {"edge_grid2mesh", "node_mesh", "node_grid"}
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["params"])
    relu = ACT["relu"]
    grid = np_mlp(p["encoder_node_grid"], [graph.node_sets["grid"].features], True, relu)
    grid = grid + np_mlp(p["g2m"]["node_grid"], [grid], True, relu)
    expected = np_mlp(p["decoder_grid"], [grid], False, relu)
    np.testing.assert_allclose(apply(model, params, graph), expected, rtol=1e-5, atol=1e-5)


def test_shared_stage_equals_unshared_stage_with_equal_weights(graph):
    shared = staged(stages=(STAGES[0], Stage(("mesh",), 3, shared=True, name="proc"), STAGES[2]))
    unshared = staged(stages=(STAGES[0], Stage(("mesh",), 3, name="proc"), STAGES[2]))
    sp, fresh = _init(shared, graph), _init(unshared, graph)
    kernel = lambda p: p["params"]["proc"]["edge_mesh"]["linear_0_kernel"].shape
    assert kernel(sp) == (3 * LATENT, LATENT)  # no step axis
    assert kernel(fresh) == (3, 3 * LATENT, LATENT)
    copied = jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(a, (3, *a.shape)), sp["params"]["proc"]
    )
    up = {"params": {**sp["params"], "proc": copied}}
    shape = lambda p: jax.tree_util.tree_map(np.shape, p)
    assert shape(up) == shape(fresh)
    np.testing.assert_allclose(
        apply(unshared, up, graph), apply(shared, sp, graph), rtol=1e-6, atol=1e-6
    )


def test_stage_names_must_be_unique(graph):
    model = staged(stages=(Stage(("grid2mesh",)), Stage(("mesh",))))  # both "processor"
    with pytest.raises(ValueError, match=re.escape("stages: names must be unique")):
        jax.eval_shape(model.init, jax.random.key(0), graph)


def test_stage_naming_a_missing_edge_set_raises(graph):
    model = staged(stages=(Stage(("mesh", "world"), name="p"),))
    with pytest.raises(ValueError, match=re.escape("stages['p'].edge_sets: ['world'] not in")):
        jax.eval_shape(model.init, jax.random.key(0), graph)


def test_output_node_set_must_be_in_the_graph(graph):
    model = staged(output_node_set="ocean")
    message = "output_node_set: expected one of ['grid', 'mesh'], got 'ocean'"
    with pytest.raises(ValueError, match=re.escape(message)):
        jax.eval_shape(model.init, jax.random.key(0), graph)
    # The default output set ("mesh") of a plain EncodeProcessDecode does not fit a grid-only graph.
    grid_only = meshsim.make_graph({"grid": graph.node_sets["grid"].features}, {})
    with pytest.raises(ValueError, match=re.escape("output_node_set: expected one of ['grid']")):
        jax.eval_shape(EncodeProcessDecode(output_size=2).init, jax.random.key(0), grid_only)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(block=lambda: None), "block: expected a flax Module class"),
        (dict(block=InteractionBlock(edge_types=(), latent_size=4)), "block: expected a flax"),
        (dict(stages=("mesh",)), "stages: expected a tuple of Stage"),
    ],
)
def test_bad_block_or_stages_raise_type_error(kwargs, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        EncodeProcessDecode(output_size=2, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(edge_sets="mesh"), "Stage.edge_sets: expected a non-empty tuple"),
        (dict(edge_sets=()), "Stage.edge_sets: expected a non-empty tuple"),
        (dict(edge_sets=("mesh",), steps=0), "Stage.steps: expected a positive int"),
        (dict(edge_sets=("mesh",), steps=True), "Stage.steps: expected a positive int"),
    ],
)
def test_bad_stage_raises(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Stage(**kwargs)


# ------------------------------------------------------------------ GraphCast configuration


def test_graphcast_on_the_small_graph(graph):
    model = meshsim.GraphCast(output_size=2, latent_size=16, num_message_passing_steps=3)
    assert (model.output_node_set, model.activation, model.mlp_hidden_layers) == (
        "grid",
        "swish",
        1,
    )
    params = _init(model, graph)
    out = apply(model, params, graph)
    assert out.shape == (graph.num_nodes("grid"), 2)
    p = params["params"]
    assert set(p) == {
        "encoder_node_grid",
        "encoder_node_mesh",
        "encoder_edge_grid2mesh",
        "encoder_edge_mesh",
        "encoder_edge_mesh2grid",
        "grid2mesh",
        "processor",
        "mesh2grid",
        "decoder_grid",
    }
    # Every node set a stage touches has its MLP (DeepMind's GraphCast): the grid in
    # grid2mesh (from itself), the mesh in mesh2grid (its output feeds nothing after).
    assert set(p["grid2mesh"]) == {"edge_grid2mesh", "node_mesh", "node_grid"}
    assert set(p["processor"]) == {"edge_mesh", "node_mesh"}
    assert set(p["mesh2grid"]) == {"edge_mesh2grid", "node_grid", "node_mesh"}
    # One hidden layer per MLP: linear_0 and linear_1, nothing deeper.
    L = 16
    shapes = {
        ("encoder_node_grid",): (5, L),
        ("encoder_node_mesh",): (3, L),
        ("encoder_edge_grid2mesh",): (2, L),
        ("encoder_edge_mesh",): (4, L),
        ("encoder_edge_mesh2grid",): (1, L),
        ("grid2mesh", "edge_grid2mesh"): (3 * L, L),
        ("grid2mesh", "node_mesh"): (2 * L, L),
        ("grid2mesh", "node_grid"): (L, L),
        ("processor", "edge_mesh"): (3, 3 * L, L),  # leading step axis
        ("processor", "node_mesh"): (3, 2 * L, L),
        ("mesh2grid", "edge_mesh2grid"): (3 * L, L),
        ("mesh2grid", "node_grid"): (2 * L, L),
        ("mesh2grid", "node_mesh"): (L, L),
    }
    for path, first in shapes.items():
        mlp = p
        for key in path:
            mlp = mlp[key]
        assert set(mlp) == {"linear_0_kernel", "linear_0_bias", "linear_1", "layer_norm"}, path
        assert mlp["linear_0_kernel"].shape == first, path
        assert mlp["linear_1"]["kernel"].shape == first[:-2] + (L, L), path
    assert set(p["decoder_grid"]) == {"linear_0_kernel", "linear_0_bias", "linear_1"}
    assert p["decoder_grid"]["linear_1"]["kernel"].shape == (L, 2)
    # The forward pass is the staged reference with swish (and not with relu).
    stages = meshsim.models.graphcast_stages(3)
    expected = np_forward(params, graph, stages, act="swish")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(np.asarray(out) - np_forward(params, graph, stages, act="relu")).max() > 1e-3


# ------------------------------------------------------------------ a different block


class AttentionBlock(InteractionBlock):
    """Messages weighted by a softmax, over each receiver's incoming edges, of a learned score.

    Same constructor keywords and call signature as `meshsim.nn.InteractionBlock` (it
    inherits its fields and MLP factory, and replaces the step).
    """

    @nn.compact
    def __call__(self, latents: GraphFeatures, structure):
        nodes, edges = dict(latents.nodes), dict(latents.edges)
        incoming = {}
        for name, sender, receiver in sorted(self.edge_types):
            senders, receivers = structure[name]
            num = nodes[receiver].shape[0]
            message = self._mlp(f"edge_{name}")(
                [(edges[name], None), (nodes[sender], senders), (nodes[receiver], receivers)]
            )
            score = nn.Dense(1, name=f"score_{name}")(message)
            weight = ops.segment_softmax(score, receivers, num)
            edges[name] = edges[name] + message
            incoming.setdefault(receiver, []).append(
                ops.segment_sum(weight * message, receivers, num)
            )
        for node_set, messages in sorted(incoming.items()):
            v = nodes[node_set]
            parts = [(v, None)] + [(m, None) for m in messages]
            nodes[node_set] = v + self._mlp(f"node_{node_set}")(parts)
        return GraphFeatures(nodes=nodes, edges=edges), None


def test_a_different_block_plugs_in(graph, model_and_params):
    default, default_params = model_and_params
    model = staged(block=AttentionBlock)
    params = _init(model, graph)
    assert params["params"]["proc"]["score_mesh"]["kernel"].shape == (2, LATENT, 1)
    assert "score_grid2mesh" in params["params"]["g2m"]
    out = apply(model, params, graph)
    assert out.shape == (graph.num_nodes("grid"), 2) and np.isfinite(out).all()
    assert np.abs(np.asarray(out) - apply(default, default_params, graph)).max() > 1e-3
    _assert_equivariant(model, params, graph, seed=2)
    # Padding still cannot leak: padded edges only reach padding receivers.
    padded = meshsim.pad(graph, meshsim.PaddingBudget.fit(graph, multiple=8))
    pout = apply(model, params, padded)[: graph.num_nodes("grid")]
    np.testing.assert_allclose(pout, out, rtol=1e-5, atol=1e-5)


def test_attention_block_runs_shared_and_remat(graph):
    stages = (Stage(("grid2mesh", "mesh"), 2, shared=True, name="p"), STAGES[2])
    model = staged(block=AttentionBlock, stages=stages, remat=True)
    params = _init(model, graph)
    assert params["params"]["p"]["score_mesh"]["kernel"].shape == (LATENT, 1)
    out = apply(model, params, graph)
    assert out.shape == (graph.num_nodes("grid"), 2) and np.isfinite(out).all()
    # With remat off (a different program), the same function.
    no_remat = staged(block=AttentionBlock, stages=stages, remat=False)
    np.testing.assert_allclose(apply(no_remat, params, graph), out, rtol=1e-5, atol=1e-5)
