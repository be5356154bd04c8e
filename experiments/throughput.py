"""Training and rollout throughput of experiment configs on a real dataset.

    python experiments/throughput.py --data runs/demo/data \
        --config experiments/cylinder_flow_lite.py --config experiments/cylinder_flow.py

For each config: median training steps/s over `--steps` steps after a warm-up
(the compiled step of `meshsim.training.step`, batches from the real pipeline) and
rollout steps/s of a chunked `rollout_trajectory` (compilation excluded: the
same rollout is run once before timing). Prints a markdown table and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax

from meshsim.config import apply_overrides, load_config
from meshsim.data import open_dataset
from meshsim.rollout import rollout_trajectory
from meshsim.runs import build_simulator
from meshsim.training.batches import dataset_budget, iter_batches
from meshsim.training.step import init_train_state, make_optimizer, make_train_step


def measure(config_path: str, data: str, steps: int, rollout_steps: int) -> dict:
    config = apply_overrides(load_config(config_path), [f"data.path={data}"])
    sim, ds = build_simulator(config), open_dataset(data, config.data.train_split)
    task, tx = sim.task, make_optimizer(config.train.optimizer)
    trajs = [ds[i] for i in range(min(4, len(ds)))]
    budget = dataset_budget(trajs, task)
    batches = iter_batches(trajs, task, batch_size=config.data.batch_size, budget=budget)
    state = init_train_state(sim, tx, jax.random.key(0))
    train_step = make_train_step(sim, tx)
    t0 = time.perf_counter()
    state, m = train_step(state, next(batches), jax.random.key(1))
    m["loss"].block_until_ready()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(steps):
        batch = next(batches)
        t0 = time.perf_counter()
        state, m = train_step(state, batch, jax.random.key(i))
        m["loss"].block_until_ready()
        times.append(time.perf_counter() - t0)
    traj = trajs[0]
    args = (sim, state.params, state.normalizers, traj)
    rollout_trajectory(*args, steps=rollout_steps, chunk=rollout_steps)  # compile
    t0 = time.perf_counter()
    rollout_trajectory(*args, steps=rollout_steps, chunk=rollout_steps)
    rollout_s = time.perf_counter() - t0
    return {
        "config": config_path,
        "nodes": int(traj["mesh_pos"].shape[1]),
        "latent": config.model.latent_size,
        "mp_steps": config.model.num_message_passing_steps,
        "train_compile_s": round(compile_s, 2),
        "train_steps_per_s": round(1.0 / statistics.median(times), 2),
        "rollout_steps_per_s": round(rollout_steps / rollout_s, 1),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rollout-steps", type=int, default=100)
    args = parser.parse_args()
    rows = [measure(c, args.data, args.steps, args.rollout_steps) for c in args.config]
    print("| config | nodes | latent×steps | train steps/s | rollout steps/s | compile s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['nodes']} | {r['latent']}×{r['mp_steps']} | "
            f"{r['train_steps_per_s']} | {r['rollout_steps_per_s']} | {r['train_compile_s']} |"
        )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
