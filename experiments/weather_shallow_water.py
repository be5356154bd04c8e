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
    TrainConfig,
    WeatherConfig,
)


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="weather_shallow_water",
        task="weather",
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
            mlp_hidden_layers=1,
            activation="swish",
        ),
        weather=WeatherConfig(mesh_splits=3),
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
