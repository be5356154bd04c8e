"""Published particle datasets (LagrangeBench HDF5, DeepMind learning_to_simulate TFRecord)
read, converted to meshsim's native particle dataset, and inspected.

The fixtures are written here as the publishers write them, without meshsim's writers:
LagrangeBench's `gen_dataset.py` (h5py groups "00000", ... with `particle_type` [N] int
and gzip-compressed `position` [T, N, D] float32; `metadata.json` whose
`periodic_boundary_conditions` has 3 entries even in 2D), and DeepMind's
`reading_utils.py` (SequenceExample: context `key` int64 and `particle_type` int64 raw
bytes; feature lists `position` and `step_context`, one float32 raw-bytes entry per step;
`sequence_length + 1` steps), framed as TFRecords with CRC32C computed by a plain table
loop here, encoded from the protobuf wire spec (proto3: packed int64 lists).
"""

from __future__ import annotations

import json
import os
import struct

import h5py
import numpy as np
import pytest

from meshsim.cli import main
from meshsim.data import convert_dataset, inspect_dataset, load_meta, open_dataset
from meshsim.data.example_proto import decode_sequence_example
from meshsim.data.particle_inspect import radius_neighbours
from meshsim.data.particles import iter_particle_trajectories, particle_format

# --------------------------------------------------------------------------- writers


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _bytes_feature(*values: bytes) -> bytes:  # Feature{bytes_list = 1 {value = 1}}
    return _len(1, b"".join(_len(1, v) for v in values))


def _int64_feature(*values: int) -> bytes:  # Feature{int64_list = 3 {packed value = 1}}
    return _len(3, _len(1, b"".join(_varint(v) for v in values)))


def _map(entries: dict[str, bytes]) -> bytes:  # map<string, M> field 1: key 1, value 2
    return b"".join(_len(1, _len(1, k.encode()) + _len(2, v)) for k, v in entries.items())


def sequence_example(context: dict[str, bytes], lists: dict[str, list[bytes]]) -> bytes:
    """SequenceExample{context = 1: Features, feature_lists = 2: FeatureLists}."""
    feature_lists = {k: b"".join(_len(1, f) for f in v) for k, v in lists.items()}
    return _len(1, _map(context)) + _len(2, _map(feature_lists))


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = _crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(path, records: list[bytes]) -> None:
    with open(path, "wb") as f:
        for record in records:
            length = struct.pack("<Q", len(record))
            f.write(length + struct.pack("<I", _masked(length)))
            f.write(record + struct.pack("<I", _masked(record)))


def trajectory(rng, frames: int, n: int, dim: int, *, types=(0, 1)) -> tuple:
    """Positions `[frames, n, dim] float32` in the unit box and types `[n]`."""
    x0 = rng.uniform(0.05, 0.95, (n, dim))
    v = rng.normal(0, 0.002, (n, dim))
    t = np.arange(frames)[:, None, None]
    position = (x0 + v * t + 0.0005 * rng.normal(size=(frames, n, dim))).astype(np.float32)
    kinds = np.array(types)[rng.integers(0, len(types), n)]
    return position, kinds


def write_lagrangebench(root, dim: int, *, trajs=(2, 1, 1), frames=10, n=20, seed=0):
    """A LagrangeBench-layout directory; returns `{split: [(position, types), ...]}`."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    data = {}
    for split, count in zip(("train", "valid", "test"), trajs, strict=True):
        data[split] = [trajectory(rng, frames, n, dim, types=(0, 0, 1, 2)) for _ in range(count)]
        with h5py.File(os.path.join(root, f"{split}.h5"), "w") as hf:
            for j, (position, tag) in enumerate(data[split]):
                hf.create_dataset(f"{str(j).zfill(5)}/particle_type", data=tag.astype(np.int32))
                hf.create_dataset(
                    f"{str(j).zfill(5)}/position",
                    data=position,
                    dtype=np.float32,
                    compression="gzip",
                )
    metadata = {
        "case": "TGV",
        "solver": "SPH",
        "density_evolution": False,
        "dim": dim,
        "dx": 0.02,
        "dt": 0.0004,
        "t_end": 1.0,
        "viscosity": 0.01,
        "write_every": 100,
        "sequence_length_train": frames - 1,
        "num_trajs_train": trajs[0],
        "sequence_length_test": frames - 1,
        "num_trajs_test": trajs[2],
        "num_particles_max": n,
        "periodic_boundary_conditions": [True, True, True],
        "bounds": [[0.0, 1.0]] * dim,
        "default_connectivity_radius": 0.29,
        "vel_mean": [0.0] * dim,
        "vel_std": [0.002] * dim,
        "acc_mean": [0.0] * dim,
        "acc_std": [0.0007] * dim,
    }
    with open(os.path.join(root, "metadata.json"), "w") as f:
        json.dump(metadata, f)
    return data


def write_deepmind(root, dim: int, *, context: int = 0, trajs=(3, 1, 1), frames=10, seed=1):
    """A learning_to_simulate-layout directory (particle counts vary per trajectory);
    returns `{split: [(position, types, step_context or None), ...]}`."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    data = {}
    for split, count in zip(("train", "valid", "test"), trajs, strict=True):
        data[split], records = [], []
        for key in range(count):
            position, types = trajectory(rng, frames, 15 + 3 * key, dim, types=(5, 5, 6, 3))
            ctx = rng.normal(size=(frames, context)).astype(np.float32) if context else None
            lists = {"position": [_bytes_feature(p.tobytes()) for p in position]}
            if ctx is not None:
                lists["step_context"] = [_bytes_feature(c.tobytes()) for c in ctx]
            ctx_features = {
                "key": _int64_feature(key),
                "particle_type": _bytes_feature(types.astype(np.int64).tobytes()),
            }
            records.append(sequence_example(ctx_features, lists))
            data[split].append((position, types, ctx))
        write_tfrecord(os.path.join(root, f"{split}.tfrecord"), records)
    metadata = {
        "bounds": [[0.1, 0.9]] * dim,
        "sequence_length": frames - 1,
        "default_connectivity_radius": 0.3,
        "dim": dim,
        "dt": 0.0025,
        "vel_mean": [0.0] * dim,
        "vel_std": [0.001] * dim,
        "acc_mean": [0.0] * dim,
        "acc_std": [0.0001] * dim,
    }
    if context:
        metadata["context_mean"] = [0.0] * context
        metadata["context_std"] = [1.0] * context
    with open(os.path.join(root, "metadata.json"), "w") as f:
        json.dump(metadata, f)
    return data


# --------------------------------------------------------------------------- wire format


def test_sequence_example_decodes_context_lists_and_skips_unknown_fields():
    record = sequence_example(
        {"key": _int64_feature(7, -1), "name": _bytes_feature(b"ab")},
        {"x": [_bytes_feature(b"\x01"), _bytes_feature(b"\x02\x03")], "empty": []},
    )
    record += _varint(5 << 3 | 0) + _varint(99)  # unknown varint field 5: skipped
    context, lists = decode_sequence_example(record)
    assert context["key"].tolist() == [7, -1]
    assert [bytes(v) for v in context["name"]] == [b"ab"]
    assert [[bytes(v) for v in step] for step in lists["x"]] == [[b"\x01"], [b"\x02\x03"]]
    assert lists["empty"] == []


# --------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("dim", [2, 3])
def test_lagrangebench_converts_bitwise(tmp_path, dim):
    src, dst = str(tmp_path / "lb"), str(tmp_path / "native")
    data = write_lagrangebench(src, dim)
    assert particle_format(src) == "lagrangebench"
    assert convert_dataset(src, dst, progress=False) == {"train": 2, "valid": 1, "test": 1}
    assert particle_format(dst) is None  # native now
    for split, expected in data.items():
        got = list(open_dataset(dst, split))
        assert len(got) == len(expected)
        for traj, (position, tag) in zip(got, expected, strict=True):
            assert traj["position"].dtype == np.float32 and traj["position"].shape[2] == dim
            assert traj["position"].tobytes() == position.tobytes()
            assert traj["particle_type"].dtype == np.int32
            np.testing.assert_array_equal(traj["particle_type"], tag.reshape(1, -1, 1))
    meta = load_meta(dst)
    p = meta["particles"]
    assert p["source"] == "lagrangebench" and p["dim"] == dim
    assert p["periodic"] == [True] * dim  # LagrangeBench's 3 entries cut to dim
    assert p["kinematic_types"] == [1, 2]
    assert p["radius"] == 0.29 and p["bounds"] == [[0.0, 1.0]] * dim
    assert p["dt"] == pytest.approx(0.0004 * 100) and p["solver_dt"] == 0.0004
    assert p["case"] == "TGV" and p["write_every"] == 100
    assert meta["features"]["position"] == {
        "type": "dynamic",
        "shape": [10, -1, dim],
        "dtype": "float32",
    }
    assert meta["features"]["particle_type"]["shape"] == [1, -1, 1]


@pytest.mark.parametrize("dim,context", [(2, 2), (3, 0)])
def test_learning_to_simulate_converts_bitwise(tmp_path, dim, context):
    src, dst = str(tmp_path / "dm"), str(tmp_path / "native")
    data = write_deepmind(src, dim, context=context)
    assert particle_format(src) == "learning_to_simulate"
    assert convert_dataset(src, dst, progress=False) == {"train": 3, "valid": 1, "test": 1}
    for split, expected in data.items():
        for traj, (position, types, ctx) in zip(open_dataset(dst, split), expected, strict=True):
            assert traj["position"].tobytes() == position.tobytes()
            np.testing.assert_array_equal(traj["particle_type"][0, :, 0], types)
            if context:
                assert traj["step_context"].shape == (10, 1, context)
                assert traj["step_context"].tobytes() == ctx.tobytes()
            else:
                assert "step_context" not in traj
    meta = load_meta(dst)
    assert meta["particles"]["kinematic_types"] == [3]
    assert meta["particles"]["periodic"] == [False] * dim
    assert meta["particles"]["dt"] == 0.0025 and meta["particles"]["sequence_length"] == 9
    assert ("step_context" in meta["features"]) == bool(context)


def test_statistics_are_fluid_finite_differences_of_train_with_minimum_image(tmp_path):
    """vel = x_t - x_{t-1}, acc = x_{t+1} - 2 x_t + x_{t-1}, per frame, fluid only; a fluid
    particle crossing the periodic boundary counts with its small (wrapped) step."""
    src, dst = str(tmp_path / "lb"), str(tmp_path / "native")
    data = write_lagrangebench(src, 2)
    position, tag = data["train"][0]
    step = np.float32(0.03)
    position[:, 0, 0] = np.mod(0.95 + step * np.arange(10), 1.0)  # wraps at frame 2
    tag[0] = 0
    with h5py.File(os.path.join(src, "train.h5"), "a") as hf:
        hf["00000/position"][...] = position
        hf["00000/particle_type"][...] = tag
    convert_dataset(src, dst, progress=False)
    vel, acc = [], []
    for position, tag in data["train"]:
        x = position[:, tag == 0].astype(np.float64)
        v = np.diff(x, axis=0)
        v -= np.round(v)  # box of size 1
        vel.append(v.reshape(-1, 2))
        acc.append(np.diff(v, axis=0).reshape(-1, 2))
    vel, acc = np.concatenate(vel), np.concatenate(acc)
    p = load_meta(dst)["particles"]
    # float64 moments merged per trajectory vs numpy in one pass: equal to rounding.
    np.testing.assert_allclose(p["vel_mean"], vel.mean(0), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(p["vel_std"], vel.std(0), rtol=1e-10)
    np.testing.assert_allclose(p["acc_mean"], acc.mean(0), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(p["acc_std"], acc.std(0), rtol=1e-10)
    assert np.abs(vel).max() < 0.1  # the wrap did not count as a jump of ~1
    assert p["source_stats"]["vel_std"] == [0.002, 0.002]


def test_splits_of_different_lengths_are_refused(tmp_path):
    src = str(tmp_path / "lb")
    write_lagrangebench(src, 2)
    with h5py.File(os.path.join(src, "test.h5"), "w") as hf:  # RPF-like: a shorter test
        hf.create_dataset("00000/particle_type", data=np.zeros(20, np.int32))
        hf.create_dataset("00000/position", data=np.zeros((5, 20, 2), np.float32))
    with pytest.raises(ValueError, match="differ in length.*separate directories"):
        convert_dataset(src, str(tmp_path / "out"), progress=False)
    assert not os.path.exists(tmp_path / "out")
    counts = convert_dataset(src, str(tmp_path / "out"), splits=["test"], progress=False)
    assert counts == {"test": 1}


# --------------------------------------------------------------------------- neighbours


def test_radius_neighbours_on_lattices():
    """An n×n lattice of spacing h with radius 1.01 h: 4 (n-1)/n neighbours per particle
    in an open box (edge particles miss some), exactly 4 when both axes are periodic."""
    n, h = 6, 0.1
    grid = np.stack(np.meshgrid(np.arange(n), np.arange(n)), -1).reshape(-1, 2) * h + 0.05
    open_box = radius_neighbours(grid, 1.01 * h)
    assert open_box["edges"] == 4 * n * (n - 1)
    assert open_box["mean"] == pytest.approx(4 * (n - 1) / n)
    torus = radius_neighbours(grid, 1.01 * h, bounds=[[0, n * h]] * 2, periodic=[True, True])
    assert torus["mean"] == 4.0
    # One periodic axis: only the open axis loses its boundary neighbours.
    mixed = radius_neighbours(grid, 1.01 * h, bounds=[[0, n * h]] * 2, periodic=[True, False])
    assert mixed["edges"] == 2 * n * n + 2 * n * (n - 1)


# --------------------------------------------------------------------------- CLI


def test_cli_inspect_and_convert(tmp_path, capsys):
    lb, dm, native = str(tmp_path / "lb"), str(tmp_path / "dm"), str(tmp_path / "native")
    data = write_lagrangebench(lb, 2)
    write_deepmind(dm, 3, context=1)
    assert main(["inspect", lb]) == 0
    out = capsys.readouterr().out
    assert "format lagrangebench" in out and "kinematic types [1, 2]" in out
    assert "neighbours within radius 0.29 on frame 0 of train trajectory 0" in out
    tags = np.concatenate([t for _, t in data["train"]])
    assert f"0: {(tags == 0).sum()}, 1: {(tags == 1).sum()}, 2: {(tags == 2).sum()}" in out
    assert main(["inspect", dm, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "learning_to_simulate"
    assert report["splits"]["train"]["particles"] == {"min": 15, "mean": 18.0, "max": 21}
    assert report["splits"]["train"]["frames"] == {"min": 10, "mean": 10.0, "max": 10}
    assert main(["convert", lb, native]) == 0
    assert "train: 2 trajectories" in capsys.readouterr().out
    assert main(["inspect", native, "--json"]) == 0
    converted = json.loads(capsys.readouterr().out)
    original = inspect_dataset(lb)
    assert converted["format"] == "hdf5"
    assert converted["neighbours"] == original["neighbours"]
    for split in ("train", "valid", "test"):
        for key in ("num_trajectories", "frames", "particles", "types"):
            assert converted["splits"][split][key] == original["splits"][split][key]
    position = data["train"][0][0][0]
    expected = radius_neighbours(position, 0.29, bounds=[[0, 1]] * 2, periodic=[True, True])
    assert original["neighbours"]["mean"] == expected["mean"] > 0


# --------------------------------------------------------------------------- bad files


def _check_error(capsys, argv, *words):
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"meshsim {argv[0]}: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])


def _edit_group(src, edit):
    with h5py.File(os.path.join(src, "train.h5"), "a") as hf:
        edit(hf["00001"])


def _bad_lagrangebench(kind):
    def apply(src):
        if kind == "no position":
            _edit_group(src, lambda g: g.__delitem__("position"))
        elif kind == "type length":
            _edit_group(
                src,
                lambda g: (
                    g.__delitem__("particle_type"),
                    g.create_dataset("particle_type", data=np.zeros(19, np.int32)),
                ),
            )
        elif kind == "dim":
            _edit_group(
                src,
                lambda g: (
                    g.__delitem__("position"),
                    g.create_dataset("position", data=np.zeros((10, 20, 3), np.float32)),
                ),
            )
        elif kind == "nan":

            def nan(g):
                g["position"][4, 7, 1] = np.nan

            _edit_group(src, nan)
        elif kind == "metadata":
            path = os.path.join(src, "metadata.json")
            with open(path) as f:
                metadata = json.load(f)
            del metadata["default_connectivity_radius"]
            with open(path, "w") as f:
                json.dump(metadata, f)

    return apply


@pytest.mark.parametrize(
    "kind,words",
    [
        ("no position", ["train.h5", "'00001'", "'position' is missing"]),
        ("type length", ["train.h5", "'00001'", "'particle_type'", "[N=20]", "[19]"]),
        ("dim", ["train.h5", "'position'", "[T, N, 2]", "[10, 20, 3]"]),
        ("nan", ["train.h5", "'00001'", "'position'", "finite", "[4, 7, 1]"]),
        ("metadata", ["metadata.json", "'default_connectivity_radius'", "missing"]),
    ],
)
def test_bad_lagrangebench_files_are_one_line_errors(tmp_path, capsys, kind, words):
    src, dst = str(tmp_path / "lb"), str(tmp_path / "out")
    write_lagrangebench(src, 2)
    _bad_lagrangebench(kind)(src)
    _check_error(capsys, ["convert", src, dst], *words)
    assert not os.path.exists(dst)  # nothing half-written
    assert os.listdir(tmp_path) == ["lb"]
    _check_error(capsys, ["inspect", src], *words)


@pytest.mark.parametrize("kind", ["truncated", "no position", "steps"])
def test_bad_learning_to_simulate_files_are_one_line_errors(tmp_path, capsys, kind):
    src, dst = str(tmp_path / "dm"), str(tmp_path / "out")
    write_deepmind(src, 2)
    path = os.path.join(src, "valid.tfrecord")
    position = np.zeros((10, 4, 2), np.float32)
    context = {"particle_type": _bytes_feature(np.zeros(4, np.int64).tobytes())}
    if kind == "truncated":
        with open(path, "rb") as f:
            raw = f.read()
        with open(path, "wb") as f:
            f.write(raw[:-7])
        words = ["valid.tfrecord", "record 0", "truncated"]
    elif kind == "no position":
        lists = {"pos": [_bytes_feature(p.tobytes()) for p in position]}
        write_tfrecord(path, [sequence_example(context, lists)])
        words = ["valid.tfrecord", "record 0", "'position' is missing", "['pos']"]
    else:
        lists = {"position": [_bytes_feature(p.tobytes()) for p in position[:7]]}
        write_tfrecord(path, [sequence_example(context, lists)])
        words = ["valid.tfrecord", "'position'", "expected 10 steps", "got 7"]
    _check_error(capsys, ["convert", src, dst], *words)
    assert not os.path.exists(dst)
    _check_error(capsys, ["inspect", src], *words)


def test_iter_reads_publisher_layout_without_metadata_stats(tmp_path):
    """The statistics are optional: a reader needs only the layout keys."""
    src = str(tmp_path / "dm")
    data = write_deepmind(src, 2, trajs=(1, 1, 1))
    path = os.path.join(src, "metadata.json")
    with open(path) as f:
        metadata = {k: v for k, v in json.load(f).items() if "_mean" not in k and "_std" not in k}
    with open(path, "w") as f:
        json.dump(metadata, f)
    (traj,) = iter_particle_trajectories(src, "test")
    assert traj["position"].tobytes() == data["test"][0][0].tobytes()


def _tf_sequence_example_class():
    """`tensorflow.SequenceExample` built by the protobuf runtime from the message
    definitions of TensorFlow's feature.proto and example.proto (proto3)."""
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(
        name="meshsim_test_tf_example.proto", package="tensorflow", syntax="proto3"
    )

    def message(name, fields, parent=None):
        m = (parent.nested_type if parent else fd.message_type).add(name=name)
        for fname, number, ftype, label, type_name, oneof in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
            if oneof is not None:
                f.oneof_index = oneof
        return m

    rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    message("BytesList", [("value", 1, F.TYPE_BYTES, rep, None, None)])
    message("FloatList", [("value", 1, F.TYPE_FLOAT, rep, None, None)])
    message("Int64List", [("value", 1, F.TYPE_INT64, rep, None, None)])
    feature = message(
        "Feature",
        [
            ("bytes_list", 1, F.TYPE_MESSAGE, opt, ".tensorflow.BytesList", 0),
            ("float_list", 2, F.TYPE_MESSAGE, opt, ".tensorflow.FloatList", 0),
            ("int64_list", 3, F.TYPE_MESSAGE, opt, ".tensorflow.Int64List", 0),
        ],
    )
    feature.oneof_decl.add(name="kind")
    for outer, field, entry, value in (
        ("Features", "feature", "FeatureEntry", ".tensorflow.Feature"),
        ("FeatureLists", "feature_list", "FeatureListEntry", ".tensorflow.FeatureList"),
    ):
        if outer == "FeatureLists":
            message(
                "FeatureList", [("feature", 1, F.TYPE_MESSAGE, rep, ".tensorflow.Feature", None)]
            )
        m = message(outer, [(field, 1, F.TYPE_MESSAGE, rep, f".tensorflow.{outer}.{entry}", None)])
        e = message(
            entry,
            [
                ("key", 1, F.TYPE_STRING, opt, None, None),
                ("value", 2, F.TYPE_MESSAGE, opt, value, None),
            ],
            parent=m,
        )
        e.options.map_entry = True
    message(
        "SequenceExample",
        [
            ("context", 1, F.TYPE_MESSAGE, opt, ".tensorflow.Features", None),
            ("feature_lists", 2, F.TYPE_MESSAGE, opt, ".tensorflow.FeatureLists", None),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.SequenceExample"))


def test_records_serialized_by_the_protobuf_runtime_read_bitwise(tmp_path):
    """A SequenceExample serialized by protobuf itself (not by the encoder above) reads the
    same; and the protobuf runtime parses the test encoder's bytes to the same message."""
    SequenceExample = _tf_sequence_example_class()
    src = str(tmp_path / "dm")
    write_deepmind(src, 2, context=3, trajs=(1, 1, 1))
    rng = np.random.default_rng(5)
    position, types = trajectory(rng, 10, 12, 2, types=(3, 5))
    ctx = rng.normal(size=(10, 3)).astype(np.float32)
    example = SequenceExample()
    example.context.feature["key"].int64_list.value.append(4)
    example.context.feature["particle_type"].bytes_list.value.append(
        types.astype(np.int64).tobytes()
    )
    for p, c in zip(position, ctx, strict=True):
        example.feature_lists.feature_list["position"].feature.add().bytes_list.value.append(
            p.tobytes()
        )
        example.feature_lists.feature_list["step_context"].feature.add().bytes_list.value.append(
            c.tobytes()
        )
    record = example.SerializeToString()
    write_tfrecord(os.path.join(src, "test.tfrecord"), [record])
    (traj,) = iter_particle_trajectories(src, "test")
    assert traj["position"].tobytes() == position.tobytes()
    assert traj["step_context"].tobytes() == ctx.tobytes()
    np.testing.assert_array_equal(traj["particle_type"][0, :, 0], types)
    ours = sequence_example(
        {
            "key": _int64_feature(4),
            "particle_type": _bytes_feature(types.astype(np.int64).tobytes()),
        },
        {
            "position": [_bytes_feature(p.tobytes()) for p in position],
            "step_context": [_bytes_feature(c.tobytes()) for c in ctx],
        },
    )
    assert SequenceExample.FromString(ours) == example
