"""MeshGraphNets deforming_plate: an elastic plate pushed by an actuator, with world edges.

The paper's network (latent 128, 15 message-passing steps) on a converted
deforming_plate dataset (`meshsim convert`), or on the built-in plate
(`meshsim generate deforming_plate`, scikit-fem). Outputs: the plate's position
change and its von Mises stress; noise σ = 0.003 on positions, γ = 1.
"""

from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="deforming_plate",
        task="deforming_plate",
        data=DataConfig(
            path="data/deforming_plate",
            batch_size=1,
            generate_domain="deforming_plate",
            generate_train_trajectories=1000,
            generate_valid_trajectories=100,
            generate_steps=400,
        ),
        model=ModelConfig(),
        train=TrainConfig(steps=10_000_000, eval_every=100_000, checkpoint_every=20_000),
    )
