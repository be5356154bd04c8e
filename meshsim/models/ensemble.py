"""Stochastic members of a staged network: FGN-style functional perturbations or
perturbed initial states, and how each member draws its randomness.

An ensemble is M members of one network (issue 25). Both kinds are configuration of
`EncodeProcessDecode`, not another network:

* "fgn" (functional perturbations, in the style of FGN / WeatherNext 2): each member
  and example draws a noise vector z ~ N(0, I) of `noise_size`, shared by every node,
  which conditions the LayerNorms of the encoder and the processor
  (`EncodeProcessDecode.noise_size`: scale and shift from a learned, zero-initialised
  linear map of z). A fresh z is drawn for every network call of a rollout (FGN's
  way), or, with `noise_correlation` ρ > 0, z_c = √ρ·p + √(1 − ρ)·ε_c for call c,
  p drawn once per member: every z_c is still N(0, I), any two calls' noises
  correlate by ρ, and the persistent part of the member's perturbation of the
  dynamics accumulates along its rollout instead of averaging out (ρ = 1: one z for
  the whole rollout).
* "initial" (perturbed initial states): each member's input state gets Gaussian noise
  of `initial_std` in normalised units (the output normalizer's per-channel std: the
  one-step change of a channel, or its value's std for channels predicted as values)
  on the simulated real nodes; the network itself stays deterministic. In a rollout
  only the initial state is perturbed.
* "fgn+initial": both at once, each member with its own FGN noise and its own perturbed
  initial state (the noise conditions the dynamics, the perturbation the start).

Member m of example b draws from `member_key(example_key, m)`: the keys depend on the
member's index, not on how members are laid out over devices, so an ensemble sharded
over devices computes the members one device computes. Pure, jit-safe helpers.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from meshsim.validation import check_int, check_number

KINDS = ("fgn", "initial", "fgn+initial")
NOISE_KINDS = ("fgn", "fgn+initial")  # the network takes an FGN noise per call
STATE_KINDS = ("initial", "fgn+initial")  # each member's initial state is perturbed
LOSSES = ("fair", "afcrps")


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """The ensemble a simulator trains and rolls out (`model.ensemble.*` in a config).

    Attributes:
      members: M ≥ 1 members per example (1: one trajectory, trained on MSE).
      kind: "fgn", "initial", "fgn+initial", or None (deterministic; only with M = 1).
      noise_size: the FGN noise vector's width S ("fgn", "fgn+initial").
      initial_std: std of the initial-state perturbation in normalised units ("initial",
        "fgn+initial").
      noise_correlation: ρ in [0, 1], the correlation of a member's FGN noise between
        two of its network calls (0: fresh every call; 1: the same for every call).
      loss: the CRPS trained on with M > 1: "fair" or "afcrps" (`meshsim.training.crps`).
      alpha: the almost-fair blend α in [0, 1] ("afcrps").
    """

    members: int = 1
    kind: str | None = None
    noise_size: int = 32
    initial_std: float = 0.1
    noise_correlation: float = 0.0
    loss: str = "afcrps"
    alpha: float = 0.95

    def __post_init__(self):
        check_int("model.ensemble.members", self.members, minimum=1, expected="an int ≥ 1")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(
                f"model.ensemble.kind: expected one of {KINDS} or None, got {self.kind!r}"
            )
        if self.kind is None and self.members > 1:
            raise ValueError(
                f"model.ensemble.kind: {self.members} members need a stochastic kind, one of "
                f"{KINDS}, got None"
            )
        check_int("model.ensemble.noise_size", self.noise_size, minimum=1, expected="an int ≥ 1")
        check_number("model.ensemble.initial_std", self.initial_std, minimum=0.0)
        check_number(
            "model.ensemble.noise_correlation", self.noise_correlation, minimum=0.0, maximum=1.0
        )
        if self.loss not in LOSSES:
            raise ValueError(f"model.ensemble.loss: expected one of {LOSSES}, got {self.loss!r}")
        check_number("model.ensemble.alpha", self.alpha, minimum=0.0, maximum=1.0)

    @property
    def stochastic(self) -> bool:
        """The members differ (a kind is set)."""
        return self.kind is not None

    @property
    def uses_noise(self) -> bool:
        """The network takes an FGN noise vector per call ("fgn", "fgn+initial")."""
        return self.kind in NOISE_KINDS

    @property
    def perturbs_state(self) -> bool:
        """Each member's initial state is perturbed ("initial", "fgn+initial")."""
        return self.kind in STATE_KINDS

    @property
    def network_noise_size(self) -> int:
        """`EncodeProcessDecode.noise_size` for this ensemble (0 without FGN noise)."""
        return self.noise_size if self.uses_noise else 0


def member_keys(example_key: jax.Array, members: int) -> jax.Array:
    """[members] keys of one example's members: `fold_in(example_key, m)`."""
    return jax.vmap(lambda m: jax.random.fold_in(example_key, m))(jnp.arange(members))


def network_noise(ensemble: Ensemble, key: jax.Array, call: int | jax.Array = 0):
    """[noise_size] float32 z ~ N(0, I) of a member's network call `call` (FGN noise; any
    two calls' noises correlate by `noise_correlation`), else None."""
    if not ensemble.uses_noise:
        return None
    base = jax.random.fold_in(key, 0)
    shape = (ensemble.noise_size,)
    z = jax.random.normal(jax.random.fold_in(base, call), shape, jnp.float32)
    rho = ensemble.noise_correlation
    if rho == 0.0:
        return z
    persistent = jax.random.normal(jax.random.fold_in(key, 2), shape, jnp.float32)
    return jnp.sqrt(jnp.float32(rho)) * persistent + jnp.sqrt(jnp.float32(1.0 - rho)) * z


def perturb_state(
    ensemble: Ensemble, key: jax.Array, state: jax.Array, keep: jax.Array, std: jax.Array
) -> jax.Array:
    """[N, d] a member's initial state ("initial", "fgn+initial"; else `state` as it is).

    Args:
      key: the member's key.
      state: [N, d] the state.
      keep: [N] bool, the nodes perturbed (simulated real nodes).
      std: [d] the output normalizer's std, the unit of `initial_std`.
    """
    if not ensemble.perturbs_state or ensemble.initial_std == 0.0:
        return state
    noise = jax.random.normal(jax.random.fold_in(key, 1), state.shape, jnp.float32)
    noise = noise * (ensemble.initial_std * jnp.asarray(std, jnp.float32))
    return state + jnp.where(keep[:, None], noise, 0.0).astype(state.dtype)
