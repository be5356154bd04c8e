"""MeshGraphNets flag_dynamic: a flag in wind that folds onto itself, with world edges
for self-contact (a converted flag_dynamic dataset; `meshsim convert`).

Latent 128, 15 message-passing steps, second order, noise σ = 0.003 (γ = 0.1).
"""

from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, TaskConfig, TrainConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="flag_dynamic",
        task=TaskConfig(name="flag_dynamic", noise_std=3e-3, noise_gamma=0.1),
        data=DataConfig(path="data/flag_dynamic", batch_size=1),
        model=ModelConfig(),
        train=TrainConfig(steps=10_000_000, eval_every=100_000, checkpoint_every=20_000),
    )
