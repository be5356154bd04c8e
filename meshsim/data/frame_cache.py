"""A byte-bounded cache of trajectory frames, shared by every lazily read trajectory.

Out-of-core training reads a window's frames from disk as it needs them; the frames
most recently read stay here, least recently used first out, until their bytes would
pass `max_bytes`. A frame larger than the whole cap is returned but not kept. Keys
are whatever the reader chooses (`meshsim.data.hdf5_lazy` uses (trajectory, field,
time)); cached frames are read-only, so one window cannot change another's data.

Thread-safe: the batch producer runs in a background thread (`training.batches.prefetch`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

from meshsim.validation import check_int

__all__ = ["FrameCache"]


class FrameCache:
    """Frames by key, least recently used evicted first, at most `max_bytes` in all.

    Args:
      max_bytes: the cap on the bytes of the frames held (`data.cache_bytes`), ≥ 1.

    Attributes:
      max_bytes: the cap.
      nbytes: bytes of the frames held now (never above `max_bytes`).
      hits: lookups answered from the cache.
      misses: lookups that read the frame (`read` called).
      peak_bytes: the most bytes ever held at once.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = check_int(
            "cache_bytes", max_bytes, minimum=1, expected="an int ≥ 1 (bytes of frames cached)"
        )
        self.nbytes = 0
        self.peak_bytes = 0
        self.hits = 0
        self.misses = 0
        self._frames: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"FrameCache({len(self)} frames, {self.nbytes}/{self.max_bytes} bytes, "
            f"{self.hits} hits, {self.misses} misses)"
        )

    def __len__(self) -> int:
        return len(self._frames)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._frames

    def keys(self) -> list:
        """The keys held, least recently used first."""
        with self._lock:
            return list(self._frames)

    def get(self, key: Hashable, read: Callable[[], np.ndarray]) -> np.ndarray:
        """The frame under `key`, calling `read()` (and keeping its result, read-only)
        when it is not held."""
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
                self.hits += 1
                return frame
        frame = np.asarray(read())
        frame.flags.writeable = False
        with self._lock:
            self.misses += 1
            if key in self._frames or frame.nbytes > self.max_bytes:
                return frame
            self._frames[key] = frame
            self.nbytes += frame.nbytes
            while self.nbytes > self.max_bytes:
                _, old = self._frames.popitem(last=False)
                self.nbytes -= old.nbytes
            self.peak_bytes = max(self.peak_bytes, self.nbytes)
        return frame

    def clear(self) -> None:
        """Drops every frame (the counters stay)."""
        with self._lock:
            self._frames.clear()
            self.nbytes = 0
