#!/usr/bin/env bash
# Behaviour fingerprint for refactors: a tiny fixed cylinder-flow run and a tiny weather
# run, trained and evaluated through the CLI; prints the SHA-256 of each run's
# metrics.jsonl (steps_per_sec, a timing, dropped) and metrics.json. Run it before and
# after a change on the same machine: equal hashes mean bitwise-identical training and
# scores. Usage: experiments/fingerprint.sh OUT_DIR (from the repository root; ~1 min).
set -euo pipefail
OUT=${1:?usage: experiments/fingerprint.sh OUT_DIR}
rm -rf "$OUT"; mkdir -p "$OUT"
export MESHSIM_COMPILATION_CACHE=
M=${MESHSIM:-.venv/bin/meshsim}
PY=${PYTHON:-.venv/bin/python}
q() { "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; }
q $M generate cylinder_flow --out "$OUT/cyl" --trajectories 2 --steps 10 --mesh-resolution 0.3 --seed 1
q $M generate cylinder_flow --out "$OUT/cyl" --split valid --trajectories 1 --steps 10 --mesh-resolution 0.3 --seed 2
q $M train --config experiments/cylinder_flow_lite.py --workdir "$OUT/cr" --set data.path="$OUT/cyl" \
  --set model.latent_size=16 --set model.num_message_passing_steps=2 --set train.steps=30 \
  --set train.accumulate_steps=5 --set train.log_every=5 --set train.checkpoint_every=15 \
  --set model.bundle_steps=2
q $M evaluate --workdir "$OUT/cr"
q $M generate shallow_water --out "$OUT/sw" --trajectories 2 --steps 12 --mesh-resolution 0.5
q $M generate shallow_water --out "$OUT/sw" --split valid --trajectories 1 --steps 12 --mesh-resolution 0.5
q $M train --config experiments/weather_shallow_water.py --workdir "$OUT/wr" --set data.path="$OUT/sw" \
  --set model.latent_size=8 --set model.num_message_passing_steps=1 --set train.steps=6 \
  --set train.unroll_steps=2 --set train.unroll_schedule=3 --set train.checkpoint_every=3 \
  --set train.log_every=3 --set task.options.mesh_splits=1
q $M evaluate --workdir "$OUT/wr" --steps 3
for r in cr wr; do
  "$PY" - "$OUT/$r" <<'PYEOF'
import hashlib, json, sys
run = sys.argv[1]
lines = []
for line in open(f"{run}/metrics.jsonl"):
    record = json.loads(line)
    record.pop("steps_per_sec", None)
    lines.append(json.dumps(record, sort_keys=True))
scores = json.dumps(json.load(open(f"{run}/metrics.json")), sort_keys=True)
for name, text in (("metrics.jsonl", "\n".join(lines)), ("metrics.json", scores)):
    print(hashlib.sha256(text.encode()).hexdigest(), f"{run}/{name}")
PYEOF
done
