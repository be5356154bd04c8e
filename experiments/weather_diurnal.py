"""CPU-sized GraphCast-style forecaster on shallow-water data with a diurnal channel.

`weather_shallow_water.py` with `data.generate_diurnal=True`: besides u, v and the
geopotential, the built-in data hold `2m_temperature`, a column relaxation model
heated by the top-of-atmosphere solar radiation and carried by the flow
(`meshsim.solvers.surface_temperature`). Graph, network and schedule are the base
preset's (5.625° grid, 3-split multimesh, latent 64, 4 mesh steps, 1,500 steps
growing to a 3-step unrolled loss). Results: experiments/results/diurnal.md.
"""

import dataclasses
import os

from meshsim.config import ExperimentConfig, load_config
from meshsim.runs.demo import quick_overrides

# The preset this one varies: everything but the data's diurnal channel is its own.
BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weather_shallow_water.py")

# `meshsim demo --quick` (the test suite's smoke run): the base preset's sizes.
QUICK_OVERRIDES = quick_overrides(BASE)


def get_config() -> ExperimentConfig:
    base = load_config(BASE)
    data = dataclasses.replace(base.data, path="data/shallow_water_diurnal", generate_diurnal=True)
    return dataclasses.replace(base, name="weather_diurnal", data=data)
