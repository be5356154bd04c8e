"""HDF5 trajectories read frame by frame, for out-of-core training.

`LazyHDF5Split` keeps one split file open; `trajectory(i, cache)` returns a
`LazyTrajectory`, a read-only mapping like the trajectory dicts of
`meshsim.data.hdf5`: its static fields (and varlen ones, which cannot be cut by
frame) are numpy arrays read at once, its `dynamic` fields are `LazyField`s that
read only the frames indexed, through a shared byte-bounded `FrameCache`. A task's
`window` works on either unchanged: integer, slice and index-array indexing along
time read just those frames, `np.shape` reads nothing, and `np.asarray` reads the
whole field (bypassing the cache).

Checks: at open, every field's dtype and shape against meta.json, the node count, the
cell indices and finiteness of the static fields (`validate_trajectory`), without
reading a dynamic frame; each dynamic frame is checked finite when it is first read.
Errors name the file, the trajectory and the field (`DatasetFormatError`).

The writer chunks dynamic fields one frame per chunk (`meshsim.data.hdf5`); files
written before that (contiguous, or chunked otherwise) read the same, only slower.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from meshsim.data.frame_cache import FrameCache
from meshsim.data.hdf5 import _group_name, _open, _stored_fields
from meshsim.data.meta import DatasetFormatError, validate_meta, validate_trajectory
from meshsim.data.time_indexed import TimeIndexed
from meshsim.validation import is_int

__all__ = ["LazyField", "LazyHDF5Split", "LazyTrajectory"]


class LazyField(TimeIndexed):
    """A `[T, ...]` HDF5 dataset that reads frames on demand (see module doc).

    Attributes:
      shape, dtype, ndim: the stored array's.
      name: the field.
    """

    def __init__(self, dataset, key: tuple, cache: FrameCache | None, where: str):
        self._dataset = dataset
        self._key = key  # (split path, trajectory, field): frame t is cached under key + (t,)
        self._cache = cache
        self._where = where
        self.name = key[-1]
        self.shape = tuple(dataset.shape)
        self.dtype = np.dtype(dataset.dtype)
        self.ndim = len(self.shape)

    def __repr__(self) -> str:
        return f"LazyField({self._where}, field {self.name!r}, shape {self.shape})"

    def _read(self, t: int) -> np.ndarray:
        frame = self._dataset[t]  # [...] one frame, one chunk
        if frame.dtype.kind == "f" and not np.all(np.isfinite(frame)):
            raise DatasetFormatError(
                f"{self._where}: field {self.name!r}: expected finite values, got NaN or Inf "
                f"in frame {t}"
            )
        return frame

    def frame(self, t: int) -> np.ndarray:
        """[...] frame t (negative counts from the end), read-only when cached."""
        if not is_int(t):
            raise TypeError(f"t: expected an int, got {t!r} ({type(t).__name__})")
        t = int(t)
        if not -self.shape[0] <= t < self.shape[0]:
            raise IndexError(
                f"{self._where}: field {self.name!r}: frame {t} out of range for "
                f"{self.shape[0]} frames"
            )
        t %= self.shape[0]
        if self._cache is None:
            return self._read(t)
        return self._cache.get((*self._key, t), lambda: self._read(t))

    def frames(self, times) -> np.ndarray:
        """[len(times), ...] the frames `times` ([n] int), stacked."""
        if len(times) == 0:
            return np.zeros((0, *self.shape[1:]), self.dtype)
        return np.stack([self.frame(int(t)) for t in times])

    def __array__(self, dtype=None, copy=None):
        array = self._dataset[()]  # the whole field: an explicit full read
        for t in range(array.shape[0]) if array.dtype.kind == "f" else ():
            if not np.all(np.isfinite(array[t])):
                self._read(t)  # raises, naming the frame
        return array if dtype is None else array.astype(dtype)


class LazyTrajectory(Mapping):
    """One trajectory: static fields as arrays, dynamic ones as `LazyField`s."""

    def __init__(self, fields: Mapping[str, Any], where: str):
        self._fields = dict(fields)
        self.where = where

    def __repr__(self) -> str:
        return f"LazyTrajectory({self.where}, fields {list(self._fields)})"

    def __getitem__(self, name: str):
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    @property
    def lazy_fields(self) -> tuple[str, ...]:
        """The fields read frame by frame."""
        return tuple(k for k, v in self._fields.items() if isinstance(v, LazyField))


class LazyHDF5Split:
    """`<split>.h5` kept open for frame-by-frame reads (see module doc).

    Args:
      path: the split file.
      meta: the validated meta dict of its directory.
    """

    def __init__(self, path: str | os.PathLike, meta: Mapping[str, Any]):
        self.path = os.fspath(path)
        self.meta = validate_meta(meta)
        # no HDF5 chunk cache: the FrameCache is the only one, and it is bounded
        self._file = _open(self.path, rdcc_nbytes=0)
        self._count = len(self._file)

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Closes the file (trajectories read from it can no longer read frames)."""
        self._file.close()

    def trajectory(self, index: int, cache: FrameCache | None = None) -> LazyTrajectory:
        """Trajectory `index` (negative counts from the end), its dynamic fields read
        through `cache` (None: read every time, nothing kept)."""
        if not is_int(index):
            raise TypeError(f"index: expected an int, got {index!r} ({type(index).__name__})")
        index = int(index)
        if not -self._count <= index < self._count:
            raise IndexError(
                f"{self.path}: trajectory index {index} out of range [0, {self._count})"
            )
        index %= self._count
        where = f"{self.path}: trajectory {index}"
        name = _group_name(index)
        if name not in self._file:
            raise DatasetFormatError(f"{self.path}: trajectory group {name!r} is missing")
        group = self._file[name]
        features = self.meta["features"]
        fields: dict[str, Any] = {}
        for field in _stored_fields(self.meta):
            if field not in group:
                raise DatasetFormatError(
                    f"{where}: field {field!r} (declared in meta.json) is missing"
                )
            dataset = group[field]
            if features.get(field, {}).get("type") == "dynamic" and dataset.ndim >= 1:
                fields[field] = LazyField(dataset, (self.path, index, field), cache, where)
            else:
                fields[field] = dataset[()]
        # Shapes, dtypes, node counts and cell indices, without reading a dynamic frame:
        # zero-stride stand-ins carry the stored shapes and dtypes.
        stand_ins = {
            k: np.broadcast_to(np.zeros((), v.dtype), v.shape) if isinstance(v, LazyField) else v
            for k, v in fields.items()
        }
        eager = [k for k, v in fields.items() if not isinstance(v, LazyField)]
        try:
            validate_trajectory(stand_ins, self.meta, check_finite=False)
            validate_trajectory(fields, self.meta, fields=eager)
        except ValueError as e:
            raise DatasetFormatError(f"{where}: {e}") from None
        return LazyTrajectory(fields, where)
