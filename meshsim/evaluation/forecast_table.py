"""The score table of many weather forecasts, deterministic or ensemble, by lead time.

`ForecastTable` takes forecasts one initial time at a time, as they come (from
rollouts, or read back from a forecast store), and keeps only what the averages
need. A forecast is an ensemble of M ≥ 1 members; a deterministic forecast is a
one-member ensemble, so every run gets the same probabilistic columns (a one-member
CRPS is the mean absolute error, the number an ensemble's CRPS is compared with).

The table (`result`):

* "rmse" / "acc" (`meshsim.evaluation.forecast.forecast_scores`): the model row scores
  the ensemble mean, against persistence and climatology;
* "ensemble" (`meshsim.evaluation.ensemble.average_ensemble_scores`): CRPS (standard
  and fair), ensemble-mean RMSE and ACC, spread, spread/skill, rank histograms;
* "spectra" where the nodes form a global lat-lon grid: the spherical-harmonic power
  of the members (their mean) and of the truth per lead time and channel, averaged
  over forecasts, and the forecast's share of the truth's small-scale power
  (`meshsim.evaluation.spectra.small_scale_ratio`);
* "regions" for a point set with a region mask (stretched grids): "rmse" / "acc"
  inside and outside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from meshsim.evaluation.ensemble import average_ensemble_scores, ensemble_scores
from meshsim.evaluation.forecast import average_scores, forecast_scores
from meshsim.evaluation.spectra import grid_spectra, small_scale_ratio


class ForecastTable:
    """Scores of forecasts added one initial time at a time (see the module doc).

    Args:
      channels: C channel names.
      climatology: [N, C] for the ACC.
      weights: [N] area weights, mean 1.
      grid: (latitudes [H], W) when the N nodes are a global H × W lat-lon grid
        (latitude-major): spectra are computed; None: none.
      region: [N] bool, the nodes inside a region ("regions" scores), or None.
    """

    def __init__(
        self,
        channels: Sequence[str],
        climatology,
        weights,
        *,
        grid: tuple | None = None,
        region=None,
    ):
        self.channels = list(channels)
        self.climatology = np.asarray(climatology)
        self.weights = np.asarray(weights, np.float32)
        self.grid = grid
        self.parts = {} if region is None else {"inside": region, "outside": ~np.asarray(region)}
        self.scores: list = []
        self.part_scores: dict = {name: [] for name in self.parts}
        self.probabilistic: list = []
        self.power: dict = {"model": [], "truth": []}

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, members, truth) -> None:
        """One initial time's forecast.

        Args:
          members: [M, L + 1, N, C] (an ensemble) or [L + 1, N, C] (one forecast), frame
            0 the initial state.
          truth: [L + 1, N, C] the verifying states, frame 0 the initial one.
        """
        members = np.asarray(members)
        ensemble = members if members.ndim == 4 else members[None]
        truth = np.asarray(truth)
        if ensemble.shape[1:] != truth.shape:
            raise ValueError(
                f"members: expected [M, {', '.join(map(str, truth.shape))}] like the truth, "
                f"got {members.shape}"
            )
        mean = ensemble.mean(0)
        channels, clim = self.channels, self.climatology
        self.scores.append(forecast_scores(mean, truth, clim, self.weights, channels))
        for name, where in self.parts.items():
            self.part_scores[name].append(
                forecast_scores(mean, truth, clim, self.weights * where, channels)
            )
        self.probabilistic.append(
            ensemble_scores(ensemble[:, 1:], truth[1:], clim, self.weights, channels)
        )
        if self.grid is not None:  # the members' mean power: [L, C, lmax + 1]
            self.power["model"].append(grid_spectra(ensemble[:, 1:], *self.grid).mean(0))
            self.power["truth"].append(grid_spectra(truth[1:], *self.grid))

    def result(self) -> dict:
        """{"rmse", "acc", "ensemble", ("spectra"), ("regions")} averaged over forecasts.

        Raises:
          ValueError: no forecast was added.
        """
        if not self.scores:
            raise ValueError("scores: expected at least one forecast")
        out = {
            **average_scores(self.scores),
            "ensemble": average_ensemble_scores(self.probabilistic),
        }
        if self.grid is not None:
            out["spectra"] = self._spectra()
        if self.parts:
            out["regions"] = {k: average_scores(v) for k, v in self.part_scores.items()}
        return out

    def _spectra(self) -> dict:
        mean = {k: np.mean(np.asarray(v), axis=0) for k, v in self.power.items()}  # [L, C, l]
        out: dict = {
            kind: {
                ch: [[float(x) for x in row] for row in p[:, c]]
                for c, ch in enumerate(self.channels)
            }
            for kind, p in mean.items()
        }
        ratio = small_scale_ratio(mean["model"], mean["truth"])  # [L, C]
        out["small_scale_ratio"] = {
            ch: [float(x) for x in ratio[:, c]] for c, ch in enumerate(self.channels)
        }
        return out
