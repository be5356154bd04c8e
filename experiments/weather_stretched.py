"""A stretched-grid forecaster (Nipen et al. 2024) on built-in shallow-water data.

`weather_shallow_water.py`'s data, network and schedule, with a fine regional grid set
into the global one over the jets' latitudes (20°N–70°N, 30°W–50°E): the generator
writes a 2.8125° cut-out of the same simulations beside the 5.625° global store
(`data.generate_region`), the data nodes are the global points outside the region
plus the regional ones (`meshsim.data.stretched`, each weighted by its cell's area),
and the multimesh is split once more over the region (`task.options.region`).
`meshsim evaluate` scores it inside and outside the region; `experiments/
stretched_grid.py` compares it with the uniform coarse model of `weather_shallow_water.py`
interpolated to the same points.
"""

import dataclasses
import os

from meshsim.config import ExperimentConfig, load_config
from meshsim.runs.demo import quick_overrides

BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weather_shallow_water.py")
REGION = (20.0, 70.0, 330.0, 50.0)  # lat_min, lat_max, lon_min, lon_max (a box across 0°E)

QUICK_OVERRIDES = quick_overrides(BASE)


def get_config() -> ExperimentConfig:
    base = load_config(BASE)
    data = dataclasses.replace(
        base.data,
        regional_path="regional",
        generate_region=REGION,
        generate_region_resolution=2.0,
    )
    options = {**base.task.options, "region": REGION, "region_splits": 1}
    task = dataclasses.replace(base.task, options=options)
    return dataclasses.replace(base, name="weather_stretched", data=data, task=task)
