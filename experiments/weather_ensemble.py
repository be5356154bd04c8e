"""A 4-member FGN ensemble on built-in shallow water, fine-tuned on the fair CRPS from the
deterministic `weather_shallow_water.py` model (`make demo-ensemble`).

The network is the base preset's (GraphCast's stages, latent 64, 4 mesh steps) plus
FGN's functional perturbations: a 32-wide noise vector per member and network call
conditions its LayerNorms through maps that start at zero, so with `train.init_from`
set to a trained deterministic run it starts as that model, and CRPS training learns
the spread: 400 steps at a learning rate of 1e-3, one-step for 250, then each member's
own 2-step rollout. A member's noises correlate by 0.4 between its network calls
(`noise_correlation`): with a fresh noise every call (0) the members' perturbations
average out along a rollout and the ensemble was under-dispersed at 72 h (spread/skill
0.53–0.69); with 0.4 it lies in 0.86–1.14 (experiments/results/ensemble.md).
`experiments/ensemble_demo.py` trains both and compares them; this preset alone:

    meshsim train --config experiments/weather_ensemble.py --workdir runs/ens \\
        --set train.init_from=runs/demo-weather/run
"""

import dataclasses
import os

from meshsim.config import EnsembleConfig, ExperimentConfig, OptimizerConfig, load_config
from meshsim.runs.demo import quick_overrides

# The deterministic preset this one fine-tunes: data, graph and network are its own.
BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weather_shallow_water.py")

# `meshsim demo --quick` (the test suite's smoke run): the base preset's sizes.
QUICK_OVERRIDES = [
    *[o for o in quick_overrides(BASE) if not o.startswith(("train.unroll", "train.steps"))],
    "model.ensemble.members=2",
    "model.ensemble.noise_size=4",
    "train.steps=4",
]


def get_config() -> ExperimentConfig:
    base = load_config(BASE)
    ensemble = EnsembleConfig(
        members=4, kind="fgn", noise_size=32, loss="fair", noise_correlation=0.4
    )
    train = dataclasses.replace(
        base.train,
        steps=400,
        # one-step CRPS, then each member's own 2-step rollout (its spread at two steps)
        unroll_steps=2,
        unroll_schedule=250,
        checkpoint_every=200,
        log_every=25,
        optimizer=OptimizerConfig(learning_rate=1e-3, decay_steps=400, min_learning_rate=1e-5),
    )
    model = dataclasses.replace(base.model, ensemble=ensemble)
    return dataclasses.replace(base, name="weather_ensemble", model=model, train=train)
