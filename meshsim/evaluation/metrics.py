"""Error metrics for one-step predictions and rollouts, masked over nodes.

Masks are `[N]` (or `[..., N]`) bool/0-1 arrays over nodes: padded nodes (graphs
are padded to static sizes) and, if wanted, prescribed boundary nodes are
excluded. An all-False mask gives an error of 0, never NaN.

Rollout RMSE follows the MeshGraphNets evaluation code (deepmind-research,
`meshgraphnets/cfd_eval.py` and `cloth_eval.py`, `evaluate`):

    error[t, n] = mean_f (pred[t, n, f] - truth[t, n, f])**2
    mse_h       = mean over t in 1..h and over nodes n of error[t, n]

where frame 0 is the initial condition (identical in both trajectories and
excluded), and the paper (Pfaff et al. 2021, Table 1, "rollout RMSE") reports
sqrt(mse_h). The original averages over all mesh nodes, prescribed ones
included (their error is 0 by construction); pass a mask that selects every
real node to reproduce it, or the loss mask to score only predicted nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DEFAULT_HORIZONS",
    "aggregate_rollout_metrics",
    "masked_mse",
    "masked_rmse",
    "per_step_mse",
    "persistence_rollout",
    "rmse_at_horizons",
    "rollout_rmse",
]

DEFAULT_HORIZONS = (1, 10, 50)  # MeshGraphNets paper: RMSE-1, RMSE-50 (and RMSE-all)
_FEATURE_REDUCTIONS = ("mean", "sum")


def _node_mask(mask: jax.Array | None, lead_shape: tuple[int, ...]) -> jax.Array:
    """Float weights broadcast to `lead_shape`; `mask` may cover trailing axes only.

    A bool or integer mask gives 0/1 weights; a floating one is used as weights."""
    if mask is None:
        return jnp.ones(lead_shape, jnp.float32)
    mask = jnp.asarray(mask)
    n = mask.ndim
    if n > len(lead_shape) or mask.shape != lead_shape[len(lead_shape) - n :]:
        raise ValueError(
            f"mask must have shape {lead_shape} or a trailing part of it, got {mask.shape}"
        )
    weights = mask if jnp.issubdtype(mask.dtype, jnp.floating) else mask != 0
    return jnp.broadcast_to(weights.astype(jnp.float32), lead_shape)


def _weighted_mean(err: jax.Array, w: jax.Array, axis=None) -> jax.Array:
    """sum(w·err) / sum(w) over `axis`, 0 where every weight is 0; entries of weight 0 never
    leak in (padded entries may hold inf/NaN), and the gradient stays finite."""
    total = jnp.sum(jnp.where(w > 0, err * w, 0.0), axis=axis)
    weight = jnp.sum(w, axis=axis)
    return total / jnp.where(weight > 0, weight, 1.0)


def _squared_error(
    pred: jax.Array, target: jax.Array, feature_reduction: str, names: tuple[str, str]
) -> jax.Array:
    if pred.shape != target.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {pred.shape} and "
            f"{target.shape}"
        )
    if pred.ndim < 2:
        raise ValueError(f"{names[0]} must have shape [..., N, F], got {pred.shape}")
    if feature_reduction not in _FEATURE_REDUCTIONS:
        raise ValueError(
            f"feature_reduction must be one of {_FEATURE_REDUCTIONS}, got {feature_reduction!r}"
        )
    sq = jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32))
    return jnp.mean(sq, axis=-1) if feature_reduction == "mean" else jnp.sum(sq, axis=-1)


def masked_mse(
    pred: jax.Array,
    target: jax.Array,
    mask: jax.Array | None = None,
    *,
    feature_reduction: str = "mean",
) -> jax.Array:
    """Mean squared error over the nodes selected by `mask`. Jit-safe.

    Args:
        pred: `[..., N, F]` prediction.
        target: same shape as `pred`.
        mask: `[N]` or `[..., N]` over nodes: bool/int (0 drops a node) or float weights
            (e.g. cell areas); None selects all.
        feature_reduction: "mean" (evaluation, as MeshGraphNets' `*_eval.py`) or
            "sum" (the MeshGraphNets training loss sums over features).

    Returns:
        `[]` float32: weighted sum of per-node errors / sum of weights (0 if all are 0).

    Raises:
        ValueError: on mismatched shapes or an unknown `feature_reduction`.
    """
    pred, target = jnp.asarray(pred), jnp.asarray(target)
    err = _squared_error(pred, target, feature_reduction, ("pred", "target"))  # [..., N]
    return _weighted_mean(err, _node_mask(mask, err.shape))


def masked_rmse(
    pred: jax.Array,
    target: jax.Array,
    mask: jax.Array | None = None,
    *,
    feature_reduction: str = "mean",
) -> jax.Array:
    """`sqrt(masked_mse(...))`; same arguments. Jit-safe."""
    return jnp.sqrt(masked_mse(pred, target, mask, feature_reduction=feature_reduction))


def per_step_mse(pred: jax.Array, truth: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Per-frame masked MSE of a rollout. Jit-safe.

    Args:
        pred: `[T, N, F]` predicted trajectory.
        truth: `[T, N, F]` reference trajectory.
        mask: `[N]` (or `[T, N]`) bool/0-1 over nodes.

    Returns:
        `[T]` float32: mean over masked nodes of the feature-mean squared error.
    """
    pred, truth = jnp.asarray(pred), jnp.asarray(truth)
    if pred.ndim != 3:
        raise ValueError(f"pred must have shape [T, N, F], got {pred.shape}")
    err = _squared_error(pred, truth, "mean", ("pred", "truth"))  # [T, N]
    return _weighted_mean(err, _node_mask(mask, err.shape), axis=1)


def rollout_rmse(
    pred: jax.Array,
    truth: jax.Array,
    mask: jax.Array | None = None,
    *,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    includes_initial: bool = True,
) -> dict[str, float]:
    """Rollout RMSE at several horizons, as in MeshGraphNets. Host side (returns floats).

    RMSE-h = sqrt(mean over the first h predicted frames and over masked nodes of
    the feature-mean squared error). Frames are weighted equally (each frame's
    error is a mean over its masked nodes first), which equals a plain mean over
    (t, n) when the mask is the same at every frame, as in MeshGraphNets.

    Args:
        pred: `[T, N, F]` predicted trajectory.
        truth: `[T, N, F]` reference trajectory.
        mask: `[N]` bool/0-1 over nodes (padding and, optionally, prescribed nodes off).
        horizons: numbers of predicted steps; a horizon longer than the number of
            predicted frames is skipped (no key), so short rollouts never report an
            average that silently covers fewer steps than its name says.
        includes_initial: True (MeshGraphNets layout): frame 0 is the initial
            condition and predicted frames are 1..T-1. False: all T frames are
            predictions (frame t is step t+1).

    Returns:
        `{"1": rmse_1, "10": rmse_10, "50": rmse_50, "all": rmse_all}` as floats,
        less the skipped horizons.

    Raises:
        ValueError: on bad shapes, a horizon < 1, or no predicted frame.
    """
    step_mse = per_step_mse(pred, truth, mask)
    if includes_initial:
        step_mse = step_mse[1:]
    return rmse_at_horizons(step_mse, horizons=horizons)


def rmse_at_horizons(
    step_mse: jax.Array | np.ndarray, *, horizons: Sequence[int] = DEFAULT_HORIZONS
) -> dict[str, float]:
    """`rollout_rmse` from the per-frame MSE `[T]` of the predicted frames only (no
    initial frame), e.g. gathered chunk by chunk from a streamed rollout. Host side.

    Raises:
        ValueError: on a horizon < 1 or an empty `step_mse`.
    """
    num_steps = int(np.shape(step_mse)[0])
    if num_steps < 1:
        raise ValueError("pred has no predicted frame (T must be >= 2 with includes_initial)")
    cumulative = np.cumsum(np.asarray(jax.device_get(step_mse), np.float64))
    out: dict[str, float] = {}
    for h in horizons:
        h = int(h)
        if h < 1:
            raise ValueError(f"horizons must be >= 1, got {h}")
        if h <= num_steps:
            out[str(h)] = float(np.sqrt(cumulative[h - 1] / h))
    out["all"] = float(np.sqrt(cumulative[-1] / num_steps))
    return out


def persistence_rollout(initial: jax.Array, steps: int) -> jax.Array:
    """Baseline that predicts no change: `initial [N, F]` repeated `steps` times.

    Returns:
        `[steps, N, F]`; with `steps = T` it lines up with a `[T, N, F]` truth whose
        frame 0 is `initial`. Jit-safe with a static `steps`.
    """
    initial = jnp.asarray(initial)
    if initial.ndim != 2:
        raise ValueError(f"initial must have shape [N, F], got {initial.shape}")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return jnp.broadcast_to(initial[None], (int(steps), *initial.shape))


def aggregate_rollout_metrics(metrics: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each key over a list of per-trajectory metric dicts (as MeshGraphNets).

    A key missing from some dicts (e.g. a horizon longer than a short trajectory)
    is averaged over the dicts that have it.

    Raises:
        ValueError: if `metrics` is empty.
    """
    totals: dict[str, list[float]] = {}
    count = 0
    for record in metrics:
        count += 1
        for key, value in record.items():
            totals.setdefault(key, []).append(float(value))
    if count == 0:
        raise ValueError("metrics is empty")
    return {key: float(np.mean(values)) for key, values in totals.items()}
