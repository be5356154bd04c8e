"""MeshGraphNets cylinder_flow, paper configuration (Pfaff et al. 2021, Table 4 / App. A).

Latent 128, 15 message-passing steps, batch of 1 mesh, noise σ = 0.02 (γ = 1),
1000 statistics-only steps, Adam 1e-4 → ×0.1 over 5M steps. Point `data.path`
at a converted MeshGraphNets dataset (`meshsim convert`) or a generated one.
"""

from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="cylinder_flow",
        task="cfd",
        data=DataConfig(
            path="data/cylinder_flow",
            batch_size=1,
            generate_train_trajectories=1000,
            generate_valid_trajectories=100,
            generate_steps=600,
        ),
        model=ModelConfig(),
        train=TrainConfig(steps=10_000_000, eval_every=100_000, checkpoint_every=20_000),
    )
