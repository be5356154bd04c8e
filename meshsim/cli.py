"""The `meshsim` command: a thin shell over the library.

Each sub-command parses its arguments and calls one library function; heavy
imports happen inside the command so `meshsim --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import meshsim


def _cmd_inspect(args) -> int:
    from meshsim.data import format_inspection, inspect_dataset

    report = inspect_dataset(args.dir, max_trajectories=args.max_trajectories)
    print(json.dumps(report, indent=2) if args.json else format_inspection(report))
    return 0


def _cmd_convert(args) -> int:
    from meshsim.data import convert_dataset

    counts = convert_dataset(
        args.src, args.dst, splits=args.splits, compression=args.compression, progress=True
    )
    for split, n in counts.items():
        print(f"{split}: {n} trajectories -> {args.dst}/{split}.h5")
    return 0


def _cmd_generate(args) -> int:
    from meshsim.solvers.generate import generate_dataset

    path = generate_dataset(
        args.domain,
        args.out,
        trajectories=args.trajectories,
        steps=args.steps,
        seed=args.seed,
        split=args.split,
        mesh_resolution=args.mesh_resolution,
        progress=True,
    )
    print(f"wrote {path}")
    return 0


def _cmd_train(args) -> int:
    from meshsim.config import load_config
    from meshsim.experiment import run_training

    config = load_config(args.config, args.set)
    run_training(config, args.workdir, max_steps=args.steps)
    return 0


def _cmd_rollout(args) -> int:
    from meshsim.experiment import run_rollouts

    path = run_rollouts(
        args.workdir, split=args.split, num=args.num, steps=args.steps, export=args.export
    )
    print(f"wrote {path}")
    return 0


def _cmd_evaluate(args) -> int:
    from meshsim.experiment import run_evaluation

    metrics = run_evaluation(args.workdir, split=args.split, num=args.num, steps=args.steps)
    print(json.dumps(metrics, indent=2))
    return 0


def _cmd_plot(args) -> int:
    from meshsim.experiment import run_plots

    for path in run_plots(args.workdir):
        print(f"wrote {path}")
    return 0


def _cmd_demo(args) -> int:
    from meshsim.demo import run_demo

    return run_demo(args.workdir, config_path=args.config, quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshsim",
        description="Learned physics simulation on meshes: generate data, train, roll out.",
    )
    parser.add_argument("--version", action="version", version=f"meshsim {meshsim.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("inspect", help="summarise a dataset directory (TFRecord or HDF5)")
    p.add_argument("dir")
    p.add_argument("--max-trajectories", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("convert", help="convert a MeshGraphNets TFRecord dataset to HDF5")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--splits", nargs="*", default=None)
    p.add_argument("--compression", choices=["gzip", "lzf"], default=None)
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("generate", help="simulate a built-in dataset (native HDF5 format)")
    p.add_argument("domain", choices=["cylinder_flow", "flag"])
    p.add_argument("--out", required=True)
    p.add_argument("--trajectories", type=int, default=10)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train")
    p.add_argument(
        "--mesh-resolution",
        type=float,
        default=1.0,
        help="mesh refinement factor (1: ~1.9k-node channel, ~1.6k-node flag)",
    )
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("train", help="train a model from an experiment config")
    p.add_argument("--config", required=True, help="experiments/<name>.py with get_config()")
    p.add_argument("--workdir", required=True)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, e.g. model.latent_size=64 (repeatable)",
    )
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    p.set_defaults(func=_cmd_train)

    for name, func, text in (
        ("rollout", _cmd_rollout, "roll out a trained model, save rollouts to HDF5"),
        ("evaluate", _cmd_evaluate, "rollout RMSE vs persistence, writes metrics.json"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--workdir", required=True)
        p.add_argument("--split", default="valid")
        p.add_argument("--num", type=int, default=None, help="trajectories (default all)")
        p.add_argument("--steps", type=int, default=None, help="rollout length (default all)")
        if name == "rollout":
            p.add_argument(
                "--export",
                action="store_true",
                help="also write ParaView files (XDMF / VTU) under paraview/",
            )
        p.set_defaults(func=func)

    p = sub.add_parser("plot", help="plots and animations for a run directory")
    p.add_argument("--workdir", required=True)
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("demo", help="generate data, train, roll out and report (CPU-sized)")
    p.add_argument("--workdir", default="runs/demo")
    p.add_argument("--config", default="experiments/cylinder_flow_lite.py")
    p.add_argument("--quick", action="store_true", help="a minutes-long smoke version")
    p.set_defaults(func=_cmd_demo)
    return parser


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache for CLI runs.

    A second `meshsim train/rollout/evaluate` of the same model then loads its
    compiled steps from disk (measured for the 16k-node paper model: train step
    1.70 s cold, 0.115 s from a warm cache; experiments/benchmarks/results/latest.md).
    Location: $MESHSIM_COMPILATION_CACHE, default ~/.cache/meshsim/jax; set it
    to an empty string to disable.
    """
    path = os.environ.get(
        "MESHSIM_COMPILATION_CACHE",
        os.path.join(os.path.expanduser("~"), ".cache", "meshsim", "jax"),
    )
    if not path:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it touches
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in ("train", "rollout", "evaluate", "demo"):
        enable_compilation_cache()
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
