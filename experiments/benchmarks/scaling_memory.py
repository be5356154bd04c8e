"""Memory and time per step against sequential parts P and graph devices D, and the
largest mesh whose gradient step fits a memory budget.

Run through `scaling.py` (which hands these modes to this module in a fresh process,
with the caller's `JAX_PLATFORMS` and `XLA_FLAGS`) or directly:

    .venv/bin/python experiments/benchmarks/scaling.py --memory       # default rows: hours
    .venv/bin/python experiments/benchmarks/scaling.py --memory --rows 16k:1:1:3,16k:4:1:3
    .venv/bin/python experiments/benchmarks/scaling.py --largest --parts 8 --budget-gib 2
    .venv/bin/python experiments/benchmarks/scaling.py --largest --parts 8   # GPU: its memory

`--memory`: one row per `SIZE:P:D:REPEATS` of `--rows` (SIZE as `meshes.parse_size`:
"128k", "1m"; P sequential parts on one device, D graph devices with P = 1; REPEATS
timed steps, 0 for XLA's memory analysis only). Each row is a fresh subprocess of
`sequential_memory.py` (so its peak RSS is its own) with D simulated CPU devices for
D > 1; the table is `sequential_memory.table`: XLA temp MiB per device, set-up and
steps' peak RSS, median seconds per step and the load average after them, loss and
gradient norm (equal across the rows of one mesh to float rounding), bytes per node
against the theoretical saved activations. The same MeshGraphNet everywhere (latent
`--latent`, `--steps` message-passing steps, 2 hidden layers, remat on).

`--largest`: for P = 1 and P = `--parts` on one device, the largest channel mesh whose
gradient step needs at most `--budget-gib` by XLA's memory analysis (temp + arguments
+ outputs; compile only, on abstract arguments, so nothing is placed on the device):
mesh sizes doubled from `--start` until one does not fit, then bisected until the two
sizes differ by at most `--tolerance`. The budget defaults to the device's memory
(`memory_stats()["bytes_limit"]`, e.g. on a GPU); the CPU reports none, so it is
required there. Every probe builds its mesh (and parts) on the host: `--max-nodes` caps
the search where the host, not the device, would run out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `experiments.benchmarks` importable
    sys.path.insert(0, str(ROOT))

from experiments.benchmarks import sequential_memory as sm  # noqa: E402
from experiments.benchmarks.meshes import parse_size  # noqa: E402

GIB = 2**30
# The rows: 128k nodes with P = 1, 2, 4, 8 and D = 2, 4, 8; 1M nodes whole
# (~12 GiB at latent 16, 4 steps), with P = 8, 16 and with D = 8 (simulated on CPU:
# ~13 GiB in one process). REPEATS 0 (compile only) for a row that would not fit.
DEFAULT_ROWS = (
    "128k:1:1:3,128k:2:1:3,128k:4:1:3,128k:8:1:3,128k:1:2:3,128k:1:4:3,128k:1:8:3,"
    "1m:1:1:2,1m:8:1:2,1m:16:1:2,1m:1:8:1"
)


def parse_rows(text: str) -> list[tuple[int, int, int, int]]:
    """'128k:2:1:3,1m:1:8:1' -> [(nodes, P, D, repeats), ...]; P or D must be 1."""
    rows = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        try:
            size, *numbers = item.split(":")
            size = parse_size(size)
            parts, devices, repeats = map(int, numbers)
        except ValueError as err:
            raise ValueError(
                f"--rows: expected SIZE:P:D:REPEATS (e.g. 128k:2:1:3), got {item!r}"
            ) from err
        if min(parts, devices) < 1 or repeats < 0:
            raise ValueError(f"--rows: expected P, D ≥ 1 and REPEATS ≥ 0, got {item!r}")
        if parts > 1 and devices > 1:
            raise ValueError(f"--rows: expected P or D to be 1, got {item!r}")
        rows.append((size, parts, devices, repeats))
    if not rows:
        raise ValueError(f"--rows: expected at least one SIZE:P:D:REPEATS, got {text!r}")
    return rows


def memory_rows(rows, latent: int, steps: int) -> list[dict]:
    """One `sequential_memory` child per row; their results in order."""
    results = []
    for nodes, parts, devices, repeats in rows:
        cmd = [sys.executable, sm.__file__, "--nodes", str(nodes), "--latent", str(latent)]
        cmd += ["--steps", str(steps), "--devices", str(devices), "--repeats", str(repeats)]
        cmd += ["--compile-only"] * (repeats == 0) + ["--one", str(parts)]
        results.append(sm.child_result(cmd, sm.device_env(devices)))
    return results


# --------------------------------------------------------------------------- largest mesh


def largest_fitting(
    fits: Callable[[int], bool],
    start: int,
    *,
    tolerance: float = 0.1,
    max_size: int | None = None,
    min_size: int = 1000,
) -> tuple[int | None, int | None]:
    """The largest size for which `fits` holds, for a `fits` true up to some size and
    false beyond: `start` doubled until it fails (or reaches `max_size`), halved while
    it fails (down to `min_size`), then bisected.

    Returns:
      (lo, hi): lo the largest size seen to fit (None: not even `min_size`), hi the
      smallest seen not to (None: `max_size` fits); when both are set,
      hi − lo ≤ max(tolerance · lo, 1).
    """
    if start < 1 or min_size < 1 or tolerance <= 0:
        raise ValueError(
            f"start, min_size, tolerance: expected ≥ 1, ≥ 1, > 0, got {start}, {min_size}, "
            f"{tolerance}"
        )
    if max_size is not None and max_size < start:
        raise ValueError(f"max_size: expected ≥ start ({start}), got {max_size}")
    lo = hi = None
    if fits(start):
        lo = start
        while hi is None and (max_size is None or lo < max_size):
            size = 2 * lo if max_size is None else min(2 * lo, max_size)
            lo, hi = (size, None) if fits(size) else (lo, size)
    else:
        hi = start
        while lo is None and hi > min_size:
            size = max(hi // 2, min_size)
            lo, hi = (size, hi) if fits(size) else (None, size)
    if lo is None or hi is None:
        return lo, hi
    while hi - lo > max(tolerance * lo, 1):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo, hi


def probe(nodes: int, latent: int, steps: int, parts: int) -> dict:
    """XLA's memory analysis of the gradient step on a channel mesh of about `nodes`
    nodes with P = `parts` (compile only, abstract arguments) and its set-up times."""
    import jax

    t0 = time.perf_counter()
    problem = sm.gradient_step(nodes, latent, steps, parts, place=False)
    setup_s = time.perf_counter() - t0
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), problem["args"])
    _, compile_s, memory = sm.compile_step(problem["step"], shapes)
    keep = ("nodes", "edges", "part_nodes", "part_edges")
    return {
        "size": nodes,
        "parts": parts,
        **{k: problem[k] for k in keep},
        **memory,
        "total_mib": memory["temp_mib"] + memory["argument_mib"] + memory["output_mib"],
        "setup_s": setup_s,
        "compile_s": compile_s,
    }


def device_budget_gib() -> float | None:
    """The default device's memory limit in GiB (`memory_stats`), None where unknown (CPU)."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats["bytes_limit"] / GIB if "bytes_limit" in stats else None


def largest_table(probes: list[dict], budget_gib: float) -> list[str]:
    rows = [
        "| P | size asked | nodes | edges | largest part nodes / edges | XLA temp MiB | "
        "arguments MiB | outputs MiB | total MiB | fits | set-up s | compile s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in probes:
        fits = "yes" if r["total_mib"] <= budget_gib * 1024 else "no"
        rows.append(
            f"| {r['parts']} | {r['size']} | {r['nodes']} | {r['edges']} | "
            f"{r['part_nodes']} / {r['part_edges']} | {r['temp_mib']:.0f} | "
            f"{r['argument_mib']:.0f} | {r['output_mib']:.0f} | {r['total_mib']:.0f} | "
            f"{fits} | {r['setup_s']:.1f} | {r['compile_s']:.1f} |"
        )
    return rows


def largest(args) -> None:
    """The `--largest` mode: the probes' table and one line per P."""
    import jax

    budget = args.budget_gib if args.budget_gib is not None else device_budget_gib()
    if budget is None:
        raise SystemExit(
            f"--budget-gib: required, {jax.devices()[0].platform} reports no memory limit"
        )
    device = jax.devices()[0]
    print(f"# Largest mesh within {budget:.2f} GiB of XLA memory ({device.device_kind}, ", end="")
    print(f"latent {args.latent}, {args.steps} message-passing steps, remat on)\n")
    probes, lines = [], []
    for parts in sorted({1, args.parts}):
        records = {}

        def fits(size, parts=parts, records=records):
            records[size] = probe(size, args.latent, args.steps, parts)
            probes.append(records[size])
            print(json.dumps(records[size]), file=sys.stderr, flush=True)
            return records[size]["total_mib"] <= budget * 1024

        lo, hi = largest_fitting(
            fits, args.start, tolerance=args.tolerance, max_size=args.max_nodes
        )
        found = "none" if lo is None else f"{records[lo]['nodes']} nodes"
        above = "not reached" if hi is None else f"{records[hi]['nodes']} nodes do not"
        lines.append(f"- P = {parts}: largest mesh that fits: **{found}** ({above})")
    print("\n".join(largest_table(probes, budget)) + "\n")
    print("\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--memory", action="store_true", help="the rows of --rows")
    mode.add_argument("--largest", action="store_true", help="the largest mesh in a budget")
    parser.add_argument("--rows", default=DEFAULT_ROWS, help="SIZE:P:D:REPEATS,...")
    parser.add_argument("--latent", type=int, default=16, help="latent width")
    parser.add_argument("--steps", type=int, default=4, help="message-passing steps")
    parser.add_argument("--parts", type=int, default=8, help="--largest: P beside P = 1")
    parser.add_argument("--budget-gib", type=float, help="--largest: XLA memory budget")
    parser.add_argument("--start", default="16k", help="--largest: first mesh size")
    parser.add_argument("--max-nodes", help="--largest: largest mesh size tried")
    parser.add_argument("--tolerance", type=float, default=0.1, help="--largest: (hi-lo)/lo")
    args = parser.parse_args(argv)
    try:
        args.start = parse_size(args.start)
        args.max_nodes = None if args.max_nodes is None else parse_size(args.max_nodes)
        rows = parse_rows(args.rows) if args.memory else None
        for name, value in ((f"--{k}", getattr(args, k)) for k in ("parts", "latent", "steps")):
            if value < 1:
                raise ValueError(f"{name}: expected ≥ 1, got {value}")
        if args.tolerance <= 0 or (args.budget_gib is not None and args.budget_gib <= 0):
            raise ValueError(
                f"--tolerance, --budget-gib: expected > 0, got {args.tolerance}, {args.budget_gib}"
            )
    except ValueError as err:
        parser.error(str(err))
    if args.largest:
        largest(args)
        return
    print(f"# Memory per step against P and D (latent {args.latent}, {args.steps} steps)\n")
    print("\n".join(sm.table(memory_rows(rows, args.latent, args.steps))))


if __name__ == "__main__":
    main()
