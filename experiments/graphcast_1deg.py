"""GraphCast's paper configuration (Lam et al., Science 2023) for ERA5 at 1°.

WeatherBench2's 1° ERA5 (`1959-2023_01_10-6h-240x121_equiangular_with_poles_conservative`
regridded to 181 × 360, or the 1.0° `equiangular_with_poles` store), 6-hourly, the
paper's 227 target channels: geopotential, temperature, u/v wind, vertical velocity and
specific humidity on 37 pressure levels (222) plus 2 m temperature, 10 m u/v wind,
mean sea-level pressure and 6-hourly total precipitation (5); static land-sea mask and
surface geopotential; forcings computed from the time. Multimesh of 6 splits
(40,962 vertices, 327,660 edges), latent 512, 16 unshared mesh steps, one hidden layer,
swish, LayerNorm.

Parameters: 36,343,011, tested exactly by tests/test_weather_experiments.py. It is
`meshsim.models.graphcast_param_count` for these widths, the count of DeepMind's
implementation for the same widths: grid inputs 2·227 channels + 2·5 forcings + 2 static
+ 3 position features = 469, mesh inputs the same 466 zeros + 3 positions = 469, edge
inputs 4, latent L = 512, one hidden layer, 16 mesh steps, 227 outputs; with M(i, o)
= i·L + L + L·o + o + 2o, the count is M(469, L) + M(469, L) + 3·M(4, L) + 2·[M(3L, L)
+ M(2L, L) + M(L, L)] + 16·[M(3L, L) + M(2L, L)] + (L·L + L + L·227 + 227). The paper
reports 36.7M; the 0.36M between the two is not explained by these widths (each input
feature adds 2L = 1,024 parameters).

Schedule: the paper trains 300k one-step steps, then 11k autoregressive steps growing
from 2 to 12 steps (3 days); here `train.unroll_steps=12`, `unroll_schedule` grows the
horizon by one every 1,000 steps after a one-step phase (set `train.steps` and the
schedule to match your budget). Needs ~1 TB of ERA5 and accelerators; on a CPU this
file is a shape reference: `python experiments/graphcast_1deg.py --time` builds the 1°
graph and times one forecast step with random parameters.
"""

from meshsim.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
    TaskConfig,
    TrainConfig,
)

ATMOSPHERIC = (
    "geopotential",
    "temperature",
    "u_component_of_wind",
    "v_component_of_wind",
    "vertical_velocity",
    "specific_humidity",
)
SURFACE = (
    "2m_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
    "total_precipitation_6hr",
)
# GraphCast Sec. 3.2.2: surface variables other than 2 m temperature weigh 0.1.
WEIGHTS = tuple(f"{v}=0.1" for v in SURFACE[1:])
LEVELS = 37
NUM_CHANNELS = len(ATMOSPHERIC) * LEVELS + len(SURFACE)  # 227
NUM_STATIC = 2  # land_sea_mask, geopotential_at_surface


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="graphcast_1deg",
        task=TaskConfig(name="weather", options={"mesh_splits": 6, "variable_weights": WEIGHTS}),
        data=DataConfig(
            path="data/era5_1deg",
            batch_size=1,
            generate_domain="shallow_water",
            variables=ATMOSPHERIC + SURFACE,
        ),
        # GraphCast's own structure (latent 512, 16 mesh steps, one hidden layer, swish)
        model=ModelConfig(name="graphcast", remat=True),
        train=TrainConfig(
            steps=311_000,
            accumulate_steps=0,
            log_every=100,
            eval_every=0,
            checkpoint_every=5_000,
            unroll_steps=12,
            unroll_schedule=0,
            optimizer=OptimizerConfig(
                learning_rate=1e-3,
                decay_steps=300_000,
                decay_rate=0.01,
                min_learning_rate=3e-7,
                grad_clip_norm=32.0,
            ),
        ),
    )


def paper_model():
    """The 1° network and a task of the paper's widths (no data needed)."""
    import meshsim
    from meshsim.tasks.weather import WeatherTask

    task = WeatherTask(output_size=NUM_CHANNELS, num_static=NUM_STATIC, mesh_splits=6)
    model = meshsim.get_model(
        "graphcast", output_size=NUM_CHANNELS, **get_config().model.model_kwargs()
    )
    return meshsim.Simulator(model, task)


def count_parameters() -> int:
    """Parameter count of the paper configuration (shapes only, nothing allocated)."""
    import jax

    sim = paper_model()
    shapes = jax.eval_shape(sim.model.init, jax.random.key(0), sim.template_graph())
    return int(sum(x.size for x in jax.tree_util.tree_leaves(shapes)))


def time_forecast_step(repeats: int = 1) -> dict:
    """Builds the 1° graph and times one 6-h forecast step (compile reported apart)."""
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np

    from meshsim.meshes.sphere import latlon_grid

    sim = paper_model()
    lat, lon = latlon_grid(1.0)
    t0 = time.perf_counter()
    structure = sim.task.structure({"latitude": lat, "longitude": lon})
    build = time.perf_counter() - t0
    n = structure.num_nodes("grid")
    key = jax.random.key(0)
    params = sim.init_params(key)
    fields = {
        "prev|state": jnp.zeros((n, NUM_CHANNELS)),
        "state": jnp.zeros((n, NUM_CHANNELS)),
        "forcing": jnp.zeros((n, 10)),
        "static": jnp.zeros((n, NUM_STATIC)),
    }
    sizes = sim.task.node_feature_sizes
    normalizers = sim.init_normalizers(max_accumulations=1)
    step = jax.jit(lambda p, f: sim.predict(p, normalizers, f, structure))
    t0 = time.perf_counter()
    step.lower(params, fields).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(step(params, fields))
        times.append(time.perf_counter() - t0)
    return {
        "grid_nodes": n,
        "mesh_nodes": structure.num_nodes("mesh"),
        "edges": {k: int(e.senders.shape[0]) for k, e in structure.edge_sets.items()},
        "grid_features": sizes["grid"],
        "graph_build_s": build,
        "compile_s": compile_s,
        "step_s": float(np.median(times)),
    }


if __name__ == "__main__":
    import json
    import sys

    print("parameters:", count_parameters())
    if "--time" in sys.argv:
        print(json.dumps(time_forecast_step(), indent=2))
