"""Every command and code example in README.md runs in the suite, at tiny sizes.

The README's fenced blocks are parsed, not copied: a ```python block is executed as
written; each `meshsim ...` line of a ```bash block is run in README order through
`meshsim.cli.main` in one temporary directory, with `tiny()` capping its sizes
(trajectories, steps, model width), and the files it is documented to write are
checked. Any other shell line must be listed in `NOT_RUN_HERE` with the reason, so a
new kind of README line forces a decision instead of going untested.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shlex

import numpy as np
import pytest

from meshsim.cli import build_parser, main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")

# Shell lines of the README that this module does not run, each with the reason.
NOT_RUN_HERE = {
    "make demo": "the full-size demo (~7 min); tests/test_cli.py runs `meshsim demo --quick`",
    "make test": "the suite itself",
    "make demo-particles": "the full-size particles demo; tests/test_particles_cli.py runs "
    "`meshsim demo --config experiments/particles_dam_break.py --quick`",
    "make demo-plate": "the full-size plate demo; tests/test_contact_demos.py runs "
    "`meshsim demo --config experiments/deforming_plate_lite.py --quick`",
    "make demo-sphere": "the full-size cloth-on-sphere demo; tests/test_contact_demos.py "
    "runs `meshsim demo --config experiments/sphere_simple_lite.py --quick`",
    "python experiments/stretched_grid.py --workdir runs/stretched-vs-uniform": "two "
    "full trainings (~17 min here); tests/test_stretched_grid.py runs its `compare` "
    "with --quick's sizes",
    "make demo-ensemble": "three full trainings (~17 min here); "
    "tests/test_ensemble_forecasts.py runs experiments/ensemble_demo.py's `compare` with "
    "--quick's sizes",
    "make demo-weather": "the full-size weather demo; tests/test_weather_cli.py runs "
    "`meshsim demo --config experiments/weather_shallow_water.py --quick`",
    # Install.
    "python3.11 -m venv .venv": "`make env` creates the venv this way; `make test` (the CI "
    "entry point, .ci/run) depends on it",
    ".venv/bin/pip install -c constraints.txt -e '.[dev]'": "`make env` runs this install "
    "on every fresh clone and CI run",
    ".venv/bin/pip install -c constraints.txt 'jax[cuda12]==0.10.2'": "needs an NVIDIA GPU "
    "and a CUDA 12 driver; the suite runs on CPU",
    # Notebooks.
    "MESHSIM_NOTEBOOK_SIZE=tiny .venv/bin/jupyter execute notebooks/01_quickstart.ipynb": (
        "tests/test_notebooks.py executes every notebook at this size with nbclient, the "
        "library behind `jupyter execute`"
    ),
    ".venv/bin/pip install jupyterlab '&&' .venv/bin/jupyter lab notebooks/": "an "
    "interactive UI, in no extra: a download and a server, nothing to check",
}
_DEVICES8 = "XLA_FLAGS=--xla_force_host_platform_device_count=8 meshsim train --config "
_DEVICES8 += "experiments/cylinder_flow_lite.py --workdir "
_PARALLEL = "needs 8 devices (a subprocess): tests/test_parallel_training.py trains a tiny run "
_PARALLEL += "with these parallel settings and checks its losses against one device"
_TWO = "XLA_FLAGS=--xla_force_host_platform_device_count=2 meshsim train --config "
_TWO += "experiments/cylinder_flow_lite.py --workdir runs/two --set data.batch_size=4 "
_TWO += "--distributed --coordinator localhost:12355 --num-processes 2 --process-id "
_TWO_WHY = "tests/test_distributed.py launches these two processes on a tiny config"
NOT_RUN_HERE.update(
    {
        _DEVICES8 + "runs/dp --set data.batch_size=8 --set parallel.data=8": _PARALLEL,
        _DEVICES8 + "runs/pmap --set data.batch_size=4 --set parallel.backend=pmap "
        "--set parallel.data=4": _PARALLEL,
        _DEVICES8 + "runs/gp --set data.batch_size=4 --set parallel.graph=2 "
        "--set parallel.data=4": _PARALLEL
        + "; tests/test_per_mesh_partitions.py does so on trajectories with different meshes",
        _TWO + "0 '&'": _TWO_WHY,
        _TWO + "1": _TWO_WHY,
        "srun --nodes=4 --ntasks-per-node=1 --gpus-per-task=8 meshsim train --config "
        "experiments/cylinder_flow.py --workdir runs/cf --set data.batch_size=32 "
        "--distributed": "needs a SLURM cluster; the two-process launch above is tested",
        "meshsim train --config experiments/cylinder_flow_lite.py --workdir runs/heat "
        "--set task.module=heat.py --set task.name=heat --set data.path=data/heat": "needs "
        "the heat data: tests/test_new_domain.py writes heat.py and its data, then runs "
        "this train command and evaluate, rollout and plot on it",
    }
)
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}

# --------------------------------------------------------------------- README parsing

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def readme_blocks() -> list[tuple[str, int, str]]:
    """(language, first line number of the body, body) of each fenced block."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return [
        (m.group(1).lower(), text.count("\n", 0, m.start(2)) + 1, m.group(2))
        for m in FENCE.finditer(text)
    ]


def shell_lines(body: str) -> list[tuple[int, str]]:
    """(line offset in `body`, logical line): `\\` continuations joined, comments dropped."""
    out, pending, start = [], "", 0
    for offset, raw in enumerate(body.splitlines()):
        if not pending:
            start = offset
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        words = shlex.split(line, comments=True)
        if words:
            out.append((start, shlex.join(words)))
    if pending.strip():
        out.append((start, shlex.join(shlex.split(pending, comments=True))))
    return out


def readme_commands() -> list[str]:
    """The `meshsim ...` lines in README order; fails on an unknown kind of line/block."""
    commands, unknown = [], []
    for lang, lineno, body in readme_blocks():
        if lang == "python":
            continue  # executed by test_readme_python_block
        if lang not in SHELL_LANGUAGES:
            unknown.append(f"README.md:{lineno}: a ```{lang} block: decide how to test it")
            continue
        for offset, line in shell_lines(body):
            if line.startswith("meshsim ") and line not in NOT_RUN_HERE:
                commands.append(line)
            elif line not in NOT_RUN_HERE:
                unknown.append(
                    f"README.md:{lineno + offset}: {line!r} is neither a meshsim command nor in "
                    "NOT_RUN_HERE: run it in this module or add it there with a reason"
                )
    assert not unknown, "\n".join(unknown)
    return commands


def python_blocks() -> list[tuple[int, str]]:
    return [(lineno, body) for lang, lineno, body in readme_blocks() if lang == "python"]


# --------------------------------------------------------------------- tiny sizes

TINY_TRAIN = [
    "train.steps=6",
    "train.accumulate_steps=2",
    "train.log_every=2",
    "train.checkpoint_every=3",
    "train.eval_every=0",
    "model.latent_size=8",
    "model.num_message_passing_steps=2",
    "data.pool_size=2",
]
# sub-command -> {flag: cap}: a larger value is lowered, a missing flag added.
CAPS = {
    # 8 frames: the README's long-rollout line trains on windows of 1 + 3 x 2 frames
    # (train.unroll_steps=3, model.bundle_steps=2).
    "generate": {"--trajectories": 2, "--steps": 8},
    "evaluate": {"--num": 1, "--steps": 4},
    "rollout": {"--num": 1, "--steps": 4},
    "forecast": {"--steps": 3},
}
# sub-command -> {flag: value} added when the command does not give the flag.
DEFAULTS = {
    "generate": {"--mesh-resolution": "0.3"},  # ~210-node channel: ~2 s per generate call
    "demo": {"--config": "experiments/cylinder_flow_lite.py"},
}


MAX_BUNDLE = 2  # frames per network call in tiny runs (the config's or the README's, capped)


def _bundle_steps(argv: list[str]) -> int:
    """The `model.bundle_steps` a `train` argv asks for: its last override, else the
    config file's."""
    sets = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--set"]
    given = [s.split("=", 1)[1] for s in sets if s.startswith("model.bundle_steps=")]
    if given:
        return int(given[-1])
    from meshsim.config import load_config

    _, config = _find(argv, "--config")
    return load_config(config).model.bundle_steps if config else 1


def _find(argv: list[str], flag: str) -> tuple[int | None, str | None]:
    for i, arg in enumerate(argv):
        if arg == flag:
            return i, argv[i + 1]
        if arg.startswith(flag + "="):
            return i, arg.split("=", 1)[1]
    return None, None


def _put(argv: list[str], flag: str, value) -> None:
    i, _ = _find(argv, flag)
    if i is None:
        argv += [flag, str(value)]
    elif argv[i] == flag:
        argv[i + 1] = str(value)
    else:
        argv[i] = f"{flag}={value}"


def _dest(flag: str) -> str:
    """The argparse attribute of `--a-flag`: `a_flag`."""
    return flag.lstrip("-").replace("-", "_")


def tiny(argv: list[str]) -> list[str]:
    """`argv` (without `meshsim`) with sizes capped for the test suite.

    Generic per sub-command: every flag and argument the user typed stays; sizes are
    lowered or added; relative `--config` paths (relative to the repository root in the
    README) become absolute; `train` gets `--set` overrides appended, which win over the
    README's (later overrides win in `meshsim.config.apply_overrides`).
    """
    argv = list(argv)
    command = argv[0]
    # a forecast store sets its own forecasts and lead times (evaluate refuses --steps)
    store = command == "evaluate" and _find(argv, "--forecast")[0] is not None
    for flag, cap in {} if store else CAPS.get(command, {}).items():
        _, value = _find(argv, flag)
        _put(argv, flag, cap if value is None else min(int(value), cap))
    for flag, value in DEFAULTS.get(command, {}).items():
        if _find(argv, flag)[0] is None:
            _put(argv, flag, value)
    _, config = _find(argv, "--config")
    if config is not None and not os.path.isabs(config):
        _put(argv, "--config", os.path.join(REPO, config))
    if command == "train":
        for override in TINY_TRAIN:
            argv += ["--set", override]
        bundle = _bundle_steps(argv)
        if bundle > MAX_BUNDLE:  # the tiny trajectories hold too few frames per window
            argv += ["--set", f"model.bundle_steps={MAX_BUNDLE}"]
    if command == "demo" and "--quick" not in argv:
        argv.append("--quick")
    return argv


# --------------------------------------------------------------------- set-up and checks


def _nonempty(path) -> None:
    assert os.path.isfile(path), f"{path} was not written"
    assert os.path.getsize(path) > 0, f"{path} is empty"


def _wrote(out: str) -> list[str]:
    return [line[len("wrote ") :].strip() for line in out.splitlines() if line.startswith("wrote ")]


def _grid_trajectory(nx: int, ny: int, frames: int, seed: int) -> dict[str, np.ndarray]:
    """A cylinder_flow-layout trajectory on a structured triangle mesh."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(0, 1.6, nx), np.linspace(0, 0.41, ny), indexing="ij")
    pos = np.stack([x.ravel(), y.ravel()], -1).astype(np.float32)
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
    cells = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    node_type = np.zeros((nx, ny), np.int32)
    node_type[:, [0, -1]] = 6  # WALL_BOUNDARY
    node_type[0], node_type[-1] = 4, 5  # INFLOW, OUTFLOW
    n = nx * ny
    return {
        "cells": cells.astype(np.int32)[None],
        "mesh_pos": pos[None],
        "node_type": node_type.reshape(1, n, 1),
        "velocity": rng.normal(size=(frames, n, 2)).astype(np.float32),
        "pressure": rng.normal(size=(frames, n, 1)).astype(np.float32),
    }


def setup_convert(args) -> None:
    """A tiny MeshGraphNets-format TFRecord dataset at SRC (2 trajectories, 4 frames)."""
    from meshsim.data import infer_meta, write_tfrecord_split

    trajectories = [_grid_trajectory(4, 3, 4, 0), _grid_trajectory(5, 3, 4, 1)]
    meta = infer_meta(trajectories[0], simulator="comsol", dt=0.01, collision_radius=None)
    for split in args.splits or ["train"]:
        assert write_tfrecord_split(args.src, split, trajectories, meta) == 2


# Remote sources a README python block reads, and how the suite stands in for them: a
# local store written in the publisher's layout (tests/wb2_data.py) replaces the URL.
WB2_SOURCE = (
    "gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr"
)


def write_wb2_source(path: str) -> str:
    """A WB2-layout ERA5 store at `path` covering the README's cut (Jan 2016 and 2017)."""
    from wb2_data import wb2_era5_like, write_wb2

    six = np.timedelta64(6, "h")
    times = np.concatenate(
        [
            np.arange(np.datetime64("2016-01-01", "ns"), np.datetime64("2016-01-09", "ns"), six),
            np.arange(np.datetime64("2017-01-01", "ns"), np.datetime64("2017-01-05", "ns"), six),
        ]
    )
    return write_wb2(wb2_era5_like(resolution=30.0, times=times), path)


def standing_in(source: str) -> str:
    """A README python block with its remote sources replaced by local stand-ins (written
    into the working directory)."""
    if WB2_SOURCE in source:
        local = write_wb2_source("wb2_source.zarr")
        source = source.replace(WB2_SOURCE, local)
    return source


def setup_inspect(args) -> None:
    """The ERA5 cut `meshsim inspect` describes: made by the README's own lines."""
    if os.path.exists(args.dir) or "era5" not in args.dir:
        return
    for lineno, source in python_blocks():
        if WB2_SOURCE in source:
            exec(compile("\n" * (lineno - 1) + standing_in(source), README, "exec"), {})


SETUP = {"convert": setup_convert, "inspect": setup_inspect}


def check_generate(args, out):
    if args.domain == "shallow_water":  # WeatherBench2-layout zarr
        import xarray as xr

        ds = xr.open_zarr(os.path.join(args.out, f"{args.split}.zarr"))
        assert ds.sizes["time"] >= args.steps and "geopotential" in ds
        if args.region:  # the fine cut-out of the same simulations
            regional = xr.open_zarr(os.path.join(args.out, "regional", f"{args.split}.zarr"))
            assert regional.sizes["time"] == ds.sizes["time"]
        return
    _nonempty(os.path.join(args.out, f"{args.split}.h5"))
    _nonempty(os.path.join(args.out, "meta.json"))


def check_convert(args, out):
    from meshsim.data import list_splits, open_dataset

    _nonempty(os.path.join(args.dst, "meta.json"))
    for split in args.splits or list_splits(args.src):
        _nonempty(os.path.join(args.dst, f"{split}.h5"))
        assert len(open_dataset(args.dst, split, format="hdf5")) == 2


def check_inspect(args, out):
    from meshsim.data import list_splits, open_dataset
    from meshsim.data.weather import WeatherDataset, is_weather_directory

    if is_weather_directory(args.dir):
        assert out.startswith(f"weather dataset {args.dir}"), out
        for name in sorted(os.listdir(args.dir)):
            split = WeatherDataset(os.path.join(args.dir, name))
            assert f"{len(split.channels)} channels" in out and name in out
        return

    splits = list_splits(args.dir)
    assert splits, f"no splits in {args.dir}"
    report = json.loads(out) if args.json else None
    for split in splits:
        n = len(open_dataset(args.dir, split))
        if report is not None:
            assert report["splits"][split]["num_trajectories"] == n
        else:
            # mesh reports: split, format, trajectories; particle reports: split, trajectories
            row = rf"^\s*{re.escape(split)}\s+(\S+\s+)?{n}\s"
            assert re.search(row, out, re.MULTILINE), f"no '{split} ... {n}' row in:\n{out}"


def check_train(args, out):
    _nonempty(os.path.join(args.workdir, "config.json"))
    path = os.path.join(args.workdir, "metrics.jsonl")
    _nonempty(path)
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses and all(math.isfinite(v) for v in losses), records
    steps = os.listdir(os.path.join(args.workdir, "checkpoints"))
    assert any(s.isdigit() for s in steps), f"no checkpoint step in {steps}"


def check_evaluate(args, out):
    path = os.path.join(args.workdir, "metrics.json")
    _nonempty(path)
    with open(path) as f:
        metrics = json.load(f)
    if "lead_hours" in metrics:  # weather: scores by lead time and channel
        for kind in ("model", "persistence", "climatology"):
            for values in metrics["rmse"][kind].values():
                assert len(values) == len(metrics["lead_hours"])
                assert all(math.isfinite(v) for v in values), metrics
        for values in metrics["ensemble"]["crps"].values():  # probabilistic scores too
            assert len(values) == len(metrics["lead_hours"]) and min(values) > 0
        if getattr(args, "forecast", None):  # a store read back: as many members as written
            assert metrics["forecast"] == os.path.abspath(args.forecast)
            assert metrics["members"] == metrics["ensemble"]["members"] > 1
        return
    rmse = metrics["rollout_rmse"]
    for name in ("model", "persistence"):
        assert rmse[name], f"rollout_rmse.{name} is empty"
        assert all(math.isfinite(v) for v in rmse[name].values()), rmse


def check_rollout(args, out):
    _nonempty(os.path.join(args.workdir, "rollouts.h5"))
    if args.export:
        written = [
            os.path.join(root, name)
            for root, _, names in os.walk(os.path.join(args.workdir, "paraview"))
            for name in names
        ]
        assert written, "rollout --export wrote nothing under paraview/"
        for path in written:
            _nonempty(path)


def check_forecast(args, out):
    import xarray as xr

    from meshsim.runs.forecast import parse_init_times

    ds = xr.open_zarr(args.out)
    assert ds.sizes["prediction_timedelta"] == args.steps
    expected = parse_init_times(args.init_times, ds["time"].values)
    np.testing.assert_array_equal(ds["time"].values, expected)
    if args.members is not None:  # WeatherBench2's ensemble dim
        assert ds.sizes["realization"] == args.members
        assert float(ds[next(iter(ds.data_vars))].std("realization").max()) > 0


def check_plot(args, out):
    paths = _wrote(out)
    assert paths, f"plot printed no 'wrote ...' line:\n{out}"
    for path in paths:
        _nonempty(path)
    names = {os.path.basename(p) for p in paths}
    assert names <= {"loss.png", "comparison.png", "rollout.gif"}, names


def check_demo(args, out):
    for name in ("metrics.json", "report.md", "loss.png"):
        _nonempty(os.path.join(args.workdir, name))


# sub-command -> the files it is documented to write (a README command without one fails).
CHECKS = {
    "generate": check_generate,
    "convert": check_convert,
    "inspect": check_inspect,
    "train": check_train,
    "evaluate": check_evaluate,
    "rollout": check_rollout,
    "forecast": check_forecast,
    "plot": check_plot,
    "demo": check_demo,
}


def _demo_exit(args) -> int:
    """The demo exits 1 when its model does not beat persistence: a verdict, not a crash."""
    with open(os.path.join(args.workdir, "metrics.json")) as f:
        metrics = json.load(f)
    return 0 if metrics.get("passed", metrics["beats_persistence"]) else 1


EXPECTED_EXIT = {"demo": _demo_exit}


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:
        return 0 if e.code is None else e.code


# --------------------------------------------------------------------- tests


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MESHSIM_COMPILATION_CACHE", str(tmp_path / "jax_cache"))
    return tmp_path


@pytest.mark.parametrize(
    "lineno, source", python_blocks(), ids=[f"README.md:{n}" for n, _ in python_blocks()]
)
def test_readme_python_block(in_tmp, lineno, source):
    source = standing_in(source)
    code = compile("\n" * (lineno - 1) + source, README, "exec")  # tracebacks name README lines
    exec(code, {"__name__": "__readme__"})
    if "data/era5_5.625deg" in source:  # the cut trains the preset as it stands
        from meshsim.config import load_config
        from meshsim.runs.build import open_split

        config = load_config(
            os.path.join(REPO, "experiments", "era5_wb2_lowres.py"),
            ["data.path=data/era5_5.625deg"],
        )
        for split in ("train", "valid"):
            assert len(open_split(config, split).channels) == 6 * 2 + 5


def _paths(args) -> tuple[set[str], set[str]]:
    """(paths a README command reads, paths it writes), as the run directories and
    datasets it names (a train reads its config's `data.path` and `train.init_from`)."""
    command = args.command
    if command == "generate":
        return set(), {args.out}
    if command == "convert":
        return set(), {args.dst}
    if command == "inspect":
        return {args.dir}, set()
    if command == "train":
        from meshsim.config import load_config

        config = load_config(args.config, args.set)
        reads = {config.data.path} | ({config.train.init_from} - {""})
        return reads, {args.workdir}
    reads = {args.workdir} | ({getattr(args, "forecast", None)} - {None})
    return reads, {args.workdir}


@functools.cache  # collection and every chain's test read it: README and configs parsed once
def command_chains() -> dict[str, list[str]]:
    """The README's commands cut into independent chains, each in README order: commands
    on one run directory (or linked by `train.init_from`) form one chain, which starts
    with the commands that made the datasets it reads. The chains run as separate tests
    (in parallel under xdist); each still runs its commands one after another, as a user
    would type them."""
    parser = build_parser()
    commands = readme_commands()
    io = [_paths(parser.parse_args(tiny(shlex.split(c)[1:]))) for c in commands]
    makes_data = [shlex.split(c)[1] in {"generate", "convert"} for c in commands]
    group = list(range(len(commands)))

    def root(i):
        while group[i] != i:
            i = group[i]
        return i

    last_writer: dict[str, int] = {}
    for i, (reads, writes) in enumerate(io):  # an inspection joins a run on its dataset
        runs = [j for j, (r, w) in enumerate(io) if w and reads & r and not makes_data[j]]
        if not writes and runs:
            group[root(i)] = root(runs[0])
        for path in reads:
            j = last_writer.get(path)
            if j is not None and not makes_data[j]:
                group[root(i)] = root(j)
        for path in writes:
            last_writer[path] = i
    chains: dict[str, list[str]] = {}
    members: dict[int, list[int]] = {}
    for i in range(len(commands)):
        if not makes_data[i]:
            members.setdefault(root(i), []).append(i)
        elif not any(io[j][0] & io[i][1] for j in range(len(commands)) if not makes_data[j]):
            same = [j for j in members if makes_data[j] and io[j][1] == io[i][1]]
            members.setdefault(same[0] if same else i, []).append(i)  # data nothing reads
    for first, own in members.items():
        needed, wanted = set(own), set().union(*(io[i][0] for i in own))
        for i in range(max(own), -1, -1):
            if makes_data[i] and io[i][1] & wanted:
                needed.add(i)
        steps = [commands[i] for i in sorted(needed)]
        name = sorted(io[first][1] or io[first][0])[0]
        assert name not in chains, f"two README chains start on {name}"
        chains[name] = steps
    return chains


def test_every_readme_command_is_in_a_chain():
    commands = readme_commands()
    assert commands, "README.md shows no meshsim command"
    missing = {shlex.split(c)[1] for c in commands} - set(CHECKS)
    assert not missing, f"add file checks for {sorted(missing)} to CHECKS"
    chains = command_chains()
    chained = [c for chain in chains.values() for c in chain]
    assert set(chained) == set(commands)
    for chain in chains.values():  # each chain keeps README order
        assert chain == sorted(chain, key=commands.index)


@pytest.mark.parametrize("chain", sorted(command_chains()))
def test_readme_commands_run_in_order(in_tmp, capsys, chain):
    parser = build_parser()
    for line in command_chains()[chain]:
        argv = tiny(shlex.split(line)[1:])
        args = parser.parse_args(argv)
        if args.command in SETUP:
            SETUP[args.command](args)
        capsys.readouterr()
        try:
            code = _run(argv)
        except Exception as e:
            e.add_note(f"README command: {line}\nrun as: meshsim {shlex.join(argv)}")
            raise
        out, err = capsys.readouterr()
        expected = EXPECTED_EXIT.get(args.command, lambda _: 0)(args)
        assert code == expected, (
            f"`{line}` (run as {shlex.join(argv)}) exited {code}\n{out}\n{err[-3000:]}"
        )
        CHECKS[args.command](args, out)


def test_not_run_here_lists_only_readme_lines():
    shown = {
        line
        for lang, _, body in readme_blocks()
        if lang in SHELL_LANGUAGES
        for _, line in shell_lines(body)
    }
    assert set(NOT_RUN_HERE) <= shown, f"stale entries: {sorted(set(NOT_RUN_HERE) - shown)}"


def test_tiny_keeps_what_the_readme_types():
    parser = build_parser()
    for line in readme_commands():
        argv = shlex.split(line)[1:]
        small = tiny(argv)
        assert small[0] == argv[0], line
        flags = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
        assert flags <= {a.split("=", 1)[0] for a in small if a.startswith("-")}, line
        given, run = vars(parser.parse_args(argv)), vars(parser.parse_args(small))
        capped = {_dest(f): c for f, c in CAPS.get(argv[0], {}).items()}
        defaulted = {_dest(f) for f in DEFAULTS.get(argv[0], {}) if f not in flags}
        for key, value in given.items():
            if key in defaulted and key != "config":
                continue  # not typed in the README: tiny() may choose it
            if key in capped and run.get("forecast"):
                assert run[key] == value, (line, key)  # a store: nothing capped
            elif key in capped:
                assert run[key] <= capped[key], (line, key)
                assert value is None or run[key] <= value, (line, key)
            elif key == "config":
                assert os.path.samefile(os.path.join(REPO, value), run[key]), line
            elif key == "set":
                assert run[key][: len(value)] == value, line  # README overrides first
            elif key == "quick":
                assert run[key], line
            else:
                assert run[key] == value, (line, key)
        if argv[0] == "train":
            from meshsim.config import load_config

            config = load_config(run["config"], run["set"])
            latent = config.model.latent_size
            assert config.train.steps <= 6 and latent is not None and latent <= 8, line
            for override in given["set"]:  # README values that are not sizes survive
                key, value = override.split("=", 1)
                if not any(o.startswith(key + "=") for o in TINY_TRAIN):
                    section, name, *option = key.split(".")
                    got = getattr(getattr(config, section), name)
                    got = got[option[0]] if option else got  # task.options.<key>
                    assert str(got) == value, override
