"""The interaction block against the graph-transformer block at equal training time.

On built-in cylinder flow (`experiments/cylinder_flow_lite.py`: its data, 16-frame
bundles and paper noise) and built-in shallow water (`experiments/weather_shallow_water.py`:
GraphCast's stages, its curriculum), each block is trained at two sizes for the same
steady-state training time (`experiments/stability.py`'s `train_for_budget`: the
steps are the budget times the steps/s measured in a warm-up chunk, so compilation,
checkpoints and statistics-only steps fall outside the budget) and scored by the
package's own evaluation on every validation trajectory:

* cylinder flow: rollout RMSE at 1/10/50/all steps against persistence, and per
  trajectory the Strouhal number at the probe behind the obstacle and the kinetic
  energy of the last frame, against the truth's;
* shallow water: latitude-weighted RMSE and ACC at 24 h and 72 h per channel.

Parameter counts and steps/s are in the table. `--recipes BLOCK` trains instead
the cylinder-flow demo's recipe variations (`RECIPES`: noise, pushforward, bundle
length) with that block at the preset's size, the same way: the study that picks the
demo's recipe. Usage (repository root)::

    .venv/bin/python experiments/processors.py --budget-s 240 --weather-budget-s 240
    .venv/bin/python experiments/processors.py --recipes interaction --tasks cylinder \
        --out /tmp/recipes
    .venv/bin/python experiments/processors.py --smoke --out /tmp/proc   # ~5 min CPU

Writes `<out>/processors.json` and `<out>/processors.md` (default
`experiments/results/`), runs under `--workdir` (default `runs/processors`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from experiments.stability import machine_note, score, train_for_budget  # noqa: E402
from meshsim import atomic  # noqa: E402
from meshsim.config import ExperimentConfig, apply_overrides, load_config  # noqa: E402

logger = logging.getLogger("processors")

PRESETS = {
    "cylinder": "experiments/cylinder_flow_lite.py",
    "shallow_water": "experiments/weather_shallow_water.py",
}
# (name, overrides) per task: each block at a small and at the preset's size; a
# transformer head is 16 wide, so heads = latent / 16.
SIZES = {"cylinder": ((32, 4), (64, 8)), "shallow_water": ((32, 2), (64, 4))}
SMOKE = [
    "data.generate_train_trajectories=2",
    "data.generate_valid_trajectories=1",
    "data.generate_steps=40",
    "train.accumulate_steps=2",
]
SMOKE_SIZES = {"cylinder": ((16, 1),), "shallow_water": ((16, 1),)}
LEADS = (24, 72)
# The demo recipe's variations (`--recipes`): the preset is 16-frame bundles, one-step
# loss, noise σ 0.02 (MeshGraphNets').
RECIPES = (
    ("bundle16_noise0.02", ["task.noise_std=0.02"]),
    ("bundle16_noise0.01", ["task.noise_std=0.01"]),
    ("bundle16_noise0.005", ["task.noise_std=0.005"]),
    (
        "bundle8_pushforward2",
        ["model.bundle_steps=8", "train.unroll_steps=2", "train.unroll_mode=pushforward"],
    ),
)


def variants(task: str, smoke: bool, recipes: str | None = None) -> list[tuple[str, list[str]]]:
    """(name, overrides) of the configurations: both blocks at each size, or with
    `recipes` (a block name) the demo recipe's variations with that block."""
    if recipes is not None:
        heads = [] if recipes == "interaction" else ["model.num_heads=4"]
        return [(name, [f"model.block={recipes}", *heads, *o]) for name, o in RECIPES]
    out = []
    for latent, steps in (SMOKE_SIZES if smoke else SIZES)[task]:
        size = [f"model.latent_size={latent}", f"model.num_message_passing_steps={steps}"]
        out.append((f"interaction_{latent}x{steps}", ["model.block=interaction", *size]))
        heads = f"model.num_heads={max(latent // 16, 1)}"
        out.append((f"transformer_{latent}x{steps}", ["model.block=transformer", heads, *size]))
    return out


def base_config(task: str, workdir: str, smoke: bool) -> ExperimentConfig:
    """The preset with the study's data path and a schedule that chunks can stop."""
    config = load_config(os.path.join(REPO, PRESETS[task]))
    train = dataclasses.replace(
        config.train,
        steps=10_000_000,
        log_every=2 if smoke else 10,
        checkpoint_every=10_000_000,
        keep_checkpoints=1,
        eval_every=0,
    )
    config = dataclasses.replace(config, train=train)
    overrides = [f"data.path={os.path.join(workdir, 'data', task)}"]
    if smoke:
        overrides += SMOKE + (["data.generate_mesh_resolution=0.4"] if task == "cylinder" else [])
        overrides += ["model.bundle_steps=2"] if task == "cylinder" else ["train.unroll_steps=1"]
    return apply_overrides(config, overrides)


def parameters(workdir: str) -> int:
    import meshsim
    from meshsim.runs.workdir import open_run

    return int(meshsim.count_params(open_run(workdir).state.params))


def cylinder_scores(workdir: str, split: str) -> dict:
    """`stability.score` plus each trajectory's Strouhal numbers and final energies."""
    out = score(workdir, split)
    out.pop("per_step_rmse")
    with open(os.path.join(workdir, "metrics.json")) as f:
        diagnostics = json.load(f)["diagnostics"]
    per = []
    for t in diagnostics["trajectories"]:
        model, truth = t["kinetic_energy_model"], t["kinetic_energy_truth"]
        last = min(len(model), len(truth)) - 1
        ratio = None if model[last] is None else model[last] / truth[last]
        per.append(
            {
                "strouhal_model": t.get("strouhal_model"),
                "strouhal_truth": t.get("strouhal_truth"),
                "kinetic_energy_ratio_final": ratio,
            }
        )
    out["trajectories"] = per
    return out


def weather_scores(workdir: str, split: str) -> dict:
    """Latitude-weighted RMSE (model and persistence) and ACC at `LEADS` per channel."""
    from meshsim.runs import run_evaluation

    result = run_evaluation(workdir, split=split)
    hours = [float(h) for h in result["lead_hours"]]
    out = {}
    for lead in LEADS:
        if float(lead) not in hours:
            continue
        i = hours.index(float(lead))
        out[str(lead)] = {
            channel: {
                "rmse": result["rmse"]["model"][channel][i],
                "persistence": result["rmse"]["persistence"][channel][i],
                "acc": result["acc"]["model"][channel][i],
            }
            for channel in result["rmse"]["model"]
        }
    return out


def run_task(task: str, args) -> dict:
    from meshsim.runs.demo import generate

    base = base_config(task, args.workdir, args.smoke)
    generate(base)
    budget = args.budget_s if task == "cylinder" else args.weather_budget_s
    out = {"budget_s": budget, "preset": PRESETS[task], "configs": {}}
    for name, overrides in variants(task, args.smoke, args.recipes):
        config = apply_overrides(base, overrides)
        workdir = os.path.join(args.workdir, task, name)
        if os.path.exists(workdir):
            shutil.rmtree(workdir)
        entry = {"overrides": overrides, "load_before": round(os.getloadavg()[0], 2)}
        entry.update(train_for_budget(config, workdir, budget_s=budget, probe_steps=args.probe))
        entry["parameters"] = parameters(workdir)
        scores = cylinder_scores if task == "cylinder" else weather_scores
        entry["scores"] = scores(workdir, config.data.valid_split)
        entry["load_after"] = round(os.getloadavg()[0], 2)
        out["configs"][name] = entry
        logger.info("%s/%s: %s", task, name, json.dumps(entry)[:400])
    return out


# ----------------------------------------------------------------------------- report


def _f(x, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _cylinder_table(t: dict) -> list[str]:
    lines = [
        "| config | params | steps | steps/s | h=1 | h=10 | h=50 | h=all | St model / truth "
        "per trajectory | final KE model/truth per trajectory |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    persistence = None
    for name, c in t["configs"].items():
        s = c["scores"]
        rm, persistence = s["rmse"]["model"], s["rmse"]["persistence"]
        st = ", ".join(
            f"{_f(p['strouhal_model'], 3)}/{_f(p['strouhal_truth'], 3)}" for p in s["trajectories"]
        )
        ke = ", ".join(_f(p["kinetic_energy_ratio_final"], 3) for p in s["trajectories"])
        rates = ", ".join(f"{v:.2f}" for v in c["steps_per_s"].values())
        horizons = [_f(rm.get(h)) for h in ("1", "10", "50", "all")]
        lines.append(
            f"| {name} | {c['parameters']:,} | {c['steps_trained']} | {rates} | "
            + " | ".join(horizons)
            + f" | {st} | {ke} |"
        )
    if persistence is not None:
        cells = [_f(persistence.get(h)) for h in ("1", "10", "50", "all")]
        lines.append("| persistence | | | | " + " | ".join(cells) + " | | |")
    return lines


def _weather_table(t: dict) -> list[str]:
    first = next(iter(t["configs"].values()))["scores"]
    channels = list(next(iter(first.values())))
    head = [f"{lead} h {ch} RMSE / ACC" for lead in first for ch in channels]
    lines = [
        "| config | params | steps | steps/s | " + " | ".join(head) + " |",
        "|---|---|---|---|" + "---|" * len(head),
    ]
    for name, c in t["configs"].items():
        s = c["scores"]
        cells = [
            f"{_f(s[lead][ch]['rmse'])} / {_f(s[lead][ch]['acc'], 3)}"
            for lead in s
            for ch in channels
        ]
        rates = ", ".join(f"{v:.2f}" for v in c["steps_per_s"].values())
        lines.append(
            f"| {name} | {c['parameters']:,} | {c['steps_trained']} | {rates} | "
            + " | ".join(cells)
            + " |"
        )
    cells = [f"{_f(first[lead][ch]['persistence'])} / —" for lead in first for ch in channels]
    lines.append("| persistence | | | | " + " | ".join(cells) + " |")
    return lines


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Interaction block against graph-transformer block at equal training time",
        "",
        "Written by `experiments/processors.py`"
        + (" (`--smoke`: tiny sizes, numbers meaningless)" if results["smoke"] else "")
        + f". Machine: {m['cpu_count']} CPU cores, jax {m['jax']}, {m['date']}; the cores",
        "were shared with other jobs, so steps/s (and the steps each configuration got in",
        "its budget) carry that load.",
    ]
    for task, t in results["tasks"].items():
        lines += ["", f"## {task}", "", f"Preset `{t['preset']}`, budget {t['budget_s']:g} s of"]
        lines += ["training per configuration (steps/s per curriculum horizon).", ""]
        lines += _cylinder_table(t) if task == "cylinder" else _weather_table(t)
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=240.0, help="cylinder flow, per config")
    parser.add_argument("--weather-budget-s", type=float, default=240.0)
    parser.add_argument("--probe", type=int, default=100, help="steps of the warm-up chunk")
    parser.add_argument("--tasks", default="cylinder,shallow_water")
    parser.add_argument("--workdir", default=os.path.join(REPO, "runs", "processors"))
    parser.add_argument("--out", default=os.path.join(REPO, "experiments", "results"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a check that it runs")
    parser.add_argument("--recipes", choices=("interaction", "transformer"), default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.smoke:
        args.budget_s = args.weather_budget_s = 3.0
        args.probe = 4
    results = {"machine": machine_note(), "smoke": args.smoke, "tasks": {}}
    for task in [t for t in args.tasks.split(",") if t]:
        results["tasks"][task] = run_task(task, args)
        os.makedirs(args.out, exist_ok=True)
        atomic.write_json(os.path.join(args.out, "processors.json"), results)
        atomic.write_text(os.path.join(args.out, "processors.md"), markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
