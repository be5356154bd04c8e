"""Partitions kept on disk beside a dataset (`meshsim.parallel.partition_cache`).

Checked on three channel meshes cut into sequential partitions (no devices needed):
the first cut writes one file per mesh and the second reads all three back, giving
tables equal to an uncached cut's; the file depends on the positions (which differ
between meshes), their node set, the kind of cut and the part count; a file that is
corrupt or does not fit its mesh is cut again and rewritten, with a warning; a
directory that cannot be written to leaves the cut uncached, with one warning.
(Graph parallelism's cache, and a training run that reads it back, are checked in
`test_per_mesh_partitions.py`.)
"""

import logging
import os

import jax
import numpy as np
import pytest

from meshsim.models import MeshGraphNet
from meshsim.parallel import PartitionCache
from meshsim.parallel.sequential import make_per_mesh_sequential_partition
from tests.test_graph_parallel import channel_graph

MODEL = MeshGraphNet(output_size=2, latent_size=8, num_message_passing_steps=2)


@pytest.fixture(scope="module")
def meshes():
    """[(structure, {"mesh": [N, 2] positions})] on three different channel meshes."""
    return [
        (graph, {"mesh": points})
        for graph, points in (channel_graph(r, seed=i) for i, r in enumerate((0.4, 0.35, 0.3)))
    ]


def _tables(partition):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(partition.meshes)]


def _assert_same(a, b):
    ta, tb = _tables(a), _tables(b)
    assert len(ta) == len(tb)
    for x, y in zip(ta, tb):
        np.testing.assert_array_equal(x, y)


def test_second_cut_reads_every_mesh_back_and_equals_an_uncached_cut(meshes, tmp_path):
    uncached = make_per_mesh_sequential_partition(MODEL, meshes, 3)
    first = PartitionCache(tmp_path / "partitions")
    _assert_same(make_per_mesh_sequential_partition(MODEL, meshes, 3, cache=first), uncached)
    assert (first.read, first.written) == (0, 3)
    assert len(os.listdir(tmp_path / "partitions")) == 3
    second = PartitionCache(tmp_path / "partitions")
    _assert_same(make_per_mesh_sequential_partition(MODEL, meshes, 3, cache=second), uncached)
    assert (second.read, second.written) == (3, 0)


def test_the_file_depends_on_positions_kind_and_parts(meshes, tmp_path):
    cache = PartitionCache(tmp_path)
    (_, pa), (_, pb) = meshes[0], meshes[1]
    base = cache.path("sequential", 2, pa)
    assert base == cache.path("sequential", 2, {"mesh": pa["mesh"].copy()})
    shifted = {"mesh": pa["mesh"] + np.array([1e-3, 0.0])}
    others = [
        cache.path("sequential", 2, pb),  # another mesh's nodes
        cache.path("sequential", 2, shifted),
        cache.path("sequential", 2, {"grid": pa["mesh"]}),  # another node set
        cache.path("graph", 2, pa),
        cache.path("sequential", 3, pa),
    ]
    assert len({base, *others}) == 6


@pytest.mark.parametrize("damage", ["garbage", "wrong range", "wrong size"])
def test_a_damaged_file_is_cut_again_and_rewritten(meshes, tmp_path, caplog, damage):
    structure, positions = meshes[0]
    cache = PartitionCache(tmp_path)
    make_per_mesh_sequential_partition(MODEL, meshes[:1], 2, cache=cache)
    path = cache.path("sequential", 2, positions)
    good = dict(np.load(path))
    assert sorted(good) == ["parts:mesh"]
    n = structure.num_nodes("mesh")
    if damage == "garbage":
        with open(path, "wb") as f:
            f.write(b"not a zip file")
    else:
        bad = np.full(n, 7) if damage == "wrong range" else np.zeros(n + 1, np.int32)
        np.savez(path, **{"parts:mesh": bad})
    again = PartitionCache(tmp_path)
    with caplog.at_level(logging.WARNING, "meshsim.parallel.partition_cache"):
        got = make_per_mesh_sequential_partition(MODEL, meshes[:1], 2, cache=again)
    assert (again.read, again.written) == (0, 1)
    assert "cutting again" in caplog.text and path in caplog.text
    _assert_same(got, make_per_mesh_sequential_partition(MODEL, meshes[:1], 2))
    np.testing.assert_array_equal(np.load(path)["parts:mesh"], good["parts:mesh"])


def test_an_unwritable_directory_leaves_the_cut_uncached(meshes, tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # a directory inside a regular file cannot be created
    cache = PartitionCache(blocker / "partitions")
    with caplog.at_level(logging.WARNING, "meshsim.parallel.partition_cache"):
        got = make_per_mesh_sequential_partition(MODEL, meshes, 2, cache=cache)
    assert (cache.read, cache.written) == (0, 0)
    assert caplog.text.count("not caching") == 1
    _assert_same(got, make_per_mesh_sequential_partition(MODEL, meshes, 2))
