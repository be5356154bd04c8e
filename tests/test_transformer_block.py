"""The graph-transformer block (`meshsim.TransformerBlock`) against its definition.

A dense masked-attention reference in numpy float64 (an N_r × N_s score matrix per
head, -inf where no real edge joins two nodes, a row softmax) pins one step of the
block, run in float64, on a ~64-node random graph with two node sets (a self edge
set and one each way between the sets), padding edges (some pointing at real nodes,
so only the mask keeps them out) and receivers with no incoming edge. Properties:
permutation equivariance, padding invariance, nn.scan + remat equal to the unrolled
stack. Graph parallelism: tests/test_transformer_parallel.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meshsim
from meshsim.attention import TransformerBlock, segment_attention, transformer_block_param_count
from meshsim.graph import GraphFeatures
from meshsim.models import EncodeProcessDecode, Stage, meshgraphnet_param_count
from tests.conftest import mesh_graph, np_mlp

LATENT, HEADS = 16, 4
N_A, N_B = 64, 12  # real nodes of the two node sets; one padding row each
EDGE_TYPES = (("aa", "a", "a"), ("ab", "a", "b"), ("ba", "b", "a"))
LONELY_A, LONELY_B = 7, 3  # receive no real edge


def random_block_inputs(seed: int = 0):
    """(latents, structure {name: (senders, receivers, mask)}, real edges {name: [E] bool})
    in float64 numpy: node sets a (64 + 1 padding row) and b (12 + 1), unique real
    (sender, receiver) pairs per edge set, masked edges to the padding rows and to real
    nodes."""
    rng = np.random.default_rng(seed)
    sizes = {"a": N_A, "b": N_B}
    nodes = {k: rng.normal(size=(n + 1, LATENT)) for k, n in sizes.items()}
    structure, edges = {}, {}
    for name, s, r in EDGE_TYPES:
        count = {"aa": 320, "ab": 40, "ba": 60}[name]
        lonely = LONELY_A if r == "a" else LONELY_B
        pairs = set()
        while len(pairs) < count:
            i, j = int(rng.integers(sizes[s])), int(rng.integers(sizes[r]))
            if j != lonely and (s != r or i != j):
                pairs.add((i, j))
        real = np.array(sorted(pairs, key=lambda p: (p[1], p[0])))
        # Padding: edges between the padding rows, and masked edges between real nodes
        # (only the mask keeps those out).
        pad = np.array([[sizes[s], sizes[r]]] * 5 + [[0, lonely], [1, 2], [2, lonely]])
        both = np.concatenate([real, pad])
        mask = np.arange(len(both)) < len(real)
        order = rng.permutation(len(both))
        both, mask = both[order], mask[order]
        structure[name] = (both[:, 0].astype(np.int32), both[:, 1].astype(np.int32), mask)
        edges[name] = rng.normal(size=(len(both), LATENT))
    return GraphFeatures(nodes=nodes, edges=edges), structure


def random_params(module, *args, seed=0, dtype=np.float64):
    """Parameters of the module's shapes with non-trivial biases and norm scales."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name.endswith("kernel"):
            x = rng.normal(size=shape) / np.sqrt(shape[-2])
        elif name == "scale":
            x = 1 + 0.2 * rng.normal(size=shape)
        else:
            x = 0.2 * rng.normal(size=shape)
        return x.astype(dtype)

    shapes = jax.eval_shape(module.init, jax.random.key(0), *args)
    return jax.tree_util.tree_map_with_path(fill, shapes)


def block(**kwargs) -> TransformerBlock:
    config = dict(
        edge_types=EDGE_TYPES,
        latent_size=LATENT,
        num_heads=HEADS,
        num_hidden_layers=1,
        dtype=jnp.float64,
    )
    return TransformerBlock(**{**config, **kwargs})


# --------------------------------------------------------------------------- reference


def np_norm(p, x, kind):
    if kind == "layer":
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"]
    return x / np.sqrt(np.mean(x**2, -1, keepdims=True) + 1e-5) * p["scale"]


def np_dense_attention(p, xs, xr, u, senders, receivers, heads):
    """Dense masked multi-head attention: [N_r, N_s, H] scores, -inf off the edges."""
    nr, ns = xr.shape[0], xs.shape[0]
    d = p["query"]["kernel"].shape[1] // heads
    q = (xr @ p["query"]["kernel"]).reshape(nr, heads, d)
    kv = (xs @ p["key_value"]["kernel"]).reshape(ns, heads, 2 * d)
    k, v = kv[..., :d], kv[..., d:]
    be = u @ p["edge"]["kernel"]
    bias = np.zeros((nr, ns, heads))
    edge_values = np.zeros((nr, ns, heads, d))
    adjacency = np.zeros((nr, ns), bool)
    bias[receivers, senders] = be[:, :heads]
    edge_values[receivers, senders] = be[:, heads:].reshape(-1, heads, d)
    adjacency[receivers, senders] = True
    scores = np.einsum("rhd,shd->rsh", q, k) / np.sqrt(d) + bias
    scores = np.where(adjacency[..., None], scores, -np.inf)
    peak = scores.max(1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    w = np.exp(scores - peak)
    alpha = w / np.maximum(w.sum(1, keepdims=True), 1e-300)  # rows without edges: 0
    out = np.einsum("rsh,rshd->rhd", alpha, v[None] + edge_values)
    return out.reshape(nr, heads * d) @ p["output"]["kernel"]


def np_block(params, latents, structure, kind):
    """One TransformerBlock step from its definition (module doc of meshsim.attention)."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["params"])
    v = {k: np.asarray(x, np.float64) for k, x in latents.nodes.items()}
    e = {k: np.asarray(x, np.float64) for k, x in latents.edges.items()}
    x = {n: np_norm(p[f"norm_attention_{n}"], v[n], kind) for n in v}
    attended = {n: 0.0 for n in v}
    new_e = dict(e)
    for name, s, r in sorted(EDGE_TYPES):
        senders, receivers, mask = structure[name]
        a = np_norm(p[f"norm_edge_{name}"], e[name], kind)
        u = np_mlp(p[f"edge_{name}"], [a, x[s][senders], x[r][receivers]], True)
        new_e[name] = e[name] + u
        real = np.asarray(mask)
        attended[r] = attended[r] + np_dense_attention(
            p[f"attention_{name}"], x[s], x[r], u[real], senders[real], receivers[real], HEADS
        )
    out = {}
    for n in v:
        h = v[n] + attended[n]
        y = np_norm(p[f"norm_mlp_{n}"], h, kind)
        gate, up = np.split(y @ p[f"mlp_{n}"]["gate_up"]["kernel"], 2, axis=-1)
        silu = gate / (1 + np.exp(-gate))
        out[n] = h + (silu * up) @ p[f"mlp_{n}"]["down"]["kernel"]
    return out, new_e


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_block_equals_dense_masked_attention_in_float64(kind):
    with jax.enable_x64(True):
        latents, structure = random_block_inputs()
        module = block(norm=kind)
        params = random_params(module, latents, structure)
        (got, _) = jax.jit(module.apply)(params, latents, structure)
        want_nodes, want_edges = np_block(params, latents, structure, kind)
        diffs = []
        for n, rows in (("a", N_A), ("b", N_B)):
            assert got.nodes[n].dtype == jnp.float64
            diffs.append(np.abs(np.asarray(got.nodes[n])[:rows] - want_nodes[n][:rows]).max())
        for name, (_, _, mask) in structure.items():
            diffs.append(np.abs(np.asarray(got.edges[name])[mask] - want_edges[name][mask]).max())
        print(f"max |block - dense reference| ({kind}):", max(diffs))
        assert max(diffs) < 1e-6
        # A receiver with no real edge gets no attention: the gated MLP alone moves it.
        p = jax.tree_util.tree_map(np.asarray, params["params"])
        v = np.asarray(latents.nodes["a"])[LONELY_A]
        y = np_norm(p["norm_mlp_a"], v[None], kind)
        gate, up = np.split(y @ p["mlp_a"]["gate_up"]["kernel"], 2, axis=-1)
        alone = v + ((gate / (1 + np.exp(-gate))) * up) @ p["mlp_a"]["down"]["kernel"]
        np.testing.assert_allclose(np.asarray(got.nodes["a"])[LONELY_A], alone[0], atol=1e-12)


def test_segment_attention_is_stable_and_masks_padding():
    """Huge scores do not overflow (the per-receiver max is subtracted); masked edges
    and edgeless receivers give 0 with finite gradients."""
    scores = jnp.array([[1000.0], [999.0], [5.0], [1e30]])
    values = jnp.arange(4.0).reshape(4, 1, 1)
    receivers = jnp.array([0, 0, 1, 1])
    mask = jnp.array([True, True, False, False])
    out = segment_attention(scores, values, receivers, 3, mask)
    w = np.exp([0.0, -1.0])
    np.testing.assert_allclose(out[:, 0, 0], [w @ [0.0, 1.0] / w.sum(), 0.0, 0.0], rtol=1e-6)
    grad = jax.grad(lambda s: segment_attention(s, values, receivers, 3, mask).sum())(scores)
    assert np.isfinite(grad).all() and np.all(np.asarray(grad)[2:] == 0)


# --------------------------------------------------------------------------- properties


def test_permutation_equivariance():
    """Renumbering the nodes of each set and reordering the edges permutes the outputs."""
    with jax.enable_x64(True):
        latents, structure = random_block_inputs(seed=1)
        module = block()
        params = random_params(module, latents, structure, seed=1)
        rng = np.random.default_rng(2)
        perm = {n: rng.permutation(x.shape[0]) for n, x in latents.nodes.items()}
        inverse = {n: np.argsort(p) for n, p in perm.items()}  # old index -> new row
        nodes = {n: latents.nodes[n][perm[n]] for n in perm}
        edges, moved, order = {}, {}, {}
        for name, s, r in EDGE_TYPES:
            senders, receivers, mask = structure[name]
            order[name] = rng.permutation(len(senders))
            o = order[name]
            moved[name] = (inverse[s][senders[o]], inverse[r][receivers[o]], mask[o])
            edges[name] = latents.edges[name][o]
        apply = jax.jit(module.apply)
        (a, _), (b, _) = (
            apply(params, latents, structure),
            apply(params, GraphFeatures(nodes=nodes, edges=edges), moved),
        )
        for n in perm:
            np.testing.assert_allclose(b.nodes[n], np.asarray(a.nodes[n])[perm[n]], atol=1e-10)
        for name in order:
            np.testing.assert_allclose(
                b.edges[name], np.asarray(a.edges[name])[order[name]], atol=1e-10
            )


def _staged(**kwargs) -> EncodeProcessDecode:
    config = dict(
        output_size=2,
        output_node_set="grid",
        latent_size=LATENT,
        mlp_hidden_layers=1,
        stages=(
            Stage(("grid2mesh",), 1, name="g2m"),
            Stage(("mesh",), 2, name="proc"),
            Stage(("mesh2grid",), 1, name="m2g"),
        ),
        block=TransformerBlock,
        block_options=(("num_heads", HEADS),),
        remat=False,
    )
    return EncodeProcessDecode(**{**config, **kwargs})


def test_padding_invariance():
    """Padding nodes and edges (jraph's convention) change no real output; neither do
    masked edges re-pointed at real nodes (the mask, not their ends, keeps them out)."""
    from tests.test_typed_graph import two_set_graph

    graph = two_set_graph(0, n_grid=9, n_mesh=6)
    model = _staged()
    params = random_params(model, graph, dtype=np.float32)
    apply = jax.jit(model.apply)
    out = np.asarray(apply(params, graph))
    budget = meshsim.PaddingBudget.fit(graph, multiple=16)
    padded = meshsim.pad(graph, budget)
    n = graph.num_nodes("grid")
    np.testing.assert_allclose(np.asarray(apply(params, padded))[:n], out, atol=1e-6)
    edge_sets = {}
    for name, es in padded.edge_sets.items():
        pad = ~np.asarray(es.mask)
        s, r = np.asarray(es.senders).copy(), np.asarray(es.receivers).copy()
        s[pad], r[pad] = 0, 0  # real nodes
        edge_sets[name] = es.replace(senders=s, receivers=r)
    leaky = padded.replace(edge_sets=edge_sets)
    np.testing.assert_allclose(np.asarray(apply(params, leaky))[:n], out, atol=1e-6)


def test_scan_and_remat_equal_the_unrolled_stack():
    """Three scanned, rematerialised steps = three single-step stages with the same
    weights, for outputs and gradients."""
    graph = mesh_graph(6, 5)
    scanned = meshsim.MeshGraphNet(
        output_size=2,
        latent_size=LATENT,
        num_message_passing_steps=3,
        block=TransformerBlock,
        block_options=(("num_heads", HEADS), ("norm", "rms")),
        remat=True,
    )
    unrolled = scanned.clone(
        stages=tuple(Stage(("mesh",), 1, name=f"step_{i}") for i in range(3)), remat=False
    )
    params = random_params(scanned, graph, dtype=np.float32)
    p = dict(params["params"])
    stack = p.pop("processor")
    for i in range(3):
        p[f"step_{i}"] = jax.tree_util.tree_map(lambda a, i=i: a[i], stack)
    unrolled_params = {"params": p}
    assert jax.tree_util.tree_structure(unrolled_params) == jax.tree_util.tree_structure(
        jax.eval_shape(unrolled.init, jax.random.key(0), graph)
    )

    def value_and_grad(model, q):
        def loss(q):
            out = model.apply(q, graph)
            return jnp.mean(out**2), out

        return jax.jit(jax.value_and_grad(loss, has_aux=True))(q)

    (_, out_s), g_s = value_and_grad(scanned, params)
    (_, out_u), g_u = value_and_grad(unrolled, unrolled_params)
    np.testing.assert_allclose(out_s, out_u, rtol=1e-5, atol=1e-6)
    for i in range(3):
        step = jax.tree_util.tree_map(lambda a, i=i: a[i], g_s["params"]["processor"])
        for a, b in zip(
            jax.tree_util.tree_leaves(step), jax.tree_util.tree_leaves(g_u["params"][f"step_{i}"])
        ):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * float(np.abs(b).max()))


def test_parameter_count_formula():
    """The closed form equals the parameters flax creates, and is stated against the
    interaction block at latent 128 (one edge set, one node set, 2 hidden layers)."""
    graph = mesh_graph(4, 4)
    for options in ((("num_heads", 4),), (("num_heads", 2), ("head_size", 8), ("norm", "rms"))):
        model = meshsim.MeshGraphNet(
            output_size=2,
            latent_size=LATENT,
            num_message_passing_steps=2,
            block=TransformerBlock,
            block_options=options,
        )
        shapes = jax.eval_shape(model.init, jax.random.key(0), graph)["params"]["processor"]
        o = dict(options)
        expected = 2 * transformer_block_param_count(
            latent=LATENT,
            edge_sets=1,
            node_sets=1,
            num_heads=o["num_heads"],
            head_size=o.get("head_size"),
            norm=o.get("norm", "layer"),
        )
        assert meshsim.count_params(shapes) == expected
    at_128 = transformer_block_param_count(latent=128, edge_sets=1, node_sets=1)
    mgn = meshgraphnet_param_count(node_input=1, edge_inputs={"mesh": 1}, output_size=1, steps=1)
    interaction = mgn - meshgraphnet_param_count(
        node_input=1, edge_inputs={"mesh": 1}, output_size=1, steps=0
    )
    assert (at_128, interaction) == (264_064, 148_736)


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="head_size: None means latent_size / num_heads"):
        meshsim.MeshGraphNet(
            output_size=2, latent_size=10, block=TransformerBlock, block_options=(("num_heads", 4),)
        )
    with pytest.raises(ValueError, match=r"norm: expected one of \('layer', 'rms'\)"):
        meshsim.MeshGraphNet(output_size=2, block=TransformerBlock, block_options=(("norm", "x"),))
    with pytest.raises(ValueError, match="block_options: 'heads' is not a setting of"):
        meshsim.MeshGraphNet(output_size=2, block=TransformerBlock, block_options=(("heads", 4),))
    with pytest.raises(ValueError, match="block_options: 'latent_size' is not a setting"):
        meshsim.MeshGraphNet(
            output_size=2, block=TransformerBlock, block_options=(("latent_size", 4),)
        )


def test_bfloat16_matmuls_stay_close_to_float32():
    """bfloat16 matmuls (accelerators), float32 norms, softmax and sums: outputs float32,
    within bfloat16's rounding of the float32 block."""
    latents, structure = random_block_inputs(seed=3)
    latents = jax.tree_util.tree_map(lambda a: a.astype(np.float32), latents)
    f32 = block(dtype=jnp.float32)
    params = random_params(f32, latents, structure, dtype=np.float32)
    (a, _), (b, _) = (
        jax.jit(m.apply)(params, latents, structure) for m in (f32, block(dtype=jnp.bfloat16))
    )
    for n in a.nodes:
        assert b.nodes[n].dtype == jnp.float32
        scale = float(np.abs(a.nodes[n]).max())
        assert float(np.abs(np.asarray(b.nodes[n]) - np.asarray(a.nodes[n])).max()) < 0.05 * scale
