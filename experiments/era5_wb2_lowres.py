"""GraphCast's variables on WeatherBench2's low-resolution ERA5 (5.625°, 64 × 32).

Data: a local cut of WeatherBench2's `1959-2023_01_10-6h-64x32_equiangular_conservative.zarr`
(or its 1.5° sibling `240x121`; set `task.options.mesh_splits=5` there) as published:
`(time, level, longitude, latitude)`, latitude ascending without the poles, 6-hourly.
README.md ("ERA5 from WeatherBench2") shows the xarray lines that cut `train.zarr` and
`valid.zarr` into `data/era5_5.625deg/`.

Variables: GraphCast's (Lam et al. 2023, Table 3), as `experiments/graphcast_1deg.py`
lists them: geopotential, temperature, u/v wind, vertical velocity and specific humidity
on every level of the store, 2 m temperature, 10 m u/v wind, mean sea-level pressure
and 6-hourly precipitation; static land-sea mask and surface geopotential (the store's
other static fields are left out); solar radiation and the time of day and year are
computed from the time (`meshsim.data.forcing`), not read. GraphCast's loss weights
(surface variables other than 2 m temperature at 0.1). Precipitation is an input here
too: meshsim has no target-only channels.

Network: GraphCast's stages at latent 128 with 6 mesh steps on a 4-split multimesh
(2,562 vertices, ~480 km apart, about the grid's own spacing). Schedule: 28,000 steps,
the unrolled horizon growing by one step every 7,000 from 1 to 4 (a day). Not trained
in this repository (it needs the ERA5 cut and hours of a GPU); the suite trains it for
a few steps on a store written in WB2's exact layout (tests/test_wb2_forecast.py).
"""

import dataclasses
import os

from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, load_config

# GraphCast's paper configuration: its variables and loss weights are this preset's.
PAPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "graphcast_1deg.py")
STATIC = ("geopotential_at_surface", "land_sea_mask")

# `meshsim demo --quick` style sizes for the suite (on a tiny store in WB2's layout).
QUICK_OVERRIDES = [
    "data.batch_size=1",
    "task.options.mesh_splits=1",
    "model.latent_size=8",
    "model.num_message_passing_steps=1",
    "train.steps=4",
    "train.unroll_steps=1",
    "train.checkpoint_every=2",
    "train.log_every=2",
]


def get_config() -> ExperimentConfig:
    paper = load_config(PAPER)
    task = dataclasses.replace(paper.task, options={**paper.task.options, "mesh_splits": 4})
    train = dataclasses.replace(
        paper.train,
        steps=28_000,
        log_every=100,
        checkpoint_every=2_000,
        unroll_steps=4,
        unroll_schedule=7_000,
        optimizer=dataclasses.replace(
            paper.train.optimizer, decay_steps=28_000, min_learning_rate=1e-5
        ),
    )
    return ExperimentConfig(
        name="era5_wb2_lowres",
        task=task,
        data=DataConfig(
            path="data/era5_5.625deg",
            batch_size=2,
            variables=paper.data.variables,
            static_variables=STATIC,
        ),
        model=ModelConfig(name="graphcast", latent_size=128, num_message_passing_steps=6),
        train=train,
    )
