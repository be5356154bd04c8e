"""Device meshes and placement helpers (meshsim.parallel.sharding); checkpoints across devices.

The multi-device checks run in subprocesses with simulated CPU devices (the count
must be set before jax is imported): mesh shapes and errors, batch and train-state
placement on 8 devices, and a train state saved from a 4-way data-sharded layout
restored onto 2 devices and onto 1.
"""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import meshsim
from meshsim.config import OptimizerConfig
from meshsim.parallel import sharding
from meshsim.tasks import cfd_task
from meshsim.training.step import TrainState, make_optimizer
from tests.conftest import run_on_cpu_devices


def tiny_state(seed: int = 0):
    """(simulator, optimizer, TrainState) of a small MeshGraphNet with every leaf non-trivial.

    Built from `jax.eval_shape` and numpy (no compilation); the optimizer moments are
    filled with random values so that a restore that mixed up shards would show.
    """
    sim = meshsim.Simulator(
        meshsim.MeshGraphNet(output_size=2, latent_size=16, num_message_passing_steps=2),
        cfd_task(),
    )
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-3))
    rng = np.random.default_rng(seed)
    fill = lambda x: rng.normal(size=x.shape).astype(x.dtype)
    shapes = jax.eval_shape(sim.model.init, jax.random.key(0), sim.template_graph())
    params = jax.tree_util.tree_map(fill, shapes)
    opt_state = jax.tree_util.tree_map(
        lambda x: fill(x) if jnp.issubdtype(x.dtype, jnp.floating) else x, tx.init(params)
    )
    state = TrainState(
        step=jnp.asarray(7, jnp.int32),
        params=params,
        opt_state=opt_state,
        normalizers=sim.init_normalizers(max_accumulations=1_000_000),
    )
    return sim, tx, state


# --------------------------------------------------------------------------- one device


def test_axis_names_and_one_device_mesh():
    assert sharding.AXES == (sharding.DATA_AXIS, sharding.GRAPH_AXIS) == ("data", "graph")
    mesh = sharding.make_mesh()
    assert dict(mesh.shape) == {"data": 1, "graph": 1}
    assert sharding.describe(mesh) == "data=1 x graph=1 (1 cpu devices)"
    for kwargs, match in [
        (dict(data=2), r"data · graph = 2 · 1 = 2: expected a divisor of the 1 devices"),
        (dict(graph=2), "graph: expected a divisor of the 1 devices, got 2"),
        (dict(graph=0), "graph: expected a positive int, got 0"),
        (dict(data=True), "data: expected a positive int, got True"),
    ]:
        with pytest.raises(ValueError, match=match):
            sharding.make_mesh(**kwargs)


def test_one_device_placement_is_a_no_op():
    _, _, state = tiny_state()
    placed = sharding.shard_train_state(state, sharding.make_mesh(), shard_optimizer=True)
    for a, b in zip(jax.tree_util.tree_leaves(placed), jax.tree_util.tree_leaves(state)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- 8 devices


PLACEMENT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import PartitionSpec as P
    import meshsim
    from meshsim.parallel import sharding as sh
    from meshsim.graph import placeholder_graph
    from meshsim.graph.window import Window
    from tests.test_sharding import tiny_state

    devices = jax.devices()
    assert len(devices) == 8
    shape = lambda m: (m.shape[sh.DATA_AXIS], m.shape[sh.GRAPH_AXIS])
    assert shape(sh.make_mesh()) == (8, 1)
    assert shape(sh.make_mesh(graph=2)) == (4, 2)
    assert shape(sh.make_mesh(graph=8)) == (1, 8)
    small = sh.make_mesh(data=2, graph=2)
    assert shape(small) == (2, 2) and small.devices.size == 4
    # The graph axis is the minor one: a graph's parts sit on neighbouring devices.
    assert list(sh.make_mesh(graph=2).devices[1]) == devices[2:4]
    for kwargs in [dict(graph=3), dict(data=3), dict(data=16), dict(data=2, graph=3)]:
        try:
            sh.make_mesh(**kwargs)
        except ValueError as e:
            assert "expected a divisor of the" in str(e), e
        else:
            raise AssertionError(kwargs)

    # Batches: fields and a stacked graph split over data; a shared graph replicated.
    mesh = sh.make_mesh(graph=2)  # data 4 x graph 2
    one = placeholder_graph({"mesh": 3}, {"mesh": ("mesh", "mesh", 2)})
    stacked = jax.tree_util.tree_map(lambda x: np.stack([x] * 8), one)
    fields = {"velocity": np.arange(8 * 5 * 2, dtype=np.float32).reshape(8, 5, 2)}
    for graph, graph_spec in [(stacked, P(sh.DATA_AXIS)), (one, P())]:
        batch = sh.shard_batch(Window(graph=graph, fields=fields), mesh)
        v = batch.fields["velocity"]
        assert v.sharding.spec == P(sh.DATA_AXIS)
        assert {s.data.shape for s in v.addressable_shards} == {(2, 5, 2)}
        np.testing.assert_array_equal(v, fields["velocity"])
        for leaf in jax.tree_util.tree_leaves(batch.graph):
            assert leaf.sharding.spec == graph_spec, (leaf.sharding, graph_spec)
    assert sh.describe(mesh) == "data=4 x graph=2 (8 cpu devices)"
    try:  # GSPMD graph layout: node and edge counts must split evenly over the graph axis
        sh.graph_shardings(one, mesh)
    except ValueError as e:
        assert "node set 'mesh': expected a multiple of the 2 graph devices, got 1" in str(e), e
    else:
        raise AssertionError("1 node on 2 graph devices")
    try:
        sh.shard_batch(Window(graph=one, fields={"v": np.zeros((6, 5, 2))}), mesh)
    except ValueError as e:
        assert "batch size 6: expected a multiple of the 4 devices" in str(e), e
    else:
        raise AssertionError("batch of 6 on 4 data devices")

    # Train state: parameters and normalizers replicated, optimizer state split over data
    # along its largest axis that 4 divides (replicated when none does).
    sim, tx, state = tiny_state()
    placed = sh.shard_train_state(state, mesh, shard_optimizer=True)
    for leaf in jax.tree_util.tree_leaves((placed.params, placed.normalizers, placed.step)):
        assert leaf.sharding.spec == P(), leaf.sharding
    split = 0
    for leaf, ref in zip(jax.tree_util.tree_leaves(placed.opt_state),
                         jax.tree_util.tree_leaves(state.opt_state)):
        divisible = [i for i, n in enumerate(ref.shape) if n % 4 == 0]
        if divisible:
            axis = max(divisible, key=lambda i: (ref.shape[i], -i))
            want = P(*[sh.DATA_AXIS if i == axis else None for i in range(ref.ndim)])
            split += 1
        else:
            want = P()
        assert leaf.sharding.spec == want, (ref.shape, leaf.sharding.spec, want)
        np.testing.assert_array_equal(leaf, ref)  # gathered back: the original values
    assert split > 10
    # An encoder kernel [11, 16] is split on its second axis, a decoder bias [2] is not.
    mu = placed.opt_state[0].mu["params"]
    assert mu["encoder_node_mesh"]["linear_0_kernel"].sharding.spec == P(None, sh.DATA_AXIS)
    assert mu["decoder_mesh"]["linear_2"]["bias"].sharding.spec == P()
    plain = sh.shard_train_state(state, mesh)
    assert all(leaf.sharding.spec == P() for leaf in jax.tree_util.tree_leaves(plain))

    # A jitted Adam update on the sharded state equals the one on a single device.
    grads = jax.tree_util.tree_map(lambda p: 0.01 * p, state.params)
    update = jax.jit(lambda g, o, p: tx.update(g, o, p))
    want, _ = update(grads, state.opt_state, state.params)
    got, opt = update(jax.device_put(grads, sh.replicated(mesh)), placed.opt_state, placed.params)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    print("PLACEMENT_OK")
    """
)


def test_meshes_batches_and_train_states_on_8_devices():
    assert "PLACEMENT_OK" in run_on_cpu_devices(PLACEMENT, 8)


CHECKPOINT = textwrap.dedent(
    """
    import sys
    import jax, numpy as np
    from meshsim.parallel import sharding as sh
    from meshsim.runs.checkpoint import Checkpointer
    from meshsim.training.step import abstract_train_state
    from tests.test_sharding import tiny_state

    mode, directory = sys.argv[1], sys.argv[2]
    sim, tx, state = tiny_state()
    flat = lambda tree: [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]
    if mode == "save":  # 8 devices: data 4 x graph 2, optimizer state split 4 ways
        mesh = sh.make_mesh(data=4, graph=2)
        placed = sh.shard_train_state(state, mesh, shard_optimizer=True)
        assert any(len(x.sharding.device_set) == 8 and not x.sharding.is_fully_replicated
                   for x in jax.tree_util.tree_leaves(placed.opt_state))
        Checkpointer(directory).save(3, placed)
        np.savez(directory + "/expected.npz", *flat(state))
    else:  # restore onto this process's devices, optimizer state split over all of them
        mesh = sh.make_mesh()
        abstract = abstract_train_state(sim, tx)
        shardings = sh.train_state_shardings(abstract, mesh, shard_optimizer=True)
        restored = Checkpointer(directory).restore(sh.abstract_with_shardings(abstract, shardings))
        expected = np.load(directory + "/expected.npz")
        got = flat(restored)
        assert len(got) == len(expected.files)
        for i, x in enumerate(got):
            np.testing.assert_array_equal(x, expected[f"arr_{i}"])
        leaves = jax.tree_util.tree_leaves(restored)
        assert all(len(x.sharding.device_set) == jax.device_count() for x in leaves)
        print("RESTORED_ON", jax.device_count())
    """
)


def test_checkpoint_saved_on_8_devices_restores_on_2_and_1(tmp_path):
    directory = str(tmp_path / "ckpt")
    run_on_cpu_devices(CHECKPOINT, 8, "save", directory)
    for devices in (2, 1):
        assert f"RESTORED_ON {devices}" in run_on_cpu_devices(
            CHECKPOINT, devices, "restore", directory
        )
