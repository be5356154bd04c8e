"""CPU-sized GNS on the built-in 2-D dam break (weakly-compressible SPH, `meshsim generate
dam_break`): the particles demo (`make demo-particles`).

The GNS recipe of Sanchez-Gonzalez et al. (2020) at a CPU size: 5 input velocities,
edges to every particle within the dataset's connectivity radius rebuilt at every
step, random-walk input noise, a MeshGraphNet-style processor at a CPU size (latent 32,
3 message-passing steps instead of 128 and 10), 2000 steps. Scored against
constant-velocity extrapolation at MSE-5, MSE-20 and the kinetic-energy MSE, with wall
penetrations counted.
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
    "data.generate_steps=30",
    "data.generate_mesh_resolution=0.5",
    "model.latent_size=16",
    "model.num_message_passing_steps=2",
    "train.steps=40",
    "train.accumulate_steps=10",
    "train.checkpoint_every=20",
    "train.log_every=10",
]


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="particles_dam_break",
        task=TaskConfig(name="particles", noise_std=3e-4),
        data=DataConfig(
            path="data/dam_break",
            batch_size=1,
            generate_domain="dam_break",
            generate_train_trajectories=8,
            generate_valid_trajectories=2,
            generate_steps=100,
        ),
        model=ModelConfig(latent_size=32, num_message_passing_steps=3),
        train=dataclasses.replace(
            lite_train_config(),
            steps=2000,
            optimizer=OptimizerConfig(learning_rate=1e-3, decay_steps=2500, min_learning_rate=1e-5),
        ),
    )
