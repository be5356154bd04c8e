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

import dataclasses
import os

from meshsim.config import ExperimentConfig, load_config
from meshsim.runs.demo import quick_overrides

# The preset this one varies: everything but the processor block is its own.
BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cylinder_flow_lite.py")

# `meshsim demo --quick` (the test suite's smoke run): the base preset's sizes.
QUICK_OVERRIDES = quick_overrides(BASE)


def get_config() -> ExperimentConfig:
    base = load_config(BASE)
    model = dataclasses.replace(base.model, block="transformer", num_heads=4)
    return dataclasses.replace(base, name="cylinder_flow_transformer_lite", model=model)
