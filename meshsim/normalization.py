"""Feature normalizers: online accumulating statistics and fixed statistics.

Two kinds share one interface (`normalize`, `denormalize`, `update`,
`mean_and_std`):

* `NormalizerState` -- the MeshGraphNets online normalizer (Pfaff et al. 2021,
  Sec. A.1): per-feature statistics accumulated from training batches until
  `max_accumulations` updates have been made, then frozen.
* `FixedNormalizer` -- precomputed statistics (GraphCast, Lam et al. 2023,
  Sec. 3.2.1: inputs z-scored with dataset statistics; residual targets scaled
  by the standard deviation of one-step time differences).

Both are pytrees (flax struct dataclasses), so they live inside jitted train
steps and are saved with the checkpoint; `Normalizers` groups the ones a model
needs.

Why Chan's parallel update instead of MeshGraphNets' running `sum`/`sum_sq`:
the original code computes `var = sum_sq / n - mean**2` in float32, which
cancels catastrophically when |mean| >> std (e.g. `world_pos` of a cloth far from
the origin) and whose sums grow without bound. Chan et al. (1979) keep
`(count, mean, m2)` with `m2 = sum (x - mean)**2`; a batch is reduced to its own
`(n_b, mean_b, m2_b)` with a two-pass (stable) formula and merged with

    n = n_a + n_b,  d = mean_b - mean_a,
    mean = mean_a + d * n_b / n,
    m2 = m2_a + m2_b + d**2 * n_a * n_b / n.

The batch reduction is still a plain sum, so data parallelism works unchanged:
under `jit` with a batch sharded by `NamedSharding` the sums are global already,
and inside `pmap`/`shard_map` pass `axis_name` so `update` `psum`s the batch
statistics before merging (every device then holds identical state).

`count` is float32 as in MeshGraphNets: it stays exact up to 2**24 samples and
beyond that only the merge weight `n_b / n` is slightly off, which leaves the mean
and variance accurate to float32 precision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from meshsim import atomic
from meshsim.validation import is_int

__all__ = [
    "FixedNormalizer",
    "Normalizer",
    "NormalizerState",
    "Normalizers",
    "denormalize",
    "fixed_normalizer",
    "fixed_normalizer_from_data",
    "init_normalizer",
    "load_normalizers",
    "mean_and_std",
    "normalize",
    "normalizer_from_dict",
    "normalizer_to_dict",
    "save_normalizers",
    "time_difference_normalizer",
    "update",
]

DEFAULT_MAX_ACCUMULATIONS = 10**6  # MeshGraphNets: stop after a million updates
DEFAULT_STD_EPSILON = 1e-8  # MeshGraphNets' lower clamp on the std


@flax.struct.dataclass
class NormalizerState:
    """Online (accumulating) normalizer; a pytree.

    The configuration fields are static (part of the tree structure, not
    leaves): they never change during training, and jit specialises on them.
    """

    count: jax.Array  # [] float32, number of (unmasked) samples accumulated
    mean: jax.Array  # [F] float32, running mean of each feature
    m2: jax.Array  # [F] float32, running sum of squared deviations from `mean`
    num_accumulations: jax.Array  # [] int32, number of `update` calls that accumulated
    max_accumulations: int = flax.struct.field(pytree_node=False, default=DEFAULT_MAX_ACCUMULATIONS)
    std_epsilon: float = flax.struct.field(pytree_node=False, default=DEFAULT_STD_EPSILON)

    @property
    def size(self) -> int:
        """Number of features F."""
        return int(self.mean.shape[-1])


@flax.struct.dataclass
class FixedNormalizer:
    """Normalizer with precomputed statistics; a pytree. `update` leaves it as is."""

    mean: jax.Array  # [F] float32, subtracted before scaling (0 for residual targets)
    std: jax.Array  # [F] float32, divisor, already clamped below by std_epsilon

    @property
    def size(self) -> int:
        """Number of features F."""
        return int(self.mean.shape[-1])


Normalizer = NormalizerState | FixedNormalizer


def init_normalizer(
    size: int,
    *,
    max_accumulations: int = DEFAULT_MAX_ACCUMULATIONS,
    std_epsilon: float = DEFAULT_STD_EPSILON,
) -> NormalizerState:
    """Returns an empty online normalizer for `size` features.

    Until something has been accumulated the mean is 0 and the std is
    `std_epsilon` (as in MeshGraphNets, which therefore only accumulates for its
    first 1000 steps before training).

    Raises:
        ValueError: if `size < 1`, `max_accumulations < 0` or `std_epsilon <= 0`.
    """
    if not is_int(size, minimum=1):
        raise ValueError(f"size must be a positive int, got {size!r}")
    if max_accumulations < 0:
        raise ValueError(f"max_accumulations must be >= 0, got {max_accumulations}")
    if not std_epsilon > 0:
        raise ValueError(f"std_epsilon must be > 0, got {std_epsilon}")
    return NormalizerState(
        count=jnp.zeros((), jnp.float32),
        mean=jnp.zeros((size,), jnp.float32),
        m2=jnp.zeros((size,), jnp.float32),
        num_accumulations=jnp.zeros((), jnp.int32),
        max_accumulations=int(max_accumulations),
        std_epsilon=float(std_epsilon),
    )


def fixed_normalizer(
    mean: Any, std: Any, *, std_epsilon: float = DEFAULT_STD_EPSILON
) -> FixedNormalizer:
    """Wraps precomputed statistics `mean [F]`, `std [F]` (std clamped at `std_epsilon`).

    Raises:
        ValueError: if the shapes are not equal 1-D shapes or the std is negative.
    """
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    if mean.ndim != 1 or mean.shape[0] < 1:
        raise ValueError(f"mean must have shape [F], got {mean.shape}")
    if std.shape != mean.shape:
        raise ValueError(f"std must have the shape of mean {mean.shape}, got {std.shape}")
    if np.any(std < 0) or not np.all(np.isfinite(std)) or not np.all(np.isfinite(mean)):
        raise ValueError("std must be finite and >= 0 and mean finite")
    std = np.maximum(std, np.float32(std_epsilon))
    return FixedNormalizer(mean=jnp.asarray(mean), std=jnp.asarray(std))


def _host_mask(mask: Any, lead_shape: tuple[int, ...], name: str) -> np.ndarray:
    if mask is None:
        return np.ones(lead_shape, bool)
    mask = np.asarray(mask)
    if mask.shape != lead_shape:
        raise ValueError(f"{name} must have shape {lead_shape}, got {mask.shape}")
    return mask != 0


def fixed_normalizer_from_data(
    x: Any,
    mask: Any = None,
    *,
    center: bool = True,
    std_epsilon: float = DEFAULT_STD_EPSILON,
) -> FixedNormalizer:
    """Host-side (numpy, float64) statistics of `x [..., F]` over the entries where `mask [...]`.

    Args:
        x: data, any leading shape, features last.
        mask: bool `[...]` (= `x.shape[:-1]`); False entries (padding) are ignored.
        center: if False the mean is set to 0 (the std is still the std about the
            data mean), e.g. for residual targets.
        std_epsilon: lower clamp on the std.

    Raises:
        ValueError: on bad shapes or when the mask selects nothing.
    """
    x = np.asarray(x, np.float64)
    if x.ndim < 2:
        raise ValueError(f"x must have shape [..., F] with at least 2 dims, got {x.shape}")
    keep = _host_mask(mask, x.shape[:-1], "mask")
    values = x[keep]  # [n, F]
    if values.shape[0] == 0:
        raise ValueError("mask selects no entries")
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    return fixed_normalizer(mean if center else np.zeros_like(mean), std, std_epsilon=std_epsilon)


def time_difference_normalizer(
    trajectory: Any, mask: Any = None, *, std_epsilon: float = DEFAULT_STD_EPSILON
) -> FixedNormalizer:
    """GraphCast-style normalizer for residual targets `x[t+1] - x[t]`.

    Mean 0 and std of the one-step differences of `trajectory [T, ..., F]`, so
    `normalize(n, x_next - x)` is the network target. `mask [...]`
    (= `trajectory.shape[1:-1]`, e.g. `[N]` nodes) excludes padded nodes at every time.

    Raises:
        ValueError: if `T < 2` or the mask has the wrong shape.
    """
    trajectory = np.asarray(trajectory, np.float64)
    if trajectory.ndim < 3 or trajectory.shape[0] < 2:
        raise ValueError(f"trajectory must have shape [T>=2, ..., F], got {trajectory.shape}")
    keep = _host_mask(mask, trajectory.shape[1:-1], "mask")
    diffs = np.diff(trajectory, axis=0)  # [T-1, ..., F]
    keep = np.broadcast_to(keep, diffs.shape[:-1])
    return fixed_normalizer_from_data(diffs, keep, center=False, std_epsilon=std_epsilon)


def _check_features(normalizer: Normalizer, x: jax.Array, name: str) -> None:
    if not isinstance(normalizer, NormalizerState | FixedNormalizer):
        raise TypeError(
            f"normalizer must be a NormalizerState or FixedNormalizer, got {type(normalizer)}"
        )
    if x.ndim < 1 or x.shape[-1] != normalizer.size:
        raise ValueError(f"{name} must have shape [..., {normalizer.size}], got {x.shape}")


def mean_and_std(normalizer: Normalizer) -> tuple[jax.Array, jax.Array]:
    """Current `(mean [F], std [F])`, the std clamped below by `std_epsilon`. Jit-safe."""
    if isinstance(normalizer, FixedNormalizer):
        return normalizer.mean, normalizer.std
    if not isinstance(normalizer, NormalizerState):
        raise TypeError(f"expected a normalizer, got {type(normalizer)}")
    # Population variance (ddof=0), as MeshGraphNets: m2 / max(count, 1).
    var = normalizer.m2 / jnp.maximum(normalizer.count, 1.0)
    std = jnp.sqrt(jnp.maximum(var, 0.0))
    return normalizer.mean, jnp.maximum(std, normalizer.std_epsilon)


def normalize(normalizer: Normalizer, x: jax.Array) -> jax.Array:
    """Returns `(x - mean) / std` for `x [..., F]`. Jit-safe, O(size of x)."""
    x = jnp.asarray(x)
    _check_features(normalizer, x, "x")
    mean, std = mean_and_std(normalizer)
    return (x - mean) / std


def denormalize(normalizer: Normalizer, x: jax.Array) -> jax.Array:
    """Inverse of `normalize`: returns `x * std + mean` for `x [..., F]`. Jit-safe."""
    x = jnp.asarray(x)
    _check_features(normalizer, x, "x")
    mean, std = mean_and_std(normalizer)
    return x * std + mean


def update(
    normalizer: Normalizer,
    x: jax.Array,
    mask: jax.Array | None = None,
    *,
    axis_name: str | None = None,
) -> Normalizer:
    """Accumulates the statistics of a batch; returns the new normalizer.

    Does nothing once `num_accumulations >= max_accumulations` (chosen with
    `jnp.where`, so it is jit-safe) and nothing for a `FixedNormalizer`. Each
    call counts as one accumulation, even if the mask selects nothing.

    Args:
        normalizer: the current state.
        x: `[..., F]` float batch (e.g. `[num_nodes, F]` or `[batch, num_nodes, F]`).
        mask: `[...]` (= `x.shape[:-1]`) bool; False entries (padding) are ignored,
            whatever their values (NaN included). None means all entries count.
            A float mask is read as `mask != 0`.
        axis_name: inside `pmap`/`shard_map`/`vmap`, the named axis over which
            the batch is split; its statistics are `psum`med before the merge.
            Leave None under plain `jit`, sharded or not.

    Returns:
        The updated normalizer. Cost: two passes over `x`.

    Raises:
        ValueError: if the shapes of `x` or `mask` do not match the normalizer.
    """
    x = jnp.asarray(x)
    _check_features(normalizer, x, "x")
    if isinstance(normalizer, FixedNormalizer):
        return normalizer
    lead_shape = x.shape[:-1]
    if mask is None:
        keep = jnp.ones(lead_shape, bool)
    else:
        mask = jnp.asarray(mask)
        if mask.shape != lead_shape:
            raise ValueError(f"mask must have shape {lead_shape} (x.shape[:-1]), got {mask.shape}")
        keep = mask != 0
    axes = tuple(range(x.ndim - 1))
    keep_f = keep[..., None]  # [..., 1]
    x = jnp.where(keep_f, x.astype(jnp.float32), 0.0)

    def reduce(v, axis=None):
        total = jnp.sum(v, axis=axis)
        return jax.lax.psum(total, axis_name) if axis_name is not None else total

    n_b = reduce(keep.astype(jnp.float32))  # []
    mean_b = reduce(x, axis=axes) / jnp.maximum(n_b, 1.0)  # [F]
    m2_b = reduce(jnp.where(keep_f, jnp.square(x - mean_b), 0.0), axis=axes)  # [F]

    # Chan et al. merge of (count, mean, m2) with (n_b, mean_b, m2_b).
    n_a = normalizer.count
    n = n_a + n_b
    safe_n = jnp.maximum(n, 1.0)
    delta = mean_b - normalizer.mean
    new_mean = normalizer.mean + delta * (n_b / safe_n)
    new_m2 = normalizer.m2 + m2_b + jnp.square(delta) * (n_a * (n_b / safe_n))

    active = normalizer.num_accumulations < normalizer.max_accumulations
    return normalizer.replace(
        count=jnp.where(active, n, n_a),
        mean=jnp.where(active, new_mean, normalizer.mean),
        m2=jnp.where(active, new_m2, normalizer.m2),
        num_accumulations=normalizer.num_accumulations + active.astype(jnp.int32),
    )


@flax.struct.dataclass
class Normalizers:
    """The normalizers of one model; a pytree saved with the checkpoint."""

    nodes: dict[str, Normalizer]  # node input features per node set {'mesh': [N, F], ...}
    edges: dict[str, Normalizer]  # edge input features per edge set ('mesh', 'world', ...)
    output: Normalizer | None = None  # network outputs / targets [N_out, F_out]

    def to_dict(self) -> dict[str, Any]:
        """Nested dict of numpy arrays and Python scalars (host side)."""
        return {
            "nodes": {k: normalizer_to_dict(v) for k, v in self.nodes.items()},
            "edges": {k: normalizer_to_dict(v) for k, v in self.edges.items()},
            "output": None if self.output is None else normalizer_to_dict(self.output),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalizers:
        """Inverse of `to_dict`; also accepts lists (a dict read back from JSON)."""
        for key in ("nodes", "edges"):
            if key not in data:
                raise ValueError(f"normalizers dict lacks {key!r}; has {sorted(data)}")
        output = data.get("output")
        return cls(
            nodes={k: normalizer_from_dict(v) for k, v in data["nodes"].items()},
            edges={k: normalizer_from_dict(v) for k, v in data["edges"].items()},
            output=None if output is None else normalizer_from_dict(output),
        )


def normalizer_to_dict(normalizer: Normalizer) -> dict[str, Any]:
    """Host-side dict of one normalizer (numpy arrays, a `kind` tag, static config)."""
    if isinstance(normalizer, FixedNormalizer):
        return {
            "kind": "fixed",
            "mean": np.asarray(normalizer.mean),
            "std": np.asarray(normalizer.std),
        }
    if isinstance(normalizer, NormalizerState):
        return {
            "kind": "online",
            "count": np.asarray(normalizer.count),
            "mean": np.asarray(normalizer.mean),
            "m2": np.asarray(normalizer.m2),
            "num_accumulations": int(normalizer.num_accumulations),
            "max_accumulations": normalizer.max_accumulations,
            "std_epsilon": normalizer.std_epsilon,
        }
    raise TypeError(f"expected a normalizer, got {type(normalizer)}")


def normalizer_from_dict(data: Mapping[str, Any]) -> Normalizer:
    """Inverse of `normalizer_to_dict`.

    Raises:
        ValueError: on an unknown `kind` or inconsistent shapes.
    """
    kind = data.get("kind")
    if kind == "fixed":
        # Stored std is already clamped, so no further clamp is needed here.
        return fixed_normalizer(data["mean"], data["std"], std_epsilon=np.finfo(np.float32).tiny)
    if kind == "online":
        mean = np.asarray(data["mean"], np.float32)
        m2 = np.asarray(data["m2"], np.float32)
        if mean.ndim != 1 or m2.shape != mean.shape:
            raise ValueError(f"online normalizer: mean {mean.shape} and m2 {m2.shape} must be [F]")
        return NormalizerState(
            count=jnp.asarray(np.asarray(data["count"], np.float32).reshape(())),
            mean=jnp.asarray(mean),
            m2=jnp.asarray(m2),
            num_accumulations=jnp.asarray(int(data["num_accumulations"]), jnp.int32),
            max_accumulations=int(data["max_accumulations"]),
            std_epsilon=float(data["std_epsilon"]),
        )
    raise ValueError(f"normalizer kind must be 'online' or 'fixed', got {kind!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()  # float32 -> Python float is exact, and so is the way back
    return value


def save_normalizers(path: str | os.PathLike, normalizers: Normalizers) -> None:
    """Writes `normalizers.to_dict()` as JSON, atomically (temp file + rename)."""
    atomic.write_json(path, _jsonable(normalizers.to_dict()), indent=1)


def load_normalizers(path: str | os.PathLike) -> Normalizers:
    """Reads a file written by `save_normalizers`."""
    with open(path) as f:
        return Normalizers.from_dict(json.load(f))
