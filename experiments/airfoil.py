"""MeshGraphNets airfoil: compressible flow around a wing section (SU2 data, converted
with `meshsim convert`; there is no built-in compressible solver).

Velocity and density advance by predicted changes, pressure is predicted as a value;
noise σ = 10 on velocity and 0.01 on density, γ = 1; latent 128, 15 steps.
"""

from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="airfoil",
        task="airfoil",
        data=DataConfig(path="data/airfoil", batch_size=1),
        model=ModelConfig(),
        train=TrainConfig(steps=10_000_000, eval_every=100_000, checkpoint_every=20_000),
    )
