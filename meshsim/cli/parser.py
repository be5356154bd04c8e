"""The `meshsim` command's argument parser: sub-commands, their options, and the
`type=` checks that make a value out of range a usage error (exit 2, one line)."""

from __future__ import annotations

import argparse
import math
import os

import meshsim
from meshsim.cli.commands import (
    cmd_convert,
    cmd_demo,
    cmd_evaluate,
    cmd_forecast,
    cmd_generate,
    cmd_inspect,
    cmd_plot,
    cmd_rollout,
    cmd_train,
    parse_region,
)


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
    p.set_defaults(func=cmd_inspect)

    p = add(
        "convert",
        help="convert a MeshGraphNets TFRecord dataset, or a LagrangeBench (HDF5) or "
        "DeepMind learning_to_simulate (TFRecord) particle dataset, to native HDF5",
    )
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--splits", nargs="*", type=_split_name, default=None)
    p.add_argument("--compression", choices=["gzip", "lzf"], default=None)
    p.set_defaults(func=cmd_convert)

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
        type=parse_region,
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
    p.set_defaults(func=cmd_generate)

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
    p.set_defaults(func=cmd_train)

    for name, func, text in (
        ("rollout", cmd_rollout, "roll out a trained model, save rollouts to HDF5"),
        (
            "evaluate",
            cmd_evaluate,
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
    p.set_defaults(func=cmd_forecast)

    p = add("plot", help="plots and animations for a run directory")
    p.add_argument("--workdir", required=True)
    p.set_defaults(func=cmd_plot)

    p = add("demo", help="generate data, train, roll out and report (CPU-sized)")
    p.add_argument("--workdir", default="runs/demo")
    p.add_argument("--config", default="experiments/cylinder_flow_lite.py")
    p.add_argument("--quick", action="store_true", help="a minutes-long smoke version")
    p.set_defaults(func=cmd_demo)
    return parser
