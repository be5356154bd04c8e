"""Partitions of datasets whose trajectories lie on different meshes (`meshsim.parallel.per_mesh`).

Each distinct mesh is cut once and all of their tables are padded to one common
budget; a batch carries each example's tables in its structure (`MultiGraph.parts`).
Checked: the fingerprint tells meshes apart and ignores padding; on 4 simulated
devices a batch of examples on three different channel meshes gives, through graph
parallelism (2 and 4 parts, both halo exchanges, with data parallelism) and through
sequential partitions, each example's unpartitioned output, while no placed array
holds a whole mesh's nodes on one device; and a tiny training run on cylinder-flow
trajectories with different meshes logs the one-device losses under
`parallel.graph=2 × data=2` and `parallel.partitions=2`, keeps each mesh's parts
beside the dataset, and a second run reads them back and logs the same losses.
"""

import json
import textwrap

import jax
import numpy as np
import pytest

from meshsim.graph import PaddingBudget, pad
from meshsim.parallel.per_mesh import MeshCatalog, example_meshes, mesh_fingerprint
from tests.conftest import run_on_cpu_devices
from tests.test_graph_parallel import channel_graph
from tests.test_parallel_training import SETUP


def test_fingerprint_tells_meshes_apart_and_ignores_padding():
    a, _ = channel_graph(0.35)
    b, _ = channel_graph(0.3)
    budget = PaddingBudget.for_dataset([a, b], graphs_per_batch=1, multiple=64)
    assert mesh_fingerprint(pad(a, budget)) == mesh_fingerprint(a)
    assert mesh_fingerprint(a) != mesh_fingerprint(b)
    moved = a.replace(
        edge_sets={
            "mesh": a.edge_sets["mesh"].replace(senders=np.roll(a.edge_sets["mesh"].senders, 1))
        }
    )
    assert mesh_fingerprint(moved) != mesh_fingerprint(a)  # same counts, other edges

    catalog = MeshCatalog()
    calls = []
    for g in (a, b, a, pad(b, budget)):
        catalog.add(g, lambda: calls.append(1) or {"mesh": np.zeros((1, 2))})
    assert len(catalog) == 2 and len(calls) == 2  # positions read once per new mesh
    stacked = jax.tree_util.tree_map(lambda *x: np.stack(x), pad(b, budget), pad(a, budget))
    assert example_meshes(stacked, catalog.index) == [1, 0]
    c, _ = channel_graph(0.4)
    budget_c = PaddingBudget.for_dataset([a, b, c], graphs_per_batch=1, multiple=64)
    other = jax.tree_util.tree_map(lambda *x: np.stack(x), pad(a, budget_c), pad(c, budget_c))
    with pytest.raises(ValueError, match="example 1 lies on a mesh that was not partitioned"):
        example_meshes(other, catalog.index)


def test_budgets_equal_the_cut_sizes_and_each_mesh_is_cut_once(monkeypatch):
    from meshsim.parallel import blocked, partition_budget, partition_graph, partition_nodes
    from meshsim.parallel.graph_parallel import blocked_budget, blocked_graph

    a, pos_a = channel_graph(0.35)
    b, pos_b = channel_graph(0.3)
    for graph, pos in ((a, pos_a), (b, pos_b)):
        for k in (2, 3):
            parts = partition_nodes(pos, k)
            cut = partition_graph(graph, parts, k)
            want = {s: cut.num_local(s) for s in graph.node_sets}
            assert partition_budget(graph, parts, k).n_node == want
            edges = {e: int(cut.edge_index[e].shape[1]) for e in graph.edge_sets}
            assert partition_budget(graph, parts, k).n_edge == edges
            layout, _ = blocked_graph(graph, parts, k)
            sizes = blocked_budget(graph, parts, k)
            assert sizes.n_node == {s: layout.num_nodes(s) // k for s in graph.node_sets}
            assert sizes.n_edge == {e: layout.edge_sets[e].num_edges // k for e in graph.edge_sets}
    calls, plans = [], []
    original, original_plan = blocked._partition_graph, blocked._halo_plan
    monkeypatch.setattr(
        blocked, "_partition_graph", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    monkeypatch.setattr(
        blocked, "_halo_plan", lambda *a, **k: plans.append(1) or original_plan(*a, **k)
    )
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "graph"))
    built = blocked.make_per_mesh_blocked_partition(
        [(a, {"mesh": pos_a}), (b, {"mesh": pos_b})], mesh, node_set="mesh"
    )
    assert len(calls) == 2 and len(built.meshes) == 2  # one cut per mesh
    assert len(plans) == 2  # and one plan per mesh, for its budget and its cut

    import meshsim
    from meshsim.parallel import sequential

    reach = []
    original_reach = sequential._reach
    monkeypatch.setattr(
        sequential, "_reach", lambda *a, **k: reach.append(1) or original_reach(*a, **k)
    )
    model = meshsim.MeshGraphNet(output_size=2, latent_size=8, num_message_passing_steps=2)
    seq = sequential.make_per_mesh_sequential_partition(
        model, [(a, {"mesh": pos_a}), (b, {"mesh": pos_b})], 3
    )
    assert len(reach) == 2 and len(seq.meshes) == 2  # each mesh's K-hop halos found once
    # the same parts as cutting each mesh alone to the common budget
    for (graph, pos), got in zip(((a, pos_a), (b, pos_b)), seq.meshes):
        alone = sequential.sequential_parts(graph, pos, 3, 2, output_node_set="mesh", budget=None)
        for s, index in alone.node_index.items():
            width = index.shape[1]
            np.testing.assert_array_equal(np.asarray(got.node_index[s])[:, :width], index)
            assert (np.asarray(got.node_index[s])[:, width:] == -1).all()


SCRIPT = textwrap.dedent(
    """
    import json
    import jax, numpy as np
    import meshsim
    from meshsim.graph import PaddingBudget, pad
    from meshsim.graph.window import Window
    from meshsim.parallel import sharding as sh
    from meshsim.parallel.blocked import (blocked_batch_shardings,
                                          make_per_mesh_blocked_partition)
    from meshsim.parallel.sequential import make_per_mesh_sequential_partition
    from tests.test_graph_parallel import channel_graph, random_params

    assert jax.device_count() == 4, jax.devices()
    graphs, meshes = [], []
    for i, resolution in enumerate((0.35, 0.3, 0.42)):
        g, pos = channel_graph(resolution, seed=i)
        graphs.append(g)
        meshes.append((g, {"mesh": pos}))
    model = meshsim.MeshGraphNet(output_size=2, latent_size=8, num_message_passing_steps=2,
                                 mlp_hidden_layers=1)
    params = random_params(model, graphs[0])
    want = [np.asarray(model.apply(params, g)) for g in graphs]  # [N_i, 2] each
    budget = PaddingBudget.for_dataset(graphs, graphs_per_batch=1, multiple=64)
    order = [2, 0, 1, 1]  # examples of the batch: meshes 2, 0, 1, 1
    padded = [pad(graphs[m], budget) for m in order]
    stacked = jax.tree_util.tree_map(lambda *x: np.stack(x), *padded)
    n_pad = budget.n_node["mesh"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(order), n_pad, 3)).astype(np.float32)
    out = {}

    for k, data, method in [(2, 2, "all_gather"), (4, 1, "ppermute"), (2, 2, "ppermute")]:
        mesh = sh.make_mesh(data=data, graph=k)
        part = make_per_mesh_blocked_partition(meshes, mesh, node_set="mesh", method=method)
        batch = part.block_batch(Window(graph=stacked, fields={"x": x}))
        placed = jax.device_put(batch, blocked_batch_shardings(batch, mesh))
        run = jax.jit(jax.vmap(lambda g: part.apply(model, params, g)))
        got = np.asarray(run(placed.graph))  # [B, K·R, 2] block order
        name = f"graph{k}_data{data}_{method}"
        out[name] = max(
            float(np.max(np.abs(part.unblock(got[b], mesh=m) - want[m])) / np.max(np.abs(want[m])))
            for b, m in enumerate(order))
        fields = np.asarray(batch.fields["x"])
        out[name + "_fields"] = max(
            float(np.max(np.abs(part.unblock(fields[b], mesh=m) - x[b, : len(want[m])])))
            for b, m in enumerate(order))
        whole = []  # placed arrays with a node or edge axis split fewer than k ways
        for path, leaf in jax.tree_util.tree_leaves_with_path(placed):
            where = jax.tree_util.keystr(path)
            if leaf.ndim < 2 or "n_node" in where or "n_edge" in where or "graph_mask" in where:
                continue  # counts and the graph mask: a few ints per example
            if leaf.addressable_shards[0].data.size * k * data > leaf.size:
                whole.append((where, leaf.shape, leaf.addressable_shards[0].data.shape))
        out[name + "_whole"] = [str(w) for w in whole]

    seq = make_per_mesh_sequential_partition(model, meshes, 3)
    batch = seq.attach_parts(Window(graph=stacked, fields={"x": x}))
    run = jax.jit(jax.vmap(lambda g: seq.apply(model, params, g)))
    got = np.asarray(run(batch.graph))  # [B, N_pad, 2] global order
    out["sequential_p3"] = max(
        float(np.max(np.abs(got[b, : len(want[m])] - want[m])) / np.max(np.abs(want[m])))
        for b, m in enumerate(order))
    out["sequential_padding_rows"] = max(
        float(np.max(np.abs(got[b, len(want[m]):]))) for b, m in enumerate(order))
    print(json.dumps(out))
    """
)


def test_examples_on_different_meshes_equal_one_device_and_stay_split():
    out = json.loads(run_on_cpu_devices(SCRIPT, 4, timeout=900).strip().splitlines()[-1])
    print(json.dumps(out, indent=1))
    for name, value in out.items():
        if name.endswith("_whole"):
            assert value == [], (name, value)  # no array with every node on a device
        elif name.endswith("_fields") or name.endswith("_rows"):
            assert value == 0.0, (name, value)  # a permutation: exact
        else:
            assert value < 1e-5, (name, value)


def test_training_on_different_meshes_matches_one_device(tmp_path):
    script = SETUP.replace(
        "train = [synthetic_cfd_trajectory(nx=9, ny=7, seed=i, steps=8) for i in range(4)]",
        "train = [synthetic_cfd_trajectory(nx=9 + i % 3, ny=7 + i // 2, seed=i, steps=8)"
        " for i in range(4)]",
    ) + textwrap.dedent(
        """
        from meshsim.data import open_dataset
        meshes = {open_dataset(data, "train")[i]["mesh_pos"].shape[1] for i in range(4)}
        assert len(meshes) == 4, meshes  # four different meshes
        import logging
        records = []
        handler = logging.Handler()
        handler.emit = lambda r: records.append(r.getMessage())
        logging.getLogger("meshsim.runs").addHandler(handler)
        logging.getLogger("meshsim.runs").setLevel(logging.INFO)
        graph2 = ["parallel.graph=2", "parallel.data=2"]
        runs = {"one": ["parallel.data=1"], "graph2_data2": graph2,
                "partitions2": ["parallel.data=1", "parallel.partitions=2"],
                "graph2_again": graph2}
        got, cached = {}, {}
        for name, sets in runs.items():
            del records[:]
            state = run_training(apply_overrides(config(6, batch_size=4), sets),
                                 os.path.join(root, name), progress=False)
            got[name] = (losses(os.path.join(root, name)), leaves(state))
            cached[name] = [m for m in records if m.startswith("partitions: ") and "read" in m]
        ref_loss, ref_params = got.pop("one")
        again_loss, _ = got.pop("graph2_again")
        files = sorted(os.listdir(os.path.join(data, "partitions")))
        out = {"cache": {"files": files, "read": cached,
                         "again_equal": again_loss == got["graph2_data2"][0]}}
        for name, (loss, params) in got.items():
            out[name] = {
                "steps": len(loss),
                "loss_rel": [abs(a - b) / abs(b) for a, b in zip(loss, ref_loss)],
                "param_abs": max(float(np.max(np.abs(a - b))) for a, b in zip(params, ref_params)),
            }
        print(json.dumps(out))
        """
    )
    out = json.loads(run_on_cpu_devices(script, 4, str(tmp_path)).strip().splitlines()[-1])
    print(json.dumps(out, indent=1))
    cache = out.pop("cache")
    # Each mesh's parts were cut once per kind of cut and kept beside the dataset; the
    # second graph-parallel run read all four and trained exactly as the first.
    kinds = [name.split("-")[0] for name in cache["files"]]
    assert sorted(kinds) == ["graph"] * 4 + ["sequential"] * 4, cache
    assert cache["read"]["graph2_data2"] == [] and cache["read"]["partitions2"] == [], cache
    assert len(cache["read"]["graph2_again"]) == 1, cache
    assert cache["read"]["graph2_again"][0].startswith("partitions: 4 read from"), cache
    assert cache["again_equal"], cache
    for name, result in out.items():
        assert result["steps"] == 4, (name, result)
        assert max(result["loss_rel"]) < 1e-4, (name, result)
        assert result["param_abs"] < 4e-3, (name, result)
