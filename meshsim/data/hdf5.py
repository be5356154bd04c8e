"""Native HDF5 datasets: one `<split>.h5` per split, one group per trajectory.

Layout (h5py)::

    <dir>/meta.json                      same schema as the MeshGraphNets datasets
    <dir>/<split>.h5
        attrs: meta (the meta.json text), num_trajectories
        /00000/cells      [1, C, 3] int32        one dataset per trajectory field, with
        /00000/mesh_pos   [1, N, 2] float32      the shapes of the trajectory dict
        /00000/velocity   [T, N, 2] float32
        /00001/...

Unlike TFRecord, trajectories (and single fields) can be read in any order. Writing is
crash-safe: the file is built under a temporary dot-file name beside it
(`.<split>.h5.<8 hex>.tmp.h5`, see `meshsim.atomic`) and renamed onto `<split>.h5` only
when complete, so a crash never leaves a partial file under the real name.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from meshsim.atomic import AtomicWriter
from meshsim.data.meta import (
    DatasetFormatError,
    ensure_meta,
    length_field,
    load_meta,
    validate_meta,
    validate_trajectory,
)
from meshsim.validation import is_int

__all__ = [
    "HDF5Writer",
    "hdf5_path",
    "iter_hdf5_field_info",
    "iter_hdf5_trajectories",
    "num_trajectories",
    "read_hdf5_trajectory",
    "write_hdf5_split",
]

logger = logging.getLogger(__name__)

COMPRESSIONS = (None, "gzip", "lzf")


def _h5py():
    """h5py, imported on first use so that TFRecord users need only numpy."""
    try:
        import h5py
    except ImportError:
        raise ImportError("HDF5 datasets need h5py: pip install 'meshsim[data]'") from None
    return h5py


def hdf5_path(directory: str | os.PathLike, split: str) -> str:
    """`<directory>/<split>.h5`."""
    return os.path.join(os.fspath(directory), f"{split}.h5")


def _group_name(index: int) -> str:
    return f"{index:05d}"


class HDF5Writer(AtomicWriter):
    """Streams trajectories into `<directory>/<split>.h5`, one at a time.

    Use as a context manager; on a clean exit the file is published atomically, on an
    exception the temporary file is deleted and any existing `<split>.h5` is untouched::

        with HDF5Writer(out_dir, "train", meta, compression="lzf") as writer:
            for trajectory in trajectories:
                writer.write(trajectory)

    Args:
      directory: dataset directory (created if needed); `meta.json` is written there
        unless an identical schema is already present.
      split: split name, e.g. `"train"`.
      meta: the dataset's meta dict (validated).
      compression: None, `"gzip"` or `"lzf"`. Dynamic fields are chunked one time step
        per chunk, compressed or not, so that reading a few frames (out-of-core
        training, `meshsim.data.hdf5_lazy`) reads and decompresses only those.
      compression_opts: gzip level 0-9 (default 4); must be None for lzf.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        split: str,
        meta: Mapping[str, Any],
        *,
        compression: str | None = None,
        compression_opts: int | None = None,
    ):
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        if compression == "gzip" and compression_opts is None:
            compression_opts = 4
        if compression != "gzip" and compression_opts is not None:
            raise ValueError(f"compression_opts is only valid with gzip, got {compression!r}")
        if compression == "gzip" and compression_opts not in range(10):
            raise ValueError(
                f"compression_opts: expected a gzip level 0-9, got {compression_opts!r}"
            )
        os.makedirs(directory, exist_ok=True)
        self.meta = ensure_meta(directory, meta)
        self._compression = compression
        self._compression_opts = compression_opts
        self.num_written = 0
        super().__init__(hdf5_path(directory, split))

    def _open(self, tmp: str):
        return _h5py().File(tmp, "w")

    def _finish(self, file) -> None:
        file.attrs["meta"] = json.dumps(self.meta)
        file.attrs["num_trajectories"] = self.num_written
        file.flush()  # a full disk raises here; HDF5 can crash in close() instead
        file.close()

    def write(self, trajectory: Mapping[str, np.ndarray]) -> None:
        """Appends one trajectory, validated against the meta first; keys the meta does
        not declare are not stored."""
        file = self._handle()
        try:
            validate_trajectory(trajectory, self.meta)
        except ValueError as e:
            raise ValueError(f"{self.path}: trajectory {self.num_written}: {e}") from None
        group = file.create_group(_group_name(self.num_written))
        datasets = []
        for name in _stored_fields(self.meta):
            array = np.ascontiguousarray(trajectory[name])
            options: dict[str, Any] = {}
            chunks = _chunks(array, self.meta["features"].get(name)) if array.size else None
            if self._compression is not None and array.size:
                options = {
                    "compression": self._compression,
                    "compression_opts": self._compression_opts,
                    "chunks": chunks,
                }
            elif isinstance(chunks, tuple):  # by time: a window reads only its frames
                options = {"chunks": chunks}
            datasets.append(group.create_dataset(name, data=array, **options))
        # Flushed while the datasets are open: a failed write (a full disk) raises here.
        # Flushed when they are released instead, it is only printed, and HDF5 may
        # crash (SIGSEGV) on the file's next operation.
        file.flush()
        del datasets
        self.num_written += 1

    def commit(self) -> str:
        """Writes the trajectory count, closes the file and renames it onto `<split>.h5`;
        returns that path (see `AtomicWriter.commit`)."""
        opened = not self.closed
        path = super().commit()
        if opened:
            logger.info("wrote %d trajectories to %s", self.num_written, self.path)
        return path

    def close(self) -> None:
        """Finishes the file and renames it onto `<split>.h5` (`commit`); a no-op once
        closed."""
        if not self.closed:
            self.commit()

    def abort(self) -> None:
        """Discards the temporary file; `<split>.h5` is left as it was (`discard`)."""
        self.discard()


def _stored_fields(meta: Mapping[str, Any]) -> list[str]:
    names = []
    for name, spec in meta["features"].items():
        names.append(name)
        if spec["type"] == "dynamic_varlen":
            names.append(length_field(name))
    return names


def _chunks(array: np.ndarray, spec: Mapping[str, Any] | None) -> tuple[int, ...] | bool:
    """One frame per chunk for a dynamic field (`[1, ...]` of its `[T, ...]`); True (h5py
    picks) otherwise."""
    if spec is not None and spec["type"] == "dynamic" and array.ndim >= 2:
        return (1, *array.shape[1:])
    return True


def write_hdf5_split(
    directory: str | os.PathLike,
    split: str,
    trajectories: Iterable[Mapping[str, np.ndarray]],
    meta: Mapping[str, Any],
    *,
    compression: str | None = None,
    compression_opts: int | None = None,
) -> int:
    """Writes all `trajectories` (any iterable, consumed one at a time) to `<split>.h5`.

    Returns:
      The number of trajectories written.
    """
    with HDF5Writer(
        directory, split, meta, compression=compression, compression_opts=compression_opts
    ) as writer:
        for trajectory in trajectories:
            writer.write(trajectory)
    return writer.num_written


def _open(path: str, **options):
    """`path` opened read-only (`options` go to `h5py.File`), or an error naming it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no HDF5 split file at {path}")
    try:
        return _h5py().File(path, "r", **options)
    except OSError as e:
        raise DatasetFormatError(f"{path}: not a readable HDF5 file: {e}") from None


def _group_names(f, path: str) -> list[str]:
    try:
        return sorted(f.keys(), key=int)
    except ValueError:
        raise DatasetFormatError(
            f"{path}: expected trajectory groups named 00000, 00001, ...; got {list(f.keys())}"
        ) from None


def _read_group(
    group, names: Sequence[str], where: str, meta: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Reads `names` of one trajectory group and checks them against `meta` (shapes,
    trajectory length, finiteness), so a bad trajectory fails here, naming file,
    trajectory and field, instead of somewhere inside training."""
    out = {}
    for name in names:
        if name not in group:
            raise DatasetFormatError(f"{where}: field {name!r} (declared in meta.json) is missing")
        out[name] = group[name][()]
    try:
        validate_trajectory(out, meta, fields=names)
    except ValueError as e:
        raise DatasetFormatError(f"{where}: {e}") from None
    return out


def _field_names(meta: Mapping[str, Any], fields: Sequence[str] | None) -> list[str]:
    stored = _stored_fields(meta)
    if fields is None:
        return stored
    if isinstance(fields, str):
        raise TypeError(f"fields: expected a sequence of field names, got the string {fields!r}")
    unknown = [name for name in fields if name not in stored]
    if unknown:
        raise ValueError(f"unknown fields {unknown}; the dataset holds {stored}")
    return list(fields)


def iter_hdf5_trajectories(
    directory: str | os.PathLike,
    split: str,
    *,
    meta: Mapping[str, Any] | None = None,
    fields: Sequence[str] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Streams the trajectories of `<directory>/<split>.h5` in order (file opened once).

    Args:
      directory: dataset directory.
      split: split name.
      meta: overrides `<directory>/meta.json`.
      fields: read only these fields (e.g. `("cells", "mesh_pos")`); default all.
    """
    meta = load_meta(directory) if meta is None else validate_meta(meta)
    names = _field_names(meta, fields)
    path = hdf5_path(directory, split)
    with _open(path) as f:
        for index, group_name in enumerate(_group_names(f, path)):
            yield _read_group(f[group_name], names, f"{path}: trajectory {index}", meta)


def read_hdf5_trajectory(
    directory: str | os.PathLike,
    split: str,
    index: int,
    *,
    meta: Mapping[str, Any] | None = None,
    fields: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Reads trajectory `index` (negative counts from the end) of `<split>.h5`."""
    meta = load_meta(directory) if meta is None else validate_meta(meta)
    names = _field_names(meta, fields)
    path = hdf5_path(directory, split)
    if not is_int(index):
        raise TypeError(f"index: expected an int, got {index!r} ({type(index).__name__})")
    index = int(index)
    with _open(path) as f:
        count = len(f)
        if not -count <= index < count:
            raise IndexError(f"{path}: trajectory index {index} out of range [0, {count})")
        index %= count
        name = _group_name(index)
        if name not in f:
            raise DatasetFormatError(f"{path}: trajectory group {name!r} is missing")
        return _read_group(f[name], names, f"{path}: trajectory {index}", meta)


def iter_hdf5_field_info(
    directory: str | os.PathLike, split: str
) -> Iterator[dict[str, tuple[tuple[int, ...], np.dtype]]]:
    """Yields `{field: (shape, dtype)}` per trajectory without reading any array data."""
    path = hdf5_path(directory, split)
    with _open(path) as f:
        for group_name in _group_names(f, path):
            group = f[group_name]
            yield {name: (group[name].shape, group[name].dtype) for name in group}


def num_trajectories(directory: str | os.PathLike, split: str) -> int:
    """The number of trajectories in `<directory>/<split>.h5` (reads no data)."""
    path = hdf5_path(directory, split)
    with _open(path) as f:
        return len(f.keys())
