"""Graph parallelism: spatial partitions with halos, and the partitioned network.

Partition properties are checked against independent numpy computations from
the global graph, on a channel triangle mesh (one node set) and on a small
GraphCast-shaped sphere graph (grid + mesh node sets, grid2mesh / mesh /
mesh2grid edge sets). The partitioned network runs on 8 simulated CPU devices
in a subprocess (the device count must be set before jax is imported) and must
equal the unpartitioned network on the owned nodes, for outputs and for the
gradients of a masked loss, with K = 2 and 4 and both halo exchanges.
"""

import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import cKDTree

import meshsim
from meshsim.meshes import channel_mesh
from meshsim.models import GraphCast
from meshsim.nn import InteractionBlock
from meshsim.parallel import gather_outputs as gather
from meshsim.parallel import (
    graph_parallel,
    partition_graph,
    partition_nodes,
    scatter_edge_fields,
    scatter_fields,
)
from tests.conftest import run_on_cpu_devices

# --------------------------------------------------------------------------- test graphs


def channel_graph(resolution: float = 0.35, seed: int = 0):
    """(MeshGraphNet-shaped graph on a channel mesh, positions [N, 2]); ~256 nodes."""
    mesh = channel_mesh(resolution=resolution)
    senders, receivers = meshsim.edges_from_cells(mesh.cells)
    pos = mesh.points.astype(np.float32)
    rel = pos[senders] - pos[receivers]
    edges = np.concatenate([rel, np.linalg.norm(rel, axis=1, keepdims=True)], 1)
    nodes = np.random.default_rng(seed).normal(size=(mesh.num_nodes, 5)).astype(np.float32)
    return meshsim.make_graph(nodes, {"mesh": (edges, senders, receivers)}), mesh.points


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sphere_graph(n_lat: int = 9, n_lon: int = 18, n_mesh: int = 60, seed: int = 0):
    """A tiny GraphCast-shaped graph: (graph, {"grid": [N_g, 3], "mesh": [N_m, 3]} xyz).

    Grid: a lat-lon grid (poles excluded). Mesh: a Fibonacci sphere, edges to the 5
    nearest vertices, both directions. grid2mesh: each grid point to its 2 nearest mesh
    vertices; mesh2grid: each grid point from its 3 nearest. Edge features: relative
    position (3) and its norm.
    """
    rng = np.random.default_rng(seed)
    lat = np.linspace(-80, 80, n_lat) * np.pi / 180
    lon = np.arange(n_lon) * 2 * np.pi / n_lon
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    grid = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)
    grid = grid.reshape(-1, 3)
    i = np.arange(n_mesh) + 0.5
    z, phi = 1 - 2 * i / n_mesh, np.pi * (1 + 5**0.5) * i
    mesh = _unit(
        np.stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z], -1)
    )
    tree = cKDTree(mesh)
    _, near = tree.query(mesh, 6)
    pairs = np.unique(np.sort(np.stack([np.repeat(near[:, 0], 5), near[:, 1:].ravel()], 1)), axis=0)
    m_s, m_r = (
        np.concatenate([pairs[:, 0], pairs[:, 1]]),
        np.concatenate([pairs[:, 1], pairs[:, 0]]),
    )
    _, g2m = tree.query(grid, 2)
    _, m2g = tree.query(grid, 3)
    grid_ids = np.arange(grid.shape[0])

    def edge_set(s, r, ps, pr, sender, receiver):
        rel = (ps[s] - pr[r]).astype(np.float32)
        feats = np.concatenate([rel, np.linalg.norm(rel, axis=1, keepdims=True)], 1)
        return (feats, s.astype(np.int32), r.astype(np.int32), sender, receiver)

    graph = meshsim.make_graph(
        {
            "grid": rng.normal(size=(grid.shape[0], 4)).astype(np.float32),
            "mesh": mesh.astype(np.float32),
        },
        {
            "grid2mesh": edge_set(np.repeat(grid_ids, 2), g2m.ravel(), grid, mesh, "grid", "mesh"),
            "mesh": edge_set(m_s, m_r, mesh, mesh, "mesh", "mesh"),
            "mesh2grid": edge_set(m2g.ravel(), np.repeat(grid_ids, 3), mesh, grid, "mesh", "grid"),
        },
    )
    return graph, {"grid": grid, "mesh": mesh}


def random_params(model, graph, seed: int = 0):
    """Parameters of the model's shapes with non-trivial biases and LayerNorm scales.

    `jax.eval_shape` plus numpy: compiling `model.init` costs seconds per model.
    """
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name.endswith("kernel"):
            return (rng.normal(size=shape) / np.sqrt(shape[-2])).astype(np.float32)
        base = 1.0 if name == "scale" else 0.0
        return (base + 0.3 * rng.normal(size=shape)).astype(np.float32)

    shapes = jax.eval_shape(model.init, jax.random.key(0), graph)
    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.fixture(scope="module")
def channel():
    return channel_graph()


@pytest.fixture(scope="module")
def sphere():
    return sphere_graph()


# --------------------------------------------------------------------------- bisection


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7, 8])
def test_partition_nodes_balanced_to_one_node(k):
    points = np.random.default_rng(k).normal(size=(1001, 3))
    parts = partition_nodes(points, k)
    assert parts.dtype == np.int32 and parts.shape == (1001,)
    counts = np.bincount(parts, minlength=k)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 1001
    np.testing.assert_array_equal(parts, partition_nodes(points, k))  # deterministic


def test_partition_nodes_cuts_space_into_slabs():
    # Points on a line along y: two parts are y < median and y > median.
    points = np.stack([np.zeros(10), np.arange(10.0)[::-1]], 1)
    np.testing.assert_array_equal(partition_nodes(points, 2), [1] * 5 + [0] * 5)


def test_multi_node_set_parts_are_balanced_and_colocated(sphere):
    _, pos = sphere
    for k in (2, 4, 8):
        parts = partition_nodes(pos, k)
        for name in ("grid", "mesh"):
            counts = np.bincount(parts[name], minlength=k)
            assert counts.max() - counts.min() <= 1
        # Most grid points share a part with their nearest mesh vertex (same cuts; 1/K
        # by chance). Misses sit along the cuts: at K = 8 a part has ~8 mesh vertices.
        _, nearest = cKDTree(pos["mesh"]).query(pos["grid"])
        same = np.mean(parts["grid"] == parts["mesh"][nearest])
        assert same > 0.7, (k, same)


def test_partition_errors(channel, sphere):
    graph, pos = channel
    with pytest.raises(ValueError, match="num_parts"):
        partition_nodes(pos, 0)
    with pytest.raises(ValueError, match="shape"):
        partition_nodes(pos[:, 0], 2)
    with pytest.raises(ValueError, match="one dimension"):
        partition_nodes({"a": np.zeros((3, 2)), "b": np.zeros((3, 3))}, 2)
    parts = partition_nodes(pos, 2)
    with pytest.raises(ValueError, match=r"values in \[0, 2\)"):
        partition_graph(graph, parts + 1, 2)
    with pytest.raises(ValueError, match="shape"):
        partition_graph(graph, parts[:-1], 2)
    with pytest.raises(ValueError, match="unpadded"):
        partition_graph(meshsim.pad(graph, meshsim.PaddingBudget.fit(graph)), parts, 2)
    sgraph, _ = sphere
    with pytest.raises(ValueError, match="node sets"):
        partition_graph(sgraph, np.zeros(sgraph.num_nodes("mesh"), np.int32), 2)


# --------------------------------------------------------------------------- partitioned graph


def _check_partition(graph, pg, k):
    """Every invariant of a PartitionedGraph against the global graph."""
    part = lambda tree, p: jax.tree_util.tree_map(lambda x: np.asarray(x)[p], tree)
    stats = pg.stats()
    for name, ns in graph.node_sets.items():
        gi, owned = np.asarray(pg.global_index[name]), np.asarray(pg.owned[name])
        # Each node owned exactly once, by the part `parts` says, balanced to ±1.
        np.testing.assert_array_equal(np.sort(gi[owned]), np.arange(ns.num_nodes))
        for p in range(k):
            np.testing.assert_array_equal(pg.parts[name][gi[p][owned[p]]], p)
        counts = owned.sum(1)
        assert counts.max() - counts.min() <= 1 and tuple(counts) == stats.owned[name]
        # Local features are the global rows; padding rows are zero.
        local = np.asarray(pg.graph.node_sets[name].features)
        np.testing.assert_array_equal(local[gi >= 0], np.asarray(ns.features)[gi[gi >= 0]])
        assert not local[gi < 0].any()
    for p in range(k):
        meshsim.graph.validate(part(pg.graph, p))
        # Halo = off-part senders of the edges into part p's owned nodes, exactly.
        expected = {n: set() for n in graph.node_sets}
        for es in graph.edge_sets.values():
            s, r = np.asarray(es.senders), np.asarray(es.receivers)
            into = pg.parts[es.receiver][r] == p
            off = into & (pg.parts[es.sender][s] != p)
            expected[es.sender] |= set(s[off].tolist())
        for name in graph.node_sets:
            gi, owned = np.asarray(pg.global_index[name][p]), np.asarray(pg.owned[name][p])
            halo = gi[(gi >= 0) & ~owned]
            assert set(halo.tolist()) == expected[name] and len(halo) == len(expected[name])
            assert stats.halo[name][p] == len(halo)
    for e, es in graph.edge_sets.items():
        idx, les = np.asarray(pg.edge_index[e]), pg.graph.edge_sets[e]
        # Edges assigned by receiver, each exactly once, endpoints mapped consistently.
        np.testing.assert_array_equal(np.sort(idx[idx >= 0]), np.arange(es.num_edges))
        s, r = np.asarray(es.senders), np.asarray(es.receivers)
        for p in range(k):
            real = idx[p] >= 0
            np.testing.assert_array_equal(pg.parts[es.receiver][r[idx[p][real]]], p)
            gs = np.asarray(pg.global_index[es.sender][p])[np.asarray(les.senders[p])[real]]
            gr = np.asarray(pg.global_index[es.receiver][p])[np.asarray(les.receivers[p])[real]]
            np.testing.assert_array_equal(gs, s[idx[p][real]])
            np.testing.assert_array_equal(gr, r[idx[p][real]])
            assert np.all(np.diff(idx[p][real]) > 0)  # global order kept
        cut = int((pg.parts[es.sender][s] != pg.parts[es.receiver][r]).sum())
        assert stats.cut_edges[e] == cut
    for name, t in pg.halo.items():
        gi = np.asarray(pg.global_index[name])
        for p in range(k):
            real = np.asarray(t.owner[p]) >= 0
            rows, owner = np.asarray(t.rows[p])[real], np.asarray(t.owner[p])[real]
            node = gi[p][rows]
            np.testing.assert_array_equal(owner, pg.parts[name][node])
            np.testing.assert_array_equal(gi[owner, np.asarray(t.owner_row[p])[real]], node)
            sent = np.asarray(t.send_rows)[owner, np.asarray(t.send_slot[p])[real]]
            np.testing.assert_array_equal(gi[owner, sent], node)
        for pairs, (send, recv) in zip(dict(pg.rounds)[name], t.rounds):
            for q, p in pairs:
                ok = np.asarray(recv[p]) < gi.shape[1]
                np.testing.assert_array_equal(gi[q][send[q][ok]], gi[p][recv[p][ok]])


@pytest.mark.parametrize("k", [2, 3, 4])
def test_partition_of_a_triangle_mesh(channel, k):
    graph, pos = channel
    pg = partition_graph(graph, partition_nodes(pos, k), k)
    _check_partition(graph, pg, k)
    stats = pg.stats()
    assert all(h > 0 for h in stats.halo["mesh"])  # every part has cross-part edges
    assert 0 < stats.halo_fraction() < 0.5
    assert stats.halo_bytes(128) == sum(stats.halo["mesh"]) * 128 * 4


@pytest.mark.parametrize("k", [2, 4])
def test_partition_of_a_multi_node_set_graph(sphere, k):
    graph, pos = sphere
    pg = partition_graph(graph, partition_nodes(pos, k), k)
    _check_partition(graph, pg, k)
    assert sorted(pg.halo) == ["grid", "mesh"]


def test_one_part_has_no_halo(channel):
    graph, pos = channel
    pg = partition_graph(graph, np.zeros(graph.num_nodes("mesh"), np.int32), 1)
    assert pg.stats().halo == {"mesh": (0,)} and pg.rounds == (("mesh", ()),)
    np.testing.assert_array_equal(
        np.asarray(pg.graph.edge_sets["mesh"].senders[0])[:10],
        np.asarray(graph.edge_sets["mesh"].senders)[:10],
    )


def test_scatter_and_gather_round_trip(sphere):
    graph, pos = sphere
    pg = partition_graph(graph, partition_nodes(pos, 3), 3)
    n = graph.num_nodes("grid")
    fields = {
        "x": np.arange(n * 2, dtype=np.float32).reshape(n, 2),
        "t": np.arange(n, dtype=np.int32),
    }
    local = scatter_fields(pg, fields, "grid")
    assert local["x"].shape == (3, pg.num_local("grid"), 2) and local["t"].dtype == np.int32
    np.testing.assert_array_equal(
        local["t"], np.where(pg.global_index["grid"] >= 0, pg.global_index["grid"], 0)
    )
    back = gather(pg, local, "grid")
    np.testing.assert_array_equal(back["x"], fields["x"])
    # Batched (node axis 1), under jit, with the partition as an argument.
    batch = np.stack([fields["x"], -fields["x"]])
    run = jax.jit(lambda pg, b: gather(pg, scatter_fields(pg, b, "grid", axis=1), "grid", axis=1))
    np.testing.assert_array_equal(run(pg, batch), batch)
    # Edge fields land where the local graph has them.
    e = np.asarray(graph.edge_sets["mesh2grid"].features)
    np.testing.assert_array_equal(
        scatter_edge_fields(pg, e, "mesh2grid"), pg.graph.edge_sets["mesh2grid"].features
    )
    with pytest.raises(ValueError, match="expected 162 entries"):
        scatter_fields(pg, fields["x"][:-1], "grid")


def test_blocked_graph_puts_each_part_in_its_block(channel):
    graph, pos = channel
    parts = partition_nodes(pos, 4)
    blocked, rows = graph_parallel.blocked_graph(graph, parts, 4)
    blocked.validate()
    width = blocked.num_nodes("mesh") // 4
    np.testing.assert_array_equal(rows["mesh"] // width, parts)
    np.testing.assert_array_equal(
        blocked.node_sets["mesh"].features[rows["mesh"]], graph.node_sets["mesh"].features
    )
    es, bes = graph.edge_sets["mesh"], blocked.edge_sets["mesh"]
    real = np.asarray(bes.mask)
    block = np.arange(bes.num_edges) // (bes.num_edges // 4)
    np.testing.assert_array_equal(np.asarray(bes.receivers) // width, block)  # by receiver
    pairs = {(int(s), int(r)) for s, r in zip(rows["mesh"][es.senders], rows["mesh"][es.receivers])}
    assert pairs == set(
        zip(np.asarray(bes.senders)[real].tolist(), np.asarray(bes.receivers)[real].tolist())
    )


# --------------------------------------------------------------------------- the hook


def test_halo_exchange_hook_is_off_by_default_and_sees_updated_sets(sphere):
    graph, _ = sphere
    model = GraphCast(output_size=2, latent_size=4, num_message_passing_steps=2, remat=False)
    assert (
        model.halo_exchange is None
        and InteractionBlock(edge_types=(), latent_size=1).halo_exchange is None
    )
    params = random_params(model, graph)
    seen = []

    def identity(nodes, updated):
        seen.append(updated)
        return nodes

    hooked = model.clone(halo_exchange=identity)
    assert jax.tree_util.tree_structure(
        jax.eval_shape(hooked.init, jax.random.key(0), graph)
    ) == jax.tree_util.tree_structure(params)
    np.testing.assert_array_equal(
        jax.jit(hooked.apply)(params, graph), jax.jit(model.apply)(params, graph)
    )
    assert set(seen) == {("mesh",), ("grid",)}  # g2m and the processor update mesh; m2g grid

    def zero(nodes, updated):
        return {k: (jnp.zeros_like(v) if k in updated else v) for k, v in nodes.items()}

    # Applied after every step, inside nn.scan and remat: zeroed grid latents decode alike.
    out = jax.jit(model.clone(halo_exchange=zero, remat=True).apply)(params, graph)
    np.testing.assert_allclose(out, np.broadcast_to(out[0], out.shape))

    class NoHook(nn.Module):
        edge_types: tuple = ()
        latent_size: int = 1

    with pytest.raises(TypeError, match="no halo_exchange field"):
        GraphCast(output_size=2, block=NoHook, halo_exchange=identity)


# --------------------------------------------------------------------------- 8 devices


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    import meshsim
    from meshsim import normalization as norm
    from meshsim.parallel import graph_parallel as gp
    from meshsim.parallel import sharding as sh
    from meshsim.parallel import gather_outputs, partition_graph, partition_nodes, scatter_fields
    from meshsim.evaluation.metrics import masked_mse
    from tests.test_graph_parallel import channel_graph, random_params, sphere_graph

    assert jax.device_count() == 8, jax.devices()
    which = sys.argv[1]
    if which == "meshgraphnet":
        graph, pos = channel_graph()
        model = meshsim.MeshGraphNet(output_size=2, latent_size=8, num_message_passing_steps=2,
                                     mlp_hidden_layers=1, remat=False)
        cases = [(2, "all_gather", True), (4, "ppermute", False)]
    else:
        graph, pos = sphere_graph()
        model = meshsim.GraphCast(output_size=2, latent_size=8, num_message_passing_steps=2,
                                  remat=False)
        cases = [(2, "ppermute", True), (4, "all_gather", False)]
    out_set = model.output_node_set
    rng = np.random.default_rng(0)
    n = graph.num_nodes(out_set)
    target = rng.normal(size=(n, 2)).astype(np.float32)
    weights = rng.uniform(0, 2, size=n).astype(np.float32) * (rng.random(n) < 0.8)
    params = random_params(model, graph)

    def ref(p):
        loss = lambda q: masked_mse(model.apply(q, graph), target, weights, feature_reduction="sum")
        return model.apply(p, graph), jax.value_and_grad(loss)(p)

    out_ref, (loss_ref, grad_ref) = jax.jit(ref)(params)
    figures = {}
    for k, method, remat in cases:
        m = model.clone(remat=remat)
        pg = partition_graph(graph, partition_nodes(pos, k), k)
        assert all(h > 0 for h in pg.stats().halo[out_set]), pg.stats()
        mesh = sh.make_mesh(data=1, graph=k)
        t, w = scatter_fields(pg, target, out_set), scatter_fields(pg, weights, out_set)

        def part(p, pg, t, w):
            loss = lambda q: gp.partitioned_loss(m, q, pg, mesh, t, w, method=method)
            return gp.partitioned_apply(m, p, pg, mesh, method=method), jax.value_and_grad(loss)(p)

        out, (loss, grad) = jax.jit(part)(params, pg, t, w)
        assert out.sharding.spec == jax.sharding.PartitionSpec(sh.GRAPH_AXIS)
        out = gather_outputs(pg, np.asarray(out), out_set)
        scale = lambda a: float(np.max(np.abs(a)))
        d_out = scale(out - out_ref)
        pairs = list(zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(grad_ref)))
        # (GraphCast's mesh2grid mesh-node MLP feeds nothing: its gradients are 0.)
        d_grad = max(scale(a - b) / scale(b) for a, b in pairs if scale(b) > 0)
        # Outputs: rows are the same sums in the same order; only matmul blocking differs.
        np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-5 * scale(out_ref))
        np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
        # Gradients: sums over nodes/edges in another order (per part, then psum).
        for a, b in pairs:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale(b))
        figures[f"K={k} {method}"] = dict(
            out_abs=d_out, out_rel=d_out / scale(out_ref),
            loss_rel=abs(float(loss) / float(loss_ref) - 1), grad_rel=d_grad)

    if which == "meshgraphnet":
        # Normalizer statistics over owned rows with psum == global statistics.
        k = 4
        pg = partition_graph(graph, partition_nodes(pos, k), k)
        mesh = sh.make_mesh(data=1, graph=k)
        x = np.asarray(graph.node_sets["mesh"].features)
        spec = jax.sharding.PartitionSpec(sh.GRAPH_AXIS)
        update = lambda x, owned: norm.update(
            norm.init_normalizer(5), x[0], owned[0], axis_name=sh.GRAPH_AXIS)
        stats = jax.jit(jax.shard_map(
            update, mesh=mesh, in_specs=(spec, spec), out_specs=jax.sharding.PartitionSpec()))(
            scatter_fields(pg, x), pg.owned_graph().node_sets["mesh"].mask)
        whole = norm.update(norm.init_normalizer(5), x)
        for a, b in zip(norm.mean_and_std(stats), norm.mean_and_std(whole)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert float(stats.count) == x.shape[0]
        # GSPMD: the unpartitioned network on the blocked layout, arrays split over devices.
        blocked, rows = gp.blocked_graph(graph, pg.parts, k)
        blocked = jax.device_put(blocked, sh.graph_shardings(blocked, mesh))
        out = jax.jit(model.apply)(params, blocked)
        assert len(out.sharding.device_set) == k
        d = float(np.max(np.abs(np.asarray(out)[rows["mesh"]] - out_ref)))
        np.testing.assert_allclose(np.asarray(out)[rows["mesh"]], out_ref, rtol=1e-5, atol=1e-5)
        figures["K=4 GSPMD"] = dict(out_abs=d)
    print("FIGURES", json.dumps(figures))
    print("GRAPH_PARALLEL_OK")
    """
)


@pytest.mark.parametrize("model", ["meshgraphnet", "graphcast"])
def test_partitioned_network_equals_one_device(model):
    stdout = run_on_cpu_devices(SCRIPT, 8, model, timeout=900)
    assert "GRAPH_PARALLEL_OK" in stdout
    print(stdout)
