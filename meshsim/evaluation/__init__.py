"""How good a rollout or a forecast is: metrics, rollout scores, forecast scores, files.

`metrics` holds masked MSE/RMSE and RMSE at rollout horizons; `scores` rolls
trajectories out as they stream and scores them against persistence, with the
task's physical diagnostics; `forecast` the latitude-weighted RMSE and ACC of
weather forecasts by lead time and forecasts as WeatherBench2-layout zarr;
`rollouts_file` writes and reads `rollouts.h5`.
"""

from meshsim.evaluation.rollouts_file import (
    RolloutsWriter,
    iter_rollouts_h5,
    load_rollouts_h5,
)
from meshsim.evaluation.scores import (
    RolloutScore,
    evaluate_rollouts,
    evaluate_trajectories,
    format_summary,
    rmse_per_step,
    rollout_metrics,
    score_rollout,
)

__all__ = [
    "RolloutScore",
    "RolloutsWriter",
    "evaluate_rollouts",
    "evaluate_trajectories",
    "format_summary",
    "iter_rollouts_h5",
    "load_rollouts_h5",
    "rmse_per_step",
    "rollout_metrics",
    "score_rollout",
]
