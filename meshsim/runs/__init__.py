"""Runs: from a config to a trained, evaluated, reported model, in a run directory.

`build` turns a config into a dataset, task, model and simulator; `workdir` keeps
the run directory's files and loads a trained run; `checkpoint` its orbax
checkpoints with manifests; `train` the training loop (`meshsim train`);
`evaluate` scoring, rollouts and plots (`meshsim evaluate/rollout/plot`);
`forecast` forecast scoring and `meshsim forecast`; `reports` what a demo reports
for each scoring; `demo` the one demo driver (`meshsim demo`).
"""

from meshsim.runs.build import build_model, build_simulator, build_task, open_split
from meshsim.runs.demo import run_demo
from meshsim.runs.evaluate import evaluate_run, run_evaluation, run_plots, run_rollouts
from meshsim.runs.forecast import evaluate_forecasts, run_forecast
from meshsim.runs.train import run_training
from meshsim.runs.workdir import Run, load_run, open_run

__all__ = [
    "Run",
    "build_model",
    "build_simulator",
    "build_task",
    "evaluate_forecasts",
    "evaluate_run",
    "load_run",
    "open_run",
    "open_split",
    "run_demo",
    "run_evaluation",
    "run_forecast",
    "run_plots",
    "run_rollouts",
    "run_training",
]
