"""meshsim's training step with and without glibc's huge-page tunable (`meshsim.hugepages`).

glibc reads the tunable only when a process starts, so each measurement is its own
process: `--rounds` pairs of processes, with and without, alternating, each timing
`--repeats` training steps of the paper MeshGraphNet after two warm-up calls. Writes
`<out>/huge_pages.json` and `.md`.

    python experiments/benchmarks/huge_pages.py --sizes 2k,16k --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "benchmarks" / "results"

WORKER = """
import json, sys, time
import numpy as np
from experiments.benchmarks import impls, meshes
from experiments.benchmarks.run import PAPER_MODEL
from meshsim import hugepages

size, repeats = sys.argv[1], int(sys.argv[2])
problem = meshes.make_problem(meshes.parse_size(size))
params = impls.init_params(problem, PAPER_MODEL)
impl = impls.build("meshsim", problem, params, PAPER_MODEL)
impls.compile_impl(impl)
impl.train(); impl.train()
times = []
for _ in range(repeats):
    t = time.perf_counter(); impl.train(); times.append(time.perf_counter() - t)
print(json.dumps({"huge_pages": hugepages.active(), "times": times}))
"""


def measure(size: str, repeats: int, huge: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if huge:
        env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", WORKER, size, str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2k,16k")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    rows = []
    for size in args.sizes.split(","):
        got = {False: [], True: []}
        for _ in range(args.rounds):
            for huge in (False, True):
                r = measure(size, args.repeats, huge)
                if r["huge_pages"] != huge:
                    raise RuntimeError(f"the worker did not see huge pages {huge}: {r}")
                got[huge].append(statistics.median(r["times"]))
                print(f"{size} huge_pages={huge}: median {got[huge][-1]:.3f} s", flush=True)
        rows.append(
            {
                "size": size,
                "without_s": got[False],
                "with_s": got[True],
                "ratio": sum(got[False]) / sum(got[True]),
            }
        )
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cores": os.cpu_count(),
        "rounds": args.rounds,
        "repeats": args.repeats,
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "huge_pages.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# meshsim's training step with and without glibc's huge-page tunable",
        "",
        f"`huge_pages.py --sizes {args.sizes} --rounds {args.rounds} --repeats "
        f"{args.repeats}` on {result['date']}, {result['cores']} cores; paper "
        "MeshGraphNet (latent 128, 15 steps), one process per measurement, alternating; "
        "each figure the median of its process's timed steps.",
        "",
        "| size | without (s, per process) | with `glibc.malloc.hugetlb=1` (s) | speed-up |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {', '.join(f'{t:.3f}' for t in r['without_s'])} "
            f"| {', '.join(f'{t:.3f}' for t in r['with_s'])} | {r['ratio']:.2f}x |"
        )
    (out / "huge_pages.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
