"""The training run: data, devices, checkpoints and the loop (`meshsim train`).

`run_training` reads and checks the config and the data, places the run on the
devices `config.parallel` asks for (`meshsim.parallel.placement`: one device, a data ×
graph mesh under `jit`, or `pmap`; several processes under `jax.distributed`),
and runs the compiled steps of `meshsim.training.step` from the last checkpoint to
`train.steps`. Under several processes every process runs this function on its
own shard of the trajectories; process 0 alone writes the run's files, all of
them write the checkpoints (orbax coordinates them).

The run directory (`meshsim.runs.workdir`) holds config.json, orbax checkpoints,
normalizers.json and metrics.jsonl. `run_training` resumes from it: the batch
stream and the per-step random keys are pure functions of (seed, step), so a
resumed run reproduces an uninterrupted one. Failures leave nothing half-written:
everything (config, data, validation split) is read and checked before config.json
is written, and a run that fails before its first checkpoint removes what it
created, so a corrected retry starts clean. A non-finite loss or gradient norm
stops the run before the next checkpoint (`train.on_nonfinite="stop"`: the last
good checkpoint stays the latest) or is skipped (`"skip"`, counted as `skipped` in
metrics.jsonl); no checkpoint with non-finite values is ever written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time

import jax
import numpy as np

from meshsim import atomic
from meshsim.config import ExperimentConfig
from meshsim.data.frame_cache import FrameCache
from meshsim.evaluation import evaluate_rollouts
from meshsim.graph.padding import grow_edges
from meshsim.normalization import save_normalizers
from meshsim.parallel.placement import make_placement
from meshsim.runs.build import build_for_data, check_splits, open_split
from meshsim.runs.checkpoint import Checkpointer
from meshsim.runs.lock import run_lock
from meshsim.runs.train_inputs import (
    placed_simulator,
    process_shard,
    trajectory_lengths,
    trajectory_statics,
)
from meshsim.runs.warm_start import warm_start
from meshsim.runs.workdir import (
    DATASET_META,
    RUN_FILES,
    STATISTICS,
    MetricsLog,
    check_workdir,
    prepare_workdir,
    remove_created,
    truncate_metrics,
)
from meshsim.simulator import Simulator
from meshsim.tasks import Task
from meshsim.training.batches import dataset_budget, iter_batches, prefetch
from meshsim.training.multistep import horizon_at
from meshsim.training.step import (
    NONFINITE_POLICIES,
    NonFiniteError,
    TrainState,
    add_to_totals,
    count_nonfinite,
    empty_totals,
    init_train_state,
    learning_rate,
    make_optimizer,
    nonfinite_quantity,
)

logger = logging.getLogger(__name__)


class _NoLog:
    """MetricsLog of a process that does not write the run's files."""

    def write(self, record: dict) -> None:
        del record

    def close(self) -> None:
        pass


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
    except FileNotFoundError:  # a split that exists but does not fit is an error
        logger.warning("no %r split: periodic evaluation is off", config.data.valid_split)
        return [], 0
    trajs = [valid_ds[i] for i in range(min(tc.eval_trajectories, len(valid_ds)))]
    if not trajs:
        return [], 0
    shortest = min(task.num_frames(t) for t in trajs)
    return trajs, min(tc.eval_rollout_steps, shortest - task.order)


def _interval_record(totals, config: ExperimentConfig, done: int) -> dict:
    """The metrics.jsonl record of a log interval (means over its applied updates)."""
    t = jax.device_get(totals)
    applied = int(t["applied"])
    tc = config.train
    record = {
        "step": done,
        "loss": float(t["loss"]) / applied if applied else None,  # all skipped: null
        "grad_norm": float(t["grad_norm"]) / applied if applied else None,
        "skipped": int(t["skipped"]),
        "learning_rate": float(learning_rate(tc.optimizer, done - tc.accumulate_steps)),
    }
    if int(t["overflow"]):  # steps not applied: a dynamic edge set had too few slots
        record["overflow"] = int(t["overflow"])
    return record


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


def _check_window_length(config: ExperimentConfig, sim: Simulator, lengths, path: str) -> None:
    """ValueError naming the settings when no trajectory is long enough for a training
    window (history + 1 input frame + `model.bundle_steps` × `train.unroll_steps` targets)."""
    k, bundle = config.train.unroll_steps, sim.bundle_steps
    history = sim.task.history
    needed = history + 1 + k * bundle
    longest = max(lengths, default=0)
    if longest >= needed:
        return
    fits = (longest - history - 1) // k
    fix = f"--set model.bundle_steps={fits}" if bundle > 1 and fits >= 1 else None
    raise ValueError(
        f"{path}: a training window needs {needed} frames ({history + 1} input + "
        f"model.bundle_steps={bundle} × train.unroll_steps={k} targets), but the longest "
        f"trajectory has {longest}: "
        + (f"use {fix} (or less), or longer trajectories" if fix else "use longer trajectories")
    )


def _absolute_data_path(config: ExperimentConfig) -> ExperimentConfig:
    """`config` with `data.path` (and `train.init_from`) absolute, so config.json works
    from any directory."""
    if config.train.init_from:
        train = dataclasses.replace(config.train, init_from=os.path.abspath(config.train.init_from))
        config = dataclasses.replace(config, train=train)
    if not config.data.path:
        return config
    data = dataclasses.replace(config.data, path=os.path.abspath(config.data.path))
    return dataclasses.replace(config, data=data)


def _check_restart(workdir: str, resuming: bool) -> None:
    """Says loudly when a workdir holds metrics of a run but no checkpoint (deleted, or
    the run was killed before its first one): training starts again from step 0."""
    if resuming:
        return
    path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        logger.warning(
            "workdir %r has metrics.jsonl but no checkpoint (removed, or the run was killed "
            "before its first one): training starts again from step 0 and the old metrics "
            "are dropped",
            workdir,
        )


def run_training(
    config: ExperimentConfig, workdir: str, *, max_steps: int | None = None, progress: bool = True
) -> TrainState:
    """Trains (or resumes) the run in `workdir`; returns the final state (as one device
    holds it).

    `config.parallel` places the run (`meshsim.parallel.placement`); every layout takes the
    steps one device would take on the same batches. `max_steps` stops early (at that
    global step) without changing the config, which is how a run is split into several
    invocations.

    Raises:
      ValueError, TypeError: a bad config or bad data (before anything is written).
      NonFiniteError: a non-finite loss or gradient norm with train.on_nonfinite="stop",
        or non-finite normalizer statistics (NaN/inf in the data).
      CheckpointError: no readable checkpoint to resume from, or a save that failed.
      RunLockedError: another process is working on `workdir` (`meshsim.runs.lock`).
      NotADirectoryError: `workdir` is a file.
    """
    check_workdir(workdir)
    if jax.process_index() != 0:  # process 0 holds the lock for every process of the run
        return _run_training(config, workdir, max_steps=max_steps, progress=progress)
    workdir_existed = os.path.isdir(workdir)
    try:
        with run_lock(workdir, "train", create=True):
            return _run_training(config, workdir, max_steps=max_steps, progress=progress)
    finally:
        if not workdir_existed:  # a failed fresh run leaves no empty directory behind
            with contextlib.suppress(OSError):
                os.rmdir(workdir)


def _run_training(
    config: ExperimentConfig, workdir: str, *, max_steps: int | None, progress: bool
) -> TrainState:
    """`run_training` under the run's lock."""
    config = _absolute_data_path(config)
    tc = config.train
    if tc.on_nonfinite not in NONFINITE_POLICIES:
        raise ValueError(
            f"train.on_nonfinite: expected one of {list(NONFINITE_POLICIES)}, "
            f"got {tc.on_nonfinite!r}"
        )
    tx = make_optimizer(tc.optimizer)
    # Everything that reads (and so checks) the data comes before anything is written.
    train_ds = open_split(config, config.data.train_split)
    meta, sim = build_for_data(config, train_ds)
    check_splits(config, train_ds)
    task = sim.task
    placement = make_placement(config.parallel, batch_size=config.data.batch_size)
    cache = None if config.data.cache_bytes is None else FrameCache(config.data.cache_bytes)
    statics = trajectory_statics(train_ds, task, cache)
    budget = dataset_budget(statics, task)
    placed_sim = placed_simulator(placement, sim, statics, config.data.path)
    all_lengths = trajectory_lengths(train_ds, task)
    _check_window_length(config, sim, all_lengths, getattr(train_ds, "path", config.data.path))
    trajectories, lengths = process_shard(train_ds, all_lengths)
    eval_trajs, eval_steps = _periodic_eval_data(config, task)
    primary = jax.process_index() == 0
    if not placement.is_single_device:
        logger.info("devices: %s", placement.describe())

    workdir_existed = os.path.isdir(workdir)
    existed = {name: os.path.lexists(os.path.join(workdir, name)) for name in RUN_FILES}
    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=tc.keep_checkpoints
    )
    if primary:  # under the run's lock: anything unfinished there is a killed run's
        checkpointer.remove_temporaries()
    resuming = checkpointer.latest_step() is not None
    try:
        if primary:
            _check_restart(workdir, resuming)
            prepare_workdir(config, workdir, resuming=resuming)
            if meta is not None:
                atomic.write_json(os.path.join(workdir, DATASET_META), meta)
        state = _initial_state(config, sim, tx)
        if task.uses_dataset_statistics and not resuming:
            normalizers = _dataset_normalizers(train_ds, task, workdir if primary else None)
            state = state.replace(normalizers=normalizers)
        if tc.init_from and not resuming:
            state = warm_start(state, tc.init_from)
        if resuming:  # read straight into this layout, whatever layout wrote it
            like = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
            state = checkpointer.restore(
                placement.restore_template(like), set_aside_damaged=primary
            )
            logger.info("resumed from step %d", int(state.step))
        state = placement.place_state(state)

        def batches(budget, start):  # the same stream from any step, at any budget
            return iter_batches(
                trajectories,
                task,
                batch_size=placement.process_batch_size,
                budget=budget,
                seed=tc.seed,
                start_step=start,
                pool_size=config.data.pool_size,
                lengths=lengths,
                horizon=tc.unroll_steps * sim.bundle_steps,  # k network calls of K frames
                cache=cache,
            )

        end = min(tc.steps, max_steps) if max_steps is not None else tc.steps
        return _train_loop(
            config,
            (sim, placed_sim, placement),
            tx,
            checkpointer,
            state,
            workdir,
            end=end,
            batches=(batches, budget),
            evaluation=(eval_trajs, eval_steps),
            progress=progress and primary,
        )
    except BaseException:
        nothing_kept = not resuming and checkpointer.latest_step() is None
        if primary and nothing_kept:
            remove_created(workdir, existed, workdir_existed)
        raise
    finally:
        checkpointer.close()


def _dataset_normalizers(dataset, task: Task, workdir: str | None):
    """Fixed normalizers from the training split's statistics (computed once, stored in
    the run directory for evaluation, e.g. the climatology of weather scores; not
    stored when `workdir` is None)."""
    stats = dataset.statistics()
    if workdir is not None:
        stats.save(os.path.join(workdir, STATISTICS))
    return task.dataset_normalizers(stats, task.structure(dataset[0]))


def _grown_budget(budget, metrics: dict, step: int):
    """A budget with room for the edges a step's dynamic edge sets needed, or None if
    they fitted. Logs the overflow: the step was not applied, and the next step
    recompiles for the larger graphs."""
    host = {
        k: int(np.max(jax.device_get(v)))
        for k, v in metrics.items()
        if k == "overflow" or k.startswith("edges_needed/")
    }
    if not host["overflow"]:  # (a pmap step's metrics carry a device axis: max over it)
        return None
    needed = {k.removeprefix("edges_needed/"): v for k, v in host.items() if k != "overflow"}
    budget, grown = grow_edges(budget, needed)
    for name, (old, new) in grown.items():
        logger.warning(
            "step %d: edge set %r needed %d edges but the batches have %d slots; the "
            "step was not applied; growing the budget to %d and recompiling",
            step,
            name,
            needed[name],
            old,
            new,
        )
    return budget


def _train_loop(
    config, sims, tx, checkpointer, state, workdir, *, end, batches, evaluation, progress
) -> TrainState:
    """The loop of `run_training`, from the placed `state`'s step to `end`. `sims` is
    (simulator, the simulator the steps run, placement); `batches` is (a function of
    (budget, first step) giving the batch stream, the padding budget); `evaluation`
    is (validation trajectories, rollout steps) for periodic evaluation."""
    sim, placed_sim, placement = sims
    make_batches, budget = batches
    eval_trajs, eval_steps = evaluation
    tc = config.train
    start = int(placement.host_state(state).step)
    primary = jax.process_index() == 0
    if primary:
        truncate_metrics(os.path.join(workdir, "metrics.jsonl"), start)
    log = MetricsLog(workdir) if primary else _NoLog()
    batches = prefetch(
        make_batches(budget, start),
        size=config.data.prefetch,
        transfer=placement.batch_placer(placed_sim),
    )
    dynamic = bool(sim.task.dynamic_edge_sets)
    train_steps = {}  # one compiled step per rollout horizon of the curriculum

    def train_step(state, batch, key, step):
        k = horizon_at(
            step - tc.accumulate_steps, max_horizon=tc.unroll_steps, schedule=tc.unroll_schedule
        )
        if k not in train_steps:
            train_steps[k] = placement.train_step(placed_sim, tx, horizon=k, mode=tc.unroll_mode)
        return train_steps[k](state, batch, key)

    accumulate_step = placement.accumulate_step(placed_sim)
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
                if dynamic and (grown := _grown_budget(budget, metrics, done)) is not None:
                    budget = grown  # that step was not applied; the next ones fit
                    batches.close()
                    batches = prefetch(
                        make_batches(budget, done),
                        size=config.data.prefetch,
                        transfer=placement.batch_placer(placed_sim),
                    )
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
                host = placement.host_state(state)
                model_m, _, _ = evaluate_rollouts(sim, host, eval_trajs, steps=eval_steps)
                log.write({"step": done, **{f"eval/rmse_{k}": v for k, v in model_m.items()}})
            if done % tc.checkpoint_every == 0 or done == end:
                if tc.on_nonfinite == "stop":  # never checkpoint past a non-finite step
                    _on_nonfinite(totals, "stop", checkpointer)
                _check_finite_state(state, done, "the parameters, optimizer state or statistics")
                host = placement.host_state(state)
                checkpointer.save(done, host)
                if primary:
                    save_normalizers(os.path.join(workdir, "normalizers.json"), host.normalizers)
            if bar is not None:
                bar.update(1)
    finally:
        batches.close()
        log.close()
        if bar is not None:
            bar.close()
    return placement.host_state(state)
