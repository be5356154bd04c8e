"""Bad input gets a clear error: the field (and file, trajectory or record), what was
expected and what was found. Library-level cases; the CLI cases live in their own file.

Categories:

* **config, overrides** — `--set KEY=VALUE` (`apply_overrides`): types from the dataclass
  hints (a bool is a real bool, an int not a float), bounds and choices per field.
* **config, config.json and constructors** — `config_from_dict` / `load_config` on JSON
  (strings for ints, unknown keys, sections that are not objects, unreadable files) and
  the dataclasses built directly.
* **data files** — HDF5 and TFRecord trajectories that disagree with meta.json (width,
  trajectory length), hold NaN/Inf, are empty, or sit where a directory is expected;
  meta.json that is not UTF-8 JSON.
* **API** — public functions of meshsim.graph, meshsim.meshes, meshsim.data and
  meshsim.tasks given a wrong rank, dtype, type, a negative count, an empty input or an
  index out of range (degenerate cells included).
"""

import json
import logging

import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from meshsim import config as C
from meshsim import data
from meshsim.data import tfrecord
from meshsim.data.example_proto import encode_example
from meshsim.graph import (
    PaddingBudget,
    batch,
    bucket_size,
    edge_set,
    edges_from_cells,
    make_graph,
    pad,
    placeholder_graph,
    to_jraph,
    unbatch,
    unique_edges,
)
from meshsim.meshes import Ellipse, cell_angles, mesh_quality, signed_areas
from meshsim.tasks import cfd_task, cloth_task
from meshsim.training import batches as pipeline
from tests.conftest import mesh_graph, synthetic_cfd_trajectory

T = 4  # frames per trajectory of the tiny datasets below

# ----------------------------------------------------------------- config, overrides

OVERRIDES = [
    # (override, exception, message)
    (
        "model.latent_size=-3",
        ValueError,
        r"model\.latent_size: expected an int ≥ 1 or None, got -3$",
    ),
    (
        "model.latent_size=abc",
        TypeError,
        r"model\.latent_size: expected an int ≥ 1 or None, got 'abc'",
    ),
    (
        "model.latent_size=3.5",
        TypeError,
        r"model\.latent_size: expected an int ≥ 1 or None, got 3\.5",
    ),
    (
        "model.num_message_passing_steps=0",
        ValueError,
        r"passing_steps: expected an int ≥ 1 or None, got 0",
    ),
    (
        "model.mlp_hidden_layers=-1",
        ValueError,
        r"hidden_layers: expected an int ≥ 0 or None, got -1",
    ),
    ("model.scan_unroll=0", ValueError, r"model\.scan_unroll: expected an int ≥ 1 or None, got 0"),
    ("model.remat=maybe", TypeError, r"model\.remat: expected a bool or None, got 'maybe'"),
    (
        "model.layer_norm=maybe",
        TypeError,
        r"model\.layer_norm: expected a bool or None, got 'maybe'",
    ),
    ("model.activation=sigmoid", ValueError, r"activation: expected one of \[.*'relu'.*sigmoid"),
    ("model.aggregation=median", ValueError, r"aggregation: expected one of \['max', 'mean', 's"),
    ("model.dtype=float7", ValueError, r"model\.dtype: expected a dtype name, .*got 'float7'"),
    ("model.name=unet", ValueError, r"model\.name: expected one of \['graphcast', 'meshgra"),
    (
        "task.name=fluid",
        ValueError,
        r"^task\.name: expected one of \[.airfoil., .cfd., .cloth., .*got .fl",
    ),
    ("task.noise_std=abc", TypeError, r"^task\.noise_std: expected a float ≥ 0 or None, got 'abc'"),
    (
        "task.noise_std=-0.1",
        ValueError,
        r"^task\.noise_std: expected a float ≥ 0 or None, got -0\.1",
    ),
    (
        "task.noise_gamma=1e999",
        ValueError,
        r"^task\.noise_gamma: expected a float ≥ 0 or None \(fin",
    ),
    (
        "task.options.mesh_splits=1",
        ValueError,
        r"^task\.options: unknown keys \['mesh_splits'\] for task 'cfd'; valid: \['k_hop'",
    ),
    (
        "train.optimizer.learning_rate=-1",
        ValueError,
        r"learning_rate: expected a float > 0, got -1",
    ),
    ("train.optimizer.learning_rate=0", ValueError, r"learning_rate: expected a float > 0, got 0"),
    ("train.optimizer.decay_rate=1.5", ValueError, r"decay_rate: expected a float in \(0, 1\]"),
    ("train.optimizer.decay_steps=0", ValueError, r"decay_steps: expected an int ≥ 1, got 0"),
    ("train.optimizer.min_learning_rate=-1e-6", ValueError, r"min_learning_rate: .* ≥ 0, got"),
    ("train.optimizer.grad_clip_norm=0", ValueError, r"clip_norm: expected a float > 0 or None"),
    ("train.steps=0", ValueError, r"^train\.steps: expected an int ≥ 1, got 0"),
    ("train.log_every=0", ValueError, r"^train\.log_every: expected an int ≥ 1, got 0"),
    ("train.checkpoint_every=0", ValueError, r"checkpoint_every: expected an int ≥ 1, got 0"),
    ("train.eval_every=-1", ValueError, r"^train\.eval_every: expected an int ≥ 0, got -1"),
    ("train.keep_checkpoints=0", ValueError, r"keep_checkpoints: expected an int ≥ 1, got 0"),
    ("train.accumulate_steps=-1", ValueError, r"accumulate_steps: expected an int ≥ 0, got -1"),
    ("train.seed=-1", ValueError, r"^train\.seed: expected an int ≥ 0, got -1"),
    ("train.on_nonfinite=ignore", ValueError, r"on_nonfinite: expected one of \['stop', 'skip'"),
    ("data.batch_size=0", ValueError, r"^data\.batch_size: expected an int ≥ 1, got 0"),
    ("data.pool_size=0", ValueError, r"^data\.pool_size: expected an int ≥ 1, got 0"),
    ("data.train_split=", ValueError, r"^data\.train_split: expected a non-empty str, got ''"),
    ("data.generate_domain=ocean", ValueError, r"generate_domain: expected one of .*'ocean'"),
    ("data.generate_mesh_resolution=-1", ValueError, r"mesh_resolution: expected a float > 0"),
    ("parallel.backend=pmapp", ValueError, r"backend: expected one of \['jit', 'pmap'\]"),
    ("parallel.data=0", ValueError, r"^parallel\.data: expected an int ≥ 1 or None, got 0"),
    ("parallel.graph=0", ValueError, r"^parallel\.graph: expected an int ≥ 1, got 0"),
    ("parallel.shard_optimizer=2", TypeError, r"shard_optimizer: expected a bool, got '2' \(str\)"),
    (
        "task.name=weather;task.options.mesh_splits=-1",
        ValueError,
        r"^task\.options\.mesh_splits: exp",
    ),
    (
        "task.name=weather;task.options.radius_fraction=0",
        ValueError,
        r"radius_fraction: .* > 0, got 0",
    ),
    ("task.name=weather;task.options.mesh_split=3", ValueError, r"^task\.options: unknown keys"),
    ("train.unroll_steps=0", ValueError, r"train.unroll_steps: expected an int ≥ 1"),
    ("train.unroll_schedule=-1", ValueError, r"unroll_schedule: expected an int ≥ 0"),
    ("train.unroll_mode=teacher", ValueError, r"train.unroll_mode: expected one of"),
    ("data.variables=[1, 2]", TypeError, r"data\.variables\[0\]: expected a str, got 1"),
]


@pytest.mark.parametrize("override, error, message", OVERRIDES, ids=[o[0] for o in OVERRIDES])
def test_override_names_field_expected_and_actual(override, error, message):
    with pytest.raises(error, match=message):
        C.apply_overrides(C.ExperimentConfig(), override.split(";"))


def test_good_overrides_are_parsed_by_the_field_type():
    c = C.apply_overrides(
        C.ExperimentConfig(),
        [
            "train.optimizer.learning_rate=1",  # int for a float field: widened
            "data.variables=t2m, z500",
            "parallel.data=none",
            "model.remat=yes",
            "name=123",  # a str field keeps the text
        ],
    )
    assert c.train.optimizer.learning_rate == 1.0
    assert type(c.train.optimizer.learning_rate) is float
    assert c.data.variables == ("t2m", "z500") and c.parallel.data is None
    assert c.model.remat is True and c.name == "123"
    assert issubclass(C.ConfigTypeError, TypeError) and issubclass(C.ConfigTypeError, ValueError)


def test_config_choice_lists_match_the_code():
    from meshsim.solvers.generate import DOMAINS

    assert set(DOMAINS) <= set(C.GENERATE_DOMAINS)  # every generator domain is accepted
    for name in C.MODEL_DTYPES:  # every accepted dtype is a float dtype jax knows
        assert jnp.issubdtype(jnp.dtype(name), jnp.floating)


# ----------------------------------------------------------------- config, json / dataclasses

JSON_CONFIGS = [
    ({"model": {"latent_size": "abc"}}, TypeError, r"model\.latent_size: .*got 'abc' \(str\)"),
    ({"model": {"latent_size": True}}, TypeError, r"model\.latent_size: .*got True \(bool\)"),
    ({"model": {"remat": "yes"}}, TypeError, r"model\.remat: expected a bool or None, got 'yes'"),
    ({"train": {"optimizer": {"learning_rate": "1e-3"}}}, TypeError, r"learning_rate: .*'1e-3'"),
    ({"train": {"log_every": 0}}, ValueError, r"train\.log_every: expected an int ≥ 1, got 0"),
    ({"model": 3}, TypeError, r"^model: expected a ModelConfig section, got 3 \(int\)"),
    ({"model": {"latnt": 3}}, ValueError, r"^model: unknown keys \['latnt'\]; valid: \["),
    ({"weather": {"variables": "t2m"}}, TypeError, r"variables: expected a tuple of str, got 't2m"),
    ({"noise_std": "abc"}, TypeError, r"^task\.noise_std: expected a float ≥ 0 or None, got 'abc'"),
]


@pytest.mark.parametrize("content, error, message", JSON_CONFIGS)
def test_config_json_names_field_expected_and_actual(tmp_path, content, error, message):
    with pytest.raises(error, match=message):
        C.config_from_dict(C.ExperimentConfig, content)
    path = tmp_path / "config.json"  # the same through load_config, as `meshsim train` does
    path.write_text(json.dumps(content))
    with pytest.raises(error, match=message):
        C.load_config(str(path))


@pytest.mark.parametrize(
    "raw, error, message",
    [
        (b"\xff\xfe{}", ValueError, r"config: '.*config\.json' is not UTF-8 text"),
        (b'{"model": ', ValueError, r"config: '.*config\.json' is not valid JSON"),
        (b"[1, 2]", TypeError, r"config: expected a JSON object, got list"),
    ],
)
def test_unreadable_config_json_names_the_path(tmp_path, raw, error, message):
    path = tmp_path / "config.json"
    path.write_bytes(raw)
    with pytest.raises(error, match=message):
        C.load_config(str(path))


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: C.ModelConfig(latent_size=-3), ValueError, r"^model\.latent_size: .*got -3"),
        (
            lambda: C.OptimizerConfig(learning_rate=float("nan")),
            ValueError,
            r"^train\.optimizer\.learning_rate: expected a float > 0 \(finite\), got nan",
        ),
        (
            lambda: C.TrainConfig(optimizer=None),
            TypeError,
            r"^train\.optimizer: expected an OptimizerConfig section, got None",
        ),
        (
            lambda: C.ExperimentConfig(model={"latent_size": 3}),
            TypeError,
            r"^model: expected a ModelConfig section, got \{'latent_size': 3\} \(dict\)",
        ),
    ],
    ids=["model", "optimizer-nan", "train-section", "experiment-section"],
)
def test_config_dataclasses_validate_themselves(build, error, message):
    with pytest.raises(error, match=message):
        build()


# ----------------------------------------------------------------- data files


def _hdf5_dataset(root, count=2):
    trajectories = [synthetic_cfd_trajectory(seed=i, steps=T) for i in range(count)]
    data.write_hdf5_split(root, "train", trajectories, data.infer_meta(trajectories[0], dt=0.01))
    return trajectories


def _replace_field(root, index, name, value):
    with h5py.File(root / "train.h5", "r+") as f:
        del f[f"{index:05d}/{name}"]
        f[f"{index:05d}/{name}"] = value


def _wider(t):
    return np.concatenate([t["velocity"], t["velocity"][..., :1]], -1)  # width 3, meta says 2


def _with_nan(t):
    v = t["velocity"].copy()
    v[2, 5, 1] = np.nan
    return v


HDF5_CASES = [
    # (field, make the bad value from the good trajectory, message after "trajectory 1: ")
    (
        "velocity",
        _wider,
        r"'velocity': axis 2 expected 2 \(width; .*got 3 \(shape \(4, 30, 3",
    ),
    ("velocity", lambda t: t["velocity"][:2], r"'velocity': axis 0 expected 4 \(trajectory len"),
    (
        "velocity",
        lambda t: np.concatenate([t["velocity"]] * 5),
        r"'velocity': axis 0 expected 4 \(trajectory length; .*got 20",
    ),
    ("velocity", _with_nan, r"'velocity': expected finite values, got 1 NaN/Inf.*\[2, 5, 1\]"),
    (
        "mesh_pos",
        lambda t: np.where(np.arange(30)[None, :, None] == 3, np.inf, t["mesh_pos"]),
        r"'mesh_pos': expected finite values, got 2 NaN/Inf, the first inf at index \[0, 3, 0\]",
    ),
    (
        "cells",
        lambda t: np.where(t["cells"] == 29, 99, t["cells"]).astype(np.int32),
        r"'cells': indices must lie in \[0, 30\) .*got range \[0, 99\]",
    ),
    ("velocity", lambda t: t["velocity"].astype(np.float64), r"'velocity': expected dtype float32"),
]


@pytest.mark.parametrize("access", ["index", "iterate"])
@pytest.mark.parametrize("field, make_bad, message", HDF5_CASES)
def test_bad_hdf5_trajectory_names_file_trajectory_and_field(
    tmp_path, access, field, make_bad, message
):
    trajectories = _hdf5_dataset(tmp_path)
    _replace_field(tmp_path, 1, field, make_bad(trajectories[1]))
    dataset = data.open_dataset(tmp_path, "train")
    assert data.num_trajectories(tmp_path, "train") == 2
    dataset[0]  # the good trajectory still reads
    with pytest.raises(data.DatasetFormatError, match=r"train\.h5: trajectory 1: field " + message):
        if access == "index":
            dataset[1]
        else:
            list(dataset)


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (_with_nan, r"record 1 at offset \d+: field 'velocity': expected finite values"),
        (_wider, r"record 1 at offset \d+: field 'velocity': inconsistent node count"),
        (
            lambda t: t["velocity"][:3],  # 3 frames of 30 nodes where meta says 4
            r"record 1 at offset \d+: field 'velocity': 180 elements do not fit meta shape \[4, -1",
        ),
    ],
    ids=["nan", "width", "length"],
)
def test_bad_tfrecord_trajectory_names_file_record_and_field(tmp_path, make_bad, message):
    trajectories = [synthetic_cfd_trajectory(seed=i, steps=T) for i in range(2)]
    data.save_meta(data.infer_meta(trajectories[0]), tmp_path)
    bad = dict(trajectories[1], velocity=make_bad(trajectories[1]))
    with tfrecord.TFRecordWriter(tmp_path / "train.tfrecord") as writer:
        for t in (trajectories[0], bad):  # bypasses the writer's own validation
            writer.write(
                encode_example({k: np.ascontiguousarray(v).tobytes() for k, v in t.items()})
            )
    with pytest.raises(data.DatasetFormatError, match=r"train\.tfrecord: " + message):
        data.open_dataset(tmp_path, "train")[1]
    with pytest.raises(data.DatasetFormatError, match=r"train\.tfrecord: " + message):
        list(data.iter_trajectories(tmp_path, "train"))


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda t: t["velocity"][:2], r"trajectory 1: field 'velocity': axis 0 expected 4"),
        (_with_nan, r"trajectory 1: field 'velocity': expected finite values"),
    ],
    ids=["short", "nan"],
)
def test_training_batches_never_see_a_bad_trajectory(tmp_path, make_bad, message):
    """Lengths come from meta.json (as in training); the bad trajectory fails when loaded,
    naming file and trajectory, not later as "t: expected in range(...)" or a NaN loss."""
    trajectories = _hdf5_dataset(tmp_path)
    _replace_field(tmp_path, 1, "velocity", make_bad(trajectories[1]))
    dataset, task = data.open_dataset(tmp_path, "train"), cfd_task()
    budget = pipeline.dataset_budget([dataset[0]], task)
    batches = pipeline.iter_batches(
        dataset, task, batch_size=2, budget=budget, lengths=[T, T], shuffle=False
    )
    next(batches)  # windows 0 and 1 of the good trajectory 0
    with pytest.raises(data.DatasetFormatError, match=r"train\.h5: " + message):
        next(batches)  # window 2 of trajectory 0, then trajectory 1 is loaded


@pytest.mark.parametrize(
    "call",
    [
        lambda d: pipeline.dataset_budget(data.open_dataset(d, "train"), cfd_task()),
        lambda d: data.inspect_dataset(d),
    ],
    ids=["budget", "inspect"],
)
def test_degenerate_cell_in_a_dataset_names_file_trajectory_and_cell(tmp_path, call):
    trajectories = _hdf5_dataset(tmp_path)
    cells = trajectories[1]["cells"].copy()
    cells[0, 3] = [7, 7, 8]
    _replace_field(tmp_path, 1, "cells", cells)
    with pytest.raises(ValueError, match=r"train\.h5: trajectory 1: cells: cell 3 = \[7, 7, 8\]"):
        call(tmp_path)


def test_empty_tfrecord_converts_with_a_warning_and_cannot_be_trained_on(tmp_path, caplog):
    src, dst = tmp_path / "src", tmp_path / "dst"
    data.save_meta(data.infer_meta(synthetic_cfd_trajectory(steps=T)), src)
    (src / "train.tfrecord").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="meshsim.data"):
        assert data.convert_dataset(src, dst, progress=False) == {"train": 0}
    assert any(
        r.levelno == logging.WARNING and "train.tfrecord holds no records" in r.getMessage()
        for r in caplog.records
    )
    dataset = data.open_dataset(dst, "train")
    with caplog.at_level(logging.WARNING, logger="meshsim.data"):
        assert len(dataset) == 0
    assert any("train.h5 holds no trajectories" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match=r"trajectories: expected at least one .*dst/train\.h5"):
        next(pipeline.iter_batches(dataset, cfd_task(), batch_size=1, budget=None))


@pytest.mark.parametrize(
    "call",
    [
        lambda p: data.convert_dataset(p, p.parent / "out", progress=False),
        lambda p: data.open_dataset(p, "train"),
        lambda p: data.inspect_dataset(p),
        lambda p: data.list_splits(p),
    ],
    ids=["convert", "open", "inspect", "list_splits"],
)
def test_a_file_where_a_directory_is_expected_names_the_path(tmp_path, call):
    path = tmp_path / "train.tfrecord"
    path.write_bytes(b"\x00\xff" * 64)  # binary: used to surface as UnicodeDecodeError
    with pytest.raises(NotADirectoryError, match=r"train\.tfrecord is a file; expected a dir"):
        call(path)


def test_convert_into_a_file_and_a_missing_directory_name_the_path(tmp_path):
    _hdf5_dataset(tmp_path / "src")
    (tmp_path / "dst").write_text("")
    with pytest.raises(NotADirectoryError, match=r"destination .*dst is a file"):
        data.convert_dataset(tmp_path / "src", tmp_path / "dst", progress=False)
    with pytest.raises(FileNotFoundError, match=r"dataset directory .*nowhere does not exist"):
        data.list_splits(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"features": "\xff"}', r"meta\.json: not a meta\.json: expected UTF-8 JSON text, got"),
        (b'{"features": ', r"meta\.json: not valid JSON"),
        (b"[1, 2]", r"meta\.json: meta\.json: expected a JSON object, got list"),
    ],
    ids=["not-utf8", "bad-json", "not-an-object"],
)
def test_unreadable_meta_json_names_the_path(tmp_path, raw, message):
    _hdf5_dataset(tmp_path)
    (tmp_path / "meta.json").write_bytes(raw)
    with pytest.raises(ValueError, match=str(tmp_path) + ".*" + message):
        data.open_dataset(tmp_path, "train")


def test_a_split_file_that_is_not_hdf5_names_the_path(tmp_path):
    _hdf5_dataset(tmp_path)
    (tmp_path / "train.h5").write_bytes(b"not hdf5")
    with pytest.raises(data.DatasetFormatError, match=r"train\.h5: not a readable HDF5 file"):
        len(data.open_dataset(tmp_path, "train"))


# ----------------------------------------------------------------- API

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def _graph_api_cases():
    g = mesh_graph(3, 3)
    budget = PaddingBudget.fit(g)
    f2, s, r = np.zeros((2, 1), np.float32), np.array([0, 1], np.int32), np.array([1, 0], np.int32)
    return [
        # (call, exception, message)
        (lambda: edges_from_cells([[0, 0, 1]]), ValueError, r"cell 0 = \[0, 0, 1\] repeats a node"),
        (
            lambda: edges_from_cells(np.array([[0, 1, 2], [2, 3, 3]])),
            ValueError,
            r"cells: cell 1 = \[2, 3, 3\] repeats a node .*expected 3 distinct .*1 degenerate",
        ),
        (lambda: unique_edges([[0, 1, 2, 2]]), ValueError, r"cell 0 = \[0, 1, 2, 2\] repeats"),
        (lambda: unique_edges([0, 1, 2]), ValueError, r"cells: expected shape \[num_cells, k ≥ 2"),
        (lambda: edges_from_cells([[0.0, 1, 2]]), TypeError, r"cells: expected an integer dtype"),
        (
            lambda: edges_from_cells([[0, 1, 2], [1, -2, 3]]),
            ValueError,
            r"cells: negative node index -2 in cell 1 = \[1, -2, 3\]; expected node indices ≥ 0",
        ),
        (
            lambda: PaddingBudget(n_node=8.5, n_edge={}, n_graph=2),
            TypeError,
            r"PaddingBudget\.n_node: expected a mapping \{name: size\}, got float",
        ),
        (
            lambda: PaddingBudget({"mesh": 8.5}, {}, 2),
            ValueError,
            r"PaddingBudget\.n_node\['mesh'\]: expected a positive int, got 8\.5",
        ),
        (lambda: PaddingBudget.fit({}), TypeError, r"^graph: expected a MultiGraph, got dict"),
        (
            lambda: PaddingBudget.for_dataset([g, {}]),
            TypeError,
            r"^graphs\[1\]: expected a MultiGraph, got dict",
        ),
        (
            lambda: PaddingBudget.for_dataset([g], graphs_per_batch=0),
            ValueError,
            r"^graphs_per_batch: expected a positive int, got 0",
        ),
        (lambda: bucket_size(-1), ValueError, r"^n: expected an int ≥ 0, got -1"),
        (lambda: bucket_size(10, multiple=0), ValueError, r"^multiple: expected a positive int"),
        (lambda: pad(g, {"mesh": 64}), TypeError, r"^budget: expected a PaddingBudget, got dict"),
        (lambda: pad({}, budget), TypeError, r"^graph: expected a MultiGraph, got dict"),
        (lambda: batch([g, None]), TypeError, r"^graphs\[1\]: expected a MultiGraph, got None"),
        (lambda: unbatch("g"), TypeError, r"^graph: expected a MultiGraph, got str"),
        (lambda: to_jraph({}), TypeError, r"^graph: expected MultiGraph, got dict"),
        (
            lambda: placeholder_graph({"mesh": -1}, {}),
            ValueError,
            r"node_sizes\['mesh'\]: expected a feature width \(an int ≥ 0\), got -1",
        ),
        (
            lambda: placeholder_graph({"mesh": 3}, {"e": ("mesh", "grid", 2)}),
            ValueError,
            r"edge_types\['e'\] receiver: expected one of the node sets \['mesh'\], got 'grid'",
        ),
        (
            lambda: edge_set(np.zeros(2, np.float32), s, r),
            ValueError,
            r"edge_set\.features: expected rank 2, got shape \(2,\)",
        ),
        (
            lambda: edge_set(f2, s[None], r),
            ValueError,
            r"edge_set\.senders: expected rank 1, got shape \(1, 2\)",
        ),
        (
            lambda: make_graph(np.zeros((2, 1), np.float32), {"mesh": (f2, s.astype(float), r)}),
            TypeError,
            r"edge_sets\['mesh'\]\.senders: expected dtype int32, got float64",
        ),
        (
            lambda: make_graph(np.zeros((2, 1), np.float32), {"mesh": (f2, s, r[:1])}),
            ValueError,
            r"edge_sets\['mesh'\]\.receivers: expected length 2 \(= len\(senders\)\), got 1",
        ),
    ]


GRAPH_API = _graph_api_cases()


@pytest.mark.parametrize("call, error, message", GRAPH_API, ids=range(len(GRAPH_API)))
def test_graph_api_names_argument_expected_and_actual(call, error, message):
    with pytest.raises(error, match=message):
        call()


MESH_API = [
    (
        lambda: mesh_quality(SQUARE, np.zeros((0, 3), np.int32)),
        ValueError,
        r"^cells: expected shape \[C, 3\] with C ≥ 1, got \(0, 3\)",
    ),
    (lambda: mesh_quality(SQUARE, []), ValueError, r"^cells: expected shape \[C, 3\] with C ≥ 1"),
    (
        lambda: signed_areas(SQUARE, [[0, 1, 7]]),
        ValueError,
        r"^cells: expected indices in \[0, 4\) \(N points\), got cell 0 = \[0, 1, 7\]",
    ),
    (
        lambda: signed_areas(SQUARE, [[0, 1, 2], [0, -1, 2]]),
        ValueError,
        r"^cells: expected indices in \[0, 4\) .*got cell 1 = \[0, -1, 2\]",
    ),
    (lambda: signed_areas(SQUARE[:, :1], [[0, 1, 2]]), ValueError, r"^points: expected shape \[N"),
    (lambda: cell_angles(SQUARE, [[0.0, 1, 2]]), TypeError, r"^cells: expected an integer array"),
    (lambda: Ellipse((0, 0), (1, 1)).boundary(3.5), TypeError, r"^num_points: expected an int"),
    (
        lambda: Ellipse((0, 0), (1, 1)).contains(np.zeros((4, 3))),
        ValueError,
        r"^points: expected shape \[\.\.\., 2\], got \(4, 3\)",
    ),
]


@pytest.mark.parametrize("call, error, message", MESH_API, ids=range(len(MESH_API)))
def test_mesh_api_names_argument_expected_and_actual(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.fixture
def hdf5_dir(tmp_path):
    _hdf5_dataset(tmp_path)
    return tmp_path


DATA_API = [
    (
        lambda d: data.read_hdf5_trajectory(d, "train", 1.5),
        TypeError,
        r"^index: expected an int, got 1\.5 \(float\)",
    ),
    (
        lambda d: data.open_dataset(d, "train")[0:1],
        TypeError,
        r"^index: expected an int, got slice",
    ),
    (
        lambda d: next(data.iter_hdf5_trajectories(d, "train", fields="cells")),
        TypeError,
        r"^fields: expected a sequence of field names, got the string 'cells'",
    ),
    (
        lambda d: data.inspect_dataset(d, max_trajectories=-1),
        ValueError,
        r"^max_trajectories: expected an int ≥ 0 or None, got -1",
    ),
    (
        lambda d: data.write_hdf5_split(
            d / "o", "t", [], data.load_meta(d), compression="gzip", compression_opts=12
        ),
        ValueError,
        r"^compression_opts: expected a gzip level 0-9, got 12",
    ),
    (
        lambda d: data.convert_dataset(d, d / "o", compression="zip"),
        ValueError,
        r"^compression: expected one of \(None, 'gzip', 'lzf'\), got 'zip'",
    ),
    (
        lambda d: tfrecord.read_tfrecord_trajectory(d / "train.h5", -1, data.load_meta(d)),
        ValueError,
        r"^offset: expected a byte offset \(an int ≥ 0\), got -1",
    ),
    (
        lambda d: tfrecord.TFRecordWriter(d / "x.tfrecord").write("text"),
        TypeError,
        r"^record: expected bytes, got str",
    ),
]


@pytest.mark.parametrize("call, error, message", DATA_API, ids=range(len(DATA_API)))
def test_data_api_names_argument_expected_and_actual(hdf5_dir, call, error, message):
    with pytest.raises(error, match=message):
        call(hdf5_dir)


def _pipeline_cases():
    trajs = [synthetic_cfd_trajectory(seed=i, steps=T) for i in range(2)]
    task = cfd_task()
    budget = pipeline.dataset_budget(trajs, task)
    batches = lambda **kw: next(
        pipeline.iter_batches(trajs, task, **{"batch_size": 1, "budget": budget, **kw})
    )
    return [
        (lambda: batches(batch_size=0), r"^batch_size: expected an int ≥ 1, got 0"),
        (lambda: batches(pool_size=0), r"^pool_size: expected an int ≥ 1, got 0"),
        (lambda: batches(start_step=-1), r"^start_step: expected an int ≥ 0, got -1"),
        (
            lambda: batches(lengths=[T]),
            r"^lengths: expected 2 entries \(one per trajectory\), got 1",
        ),
        (
            lambda: next(pipeline.window_indices([T, -1], task, seed=0, pool_size=1)),
            r"^lengths: expected ints ≥ 0 \(frames per trajectory\), got -1",
        ),
        (lambda: pipeline.dataset_budget([], task), r"^trajectories: expected at least one"),
        (lambda: next(pipeline.prefetch(iter([]), size=0)), r"^size: expected an int ≥ 1, got 0"),
        (lambda: cfd_task(noise_std=-1.0), r"^noise_std: expected a finite number ≥ 0, got -1"),
        (
            lambda: task.window(trajs[0], T - 1, task.structure(trajs[0])),
            r"^t: expected in range\(0, 3\), got 3 \(trajectory length 4",
        ),
    ]


PIPELINE_API = _pipeline_cases()


@pytest.mark.parametrize("call, message", PIPELINE_API, ids=range(len(PIPELINE_API)))
def test_pipeline_and_task_api_names_argument_expected_and_actual(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_task_noise_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"^noise_gamma: expected a number, got 'x'"):
        cloth_task(noise_gamma="x")
