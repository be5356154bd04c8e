"""Out-of-core training data (issue 26, item 4): windows read from HDF5 frame by frame
through a byte-bounded cache give the in-memory pipeline's batches exactly."""

import dataclasses

import h5py
import jax
import numpy as np
import pytest

from meshsim import config as C
from meshsim import data
from meshsim.data.frame_cache import FrameCache
from meshsim.tasks import cfd_task, cloth_task
from meshsim.training import batches as pipeline
from tests.conftest import synthetic_cfd_trajectory, synthetic_cloth_trajectory

T = 9  # frames per trajectory


def _write(root, make, count=4, steps=T):
    trajectories = [make(seed=i, steps=steps) for i in range(count)]
    data.write_hdf5_split(root, "train", trajectories, data.infer_meta(trajectories[0]))
    return data.open_dataset(root, "train"), trajectories


def _frame_bytes(dataset, field):
    with h5py.File(dataset.path, "r") as f:
        ds = f[f"00000/{field}"]
        return int(np.prod(ds.shape[1:])) * ds.dtype.itemsize


def _leaves(batch):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(batch)]


CASES = {
    "cfd": (synthetic_cfd_trajectory, cfd_task()),
    "cloth+world_edges": (
        synthetic_cloth_trajectory,
        dataclasses.replace(cloth_task(), world_radius=0.3),
    ),
}


@pytest.mark.parametrize("horizon", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_out_of_core_batches_equal_the_in_memory_ones(tmp_path, case, horizon):
    make, task = CASES[case]
    dataset, _ = _write(tmp_path, make)
    budget = pipeline.dataset_budget(dataset, task)
    # Room for 3 frames of the state: far less than one window pool, so frames are evicted.
    cache = FrameCache(3 * _frame_bytes(dataset, task.state_field))
    common = dict(batch_size=3, budget=budget, seed=5, pool_size=2, horizon=horizon)
    eager = pipeline.iter_batches(dataset, task, **common)
    lazy = pipeline.iter_batches(dataset, task, cache=cache, **common)
    for _ in range(8):  # several steps, across pools and an epoch boundary
        a, b = _leaves(next(eager)), _leaves(next(lazy))
        assert len(a) == len(b)
        assert all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))
        assert 0 < cache.nbytes <= cache.max_bytes
    assert cache.peak_bytes <= cache.max_bytes
    assert cache.misses > 0


def test_a_resumed_out_of_core_stream_is_the_uninterrupted_one(tmp_path):
    dataset, _ = _write(tmp_path, synthetic_cfd_trajectory)
    task = cfd_task()
    budget = pipeline.dataset_budget(dataset, task)
    common = dict(batch_size=2, budget=budget, seed=1, pool_size=2)
    whole = pipeline.iter_batches(dataset, task, cache=FrameCache(10_000), **common)
    for _ in range(3):
        next(whole)
    resumed = pipeline.iter_batches(dataset, task, start_step=3, cache=FrameCache(500), **common)
    a, b = _leaves(next(whole)), _leaves(next(resumed))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_the_cache_holds_at_most_its_cap_least_recently_used_out():
    cache = FrameCache(250)
    frames = {k: np.full(10, k, np.float64) for k in range(5)}  # 80 bytes each
    for k in range(3):
        assert np.array_equal(cache.get(k, lambda k=k: frames[k]), frames[k])
    assert cache.keys() == [0, 1, 2] and cache.nbytes == 240
    cache.get(0, lambda: pytest.fail("frame 0 is cached"))  # a hit: 0 is now the newest
    cache.get(3, lambda: frames[3])  # evicts 1, the least recently used
    assert cache.keys() == [2, 0, 3] and cache.nbytes == 240
    assert (cache.hits, cache.misses) == (1, 4)
    big = cache.get("big", lambda: np.zeros(100))  # 800 bytes > cap: returned, not kept
    assert big.shape == (100,) and "big" not in cache and cache.nbytes <= cache.max_bytes
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        cache.get(3, lambda: None)[0] = 1.0


def test_a_window_reads_only_its_frames(tmp_path):
    dataset, trajectories = _write(tmp_path, synthetic_cfd_trajectory)
    task = cfd_task()
    cache = FrameCache(10**6)
    lazy = dataset.lazy(1, cache)
    assert lazy.lazy_fields == ("velocity", "pressure")
    graph = task.structure(lazy)
    assert len(cache) == 0 and cache.misses == 0  # the mesh task's structure reads no frame
    assert task.num_frames(lazy) == T and cache.misses == 0
    window = task.window(lazy, 4, graph, horizon=2)
    assert sorted(cache.keys()) == [(dataset.path, 1, "velocity", t) for t in (4, 5, 6)]
    assert cache.misses == 3  # pressure and the other frames were never read
    eager = task.window(trajectories[1], 4, task.structure(trajectories[1]), horizon=2)
    for name, value in eager.fields.items():
        np.testing.assert_array_equal(window.fields[name], value)


def test_world_edge_structure_reads_only_its_sample_frames(tmp_path):
    dataset, trajectories = _write(tmp_path, synthetic_cloth_trajectory, count=1, steps=40)
    task = dataclasses.replace(cloth_task(), world_radius=0.3)
    cache = FrameCache(10**6)
    lazy = dataset.lazy(0, cache)
    lazy_leaves = jax.tree_util.tree_leaves(task.structure(lazy))
    eager_leaves = jax.tree_util.tree_leaves(task.structure(trajectories[0]))
    assert all(np.array_equal(a, b) for a, b in zip(lazy_leaves, eager_leaves))
    sample = np.unique(np.linspace(0, 39, 16).astype(int))
    assert sorted(k[-1] for k in cache.keys()) == sample.tolist()  # 16 frames of 40


def test_dynamic_fields_are_chunked_by_time_and_old_contiguous_files_still_read(tmp_path):
    dataset, trajectories = _write(tmp_path, synthetic_cfd_trajectory, count=2)
    with h5py.File(dataset.path, "r+") as f:
        velocity = f["00000/velocity"]
        assert velocity.chunks == (1, *velocity.shape[1:])
        assert f["00000/cells"].chunks is None or f["00000/cells"].chunks[0] == 1
        del f["00001/velocity"]  # as written before time chunking: contiguous
        f.create_dataset("00001/velocity", data=trajectories[1]["velocity"])
        assert f["00001/velocity"].chunks is None
    lazy = data.open_dataset(tmp_path, "train").lazy(1, FrameCache(1000))
    expected = trajectories[1]["velocity"]
    np.testing.assert_array_equal(lazy["velocity"][3], expected[3])
    np.testing.assert_array_equal(lazy["velocity"][2:5], expected[2:5])
    np.testing.assert_array_equal(lazy["velocity"][[1, 1, 7]], expected[[1, 1, 7]])
    np.testing.assert_array_equal(lazy["velocity"][-1, :, 0], expected[-1, :, 0])
    np.testing.assert_array_equal(np.asarray(lazy["velocity"]), expected)


def test_a_bad_frame_is_named_when_it_is_read(tmp_path):
    dataset, trajectories = _write(tmp_path, synthetic_cfd_trajectory, count=2)
    bad = trajectories[1]["velocity"].copy()
    bad[6, 0, 0] = np.nan
    with h5py.File(dataset.path, "r+") as f:
        f["00001/velocity"][...] = bad
    lazy = data.open_dataset(tmp_path, "train").lazy(1, FrameCache(1000))
    np.testing.assert_array_equal(lazy["velocity"][5], bad[5])  # good frames read
    with pytest.raises(data.DatasetFormatError, match=r"train\.h5: trajectory 1: .*frame 6"):
        lazy["velocity"][6]


def test_a_mismatched_shape_fails_at_open_without_reading_frames(tmp_path):
    _write(tmp_path, synthetic_cfd_trajectory, count=2)
    with h5py.File(tmp_path / "train.h5", "r+") as f:
        del f["00001/pressure"]
        f.create_dataset("00001/pressure", data=np.zeros((T, 7, 1), np.float32))
    dataset = data.open_dataset(tmp_path, "train")
    with pytest.raises(data.DatasetFormatError, match=r"trajectory 1: .*pressure"):
        dataset.lazy(1, FrameCache(1000))


@pytest.mark.parametrize("cap", [0, -1, 2.5, True])
def test_a_bad_cap_names_the_field(cap):
    with pytest.raises(ValueError, match=r"cache_bytes: expected an int ≥ 1"):
        FrameCache(cap)


@pytest.mark.parametrize("cap", [0, -1024])
def test_a_bad_configured_cap_names_the_field(cap):
    with pytest.raises(ValueError, match=r"data\.cache_bytes"):
        C.DataConfig(cache_bytes=cap)
    assert C.DataConfig(cache_bytes=1 << 20).cache_bytes == 1 << 20


def test_out_of_core_needs_a_dataset_that_reads_frames(tmp_path):
    trajectories = [synthetic_cfd_trajectory(seed=0, steps=T)]
    task = cfd_task()
    budget = pipeline.dataset_budget(trajectories, task)
    with pytest.raises(ValueError, match="cache_bytes: out-of-core batches need"):
        next(
            pipeline.iter_batches(
                trajectories, task, batch_size=1, budget=budget, cache=FrameCache(1)
            )
        )
    data.write_tfrecord_split(tmp_path, "train", trajectories, data.infer_meta(trajectories[0]))
    with pytest.raises(ValueError, match="needs an HDF5 split"):
        data.open_dataset(tmp_path, "train", format="tfrecord").lazy(0)


@pytest.mark.parametrize("horizon", [1, 2])
def test_weather_out_of_core_batches_equal_whole_arrays(tmp_path, horizon):
    """Zarr weather stores: frames through the shared cap and forcings computed for the
    times indexed give the batches of fully materialized trajectories (the forcings as
    `forcing_frames` computes them for a whole trajectory)."""
    pytest.importorskip("xarray")
    from meshsim.data import weather as W
    from meshsim.tasks.weather import WeatherTask
    from tests.test_weather_data import synthetic_wb2

    synthetic_wb2().to_zarr(tmp_path / "train.zarr", zarr_format=2)
    dataset = W.WeatherDataset(tmp_path / "train.zarr")
    eager = []
    for i in range(len(dataset)):
        traj = dict(dataset[i])
        traj["state"] = np.asarray(traj["state"])
        traj["forcing"] = W.forcing_frames(traj["time"], dataset.latitudes, dataset.longitudes)
        eager.append(traj)
    task = WeatherTask(output_size=3, num_static=1, mesh_splits=1)
    budget = pipeline.dataset_budget(eager[:1], task)
    frame = dataset.frames(0, 1).nbytes
    cache = FrameCache(3 * frame)
    common = dict(batch_size=2, budget=budget, seed=3, pool_size=1, horizon=horizon)
    a_stream = pipeline.iter_batches(eager, task, **common)
    b_stream = pipeline.iter_batches(dataset, task, cache=cache, **common)
    for _ in range(6):
        a, b = _leaves(next(a_stream)), _leaves(next(b_stream))
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert 0 < cache.nbytes <= cache.max_bytes
    assert {k[0] for k in cache.keys()} == {dataset.path}


def _tiny_config(path, cache_bytes, pool_size=2):
    from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig

    return ExperimentConfig(
        name="tiny",
        task="cfd",
        data=DataConfig(path=str(path), batch_size=2, pool_size=pool_size, cache_bytes=cache_bytes),
        model=ModelConfig(latent_size=8, num_message_passing_steps=1, mlp_hidden_layers=1),
        train=TrainConfig(steps=3, log_every=1, eval_every=0, checkpoint_every=100),
    )


def test_training_with_a_cache_cap_equals_training_in_memory(tmp_path, monkeypatch):
    """`data.cache_bytes` reaches the trainer: it reads lazily, and the same steps give
    the same parameters."""
    from meshsim.runs import run_training

    _write(tmp_path / "data", synthetic_cfd_trajectory, count=3)
    dataset = data.open_dataset(tmp_path / "data", "train")
    lazy_reads = []
    lazy = data.Dataset.lazy
    monkeypatch.setattr(data.Dataset, "lazy", lambda *a: lazy_reads.append(a[1]) or lazy(*a))
    states = []
    cap = 4 * _frame_bytes(dataset, "velocity")
    for cache_bytes in (None, cap):
        config = _tiny_config(tmp_path / "data", cache_bytes)
        states.append(run_training(config, str(tmp_path / f"run{cache_bytes}"), progress=False))
        # Out of core: one lazy trajectory per structure (3), then the batches' pool.
        assert len(lazy_reads) > 3 if cache_bytes else not lazy_reads
    assert int(states[1].step) == 3
    a, b = (jax.tree_util.tree_leaves((s.params, s.normalizers)) for s in states)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


def test_a_run_may_resume_with_another_cap_but_not_another_pool(tmp_path):
    """The cap leaves the batches as they are (above), so a resumed run may change it."""
    from meshsim.runs.workdir import prepare_workdir

    workdir = str(tmp_path / "run")
    prepare_workdir(_tiny_config(tmp_path, 1 << 20), workdir, resuming=False)
    prepare_workdir(_tiny_config(tmp_path, None), workdir, resuming=True)
    prepare_workdir(_tiny_config(tmp_path, 4096), workdir, resuming=True)
    with pytest.raises(ValueError, match="another config.json.*pool_size"):
        prepare_workdir(_tiny_config(tmp_path, 4096, pool_size=3), workdir, resuming=True)
