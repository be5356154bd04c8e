"""TFRecord reader/writer tests against an independent, hand-built encoder.

The helpers below write protobuf wire format and TFRecord framing from the spec, with a
bitwise CRC32C, sharing no code with `meshsim.data` — so a bug common to the library's
reader and writer cannot hide in a round trip.
"""

import json
import os
import re
import struct

import numpy as np
import pytest

from meshsim import data
from meshsim.data import tfrecord

# ----------------------------------------------------------------- independent encoder


def bitwise_crc32c(payload: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in payload:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(payload: bytes) -> int:
    crc = bitwise_crc32c(payload)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s take 10 bytes, two's complement
    out = b""
    while True:
        low, value = value & 0x7F, value >> 7
        out += bytes([low | (0x80 if value else 0)])
        if not value:
            return out


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def bytes_feature(*values: bytes) -> bytes:
    return ld(1, b"".join(ld(1, v) for v in values))  # Feature.bytes_list{value}


def packed_float_feature(values) -> bytes:
    return ld(2, ld(1, struct.pack(f"<{len(values)}f", *values)))


def unpacked_float_feature(values) -> bytes:  # repeated fixed32, one tag each
    return ld(2, b"".join(varint(1 << 3 | 5) + struct.pack("<f", v) for v in values))


def packed_int64_feature(values) -> bytes:
    return ld(3, ld(1, b"".join(varint(v) for v in values)))


def unpacked_int64_feature(values) -> bytes:
    return ld(3, b"".join(varint(1 << 3 | 0) + varint(v) for v in values))


def example(features: dict) -> bytes:
    entries = b"".join(ld(1, ld(1, k.encode()) + ld(2, v)) for k, v in features.items())
    return ld(1, entries)  # Example.features{feature map}


def frame(record: bytes) -> bytes:
    length = struct.pack("<Q", len(record))
    return length + struct.pack("<I", masked(length)) + record + struct.pack("<I", masked(record))


def mgn_record(trajectory: dict) -> bytes:
    """One trajectory as MeshGraphNets stores it: each field one raw bytes entry."""
    return example({k: bytes_feature(v.tobytes()) for k, v in trajectory.items()})


# ----------------------------------------------------------------- synthetic datasets

T = 3  # time steps: tiny, but > 1 so static vs dynamic shapes differ


def cylinder_meta():
    """The published cylinder_flow meta.json, with a tiny trajectory_length."""
    return {
        "simulator": "comsol",
        "dt": 0.01,
        "collision_radius": None,
        "features": {
            "cells": {"type": "static", "shape": [1, -1, 3], "dtype": "int32"},
            "mesh_pos": {"type": "static", "shape": [1, -1, 2], "dtype": "float32"},
            "node_type": {"type": "static", "shape": [1, -1, 1], "dtype": "int32"},
            "velocity": {"type": "dynamic", "shape": [T, -1, 2], "dtype": "float32"},
            "pressure": {"type": "dynamic", "shape": [T, -1, 1], "dtype": "float32"},
        },
        "field_names": ["cells", "mesh_pos", "node_type", "velocity", "pressure"],
        "trajectory_length": T,
    }


def flag_meta():
    """The published flag_simple meta.json, with a tiny trajectory_length."""
    return {
        "simulator": "arcsim",
        "dt": 0.02,
        "collision_radius": None,
        "features": {
            "cells": {"type": "static", "shape": [1, -1, 3], "dtype": "int32"},
            "mesh_pos": {"type": "static", "shape": [1, -1, 2], "dtype": "float32"},
            "node_type": {"type": "static", "shape": [1, -1, 1], "dtype": "int32"},
            "world_pos": {"type": "dynamic", "shape": [T, -1, 3], "dtype": "float32"},
        },
        "field_names": ["cells", "mesh_pos", "node_type", "world_pos"],
        "trajectory_length": T,
    }


def grid_mesh(nx: int, ny: int):
    """A structured triangulation: `[nx*ny, 2] float32` positions, `[C, 3] int32` cells."""
    x, y = np.meshgrid(np.linspace(0, 1, nx), np.linspace(0, 1, ny), indexing="ij")
    pos = np.stack([x.ravel(), y.ravel()], -1).astype(np.float32)
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
    cells = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    return pos, cells.astype(np.int32)


def cylinder_trajectory(nx, ny, seed):
    rng = np.random.default_rng(seed)
    pos, cells = grid_mesh(nx, ny)
    n = len(pos)
    return {
        "cells": cells[None],
        "mesh_pos": pos[None],
        "node_type": rng.integers(0, 7, (1, n, 1)).astype(np.int32),
        "velocity": rng.normal(size=(T, n, 2)).astype(np.float32),
        "pressure": rng.normal(size=(T, n, 1)).astype(np.float32),
    }


def flag_trajectory(nx, ny, seed):
    rng = np.random.default_rng(seed)
    pos, cells = grid_mesh(nx, ny)
    n = len(pos)
    return {
        "cells": cells[None],
        "mesh_pos": pos[None],
        "node_type": np.zeros((1, n, 1), np.int32),
        "world_pos": rng.normal(size=(T, n, 3)).astype(np.float32),
    }


def write_hand_split(directory, split, meta, records):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").write_text(json.dumps(meta, indent=1))
    path = directory / f"{split}.tfrecord"
    path.write_bytes(b"".join(frame(r) for r in records))
    return path


def assert_same(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ----------------------------------------------------------------- CRC32C


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"123456789", 0xE3069283),  # the CRC catalogue check value
        (bytes(32), 0x8A9136AA),  # RFC 3720 B.4: 32 bytes of zeros
        (b"\xff" * 32, 0x62A8AB43),  # RFC 3720 B.4: 32 bytes of ones
        (bytes(range(32)), 0x46DD794E),  # RFC 3720 B.4: incrementing
        (bytes(range(31, -1, -1)), 0x113FDB5C),  # RFC 3720 B.4: decrementing
        (b"", 0),
    ],
)
def test_crc32c_vectors(payload, expected):
    assert data.crc32c(payload) == expected
    assert bitwise_crc32c(payload) == expected


@pytest.mark.parametrize("size", [1, 7, 2047, 2048, 4099, 20011])
def test_crc32c_matches_bitwise_on_vectorized_sizes(size):
    # Sizes straddle the scalar/vectorized threshold and leave ragged tails.
    payload = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    expected = bitwise_crc32c(payload)
    assert data.crc32c(payload) == expected
    assert data.crc32c(np.frombuffer(payload, np.uint8)) == expected
    cut = size // 3  # continuing a running CRC over a split buffer gives the same value
    assert data.crc32c(payload[cut:], data.crc32c(payload[:cut])) == expected
    assert data.masked_crc32c(payload) == masked(payload)


def test_crc32c_wide_lanes_match_the_scalar_path():
    # > 2 MiB takes the 32768-lane path; 1000-byte chunks (checked bitwise above) stay on
    # the scalar path, so chaining them is an independent reference.
    payload = np.random.default_rng(1).integers(0, 256, 2**22 + 12345, dtype=np.uint8)
    expected = 0
    for start in range(0, payload.size, 1000):
        expected = data.crc32c(payload[start : start + 1000], expected)
    assert data.crc32c(payload) == expected


# ----------------------------------------------------------------- round trips


def test_hand_written_records_with_all_list_kinds(tmp_path):
    velocity = np.random.default_rng(0).normal(size=(T, 4, 2)).astype(np.float32)
    floats = [0.5, -1.25, 3.0]
    ints = [0, 1, -2, 300, 2**40, -(2**63)]
    record = example(
        {
            "velocity": bytes_feature(velocity.tobytes()),
            "packed_f": packed_float_feature(floats),
            "unpacked_f": unpacked_float_feature(floats),
            "packed_i": packed_int64_feature(ints),
            "unpacked_i": unpacked_int64_feature(ints),
            "two_bytes": bytes_feature(b"ab", b"cde"),
        }
    )
    path = tmp_path / "x.tfrecord"
    path.write_bytes(frame(record) + frame(b"") + frame(record))
    records = list(data.iter_tfrecord_records(path))
    assert [len(r) for r in records] == [len(record), 0, len(record)]
    parsed = tfrecord.example_proto.decode_example(records[0])
    assert bytes(parsed["velocity"][0]) == velocity.tobytes()
    for key in ("packed_f", "unpacked_f"):
        assert parsed[key].dtype == np.float32 and parsed[key].tolist() == floats
    for key in ("packed_i", "unpacked_i"):
        assert parsed[key].dtype == np.int64 and parsed[key].tolist() == ints
    assert [bytes(v) for v in parsed["two_bytes"]] == [b"ab", b"cde"]
    assert data.index_tfrecord(path).tolist() == [0, len(frame(record)), len(frame(record)) + 16]


def test_packed_list_features_decode_to_meta_dtype():
    meta = {
        "features": {
            "pos": {"type": "static", "shape": [1, -1, 2], "dtype": "float32"},
            "ids": {"type": "static", "shape": [1, -1, 1], "dtype": "int32"},
        },
        "field_names": ["pos", "ids"],
        "trajectory_length": 1,
    }
    record = example(
        {"pos": packed_float_feature([1.0, 2.0, 3.0, 4.0]), "ids": packed_int64_feature([7, -1])}
    )
    out = data.decode_trajectory(record, meta)
    assert out["pos"].dtype == np.float32 and out["pos"].shape == (1, 2, 2)
    assert out["ids"].dtype == np.int32 and out["ids"].ravel().tolist() == [7, -1]


@pytest.mark.parametrize(
    "make_meta, make_trajectory",
    [(cylinder_meta, cylinder_trajectory), (flag_meta, flag_trajectory)],
    ids=["cylinder_flow", "flag_simple"],
)
def test_reads_published_layout(tmp_path, make_meta, make_trajectory):
    trajectories = [make_trajectory(4, 3, 0), make_trajectory(5, 4, 1)]  # N differs
    write_hand_split(tmp_path, "train", make_meta(), [mgn_record(t) for t in trajectories])
    got = list(data.iter_tfrecord_trajectories(tmp_path, "train"))
    assert len(got) == 2
    for expected, actual in zip(trajectories, got, strict=True):
        assert_same(expected, actual)
        assert actual["mesh_pos"].shape[0] == 1  # static fields keep their leading 1
        assert actual["cells"].flags.writeable and actual["cells"].flags.aligned
    dataset = data.open_dataset(tmp_path, "train")
    assert dataset.format == "tfrecord" and len(dataset) == 2
    assert_same(dataset[-1], trajectories[1])


def test_library_writer_matches_hand_encoder(tmp_path):
    trajectories = [cylinder_trajectory(3, 3, 0), cylinder_trajectory(4, 3, 1)]
    meta = cylinder_meta()
    assert data.write_tfrecord_split(tmp_path, "valid", trajectories, meta) == 2
    expected = b"".join(frame(mgn_record(t)) for t in trajectories)
    assert (tmp_path / "valid.tfrecord").read_bytes() == expected
    assert json.loads((tmp_path / "meta.json").read_text()) == meta
    assert sorted(os.listdir(tmp_path)) == ["meta.json", "valid.tfrecord"]  # no temp left


def test_varlen_fields_and_tf_dtype_repr(tmp_path):
    # flag_dynamic_sizing-style: frames concatenated with length_<name> companions, and a
    # dtype written as TF's repr in the published meta.json.
    meta = {
        "simulator": "arcsim",
        "dt": 0.02,
        "collision_radius": None,
        "features": {
            "cells": {"type": "dynamic_varlen", "shape": [-1, 3], "dtype": "int32"},
            "world_pos": {"type": "dynamic_varlen", "shape": [-1, 3], "dtype": "float32"},
            "sizing_field": {
                "type": "dynamic_varlen",
                "shape": [-1, 4],
                "dtype": "<dtype: 'float32'>",
            },
        },
        "field_names": [
            "cells",
            "world_pos",
            "sizing_field",
            "length_cells",
            "length_world_pos",
            "length_sizing_field",
        ],
        "trajectory_length": 2,
    }
    nodes = np.array([4, 5], np.int32)
    trajectory = {
        "cells": np.array([[0, 1, 2], [1, 2, 3], [0, 1, 4]], np.int32),
        "length_cells": np.array([2, 1], np.int32),
        "world_pos": np.arange(27, dtype=np.float32).reshape(9, 3),
        "length_world_pos": nodes,
        "sizing_field": np.ones((9, 4), np.float32),
        "length_sizing_field": nodes,
    }
    write_hand_split(tmp_path, "test", meta, [mgn_record(trajectory)])
    (got,) = data.iter_tfrecord_trajectories(tmp_path, "test")
    assert_same(trajectory, got)
    frames = data.varlen_frames(got, "world_pos")
    assert [f.shape for f in frames] == [(4, 3), (5, 3)]
    assert data.load_meta(tmp_path)["features"]["sizing_field"]["dtype"] == "float32"


# ----------------------------------------------------------------- corruption


@pytest.fixture
def two_records(tmp_path):
    meta = cylinder_meta()
    records = [mgn_record(cylinder_trajectory(3, 3, i)) for i in range(2)]
    path = write_hand_split(tmp_path, "train", meta, records)
    return path, len(frame(records[0]))


def read_all(path, **kwargs):
    return list(data.iter_tfrecord_trajectories(path.parent, "train", **kwargs))


def corrupt(path, offset):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x10
    path.write_bytes(bytes(raw))


def test_data_crc_mismatch_names_file_record_and_offset(two_records):
    path, first = two_records
    corrupt(path, first + 12 + 40)  # inside record 1's payload
    with pytest.raises(data.DatasetFormatError, match="CRC mismatch on the data") as err:
        read_all(path)
    assert str(path) in str(err.value)
    assert f"record 1 at byte offset {first}" in str(err.value)
    # The opt-out skips the data CRC; the flipped bit (in `cells`) is still caught when the
    # decoded trajectory is checked against meta.json.
    with pytest.raises(data.DatasetFormatError, match="record 1 .*'cells': indices must lie"):
        read_all(path, verify_data_crc=False)


def test_length_crc_mismatch_is_detected(two_records):
    path, _ = two_records
    corrupt(path, 2)  # inside record 0's length field
    with pytest.raises(data.DatasetFormatError, match="record 0 at byte offset 0.*length"):
        read_all(path, verify_data_crc=False)
    with pytest.raises(data.DatasetFormatError, match="record 0"):
        data.index_tfrecord(path)


@pytest.mark.parametrize("cut", [5, 30, -2], ids=["in-header", "in-data", "in-footer"])
def test_truncation_is_detected(two_records, cut):
    path, first = two_records
    raw = path.read_bytes()
    end = first + cut if cut > 0 else len(raw) + cut
    path.write_bytes(raw[:end])
    with pytest.raises(data.DatasetFormatError, match=r"record 1 .*truncated") as err:
        read_all(path)
    assert str(path) in str(err.value)
    with pytest.raises(data.DatasetFormatError, match="truncated"):
        data.index_tfrecord(path)


def test_field_size_mismatch_names_field(tmp_path):
    trajectory = cylinder_trajectory(3, 3, 0)
    trajectory["velocity"] = trajectory["velocity"][:, :-1]  # N no longer divides
    trajectory["velocity"] = trajectory["velocity"].reshape(-1)[:-1]
    write_hand_split(tmp_path, "train", cylinder_meta(), [mgn_record(trajectory)])
    with pytest.raises(data.DatasetFormatError, match="'velocity'.*record 0|record 0.*'velocity'"):
        read_all(tmp_path / "train.tfrecord")


def test_writer_is_crash_safe_and_validates(tmp_path):
    def trajectories():
        yield cylinder_trajectory(3, 3, 0)
        raise RuntimeError("solver diverged")

    with pytest.raises(RuntimeError):
        data.write_tfrecord_split(tmp_path, "train", trajectories(), cylinder_meta())
    assert not (tmp_path / "train.tfrecord").exists()
    assert os.listdir(tmp_path) == ["meta.json"]  # no temporary file left
    bad = cylinder_trajectory(3, 3, 0)
    bad["velocity"] = bad["velocity"].astype(np.float64)
    with pytest.raises(ValueError, match="train trajectory 0.*'velocity'.*float32.*float64"):
        data.write_tfrecord_split(tmp_path, "train", [bad], cylinder_meta())
    assert os.listdir(tmp_path) == ["meta.json"]


def test_writer_uses_a_temporary_sibling_until_closed(tmp_path):
    path = tmp_path / "x.tfrecord"
    path.write_bytes(frame(b"old"))
    temp = re.compile(r"\.x\.tfrecord\.\d+-[0-9a-f]{8}\.tmp\.tfrecord")

    writer = tfrecord.TFRecordWriter(path)  # aborted: the old file survives, no temp left
    writer.write(b"new")
    (tmp_name,) = set(os.listdir(tmp_path)) - {"x.tfrecord"}
    assert temp.fullmatch(tmp_name)
    writer.abort()
    writer.abort()  # idempotent
    assert os.listdir(tmp_path) == ["x.tfrecord"] and path.read_bytes() == frame(b"old")

    with tfrecord.TFRecordWriter(path) as writer:
        writer.write(b"new")
        (tmp_name,) = set(os.listdir(tmp_path)) - {"x.tfrecord"}
        assert temp.fullmatch(tmp_name) and path.read_bytes() == frame(b"old")
    writer.close()  # idempotent
    assert os.listdir(tmp_path) == ["x.tfrecord"] and path.read_bytes() == frame(b"new")
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")
