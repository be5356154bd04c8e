"""A stretched-grid forecaster (Nipen et al. 2024) on built-in shallow-water data.

`weather_shallow_water.py`'s network, on the same T42 simulations seen two ways: a
coarse 15° global grid (13 × 24 points, `data.generate_mesh_resolution=0.375`) and a
3° cut-out over the jets' latitudes (20°N–70°N, 30°W–50°E; `data.generate_region`,
5 times finer). The data nodes are the global points outside the region plus the
regional ones (`meshsim.data.stretched`, each weighted by its cell's area), and the
multimesh is split once more over the region (`task.options.region`). The region
covers 6.8% of the sphere; in the loss its points carry a quarter of the weight
(`task.options.region_loss_fraction`, anemoi's `weight_frac_of_total`). The coarse
spacing is 5 times the fine one (Nipen et al. set a 2.5 km regional grid in a 31 km
global one: 12 times). With the 5.625° global grid of `weather_shallow_water.py`
the T42 flow has too little structure finer than the coarse grid for a fine one to
gain from (`experiments/results/stretched_grid.md`). 3,000 steps, twice the base
preset's, with the horizon growing every 1,200, on 32 training simulations instead of
8: on 8, both models' 24 h errors on the training split were half their validation
errors.

`meshsim evaluate` scores it inside and outside the region; `experiments/
stretched_grid.py` compares it with `uniform_config()`, the same model and schedule
on the coarse global grid alone, interpolated to the same points.
"""

import dataclasses
import os

from meshsim.config import ExperimentConfig, load_config
from meshsim.runs.demo import quick_overrides

BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weather_shallow_water.py")
REGION = (20.0, 70.0, 330.0, 50.0)  # lat_min, lat_max, lon_min, lon_max (a box across 0°E)
GLOBAL_RESOLUTION = 0.375  # × the generator's 5.625° grid: a 15° global grid
REGION_RESOLUTION = 5.0  # the regional grid is this many times finer: 3°
REGION_LOSS_FRACTION = 0.25  # the regional points' share of the loss (by area: 6.8%)
STEPS = 3000
TRAIN_TRAJECTORIES = 32

QUICK_OVERRIDES = quick_overrides(BASE)


def get_config() -> ExperimentConfig:
    base = load_config(BASE)
    data = dataclasses.replace(
        base.data,
        generate_mesh_resolution=GLOBAL_RESOLUTION,
        generate_train_trajectories=TRAIN_TRAJECTORIES,
        regional_path="regional",
        generate_region=REGION,
        generate_region_resolution=REGION_RESOLUTION,
    )
    options = {
        **base.task.options,
        "region": REGION,
        "region_splits": 1,
        "region_loss_fraction": REGION_LOSS_FRACTION,
    }
    task = dataclasses.replace(base.task, options=options)
    optimizer = dataclasses.replace(base.train.optimizer, decay_steps=STEPS)
    train = dataclasses.replace(
        base.train, steps=STEPS, unroll_schedule=STEPS * 2 // 5, optimizer=optimizer
    )
    return dataclasses.replace(base, name="weather_stretched", data=data, task=task, train=train)


def uniform_config(config: ExperimentConfig) -> ExperimentConfig:
    """`config` (this preset, overrides applied) on its coarse global grid alone: the
    uniform model the stretched one is compared with."""
    regional = ("region", "region_splits", "limited_area", "region_loss_fraction")
    options = {k: v for k, v in config.task.options.items() if k not in regional}
    return dataclasses.replace(
        config,
        name="weather_uniform",
        data=dataclasses.replace(config.data, regional_path=""),
        task=dataclasses.replace(config.task, options=options),
    )
