"""Graph-parallel scaling on simulated CPU devices: halo sizes and step times per part count.

    .venv/bin/python experiments/benchmarks/scaling.py            # default: a few minutes
    .venv/bin/python experiments/benchmarks/scaling.py --halo-sizes 16k,128k \\
        --strong-size 16k --weak-per-part 4k --latent 128 --steps 15 --repeats 5

Prints three markdown tables:

1. **Halo** of the channel mesh (`meshsim.meshes.channel_mesh`, cylinder_flow
   geometry) at each size and K = 1, 2, 4, 8 parts (recursive coordinate
   bisection): halo nodes / owned nodes, the largest part's halo, cut edges, and
   the bytes one halo exchange moves at latent 128 in float32 (ppermute: each halo
   latent once; all_gather: every part receives every padded send buffer).
2. **Strong scaling**: one mesh, forward + backward (value and gradient of the
   masked loss w.r.t. the parameters) per step for K = 1, 2, 4, 8, three ways:
   `shard_map` with the all_gather exchange, with the ppermute exchange, and GSPMD
   (`jit` of the unpartitioned network on the blocked layout, node and edge
   arrays split over the devices by `NamedSharding`; XLA inserts the
   communication). The first row is the unpartitioned network on one device.
3. **Weak scaling**: a fixed number of nodes per part, K = 1, 2, 4, 8 (shard_map).

Eight CPU devices are simulated (`XLA_FLAGS=--xla_force_host_platform_device_count=8`,
set here before jax is imported) and share this machine's cores: times measure the
*overhead* of partitioning (halo exchange, padding, collectives, per-device
dispatch), not a speed-up, which needs real devices. Implementations are timed
round-robin so that load bursts on the shared machine hit all of them alike; CPU
seconds (all threads) are printed beside wall seconds.

`--memory` and `--largest` hand over to `scaling_memory.py` (a fresh process with the
caller's platform and flags, its options after them): memory (XLA temp bytes, peak
RSS) and time per step against sequential parts P and graph devices D, and the largest
mesh whose gradient step fits a memory budget, with and without partitions.

    .venv/bin/python experiments/benchmarks/scaling.py --memory --rows 128k:1:1:3,128k:8:1:3
    .venv/bin/python experiments/benchmarks/scaling.py --largest --parts 8 --budget-gib 2
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

# The caller's settings, for the modes that run in a fresh process (`--memory`,
# `--largest`: one device or D of them, on whatever platform the caller chose).
CALLER_ENV = {k: os.environ.get(k) for k in ("XLA_FLAGS", "JAX_PLATFORMS")}
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `experiments.benchmarks` importable
    sys.path.insert(0, str(ROOT))

from experiments.benchmarks.cpu_devices import simulate_cpu_devices  # noqa: E402

simulate_cpu_devices(8)  # before jax is imported

import jax  # noqa: E402
import numpy as np  # noqa: E402

import meshsim  # noqa: E402
from experiments.benchmarks.meshes import channel_problem, parse_size  # noqa: E402
from experiments.benchmarks.timing import load, round_robin  # noqa: E402
from meshsim.evaluation.metrics import masked_mse  # noqa: E402
from meshsim.parallel import graph_parallel as gp  # noqa: E402
from meshsim.parallel import partition_graph, partition_nodes, scatter_fields  # noqa: E402
from meshsim.parallel import sharding as sh  # noqa: E402

PARTS = (1, 2, 4, 8)
HALO_LATENT = 128  # MeshGraphNets' latent width, for the bytes columns
MIB = 2**20


# --------------------------------------------------------------------------- halo table


def halo_table(sizes: list[str], parts=PARTS) -> list[str]:
    rows = [
        "| mesh nodes | K | nodes/part (max) | halo/owned | largest part halo | cut edges | "
        "ppermute MiB/exchange | all_gather MiB/exchange | partition s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        graph, pos, _, _ = channel_problem(parse_size(size))
        for k in parts:
            t0 = time.perf_counter()
            stats = partition_graph(graph, partition_nodes(pos, k), k).stats()
            seconds = time.perf_counter() - t0
            owned, halo = stats.owned["mesh"], stats.halo["mesh"]
            worst = max(h / max(o, 1) for h, o in zip(halo, owned))
            rows.append(
                f"| {graph.num_nodes('mesh')} | {k} | {max(owned)} | "
                f"{stats.halo_fraction():.2%} | {worst:.2%} | {stats.cut_edges['mesh']} | "
                f"{stats.halo_bytes(HALO_LATENT) / MIB:.2f} | "
                f"{stats.all_gather_bytes(HALO_LATENT) / MIB:.2f} | {seconds:.2f} |"
            )
    return rows


# --------------------------------------------------------------------------- step times

COLLECTIVES = ("all-gather", "all-reduce", "collective-permute", "all-to-all", "reduce-scatter")
_BYTES = {"f32": 4, "s32": 4, "u32": 4, "pred": 1, "bf16": 2, "f16": 2, "f64": 8, "s64": 8}


def collective_mib(hlo: str) -> float:
    """MiB of the results of the collectives in one device's compiled program text.

    Static: an op inside a loop (the scanned message-passing steps) counts once, so
    this compares implementations, it is not the traffic of a step.
    """
    total = 0
    ops = "|".join(COLLECTIVES)
    for match in re.finditer(rf"=\s*([^=\n]*?)\s(?:{ops})(?:-start)?\(", hlo):
        for dtype, dims in re.findall(r"(\w+)\[([\d,]*)\]", match.group(1)):
            size = math.prod(int(d) for d in dims.split(",") if d)
            total += size * _BYTES.get(dtype, 4)
    return total / MIB


def _blocking(fn, *args):
    return lambda: jax.block_until_ready(fn(*args))


def step_fns(model, params, problem, k: int, methods: tuple[str, ...]) -> dict:
    """{name: (blocking call, compile s, collective MiB)} of compiled value_and_grad steps
    on `problem` with K parts."""
    graph, pos, target, mask = problem
    mesh = sh.make_mesh(data=1, graph=k)
    pg = partition_graph(graph, partition_nodes(pos, k), k)
    t, w = scatter_fields(pg, target), scatter_fields(pg, mask)
    fns = {}
    for method in methods:
        if method == "gspmd":
            blocked, rows = gp.blocked_graph(graph, pg.parts, k)
            blocked = jax.device_put(blocked, sh.graph_shardings(blocked, mesh))
            n = blocked.num_nodes("mesh")
            bt, bw = np.zeros((n, 2), np.float32), np.zeros(n, bool)
            bt[rows["mesh"]], bw[rows["mesh"]] = target, mask
            split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(sh.GRAPH_AXIS))
            bt, bw = jax.device_put((bt, bw), split)

            def loss(p, g, t, w):
                return masked_mse(model.apply(p, g), t, w, feature_reduction="sum")

            step = jax.jit(jax.value_and_grad(loss))
            args = (params, blocked, bt, bw)
        else:

            def loss(p, pg, t, w, method=method):
                return gp.partitioned_loss(model, p, pg, mesh, t, w, method=method)

            step = jax.jit(jax.value_and_grad(loss))
            args = (params, pg, t, w)
        t0 = time.perf_counter()
        compiled = step.lower(*args).compile()
        jax.block_until_ready(compiled(*args))  # warm up
        seconds = time.perf_counter() - t0
        fns[method] = (_blocking(compiled, *args), seconds, collective_mib(compiled.as_text()))
    return fns


def timing_table(title, problems, model, params, methods, repeats, baseline=None) -> list[str]:
    """One row per K: median wall (CPU) seconds and collective MiB of each method, and
    compile seconds."""
    head = " | ".join(f"{m} s (cpu s) · MiB" for m in methods)
    rows = [
        f"**{title}**",
        "",
        f"| K | mesh nodes | nodes/part | {head} | compile s |",
        "|---:|---:|---:|" + "---:|" * (len(methods) + 1),
    ]
    if baseline is not None:
        graph, _, target, mask = baseline

        def loss(p, g):
            return masked_mse(model.apply(p, g), target, mask, feature_reduction="sum")

        step = jax.jit(jax.value_and_grad(loss))
        jax.block_until_ready(step(params, graph))
        result = round_robin({"one": _blocking(step, params, graph)}, repeats)["one"]
        cells = f"{result['median_s']:.3f} ({result['cpu_median_s']:.2f})"
        n = graph.num_nodes("mesh")
        rows.append(f"| 1 device, unpartitioned | {n} | {n} | {cells} |" + " |" * len(methods))
    for k, problem in problems:
        fns = step_fns(model, params, problem, k, methods)
        result = round_robin({m: f for m, (f, _, _) in fns.items()}, repeats)
        n = problem[0].num_nodes("mesh")
        cells = " | ".join(
            f"{result[m]['median_s']:.3f} ({result[m]['cpu_median_s']:.2f}) · {fns[m][2]:.2f}"
            for m in methods
        )
        compile_s = " / ".join(f"{c:.0f}" for _, c, _ in fns.values())
        rows.append(f"| {k} | {n} | {math.ceil(n / k)} | {cells} | {compile_s} |")
    return rows


def memory_modes(argv: list[str]) -> None:
    """`scaling_memory.py` with `argv`, in a fresh process with the caller's environment."""
    env = dict(os.environ)
    for key, value in CALLER_ENV.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    script = Path(__file__).with_name("scaling_memory.py")
    code = subprocess.run([sys.executable, str(script), *argv], env=env).returncode
    if code:
        raise SystemExit(code)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--memory" in argv or "--largest" in argv:
        memory_modes(argv)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for mode in ("--memory", "--largest"):  # listed for --help; handled above
        parser.add_argument(mode, action="store_true", help="see scaling_memory.py --help")
    parser.add_argument("--halo-sizes", default="16k,128k", help="meshes of the halo table")
    parser.add_argument("--strong-size", default="8k", help="mesh of the strong-scaling table")
    parser.add_argument("--parts", default="1,2,4,8", help="partition counts K")
    parser.add_argument("--weak-per-part", default="1k", help="nodes per part; 0: no weak table")
    parser.add_argument("--latent", type=int, default=32, help="latent width of the network")
    parser.add_argument("--steps", type=int, default=5, help="message-passing steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per cell")
    parser.add_argument("--skip-timing", action="store_true", help="halo table only")
    args = parser.parse_args(argv)

    print(f"# Graph-parallel scaling ({jax.device_count()} simulated CPU devices, ", end="")
    print(f"{os.cpu_count()} cores, load {load()})\n")
    parts = tuple(int(k) for k in args.parts.split(","))
    print("\n".join(halo_table([s for s in args.halo_sizes.split(",") if s], parts)))
    if args.skip_timing:
        return
    model = meshsim.MeshGraphNet(
        output_size=2, latent_size=args.latent, num_message_passing_steps=args.steps
    )
    strong = channel_problem(parse_size(args.strong_size))
    params = jax.jit(model.init)(jax.random.key(0), strong[0])
    print(f"\nMeshGraphNet latent {args.latent}, {args.steps} steps, remat on (CPU default): ")
    print("median wall seconds per forward+backward step, CPU seconds in brackets, and MiB")
    print("of collective results in the compiled program (static: a loop body counts once).\n")
    methods = ("all_gather", "ppermute", "gspmd")
    problems = [(k, strong) for k in parts]
    title = f"Strong scaling: one {strong[0].num_nodes('mesh')}-node mesh"
    rows = timing_table(title, problems, model, params, methods, args.repeats, baseline=strong)
    print("\n".join(rows) + "\n")
    print(f"load after strong scaling: {load()}\n")
    per_part = parse_size(args.weak_per_part)
    if not per_part:
        return
    problems = [(k, channel_problem(per_part * k)) for k in parts]
    title = f"Weak scaling: ~{per_part} nodes per part"
    rows = timing_table(title, problems, model, params, ("all_gather", "ppermute"), args.repeats)
    print("\n".join(rows))
    print(f"\nload after weak scaling: {load()}")


if __name__ == "__main__":
    main()
