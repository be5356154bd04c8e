"""The shallow-water forecaster fine-tuned on 72 h rollouts (GraphCast's last training phase).

`weather_shallow_water.py` trains on rollouts of at most 3 steps (18 h). GraphCast ends its
training with autoregressive fine-tuning up to 12 steps (72 h). This preset is that phase for
the built-in shallow water: the same network, started from a trained run
(`train.init_from`), 150 steps on the MSE of 12-step (72 h) rollouts at a learning rate of
3e-4. On the demo's data it lowered the 72 h geopotential RMSE from 677 to 579, and the
forecast lost small-scale power as an MSE model should where the flow is unpredictable:
at 72 h its geopotential and u kept 0.99 and 0.91 of the truth's power in the upper
wavenumbers, against 1.33 and 1.15 before (experiments/results/ensemble.md).
`experiments/ensemble_demo.py` compares the ensemble with this model; alone:

    meshsim train --config experiments/weather_shallow_water_72h.py --workdir runs/sw-72h \\
        --set data.path=data/sw --set train.init_from=runs/sw
"""

import dataclasses
import os

from meshsim.config import ExperimentConfig, OptimizerConfig, load_config
from meshsim.runs.demo import quick_overrides

# The preset this one fine-tunes: data, graph and network are its own.
BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weather_shallow_water.py")

# `meshsim demo --quick` (the test suite's smoke run): the base preset's sizes.
QUICK_OVERRIDES = [
    *[o for o in quick_overrides(BASE) if not o.startswith(("train.unroll", "train.steps"))],
    "train.steps=3",
    "train.unroll_steps=3",
]


def get_config() -> ExperimentConfig:
    base = load_config(BASE)
    train = dataclasses.replace(
        base.train,
        steps=150,
        unroll_steps=12,  # 72 h of 6-hourly steps
        unroll_schedule=0,  # the whole horizon from the first step
        checkpoint_every=50,
        log_every=10,
        optimizer=OptimizerConfig(learning_rate=3e-4, decay_steps=150, min_learning_rate=1e-5),
    )
    return dataclasses.replace(base, name="weather_shallow_water_72h", train=train)
