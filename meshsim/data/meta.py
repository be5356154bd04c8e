"""The MeshGraphNets `meta.json` schema: load, validate, save, and check trajectories.

A dataset directory holds one `meta.json` shared by all of its splits::

    {"simulator": "comsol", "dt": 0.01, "collision_radius": null,
     "features": {"cells":    {"type": "static",  "shape": [1, -1, 3],   "dtype": "int32"},
                  "velocity": {"type": "dynamic", "shape": [600, -1, 2], "dtype": "float32"}},
     "field_names": ["cells", "velocity"],
     "trajectory_length": 600}

`type` is `static` (stored once, leading axis of length 1), `dynamic` (one entry per
time step) or `dynamic_varlen` (the frames of a remeshed simulation concatenated along
axis 0, with a companion int32 field `length_<name> [T]` giving the rows per frame, as in
MeshGraphNets' `dataset.py`). At most one entry of `shape` is -1; it is resolved from the
stored byte count. Unknown top-level keys (`simulator`, `dt`, `generator`, ...) are kept.

A trajectory is a `dict[str, np.ndarray]` with one array per feature (the -1 resolved) and,
for every `dynamic_varlen` feature, its `length_<name> [T] int32` array.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from meshsim.atomic import write_json
from meshsim.validation import is_int

__all__ = [
    "CELL_FIELDS",
    "FEATURE_TYPES",
    "DatasetFormatError",
    "ensure_meta",
    "feature_dtype",
    "infer_meta",
    "length_field",
    "load_meta",
    "resolve_shape",
    "save_meta",
    "validate_meta",
    "validate_trajectory",
]

logger = logging.getLogger(__name__)

META_FILENAME = "meta.json"
FEATURE_TYPES = ("static", "dynamic", "dynamic_varlen")
# Fields that index nodes rather than being per-node values: their -1 axis counts cells.
CELL_FIELDS = frozenset({"cells"})
# dtypes a field may declare (numpy names); stored little endian, as `tobytes()` on x86.
_DTYPES = frozenset(
    {"bool", "float16", "float32", "float64"}
    | {f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)}
)
# Some published metas (flag_dynamic_sizing) spell a dtype as TF's repr, "<dtype: 'float32'>".
_TF_DTYPE_REPR = re.compile(r"^<dtype:\s*'(\w+)'>$")
_SCHEMA_KEYS = ("features", "field_names", "trajectory_length")


class DatasetFormatError(ValueError):
    """A dataset file is corrupt, truncated or disagrees with its `meta.json`."""


def length_field(name: str) -> str:
    """Name of the `[T] int32` row-count companion of a `dynamic_varlen` field."""
    return f"length_{name}"


def _normalize_dtype(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"meta.json: features.{field}.dtype must be a string, got {value!r}")
    match = _TF_DTYPE_REPR.match(value.strip())
    name = match.group(1) if match else value.strip()
    if name not in _DTYPES:
        raise ValueError(
            f"meta.json: features.{field}.dtype {value!r} is not supported; "
            f"expected one of {sorted(_DTYPES)}"
        )
    return name


def validate_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Checks a meta dict and returns a normalized deep copy.

    Normalization: dtypes become plain numpy names (`"<dtype: 'float32'>"` -> `"float32"`),
    shapes become lists of ints. All other keys are preserved unchanged.

    Args:
      meta: the parsed `meta.json`.

    Returns:
      A new dict, safe to mutate.

    Raises:
      ValueError: naming the offending key, what was expected and what was found.
    """
    if not isinstance(meta, Mapping):
        raise ValueError(f"meta.json: expected a JSON object, got {type(meta).__name__}")
    for key in _SCHEMA_KEYS:
        if key not in meta:
            raise ValueError(f"meta.json: missing required key {key!r}")
    out = copy.deepcopy(dict(meta))

    length = out["trajectory_length"]
    if not is_int(length, minimum=1):
        raise ValueError(f"meta.json: trajectory_length must be a positive int, got {length!r}")

    features = out["features"]
    if not isinstance(features, Mapping) or not features:
        raise ValueError("meta.json: features must be a non-empty object of field specs")
    for name, spec in features.items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"meta.json: features.{name} must be an object, got {spec!r}")
        for key in ("type", "shape", "dtype"):
            if key not in spec:
                raise ValueError(f"meta.json: features.{name} is missing {key!r}")
        if spec["type"] not in FEATURE_TYPES:
            raise ValueError(
                f"meta.json: features.{name}.type must be one of {FEATURE_TYPES}, "
                f"got {spec['type']!r}"
            )
        shape = spec["shape"]
        if (
            not isinstance(shape, list | tuple)
            or not shape
            or not all(is_int(d, minimum=-1) for d in shape)
        ):
            raise ValueError(
                f"meta.json: features.{name}.shape must be a non-empty list of ints >= -1, "
                f"got {shape!r}"
            )
        if list(shape).count(-1) > 1:
            raise ValueError(f"meta.json: features.{name}.shape has more than one -1: {shape}")
        if spec["type"] == "dynamic_varlen" and shape[0] != -1:
            raise ValueError(
                f"meta.json: features.{name} is dynamic_varlen, so shape[0] must be -1 "
                f"(frames concatenated), got {shape}"
            )
        features[name] = dict(spec, shape=[int(d) for d in shape])
        features[name]["dtype"] = _normalize_dtype(spec["dtype"], name)

    field_names = out["field_names"]
    if not isinstance(field_names, list) or not all(isinstance(f, str) for f in field_names):
        raise ValueError(f"meta.json: field_names must be a list of strings, got {field_names!r}")
    missing = [name for name in features if name not in field_names]
    if missing:
        raise ValueError(f"meta.json: features {missing} are not listed in field_names")
    return out


def load_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and validates `meta.json` (`path` is the file or its directory)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, META_FILENAME)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"no meta.json at {path}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path}: expected the meta.json file, got a directory") from None
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not a meta.json: expected UTF-8 JSON text, got undecodable byte "
            f"{e.object[e.start : e.start + 1]!r} at offset {e.start}"
        ) from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    try:
        return validate_meta(meta)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def save_meta(meta: Mapping[str, Any], path: str | os.PathLike) -> str:
    """Validates and writes `meta.json` atomically (`path` is the file or its directory).

    Returns:
      The path of the written file.
    """
    meta = validate_meta(meta)
    path = os.fspath(path)
    if os.path.isdir(path) or not path.endswith(".json"):
        os.makedirs(path, exist_ok=True)
        path = os.path.join(path, META_FILENAME)
    # Same bytes as `json.dump(meta, f, indent=2)` plus a newline (ASCII: ensure_ascii).
    write_json(path, meta, indent=2)
    return path


def ensure_meta(directory: str | os.PathLike, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Writes `meta.json` into `directory` unless an equivalent one is already there.

    The splits of a dataset share one `meta.json`, so a writer may only add a split whose
    schema (features, field_names, trajectory_length) matches the existing file. Extra keys
    of an existing file are left as they are.

    Raises:
      ValueError: an existing `meta.json` declares a different schema.
    """
    meta = validate_meta(meta)
    path = os.path.join(os.fspath(directory), META_FILENAME)
    if os.path.exists(path):
        existing = load_meta(path)
        for key in _SCHEMA_KEYS:
            if existing[key] != meta[key]:
                raise ValueError(
                    f"{path} already exists with a different {key!r} "
                    f"(existing {existing[key]!r}, new {meta[key]!r}); splits of one dataset "
                    "share one meta.json: write to another directory or remove it first"
                )
        return existing
    save_meta(meta, path)
    return meta


def feature_dtype(spec: Mapping[str, Any]) -> np.dtype:
    """The little-endian numpy dtype a feature is stored in."""
    return np.dtype(spec["dtype"]).newbyteorder("<")


def resolve_shape(shape: list[int], num_elements: int, field: str) -> tuple[int, ...]:
    """Replaces the -1 in `shape` so that its product is `num_elements`.

    Raises:
      DatasetFormatError: the element count does not fit the declared shape.
    """
    known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
    if -1 not in shape:
        if known != num_elements:
            raise DatasetFormatError(
                f"field {field!r}: meta shape {shape} needs {known} elements, got {num_elements}"
            )
        return tuple(shape)
    if known == 0 or num_elements % known:
        raise DatasetFormatError(
            f"field {field!r}: {num_elements} elements do not fit meta shape {shape}"
        )
    return tuple(num_elements // known if d == -1 else d for d in shape)


def infer_meta(
    trajectory: Mapping[str, np.ndarray],
    *,
    static_fields: tuple[str, ...] = ("cells", "mesh_pos", "node_type"),
    **extra: Any,
) -> dict[str, Any]:
    """Builds a meta dict describing `trajectory` in the MeshGraphNets layout.

    Fields in `static_fields` become `static` with shape `[1, -1, ...]`, the others
    `dynamic` with shape `[T, -1, ...]` (axis 1, the node/cell axis, is left free).
    `length_<name>` arrays are not supported here: write varlen metas by hand.

    Args:
      trajectory: field name -> array, static fields with a leading axis of 1.
      static_fields: names stored once per trajectory.
      **extra: additional top-level keys (`simulator`, `dt`, `collision_radius`, ...).
    """
    features: dict[str, Any] = {}
    lengths = set()
    for name, array in trajectory.items():
        array = np.asarray(array)
        if array.ndim < 2:
            raise ValueError(
                f"infer_meta: field {name!r} has shape {array.shape}; expected rank >= 2 "
                "([T or 1, N, ...])"
            )
        kind = "static" if name in static_fields else "dynamic"
        if kind == "static" and array.shape[0] != 1:
            raise ValueError(
                f"infer_meta: static field {name!r} must have a leading axis of 1, "
                f"got shape {array.shape}"
            )
        if kind == "dynamic":
            lengths.add(array.shape[0])
        shape = [array.shape[0], -1, *array.shape[2:]]
        features[name] = {"type": kind, "shape": shape, "dtype": array.dtype.name}
    if len(lengths) > 1:
        raise ValueError(f"infer_meta: dynamic fields disagree on T: {sorted(lengths)}")
    length = lengths.pop() if lengths else 1
    meta = dict(extra)
    meta.update(features=features, field_names=list(features), trajectory_length=length)
    return validate_meta(meta)


def validate_trajectory(
    trajectory: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    *,
    fields: Collection[str] | None = None,
    check_finite: bool = True,
) -> None:
    """Checks one trajectory against a (validated) meta. Host side, one pass over the data.

    Checks: every feature (and `length_<name>` of varlen features) is present; dtype and
    rank match; every fixed dim of the meta shape matches (the time axis of a dynamic
    field is the trajectory length, the last axis the field's width); the free (-1) axis
    of all per-node fields agrees (one node count N); `cells` indices lie in `[0, N)`;
    varlen row counts sum to the concatenated length; float fields hold no NaN or Inf.
    Extra keys are allowed and ignored. Writers and readers (HDF5, TFRecord) call it, so
    training never sees a trajectory that disagrees with its meta.json.

    Args:
      trajectory: field name -> array.
      meta: the validated meta dict.
      fields: check only these fields (a partial read); default every feature.
      check_finite: reject NaN/Inf in float fields (costs one pass over them).

    Raises:
      ValueError: naming the field, the expected and the actual value.
    """
    num_nodes: int | None = None
    node_source = None
    node_lengths: np.ndarray | None = None
    features = {
        name: spec for name, spec in meta["features"].items() if fields is None or name in fields
    }
    for name, spec in features.items():
        if name not in trajectory:
            raise ValueError(f"trajectory is missing field {name!r} (meta declares {spec})")
        array = trajectory[name]
        if not isinstance(array, np.ndarray):
            raise ValueError(f"field {name!r}: expected np.ndarray, got {type(array).__name__}")
        expected_dtype = np.dtype(spec["dtype"])
        if array.dtype.newbyteorder("=") != expected_dtype.newbyteorder("="):
            raise ValueError(
                f"field {name!r}: expected dtype {expected_dtype.name}, got {array.dtype.name}"
            )
        shape = spec["shape"]
        if array.ndim != len(shape):
            raise ValueError(
                f"field {name!r}: expected rank {len(shape)} (meta shape {shape}), "
                f"got shape {array.shape}"
            )
        for axis, (want, got) in enumerate(zip(shape, array.shape, strict=True)):
            if want != -1 and want != got:
                role = "width; " if axis == len(shape) - 1 else ""
                if axis == 0 and spec["type"] == "dynamic":
                    role = "trajectory length; "
                raise ValueError(
                    f"field {name!r}: axis {axis} expected {want} ({role}meta shape {shape}), "
                    f"got {got} (shape {array.shape})"
                )
        if check_finite:
            _check_finite(name, array)
        if spec["type"] == "dynamic_varlen":
            if fields is not None and length_field(name) not in fields:
                continue
            lengths = _check_lengths(trajectory, name, array)
            if name not in CELL_FIELDS:
                if node_lengths is not None and not np.array_equal(node_lengths, lengths):
                    raise ValueError(
                        f"field {length_field(name)!r}: per-frame node counts differ from "
                        f"those of {node_source!r}"
                    )
                node_lengths, node_source = lengths, length_field(name)
            continue
        if name in CELL_FIELDS or -1 not in shape:
            continue
        n = array.shape[shape.index(-1)]
        if num_nodes is None:
            num_nodes, node_source = n, name
        elif n != num_nodes:
            raise ValueError(
                f"field {name!r}: inconsistent node count: expected {num_nodes} "
                f"(from {node_source!r}), got {n} (shape {array.shape}, meta shape {shape}; "
                "raw bytes sized for another width also end up here)"
            )
    for name in CELL_FIELDS & set(features):
        cells = trajectory[name]
        if features[name]["type"] == "dynamic_varlen" or num_nodes is None:
            continue
        if cells.size and (cells.min() < 0 or cells.max() >= num_nodes):
            raise ValueError(
                f"field {name!r}: indices must lie in [0, {num_nodes}) (N from "
                f"{node_source!r}), got range [{cells.min()}, {cells.max()}]"
            )


def _check_finite(name: str, array: np.ndarray) -> None:
    if array.dtype.kind not in "fc":
        return
    finite = np.isfinite(array)
    if not finite.all():
        first = np.unravel_index(int(np.argmin(finite)), array.shape)
        raise ValueError(
            f"field {name!r}: expected finite values, got {int(finite.size - finite.sum())} "
            f"NaN/Inf, the first {array[first]} at index {[int(i) for i in first]}"
        )


def _check_lengths(trajectory: Mapping[str, np.ndarray], name: str, array: np.ndarray):
    key = length_field(name)
    if key not in trajectory:
        raise ValueError(f"trajectory is missing {key!r}, the row counts of varlen field {name!r}")
    lengths = np.asarray(trajectory[key])
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise ValueError(
            f"field {key!r}: expected a [T] integer array, got {lengths.dtype.name} "
            f"shape {lengths.shape}"
        )
    if int(lengths.sum()) != array.shape[0] or (lengths < 0).any():
        raise ValueError(
            f"field {key!r}: row counts must be >= 0 and sum to {array.shape[0]} "
            f"(rows of {name!r}), got sum {int(lengths.sum())}"
        )
    return lengths
