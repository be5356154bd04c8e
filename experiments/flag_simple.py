"""MeshGraphNets flag_simple, paper configuration (Pfaff et al. 2021).

Latent 128, 15 steps, noise σ = 0.003 (γ = 0.1), second-order integration.
"""

from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="flag_simple",
        task="cloth",
        data=DataConfig(
            path="data/flag_simple",
            batch_size=1,
            generate_domain="flag",
            generate_train_trajectories=1000,
            generate_valid_trajectories=100,
            generate_steps=401,
        ),
        model=ModelConfig(),
        train=TrainConfig(steps=10_000_000, eval_every=100_000, checkpoint_every=20_000),
    )
