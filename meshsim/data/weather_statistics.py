"""Statistics of a weather training split: computed once in one streaming pass, stored.

`WeatherStatistics` holds the input z-scores, the residual target scale, the static
fields' and the forcings' moments and the per-point climatology; `compute_statistics`
reads a split block by block in float64 (`meshsim.data.weather.WeatherDataset` or a
stretched-grid `meshsim.data.stretched.StretchedDataset`), never the whole archive.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from meshsim import atomic
from meshsim.data.forcing import forcing_statistics

_ARRAYS = (
    "mean",
    "std",
    "diff_std",
    "static_mean",
    "static_std",
    "forcing_mean",
    "forcing_std",
    "climatology",
)


@dataclasses.dataclass(frozen=True)
class WeatherStatistics:
    """Statistics of a training split, computed once (`compute_statistics`) and stored.

    Fields:
      channels: channel names, C of them.
      mean, std: [C] float64 over every time and grid point (input z-scores).
      diff_std: [C] float64 std of one-step time differences (residual target scale).
      static_mean, static_std: [S] float64 of the static variables.
      forcing_mean, forcing_std: [F] float64 of the forcings over the split's times.
      climatology: [H·W, C] float32 time mean per grid point (the climatology forecast
        and the ACC reference; a multi-decade dataset would use a day-of-year mean).
    """

    channels: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    diff_std: np.ndarray
    static_mean: np.ndarray
    static_std: np.ndarray
    forcing_mean: np.ndarray
    forcing_std: np.ndarray
    climatology: np.ndarray

    def save(self, path: str | os.PathLike) -> None:
        """Writes an `.npz` atomically."""
        with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, channels=np.array(self.channels), **{k: getattr(self, k) for k in _ARRAYS})

    @classmethod
    def load(cls, path: str | os.PathLike) -> WeatherStatistics:
        with np.load(path) as z:
            return cls(
                channels=tuple(str(c) for c in z["channels"]),
                **{k: z[k] for k in _ARRAYS},
            )


def compute_statistics(dataset, *, block: int = 64) -> WeatherStatistics:
    """One streaming pass over a split (`block` frames at a time, float64 sums): a
    `WeatherDataset` or a `meshsim.data.stretched.StretchedDataset`.

    Raises:
      ValueError: a frame holds NaN or Inf (the time and channel are named).
    """
    c = len(dataset.channels)
    n_nodes = dataset.point_latitudes.size
    total, total_sq, count = np.zeros(c), np.zeros(c), 0
    diff_sq, diff_count = np.zeros(c), 0
    per_point = np.zeros((n_nodes, c))
    for start, stop in dataset.segments:
        last = None
        for a in range(start, stop, block):
            frames = dataset.frames(a, min(a + block, stop))
            bad = ~np.isfinite(frames)
            if bad.any():
                t, _, k = np.argwhere(bad)[0]
                raise ValueError(
                    f"{dataset.path}: channel {dataset.channels[k].name!r} holds NaN or Inf "
                    f"at time {dataset.times[a + t]}"
                )
            x = frames.astype(np.float64)
            total += x.sum((0, 1))
            total_sq += np.square(x).sum((0, 1))
            per_point += x.sum(0)
            count += x.shape[0]
            seq = x if last is None else np.concatenate([last, x])
            d = np.diff(seq, axis=0)
            diff_sq += np.square(d).sum((0, 1))
            diff_count += d.shape[0]
            last = x[-1:]
    if diff_count == 0:
        raise ValueError(f"{dataset.path}: time: every trajectory has a single frame")
    mean = total / (count * n_nodes)
    std = np.sqrt(np.maximum(total_sq / (count * n_nodes) - mean**2, 0.0))
    static = dataset.static.astype(np.float64)
    # forcings: a subsample of the split's times that walks through the times of day
    forcing_mean, forcing_std = forcing_statistics(
        dataset.times, dataset.point_latitudes, dataset.point_longitudes, points=True
    )
    return WeatherStatistics(
        channels=tuple(ch.name for ch in dataset.channels),
        mean=mean,
        std=std,
        diff_std=np.sqrt(diff_sq / (diff_count * n_nodes)),
        static_mean=static.mean(0) if static.shape[1] else np.zeros(0),
        static_std=static.std(0) if static.shape[1] else np.zeros(0),
        forcing_mean=forcing_mean,
        forcing_std=forcing_std,
        climatology=(per_point / count).astype(np.float32),
    )
