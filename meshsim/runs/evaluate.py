"""`meshsim evaluate`, `rollout` and `plot`: a trained run scored, rolled out and drawn.

How a run is scored is its task's choice (`Task.scoring`): "rollout" rolls whole
held-out trajectories out from their first frame and scores them against
persistence with the task's physical diagnostics (`meshsim.evaluation.scores`;
this module), "forecast" scores forecasts by lead time from many initial times
(`meshsim.runs.forecast`). `SCORINGS` maps the choice to its implementation; each
command loads the run once (`meshsim.runs.workdir.open_run`).

Rollouts stream to `rollouts.h5` as they come off the device, and `metrics.json`
and `rollouts.h5` are published together when everything succeeded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

from meshsim import atomic
from meshsim.evaluation import RolloutsWriter, evaluate_trajectories, format_summary
from meshsim.runs.build import build_task, open_split
from meshsim.runs.forecast import evaluate_forecasts, format_scores, score_forecast_store
from meshsim.runs.lock import run_lock
from meshsim.runs.workdir import Run, check_finite_model, load_config_of, load_meta, open_run
from meshsim.tasks import Task
from meshsim.validation import check_int


def _evaluate_rollouts(
    run: Run, *, split: str, num: int | None, steps: int | None, save_rollouts: bool = True
) -> dict[str, Any]:
    """Rolls out `num` trajectories of `split` from their first frame; writes
    metrics.json (and rollouts.h5). Trajectories are read one at a time.

    Keys: rollout_rmse, rollout_rmse_per_step, steps, num_trajectories, diagnostics
    (`meshsim.evaluation.evaluate_trajectories`), split, checkpoint_step.
    """
    config, sim, state = run.config, run.sim, run.state
    dataset = open_split(config, split)
    n = len(dataset) if num is None else min(num, len(dataset))
    if n == 0:
        raise ValueError(f"split {split!r} of {config.data.path!r} holds no trajectories")
    path = os.path.join(run.workdir, "rollouts.h5")
    writer = RolloutsWriter(path, sim.task.state_field) if save_rollouts else None
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
    result = {**scores, "split": split, "checkpoint_step": int(state.step)}
    atomic.write_json(os.path.join(run.workdir, "metrics.json"), result)
    return result


class Scoring(NamedTuple):
    """How one kind of task scores a trained run."""

    evaluate: Any  # (run, *, split, num, steps) -> metrics dict, written to metrics.json
    summary: Any  # (run, metrics) -> text for the terminal


SCORINGS: dict[str, Scoring] = {
    "rollout": Scoring(
        evaluate=_evaluate_rollouts,
        summary=lambda run, metrics: (
            format_summary(metrics, run.sim.task.diagnostics)
            + f"\nwrote {os.path.join(run.workdir, 'metrics.json')}"
        ),
    ),
    "forecast": Scoring(evaluate=evaluate_forecasts, summary=format_scores),
}


def scoring_of(run: Run) -> Scoring:
    """The scoring the run's task asks for (`Task.scoring`)."""
    name = run.sim.task.scoring
    if name not in SCORINGS:
        raise ValueError(
            f"task {run.sim.task.name!r}: scoring {name!r} is not one of {sorted(SCORINGS)}"
        )
    return SCORINGS[name]


def evaluate_run(
    run: Run,
    *,
    split: str = "valid",
    num: int | None = None,
    steps: int | None = None,
    forecast: str | None = None,
) -> dict[str, Any]:
    """`run_evaluation` on a loaded run."""
    check_int("num", num, minimum=1, optional=True)
    check_int("steps", steps, minimum=1, optional=True)
    if forecast is not None:
        if run.sim.task.scoring != "forecast":
            raise ValueError(
                f"forecast: task {run.sim.task.name!r} is scored by rollouts; a forecast "
                "store is scored against a weather run's data"
            )
        if num is not None or steps is not None:
            raise ValueError(
                "forecast: the store sets the forecasts and lead times; drop --num/--steps"
            )
        return score_forecast_store(run, forecast, split=split)
    check_finite_model(run)
    return scoring_of(run).evaluate(run, split=split, num=num, steps=steps)


def run_evaluation(
    workdir: str,
    *,
    split: str = "valid",
    num: int | None = None,
    steps: int | None = None,
    overrides: Sequence[str] = (),
    forecast: str | None = None,
) -> dict[str, Any]:
    """Scores the run in `workdir` on `split` as its task asks (`Task.scoring`) and
    writes `metrics.json` (and, for rollout scoring, `rollouts.h5`). With `forecast`, a
    forecast store read back is scored instead of the run's own rollouts
    (`meshsim.runs.forecast.score_forecast_store`).

    `num` trajectories (default all); `steps` predicted steps (default the data's;
    for rollouts, more are allowed where the prescribed values are constant, and the
    metrics then cover the known frames). `overrides`: `data.*` settings (`--set
    data.path=DIR` where the dataset has moved). Holds the run's lock
    (`meshsim.runs.lock`).
    """
    with run_lock(workdir, "evaluate"):
        run = open_run(workdir, overrides)
        return evaluate_run(run, split=split, num=num, steps=steps, forecast=forecast)


def evaluate_and_summarize(
    workdir: str, *, overrides: Sequence[str] = (), **kwargs
) -> tuple[dict[str, Any], str]:
    """(metrics, a few lines for the terminal): `meshsim evaluate`."""
    with run_lock(workdir, "evaluate"):
        run = open_run(workdir, overrides)
        metrics = evaluate_run(run, **kwargs)
        return metrics, scoring_of(run).summary(run, metrics)


def run_rollouts(
    workdir: str, *, split="valid", num=None, steps=None, export=False, overrides=()
) -> str:
    """Rollouts saved to `workdir/rollouts.h5` (prediction, truth, mesh per trajectory),
    with the metrics of `run_evaluation`.

    With `export`, also ParaView files under `workdir/paraview/` (replaced as a whole):
    an XDMF time series per trajectory for fixed meshes, per-frame VTU files with
    moving points for Lagrangian tasks. Frames past the ground truth export NaN truth
    and error. `overrides` as for `run_evaluation`; holds the run's lock.
    """
    from meshsim.plotting import paraview

    with run_lock(workdir, "rollout"):
        run = open_run(workdir, overrides)
        if run.sim.task.scoring != "rollout":
            raise ValueError(
                f"workdir {workdir!r}: task {run.sim.task.name!r} is scored by forecasts; "
                "use meshsim forecast"
            )
        evaluate_run(run, split=split, num=num, steps=steps)
        path = os.path.join(workdir, "rollouts.h5")
        if export:
            paraview.export_rollouts(path, os.path.join(workdir, "paraview"), run.sim.task)
        return path


def run_plots(workdir: str, *, frame: int | None = None, every: int = 2) -> list[str]:
    """Loss curve, a prediction|truth|error figure and a rollout animation for a run.

    Raises:
      FileNotFoundError: no run in `workdir`, or nothing to plot in it yet.
    """
    with run_lock(workdir, "plot"):
        task = build_task(load_config_of(workdir), load_meta(workdir))
        return plot_run(workdir, task, frame=frame, every=every)


def plot_run(workdir: str, task: Task, *, frame: int | None = None, every: int = 2) -> list[str]:
    """`run_plots` for a caller that has the run's task already (the demo)."""
    from meshsim.plotting import plot_loss_curve
    from meshsim.plotting.rollout import plot_first_rollout

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
        paths.append(str(plot_loss_curve(metrics_path, os.path.join(workdir, "loss.png"))))
    if os.path.exists(rollouts_path):
        paths += plot_first_rollout(rollouts_path, workdir, task, frame=frame, every=every)
    return paths
