"""The transformer block under graph parallelism: a graph cut into 2 and 4 parts on
simulated CPU devices (a subprocess: the device count must be set before jax is
imported) gives the unpartitioned network's outputs and gradients, through the
simulator's path (`meshsim.parallel.graph_parallel.GraphPartition`) with both halo
exchanges. The same check as tests/test_graph_parallel.py makes for the interaction
block."""

import textwrap

from tests.conftest import run_on_cpu_devices

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, numpy as np
    import meshsim
    from meshsim.attention import TransformerBlock
    from meshsim.evaluation.metrics import masked_mse
    from meshsim.parallel import graph_parallel as gp
    from meshsim.parallel import sharding as sh
    from tests.test_graph_parallel import channel_graph, random_params, sphere_graph

    assert jax.device_count() == 4, jax.devices()
    options = (("num_heads", 2),)
    setups = {
        "meshgraphnet": (channel_graph(), meshsim.MeshGraphNet(
            output_size=2, latent_size=8, num_message_passing_steps=2, mlp_hidden_layers=1,
            block=TransformerBlock, block_options=options, remat=False),
            [(2, "all_gather"), (4, "ppermute")]),
        "graphcast": (sphere_graph(), meshsim.GraphCast(
            output_size=2, latent_size=8, num_message_passing_steps=2,
            block=TransformerBlock, block_options=options, remat=False),
            [(2, "ppermute"), (4, "all_gather")]),
    }
    scale = lambda a: float(np.max(np.abs(a)))
    figures = {}
    for which, ((graph, pos), model, cases) in setups.items():
        rng = np.random.default_rng(0)
        n = graph.num_nodes(model.output_node_set)
        target = rng.normal(size=(n, 2)).astype(np.float32)
        weights = rng.uniform(0, 2, size=n).astype(np.float32) * (rng.random(n) < 0.8)
        params = random_params(model, graph)

        def run(apply):  # (loss, outputs [N, 2]), gradients of the loss
            def loss(q):
                out = apply(q)
                return masked_mse(out, target, weights, feature_reduction="sum"), out
            return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

        (loss_ref, out_ref), grad_ref = run(lambda q: model.apply(q, graph))
        for k, method in cases:
            mesh = sh.make_mesh(data=1, graph=k)
            where = pos if isinstance(pos, dict) else {"mesh": pos}
            part = gp.make_graph_partition(graph, where, mesh, method=method)
            assert all(h > 0 for h in part.pgraph.stats().halo[model.output_node_set])
            (loss, out), grad = run(lambda q: part.apply(model, q, graph))
            pairs = list(zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(grad_ref)))
            d_out = scale(out - out_ref) / scale(out_ref)
            d_grad = max(scale(a - b) / scale(b) for a, b in pairs if scale(b) > 0)
            assert d_out <= 1e-5 and d_grad <= 1e-5, (which, k, d_out, d_grad)
            np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
            figures[f"{which} K={k} {method}"] = dict(out_rel=d_out, grad_rel=d_grad)
    print("FIGURES", json.dumps(figures))
    print("TRANSFORMER_PARALLEL_OK")
    """
)


def test_graph_parallel_equals_one_device():
    """Partitioned (2 and 4 parts, both halo exchanges) = one device, for the outputs and
    the gradients of a masked loss (max difference over max magnitude ≤ 1e-5), on a
    MeshGraphNet-shaped and a GraphCast-shaped graph."""
    stdout = run_on_cpu_devices(SCRIPT, 4, timeout=600)
    assert "TRANSFORMER_PARALLEL_OK" in stdout
    print(stdout)
