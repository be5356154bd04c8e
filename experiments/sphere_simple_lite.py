"""CPU-sized cloth on a sphere on the built-in data (`meshsim generate cloth_sphere`:
the mass-spring cloth falling onto a sphere, with friction): the contact-cloth demo
(`make demo-sphere`).

MeshGraphNets' sphere_simple recipe (world edges to the obstacle, second order, noise
σ = 0.001, γ = 0.1) at a CPU size: latent 64, 8 message-passing steps, 2000 steps.
Scored against persistence on position RMSE, with nodes inside the sphere counted.
"""

import dataclasses

from meshsim.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
    TaskConfig,
    lite_train_config,
)

# `meshsim demo --quick` (the test suite's smoke run): a few short trajectories and a
# tiny network.
QUICK_OVERRIDES = [
    "data.generate_train_trajectories=2",
    "data.generate_valid_trajectories=1",
    "data.generate_steps=20",
    "data.generate_mesh_resolution=0.5",
    "model.latent_size=16",
    "model.num_message_passing_steps=2",
    "train.steps=20",
    "train.accumulate_steps=5",
    "train.checkpoint_every=10",
    "train.log_every=5",
]


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="sphere_simple_lite",
        task=TaskConfig(name="sphere_simple", noise_std=1e-3, noise_gamma=0.1),
        data=DataConfig(
            path="data/cloth_sphere_lite",
            batch_size=1,
            generate_domain="cloth_sphere",
            generate_train_trajectories=8,
            generate_valid_trajectories=2,
            generate_steps=100,
        ),
        model=ModelConfig(latent_size=64, num_message_passing_steps=8),
        train=dataclasses.replace(
            lite_train_config(),
            steps=2000,
            optimizer=OptimizerConfig(learning_rate=1e-3, decay_steps=2500, min_learning_rate=1e-5),
        ),
    )
