"""CPU-sized cylinder flow: the demo's configuration.

A smaller network (latent 64, 8 steps) on built-in LBM data with a coarser mesh
(resolution 0.7: ~960 nodes instead of ~1.9k), predicting 16 frames per call
(temporal bundling), one-step loss on the 16 slices with the paper's noise (σ 0.02),
3000 steps (~6.5 min at 7.7 steps/s on 2 idle cores). The learning-rate schedule is
compressed to the short run (×0.1 over 4k steps).

Bundling is what keeps the 299-step rollouts near persistence or below
(experiments/results/stability.md, 180 s of training per recipe): one frame per call
drifts to 1.17 RMSE over the full rollout (persistence 0.28), K=2/8/16 reach
1.06/0.50/0.30, pushforward and unrolled losses without bundling 0.49-1.44. K=16 and
K=8 with pushforward k=2 tie there (0.298 and 0.297); K=16 is the simpler recipe,
16 % faster per step and better at h ≤ 50. With K=16 a rollout is 19 network calls,
and the full demo (3000 steps) measured 0.0174 / 0.0588 / 0.141 / 0.265 at 1 / 10 /
50 / all against 0.045 / 0.228 / 0.283 / 0.281: the last margin is thin, and the
study's shorter run did not have it.
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
        name="cylinder_flow_lite",
        task="cfd",
        data=DataConfig(
            path="data/cylinder_flow_lite",
            batch_size=1,
            generate_train_trajectories=16,
            generate_valid_trajectories=4,
            generate_steps=300,
            generate_mesh_resolution=0.7,
        ),
        model=ModelConfig(latent_size=64, num_message_passing_steps=8, bundle_steps=16),
        train=lite_train_config(),
    )
