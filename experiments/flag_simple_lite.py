"""CPU-sized flag: a coarser sheet (~400 nodes), latent 64, 8 steps, short schedule."""

from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from meshsim.train import OptimizerConfig


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
        train=TrainConfig(
            steps=3000,
            accumulate_steps=100,
            normalizer_max_accumulations=3000,
            log_every=50,
            eval_every=0,
            checkpoint_every=500,
            optimizer=OptimizerConfig(learning_rate=1e-3, decay_steps=4000, min_learning_rate=1e-5),
        ),
    )
