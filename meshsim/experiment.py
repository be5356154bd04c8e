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
import time

import jax

from meshsim import atomic
from meshsim.checkpoint import Checkpointer
from meshsim.config import ExperimentConfig
from meshsim.data import open_dataset
from meshsim.data.pipeline import dataset_budget, iter_batches, prefetch
from meshsim.evaluation import (
    RolloutsWriter,
    evaluate_rollouts,
    export_rollouts,
    plot_first_rollout,
)
from meshsim.models import EncodeProcessDecode, get_model
from meshsim.normalization import save_normalizers
from meshsim.runs import (
    RUN_FILES,
    MetricsLog,
    load_config_of,
    prepare_workdir,
    remove_created,
    truncate_metrics,
)
from meshsim.simulator import Simulator
from meshsim.tasks import TASKS, Task, get_task
from meshsim.train import (
    NONFINITE_POLICIES,
    NonFiniteError,
    TrainState,
    abstract_train_state,
    add_to_totals,
    count_nonfinite,
    empty_totals,
    init_train_state,
    learning_rate,
    make_accumulate_step,
    make_optimizer,
    make_train_step,
    nonfinite_quantity,
)
from meshsim.unroll import horizon_at

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
    )


def build_simulator(config: ExperimentConfig, meta: dict | None = None) -> Simulator:
    """Task + model of a config; raises ValueError/TypeError for bad settings."""
    task = build_task(config, meta)
    return Simulator(model=build_model(config, task), task=task)


def _lengths(dataset, task: Task) -> list[int]:
    """Frames per trajectory: from meta.json for fixed-length fields (no data read),
    otherwise by reading the state field of each trajectory."""
    feature = dataset.meta.get("features", {}).get(task.state_field, {})
    shape = feature.get("shape") or [-1]
    if feature.get("type") == "dynamic" and shape[0] > 0:  # [T, -1, d] with T fixed
        return [int(shape[0])] * len(dataset)
    return [int(t[task.state_field].shape[0]) for t in dataset.iter(fields=[task.state_field])]


def _static(dataset, task: Task) -> list[dict]:
    """The fields each trajectory's structure is built from (not the dynamic ones)."""
    fields = task.structure_fields
    return list(dataset.iter(fields=None if fields is None else list(fields)))


def _initial_state(config: ExperimentConfig, sim: Simulator, tx) -> TrainState:
    """Fresh state: parameters from the task's feature widths, empty statistics."""
    return init_train_state(
        sim,
        tx,
        jax.random.key(config.train.seed),
        max_accumulations=config.train.normalizer_max_accumulations,
    )


def _periodic_eval_data(config: ExperimentConfig, task: Task) -> tuple[list, int]:
    """(validation trajectories, rollout steps) for evaluation during training."""
    tc = config.train
    if tc.eval_every <= 0:
        return [], 0
    try:
        valid_ds = open_split(config, config.data.valid_split)
    except (FileNotFoundError, ValueError):
        logger.warning("no %r split: periodic evaluation is off", config.data.valid_split)
        return [], 0
    trajs = [valid_ds[i] for i in range(min(tc.eval_trajectories, len(valid_ds)))]
    if not trajs:
        return [], 0
    shortest = min(len(t[task.state_field]) for t in trajs)
    return trajs, min(tc.eval_rollout_steps, shortest - task.order)


def _interval_record(totals, config: ExperimentConfig, done: int) -> dict:
    """The metrics.jsonl record of a log interval (means over its applied updates)."""
    t = jax.device_get(totals)
    applied = int(t["applied"])
    tc = config.train
    return {
        "step": done,
        "loss": float(t["loss"]) / applied if applied else None,  # all skipped: null
        "grad_norm": float(t["grad_norm"]) / applied if applied else None,
        "skipped": int(t["skipped"]),
        "learning_rate": float(learning_rate(tc.optimizer, done - tc.accumulate_steps)),
    }


def _on_nonfinite(totals, policy: str, checkpointer: Checkpointer) -> None:
    """Applies `train.on_nonfinite` to a log interval's sums: warns ("skip") or raises
    NonFiniteError naming the first bad step and quantity ("stop")."""
    t = jax.device_get(totals)
    first = int(t["first_skipped_step"])
    if first < 0:
        return
    what = nonfinite_quantity(float(t["first_skipped_loss"]), float(t["first_skipped_grad_norm"]))
    if policy == "skip":
        logger.warning(
            "step %d: %s: update skipped (%d since the last log line)", first, what, t["skipped"]
        )
        return
    latest = checkpointer.latest_step()
    kept = f"checkpoint {latest} stays the latest" if latest is not None else "no checkpoint"
    raise NonFiniteError(
        f"step {first}: {what}: training stopped, {kept}; lower train.optimizer.learning_rate, "
        "set train.optimizer.grad_clip_norm, or set train.on_nonfinite=skip to skip such updates"
    )


def _check_finite_state(state: TrainState, step: int, what: str) -> None:
    """Raises NonFiniteError if the state holds NaN/inf values (never checkpointed)."""
    bad, total = count_nonfinite(state)
    if bad:
        raise NonFiniteError(f"step {step}: {what} hold {bad} of {total} values NaN or inf")


def run_training(
    config: ExperimentConfig, workdir: str, *, max_steps: int | None = None, progress: bool = True
) -> TrainState:
    """Trains (or resumes) the run in `workdir`; returns the final state.

    `max_steps` stops early (at that global step) without changing the config, which
    is how a run is split into several invocations.

    Raises:
      ValueError, TypeError: a bad config or bad data (before anything is written).
      NonFiniteError: a non-finite loss or gradient norm with train.on_nonfinite="stop",
        or non-finite normalizer statistics (NaN/inf in the data).
      CheckpointError: no readable checkpoint to resume from.
    """
    tc = config.train
    if tc.on_nonfinite not in NONFINITE_POLICIES:
        raise ValueError(
            f"train.on_nonfinite: expected one of {list(NONFINITE_POLICIES)}, "
            f"got {tc.on_nonfinite!r}"
        )
    tx = make_optimizer(tc.optimizer)
    # Everything that reads (and so checks) the data comes before anything is written.
    train_ds = open_split(config, config.data.train_split)
    meta = _task_meta(config.task, train_ds)
    sim = build_simulator(config, meta)
    task = sim.task
    budget = dataset_budget(_static(train_ds, task), task)
    lengths = _lengths(train_ds, task)
    eval_trajs, eval_steps = _periodic_eval_data(config, task)

    workdir_existed = os.path.isdir(workdir)
    existed = {name: os.path.lexists(os.path.join(workdir, name)) for name in RUN_FILES}
    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=tc.keep_checkpoints
    )
    resuming = checkpointer.latest_step() is not None
    try:
        prepare_workdir(config, workdir, resuming=resuming)
        if meta is not None:
            atomic.write_json(os.path.join(workdir, DATASET_META), meta)
        state = _initial_state(config, sim, tx)
        if task.uses_dataset_statistics and not resuming:
            state = state.replace(normalizers=_dataset_normalizers(train_ds, task, workdir))
        if resuming:
            state = checkpointer.restore(state, set_aside_damaged=True)
            logger.info("resumed from step %d", int(state.step))
        batches = iter_batches(
            train_ds,
            task,
            batch_size=config.data.batch_size,
            budget=budget,
            seed=tc.seed,
            start_step=int(state.step),
            pool_size=config.data.pool_size,
            lengths=lengths,
            horizon=tc.unroll_steps,
        )
        end = min(tc.steps, max_steps) if max_steps is not None else tc.steps
        return _train_loop(
            config,
            sim,
            tx,
            checkpointer,
            state,
            workdir,
            end=end,
            batches=batches,
            evaluation=(eval_trajs, eval_steps),
            progress=progress,
        )
    except BaseException:
        if not resuming and checkpointer.latest_step() is None:  # nothing worth keeping
            remove_created(workdir, existed, workdir_existed)
        raise
    finally:
        checkpointer.close()


DATASET_META = "dataset_meta.json"  # the data a task was built from (weather: channels)
STATISTICS = "statistics.npz"  # dataset statistics of tasks with fixed normalizers


def _dataset_normalizers(dataset, task: Task, workdir: str):
    """Fixed normalizers from the training split's statistics (computed once, stored in
    the run directory for evaluation, e.g. the climatology of weather scores)."""
    stats = dataset.statistics()
    stats.save(os.path.join(workdir, STATISTICS))
    return task.dataset_normalizers(stats, task.structure(dataset[0]))


def _train_loop(
    config, sim, tx, checkpointer, state, workdir, *, end, batches, evaluation, progress
) -> TrainState:
    """The loop of `run_training`, from `state.step` to `end`; `evaluation` is
    (validation trajectories, rollout steps) for periodic evaluation."""
    eval_trajs, eval_steps = evaluation
    tc = config.train
    start = int(state.step)
    truncate_metrics(os.path.join(workdir, "metrics.jsonl"), start)
    log = MetricsLog(workdir)
    batches = prefetch(batches, size=config.data.prefetch)
    train_steps = {}  # one compiled step per rollout horizon of the curriculum

    def train_step(state, batch, key, step):
        k = horizon_at(
            step - tc.accumulate_steps, max_horizon=tc.unroll_steps, schedule=tc.unroll_schedule
        )
        if k not in train_steps:
            train_steps[k] = make_train_step(sim, tx, horizon=k, mode=tc.unroll_mode)
        return train_steps[k](state, batch, key)

    accumulate_step = make_accumulate_step(sim)
    step_key = jax.random.key(tc.seed + 1)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=end, initial=start, desc="train", unit="step", dynamic_ncols=True)
    t_last, n_last = time.perf_counter(), start
    totals = empty_totals()  # training metrics summed on device since the last log line
    try:
        for step in range(start, end):
            batch = next(batches)
            key = jax.random.fold_in(step_key, step)
            done = step + 1
            if step < tc.accumulate_steps:
                state = accumulate_step(state, batch, key)
                if done == tc.accumulate_steps:  # NaN/inf data would poison every later step
                    _check_finite_state(state, done, "the normalizer statistics (NaN/inf data?)")
            else:
                state, metrics = train_step(state, batch, key, step)
                totals = add_to_totals(totals, metrics, done)
            trained = done > tc.accumulate_steps
            if trained and done % tc.log_every == 0:
                record = _interval_record(totals, config, done)
                now = time.perf_counter()
                record["steps_per_sec"] = (done - n_last) / (now - t_last)
                t_last, n_last = now, done
                log.write(record)
                if bar is not None and record["loss"] is not None:
                    bar.set_postfix(
                        loss=f"{record['loss']:.4g}", sps=f"{record['steps_per_sec']:.1f}"
                    )
                _on_nonfinite(totals, tc.on_nonfinite, checkpointer)
                totals = empty_totals()
            if eval_trajs and trained and done % tc.eval_every == 0:
                model_m, _, _ = evaluate_rollouts(sim, state, eval_trajs, steps=eval_steps)
                log.write({"step": done, **{f"eval/rmse_{k}": v for k, v in model_m.items()}})
            if done % tc.checkpoint_every == 0 or done == end:
                if tc.on_nonfinite == "stop":  # never checkpoint past a non-finite step
                    _on_nonfinite(totals, "stop", checkpointer)
                _check_finite_state(state, done, "the parameters, optimizer state or statistics")
                checkpointer.save(done, state)
                save_normalizers(os.path.join(workdir, "normalizers.json"), state.normalizers)
            if bar is not None:
                bar.update(1)
    finally:
        batches.close()
        log.close()
        if bar is not None:
            bar.close()
    return state


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
    Both files are published together when everything succeeded.
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
        model_m, persistence_m, lengths = evaluate_rollouts(
            sim, state, trajectories, steps=steps, writer=writer
        )
        if writer is not None:
            writer.commit()
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    result = {
        "rollout_rmse": {"model": model_m, "persistence": persistence_m},
        "split": split,
        "num_trajectories": n,
        "steps": lengths[0],
        "checkpoint_step": int(state.step),
    }
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
