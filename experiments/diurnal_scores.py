"""Where a weather run's forecasts of one channel lose to persistence (`2m_temperature`).

`meshsim evaluate` starts a forecast every 4th time (every 24 h of 6-hourly data), so
all its forecasts start at one UTC hour. This script starts one at every time of the
split and reports, for the model and for persistence, the latitude-weighted RMSE per
lead time for all initial times and for each initial UTC hour, the RMSE per latitude
row at 24 h and 72 h, and the part of the model's error that is a time-mean bias
(the same error at every initial time):

    python experiments/diurnal_scores.py --workdir runs/diurnal [--channel 2m_temperature]

Prints one JSON object.
"""

import argparse
import json

import numpy as np

from meshsim.data.weather import node_weights
from meshsim.rollout import rollout_trajectory
from meshsim.runs.build import open_split
from meshsim.runs.workdir import open_run


def _rmse(err: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[L] latitude-weighted RMSE of errors [F, L, N] over forecasts and nodes."""
    return np.sqrt(np.einsum("fln,n->l", err**2, weights) / (err.shape[0] * weights.sum()))


def scores(workdir: str, channel: str, split: str = "valid", steps: int = 12) -> dict:
    run = open_run(workdir)
    dataset = open_split(run.config, split)
    c = dataset.meta["channels"].index(channel)
    weights = node_weights(dataset.latitudes, dataset.longitudes).astype(np.float64)
    hours = dataset.meta["time_step_hours"]
    model, persistence, init_hours = [], [], []  # errors [L, N] per forecast
    for i in range(len(dataset)):
        traj = dataset[i]
        truth = np.asarray(traj["state"])[..., c].astype(np.float64)  # [T, N]
        traj = {**traj, "state": np.asarray(traj["state"])}
        for start in range(run.sim.task.history, truth.shape[0] - steps):
            pred = rollout_trajectory(
                run.sim,
                run.state.params,
                run.state.normalizers,
                traj,
                steps=steps,
                start=start,
                chunk=steps,
            )
            lead = truth[start + 1 : start + steps + 1]
            model.append(pred[1:, :, c] - lead)
            persistence.append(truth[start] - lead)
            init_hours.append(int(traj["time"][start].astype("datetime64[h]").astype(int) % 24))
    model, persistence, init_hours = np.array(model), np.array(persistence), np.array(init_hours)
    leads = [f"{hours * (k + 1):g}" for k in range(steps)]

    def by_lead(err):
        return dict(zip(leads, np.round(_rmse(err, weights), 4).tolist()))

    out = {"channel": channel, "forecasts": len(model), "by_init_hour": {}}
    for key, sel in [("all", slice(None))] + [
        (f"{h:02d}h", init_hours == h) for h in sorted(set(init_hours.tolist()))
    ]:
        out["by_init_hour"][key] = {
            "model": by_lead(model[sel]),
            "persistence": by_lead(persistence[sel]),
        }
    h, w = dataset.latitudes.size, dataset.longitudes.size
    rows = weights.reshape(h, w)
    for lead_hours in (24, 72):
        k = round(lead_hours / hours) - 1
        if not 0 <= k < steps:
            continue
        entry = {}
        for name, err in (("model", model), ("persistence", persistence)):
            grid = (err[:, k] ** 2).mean(0).reshape(h, w)
            entry[name] = np.round(np.sqrt((grid * rows).sum(1) / rows.sum(1)), 3).tolist()
        bias = model[:, k].mean(0)  # [N] the error every forecast shares
        entry["latitudes"] = dataset.latitudes.tolist()
        entry["model_bias_rmse"] = round(
            float(np.sqrt((weights * bias**2).sum() / weights.sum())), 4
        )
        out[f"by_latitude_{lead_hours}h"] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--channel", default="2m_temperature")
    parser.add_argument("--split", default="valid")
    args = parser.parse_args()
    print(json.dumps(scores(args.workdir, args.channel, args.split)))


if __name__ == "__main__":
    main()
