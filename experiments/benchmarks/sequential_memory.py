"""Peak memory of a training step against sequential partitions P or graph devices D.

    .venv/bin/python experiments/benchmarks/sequential_memory.py --nodes 150000 \\
        --latent 32 --steps 8 --parts 1,2,4,8
    .venv/bin/python experiments/benchmarks/sequential_memory.py --nodes 1000000 \\
        --latent 32 --steps 4 --parts 8 --train-steps 3
    .venv/bin/python experiments/benchmarks/sequential_memory.py --nodes 128000 \\
        --latent 16 --steps 4 --parts 1 --devices 8

One fresh subprocess per P (so peak RSS belongs to that P alone) builds a channel
mesh with a cylinder (`meshsim.meshes.channel_mesh`, cylinder_flow features: 11 per
node, 3 per edge) of about `--nodes` nodes and a MeshGraphNet (remat on, as on every
CPU run), and compiles one gradient step: value and gradient of the masked MSE
w.r.t. the parameters, the whole graph for P = 1, `meshsim.parallel.sequential` with
P parts otherwise; with `--devices D` > 1 (P = 1) the graph is cut over D devices in
the blocked layout of `parallel.graph` (`meshsim.parallel.blocked`; on CPU the D
devices are simulated and share the host's memory and cores). The graph, the parts,
the target and the mask are jit arguments, not constants. It reports

* XLA's compiled memory analysis of the step (`compile().memory_analysis()`, per
  device): temp bytes (activations and work buffers: what P and D change), argument
  and output bytes;
* the process's RSS before compiling (mesh, graph, parts, jax itself), the peak RSS
  of that set-up (the kernel's high-water mark, VmHWM: generating a large mesh can
  peak higher than the steps do) and the peak of compiling and running alone (VmHWM
  reset after the set-up through `/proc/self/clear_refs`); for D > 1 on CPU every
  device's buffers are in this one process;
* seconds per step (median of `--repeats`) with the load average after them, the loss
  and the gradient norm (equal for every P and D up to float rounding);
* the theoretical saved activations of remat'd message passing:
  steps · latent · 4 B · (nodes + edges) of the largest part (the whole graph for
  P = D = 1): with remat every block keeps only its input latents for the backward pass.

With `--train-steps n` it also runs n Adam steps (gradient + update, the state
donated) and reports the seconds and loss of each (the first includes compiling).
`--compile-only` reports XLA's analysis without running anything (for a P whose
step would not fit). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MIB = 2**20


def gradient_step(
    nodes: int, latent: int, steps: int, parts: int = 1, devices: int = 1, *, place: bool = True
) -> dict:
    """The value-and-gradient step of the masked MSE w.r.t. the parameters on a channel
    mesh of about `nodes` nodes: the whole graph (P = D = 1), P sequential parts on one
    device, or D graph devices in the blocked layout (`million_nodes.blocked_example`).

    Returns {"loss": loss(params, *args[1:]), "step": its jitted value_and_grad, "args":
    (params, graph, parts or None, fields {"t": target, "w": mask}), "nodes", "edges",
    "part_nodes", "part_edges": real nodes and edges of the largest part (the whole graph
    for P = D = 1)}. Host side; the graph, the parts and the fields are jit arguments,
    placed on the default device unless `place` is False (D = 1: for a compile-only use).
    """
    import jax

    from experiments.benchmarks.meshes import channel_problem
    from experiments.benchmarks.million_nodes import blocked_example
    from meshsim.evaluation.metrics import masked_mse
    from meshsim.models import MeshGraphNet
    from meshsim.parallel import sharding as sh
    from meshsim.parallel.sequential import SequentialPartition, make_sequential_partition

    if parts > 1 and devices > 1:
        raise ValueError(f"parts, devices: expected one of them 1, got {parts} and {devices}")
    graph, pos, target, mask = channel_problem(nodes)
    n, e = graph.num_nodes("mesh"), int(graph.edge_sets["mesh"].senders.shape[0])
    model = MeshGraphNet(
        output_size=2,
        latent_size=latent,
        num_message_passing_steps=steps,
        mlp_hidden_layers=2,
        remat=True,
    )
    # The parameters do not depend on the mesh size: initialised on a small mesh (an
    # init on the whole graph would run its forward pass in the set-up).
    params = jax.jit(model.init)(jax.random.key(0), channel_problem(1000)[0])
    fields = {"t": target, "w": mask}
    sp, part_nodes, part_edges = None, n, e
    if devices > 1:
        blocked, fields = blocked_example(graph, {"mesh": pos}, fields, devices, "mesh")
        stats = blocked.pgraph.stats()
        part_nodes = max(o + h for o, h in zip(stats.owned["mesh"], stats.halo["mesh"]))
        part_edges = max(stats.edges["mesh"])
        graph, params = blocked.structure, jax.device_put(params, sh.replicated(blocked.mesh))

        def apply(params, graph, parts):
            return blocked.apply(model, params, graph)

    else:
        if parts > 1:
            sp = make_sequential_partition(model, graph, {"mesh": pos}, parts).parts
            sizes = sp.sizes()
            part_nodes, part_edges = max(sizes["nodes"]), max(sizes["edges"])
        if place:
            graph, sp, fields = jax.device_put((graph, sp, fields))

        def apply(params, graph, parts):
            if parts is None:
                return model.apply(params, graph)
            return SequentialPartition(parts).apply(model, params, graph)

    def loss(params, graph, parts, fields):
        out = apply(params, graph, parts)
        return masked_mse(out, fields["t"], fields["w"], feature_reduction="sum")

    return {
        "loss": loss,
        "step": jax.jit(jax.value_and_grad(loss)),
        "args": (params, graph, sp, fields),
        "nodes": n,
        "edges": e,
        "part_nodes": int(part_nodes),
        "part_edges": int(part_edges),
    }


def compile_step(step, args) -> tuple:
    """(compiled step, compile seconds, {"temp_mib", "argument_mib", "output_mib"}: XLA's
    memory analysis, per device). `args` may be `jax.ShapeDtypeStruct`s (compile only)."""
    t0 = time.perf_counter()
    compiled = step.lower(*args).compile()
    seconds = time.perf_counter() - t0
    memory = compiled.memory_analysis()
    sizes = {
        "temp_mib": memory.temp_size_in_bytes / MIB,
        "argument_mib": memory.argument_size_in_bytes / MIB,
        "output_mib": memory.output_size_in_bytes / MIB,
    }
    return compiled, seconds, sizes


def measure(
    nodes: int,
    latent: int,
    steps: int,
    parts: int = 1,
    devices: int = 1,
    *,
    repeats: int = 2,
    train_steps: int = 0,
) -> dict:
    """One (P, D) in this process: the numbers of the module docstring. `repeats` 0:
    compile only."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from experiments.benchmarks.timing import load, peak_rss_mb, reset_peak_rss, rss_mb

    t0 = time.perf_counter()
    problem = gradient_step(nodes, latent, steps, parts, devices)
    args, loss = problem["args"], problem["loss"]
    setup_s = time.perf_counter() - t0
    rss_before, setup_peak = rss_mb(), peak_rss_mb()
    reset = reset_peak_rss()
    compiled, compile_s, memory = compile_step(problem["step"], args)
    times, value, norm = [float("nan")], float("nan"), float("nan")
    for _ in range(repeats):
        t0 = time.perf_counter()
        value, g = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
        norm = float(jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(g))))
        del g
    train_times = []
    if train_steps and repeats:
        tx = optax.adam(1e-4)

        def update(params, opt, *rest):
            value, g = jax.value_and_grad(loss)(params, *rest)
            upd, opt = tx.update(g, opt, params)
            return optax.apply_updates(params, upd), opt, value

        step = jax.jit(update, donate_argnums=(0, 1))
        state = (args[0], tx.init(args[0]))
        for _ in range(train_steps):
            t0 = time.perf_counter()
            *state, value_t = jax.block_until_ready(step(*state, *args[1:]))
            train_times.append((time.perf_counter() - t0, float(value_t)))
    theory = steps * latent * 4 * (problem["part_nodes"] + problem["part_edges"])
    return {
        "parts": parts,
        "devices": devices,
        **{k: problem[k] for k in ("nodes", "edges", "part_nodes", "part_edges")},
        "setup_s": setup_s,
        "compile_s": compile_s,
        **memory,
        "rss_before_mib": rss_before,
        "setup_peak_rss_mib": setup_peak,
        "step_peak_rss_mib": peak_rss_mb() if reset else float("nan"),
        "step_s": float(np.median(times[-max(repeats, 1) :])),
        "load": load(),
        "loss": float(value),
        "grad_norm": norm,
        "theory_mib": theory / MIB,
        "train": train_times,
    }


def child_result(cmd: list[str], env: dict | None = None) -> dict:
    """Runs `cmd` (a `--one` child) and returns the JSON of its last line of output."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def table(results: list[dict]) -> list[str]:
    """One markdown row per result of `measure`. Per device: XLA's sizes and the theory;
    B/node divides them by the nodes a device holds (N / D)."""
    rows = [
        "| P | D | nodes | edges | largest part nodes / edges | XLA temp MiB | temp B/node | "
        "theory MiB | theory B/node | RSS before MiB | set-up peak RSS MiB | "
        "steps' peak RSS MiB | step s | load | compile s | loss | grad norm |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        n = r["nodes"] / r["devices"]
        rows.append(
            f"| {r['parts']} | {r['devices']} | {r['nodes']} | {r['edges']} | "
            f"{r['part_nodes']} / {r['part_edges']} | "
            f"{r['temp_mib']:.0f} | {r['temp_mib'] * MIB / n:.0f} | {r['theory_mib']:.0f} | "
            f"{r['theory_mib'] * MIB / n:.0f} | {r['rss_before_mib']:.0f} | "
            f"{r['setup_peak_rss_mib']:.0f} | {r['step_peak_rss_mib']:.0f} | "
            f"{r['step_s']:.2f} | {' '.join(f'{x:g}' for x in r['load'])} | "
            f"{r['compile_s']:.1f} | {r['loss']:.8g} | {r['grad_norm']:.8g} |"
        )
    return rows


def device_env(devices: int) -> dict:
    """This process's environment for a child that needs `devices` devices: on CPU they
    are simulated (`--xla_force_host_platform_device_count`, which only the CPU reads)."""
    env = dict(os.environ)
    if devices > 1:
        flag = f"--xla_force_host_platform_device_count={devices}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    return env


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=150_000)
    parser.add_argument("--latent", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="message-passing steps")
    parser.add_argument("--parts", default="1,2,4,8", help="comma-separated P values")
    parser.add_argument("--devices", type=int, default=1, help="graph devices D (P must be 1)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=0)
    parser.add_argument(
        "--compile-only", action="store_true", help="XLA's memory analysis only, no step run"
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one is not None:
        repeats = 0 if args.compile_only else args.repeats
        kw = dict(repeats=repeats, train_steps=args.train_steps)
        print(
            json.dumps(measure(args.nodes, args.latent, args.steps, args.one, args.devices, **kw))
        )
        return
    results = []
    for p in (int(x) for x in args.parts.split(",")):
        cmd = [sys.executable, __file__, *(argv or sys.argv[1:]), "--one", str(p)]
        results.append(child_result(cmd, device_env(args.devices)))
    print("\n".join(table(results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
