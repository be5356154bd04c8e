"""Rollout evaluation streamed to disk: RMSE vs persistence, physical diagnostics,
`rollouts.h5`, exports, plots.

A rollout is scored chunk by chunk as it comes off the device (`iter_rollout`):
each chunk is written into a pre-sized dataset of `rollouts.h5` and only its
per-frame errors and diagnostics (`meshsim.diagnostics`: kinetic energy, mean
|∇·u|, a probe's velocity for the Strouhal number; a cloth's edge strain) are
kept, so host memory stays flat however long the rollout
(one trajectory, the input, is in memory at a time). Frames past the end of the
data (a rollout longer than the trajectory) have no ground truth: the metrics
cover the known frames only, and `truth` is shorter than `pred` in the file.

`rollouts.h5` layout, one group per trajectory::

    attrs: state_field
    /00000/pred      [S + 1, N, d] float32   frame 0 is the initial state
    /00000/truth     [K, N, d] float32       the ground truth of frames 0..K-1 (K ≤ S + 1)
    /00000/mesh_pos, cells, node_type        frame 0 of the trajectory's static fields
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from meshsim import atomic
from meshsim import metrics as M
from meshsim.diagnostics import DIAGNOSED_TASKS, RolloutDiagnostics, summarize_diagnostics
from meshsim.rollout import iter_rollout
from meshsim.simulator import Simulator
from meshsim.tasks import Task

logger = logging.getLogger(__name__)

MESH_FIELDS = ("mesh_pos", "cells", "node_type")  # stored with each rollout, when present


class RolloutsWriter:
    """Writes `rollouts.h5` trajectory by trajectory, chunk by chunk; atomic.

    The file is built under a temporary name (`meshsim.atomic.AtomicFile`) and
    published by `commit`; `discard` (or an exception in a `with` block) removes it.
    """

    def __init__(self, path: str | os.PathLike, task: Task):
        import h5py

        self.path = os.fspath(path)
        self._atomic = atomic.AtomicFile(self.path)
        self._file = h5py.File(self._atomic.tmp, "w")
        self._file.attrs["state_field"] = task.state_field
        self.count = 0

    def add(self, trajectory, frames: int, truth: np.ndarray) -> Callable[[int, np.ndarray], None]:
        """Starts the next trajectory's group: its `truth [K, N, d]`, its mesh and a
        pre-sized `pred [frames, N, d]`; returns `write(t, chunk)` that fills `pred[t:]`."""
        group = self._file.create_group(f"{self.count:05d}")
        self.count += 1
        group["truth"] = np.asarray(truth, np.float32)
        for name in MESH_FIELDS:
            if name in trajectory:
                group[name] = np.asarray(trajectory[name])[0]
        pred = group.create_dataset("pred", shape=(frames, *truth.shape[1:]), dtype=np.float32)

        def write(t: int, chunk: np.ndarray) -> None:
            pred[t : t + chunk.shape[0]] = chunk

        return write

    def commit(self) -> str:
        file = self._file
        return self._atomic.finish(file.close, on_error=file.close)

    def discard(self) -> None:
        self._atomic.abandon(self._file.close)

    def __enter__(self) -> RolloutsWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


class RolloutScore(NamedTuple):
    """One trajectory's rollout, scored against its ground truth."""

    model_mse: np.ndarray  # [K - 1] float64: MSE of the model at steps 1..K-1 (frames with truth)
    persistence_mse: np.ndarray  # [K - 1] float64: MSE of keeping frame 0
    steps: int  # predicted steps (may exceed K - 1: past the data)
    diagnostics: dict | None  # `RolloutDiagnostics.result()`; None unless asked and known


def _diagnostics(task: Task, truth: np.ndarray, trajectory, meta) -> RolloutDiagnostics | None:
    """The task's diagnostics accumulator, or None (a task without diagnostics)."""
    if task.name not in DIAGNOSED_TASKS:
        return None
    return RolloutDiagnostics(task.name, truth, trajectory, meta=meta)


def score_rollout(
    sim: Simulator,
    state,
    trajectory,
    *,
    steps: int | None = None,
    budget=None,
    writer: RolloutsWriter | None = None,
    diagnose: bool = False,
    meta: Mapping[str, Any] | None = None,
) -> RolloutScore:
    """Rolls one trajectory out, streaming, and scores it against its ground truth.

    Host memory is one trajectory plus O(steps) numbers: each chunk is scored (and
    written, and diagnosed) as it comes off the device, then dropped.

    Args:
      state: a `TrainState` (its params and normalizers are used).
      steps: predicted steps (default: to the end of the data; more are allowed where
        the task's prescribed values are constant, see `iter_rollout`).
      writer: where to write the rollout as it comes (optional).
      diagnose: also compute the task's physical diagnostics (`meshsim.diagnostics`;
        tasks it does not know get None). A mesh the diagnostics refuse (e.g.
        degenerate cells) is logged and gives `{"error": message}`, not a failure.
      meta: the dataset's meta.json dict (a flow's frame time `dt`).
    """
    task = sim.task
    truth = np.asarray(trajectory[task.state_field])[task.history :]  # [K, N, d]
    steps = truth.shape[0] - 1 if steps is None else steps
    chunks = iter_rollout(
        sim, state.params, state.normalizers, trajectory, steps=steps, budget=budget
    )
    write = None if writer is None else writer.add(trajectory, steps + 1, truth[: steps + 1])
    diagnostics, failure = None, None
    if diagnose:
        try:
            diagnostics = _diagnostics(task, truth[: steps + 1], trajectory, meta)
        except (ValueError, TypeError) as e:
            logger.warning("no diagnostics for this trajectory: %s", e)
            failure = {"error": str(e)}
    model_mse, persistence_mse, t = [], [], 0
    for frames in chunks:
        if write is not None:
            write(t, frames)
        if diagnostics is not None:
            diagnostics.add(frames)
        known = truth[t : t + frames.shape[0]]
        if known.shape[0]:
            same = np.broadcast_to(truth[0], known.shape)
            model_mse.append(np.asarray(M.per_step_mse(frames[: known.shape[0]], known)))
            persistence_mse.append(np.asarray(M.per_step_mse(same, known)))
        t += frames.shape[0]
    result = failure if diagnostics is None else diagnostics.result()
    return RolloutScore(
        np.concatenate(model_mse)[1:].astype(np.float64),  # frame 0 is the initial state
        np.concatenate(persistence_mse)[1:].astype(np.float64),
        t - 1,
        result,
    )


def rollout_metrics(
    sim: Simulator,
    state,
    trajectory,
    *,
    steps: int | None = None,
    budget=None,
    writer: RolloutsWriter | None = None,
) -> tuple[dict, dict, int]:
    """`score_rollout` reduced to (model RMSE, persistence RMSE, predicted steps); both
    RMSE dicts as `metrics.rollout_rmse`, over the frames that have ground truth."""
    score = score_rollout(sim, state, trajectory, steps=steps, budget=budget, writer=writer)
    model = M.rmse_at_horizons(score.model_mse)
    return model, M.rmse_at_horizons(score.persistence_mse), score.steps


def evaluate_rollouts(
    sim: Simulator,
    state,
    trajectories: Iterable,
    *,
    steps: int | None,
    budget=None,
    writer: RolloutsWriter | None = None,
) -> tuple[dict, dict, list[int]]:
    """`rollout_metrics` of each trajectory, averaged (as MeshGraphNets).

    `trajectories` may be any iterable, e.g. a generator reading one at a time.

    Returns:
      (model RMSE, persistence RMSE, predicted steps per trajectory).
    """
    model, persistence, lengths = [], [], []
    for trajectory in trajectories:
        m, p, n = rollout_metrics(sim, state, trajectory, steps=steps, budget=budget, writer=writer)
        model.append(m)
        persistence.append(p)
        lengths.append(n)
    return M.aggregate_rollout_metrics(model), M.aggregate_rollout_metrics(persistence), lengths


def rmse_per_step(step_mse: Sequence[np.ndarray]) -> list[float | None]:
    """RMSE at each step t = 1, 2, ...: sqrt of the mean over trajectories of their
    MSE at step t (`[K_i - 1]` each; trajectories too short for a step are left out
    of it); None where not finite."""
    length = max((len(m) for m in step_mse), default=0)
    out = []
    for t in range(length):
        values = [m[t] for m in step_mse if len(m) > t]
        rmse = math.sqrt(float(np.mean(values)))
        out.append(rmse if math.isfinite(rmse) else None)
    return out


def evaluate_trajectories(
    sim: Simulator,
    state,
    trajectories: Iterable,
    *,
    steps: int | None,
    budget=None,
    writer: RolloutsWriter | None = None,
    meta: Mapping[str, Any] | None = None,
    diagnose: bool = True,
) -> dict[str, Any]:
    """`score_rollout` of each trajectory (read one at a time), as `metrics.json` holds it.

    Returns a JSON-ready dict:
      rollout_rmse: {model, persistence}: {"1", "10", "50", "all": RMSE over all nodes
        and the state's components, over the first h steps}, averaged over
        trajectories (as MeshGraphNets);
      rollout_rmse_per_step: {model, persistence}: `[S]` RMSE at each step 1..S
        (`rmse_per_step`);
      steps: predicted steps of the first trajectory; num_trajectories;
      diagnostics (with `diagnose`): {"task", "summary": `summarize_diagnostics`,
        "trajectories": one `RolloutDiagnostics.result()` per trajectory}, or None
        for a task without diagnostics.

    Raises:
      ValueError: if `trajectories` is empty.
    """
    scores = [
        score_rollout(
            sim, state, t, steps=steps, budget=budget, writer=writer, diagnose=diagnose, meta=meta
        )
        for t in trajectories
    ]
    if not scores:
        raise ValueError("trajectories: expected at least one, got none")
    result: dict[str, Any] = {"rollout_rmse": {}, "rollout_rmse_per_step": {}}
    for name in ("model", "persistence"):
        mse = [getattr(s, f"{name}_mse") for s in scores]
        result["rollout_rmse"][name] = M.aggregate_rollout_metrics(
            M.rmse_at_horizons(m) for m in mse
        )
        result["rollout_rmse_per_step"][name] = rmse_per_step(mse)
    result["steps"] = scores[0].steps
    result["num_trajectories"] = len(scores)
    if diagnose:
        task = sim.task.name
        per_trajectory = [s.diagnostics for s in scores]
        diagnosed = [d for d in per_trajectory if d is not None and "error" not in d]
        result["diagnostics"] = (
            None
            if task not in DIAGNOSED_TASKS
            else {
                "task": task,
                "summary": summarize_diagnostics(task, diagnosed),
                "trajectories": per_trajectory,
            }
        )
    return result


def format_summary(metrics: Mapping[str, Any]) -> str:
    """A few lines for the terminal from an `evaluate_trajectories` dict: the RMSE
    table, then the diagnostics' summary (metrics.json holds the rest)."""
    rmse = metrics["rollout_rmse"]
    keys = list(rmse["model"])
    lines = [
        f"{metrics.get('num_trajectories', '?')} trajectories, {metrics.get('steps', '?')} "
        "steps from the first frame",
        f"{'rollout RMSE':<16}" + "".join(f"{'h=' + k if k != 'all' else 'all':>11}" for k in keys),
    ]
    for name in ("model", "persistence"):
        values = [rmse[name].get(k) for k in keys]
        lines.append(f"  {name:<14}" + "".join(f"{_number(v):>11}" for v in values))
    diagnostics = metrics.get("diagnostics")
    summary = (diagnostics or {}).get("summary") or {}
    if "strouhal_model" in summary:
        s = summary
        lines += [
            f"Strouhal number   model {_number(s['strouhal_model'])}  truth "
            f"{_number(s['strouhal_truth'])}  ({s['strouhal_trajectories']} trajectories "
            "with shedding in both)",
            f"mean |div u|      model {_number(s['mean_abs_divergence_model'])}  truth "
            f"{_number(s['mean_abs_divergence_truth'])}",
            "kinetic energy, model / truth at the last frame with truth: "
            f"{_number(s['kinetic_energy_ratio_final'])}",
        ]
    elif "strain_error" in summary:
        s = summary
        lines += [
            f"edge strain error {_number(s['strain_error'])}  (mean |strain| model "
            f"{_number(s['mean_abs_strain_model'])}, truth {_number(s['mean_abs_strain_truth'])})"
        ]
    return "\n".join(lines)


def _number(value) -> str:
    """4 significant digits; "n/a" for None (not measurable, or a blow-up)."""
    return "n/a" if value is None else f"{value:.4g}"


def iter_rollouts_h5(path: str | os.PathLike) -> Iterator[dict]:
    """The groups of a `rollouts.h5`, one at a time, as dicts of h5py datasets (read
    lazily: index them, e.g. `r["pred"][t]`). The file stays open while iterating."""
    import h5py

    with h5py.File(path, "r") as f:
        for _, group in sorted(f.items()):
            yield {k: group[k] for k in group}


def load_rollouts_h5(path: str | os.PathLike) -> list[dict]:
    """Every group of a `rollouts.h5` read into numpy arrays (small files only)."""
    return [{k: v[()] for k, v in r.items()} for r in iter_rollouts_h5(path)]


class _Frames:
    """Frame-indexed view `f(t) -> [N, d]` with a `shape`, read lazily (for exports)."""

    def __init__(self, shape: tuple[int, ...], frame: Callable[[int], np.ndarray]):
        self.shape, self._frame = shape, frame

    def __getitem__(self, t: int) -> np.ndarray:
        return self._frame(t)


def _export_fields(r: dict) -> dict:
    """pred, truth and error of a rollout group, frame by frame; truth and error are
    NaN on frames past the ground truth."""
    pred, truth = r["pred"], r["truth"]
    known = truth.shape[0]
    missing = np.full(pred.shape[1:], np.nan, np.float32)

    def truth_at(t):
        return truth[t] if t < known else missing

    return {
        "pred": pred,
        "truth": _Frames(pred.shape, truth_at),
        "error": _Frames(pred.shape, lambda t: pred[t] - truth_at(t)),
    }


def export_rollouts(path: str | os.PathLike, out: str | os.PathLike, task: Task) -> str:
    """ParaView files for each rollout of `path` under `out/` (replaced as a whole).

    An XDMF time series per trajectory for fixed meshes, per-frame VTU files with
    moving points for Lagrangian tasks. Reads one frame at a time.
    """
    from meshsim.export import export_vtk_frames, export_xdmf

    with atomic.staged_directory(out, replace=True) as tmp:
        for i, r in enumerate(iter_rollouts_h5(path)):
            fields = _export_fields(r)
            if task.lagrangian:  # the points themselves move
                export_vtk_frames(
                    os.path.join(tmp, f"{i:05d}"), r["cells"], fields, points_per_frame=r["pred"]
                )
            else:
                export_xdmf(os.path.join(tmp, f"{i:05d}.xdmf"), r["mesh_pos"], r["cells"], fields)
    return os.fspath(out)


def plot_first_rollout(
    path: str | os.PathLike, workdir: str, task: Task, *, frame: int | None, every: int
) -> list[str]:
    """Comparison figure and animation of the first rollout in `path`, over the frames
    that have ground truth."""
    from meshsim import plotting

    rollouts = iter_rollouts_h5(path)
    try:
        r = next(rollouts, None)
        if r is None:
            raise ValueError(f"{path}: holds no rollout")
        known = min(r["pred"].shape[0], r["truth"].shape[0])
        pred, truth = r["pred"][:known], r["truth"][:known]
        cells = r["cells"][()]
        mesh_pos = r["mesh_pos"][()] if "mesh_pos" in r else None
    finally:
        rollouts.close()
    gif = os.path.join(workdir, "rollout.gif")
    if task.lagrangian:  # the mesh moves: draw it
        return [str(p) for p in plotting.animate_cloth(pred, cells, gif, truth=truth, every=every)]
    pred_scalar, label = task.plot_scalar(pred)
    truth_scalar, _ = task.plot_scalar(truth)
    frame = known - 1 if frame is None else frame
    fig = plotting.plot_comparison(
        mesh_pos, cells, pred_scalar[frame], truth_scalar[frame], title=f"{label}, step {frame}"
    )
    out = os.path.join(workdir, "comparison.png")
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100)
    paths = [out]
    paths += [
        str(p)
        for p in plotting.animate_rollout(
            mesh_pos, cells, pred_scalar, truth_scalar, gif, every=every
        )
    ]
    return paths
