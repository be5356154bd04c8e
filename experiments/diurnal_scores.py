"""Scores of a weather run's `2m_temperature` forecasts by initial time of day.

`meshsim evaluate` starts a forecast every 4th time (every 24 h of 6-hourly data), so
all its forecasts start at one UTC hour; this script starts one at every time of the
split and reports the latitude-weighted RMSE of the model and of persistence per
lead time, for all initial times and for each initial UTC hour:

    python experiments/diurnal_scores.py --workdir runs/diurnal [--channel 2m_temperature]

Prints a JSON object {"all" | "<hour>h": {"model" | "persistence": {lead_hours: rmse}}}.
"""

import argparse
import json

import numpy as np

from meshsim.data.weather import node_weights
from meshsim.evaluation.forecast import weighted_rmse
from meshsim.rollout import rollout_trajectory
from meshsim.runs.build import open_split
from meshsim.runs.workdir import open_run


def scores(workdir: str, channel: str, split: str = "valid", steps: int = 12) -> dict:
    run = open_run(workdir)
    dataset = open_split(run.config, split)
    c = dataset.meta["channels"].index(channel)
    weights = node_weights(dataset.latitudes, dataset.longitudes)
    hours = dataset.meta["time_step_hours"]
    squared: dict[str, dict[str, list]] = {}
    for i in range(len(dataset)):
        traj = dataset[i]
        truth = np.asarray(traj["state"])
        traj = {**traj, "state": truth}
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
            lead = truth[start + 1 : start + steps + 1, :, c : c + 1]
            persistence = np.broadcast_to(truth[start : start + 1, :, c : c + 1], lead.shape)
            hour = int(traj["time"][start].astype("datetime64[h]").astype(int) % 24)
            for key in ("all", f"{hour:02d}h"):
                entry = squared.setdefault(key, {"model": [], "persistence": []})
                entry["model"].append(
                    weighted_rmse(pred[1:, :, c : c + 1], lead, weights)[:, 0] ** 2
                )
                entry["persistence"].append(weighted_rmse(persistence, lead, weights)[:, 0] ** 2)
    out = {}
    for key, entry in sorted(squared.items()):
        out[key] = {
            kind: {
                f"{hours * (k + 1):g}": float(v) for k, v in enumerate(np.sqrt(np.mean(values, 0)))
            }
            for kind, values in entry.items()
        }
        out[key]["forecasts"] = len(entry["model"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--channel", default="2m_temperature")
    parser.add_argument("--split", default="valid")
    args = parser.parse_args()
    print(json.dumps(scores(args.workdir, args.channel, args.split), indent=1))


if __name__ == "__main__":
    main()
