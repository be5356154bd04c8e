"""Peak memory of a training step against the number of sequential partitions P.

    .venv/bin/python experiments/benchmarks/sequential_memory.py --nodes 150000 \\
        --latent 32 --steps 8 --parts 1,2,4,8
    .venv/bin/python experiments/benchmarks/sequential_memory.py --nodes 1000000 \\
        --latent 32 --steps 4 --parts 8 --train-steps 3

One fresh subprocess per P (so peak RSS belongs to that P alone) builds a channel
mesh with a cylinder (`meshsim.meshes.channel_mesh`, cylinder_flow features: 11 per
node, 3 per edge) of about `--nodes` nodes and a MeshGraphNet (remat on, as on every
CPU run), and compiles one gradient step: value and gradient of the masked MSE
w.r.t. the parameters, the whole graph for P = 1, `meshsim.parallel.sequential` with
P parts otherwise. The graph and the parts are jit arguments, not constants. It
reports

* XLA's compiled memory analysis of the step (`compile().memory_analysis()`): temp
  bytes (activations and work buffers: what P changes), argument and output bytes;
* the process's peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) after the
  step ran, and its RSS before compiling (mesh, graph, parts, jax itself); and the
  peak of compiling and running alone: the kernel's high-water mark (VmHWM) is reset
  after the set-up (`/proc/self/clear_refs`) and read at the end (generating a large
  mesh can peak higher than the steps do);
* seconds per step (median of `--repeats`), the loss and the gradient norm (equal
  for every P up to float rounding);
* the theoretical saved activations of remat'd message passing:
  steps · latent · 4 B · (nodes + edges) of the largest part (the whole graph for
  P = 1): with remat every block keeps only its input latents for the backward pass.

With `--train-steps n` it also runs n Adam steps (gradient + update, the state
donated) and reports the seconds and loss of each (the first includes compiling).
`--compile-only` reports XLA's analysis without running anything (for a P whose
step would not fit). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MIB = 2**20


def _rss_mib() -> float:
    """Current resident set size of this process, MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def _reset_peak_rss() -> bool:
    """Resets the kernel's RSS high-water mark (VmHWM) of this process; False where
    Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    """VmHWM: the peak RSS since the last `_reset_peak_rss` (or the start), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(args) -> dict:
    """One P in this process: the numbers of the module docstring."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from experiments.benchmarks.meshes import channel_problem
    from meshsim.evaluation.metrics import masked_mse
    from meshsim.models import MeshGraphNet
    from meshsim.parallel.sequential import SequentialPartition, make_sequential_partition

    t0 = time.perf_counter()
    graph, pos, target, mask = channel_problem(args.nodes)
    n, e = graph.num_nodes("mesh"), int(graph.edge_sets["mesh"].senders.shape[0])
    model = MeshGraphNet(
        output_size=2,
        latent_size=args.latent,
        num_message_passing_steps=args.steps,
        mlp_hidden_layers=2,
        remat=True,
    )
    params = model.init(jax.random.key(0), graph)
    p = args.one
    if p > 1:
        parts = make_sequential_partition(model, graph, {"mesh": pos}, p).parts
        sizes = parts.sizes()
        part_nodes, part_edges = max(sizes["nodes"]), max(sizes["edges"])
    else:
        parts, part_nodes, part_edges = None, n, e
    setup_s = time.perf_counter() - t0

    def loss(params, graph, parts):
        if parts is None:
            out = model.apply(params, graph)
        else:
            out = SequentialPartition(parts).apply(model, params, graph)
        return masked_mse(out, target, mask, feature_reduction="sum")

    grad = jax.jit(jax.value_and_grad(loss))
    graph, parts = jax.device_put((graph, parts))
    rss_before = _rss_mib()
    setup_peak = _peak_rss_mib()
    reset = _reset_peak_rss()
    t0 = time.perf_counter()
    compiled = grad.lower(params, graph, parts).compile()
    compile_s = time.perf_counter() - t0
    memory = compiled.memory_analysis()
    times = [float("nan")]
    value, norm = float("nan"), float("nan")
    for _ in range(0 if args.compile_only else args.repeats):
        t0 = time.perf_counter()
        value, g = jax.block_until_ready(compiled(params, graph, parts))
        times.append(time.perf_counter() - t0)
        norm = float(jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(g))))
        del g
    train_times = []
    if args.train_steps and not args.compile_only:
        tx = optax.adam(1e-4)

        def update(params, opt, graph, parts):
            value, g = jax.value_and_grad(loss)(params, graph, parts)
            upd, opt = tx.update(g, opt, params)
            return optax.apply_updates(params, upd), opt, value

        step = jax.jit(update, donate_argnums=(0, 1))
        state = (params, tx.init(params))
        for _ in range(args.train_steps):
            t0 = time.perf_counter()
            *state, value_t = jax.block_until_ready(step(*state, graph, parts))
            train_times.append((time.perf_counter() - t0, float(value_t)))
    theory = args.steps * args.latent * 4 * (part_nodes + part_edges)
    return {
        "parts": p,
        "nodes": n,
        "edges": e,
        "part_nodes": part_nodes,
        "part_edges": part_edges,
        "setup_s": setup_s,
        "compile_s": compile_s,
        "temp_mib": memory.temp_size_in_bytes / MIB,
        "argument_mib": memory.argument_size_in_bytes / MIB,
        "output_mib": memory.output_size_in_bytes / MIB,
        "rss_before_mib": rss_before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "setup_peak_rss_mib": setup_peak,
        "step_peak_rss_mib": _peak_rss_mib() if reset else float("nan"),
        "step_s": float(np.median(times[-args.repeats :])),
        "loss": float(value),
        "grad_norm": norm,
        "theory_mib": theory / MIB,
        "train": train_times,
    }


def table(results: list[dict]) -> list[str]:
    rows = [
        "| P | nodes | edges | largest part nodes / edges | XLA temp MiB | temp B/node | "
        "theory MiB | theory B/node | RSS before MiB | peak RSS MiB | steps' peak RSS MiB | "
        "step s | compile s | loss | grad norm |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        n = r["nodes"]
        rows.append(
            f"| {r['parts']} | {n} | {r['edges']} | {r['part_nodes']} / {r['part_edges']} | "
            f"{r['temp_mib']:.0f} | {r['temp_mib'] * MIB / n:.0f} | {r['theory_mib']:.0f} | "
            f"{r['theory_mib'] * MIB / n:.0f} | {r['rss_before_mib']:.0f} | "
            f"{r['peak_rss_mib']:.0f} | {r['step_peak_rss_mib']:.0f} | "
            f"{r['step_s']:.2f} | {r['compile_s']:.1f} | "
            f"{r['loss']:.6g} | {r['grad_norm']:.6g} |"
        )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=150_000)
    parser.add_argument("--latent", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="message-passing steps")
    parser.add_argument("--parts", default="1,2,4,8", help="comma-separated P values")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=0)
    parser.add_argument(
        "--compile-only", action="store_true", help="XLA's memory analysis only, no step run"
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args)))
        return
    results = []
    for p in (int(x) for x in args.parts.split(",")):
        cmd = [sys.executable, __file__, *(argv or sys.argv[1:]), "--one", str(p)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print("\n".join(table(results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
