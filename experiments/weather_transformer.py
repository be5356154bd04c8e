"""CPU-sized GraphCast-style forecaster with the graph-transformer block on built-in
shallow-water data: `weather_shallow_water.py` with `model.block=transformer`.

Data, graph and schedule are `weather_shallow_water.py`'s (T42 barotropic-instability
jets on a 5.625° grid, a 3-split multimesh, 1,500 steps of 2 windows growing to a
3-step unrolled loss). GraphCast's stages stay (grid2mesh ×1 → mesh ×4 → mesh2grid
×1, latent 64, one hidden layer, swish), each step a `meshsim.TransformerBlock`: in
grid2mesh every mesh vertex attends over the grid points that send it an edge, in
the processor over its multimesh neighbours, in mesh2grid every grid point over its
mesh vertices; 4 heads of width 16, a gated MLP twice the latent wide.
"""

import dataclasses
import os

from meshsim.config import ExperimentConfig, load_config
from meshsim.runs.demo import quick_overrides

# The preset this one varies: everything but the processor block is its own.
BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weather_shallow_water.py")

# `meshsim demo --quick` (the test suite's smoke run): the base preset's sizes.
QUICK_OVERRIDES = quick_overrides(BASE)


def get_config() -> ExperimentConfig:
    base = load_config(BASE)
    model = dataclasses.replace(base.model, block="transformer", num_heads=4)
    return dataclasses.replace(base, name="weather_transformer", model=model)
