"""Peak RSS of the batch pipeline against dataset size: in memory vs. out of core.

    .venv/bin/python experiments/benchmarks/out_of_core.py                    # 0.5-4 GB
    .venv/bin/python experiments/benchmarks/out_of_core.py --sizes-gb 0.01 --batches 5  # seconds

For each size, an HDF5 mesh dataset (cylinder-flow layout: a jittered grid of
`--nodes` nodes, `velocity [T, N, 2]` and `pressure [T, N, 1]` float32) of
`--trajectories` trajectories is written to `--dir`, the trajectory length T chosen
so the split file holds the size. Then, each in a fresh subprocess (one at a time),
the training batch stream of the cfd task (`iter_batches`, built as
`meshsim.runs.train` builds it: budget from the structure fields, lengths from
meta.json) draws `--batches` batches of `--batch-size` windows:

* in memory: `pool_size` = the trajectory count, so the pool is the whole dataset
  (the default pool_size 16 is above the 8 trajectories here), whole trajectories
  loaded (skipped above `--in-memory-max-gb`);
* out of core: `cache=FrameCache(--cache-mb)` (`data.cache_bytes`), the same seed
  and pool.

Each child reports its own peak RSS (`VmHWM` of /proc/self/status; `ru_maxrss`
is reported too but not used: Linux carries a parent's high-water mark into its
child across `exec`), its RSS after imports and opening the data (before the first
batch), the cache's peak bytes and the seconds per batch. Datasets are written by a
child process as well, so the parent stays small. Before the sizes, one child checks on the smallest
dataset that both streams give equal batches. The dataset is deleted after its
size's runs, so at most one is on disk. The files were just written, so reads come
mostly from the page cache: the times are not cold-disk times.

Writes `<out>/out_of_core.json` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `meshsim` importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

BYTES_PER_NODE_FRAME = 3 * 4  # velocity (2) + pressure (1) float32


def _status_mb(field: str) -> float:
    """A `/proc/self/status` memory line (MB): `VmRSS` now, `VmHWM` its peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    """This process's own peak RSS (`VmHWM`). `getrusage`'s `ru_maxrss` is not used as
    the figure: Linux carries the parent's high-water mark into a child across
    `exec`, so a child of a large parent reports the parent's peak."""
    return _status_mb("VmHWM")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_dataset(directory: str, size_gb: float, nodes: int, count: int, seed: int) -> dict:
    """An HDF5 cfd-layout split of about `size_gb` GB; returns its description."""
    from experiments.benchmarks.meshes import jittered_grid
    from meshsim import data

    points, cells, node_type = jittered_grid(nodes, seed=seed)
    n = points.shape[0]
    frames = max(4, round(size_gb * 1e9 / (count * n * BYTES_PER_NODE_FRAME)))
    rng = np.random.default_rng(seed)

    def trajectory(i: int) -> dict:
        phase = rng.uniform(0, 2 * np.pi, size=(1, n, 1)).astype(np.float32)
        velocity = np.empty((frames, n, 2), np.float32)
        for t in range(frames):  # a smooth wave plus noise: finite, not constant
            velocity[t] = np.sin(0.05 * t + phase[0]) + 0.01 * rng.standard_normal((n, 2))
        return {
            "cells": cells[None],
            "mesh_pos": points[None],
            "node_type": node_type[None, :, None],
            "velocity": velocity,
            "pressure": velocity[..., :1] * 0.1,
        }

    first = trajectory(0)
    meta = data.infer_meta(first, dt=0.01)
    start = time.perf_counter()
    with data.HDF5Writer(directory, "train", meta) as writer:
        writer.write(first)
        del first
        for i in range(1, count):
            writer.write(trajectory(i))
    path = data.hdf5.hdf5_path(directory, "train")
    return {
        "nodes": int(n),
        "frames": int(frames),
        "trajectories": count,
        "file_bytes": os.path.getsize(path),
        "write_s": round(time.perf_counter() - start, 1),
    }


def _stream(directory: str, mode: str, args, cache):
    """The batch stream `meshsim.runs.train` would build for the cfd task."""
    from meshsim import data
    from meshsim.tasks import cfd_task
    from meshsim.training.batches import OutOfCore, dataset_budget, iter_batches

    task = cfd_task()
    dataset = data.open_dataset(directory, "train")
    if mode == "out_of_core":
        statics = OutOfCore(dataset, cache)
    else:
        statics = list(dataset.iter(fields=list(task.structure_fields)))
    budget = dataset_budget(statics, task)
    del statics
    frames = dataset.meta["features"]["velocity"]["shape"][0]
    return iter_batches(
        dataset,
        task,
        batch_size=args.batch_size,
        budget=budget,
        seed=args.seed,
        pool_size=len(dataset),
        lengths=[frames] * len(dataset),
        cache=cache,
    )


def child(directory: str, mode: str, args) -> dict:
    """One measurement (run in a fresh process): peak RSS of drawing the batches."""
    from meshsim.data.frame_cache import FrameCache

    cache = FrameCache(int(args.cache_mb * 2**20)) if mode == "out_of_core" else None
    batches = _stream(directory, mode, args, cache)
    before = _rss_mb()
    start = time.perf_counter()
    for _ in range(args.batches):
        batch = next(batches)
        assert all(np.all(np.isfinite(x)) for x in batch.fields.values() if x.dtype.kind == "f")
    seconds = time.perf_counter() - start
    out = {
        "mode": mode,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "ru_maxrss_mb": round(_maxrss_mb(), 1),
        "rss_before_batches_mb": round(before, 1),
        "s_per_batch": round(seconds / args.batches, 4),
    }
    if cache is not None:
        out.update(
            cache_cap_mb=args.cache_mb,
            cache_peak_mb=round(cache.peak_bytes / 2**20, 1),
            cache_hits=cache.hits,
            cache_misses=cache.misses,
        )
    return out


def check(directory: str, args) -> dict:
    """Both streams' first batches, compared leaf by leaf (run in a fresh process)."""
    import jax

    from meshsim.data.frame_cache import FrameCache

    eager = _stream(directory, "in_memory", args, None)
    lazy = _stream(directory, "out_of_core", args, FrameCache(int(args.cache_mb * 2**20)))
    equal = True
    for _ in range(args.check_batches):
        a, b = (jax.tree_util.tree_leaves(next(s)) for s in (eager, lazy))
        equal &= len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    return {"batches_compared": args.check_batches, "equal": bool(equal)}


def _run_child(what: str, directory: str, argv: list[str]) -> dict:
    command = [sys.executable, __file__, "--child", what, "--dir", directory, *argv]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    lines = [
        "| dataset (GB) | frames/traj | in memory: peak RSS (MB) | s/batch | "
        "out of core: peak RSS (MB) | RSS before batches (MB) | cache peak (MB) | s/batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        mem = row.get("in_memory")
        ooc = row["out_of_core"]
        lines.append(
            f"| {row['file_bytes'] / 1e9:.2f} | {row['frames']} | "
            f"{mem['peak_rss_mb'] if mem else 'not run'} | {mem['s_per_batch'] if mem else '-'} | "
            f"{ooc['peak_rss_mb']} | {ooc['rss_before_batches_mb']} | {ooc['cache_peak_mb']} | "
            f"{ooc['s_per_batch']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gb", default="0.5,1,2,4")
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--trajectories", type=int, default=8)
    parser.add_argument("--cache-mb", type=float, default=64.0)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--check-batches", type=int, default=20)
    parser.add_argument("--in-memory-max-gb", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default="/tmp/meshsim_out_of_core")
    parser.add_argument("--out", default="")
    parser.add_argument("--child", choices=("write", "in_memory", "out_of_core", "check"))
    args = parser.parse_args()
    if args.child == "write":
        size = float(args.sizes_gb)
        print(json.dumps(write_dataset(args.dir, size, args.nodes, args.trajectories, args.seed)))
        return
    if args.child == "check":
        print(json.dumps(check(args.dir, args)))
        return
    if args.child:
        print(json.dumps(child(args.dir, args.child, args)))
        return
    passed = [
        f"--{k.replace('_', '-')}={getattr(args, k)}"
        for k in ("cache_mb", "batches", "batch_size", "check_batches", "seed")
    ]
    rows = []
    for k, size in enumerate(float(s) for s in args.sizes_gb.split(",")):
        directory = os.path.join(args.dir, f"{size:g}gb")
        shutil.rmtree(directory, ignore_errors=True)
        try:
            write = [f"--sizes-gb={size}", f"--nodes={args.nodes}"]
            write += [f"--trajectories={args.trajectories}", f"--seed={args.seed}"]
            row = {"size_gb": size, **_run_child("write", directory, write)}
            print(f"wrote {row['file_bytes'] / 1e9:.2f} GB in {row['write_s']} s", flush=True)
            if k == 0 and args.check_batches:
                row["check"] = _run_child("check", directory, passed)
                print(f"equal batches: {row['check']}", flush=True)
            if size <= args.in_memory_max_gb:
                row["in_memory"] = _run_child("in_memory", directory, passed)
            row["out_of_core"] = _run_child("out_of_core", directory, passed)
            print(json.dumps(row), flush=True)
            rows.append(row)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    report = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "settings": {k: getattr(args, k) for k in vars(args) if k not in ("child", "out")},
        "rows": rows,
    }
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "out_of_core.json"), "w") as f:
            json.dump(report, f, indent=1)
    print(_table(rows))


if __name__ == "__main__":
    main()
