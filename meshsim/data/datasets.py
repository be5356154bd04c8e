"""Format-independent access to mesh datasets: open, iterate, convert (inspecting
them: `meshsim.data.mesh_inspect`).

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

from meshsim.data import hdf5, particle_convert, particles, tfrecord
from meshsim.data.frame_cache import FrameCache
from meshsim.data.hdf5_lazy import LazyHDF5Split, LazyTrajectory
from meshsim.data.meta import (
    length_field,
    load_meta,
    save_meta,
    validate_meta,
)
from meshsim.validation import is_int

__all__ = [
    "FORMATS",
    "Dataset",
    "convert_dataset",
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


def require_directory(directory: str | os.PathLike, what: str = "dataset directory") -> str:
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
    directory = require_directory(directory)
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
        self.directory = require_directory(directory)
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

    src_dir = require_directory(src_dir, "source directory")
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
