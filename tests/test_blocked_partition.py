"""Graph parallelism with sharded inputs (`meshsim.parallel.blocked`).

Each device holds only its own part of every example: fields, targets, loss weights
and edges are renumbered into the blocked layout on the host and split over the graph
devices. Checked on 4 simulated CPU devices (a subprocess): the network on a blocked
example equals the unpartitioned network on the global one (MeshGraphNet on a channel
mesh, GraphCast on a grid + multimesh graph, both halo exchanges), and no placed array
of a batch, of the shared structure or of the partition's tables holds every node of
the mesh on one device. Per-node training noise is the same in either layout.
"""

import json
import textwrap

import jax
import numpy as np
import pytest

from meshsim.graph.window import NODE_INDEX, node_normal
from tests.conftest import run_on_cpu_devices

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    import meshsim
    from meshsim.graph.window import Window
    from meshsim.parallel import graph_parallel as gp
    from meshsim.parallel import sharding as sh
    from meshsim.parallel.blocked import blocked_batch_shardings, make_blocked_partition
    from tests.test_graph_parallel import channel_graph, random_params, sphere_graph

    assert jax.device_count() == 4, jax.devices()
    out = {}
    for which, k, method in [("meshgraphnet", 2, "all_gather"), ("meshgraphnet", 4, "ppermute"),
                             ("graphcast", 2, "ppermute"), ("graphcast", 4, "all_gather")]:
        if which == "meshgraphnet":
            graph, pos = channel_graph()
            pos = {"mesh": pos}
            model = meshsim.MeshGraphNet(output_size=2, latent_size=8,
                                         num_message_passing_steps=2, mlp_hidden_layers=1)
        else:
            graph, pos = sphere_graph()
            model = meshsim.GraphCast(output_size=2, latent_size=8, num_message_passing_steps=2)
        out_set = model.output_node_set
        mesh = sh.make_mesh(data=4 // k, graph=k)
        part = make_blocked_partition(graph, pos, mesh, node_set=out_set, method=method)
        params = random_params(model, graph)
        want = np.asarray(model.apply(params, graph))  # [N_out, 2] global order

        # The example in the blocked layout (`blocked_graph` renumbers the features too).
        example, _ = gp.blocked_graph(graph, part.pgraph.parts, k)
        got = jax.jit(lambda p, g: part.apply(model, p, g))(params, example)
        got = part.unblock(np.asarray(got), out_set)
        name = f"{which}_k{k}_{method}"
        out[name] = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))

        # Shardings: a placed batch, the structure and the tables split every node axis.
        fields = {"x": np.ones((4 // k * 2, graph.num_nodes(out_set), 3), np.float32)}
        batch = part.block_batch(Window(graph=graph, fields=fields))
        placed = jax.device_put(batch, blocked_batch_shardings(batch, mesh))
        whole = []  # arrays split fewer than k ways (every one with a node or edge axis)
        for path, leaf in jax.tree_util.tree_leaves_with_path(
                (placed, part.tables)):
            where = jax.tree_util.keystr(path)
            if leaf.ndim == 0 or "n_node" in where or "n_edge" in where or "graph_mask" in where:
                continue  # counts and the graph mask: a few ints, replicated
            if leaf.addressable_shards[0].data.size * k > leaf.size:
                whole.append((where, leaf.shape, leaf.addressable_shards[0].data.shape))
        out[name + "_whole"] = [str(w) for w in whole]
    print(json.dumps(out))
    """
)


def test_blocked_network_equals_one_device_and_splits_every_node_axis():
    out = json.loads(run_on_cpu_devices(SCRIPT, 4, timeout=900).strip().splitlines()[-1])
    for name, value in out.items():
        if name.endswith("_whole"):
            assert value == [], (name, value)  # no array with every node on a device
        else:
            assert value < 1e-5, (name, value)


def test_node_noise_follows_the_node_not_the_row():
    rng = jax.random.key(3)
    shape = (7, 2)
    plain = np.asarray(node_normal(rng, {}, shape))
    np.testing.assert_array_equal(plain, np.asarray(jax.random.normal(rng, shape)))  # as before
    perm = np.array([4, 0, 6, 2, 1, 5, 3])
    moved = np.asarray(node_normal(rng, {NODE_INDEX: perm}, shape))
    np.testing.assert_array_equal(moved, plain[perm])
    many = np.asarray(node_normal(rng, {}, (20_000, 2)))  # standard normal, independent
    assert abs(many.mean()) < 0.03 and abs(many.std() - 1) < 0.02
    assert abs(np.corrcoef(many[:-1, 0], many[1:, 0])[0, 1]) < 0.03  # neighbouring nodes
    assert abs(np.corrcoef(many[:, 0], many[:, 1])[0, 1]) < 0.03  # components


def test_block_batch_refuses_an_example_on_another_mesh():
    from meshsim.graph.window import Window
    from meshsim.parallel.blocked import make_blocked_partition
    from meshsim.parallel.sharding import make_mesh
    from tests.test_graph_parallel import channel_graph

    graph, pos = channel_graph()
    part = make_blocked_partition(graph, {"mesh": pos}, make_mesh(data=1, graph=1), node_set="mesh")
    n = graph.num_nodes("mesh")
    mask = np.arange(n) < n - 1  # one node fewer: another mesh
    smaller = graph.replace(node_sets={"mesh": graph.node_sets["mesh"].replace(mask=mask)})
    stacked = jax.tree_util.tree_map(lambda x: np.stack([x, x]), smaller)
    with pytest.raises(ValueError, match="partitioned mesh"):
        part.block_batch(Window(graph=stacked, fields={"x": np.zeros((2, n, 1), np.float32)}))
