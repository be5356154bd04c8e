"""Array-likes over time that compute or read only the frames indexed.

`TimeIndexed` is a `[T, ...]` array-like whose subclass says how to get one frame
(`frame(t)`) and several (`frames(times)`); indexing along time with an int, a
slice or a 1-D int array takes only those, a trailing index applies to what they
return, and anything else (masks, several axes of fancy indexing) falls back to
the whole array (`np.asarray`). Used by lazy HDF5 fields (`meshsim.data.hdf5_lazy`)
and lazily computed forcings (`meshsim.data.forcing.LazyForcing`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from meshsim.validation import is_int

__all__ = ["TimeIndexed"]


class TimeIndexed:
    """A `[T, ...]` array-like read frame by frame; subclasses set `shape`, `dtype`,
    `ndim` and define `frame(t)` ([...] one frame, t an int, negative from the end,
    IndexError out of range), `frames(times)` ([len(times), ...]) and `__array__`."""

    shape: tuple[int, ...]

    def __len__(self) -> int:
        return self.shape[0]

    def frame(self, t: int) -> np.ndarray:
        raise NotImplementedError

    def frames(self, times: Sequence[int] | np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, index):
        rest: tuple = ()
        if isinstance(index, tuple):
            index, rest = (index[0], index[1:]) if index else (slice(None), ())
        if is_int(index):
            out = self.frame(int(index))
            return out[rest] if rest else out
        if isinstance(index, slice):
            out = self.frames(np.arange(*index.indices(self.shape[0])))
        elif (
            isinstance(index, list | np.ndarray)
            and np.asarray(index).dtype.kind in "iu"
            and np.asarray(index).ndim == 1
        ):
            out = self.frames(np.asarray(index))
        else:
            return np.asarray(self)[(index, *rest)]
        return out[(slice(None), *rest)] if rest else out
