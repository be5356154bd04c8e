# meshsim: `make test` and `make demo` set up everything on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Parallel test workers; the suite is sized for 2 cores.
TEST_WORKERS ?= 2

.PHONY: env test lint format docs demo demo-weather demo-ensemble demo-particles demo-plate demo-sphere bench bench-smoke clean

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

lint: env
	$(VENV)/bin/ruff check meshsim tests experiments
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff format --check meshsim tests experiments

format: env
	$(VENV)/bin/ruff format meshsim tests experiments
	$(VENV)/bin/ruff check --fix meshsim tests experiments

test: env
	$(VENV)/bin/ruff check meshsim tests experiments
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15

# The documentation site (mkdocs.yml) into site/; --strict: any warning is an error,
# as in tests/test_docs.py.
docs: env
	$(PY) -m mkdocs build --strict --site-dir site

demo: env
	$(VENV)/bin/meshsim demo --workdir runs/demo

# Shallow-water data, a GraphCast-style forecaster, forecasts scored against persistence
# and climatology: runs/demo-weather/{metrics.json,report.md,forecast.gif}.
demo-weather: env
	$(VENV)/bin/meshsim demo --config experiments/weather_shallow_water.py --workdir runs/demo-weather

# The deterministic weather model (fine-tuned on 72 h rollouts) and a 4-member FGN
# ensemble fine-tuned from it on the CRPS, compared on CRPS, spread/skill and spectra:
# runs/demo-ensemble/{ensemble.md,spectra.png,scores.png,members.png}.
demo-ensemble: env
	$(PY) experiments/ensemble_demo.py --workdir runs/demo-ensemble

# Dam-break SPH data, a GNS with edges rebuilt every step, rollouts scored against
# constant velocity: runs/demo-particles/{metrics.json,report.md,rollout.gif}.
demo-particles: env
	$(VENV)/bin/meshsim demo --config experiments/particles_dam_break.py --workdir runs/demo-particles

# Built-in plate (finite elements, an actuator pressing) and cloth-on-sphere data, the
# contact tasks with world edges, rollouts scored against persistence with penetrations
# counted: runs/demo-{plate,sphere}/{metrics.json,report.md,rollout.gif}.
demo-plate: env
	$(VENV)/bin/meshsim demo --config experiments/deforming_plate_lite.py --workdir runs/demo-plate

demo-sphere: env
	$(VENV)/bin/meshsim demo --config experiments/sphere_simple_lite.py --workdir runs/demo-sphere

bench: env
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,bench]"
	$(PY) experiments/benchmarks/run.py
	$(PY) experiments/benchmarks/particles.py

bench-smoke: env
	$(PY) experiments/benchmarks/run.py --smoke --out /tmp/meshsim-bench-smoke

clean:
	rm -rf $(VENV) runs site .pytest_cache .ruff_cache
