"""Rollouts scored as they stream: RMSE against persistence and physical diagnostics.

A rollout is scored chunk by chunk as it comes off the device (`iter_rollout`):
each chunk is handed to the writer of `rollouts.h5` (optional,
`meshsim.evaluation.rollouts_file`), and only its per-frame errors and the task's
diagnostics (`Task.diagnostics`, e.g. kinetic energy, mean |∇·u| and a probe's
velocity for a flow; edge strain for a cloth) are kept, so host memory stays flat
however long the rollout (one trajectory, the input, is in memory at a time).
Frames past the end of the data (a rollout longer than the trajectory) have no
ground truth: the metrics cover the known frames only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from meshsim.diagnostics import RolloutDiagnostics
from meshsim.evaluation import metrics as M
from meshsim.evaluation.mesh_ensemble import score_mesh_ensemble, summarize_mesh_ensembles
from meshsim.evaluation.rollouts_file import RolloutsWriter
from meshsim.rollout import iter_rollout
from meshsim.simulator import Simulator
from meshsim.tasks import Task

logger = logging.getLogger(__name__)


class RolloutScore(NamedTuple):
    """One trajectory's rollout, scored against its ground truth."""

    model_mse: np.ndarray  # [K - 1] float64: MSE of the model at steps 1..K-1 (frames with truth)
    persistence_mse: np.ndarray  # [K - 1] float64: MSE of keeping frame 0
    steps: int  # predicted steps (may exceed K - 1: past the data)
    diagnostics: dict | None  # `RolloutDiagnostics.result()`; None unless asked and known


def _diagnostics(task: Task, truth: np.ndarray, trajectory, meta) -> RolloutDiagnostics | None:
    """The task's diagnostics accumulator, or None (a task without diagnostics)."""
    if task.diagnostics is None:
        return None
    return task.diagnostics(truth, trajectory, meta=meta)


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
    truth = np.asarray(task.state(trajectory, slice(task.history, None)))  # [K, N, d]
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
      ensemble (an ensemble run, `model.ensemble.*`): the members' CRPS, ensemble-mean
        RMSE, spread, spread/skill per step and rank histograms, and spectra along a
        probe line (`meshsim.evaluation.mesh_ensemble`); the "model" rollout above is
        the network without noise;
      diagnostics (with `diagnose`): {"task": its name, "summary":
        `Task.diagnostics.summarize`, "trajectories": one `result()` per trajectory},
        or None for a task without diagnostics.

    Raises:
      ValueError: if `trajectories` is empty.
    """
    scores, members = [], []
    for t in trajectories:
        scores.append(
            score_rollout(
                sim,
                state,
                t,
                steps=steps,
                budget=budget,
                writer=writer,
                diagnose=diagnose,
                meta=meta,
            )
        )
        if sim.ensemble is not None:  # M members of their own, streamed in lockstep
            members.append(score_mesh_ensemble(sim, state, t, steps=steps, budget=budget))
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
    if members:
        result.update(summarize_mesh_ensembles(members))
    if diagnose:
        kind = sim.task.diagnostics
        per_trajectory = [s.diagnostics for s in scores]
        diagnosed = [d for d in per_trajectory if d is not None and "error" not in d]
        result["diagnostics"] = (
            None
            if kind is None
            else {
                "task": sim.task.name,
                "summary": kind.summarize(diagnosed),
                "trajectories": per_trajectory,
            }
        )
    return result


def format_summary(
    metrics: Mapping[str, Any], diagnostics: type[RolloutDiagnostics] | None = None
) -> str:
    """A few lines for the terminal from an `evaluate_trajectories` dict: the RMSE
    table, then the rows of the diagnostics' summary (`diagnostics`: the task's
    `RolloutDiagnostics` class; metrics.json holds the rest)."""
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
    ensemble = metrics.get("ensemble")
    if ensemble:  # the members' CRPS over all steps and spread/skill at the last step
        crps = np.mean([np.mean(v) for v in ensemble["crps"].values()])
        ratio = [v[-1] for v in ensemble["spread_skill"].values()]
        lines.append(
            f"ensemble of {ensemble['members']}: CRPS {_number(float(crps))} (mean over steps "
            f"and components), spread/skill at the last step {', '.join(map(_number, ratio))}"
        )
    summary = (metrics.get("diagnostics") or {}).get("summary")
    if diagnostics is not None and summary:
        for label, model, truth in diagnostics.report_rows(summary):
            lines.append(
                f"{label}: model {_number(model)}, {diagnostics.reference_label} {_number(truth)}"
            )
    return "\n".join(lines)


def _number(value) -> str:
    """4 significant digits; "n/a" for None (not measurable, or a blow-up)."""
    return "n/a" if value is None else f"{value:.4g}"
