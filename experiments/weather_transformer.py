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

from meshsim.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
    TaskConfig,
    TrainConfig,
)

# `meshsim demo --quick` (the test suite's smoke run): tiny data, network and schedule.
QUICK_OVERRIDES = [
    "data.generate_train_trajectories=2",
    "data.generate_valid_trajectories=1",
    "data.generate_steps=16",
    "data.generate_mesh_resolution=0.5",
    "data.batch_size=2",
    "task.options.mesh_splits=1",
    "model.latent_size=8",
    "model.num_message_passing_steps=1",
    "train.steps=6",
    "train.unroll_steps=2",
    "train.unroll_schedule=3",
    "train.checkpoint_every=3",
    "train.log_every=3",
]


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="weather_transformer",
        task=TaskConfig(name="weather", options={"mesh_splits": 3}),
        data=DataConfig(
            path="data/shallow_water",
            batch_size=2,
            generate_domain="shallow_water",
            generate_train_trajectories=8,
            generate_valid_trajectories=2,
            generate_steps=40,  # 10 days of 6-hourly frames per trajectory
        ),
        model=ModelConfig(
            name="graphcast",
            latent_size=64,
            num_message_passing_steps=4,
            block="transformer",
            num_heads=4,
        ),
        train=TrainConfig(
            steps=1500,
            accumulate_steps=0,  # fixed dataset statistics: nothing to accumulate
            log_every=50,
            eval_every=0,
            checkpoint_every=500,
            unroll_steps=3,
            unroll_schedule=600,
            optimizer=OptimizerConfig(learning_rate=1e-3, decay_steps=1500, min_learning_rate=1e-5),
        ),
    )
