"""The `meshsim` command: a thin shell over the library.

Each sub-command parses its arguments and calls one library function; heavy
imports happen inside the command so `meshsim --help` is instant.

Errors are one line on stderr, `meshsim <command>: error: <message>`, never a
traceback (`--debug`, before or after the command, adds it):

* exit 2: usage errors, found while parsing (unknown options, values out of range
  such as `--steps 0`; each option's `type=` checks its value);
* exit 1: failures at run time (a missing workdir, config or dataset, bad data, a
  diverged run): the library's ValueError/TypeError/OSError messages, which name the
  file and field; any other exception is reported as unexpected, with a hint to
  rerun with `--debug`;
* a closed stdout (`meshsim inspect DIR | head -1`) ends the command quietly;
* a full disk is one line from every command, `<path>: no space left on device`,
  exit 1; the process then ends at once (HDF5 objects whose writes failed can crash
  in their finalizers);
* errors of library threads (orbax's) and the tracebacks libraries print or log on
  their own are collected into that one line (`--debug` shows them).

Commands that write files write them atomically and leave nothing behind when
they fail (`meshsim.atomic`), so a corrected retry runs as if it were the first;
what a killed command (kill -9) left is removed by the next one on the same
destination. Before `train`, `rollout`, `evaluate`, `forecast` and `demo`, the
`meshsim` command starts itself again with glibc's huge-page tunable set, where it
applies (`meshsim.hugepages`; `MESHSIM_HUGE_PAGES=0` keeps it as it is).
`train`, `evaluate`, `rollout`, `forecast` and `plot` hold the run
directory's lock (`meshsim.runs.lock`): a second command on a run in use is refused
at once, naming the holder's pid and host.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import re
import sys
import threading
import traceback

import meshsim
from meshsim import hugepages
from meshsim.atomic import TEMPORARY_NAME, dumps_json, is_disk_full


def _check_dataset_dir(path: str, name: str) -> None:
    """A dataset argument must be a directory (a file would fail later without its name)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: dataset directory {path!r} does not exist")
    if not os.path.isdir(path):
        raise NotADirectoryError(
            f"{name}: {path!r} is not a directory (expected a dataset directory with "
            "meta.json and <split>.tfrecord or <split>.h5 files)"
        )


def _region(text: str) -> tuple[float, float, float, float]:
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


def _cmd_inspect(args) -> int:
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


def _cmd_convert(args) -> int:
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
        diurnal=args.diurnal,
        progress=True,
        region=args.region,
        region_resolution=args.region_resolution,
    )
    print(f"wrote {path}")
    return 0


def _cmd_train(args) -> int:
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


def _cmd_rollout(args) -> int:
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


def _cmd_evaluate(args) -> int:
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


def _cmd_forecast(args) -> int:
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


def _cmd_plot(args) -> int:
    from meshsim.runs import run_plots

    for path in run_plots(args.workdir):
        print(f"wrote {path}")
    return 0


def _cmd_demo(args) -> int:
    from meshsim.runs import run_demo

    code = run_demo(args.workdir, config_path=args.config, quick=args.quick)
    with open(os.path.join(args.workdir, "report.md"), encoding="utf-8") as f:
        print(f.read())
    if code:
        _error(
            "demo",
            "the model does not pass the demo's gate (persistence at its horizons, and its "
            f"task's own bar where it has one; see {os.path.join(args.workdir, 'report.md')})",
        )
    return code


# ----------------------------------------------------------------- argument types


def _int_at_least(minimum: int):
    """An argparse `type=`: an integer ≥ `minimum` (a usage error otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer ≥ {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer ≥ {minimum}"
    return parse


def _positive_float(text: str) -> float:
    """An argparse `type=`: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _split_name(text: str) -> str:
    """An argparse `type=`: a split name, the stem of `<split>.h5` (no path, no dot first)."""
    if not text or text.startswith(".") or "/" in text or os.sep in text or "\0" in text:
        raise argparse.ArgumentTypeError(
            f"expected a split name such as 'train' or 'valid' (a file stem, no path), got {text!r}"
        )
    return text


def _add_data_overrides(p: argparse.ArgumentParser) -> None:
    """`--set data.KEY=VALUE` on a command that reads a trained run."""
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="data.* override of the run's config, e.g. data.path=DIR where the dataset "
        "has moved (repeatable)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (`meshsim train: error: ...`), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="meshsim",
        description="Learned physics simulation on meshes: generate data, train, roll out.",
    )
    parser.add_argument("--version", action="version", version=f"meshsim {meshsim.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (any position)"
    )
    # Also accepted after the command; SUPPRESS keeps it from resetting the global flag.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    p = add(
        "inspect",
        help="summarise a dataset directory (TFRecord or HDF5; particles: native, "
        "LagrangeBench or learning_to_simulate)",
    )
    p.add_argument("dir")
    p.add_argument(
        "--max-trajectories",
        type=_int_at_least(0),
        default=None,
        help="read at most this many trajectories per split",
    )
    p.add_argument(
        "--world-radius",
        type=float,
        default=None,
        help="count MeshGraphNets world edges at this radius (default: the dataset's "
        "world_edge_radius, if any)",
    )
    for flag, what in (
        ("--k-hop", "pairs within K hops (task.options.k_hop)"),
        ("--dilation", "pairs d, 2d, ... hops apart (task.options.dilation)"),
        ("--dilation-levels", "multiples of the dilation (task.options.dilation_levels)"),
        ("--global-nodes", "global nodes joined to every node (task.options.global_nodes)"),
    ):
        p.add_argument(flag, type=_int_at_least(0), default=None, help=f"count the edges of {what}")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_inspect)

    p = add(
        "convert",
        help="convert a MeshGraphNets TFRecord dataset, or a LagrangeBench (HDF5) or "
        "DeepMind learning_to_simulate (TFRecord) particle dataset, to native HDF5",
    )
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--splits", nargs="*", type=_split_name, default=None)
    p.add_argument("--compression", choices=["gzip", "lzf"], default=None)
    p.set_defaults(func=_cmd_convert)

    p = add("generate", help="simulate a built-in dataset (HDF5; zarr for shallow_water)")
    from meshsim.config import GENERATE_DOMAINS

    p.add_argument("domain", choices=list(GENERATE_DOMAINS))
    p.add_argument("--out", required=True)
    p.add_argument("--trajectories", type=_int_at_least(1), default=10)
    p.add_argument("--steps", type=_int_at_least(3), default=300, help="frames per trajectory")
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--split", type=_split_name, default="train")
    p.add_argument(
        "--mesh-resolution",
        type=_positive_float,
        default=1.0,
        help="mesh refinement factor (1: ~1.9k-node channel, ~1.6k-node flag, 5.625° grid; "
        "particle cases: divides the particle spacing, 1: ~0.5-2k particles)",
    )
    p.add_argument(
        "--region",
        type=_region,
        default=None,
        help="shallow_water: also write a fine cut-out over LAT_MIN,LAT_MAX,LON_MIN,LON_MAX "
        "(degrees; a box running east, e.g. 20,60,340,40) into OUT/regional",
    )
    p.add_argument(
        "--region-resolution",
        type=_positive_float,
        default=2.0,
        help="how many times finer the regional grid is than the global one (default 2)",
    )
    p.add_argument(
        "--diurnal",
        action="store_true",
        help="shallow_water only: add a 2m_temperature channel with a diurnal cycle "
        "(a column model heated by the solar radiation, carried by the flow)",
    )
    p.set_defaults(func=_cmd_generate)

    p = add("train", help="train a model from an experiment config")
    p.add_argument("--config", required=True, help="experiments/<name>.py with get_config()")
    p.add_argument("--workdir", required=True)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, e.g. model.latent_size=64 (repeatable)",
    )
    p.add_argument(
        "--steps", type=_int_at_least(1), default=None, help="stop after this many steps"
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="one process of a multi-process run (jax.distributed); the values below, "
        "MESHSIM_COORDINATOR/_NUM_PROCESSES/_PROCESS_ID, or the cluster's (SLURM, ...)",
    )
    p.add_argument("--coordinator", default=None, help="host:port of process 0")
    p.add_argument("--num-processes", type=_int_at_least(1), default=None)
    p.add_argument("--process-id", type=_int_at_least(0), default=None)
    p.set_defaults(func=_cmd_train)

    for name, func, text in (
        ("rollout", _cmd_rollout, "roll out a trained model, save rollouts to HDF5"),
        (
            "evaluate",
            _cmd_evaluate,
            "rollout RMSE vs persistence and physical diagnostics, writes metrics.json",
        ),
    ):
        p = add(name, help=text)
        p.add_argument("--workdir", required=True)
        p.add_argument("--split", type=_split_name, default="valid")
        p.add_argument(
            "--num", type=_int_at_least(1), default=None, help="trajectories (default all)"
        )
        p.add_argument(
            "--steps",
            type=_int_at_least(1),
            default=None,
            help="rollout length (default: the data's; longer where the prescribed values "
            "are constant)",
        )
        _add_data_overrides(p)
        if name == "rollout":
            p.add_argument(
                "--export",
                action="store_true",
                help="also write ParaView files (XDMF / VTU) under paraview/",
            )
        else:
            p.add_argument(
                "--forecast",
                default=None,
                help="a weather run only: score this forecast store (WeatherBench2's "
                "convention, e.g. written by meshsim forecast, members along realization) "
                "instead of the run's own rollouts",
            )
        p.set_defaults(func=func)

    p = add(
        "forecast",
        help="weather forecasts from many initial times, written as one zarr store in "
        "WeatherBench2's forecast convention",
    )
    p.add_argument("--workdir", required=True)
    p.add_argument(
        "--init-times",
        "--init-time",
        dest="init_times",
        required=True,
        help="times of the data: one (2000-01-03T06), a comma list, or a range START/STOP "
        "(every time between) or START/STOP/STEP (e.g. 2000-01-02T00/2000-01-05T00/12h)",
    )
    p.add_argument(
        "--batch",
        type=_int_at_least(1),
        default=8,
        help="initial times per compiled rollout call (device memory grows with it)",
    )
    p.add_argument("--steps", type=_int_at_least(1), required=True, help="6-h steps (lead times)")
    p.add_argument("--out", required=True, help="a new zarr store, e.g. forecast.zarr")
    p.add_argument("--split", type=_split_name, default="valid")
    p.add_argument(
        "--members",
        type=_int_at_least(1),
        default=None,
        help="ensemble members per initial time (an ensemble run, model.ensemble.kind); "
        "written along WeatherBench2's `realization` dim",
    )
    p.add_argument(
        "--seed", type=_int_at_least(0), default=0, help="the ensemble members' random seed"
    )
    _add_data_overrides(p)
    p.set_defaults(func=_cmd_forecast)

    p = add("plot", help="plots and animations for a run directory")
    p.add_argument("--workdir", required=True)
    p.set_defaults(func=_cmd_plot)

    p = add("demo", help="generate data, train, roll out and report (CPU-sized)")
    p.add_argument("--workdir", default="runs/demo")
    p.add_argument("--config", default="experiments/cylinder_flow_lite.py")
    p.add_argument("--quick", action="store_true", help="a minutes-long smoke version")
    p.set_defaults(func=_cmd_demo)
    return parser


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache for CLI runs.

    A second `meshsim train/rollout/evaluate` of the same model then loads its
    compiled steps from disk (measured for the 16k-node paper model: train step
    1.70 s cold, 0.115 s warm; experiments/benchmarks/results/2026-11-21/latest.md).
    Location: $MESHSIM_COMPILATION_CACHE, default ~/.cache/meshsim/jax; set it
    to an empty string to disable. Works in a process that has compiled before
    (`main` called from a notebook or a test): JAX reads the setting when it first
    compiles, so the cache is reset to pick up the new directory.
    """
    path = os.environ.get(
        "MESHSIM_COMPILATION_CACHE",
        os.path.join(os.path.expanduser("~"), ".cache", "meshsim", "jax"),
    )
    if not path:
        return None
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    if jax.config.jax_compilation_cache_dir != path:
        jax.config.update("jax_compilation_cache_dir", path)
        compilation_cache.reset_cache()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


# Commands that compile and run steps: they use the compilation cache, and the
# `meshsim` command starts itself again with huge pages for them (`meshsim.hugepages`).
COMPUTING = ("train", "rollout", "evaluate", "forecast", "demo")

# Library errors about the input or the environment: reported by their message alone.
# (NonFiniteError is a FloatingPointError, CheckpointError an OSError.)
EXPECTED_ERRORS = (ValueError, TypeError, OSError, ArithmeticError, ImportError)


def _error(command: str, message: str) -> None:
    print(f"meshsim {command}: error: {message}", file=sys.stderr)


def _chain(error: BaseException) -> list[BaseException]:
    """`error` and the exceptions it was raised from or during (`__cause__`/`__context__`)."""
    out, seen = [], set()
    while error is not None and id(error) not in seen and len(out) < 20:
        seen.add(id(error))
        out.append(error)
        error = error.__cause__ or error.__context__
    return out


_FILENAME = re.compile(r"filename = '([^']+)'")  # in HDF5's error text


def _published_name(path: str) -> str:
    """The path a temporary of `meshsim.atomic` was to become (each temporary component
    of `path` replaced by its target's name)."""
    parts = [
        (m["name"] if (m := TEMPORARY_NAME.match(part)) else part) for part in path.split(os.sep)
    ]
    return os.sep.join(parts)


def no_space_path(errors: list[BaseException], default: str) -> str | None:
    """The path that the "no space left on device" errors among `errors` (and the
    exceptions they were raised from) name, else `default` (the command's output);
    None when none of them is a full disk."""
    found = False
    for e in (c for error in errors for c in _chain(error)):
        if not is_disk_full(e):
            continue
        found = True
        if isinstance(e, OSError) and e.filename:
            return _published_name(os.fspath(e.filename))
        match = _FILENAME.search(str(e))
        if match:
            return _published_name(match.group(1))
    return default if found else None


def _output_of(args) -> str:
    """Where a command writes (named in a full-disk error when the library does not)."""
    for name in ("out", "dst", "workdir"):
        value = getattr(args, name, None)
        if value:
            return value
    return "."


class _LibraryErrors:
    """Collects the errors that libraries would print as tracebacks on their own, so the
    command reports one line (`--debug` prints them as well):

    * `errors`: exceptions of library threads (orbax's, prefetching): a command whose
      thread failed fails with that thread's error;
    * `ignored`: exceptions Python can only print: a finalizer's (HDF5 objects of a file
      that could not be written), or a C++ callback's (tensorstore's, into an event loop
      that orbax already closed). They are not failures by themselves, but say why one
      happened (a full disk).

    `install` sets `threading.excepthook`, `sys.unraisablehook` and `sys.excepthook`;
    `restore` puts the previous ones back.
    """

    def __init__(self, debug: bool):
        self.debug, self.errors, self.ignored = debug, [], []
        self._previous = None

    def _thread(self, hook_args) -> None:
        if hook_args.exc_type is SystemExit:
            return
        self.errors.append(hook_args.exc_value)
        if self.debug:
            threading.__excepthook__(hook_args)

    def _unraisable(self, hook_args) -> None:
        self.ignored.append(hook_args.exc_value)
        if self.debug:
            sys.__unraisablehook__(hook_args)

    def _uncaught(self, exc_type, exc_value, tb) -> None:
        self.ignored.append(exc_value)
        if self.debug:
            sys.__excepthook__(exc_type, exc_value, tb)

    def install(self) -> None:
        self._previous = (threading.excepthook, sys.unraisablehook, sys.excepthook)
        threading.excepthook, sys.unraisablehook = self._thread, self._unraisable
        sys.excepthook = self._uncaught

    def restore(self) -> None:
        if self._previous is not None:
            threading.excepthook, sys.unraisablehook, sys.excepthook = self._previous


class _NoTracebacks(logging.Filter):
    """Drops the tracebacks that libraries attach to log records (shown with --debug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the final flush stays silent
    (the pattern of the Python documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests)
        pass


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns its exit status (argparse exits with 2 on usage errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command in COMPUTING and not sys.argv[0].endswith(".py"):
        hugepages.reexec(sys.argv)  # the `meshsim` command, started again with huge pages
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # orbax logs every file it touches, and its failures with tracebacks: those become
    # the command's one error line (all of it with --debug or -v).
    quiet_libraries = not (args.debug or args.verbose)
    logging.getLogger("absl").setLevel(logging.CRITICAL if quiet_libraries else logging.WARNING)
    if not args.debug:
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, _NoTracebacks) for f in handler.filters):
                handler.addFilter(_NoTracebacks())
    logging.getLogger("jax").setLevel(logging.WARNING)  # e.g. "Unable to initialize backend"
    if args.command is None:
        parser.print_help()
        return 0
    thread_errors = _LibraryErrors(args.debug)
    thread_errors.install()
    if os.environ.get(hugepages.REEXECUTED):
        logging.getLogger(__name__).debug(
            "started again with GLIBC_TUNABLES=%s", os.environ.get("GLIBC_TUNABLES")
        )
    try:
        if args.command in COMPUTING:
            enable_compilation_cache()
        code = int(args.func(args) or 0)
        if thread_errors.errors:  # the command finished, but a library thread failed
            raise RuntimeError("a background thread failed") from thread_errors.errors[0]
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by it
    except KeyboardInterrupt:
        _error(args.command, "interrupted")
        return 130
    except Exception as e:
        if args.debug:
            traceback.print_exc()
        candidates = [e, *thread_errors.errors, *thread_errors.ignored]
        full = no_space_path(candidates, _output_of(args))
        if full is not None:
            _error(
                args.command,
                f"{full}: no space left on device (nothing half-written is left; free some space "
                "and run it again)",
            )
            if argv is None:  # the real command: see _exit_now
                _exit_now(1)
            return 1
        if thread_errors.errors and not isinstance(e, EXPECTED_ERRORS):
            e = thread_errors.errors[0]  # the main thread's error followed the thread's
        if isinstance(e, EXPECTED_ERRORS):
            _error(args.command, _one_line(e))
        else:
            _error(
                args.command,
                f"unexpected {type(e).__name__}: {_one_line(e)} "
                f"(run 'meshsim --debug {args.command} ...' for the traceback)",
            )
        return 1
    finally:
        if argv is not None:  # in-process (tests, notebooks); the command keeps them to exit
            thread_errors.restore()


def _exit_now(code: int) -> None:
    """Ends the process at once after a full disk: HDF5 and tensorstore objects that
    failed mid-write can crash (SIGSEGV) in their finalizers at interpreter exit, after
    the error was reported; everything meshsim writes is atomic, so there is nothing
    left to flush but the standard streams."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
