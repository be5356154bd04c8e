"""Training: the pure train step, multi-step losses, and the batches that feed them.

`step` holds `TrainState`, the optimizer and the jit-able `train_step(state, batch,
rng)`; `multistep` the k-step unrolled and pushforward losses; `batches` turns
trajectories into padded, stacked, prefetched batches whose order is a pure
function of (seed, step); `crps` the fair and almost-fair CRPS losses of ensembles.
Callers jit, pmap or shard them (`meshsim.parallel`).
"""

from meshsim.training.batches import dataset_budget, iter_batches, prefetch, window_indices
from meshsim.training.crps import crps_loss
from meshsim.training.multistep import horizon_at, output_loss, unrolled_loss
from meshsim.training.step import (
    NonFiniteError,
    TrainState,
    abstract_train_state,
    init_train_state,
    learning_rate,
    make_accumulate_step,
    make_eval_loss,
    make_optimizer,
    make_train_step,
)

__all__ = [
    "NonFiniteError",
    "TrainState",
    "abstract_train_state",
    "crps_loss",
    "dataset_budget",
    "horizon_at",
    "init_train_state",
    "iter_batches",
    "learning_rate",
    "make_accumulate_step",
    "make_eval_loss",
    "make_optimizer",
    "make_train_step",
    "output_loss",
    "prefetch",
    "unrolled_loss",
    "window_indices",
]
