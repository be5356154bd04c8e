"""The `meshsim` command's sub-commands: each checks its arguments and calls one
library function. Heavy imports happen inside the command, so `meshsim --help` is
instant. How their errors are reported: `meshsim.cli`."""

from __future__ import annotations

import argparse
import os
import sys

from meshsim.atomic import dumps_json


def report_error(command: str, message: str) -> None:
    """`meshsim <command>: error: <message>` on stderr, the one line an error gets."""
    print(f"meshsim {command}: error: {message}", file=sys.stderr)


def _check_dataset_dir(path: str, name: str) -> None:
    """A dataset argument must be a directory (a file would fail later without its name)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: dataset directory {path!r} does not exist")
    if not os.path.isdir(path):
        raise NotADirectoryError(
            f"{name}: {path!r} is not a directory (expected a dataset directory with "
            "meta.json and <split>.tfrecord or <split>.h5 files)"
        )


def parse_region(text: str) -> tuple[float, float, float, float]:
    """LAT_MIN,LAT_MAX,LON_MIN,LON_MAX degrees (argparse type)."""
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not -90 <= values[0] < values[1] <= 90:
        raise argparse.ArgumentTypeError(
            f"expected LAT_MIN,LAT_MAX,LON_MIN,LON_MAX degrees with -90 ≤ LAT_MIN < LAT_MAX "
            f"≤ 90, got {text!r}"
        )
    return values


def cmd_inspect(args) -> int:
    from meshsim.data import format_inspection, inspect_dataset

    _check_dataset_dir(args.dir, "dir")
    names = ("k_hop", "dilation", "dilation_levels", "global_nodes")
    extra = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    report = inspect_dataset(
        args.dir,
        max_trajectories=args.max_trajectories,
        world_radius=args.world_radius,
        receptive_field=extra if set(extra) - {"dilation_levels"} else None,
    )
    print(dumps_json(report, indent=2) if args.json else format_inspection(report))
    return 0


def cmd_convert(args) -> int:
    from meshsim.atomic import staged_directory
    from meshsim.data import convert_dataset

    _check_dataset_dir(args.src, "src")
    # All splits (and meta.json) appear in DST together, or nothing does.
    with staged_directory(args.dst, carry=("meta.json",)) as tmp:
        counts = convert_dataset(
            args.src, tmp, splits=args.splits, compression=args.compression, progress=True
        )
    for split, n in counts.items():
        print(f"{split}: {n} trajectories -> {args.dst}/{split}.h5")
    return 0


def cmd_generate(args) -> int:
    from meshsim.solvers.generate import generate_dataset

    path = generate_dataset(
        args.domain,
        args.out,
        trajectories=args.trajectories,
        steps=args.steps,
        seed=args.seed,
        split=args.split,
        mesh_resolution=args.mesh_resolution,
        diurnal=args.diurnal,
        progress=True,
        region=args.region,
        region_resolution=args.region_resolution,
    )
    print(f"wrote {path}")
    return 0


def cmd_train(args) -> int:
    from meshsim.config import load_config
    from meshsim.runs import run_training

    config = load_config(args.config, args.set)
    if args.distributed:
        from meshsim.parallel.distributed import initialize

        initialize(args.coordinator, args.num_processes, args.process_id)
    elif any(x is not None for x in (args.coordinator, args.num_processes, args.process_id)):
        raise ValueError("--coordinator, --num-processes and --process-id need --distributed")
    run_training(config, args.workdir, max_steps=args.steps)
    return 0


def cmd_rollout(args) -> int:
    from meshsim.runs import run_rollouts

    path = run_rollouts(
        args.workdir,
        split=args.split,
        num=args.num,
        steps=args.steps,
        export=args.export,
        overrides=args.set,
    )
    print(f"wrote {path}")
    return 0


def cmd_evaluate(args) -> int:
    from meshsim.runs.evaluate import evaluate_and_summarize

    _, text = evaluate_and_summarize(
        args.workdir,
        split=args.split,
        num=args.num,
        steps=args.steps,
        forecast=args.forecast,
        overrides=args.set,
    )
    print(text)
    return 0


def cmd_forecast(args) -> int:
    from meshsim.runs import run_forecast

    path = run_forecast(
        args.workdir,
        init_times=args.init_times,
        steps=args.steps,
        out=args.out,
        split=args.split,
        batch=args.batch,
        members=args.members,
        seed=args.seed,
        overrides=args.set,
    )
    print(f"wrote {path}")
    return 0


def cmd_plot(args) -> int:
    from meshsim.runs import run_plots

    for path in run_plots(args.workdir):
        print(f"wrote {path}")
    return 0


def cmd_demo(args) -> int:
    from meshsim.runs import run_demo

    code = run_demo(args.workdir, config_path=args.config, quick=args.quick)
    with open(os.path.join(args.workdir, "report.md"), encoding="utf-8") as f:
        print(f.read())
    if code:
        report_error(
            "demo",
            "the model does not pass the demo's gate (persistence at its horizons, and its "
            f"task's own bar where it has one; see {os.path.join(args.workdir, 'report.md')})",
        )
    return code
