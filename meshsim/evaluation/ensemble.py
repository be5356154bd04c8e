"""Ensemble forecasts: CRPS, ensemble-mean skill, spread/skill and rank histograms (host side).

The CRPS of an ensemble x_1..x_M against a verifying value y is
E|X − y| − ½ E|X − X′| with the expectations over the members (Gneiting & Raftery
2007). The standard ("ecdf") estimator divides the spread sum Σ_ij |x_i − x_j| by M²:
it is the exact CRPS of the ensemble's empirical distribution. The fair one divides
by M(M − 1): unbiased for the CRPS of the distribution the members are drawn from
(Ferro 2014), so a small ensemble is not rewarded for being under-dispersed. The
spread sum is computed from the sorted members, Σ_ij |x_i − x_j| = 2 Σ_i (2i − M − 1)
x_(i) (i = 1..M; Zamo & Naveau 2018, as WeatherBench2 does): O(M log M) time and
O(M) memory per point. A one-member ensemble has no pairs: its spread term is 0 under
either estimator, and its CRPS is the absolute error.

The almost-fair CRPS (AFCRPS, Lang et al. 2024, "AIFS-CRPS") blends the two:
spread coefficient (1 − ε)/(2M(M − 1)) with ε = (1 − α)/M, i.e. α·fair + (1 − α)·standard;
α = 1 is the fair CRPS, α = 0 the standard one.

`ensemble_scores` reduces over grid nodes with area weights exactly as
`meshsim.evaluation.forecast.weighted_rmse` does; spread/skill follows WeatherBench2
(Rasp et al. 2024): spread √(area-mean of the unbiased member variance), skill the
ensemble-mean RMSE, ratio √((M + 1)/M) · spread / skill, which is 1 in expectation for
an ensemble whose truth is drawn like one more member (Fortin et al. 2014).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from meshsim.evaluation.forecast import anomaly_correlation, weighted_rmse


def _members_and_truth(members, truth) -> tuple[np.ndarray, np.ndarray]:
    members = np.asarray(members, np.float64)
    truth = np.asarray(truth, np.float64)
    if members.ndim < 1 or members.shape[0] < 1:
        raise ValueError(f"members: expected [M ≥ 1, ...], got shape {members.shape}")
    if members.shape[1:] != truth.shape:
        raise ValueError(
            f"truth: expected shape {members.shape[1:]} (members {members.shape} without M), "
            f"got {truth.shape}"
        )
    return members, truth


def _crps_terms(members: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean_i |x_i − y|, Σ_ij |x_i − x_j|), both shaped like `truth`."""
    m = members.shape[0]
    skill = np.mean(np.abs(members - truth[None]), axis=0)
    ranks = 2.0 * np.arange(1, m + 1) - m - 1  # [M] (2i − M − 1), i = 1..M
    ordered = np.sort(members, axis=0)
    pair_sum = 2.0 * np.tensordot(ranks, ordered, axes=(0, 0))
    return skill, pair_sum


def crps_ensemble(members, truth, *, fair: bool) -> np.ndarray:
    """Pointwise ensemble CRPS, E|X − y| − ½ E|X − X′| (see the module doc).

    Args:
      members: [M, ...] ensemble members.
      truth: [...] verifying values.
      fair: divide the spread sum by M(M − 1) (fair) instead of M² (standard, the CRPS
        of the empirical distribution). One member: both give |x − y|.

    Returns:
      [...] float64 CRPS per point. Cost: a sort over M per point.

    Raises:
      ValueError: `members` without a member axis, or `truth` not shaped like a member.
    """
    members, truth = _members_and_truth(members, truth)
    m = members.shape[0]
    skill, pair_sum = _crps_terms(members, truth)
    if m == 1:
        return skill
    return skill - 0.5 * pair_sum / (m * (m - 1) if fair else m * m)


def almost_fair_crps(members, truth, alpha: float) -> np.ndarray:
    """Pointwise almost-fair CRPS (Lang et al. 2024): α·fair + (1 − α)·standard.

    afCRPS_α = 1/(2M(M − 1)) Σ_{i≠j} (|x_i − y| + |x_j − y| − (1 − ε)|x_i − x_j|), ε = (1 − α)/M.

    Args:
      members: [M, ...]; truth: [...]; alpha: in [0, 1] (anemoi trains with 0.95).

    Returns:
      [...] float64; one member: |x − y|.

    Raises:
      ValueError: bad shapes, or `alpha` outside [0, 1].
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    members, truth = _members_and_truth(members, truth)
    m = members.shape[0]
    skill, pair_sum = _crps_terms(members, truth)
    if m == 1:
        return skill
    eps = (1.0 - float(alpha)) / m
    return skill - (1.0 - eps) * pair_sum / (2.0 * m * (m - 1))


def rank_histogram(members, truth, *, seed: int = 0) -> np.ndarray:
    """[M + 1] int64 counts of the rank of the truth among the members, over all points.

    Rank r means r members lie below the truth; ties between the truth and members are
    broken uniformly at random (`seed`), so a discrete ensemble is not biased to one
    side. A calibrated ensemble gives a flat histogram, an under-dispersed one a U.

    Args:
      members: [M, ...]; truth: [...] (every point counts once, unweighted).
    """
    members, truth = _members_and_truth(members, truth)
    below = np.sum(members < truth[None], axis=0)
    ties = np.sum(members == truth[None], axis=0)
    if np.any(ties):
        rng = np.random.default_rng(seed)
        below = below + np.floor(rng.random(ties.shape) * (ties + 1)).astype(below.dtype)
    return np.bincount(below.ravel(), minlength=members.shape[0] + 1).astype(np.int64)


def _spread_skill(spread: np.ndarray, rmse: np.ndarray, members: int) -> np.ndarray:
    """√((M + 1)/M) · spread / ensemble-mean RMSE, 0 where the RMSE is 0."""
    safe = np.where(rmse > 0, rmse, 1.0)
    return np.where(rmse > 0, np.sqrt((members + 1) / members) * spread / safe, 0.0)


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[L, N, C] → [L, C]: Σ_n w_n v / Σ_n w_n (the reduction of `weighted_rmse`)."""
    return np.einsum("lnc,n->lc", values, weights) / weights.sum()


def ensemble_scores(
    members, truth, climatology, weights, channels: Sequence[str], *, seed: int = 0
) -> dict:
    """Probabilistic scores of an ensemble forecast per channel and lead time.

    Args:
      members: [M, L, N, C] ensemble forecasts (M members, L lead times, N grid nodes).
      truth: [L, N, C] verifying analyses.
      climatology: [N, C] for the ACC's anomalies; None (meshes, which have none): no
        "ensemble_mean_acc" entry.
      weights: [N] area weights, mean 1 (`meshsim.data.weather.node_weights`).
      channels: C channel names.
      seed: breaks rank ties (`rank_histogram`).

    Returns:
      {"crps", "crps_fair", "ensemble_mean_rmse", "ensemble_mean_acc", "spread",
      "spread_skill": {channel: [L floats]}, "rank_histogram": {channel: [L lists of
      M + 1 ints]}} — area-weighted means over nodes (rank counts are unweighted);
      "spread" is √(area-mean of the members' unbiased variance) (0 for M = 1) and
      "spread_skill" √((M + 1)/M) · spread / ensemble-mean RMSE (0 where the RMSE is 0).
      Memory: one lead time's members at a time for the CRPS (a sort over M per point).

    Raises:
      ValueError: shapes that disagree (naming the argument), or a channel count that
        is not C.
    """
    members = np.asarray(members, np.float64)
    truth = np.asarray(truth, np.float64)
    weights = np.asarray(weights, np.float64)
    if members.ndim != 4:
        raise ValueError(f"members: expected [M, L, N, C], got shape {members.shape}")
    if truth.shape != members.shape[1:]:
        raise ValueError(f"truth: expected [L, N, C] = {members.shape[1:]}, got {truth.shape}")
    if weights.shape != (members.shape[2],):
        raise ValueError(f"weights: expected [{members.shape[2]}], got {weights.shape}")
    if len(channels) != members.shape[3]:
        raise ValueError(f"channels: expected {members.shape[3]} names, got {len(channels)}")
    m = members.shape[0]
    mean = members.mean(axis=0)  # [L, N, C]
    rmse = weighted_rmse(mean, truth, weights)  # [L, C]
    variance = members.var(axis=0, ddof=1) if m > 1 else np.zeros_like(mean)
    spread = np.sqrt(_weighted_mean(variance, weights))
    crps = np.zeros((2, *rmse.shape))  # [standard | fair, L, C]
    for lead in range(truth.shape[0]):  # one lead's members at a time: memory O(M·N·C)
        for i, fair in enumerate((False, True)):
            score = crps_ensemble(members[:, lead], truth[lead], fair=fair)  # [N, C]
            crps[i, lead] = weights @ score / weights.sum()
    table = {"crps": crps[0], "crps_fair": crps[1], "ensemble_mean_rmse": rmse}
    if climatology is not None:
        table["ensemble_mean_acc"] = anomaly_correlation(mean, truth, climatology, weights)
    table.update(spread=spread, spread_skill=_spread_skill(spread, rmse, m))
    out: dict = {
        name: {ch: [float(v) for v in values[:, k]] for k, ch in enumerate(channels)}
        for name, values in table.items()
    }
    out["rank_histogram"] = {
        ch: [
            [int(c) for c in rank_histogram(members[:, lead, :, k], truth[lead, :, k], seed=seed)]
            for lead in range(truth.shape[0])
        ]
        for k, ch in enumerate(channels)
    }
    out["members"] = m
    return out


def average_ensemble_scores(scores: Sequence[dict]) -> dict:
    """The scores of many ensemble forecasts (`ensemble_scores` results, one per initial
    time, of equal M): CRPS and ACC averaged, ensemble-mean RMSE and spread as root mean
    squares (WeatherBench2 averages the MSE and the variance over initial times), the
    spread/skill ratio recomputed from those, the rank counts summed.

    Raises:
      ValueError: no scores, or scores of different member counts.
    """
    if not scores:
        raise ValueError("scores: expected at least one forecast")
    m = scores[0]["members"]
    if any(s["members"] != m for s in scores):
        raise ValueError(
            f"scores: expected one member count, got {sorted({s['members'] for s in scores})}"
        )

    def stack(name):  # {channel: [F, L]}
        return {ch: np.array([s[name][ch] for s in scores], np.float64) for ch in scores[0][name]}

    out: dict = {}
    for name in ("crps", "crps_fair", "ensemble_mean_acc"):
        if name in scores[0]:
            out[name] = {ch: v.mean(0) for ch, v in stack(name).items()}
    for name in ("ensemble_mean_rmse", "spread"):
        out[name] = {ch: np.sqrt(np.mean(v**2, 0)) for ch, v in stack(name).items()}
    rmse, spread = out["ensemble_mean_rmse"], out["spread"]
    out["spread_skill"] = {ch: _spread_skill(spread[ch], rmse[ch], m) for ch in rmse}
    out = {
        name: {ch: [float(x) for x in v] for ch, v in table.items()} for name, table in out.items()
    }
    out["rank_histogram"] = {
        ch: [[int(c) for c in row] for row in np.sum(np.array(counts, np.int64), axis=0)]
        for ch, counts in {
            ch: [s["rank_histogram"][ch] for s in scores] for ch in scores[0]["rank_histogram"]
        }.items()
    }
    out["members"] = m
    return out
