"""MeshGraphNets sphere_simple: cloth falling on a moving sphere, with world edges.

The paper's network (latent 128, 15 message-passing steps) on a converted
sphere_simple dataset (`meshsim convert`), or on the built-in cloth-on-sphere data
(`meshsim generate cloth_sphere`). Second order; noise σ = 0.001, γ = 0.1.
"""

from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="sphere_simple",
        task="sphere_simple",
        data=DataConfig(
            path="data/sphere_simple",
            batch_size=1,
            generate_domain="cloth_sphere",
            generate_train_trajectories=1000,
            generate_valid_trajectories=100,
            generate_steps=500,
        ),
        model=ModelConfig(),
        train=TrainConfig(steps=10_000_000, eval_every=100_000, checkpoint_every=20_000),
    )
