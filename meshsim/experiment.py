"""Run directories: train, roll out, evaluate and plot from an `ExperimentConfig`.

A run directory (`meshsim.runs`) holds `config.json`, `checkpoints/<step>/`
(orbax), `normalizers.json`, `metrics.jsonl` (one JSON object per logged step),
`rollouts.h5`, `metrics.json` and plots. `run_training` resumes from it: the
batch stream and the per-step random keys are pure functions of (seed, step),
so a resumed run reproduces an uninterrupted one.

Failures leave nothing half-written: `run_training` reads and checks everything
(config, data, validation split) before it writes `config.json`, and a run that
fails before its first checkpoint removes what it created, so a corrected retry
starts clean. A non-finite loss or gradient norm stops the run before the next
checkpoint (`train.on_nonfinite="stop"`: the last good checkpoint stays the
latest) or is skipped (`"skip"`, counted as `skipped` in metrics.jsonl); no
checkpoint with non-finite values is ever written. Evaluation streams rollouts to
`rollouts.h5` (`meshsim.evaluation`) and refuses a model with non-finite values.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os

import jax

from meshsim import atomic
from meshsim.checkpoint import Checkpointer
from meshsim.config import ExperimentConfig
from meshsim.data import open_dataset
from meshsim.evaluation import (
    RolloutsWriter,
    evaluate_trajectories,
    export_rollouts,
    plot_first_rollout,
)
from meshsim.models import EncodeProcessDecode, get_model
from meshsim.runs import (
    load_config_of,
)
from meshsim.simulator import Simulator
from meshsim.tasks import TASKS, Task, get_task
from meshsim.train import (
    TrainState,
    abstract_train_state,
    count_nonfinite,
    make_optimizer,
)

logger = logging.getLogger(__name__)


def open_split(config: ExperimentConfig, split: str):
    """One split of the config's dataset: a mesh dataset (HDF5/TFRecord, `open_dataset`)
    or WeatherBench2-layout zarr/netCDF (`open_weather_split`, lazily)."""
    from meshsim.data.weather import is_weather_directory, open_weather_split

    if is_weather_directory(config.data.path):
        return open_weather_split(config.data.path, split, config.weather.variables)
    return open_dataset(config.data.path, split)


def build_task(config: ExperimentConfig, meta: dict | None = None) -> Task:
    """The task named by `config.task`, with the config's noise overrides, the options of
    the config section named after the task (`config.weather` for "weather") and, for
    tasks built from their data (their constructor takes `meta`), the dataset's meta."""
    kwargs = {}
    if config.noise_std is not None:
        kwargs["noise_std"] = config.noise_std
    if config.noise_gamma is not None:
        kwargs["noise_gamma"] = config.noise_gamma
    section = getattr(config, config.task, None)
    if dataclasses.is_dataclass(section):
        kwargs.update({f.name: getattr(section, f.name) for f in dataclasses.fields(section)})
    if _built_from_data(config.task):
        kwargs["meta"] = meta
    return get_task(config.task, **kwargs)


def _built_from_data(task_name: str) -> bool:
    """Whether the task's constructor takes its dataset's `meta` (weather: the channels)."""
    factory = TASKS.get(task_name)
    return factory is not None and "meta" in inspect.signature(factory).parameters


def _task_meta(task_name: str, dataset) -> dict | None:
    """The dataset meta a task is built from (None for tasks that need none)."""
    return dict(dataset.meta) if _built_from_data(task_name) else None


def build_model(config: ExperimentConfig, task: Task) -> EncodeProcessDecode:
    """The model named by `config.model.name`; its output comes from the task."""
    m = config.model
    try:
        dtype = jax.numpy.dtype(m.dtype)
    except TypeError as e:
        raise ValueError(
            f"model.dtype: expected a dtype name such as 'float32', got {m.dtype!r}"
        ) from e
    return get_model(
        m.name,
        output_size=task.output_size,
        output_node_set=task.node_set,
        latent_size=m.latent_size,
        num_message_passing_steps=m.num_message_passing_steps,
        mlp_hidden_layers=m.mlp_hidden_layers,
        activation=m.activation,
        layer_norm=m.layer_norm,
        aggregation=m.aggregation,
        concat_trick=m.concat_trick,
        remat=m.remat,
        scan_unroll=m.scan_unroll,
        dtype=dtype,
        bundle_steps=m.bundle_steps,
    )


def build_simulator(config: ExperimentConfig, meta: dict | None = None) -> Simulator:
    """Task + model of a config; raises ValueError/TypeError for bad settings."""
    task = build_task(config, meta)
    return Simulator(model=build_model(config, task), task=task)


def run_training(
    config: ExperimentConfig, workdir: str, *, max_steps: int | None = None, progress: bool = True
) -> TrainState:
    """Trains (or resumes) the run in `workdir` on the devices `config.parallel` asks
    for; returns the final state. See `meshsim.trainer.run_training`."""
    from meshsim.trainer import run_training as train  # trainer imports this module

    return train(config, workdir, max_steps=max_steps, progress=progress)


DATASET_META = "dataset_meta.json"  # the data a task was built from (weather: channels)
STATISTICS = "statistics.npz"  # dataset statistics of tasks with fixed normalizers


def load_run(workdir: str) -> tuple[ExperimentConfig, Simulator, TrainState]:
    """(config, simulator, state) of the newest readable checkpoint in a run directory.

    The restore template comes from `jax.eval_shape`, so no training data is opened.
    A damaged newest checkpoint is reported (WARNING) and an older one used.
    """
    config = load_config_of(workdir)
    sim = build_simulator(config, _load_meta(workdir))
    like = abstract_train_state(
        sim,
        make_optimizer(config.train.optimizer),
        max_accumulations=config.train.normalizer_max_accumulations,
    )
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        state = checkpointer.restore(like)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"workdir {workdir!r} has no checkpoint yet: train it first (meshsim train)"
        ) from None
    finally:
        checkpointer.close()
    return config, sim, state


def _load_meta(workdir: str) -> dict | None:
    import json

    path = os.path.join(workdir, DATASET_META)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _check_finite_model(workdir: str, state: TrainState) -> None:
    """Refuses a model whose parameters or normalizer statistics are NaN/inf."""
    for what, tree in (("parameters", state.params), ("normalizer statistics", state.normalizers)):
        bad, total = count_nonfinite(tree)
        if bad:
            raise ValueError(
                f"workdir {workdir!r}: checkpoint {int(state.step)} has non-finite {what} "
                f"({bad} of {total} values NaN or inf): the run diverged; retrain it "
                "(train.on_nonfinite=stop keeps such checkpoints from being written)"
            )


def run_evaluation(
    workdir: str,
    *,
    split: str = "valid",
    num: int | None = None,
    steps: int | None = None,
    save_rollouts: bool = True,
) -> dict:
    """Rolls out `num` trajectories of `split`; writes metrics.json (and rollouts.h5).

    Trajectories are read one at a time and rollouts streamed to `rollouts.h5` as
    they come off the device. `steps` beyond a trajectory's length are allowed where
    its prescribed values are constant; the metrics then cover the known frames.
    metrics.json also holds the RMSE at every step and the physical diagnostics of
    each trajectory (`meshsim.evaluation.evaluate_trajectories`). Both files are
    published together when everything succeeded.
    """
    for name, value in (("num", num), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"{name}: expected an int ≥ 1 or None, got {value!r}")
    config, sim, state = load_run(workdir)
    _check_finite_model(workdir, state)
    if sim.task.uses_dataset_statistics:  # weather: forecast scores by lead time
        from meshsim.weather_runs import evaluate_forecasts

        return evaluate_forecasts(workdir, split=split, num=num, steps=steps)
    dataset = open_dataset(config.data.path, split)
    n = len(dataset) if num is None else min(num, len(dataset))
    if n == 0:
        raise ValueError(f"split {split!r} of {config.data.path!r} holds no trajectories")
    path = os.path.join(workdir, "rollouts.h5")
    writer = RolloutsWriter(path, sim.task) if save_rollouts else None
    try:
        trajectories = (dataset[i] for i in range(n))
        scores = evaluate_trajectories(
            sim, state, trajectories, steps=steps, writer=writer, meta=dataset.meta
        )
        if writer is not None:
            writer.commit()
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    # Keys: rollout_rmse, rollout_rmse_per_step, steps, num_trajectories, diagnostics
    # (meshsim.evaluation.evaluate_trajectories), then these.
    result = {**scores, "split": split, "checkpoint_step": int(state.step)}
    atomic.write_json(os.path.join(workdir, "metrics.json"), result)
    return result


def run_rollouts(workdir: str, *, split="valid", num=None, steps=None, export=False) -> str:
    """Rollouts saved to `workdir/rollouts.h5` (prediction, truth, mesh per trajectory).

    With `export`, also ParaView files under `workdir/paraview/` (replaced as a whole):
    an XDMF time series per trajectory for fixed meshes, per-frame VTU files with
    moving points for cloth. Frames past the ground truth export NaN truth and error.
    """
    run_evaluation(workdir, split=split, num=num, steps=steps, save_rollouts=True)
    path = os.path.join(workdir, "rollouts.h5")
    if export:
        task = build_task(load_config_of(workdir))
        export_rollouts(path, os.path.join(workdir, "paraview"), task)
    return path


def run_forecast(workdir: str, *, init_time: str, steps: int, out: str, split: str = "valid"):
    """`meshsim forecast`: see `meshsim.weather_runs.run_forecast`."""
    from meshsim.weather_runs import run_forecast as forecast

    return forecast(workdir, init_time=init_time, steps=steps, out=out, split=split)


def run_plots(workdir: str, *, frame: int | None = None, every: int = 2) -> list[str]:
    """Loss curve, a prediction|truth|error figure and a rollout animation for a run.

    Raises:
      FileNotFoundError: no run in `workdir`, or nothing to plot in it yet.
    """
    from meshsim import plotting

    task = build_task(load_config_of(workdir))
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    rollouts_path = os.path.join(workdir, "rollouts.h5")
    has_metrics = os.path.exists(metrics_path) and os.path.getsize(metrics_path) > 0
    if not has_metrics and not os.path.exists(rollouts_path):
        raise FileNotFoundError(
            f"workdir {workdir!r}: nothing to plot (no metrics.jsonl entries, no rollouts.h5): "
            "run meshsim train, then meshsim rollout"
        )
    paths = []
    if has_metrics:
        paths.append(str(plotting.plot_loss_curve(metrics_path, os.path.join(workdir, "loss.png"))))
    if os.path.exists(rollouts_path):
        paths += plot_first_rollout(rollouts_path, workdir, task, frame=frame, every=every)
    return paths


def config_replace(config: ExperimentConfig, **sections) -> ExperimentConfig:
    """`dataclasses.replace` on sections: config_replace(c, train={"steps": 10})."""
    changes = {
        k: dataclasses.replace(getattr(config, k), **v) if isinstance(v, dict) else v
        for k, v in sections.items()
    }
    return dataclasses.replace(config, **changes)
