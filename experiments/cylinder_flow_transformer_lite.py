"""CPU-sized cylinder flow with the graph-transformer block: `cylinder_flow_lite.py`
with `model.block=transformer`.

Everything but the processor block is the lite demo's (the same generated data in
`data/cylinder_flow_lite`, latent 64, 8 steps, 16 frames per call, 3000 steps), so
the two presets compare the blocks. Each step of the processor is a
`meshsim.TransformerBlock`: the MeshGraphNets edge MLP, then 4-head attention of
every node over its mesh neighbours (head width 16, scores biased by the edge
latent), then a gated MLP (twice the latent wide), with LayerNorm before each. The
wider receptive field of the transformer's seed paper is a task option, off here:
`--set task.options.k_hop=2` (pairs within 2 hops), `task.options.dilation=2`
(pairs 2 and 4 hops apart), `task.options.global_nodes=4` (4 global nodes).
"""

from meshsim.config import DataConfig, ExperimentConfig, ModelConfig, lite_train_config

# `meshsim demo --quick` (the test suite's smoke run): a coarse mesh, short
# trajectories, a tiny network and schedule.
QUICK_OVERRIDES = [
    "data.generate_train_trajectories=3",
    "data.generate_valid_trajectories=1",
    "data.generate_steps=40",
    "model.latent_size=16",
    "model.num_message_passing_steps=2",
    "train.steps=60",
    "train.accumulate_steps=10",
    "train.checkpoint_every=30",
    "train.log_every=10",
    "data.generate_mesh_resolution=0.4",
]


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="cylinder_flow_transformer_lite",
        task="cfd",
        data=DataConfig(
            path="data/cylinder_flow_lite",
            batch_size=1,
            generate_train_trajectories=16,
            generate_valid_trajectories=4,
            generate_steps=300,
            generate_mesh_resolution=0.7,
        ),
        model=ModelConfig(
            latent_size=64,
            num_message_passing_steps=8,
            bundle_steps=16,
            block="transformer",
            num_heads=4,
        ),
        train=lite_train_config(),
    )
