"""Format-independent access to mesh datasets: open, iterate, convert, inspect.

A dataset directory holds `meta.json` and one file per split, either MeshGraphNets'
`<split>.tfrecord` or meshsim's `<split>.h5`; both decode to the same trajectory dicts.
Published particle datasets (LagrangeBench, learning_to_simulate) are converted and
inspected through `particle_convert` and `particle_inspect`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from meshsim.data import hdf5, particle_convert, particle_inspect, particles, tfrecord
from meshsim.data.frame_cache import FrameCache
from meshsim.data.hdf5_lazy import LazyHDF5Split, LazyTrajectory
from meshsim.data.meta import (
    CELL_FIELDS,
    length_field,
    load_meta,
    save_meta,
    validate_meta,
)
from meshsim.data.weather import is_weather_directory
from meshsim.data.weather_inspect import format_weather_inspection, inspect_weather_dataset
from meshsim.graph import edges_from_cells, unique_edges
from meshsim.graph.hops import receptive_field_edge_counts
from meshsim.validation import check_int, check_number, is_int

__all__ = [
    "FORMATS",
    "Dataset",
    "convert_dataset",
    "count_mesh_edges",
    "format_inspection",
    "inspect_dataset",
    "iter_trajectories",
    "list_splits",
    "open_dataset",
    "varlen_frames",
]

logger = logging.getLogger(__name__)

FORMATS = ("tfrecord", "hdf5")
_SUFFIXES = {".tfrecord": "tfrecord", ".h5": "hdf5"}
_USUAL_SPLITS = ("train", "valid", "test")


def _split_file(directory: str, split: str, fmt: str) -> str:
    if fmt == "tfrecord":
        return tfrecord.tfrecord_path(directory, split)
    return hdf5.hdf5_path(directory, split)


def _require_directory(directory: str | os.PathLike, what: str = "dataset directory") -> str:
    """`directory` as a str; FileNotFoundError / NotADirectoryError naming it otherwise."""
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise FileNotFoundError(f"{what} {directory} does not exist")
    if not os.path.isdir(directory):
        raise NotADirectoryError(
            f"{what} {directory} is a file; expected a directory holding meta.json and "
            "<split>.tfrecord or <split>.h5 files"
        )
    return directory


def list_splits(directory: str | os.PathLike) -> list[str]:
    """Split names with a `.tfrecord` or `.h5` file in `directory` (train/valid/test first)."""
    directory = _require_directory(directory)
    names = set()
    for entry in os.listdir(directory):
        stem, suffix = os.path.splitext(entry)
        if suffix in _SUFFIXES and stem:
            names.add(stem)
    usual = [s for s in _USUAL_SPLITS if s in names]
    return usual + sorted(names - set(usual))


def _detect_format(directory: str, split: str, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS} or None, got {fmt!r}")
        if not os.path.exists(_split_file(directory, split, fmt)):
            raise FileNotFoundError(f"no {fmt} file for split {split!r} in {directory}")
        return fmt
    # HDF5 first: where a split was converted in place it is the faster, random-access copy.
    for candidate in ("hdf5", "tfrecord"):
        if os.path.exists(_split_file(directory, split, candidate)):
            return candidate
    available = list_splits(directory) if os.path.isdir(directory) else []
    raise FileNotFoundError(
        f"no {split}.tfrecord or {split}.h5 in {directory}; available splits: {available}"
    )


class Dataset:
    """One split of a dataset directory, in either format.

    Iterating streams trajectories one at a time; `len()` and indexing are available for
    both formats (for TFRecord they use an index of record offsets built on first use by
    reading the record headers only).

    Attributes:
      directory: the dataset directory.
      split: the split name.
      format: `"tfrecord"` or `"hdf5"`.
      path: the split file.
      meta: the validated `meta.json` dict.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        split: str,
        *,
        format: str | None = None,
        meta: Mapping[str, Any] | None = None,
        verify_data_crc: bool = True,
    ):
        self.directory = _require_directory(directory)
        self.split = split
        self.format = _detect_format(self.directory, split, format)
        self.path = _split_file(self.directory, split, self.format)
        self.meta = load_meta(self.directory) if meta is None else validate_meta(meta)
        self.verify_data_crc = verify_data_crc
        self._warned_empty = False

    def __repr__(self) -> str:
        return f"Dataset({self.path!r}, format={self.format!r})"

    @functools.cached_property
    def _offsets(self) -> np.ndarray:
        return tfrecord.index_tfrecord(self.path)

    def __len__(self) -> int:
        if self.format == "hdf5":
            count = hdf5.num_trajectories(self.directory, self.split)
        else:
            count = len(self._offsets)
        if count == 0 and not self._warned_empty:
            # Valid (zero records is a well-formed file), but nothing can train on it.
            logger.warning("%s holds no trajectories (an empty split)", self.path)
            self._warned_empty = True
        return count

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not is_int(index):
            raise TypeError(f"index: expected an int, got {index!r} ({type(index).__name__})")
        index = int(index)
        if self.format == "hdf5":
            return hdf5.read_hdf5_trajectory(self.directory, self.split, index, meta=self.meta)
        count = len(self._offsets)
        if not -count <= index < count:
            raise IndexError(f"{self.path}: trajectory index {index} out of range [0, {count})")
        index %= count
        return tfrecord.read_tfrecord_trajectory(
            self.path,
            int(self._offsets[index]),
            self.meta,
            index=index,
            verify_data_crc=self.verify_data_crc,
        )

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self.iter()

    def lazy(self, index: int, cache: FrameCache | None = None) -> LazyTrajectory:
        """Trajectory `index` with its dynamic fields read frame by frame through `cache`
        (`meshsim.data.hdf5_lazy`, out-of-core training). HDF5 only: a TFRecord record
        decodes whole, so convert such a split first (`meshsim convert`)."""
        if self.format != "hdf5":
            raise ValueError(
                f"{self.path}: out-of-core reading (data.cache_bytes) needs an HDF5 split, "
                f"got {self.format}; convert it with `meshsim convert`"
            )
        if getattr(self, "_lazy_split", None) is None:
            self._lazy_split = LazyHDF5Split(self.path, self.meta)
        return self._lazy_split.trajectory(index, cache)

    def iter(self, fields: Sequence[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Streams trajectories; `fields` restricts the keys (HDF5 reads only those)."""
        if self.format == "hdf5":
            yield from hdf5.iter_hdf5_trajectories(
                self.directory, self.split, meta=self.meta, fields=fields
            )
            return
        for trajectory in tfrecord.iter_tfrecord_trajectories(
            self.directory, self.split, meta=self.meta, verify_data_crc=self.verify_data_crc
        ):
            yield trajectory if fields is None else {k: trajectory[k] for k in fields}


def open_dataset(
    directory: str | os.PathLike, split: str, *, format: str | None = None, **kwargs: Any
) -> Dataset:
    """Opens `<directory>/<split>.h5` or `.tfrecord` (auto-detected; HDF5 preferred).

    Args:
      directory: dataset directory with `meta.json`.
      split: split name.
      format: force `"tfrecord"` or `"hdf5"`.
      **kwargs: `meta=` to override meta.json, `verify_data_crc=` for TFRecord.
    """
    return Dataset(directory, split, format=format, **kwargs)


def iter_trajectories(
    directory: str | os.PathLike, split: str, *, format: str | None = None, **kwargs: Any
) -> Iterator[dict[str, np.ndarray]]:
    """Streams the trajectories of one split, whatever its format (see `open_dataset`)."""
    return iter(open_dataset(directory, split, format=format, **kwargs))


def varlen_frames(trajectory: Mapping[str, np.ndarray], name: str) -> list[np.ndarray]:
    """Splits a `dynamic_varlen` field into its per-frame arrays using `length_<name>`."""
    key = length_field(name)
    if key not in trajectory:
        raise ValueError(f"field {name!r} has no {key!r}: is it dynamic_varlen?")
    bounds = np.cumsum(trajectory[key])[:-1]
    return np.split(trajectory[name], bounds, axis=0)


def convert_dataset(
    src_dir: str | os.PathLike,
    dst_dir: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    progress: bool = True,
    compression: str | None = None,
    verify_data_crc: bool = True,
) -> dict[str, int]:
    """Converts every TFRecord split of `src_dir` into HDF5 splits in `dst_dir`.

    A published particle dataset (LagrangeBench or DeepMind learning_to_simulate, see
    `meshsim.data.particles`) is detected and converted by
    `meshsim.data.particle_convert.convert_particle_dataset` instead (all files or none).

    Streams one trajectory at a time; each output file appears only once complete.
    `dst_dir/meta.json` is the source meta plus `converted_from`. `dst_dir` may equal
    `src_dir` (the `.h5` files then sit beside the `.tfrecord` ones).

    Args:
      src_dir: directory with `meta.json` and `<split>.tfrecord` files.
      dst_dir: output directory (created if needed).
      splits: the splits to convert; default all TFRecord splits found.
      progress: show a tqdm bar per split.
      compression: HDF5 compression (None, "gzip", "lzf").
      verify_data_crc: check the TFRecord data CRCs while reading.

    Returns:
      `{split: number of trajectories}`.

    Raises:
      NotADirectoryError: `src_dir` (or `dst_dir`) is a file.
      ValueError: a requested split has no TFRecord file, `dst_dir` holds a meta.json
        with a different schema, or a record disagrees with meta.json (DatasetFormatError).

    An empty `.tfrecord` (zero records, a well-formed file) converts to an empty split
    with a logged warning naming the file: conversion is faithful, and whatever needs
    trajectories (training, evaluation) then fails naming the empty split.
    """
    from tqdm.auto import tqdm  # the only user of tqdm in meshsim.data

    src_dir = _require_directory(src_dir, "source directory")
    if particles.particle_format(src_dir) is not None:  # LagrangeBench / learning_to_simulate
        return particle_convert.convert_particle_dataset(
            src_dir,
            dst_dir,
            splits=splits,
            progress=progress,
            compression=compression,
            verify_data_crc=verify_data_crc,
        )
    dst_dir = os.fspath(dst_dir)
    if os.path.exists(dst_dir) and not os.path.isdir(dst_dir):
        raise NotADirectoryError(f"destination {dst_dir} is a file; expected a directory")
    if compression not in hdf5.COMPRESSIONS:
        raise ValueError(f"compression: expected one of {hdf5.COMPRESSIONS}, got {compression!r}")
    meta = load_meta(src_dir)
    available = [
        s for s in list_splits(src_dir) if os.path.exists(tfrecord.tfrecord_path(src_dir, s))
    ]
    if splits is None:
        splits = available
    if isinstance(splits, str):
        raise TypeError(f"splits: expected a sequence of split names, got the string {splits!r}")
    missing = [s for s in splits if s not in available]
    if missing:
        raise ValueError(f"splits {missing} have no .tfrecord in {src_dir}; found {available}")
    if not splits:
        raise ValueError(f"no .tfrecord splits in {src_dir}")
    # Index every split first (headers only): a truncated file fails before anything is
    # written, and an empty one is reported.
    totals = {s: len(tfrecord.index_tfrecord(tfrecord.tfrecord_path(src_dir, s))) for s in splits}
    for split, total in totals.items():
        if total == 0:
            logger.warning(
                "%s holds no records: the converted split %s will hold 0 trajectories",
                tfrecord.tfrecord_path(src_dir, split),
                hdf5.hdf5_path(dst_dir, split),
            )
    meta["converted_from"] = {"format": "tfrecord", "directory": os.path.abspath(src_dir)}
    os.makedirs(dst_dir, exist_ok=True)
    if os.path.exists(os.path.join(dst_dir, "meta.json")):
        existing = load_meta(dst_dir)
        for key in ("features", "field_names", "trajectory_length"):
            if existing[key] != meta[key]:
                raise ValueError(f"{dst_dir}/meta.json has a different {key!r} than {src_dir}")
    save_meta(meta, dst_dir)
    counts = {}
    for split in splits:
        total = totals[split]
        trajectories = tfrecord.iter_tfrecord_trajectories(
            src_dir, split, meta=meta, verify_data_crc=verify_data_crc
        )
        bar = tqdm(trajectories, total=total, desc=f"convert {split}", disable=not progress)
        counts[split] = hdf5.write_hdf5_split(dst_dir, split, bar, meta, compression=compression)
    return counts


def count_mesh_edges(cells: np.ndarray) -> int:
    """Unique undirected edges of a cell list `[C, k] int` (triangles k=3, tetrahedra k=4:
    every pair of a cell's vertices is an edge)."""
    cells = np.asarray(cells, dtype=np.int64)
    return int(unique_edges(cells.reshape(-1, cells.shape[-1])).shape[0])


def _node_count(
    meta: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], arrays: Mapping[str, np.ndarray]
) -> int | None:
    """N from the first per-node field: its -1 axis, or frame 0's row count if varlen."""
    for name, spec in meta["features"].items():
        if name in CELL_FIELDS or name not in shapes:
            continue
        if spec["type"] == "dynamic_varlen":
            return int(arrays[length_field(name)][0])
        if -1 in spec["shape"]:
            return int(shapes[name][spec["shape"].index(-1)])
    return None


def _first_frame_cells(trajectory: Mapping[str, np.ndarray], meta: Mapping[str, Any]):
    for name in CELL_FIELDS & set(meta["features"]):
        cells = trajectory[name]
        if meta["features"][name]["type"] == "dynamic_varlen":
            return cells[: int(trajectory[length_field(name)][0])]
        return cells[0] if cells.ndim == 3 else cells
    return None


def _stats(values: list[int]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": int(min(values)), "mean": float(np.mean(values)), "max": int(max(values))}


def inspect_dataset(
    directory: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    max_trajectories: int | None = None,
    world_radius: float | None = None,
    receptive_field: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Summarizes a dataset directory: per split, counts, mesh sizes and field layout.

    With a world-edge radius (`world_radius`, else the meta's `world_edge_radius`) and
    `world_pos` data, also MeshGraphNets' world edges: the directed pairs of nodes
    closer than the radius that no mesh edge joins, most over 8 frames per trajectory
    (`"world_edges"`).

    With `receptive_field` (the mesh tasks' options `k_hop`, `dilation`,
    `dilation_levels`, `global_nodes`, `meshsim.tasks.MeshOptions`), also the edges
    those options add to each mesh (`"receptive_field": {"khop", "dilated", "global":
    {"min", "mean", "max"}}`), from the first frame's cells.

    Weather directories (WeatherBench2-layout `<split>.zarr` / `.nc` stores) get
    `meshsim.data.weather_inspect.inspect_weather_dataset`'s report (`"kind":
    "weather"`): variables, levels, times, trajectories, grid.

    Particle datasets (native with a `"particles"` meta section, LagrangeBench or
    learning_to_simulate) get `meshsim.data.particle_inspect.inspect_particle_dataset`'s
    report instead (`"kind": "particles"`).

    Node counts come from the per-node fields, edge counts are the unique undirected
    edges of `cells` (first frame for remeshed data). TFRecord splits are read (and
    CRC-checked) in full; HDF5 splits read only `cells` and array headers.

    Returns:
      `{"directory", "meta": top-level meta keys except the schema, "splits": {split:
      {"format", "path", "num_trajectories", "inspected", "nodes", "edges", "cells":
      {"min", "mean", "max"} or None, "world_edges": the same or None, "fields": {name:
      {"type", "shape", "dtype"}}}}}`;
      a `shape` entry is -1 where it varies between trajectories.
    """
    directory = _require_directory(directory)
    check_int("max_trajectories", max_trajectories, minimum=0, optional=True)
    if is_weather_directory(directory):
        return inspect_weather_dataset(directory, splits=splits)
    if particle_inspect.is_particle_dataset(directory):
        return particle_inspect.inspect_particle_dataset(
            directory, splits=splits, max_trajectories=max_trajectories
        )
    meta = load_meta(directory)
    check_number("world_radius", world_radius, greater_than=0, optional=True)
    radius = world_radius or meta.get("world_edge_radius")
    radius = float(radius) if radius and "world_pos" in meta["features"] else None
    report: dict[str, Any] = {
        "directory": directory,
        "meta": {k: v for k, v in meta.items() if k not in ("features", "field_names")},
        "world_radius": radius,
        "splits": {},
    }
    for split in list_splits(directory) if splits is None else splits:
        dataset = open_dataset(directory, split, meta=meta)
        nodes, edges, cells, shapes, dtypes, world = [], [], [], {}, {}, []
        extra: dict[str, list[int]] = {}
        inspected = 0
        if dataset.format == "hdf5":  # read only connectivity and row counts
            needed = [n for n in meta["features"] if n in CELL_FIELDS]
            needed += [
                length_field(n)
                for n, spec in meta["features"].items()
                if spec["type"] == "dynamic_varlen"
            ]
            infos = hdf5.iter_hdf5_field_info(directory, split)
            trajectories = dataset.iter(fields=needed + (["world_pos"] if radius else []))
        else:
            infos, trajectories = None, iter(dataset)
        for count, arrays in enumerate(trajectories):
            if max_trajectories is not None and count >= max_trajectories:
                break
            inspected += 1
            if infos is not None:
                info = next(infos)
            else:
                info = {k: (v.shape, v.dtype) for k, v in arrays.items()}
            for name, (shape, dtype) in info.items():
                dtypes[name] = np.dtype(dtype).name
                old = shapes.get(name)
                shapes[name] = list(shape) if old is None else _merge_shape(old, shape)
            n = _node_count(meta, {k: shape for k, (shape, _) in info.items()}, arrays)
            if n is not None:
                nodes.append(n)
            first = _first_frame_cells(arrays, meta)
            if first is not None:
                cells.append(len(first))
                try:
                    edges.append(count_mesh_edges(first))
                except ValueError as e:  # e.g. a degenerate cell
                    raise ValueError(f"{dataset.path}: trajectory {count}: {e}") from e
                if radius is not None:
                    world.append(_count_world_edges(arrays["world_pos"], first, radius))
                if receptive_field and n is not None:
                    s, r = edges_from_cells(first)
                    counts = receptive_field_edge_counts(s, r, n, **receptive_field)
                    for key, value in counts.items():
                        extra.setdefault(key, []).append(value)
        report["splits"][split] = {
            "format": dataset.format,
            "path": dataset.path,
            "num_trajectories": len(dataset),
            "inspected": inspected,
            "nodes": _stats(nodes),
            "edges": _stats(edges),
            "cells": _stats(cells),
            "world_edges": _stats(world),
            "receptive_field": {k: _stats(v) for k, v in extra.items()} or None,
            "fields": {
                name: {
                    "type": _field_type(meta, name),
                    "shape": shapes[name],
                    "dtype": dtypes[name],
                }
                for name in shapes
            },
        }
    return report


def _count_world_edges(world_pos: np.ndarray, cells: np.ndarray, radius: float) -> int:
    """The most directed world edges (pairs closer than `radius` that no mesh edge of
    `cells` joins) on 8 evenly spaced frames of `world_pos [T, N, D]`."""
    from scipy.spatial import cKDTree

    pairs = unique_edges(np.asarray(cells))
    mesh = set(map(tuple, np.sort(pairs, axis=1).tolist()))
    world_pos = np.asarray(world_pos, np.float64)
    most = 0
    for t in np.unique(np.linspace(0, len(world_pos) - 1, 8).astype(int)):
        close = cKDTree(world_pos[t]).query_pairs(radius)
        most = max(most, 2 * sum(1 for pair in close if pair not in mesh))
    return most


def _merge_shape(old: list[int], new: Sequence[int]) -> list[int]:
    if len(old) != len(new):
        return [-1] * max(len(old), len(new))
    return [a if a == b else -1 for a, b in zip(old, new, strict=True)]


def _field_type(meta: Mapping[str, Any], name: str) -> str:
    if name in meta["features"]:
        return meta["features"][name]["type"]
    return "length" if name.startswith("length_") else "extra"


_FORMATTERS = {
    "particles": particle_inspect.format_particle_inspection,
    "weather": format_weather_inspection,
}


def format_inspection(report: Mapping[str, Any]) -> str:
    """Renders `inspect_dataset`'s report as plain text for the CLI."""
    formatter = _FORMATTERS.get(report.get("kind"))
    if formatter is not None:  # particle and weather directories have their own reports
        return formatter(report)
    extras = ", ".join(f"{k}={v}" for k, v in report["meta"].items() if k != "converted_from")
    lines = [f"dataset {report['directory']} ({extras})"]

    def fmt(stats):
        if stats is None:
            return "-"
        return f"{stats['min']}/{stats['mean']:.1f}/{stats['max']}"

    header = f"  {'split':<10} {'format':<9} {'trajectories':>12}  {'nodes min/mean/max':>24}"
    header += f"  {'edges min/mean/max':>24}"
    lines.append(header)
    for split, info in report["splits"].items():
        count = str(info["num_trajectories"])
        if info["inspected"] != info["num_trajectories"]:
            count += f" ({info['inspected']} read)"
        lines.append(
            f"  {split:<10} {info['format']:<9} {count:>12}  {fmt(info['nodes']):>24}"
            f"  {fmt(info['edges']):>24}"
        )
        if info.get("world_edges") is not None:
            lines.append(
                f"  {'':<10} world edges (directed, most per frame) {fmt(info['world_edges'])}"
            )
        for kind, stats in (info.get("receptive_field") or {}).items():
            lines.append(f"  {'':<10} {kind} edges (directed) {fmt(stats)}")
    for split, info in report["splits"].items():
        lines.append(f"fields ({split}):")
        for name, field in info["fields"].items():
            shape = "[" + ", ".join(str(d) for d in field["shape"]) + "]"
            lines.append(f"  {name:<22} {field['type']:<15} {shape:<18} {field['dtype']}")
    return "\n".join(lines)
