"""Warm starts: a new run's parameters taken from another run's checkpoint (`train.init_from`).

The use it is made for: an ensemble fine-tuned from a deterministic model (issue 25).
An FGN network (`model.ensemble.kind=fgn`) is the deterministic network plus
zero-initialised maps from the noise to its LayerNorms' scale and shift, so at its
start it computes the deterministic model's function exactly; CRPS training then only
has to learn the spread. Generally: every parameter of the new network whose path and
shape the source run's network has is copied from the source; parameters only the new
network has keep their fresh initialisation. The source's normalizer statistics are
copied too (a task with dataset statistics recomputes the same ones). The optimizer
state and the step start afresh. Only a fresh run is warm started: a resumed run reads
its own checkpoint.
"""

from __future__ import annotations

import logging
from typing import Any

import jax
import numpy as np

from meshsim.runs.workdir import open_run
from meshsim.training.step import TrainState

logger = logging.getLogger(__name__)


def _path(keys) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in keys)


def graft_params(fresh: Any, source: Any) -> tuple[Any, list[str]]:
    """(params, new-only paths): `fresh` with every leaf the source holds at the same path
    taken from `source`.

    Args:
      fresh: the new network's parameters (a pytree of arrays).
      source: the source run's parameters.

    Returns:
      The grafted parameters, and the paths of `fresh` the source does not have (they
      keep their initialisation).

    Raises:
      ValueError: a path both have with different shapes, or a source parameter the new
        network lacks (not the same architecture: another latent size, depth or block).
    """
    source_leaves = {_path(p): v for p, v in jax.tree_util.tree_flatten_with_path(source)[0]}
    used, new_only = set(), []

    def take(path, leaf):
        name = _path(path)
        if name not in source_leaves:
            new_only.append(name)
            return leaf
        value = source_leaves[name]
        if np.shape(value) != np.shape(leaf):
            raise ValueError(
                f"train.init_from: parameter {name!r} has shape {np.shape(value)} in the source "
                f"run, expected {np.shape(leaf)} (the same network: latent size, depth, block)"
            )
        used.add(name)
        return jax.numpy.asarray(value, leaf.dtype)

    grafted = jax.tree_util.tree_map_with_path(take, fresh)
    unused = sorted(set(source_leaves) - used)
    if unused:
        raise ValueError(
            f"train.init_from: {len(unused)} source parameter(s) have no place in the new "
            f"network, e.g. {unused[:3]} (the same network is expected, plus new parameters "
            "such as an FGN ensemble's)"
        )
    return grafted, new_only


def warm_start(state: TrainState, source_workdir: str) -> TrainState:
    """`state` (a fresh run's) with parameters and normalizers from the newest checkpoint
    of the run in `source_workdir` (see the module doc).

    Raises:
      FileNotFoundError: no run or no checkpoint there.
      ValueError: the networks differ (`graft_params`).
    """
    source = open_run(source_workdir)
    params, new_only = graft_params(state.params, source.state.params)
    logger.info(
        "train.init_from: parameters from %s (step %d); %d new parameter array(s) initialised",
        source_workdir,
        int(source.state.step),
        len(new_only),
    )
    if jax.tree_util.tree_structure(state.normalizers) != jax.tree_util.tree_structure(
        source.state.normalizers
    ):
        raise ValueError(
            f"train.init_from: the run in {source_workdir!r} normalizes other features than "
            "this one (another task or feature set)"
        )
    normalizers = jax.tree_util.tree_map(
        lambda mine, theirs: jax.numpy.asarray(theirs, mine.dtype),
        state.normalizers,
        source.state.normalizers,
    )
    return state.replace(params=params, normalizers=normalizers)
