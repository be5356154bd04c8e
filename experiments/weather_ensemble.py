"""A 4-member FGN ensemble on built-in shallow water, fine-tuned on the fair CRPS from the
deterministic model (`make demo-ensemble`).

The network is the base preset's (GraphCast's stages, latent 64, 4 mesh steps) plus
FGN's functional perturbations: a 32-wide noise vector per member and network call
conditions its LayerNorms through maps that start at zero, so with `train.init_from`
set to a trained deterministic run it starts as that model, and CRPS training learns
the spread: 300 steps at a learning rate of 1e-3 through each member's own rollout, its
horizon growing from one step to six (36 h) by one every 50 steps. A member's noises
correlate by 0.4 between its network calls (`noise_correlation`): with a fresh noise
every call (0) the members' perturbations average out along a rollout and the ensemble
was under-dispersed at 72 h. Started from the 72 h fine-tuned deterministic model
(`weather_shallow_water_72h.py`), one- and two-step CRPS training undid that model's
long-lead skill (72 h geopotential CRPS 11% above its MAE); rollouts to four steps left
it 0.1% above for v, to six steps 1.4% below (experiments/results/ensemble.md).
`experiments/ensemble_demo.py` trains the three runs and compares them; this preset alone:

    meshsim train --config experiments/weather_ensemble.py --workdir runs/ens \\
        --set train.init_from=runs/sw-72h
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
        steps=300,
        # each member's own rollout, one step at first, then one step more every 50
        unroll_steps=6,
        unroll_schedule=50,
        checkpoint_every=100,
        log_every=25,
        optimizer=OptimizerConfig(learning_rate=1e-3, decay_steps=300, min_learning_rate=1e-5),
    )
    model = dataclasses.replace(base.model, ensemble=ensemble)
    return dataclasses.replace(base, name="weather_ensemble", model=model, train=train)
