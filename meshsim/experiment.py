"""Run directories: train, roll out, evaluate and plot from an `ExperimentConfig`.

A run directory holds `config.json`, `checkpoints/<step>/` (orbax),
`normalizers.json`, `metrics.jsonl` (one JSON object per logged step),
`rollouts.h5`, `metrics.json` and plots. `run_training` resumes from it: the
batch stream and the per-step random keys are pure functions of (seed, step),
so a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence

import jax
import numpy as np

from meshsim import atomic
from meshsim import metrics as M
from meshsim.checkpoint import Checkpointer
from meshsim.config import ExperimentConfig, config_from_dict, config_to_dict
from meshsim.data import open_dataset
from meshsim.data.pipeline import dataset_budget, iter_batches, prefetch
from meshsim.models import EncodeProcessDecode, get_model
from meshsim.normalization import save_normalizers
from meshsim.rollout import rollout_trajectory
from meshsim.simulator import Simulator
from meshsim.tasks import Task, get_task
from meshsim.train import (
    TrainState,
    abstract_train_state,
    init_train_state,
    learning_rate,
    make_accumulate_step,
    make_optimizer,
    make_train_step,
)

logger = logging.getLogger(__name__)


def build_task(config: ExperimentConfig) -> Task:
    """The task named by `config.task`, with the config's noise overrides."""
    kwargs = {}
    if config.noise_std is not None:
        kwargs["noise_std"] = config.noise_std
    if config.noise_gamma is not None:
        kwargs["noise_gamma"] = config.noise_gamma
    return get_task(config.task, **kwargs)


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


def build_simulator(config: ExperimentConfig) -> Simulator:
    """Task + model of a config; raises ValueError/TypeError for bad settings."""
    task = build_task(config)
    return Simulator(model=build_model(config, task), task=task)


def _prepare_workdir(config: ExperimentConfig, workdir: str) -> None:
    """Writes config.json, or checks a resumed run's config matches (train.steps aside)."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    new = config_to_dict(config)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        a = {**old, "train": {**old["train"], "steps": None}}
        b = {**new, "train": {**new["train"], "steps": None}}
        if a != b:
            raise ValueError(
                f"workdir {workdir!r} holds a run with another config.json; "
                "use a new --workdir or the same config"
            )
    atomic.write_json(path, new)


def _truncate_metrics(path: str, step: int) -> None:
    """Drops metrics.jsonl lines logged after `step` (a run resumed from an older checkpoint)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic.write_text(path, "".join(lines))


class _MetricsLog:
    """metrics.jsonl (flushed per line) plus TensorBoard when tensorboardX is installed."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._file = open(self.path, "a")  # noqa: SIM115 - closed in close()
        try:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
        except ImportError:
            self._tb = None

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, int | float):
                    self._tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


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


def evaluate_rollouts(
    sim: Simulator, state: TrainState, trajectories: Sequence, *, steps: int | None, budget
) -> tuple[dict, dict, list[np.ndarray]]:
    """Rollout RMSE of the model and of persistence, averaged over trajectories."""
    task = sim.task
    model_metrics, persistence_metrics, predictions = [], [], []
    for traj in trajectories:
        pred = rollout_trajectory(
            sim, state.params, state.normalizers, traj, steps=steps, budget=budget
        )
        start = task.order - 1
        truth = np.asarray(traj[task.state_field])[start : start + pred.shape[0]]
        model_metrics.append(M.rollout_rmse(pred, truth))
        persistence = np.asarray(M.persistence_rollout(truth[0], truth.shape[0]))
        persistence_metrics.append(M.rollout_rmse(persistence, truth))
        predictions.append(pred)
    return (
        M.aggregate_rollout_metrics(model_metrics),
        M.aggregate_rollout_metrics(persistence_metrics),
        predictions,
    )


def run_training(
    config: ExperimentConfig, workdir: str, *, max_steps: int | None = None, progress: bool = True
) -> TrainState:
    """Trains (or resumes) the run in `workdir`; returns the final state.

    `max_steps` stops early (at that global step) without changing the config, which
    is how a run is split into several invocations.
    """
    sim, tc = build_simulator(config), config.train  # validates the config first
    task = sim.task
    tx = make_optimizer(tc.optimizer)
    train_ds = open_dataset(config.data.path, config.data.train_split)
    _prepare_workdir(config, workdir)
    budget = dataset_budget(_static(train_ds, task), task)
    lengths = _lengths(train_ds, task)
    valid_ds = None
    if tc.eval_every > 0:
        try:
            valid_ds = open_dataset(config.data.path, config.data.valid_split)
        except (FileNotFoundError, ValueError):
            logger.warning("no %r split: periodic evaluation is off", config.data.valid_split)

    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=tc.keep_checkpoints
    )
    state = _initial_state(config, sim, tx)
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(state)
        logger.info("resumed from step %d", int(state.step))
    start = int(state.step)
    end = min(tc.steps, max_steps) if max_steps is not None else tc.steps
    _truncate_metrics(os.path.join(workdir, "metrics.jsonl"), start)
    log = _MetricsLog(workdir)
    batches = prefetch(
        iter_batches(
            train_ds,
            task,
            batch_size=config.data.batch_size,
            budget=budget,
            seed=tc.seed,
            start_step=start,
            pool_size=config.data.pool_size,
            lengths=lengths,
        ),
        size=config.data.prefetch,
    )
    train_step = make_train_step(sim, tx)
    accumulate_step = make_accumulate_step(sim)
    step_key = jax.random.key(tc.seed + 1)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=end, initial=start, desc="train", unit="step", dynamic_ncols=True)
    eval_trajs, eval_steps = [], 0  # validation trajectories, read once for periodic eval
    if valid_ds is not None:
        eval_trajs = _select(valid_ds, tc.eval_trajectories)
        eval_steps = min(
            tc.eval_rollout_steps, min(len(t[task.state_field]) for t in eval_trajs) - task.order
        )
    t_last, n_last = time.perf_counter(), start
    totals, counted = None, 0  # training metrics summed since the last log line
    try:
        for step in range(start, end):
            batch = next(batches)
            key = jax.random.fold_in(step_key, step)
            if step < tc.accumulate_steps:
                state = accumulate_step(state, batch, key)
            else:
                state, metrics = train_step(state, batch, key)
                # Summed on device (no host sync per step); averaged when logged.
                totals = (
                    metrics
                    if totals is None
                    else jax.tree_util.tree_map(jax.numpy.add, totals, metrics)
                )
                counted += 1
            done = step + 1
            if done % tc.log_every == 0 and done > tc.accumulate_steps:
                now = time.perf_counter()
                record = {
                    "step": done,
                    "loss": float(totals["loss"]) / counted,  # mean since the last log
                    "grad_norm": float(totals["grad_norm"]) / counted,
                    "learning_rate": float(learning_rate(tc.optimizer, done - tc.accumulate_steps)),
                    "steps_per_sec": (done - n_last) / (now - t_last),
                }
                t_last, n_last, totals, counted = now, done, None, 0
                log.write(record)
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{record['loss']:.4g}", sps=f"{record['steps_per_sec']:.1f}"
                    )
            if eval_trajs and done % tc.eval_every == 0 and done > tc.accumulate_steps:
                model_m, _, _ = evaluate_rollouts(
                    sim, state, eval_trajs, steps=eval_steps, budget=None
                )
                log.write({"step": done, **{f"eval/rmse_{k}": v for k, v in model_m.items()}})
            if done % tc.checkpoint_every == 0 or done == end:
                checkpointer.save(done, state)
                save_normalizers(os.path.join(workdir, "normalizers.json"), state.normalizers)
            if bar is not None:
                bar.update(1)
    finally:
        batches.close()
        log.close()
        checkpointer.close()
        if bar is not None:
            bar.close()
    return state


def load_config_of(workdir: str) -> ExperimentConfig:
    """The config.json of a run directory."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"workdir: no config.json in {workdir!r}")
    with open(path) as f:
        return config_from_dict(ExperimentConfig, json.load(f))


def load_run(workdir: str) -> tuple[ExperimentConfig, Simulator, TrainState]:
    """(config, simulator, state) of the newest checkpoint in a run directory.

    The restore template comes from `jax.eval_shape`, so no training data is opened.
    """
    config = load_config_of(workdir)
    sim = build_simulator(config)
    like = abstract_train_state(
        sim,
        make_optimizer(config.train.optimizer),
        max_accumulations=config.train.normalizer_max_accumulations,
    )
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        state = checkpointer.restore(like)
    finally:
        checkpointer.close()
    return config, sim, state


def _select(dataset, num: int | None) -> list:
    n = len(dataset) if num is None else min(num, len(dataset))
    return [dataset[i] for i in range(n)]


def run_evaluation(
    workdir: str,
    *,
    split: str = "valid",
    num: int | None = None,
    steps: int | None = None,
    save_rollouts: bool = True,
) -> dict:
    """Rolls out `num` trajectories of `split`; writes metrics.json (and rollouts.h5)."""
    config, sim, state = load_run(workdir)
    trajs = _select(open_dataset(config.data.path, split), num)
    model_m, persistence_m, preds = evaluate_rollouts(sim, state, trajs, steps=steps, budget=None)
    result = {
        "rollout_rmse": {"model": model_m, "persistence": persistence_m},
        "split": split,
        "num_trajectories": len(trajs),
        "steps": int(preds[0].shape[0] - 1),
        "checkpoint_step": int(state.step),
    }
    atomic.write_json(os.path.join(workdir, "metrics.json"), result)
    if save_rollouts:
        save_rollouts_h5(os.path.join(workdir, "rollouts.h5"), sim.task, trajs, preds)
    return result


def run_rollouts(workdir: str, *, split="valid", num=None, steps=None, export=False) -> str:
    """Rollouts saved to `workdir/rollouts.h5` (prediction, truth, mesh per trajectory).

    With `export`, also ParaView files under `workdir/paraview/`: an XDMF time series
    per trajectory for fixed meshes, per-frame VTU files with moving points for cloth.
    """
    from meshsim.export import export_vtk_frames, export_xdmf

    run_evaluation(workdir, split=split, num=num, steps=steps, save_rollouts=True)
    path = os.path.join(workdir, "rollouts.h5")
    if export:
        task = build_task(load_config_of(workdir))
        out = os.path.join(workdir, "paraview")
        os.makedirs(out, exist_ok=True)
        for i, r in enumerate(load_rollouts_h5(path)):
            fields = {"pred": r["pred"], "truth": r["truth"], "error": r["pred"] - r["truth"]}
            if task.lagrangian:  # the points themselves move
                export_vtk_frames(
                    os.path.join(out, f"{i:05d}"), r["cells"], fields, points_per_frame=r["pred"]
                )
            else:
                export_xdmf(os.path.join(out, f"{i:05d}.xdmf"), r["mesh_pos"], r["cells"], fields)
    return path


def save_rollouts_h5(path: str, task: Task, trajectories, predictions) -> None:
    """One group per trajectory: `pred`/`truth` [T, N, d], `mesh_pos`, `cells`, `node_type`."""
    import h5py

    with atomic.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["state_field"] = task.state_field
        for i, (traj, pred) in enumerate(zip(trajectories, predictions)):
            g = f.create_group(f"{i:05d}")
            start = task.order - 1
            g["pred"] = pred
            g["truth"] = np.asarray(traj[task.state_field])[start : start + pred.shape[0]]
            for name in ("mesh_pos", "cells", "node_type"):
                g[name] = np.asarray(traj[name])[0]


def load_rollouts_h5(path: str) -> list[dict]:
    """Inverse of `save_rollouts_h5`: a list of dicts of numpy arrays."""
    import h5py

    with h5py.File(path, "r") as f:
        return [{k: g[k][()] for k in g} for _, g in sorted(f.items())]


def run_plots(workdir: str, *, frame: int | None = None, every: int = 2) -> list[str]:
    """Loss curve, a prediction|truth|error figure and a rollout animation for a run."""
    from meshsim import plotting

    paths = []
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(metrics_path) and os.path.getsize(metrics_path) > 0:
        paths.append(str(plotting.plot_loss_curve(metrics_path, os.path.join(workdir, "loss.png"))))
    rollouts_path = os.path.join(workdir, "rollouts.h5")
    if not os.path.exists(rollouts_path):
        return paths
    task = build_task(load_config_of(workdir))
    r = load_rollouts_h5(rollouts_path)[0]
    pred, truth = r["pred"], r["truth"]
    gif = os.path.join(workdir, "rollout.gif")
    if task.lagrangian:  # the mesh moves: draw it
        paths += [
            str(p) for p in plotting.animate_cloth(pred, r["cells"], gif, truth=truth, every=every)
        ]
        return paths
    pred_scalar, label = task.plot_scalar(pred)
    truth_scalar, _ = task.plot_scalar(truth)
    frame = pred.shape[0] - 1 if frame is None else frame
    fig = plotting.plot_comparison(
        r["mesh_pos"],
        r["cells"],
        pred_scalar[frame],
        truth_scalar[frame],
        title=f"{label}, step {frame}",
    )
    out = os.path.join(workdir, "comparison.png")
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100)
    paths.append(out)
    paths += [
        str(p)
        for p in plotting.animate_rollout(
            r["mesh_pos"], r["cells"], pred_scalar, truth_scalar, gif, every=every
        )
    ]
    return paths


def config_replace(config: ExperimentConfig, **sections) -> ExperimentConfig:
    """`dataclasses.replace` on sections: config_replace(c, train={"steps": 10})."""
    changes = {
        k: dataclasses.replace(getattr(config, k), **v) if isinstance(v, dict) else v
        for k, v in sections.items()
    }
    return dataclasses.replace(config, **changes)
