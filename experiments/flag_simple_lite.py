"""CPU-sized flag: a coarser sheet (~400 nodes), latent 64, 8 steps, short schedule."""

from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, lite_train_config


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="flag_simple_lite",
        task="cloth",
        data=DataConfig(
            path="data/flag_simple_lite",
            batch_size=1,
            generate_domain="flag",
            generate_train_trajectories=8,
            generate_valid_trajectories=2,
            generate_steps=200,
        ),
        model=ModelConfig(latent_size=64, num_message_passing_steps=8),
        train=lite_train_config(),
    )
