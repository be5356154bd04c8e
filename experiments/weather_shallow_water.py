"""CPU-sized GraphCast-style forecaster on built-in shallow-water data (`make demo-weather`).

Data: `meshsim generate shallow_water` — T42 barotropic-instability jets regridded to
5.625° (33 × 64 with poles), 6-hourly, three channels (u, v, geopotential at one
nominal level). Graph: a 3-split multimesh (642 vertices, 5,100 edges). Network:
GraphCast's stages at latent 64 with 4 mesh steps, 1,500 steps of 2 windows: 600
one-step, then the horizon grows to 2 and 3 steps with gradients through the
rollout (GraphCast's autoregressive fine-tuning).
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
        name="weather_shallow_water",
        task=TaskConfig(name="weather", options={"mesh_splits": 3}),
        data=DataConfig(
            path="data/shallow_water",
            batch_size=2,
            generate_domain="shallow_water",
            generate_train_trajectories=8,
            generate_valid_trajectories=2,
            generate_steps=40,  # 10 days of 6-hourly frames per trajectory
        ),
        # GraphCast's structure (one hidden layer, swish), smaller and shallower
        model=ModelConfig(name="graphcast", latent_size=64, num_message_passing_steps=4),
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
