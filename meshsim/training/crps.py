"""CRPS training losses for ensembles: the fair and the almost-fair CRPS, masked and weighted.

An ensemble trained on a proper score keeps its spread where MSE training blurs
(issue 25). Per node and channel the loss is the ensemble CRPS of the M members
against the target (`meshsim.evaluation.ensemble` defines the estimators and their
numpy twins, which these equal):

* "fair": E|X − y| − Σ_ij |x_i − x_j| / (2M(M − 1)), unbiased for the CRPS of the
  members' distribution (Ferro 2014); what WeatherNext 2 / FGN trains on.
* "afcrps": anemoi's almost-fair CRPS (Lang et al. 2024), spread coefficient
  (1 − ε)/(2M(M − 1)) with ε = (1 − α)/M: α·fair + (1 − α)·standard. α < 1 keeps a small
  pull of every member towards the target, which the fair CRPS lacks (its gradient
  does not tell members apart when they collapse).

The reduction follows the deterministic loss (`meshsim.training.multistep.output_loss`
over `meshsim.evaluation.metrics.masked_mse`): per node, the per-channel scores
summed with `channel_weights`; over nodes, the `weights`-weighted mean, nodes of
weight 0 (padding, prescribed nodes) dropped before they can leak NaN or inf into the
loss or its gradient. Feed normalized members and targets, as the MSE loss is fed.

The spread sum uses sorted members, Σ_ij |x_i − x_j| = 2 Σ_i (2i − M − 1) x_(i), so memory
is O(M·N·C), not O(M²·N·C). Jit-safe; differentiable in the members (the gradient
flows back through the sort's permutation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

KINDS = ("fair", "afcrps")


def _check_shapes(members, target, weights, channel_weights) -> None:
    if members.ndim != 3 or members.shape[0] < 1:
        raise ValueError(f"members: expected [M ≥ 1, N, C], got shape {members.shape}")
    if target.shape != members.shape[1:]:
        raise ValueError(f"target: expected [N, C] = {members.shape[1:]}, got {target.shape}")
    if weights.shape != members.shape[1:2]:
        raise ValueError(f"weights: expected [{members.shape[1]}], got {weights.shape}")
    if channel_weights.shape != members.shape[2:]:
        raise ValueError(
            f"channel_weights: expected [{members.shape[2]}], got {channel_weights.shape}"
        )


def crps_loss(
    members: jax.Array,
    target: jax.Array,
    weights: jax.Array,
    channel_weights: jax.Array,
    *,
    kind: str = "fair",
    alpha: float = 0.95,
) -> jax.Array:
    """[] float32 weighted ensemble CRPS of `members` against `target`. Jit-safe.

    Args:
      members: [M, N, C] ensemble members (normalized outputs); M = 1 gives the
        absolute error (no pairs, no spread term).
      target: [N, C] the truth.
      weights: [N] loss weight per node (area weights, 0 on masked nodes); bool or int
        masks count as 0/1.
      channel_weights: [C] per-channel loss weights.
      kind: "fair" or "afcrps" (static).
      alpha: the almost-fair blend α in [0, 1] ("afcrps" only; 1 is "fair"), a Python
        float (static under `jit`).

    Returns:
      [] Σ_n w_n Σ_c cw_c CRPS_nc / Σ_n w_n (0 when every weight is 0).

    Raises:
      ValueError: an unknown `kind`, `alpha` outside [0, 1], or shapes that disagree.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    members, target = jnp.asarray(members), jnp.asarray(target)
    weights, channel_weights = jnp.asarray(weights), jnp.asarray(channel_weights)
    _check_shapes(members, target, weights, channel_weights)
    w = weights.astype(jnp.float32)
    keep = (w > 0)[:, None]  # [N, 1]
    # Zero the dropped nodes first: `where` after the score would still pass NaN
    # gradients back through |x − y| at a padded NaN.
    x = jnp.where(keep[None], members.astype(jnp.float32), 0.0)  # [M, N, C]
    y = jnp.where(keep, target.astype(jnp.float32), 0.0)  # [N, C]
    m = members.shape[0]
    skill = jnp.mean(jnp.abs(x - y[None]), axis=0)  # [N, C]
    if m == 1:
        score = skill
    else:
        ranks = 2.0 * jnp.arange(1, m + 1, dtype=jnp.float32) - m - 1  # [M]
        pair_sum = 2.0 * jnp.tensordot(ranks, jnp.sort(x, axis=0), axes=(0, 0))  # [N, C]
        eps = 0.0 if kind == "fair" else (1.0 - float(alpha)) / m
        score = skill - (1.0 - eps) * pair_sum / (2.0 * m * (m - 1))
    per_node = jnp.sum(score * channel_weights.astype(jnp.float32), axis=-1)  # [N]
    total = jnp.sum(jnp.where(w > 0, per_node * w, 0.0))
    norm = jnp.sum(w)
    return total / jnp.where(norm > 0, norm, 1.0)
