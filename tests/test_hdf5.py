"""HDF5 datasets, format-independent entry points, meta validation and inspection."""

import json
import os
import re

import h5py
import numpy as np
import pytest

from meshsim import data

T = 3


def meta_for(dim: int = 2, cell_size: int = 3):
    return {
        "simulator": "meshsim-test",
        "dt": 0.01,
        "collision_radius": None,
        "generator": {"seed": 0},  # extra keys must survive every round trip
        "features": {
            "cells": {"type": "static", "shape": [1, -1, cell_size], "dtype": "int32"},
            "mesh_pos": {"type": "static", "shape": [1, -1, dim], "dtype": "float32"},
            "node_type": {"type": "static", "shape": [1, -1, 1], "dtype": "int32"},
            "velocity": {"type": "dynamic", "shape": [T, -1, 2], "dtype": "float32"},
        },
        "field_names": ["cells", "mesh_pos", "node_type", "velocity"],
        "trajectory_length": T,
    }


def strip(num_quads: int, seed: int = 0):
    """A 2 x (num_quads+1) strip of nodes, two triangles per quad.

    Nodes: N = 2 * (num_quads + 1); cells: C = 2 * num_quads; unique edges:
    (num_quads + 1) rungs + 2 * num_quads rails + num_quads diagonals = 4 * num_quads + 1.
    """
    n = 2 * (num_quads + 1)
    bottom, top = np.arange(0, n, 2), np.arange(1, n, 2)
    cells = [(bottom[i], bottom[i + 1], top[i + 1]) for i in range(num_quads)]
    cells += [(bottom[i], top[i + 1], top[i]) for i in range(num_quads)]
    rng = np.random.default_rng(seed)
    return {
        "cells": np.array(cells, np.int32)[None],
        "mesh_pos": rng.normal(size=(1, n, 2)).astype(np.float32),
        "node_type": rng.integers(0, 7, (1, n, 1)).astype(np.int32),
        "velocity": rng.normal(size=(T, n, 2)).astype(np.float32),
    }


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ----------------------------------------------------------------- HDF5 files


@pytest.mark.parametrize("compression", [None, "gzip", "lzf"])
def test_hdf5_round_trip(tmp_path, compression):
    trajectories = [strip(2, 0), strip(5, 1), strip(3, 2)]
    count = data.write_hdf5_split(
        tmp_path, "train", trajectories, meta_for(), compression=compression
    )
    assert count == 3 and data.num_trajectories(tmp_path, "train") == 3
    for expected, got in zip(
        trajectories, data.iter_hdf5_trajectories(tmp_path, "train"), strict=True
    ):
        assert_same(expected, got)
    assert_same(data.read_hdf5_trajectory(tmp_path, "train", 1), trajectories[1])
    assert_same(data.read_hdf5_trajectory(tmp_path, "train", -1), trajectories[2])
    only = data.read_hdf5_trajectory(tmp_path, "train", 0, fields=["cells"])
    assert list(only) == ["cells"]
    with h5py.File(tmp_path / "train.h5") as f:
        assert sorted(f) == ["00000", "00001", "00002"]
        assert f["00001/velocity"].compression == compression
        assert json.loads(f.attrs["meta"])["generator"] == {"seed": 0}
    assert data.load_meta(tmp_path) == data.validate_meta(meta_for())
    with pytest.raises(IndexError, match="out of range"):
        data.read_hdf5_trajectory(tmp_path, "train", 3)


def test_hdf5_writer_is_atomic(tmp_path):
    # A finished split must survive a failed rewrite, and no partial file may be visible.
    data.write_hdf5_split(tmp_path, "train", [strip(2)], meta_for())
    before = (tmp_path / "train.h5").read_bytes()
    seen_during_write = []

    def trajectories():
        yield strip(3)
        seen_during_write.append(sorted(os.listdir(tmp_path)))
        raise RuntimeError("solver diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        data.write_hdf5_split(tmp_path, "train", trajectories(), meta_for())
    # While writing, only a temporary dot-file sibling (same extension) exists beside it.
    (listing,) = seen_during_write
    assert listing[1:] == ["meta.json", "train.h5"]
    assert re.fullmatch(r"\.train\.h5\.\d+-[0-9a-f]{8}\.tmp\.h5", listing[0]), listing
    assert sorted(os.listdir(tmp_path)) == ["meta.json", "train.h5"]
    assert (tmp_path / "train.h5").read_bytes() == before

    with pytest.raises(RuntimeError):
        data.write_hdf5_split(tmp_path, "valid", trajectories(), meta_for())
    assert sorted(os.listdir(tmp_path)) == ["meta.json", "train.h5"]  # no valid.h5, no temp


def test_writer_rejects_other_schema_and_bad_trajectories(tmp_path):
    data.write_hdf5_split(tmp_path, "train", [strip(2)], meta_for())
    with pytest.raises(ValueError, match="different 'features'"):
        data.write_hdf5_split(tmp_path, "valid", [strip(2)], meta_for(dim=3))
    bad = strip(2)
    bad["node_type"] = bad["node_type"][:, :-1]
    with pytest.raises(ValueError, match="trajectory 0.*'node_type'.*inconsistent node count"):
        data.write_hdf5_split(tmp_path, "valid", [bad], meta_for())
    assert not (tmp_path / "valid.h5").exists()


def test_corrupt_hdf5_raises_dataset_format_error(tmp_path):
    data.save_meta(meta_for(), tmp_path)
    (tmp_path / "train.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(data.DatasetFormatError, match="train.h5"):
        list(data.iter_hdf5_trajectories(tmp_path, "train"))


# ----------------------------------------------------------------- entry points


def test_convert_tfrecord_to_hdf5_and_inspect(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    splits = {"train": [strip(2, 0), strip(4, 1)], "test": [strip(1, 2)]}
    for split, trajectories in splits.items():
        data.write_tfrecord_split(src, split, trajectories, meta_for())
    assert data.list_splits(src) == ["train", "test"]

    counts = data.convert_dataset(src, dst, progress=False, compression="lzf")
    assert counts == {"train": 2, "test": 1}
    meta = data.load_meta(dst)
    assert meta["converted_from"]["format"] == "tfrecord" and meta["generator"] == {"seed": 0}
    for split, trajectories in splits.items():
        dataset = data.open_dataset(dst, split)
        assert dataset.format == "hdf5" and len(dataset) == len(trajectories)
        for expected, got in zip(trajectories, dataset, strict=True):
            assert_same(expected, got)
        assert_same(
            list(data.iter_trajectories(src, split))[0], list(data.iter_trajectories(dst, split))[0]
        )

    for directory in (src, dst):  # both formats report the same numbers
        report = data.inspect_dataset(directory)
        train = report["splits"]["train"]
        assert train["num_trajectories"] == 2 and train["inspected"] == 2
        assert train["nodes"] == {"min": 6, "mean": 8.0, "max": 10}  # N = 2 * (q + 1)
        assert train["edges"] == {"min": 9, "mean": 13.0, "max": 17}  # E = 4 q + 1
        assert train["cells"] == {"min": 4, "mean": 6.0, "max": 8}
        assert train["fields"]["velocity"] == {
            "type": "dynamic",
            "shape": [3, -1, 2],
            "dtype": "float32",
        }
        assert train["fields"]["cells"]["shape"] == [1, -1, 3]
        assert report["splits"]["test"]["edges"]["max"] == 5
        text = data.format_inspection(report)
        assert "train" in text and "6/8.0/10" in text and "9/13.0/17" in text

    with pytest.raises(ValueError, match="'valid'"):
        data.convert_dataset(src, dst, splits=["valid"], progress=False)


def test_open_dataset_detection(tmp_path):
    data.write_tfrecord_split(tmp_path, "train", [strip(1)], meta_for())
    assert data.open_dataset(tmp_path, "train").format == "tfrecord"
    data.convert_dataset(tmp_path, tmp_path, progress=False)  # in place: .h5 beside .tfrecord
    assert data.open_dataset(tmp_path, "train").format == "hdf5"
    assert data.open_dataset(tmp_path, "train", format="tfrecord").format == "tfrecord"
    with pytest.raises(FileNotFoundError, match=r"valid.*available splits: \['train'\]"):
        data.open_dataset(tmp_path, "valid")
    with pytest.raises(ValueError, match="format must be one of"):
        data.open_dataset(tmp_path, "train", format="zarr")


def test_count_mesh_edges_triangles_and_tetrahedra():
    assert data.count_mesh_edges(np.array([[0, 1, 2], [0, 2, 3]])) == 5  # shared diagonal
    assert data.count_mesh_edges(np.array([[0, 1, 2, 3]])) == 6  # one tetrahedron
    assert data.count_mesh_edges(np.array([[0, 1, 2, 3], [1, 2, 3, 4]])) == 9  # shared face
    assert data.count_mesh_edges(np.zeros((0, 3), np.int32)) == 0


# ----------------------------------------------------------------- meta and validation


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.pop("trajectory_length"), "missing required key 'trajectory_length'"),
        (lambda m: m["features"]["velocity"].update(type="moving"), "features.velocity.type"),
        (lambda m: m["features"]["cells"].update(shape=[1, -1, -1]), "features.cells.shape"),
        (lambda m: m["features"]["cells"].update(dtype="complex64"), "features.cells.dtype"),
        (lambda m: m["features"]["mesh_pos"].pop("shape"), "features.mesh_pos is missing 'shape'"),
        (lambda m: m["field_names"].remove("velocity"), r"\['velocity'\] are not listed"),
        (lambda m: m.update(trajectory_length=0), "trajectory_length must be a positive int"),
    ],
)
def test_malformed_meta_names_the_field(edit, message):
    meta = meta_for()
    edit(meta)
    with pytest.raises(ValueError, match=message):
        data.validate_meta(meta)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.pop("node_type"), "missing field 'node_type'"),
        (
            lambda t: t.update(velocity=t["velocity"].astype(np.float16)),
            "'velocity': expected dtype float32, got float16",
        ),
        (lambda t: t.update(mesh_pos=t["mesh_pos"][0]), r"'mesh_pos': expected rank 3"),
        (lambda t: t.update(velocity=t["velocity"][:2]), r"'velocity': axis 0 expected 3"),
        (
            lambda t: t.update(velocity=t["velocity"][:, :-1]),
            r"'velocity': inconsistent node count: expected 6 \(from 'mesh_pos'\), got 5",
        ),
        (lambda t: t["cells"].__setitem__((0, 0, 0), 99), r"'cells': indices must lie in \[0, 6\)"),
    ],
)
def test_validate_trajectory_names_field_expected_and_actual(edit, message):
    trajectory = strip(2)
    edit(trajectory)
    with pytest.raises(ValueError, match=message):
        data.validate_trajectory(trajectory, data.validate_meta(meta_for()))


def test_infer_meta_and_save_preserve_extra_keys(tmp_path):
    meta = data.infer_meta(strip(2), simulator="meshsim-test", dt=0.01)
    assert meta["features"]["velocity"] == {
        "type": "dynamic",
        "shape": [3, -1, 2],
        "dtype": "float32",
    }
    assert meta["features"]["cells"]["shape"] == [1, -1, 3] and meta["trajectory_length"] == 3
    assert data.save_meta(meta, tmp_path) == str(tmp_path / "meta.json")
    assert data.load_meta(tmp_path) == meta
    # Two-space indented JSON plus a trailing newline, written atomically (no temp left).
    assert (tmp_path / "meta.json").read_text() == json.dumps(meta, indent=2) + "\n"
    assert os.listdir(tmp_path) == ["meta.json"]
    assert data.save_meta(meta, tmp_path / "sub") == str(tmp_path / "sub" / "meta.json")
