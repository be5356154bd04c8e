"""How good a rollout or a forecast is: metrics, rollout scores, forecast scores, files.

`metrics` holds masked MSE/RMSE and RMSE at rollout horizons; `scores` rolls
trajectories out as they stream and scores them against persistence, with the
task's physical diagnostics; `forecast` the latitude-weighted RMSE and ACC of
weather forecasts by lead time and forecasts as WeatherBench2-layout zarr;
`rollouts_file` writes and reads `rollouts.h5`; `ensemble` the CRPS (fair, standard,
almost-fair), spread/skill and rank histograms of ensemble forecasts; `spectra` the
spherical-harmonic power of lat-lon fields and the wavenumber power along a line;
`forecast_table` the score table of many (ensemble) forecasts; `mesh_ensemble` the
members of an ensemble on a mesh, scored by step, with a probe line's spectrum.
"""

from meshsim.evaluation.ensemble import (
    almost_fair_crps,
    crps_ensemble,
    ensemble_scores,
    rank_histogram,
)
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
from meshsim.evaluation.spectra import line_spectrum, sphere_power_spectrum

__all__ = [
    "RolloutScore",
    "RolloutsWriter",
    "almost_fair_crps",
    "crps_ensemble",
    "ensemble_scores",
    "evaluate_rollouts",
    "evaluate_trajectories",
    "format_summary",
    "iter_rollouts_h5",
    "line_spectrum",
    "load_rollouts_h5",
    "rank_histogram",
    "rmse_per_step",
    "rollout_metrics",
    "score_rollout",
    "sphere_power_spectrum",
]
