"""Per-trajectory partitions on built-in cylinder flow: every layout against one device.

    .venv/bin/meshsim generate cylinder_flow --out data/cf_meshes --trajectories 4 --steps 40
    .venv/bin/python experiments/benchmarks/per_mesh.py --data data/cf_meshes --steps 8

The built-in cylinder flow moves its cylinder per trajectory, so every trajectory
has its own mesh. This trains `experiments/cylinder_flow_lite.py` (latent 64, 8
message-passing steps, 16-frame bundles) on such a dataset for a few steps, on one
device and under graph parallelism and sequential partitions (8 simulated CPU
devices, set here before jax is imported), and prints one markdown table: per
layout the distinct meshes and their node counts, the host time to cut every mesh
once (`Placement.simulator`), the largest relative difference of the logged losses
from the one-device run's, the largest absolute difference of the final parameters,
and seconds per step (the simulated devices share this machine's cores: the
overhead of partitioning, not a speed-up).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from experiments.benchmarks.cpu_devices import simulate_cpu_devices  # noqa: E402

simulate_cpu_devices(8)  # before jax is imported

import jax  # noqa: E402
import numpy as np  # noqa: E402

from meshsim.config import apply_overrides, load_config  # noqa: E402
from meshsim.parallel.placement import make_placement  # noqa: E402
from meshsim.runs import run_training  # noqa: E402
from meshsim.runs.build import build_for_data, open_split  # noqa: E402
from meshsim.runs.train_inputs import distinct_meshes, trajectory_statics  # noqa: E402

LAYOUTS = {
    "one device": ["parallel.data=1"],
    "graph=2 × data=4": ["parallel.graph=2", "parallel.data=4"],
    "graph=8 (ppermute)": [
        "parallel.graph=8",
        "parallel.data=1",
        "parallel.halo_exchange=ppermute",
    ],
    "partitions=4": ["parallel.data=1", "parallel.partitions=4"],
}


def cut_seconds(config) -> tuple[float, list[int]]:
    """(host seconds to find and cut every distinct mesh, node count of each mesh)."""
    dataset = open_split(config, config.data.train_split)
    _, sim = build_for_data(config, dataset)
    placement = make_placement(config.parallel, batch_size=config.data.batch_size)
    t0 = time.perf_counter()
    catalog = distinct_meshes(trajectory_statics(dataset, sim.task), sim.task)
    placement.simulator(sim, catalog.meshes)
    seconds = time.perf_counter() - t0
    return seconds, [s.num_nodes(sim.task.node_set) for s, _ in catalog.meshes]


def records(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("loss") is not None]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a cylinder_flow dataset directory")
    parser.add_argument("--steps", type=int, default=8, help="training steps (2 statistics-only)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    base = [
        f"data.path={args.data}",
        f"data.batch_size={args.batch_size}",
        f"train.steps={args.steps}",
        "train.accumulate_steps=2",
        "train.log_every=1",
        "train.eval_every=0",
        f"train.checkpoint_every={args.steps}",
    ]
    root = tempfile.mkdtemp(prefix="per_mesh_")
    results = {}
    for name, sets in LAYOUTS.items():
        config = apply_overrides(
            load_config(str(ROOT / "experiments/cylinder_flow_lite.py")), base + sets
        )
        seconds, nodes = cut_seconds(config) if name != "one device" else (0.0, [])
        workdir = os.path.join(root, str(len(results)))
        state = run_training(config, workdir, progress=False)
        results[name] = (seconds, nodes, records(workdir), jax.tree_util.tree_leaves(state.params))
    _, _, ref_records, ref_params = results["one device"]
    ref_loss = [r["loss"] for r in ref_records]
    print(f"{jax.device_count()} {jax.devices()[0].platform} devices; data {args.data}\n")
    print("| layout | meshes (nodes) | cut s | loss rel. diff (max) | param abs. diff | s/step |")
    print("|---|---|---:|---:|---:|---:|")
    for name, (seconds, nodes, recs, params) in results.items():
        loss = [r["loss"] for r in recs]
        rel = max(abs(a - b) / abs(b) for a, b in zip(loss, ref_loss))
        par = max(
            float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(params, ref_params)
        )
        rate = np.median([r["steps_per_sec"] for r in recs[1:]] or [recs[0]["steps_per_sec"]])
        meshes = f"{len(nodes)} ({min(nodes)}–{max(nodes)})" if nodes else "–"
        print(f"| {name} | {meshes} | {seconds:.2f} | {rel:.1e} | {par:.1e} | {1 / rate:.2f} |")


if __name__ == "__main__":
    main()
