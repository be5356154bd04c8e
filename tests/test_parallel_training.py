"""Training runs spread over devices: every layout takes the steps one device takes.

On 8 simulated CPU devices (a subprocess: the device count must be set before jax
is imported), the same tiny cylinder-flow run is trained on one device, with the
batch split over `data` under jit (optimizer state replicated and sharded), under
pmap, and with each graph cut into 2, 4 and 8 parts (halo exchange by all_gather
and by ppermute, combined with data parallelism). The losses logged in
metrics.jsonl must match the single-device run's to 1e-4 relative at every
logged step, and the final parameters to float tolerance. A checkpoint written by
one layout resumes under another. The CLI takes the same settings.

The tests of this module share one on-disk JAX compilation cache (`jax_cache`, cold at
the start of each test session): a layout trained by several tests (the one-device
reference, `parallel.data=8`, `parallel.graph=2`) is compiled once. A cached
executable is the one XLA compiles for the same program, so every comparison is
unchanged.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, cpu_devices_env, run_on_cpu_devices, tiny_cfd_run

SETUP = textwrap.dedent(
    """
    import json, os, sys
    import jax, numpy as np
    from meshsim.config import (DataConfig, ExperimentConfig, ModelConfig, OptimizerConfig,
                                TrainConfig, apply_overrides)
    from meshsim.data import infer_meta, write_hdf5_split
    from meshsim.runs import run_training
    from tests.conftest import synthetic_cfd_trajectory

    root = sys.argv[1]
    if len(sys.argv) > 2:  # the module's compilation cache (see the docstring)
        os.environ["MESHSIM_COMPILATION_CACHE"] = sys.argv[2]
        from meshsim.cli import enable_compilation_cache

        enable_compilation_cache()
    data = os.path.join(root, "data")
    if not os.path.isdir(data):
        train = [synthetic_cfd_trajectory(nx=9, ny=7, seed=i, steps=8) for i in range(4)]
        write_hdf5_split(data, "train", train, infer_meta(train[0], dt=0.01))

    def config(steps, batch_size=8):
        return ExperimentConfig(
            name="parallel", task="cfd",
            data=DataConfig(path=data, batch_size=batch_size, pool_size=4, prefetch=1),
            model=ModelConfig(latent_size=16, num_message_passing_steps=2, mlp_hidden_layers=1),
            train=TrainConfig(steps=steps, accumulate_steps=2, log_every=1, eval_every=0,
                              checkpoint_every=3, optimizer=OptimizerConfig(learning_rate=1e-3)),
        )

    def losses(workdir):
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            return [r["loss"] for r in map(json.loads, f) if "loss" in r]

    def leaves(state):
        return [np.asarray(x) for x in jax.tree_util.tree_leaves(state.params)]
    """
)


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory) -> str:
    """A compilation cache directory shared by this module's training subprocesses."""
    return str(tmp_path_factory.mktemp("jax_cache"))


MODES = {
    "jit_data8_sharded_opt": ["parallel.data=8", "parallel.shard_optimizer=true"],
    "pmap_data4": ["parallel.backend=pmap", "parallel.data=4"],
    "graph2_data4": ["parallel.graph=2"],
    "graph8_ppermute": ["parallel.graph=8", "parallel.data=1", "parallel.halo_exchange=ppermute"],
}


def test_every_layout_matches_one_device(tmp_path, jax_cache):
    script = SETUP + textwrap.dedent(
        f"""
        modes = {MODES!r}
        reference = run_training(apply_overrides(config(6), ["parallel.data=1"]),
                                 os.path.join(root, "one"), progress=False)
        ref_loss, ref_params = losses(os.path.join(root, "one")), leaves(reference)
        out = {{}}
        for name, sets in modes.items():
            state = run_training(apply_overrides(config(6), sets), os.path.join(root, name),
                                 progress=False)
            loss = losses(os.path.join(root, name))
            rel = [abs(a - b) / abs(b) for a, b in zip(loss, ref_loss)]
            par = max(float(np.max(np.abs(a - b))) for a, b in zip(leaves(state), ref_params))
            out[name] = {{"steps": len(loss), "loss_rel": rel, "param_abs": par}}
        out["reference_steps"] = len(ref_loss)
        print(json.dumps(out))
        """
    )
    out = json.loads(
        run_on_cpu_devices(script, 8, str(tmp_path), jax_cache).strip().splitlines()[-1]
    )
    assert out["reference_steps"] == 4  # 6 steps, 2 statistics-only
    print(json.dumps(out, indent=1))
    for name in MODES:
        assert out[name]["steps"] == 4, name
        # The first logged loss precedes any update: only summation order differs.
        assert out[name]["loss_rel"][0] < 1e-5, (name, out[name])
        assert max(out[name]["loss_rel"]) < 1e-4, (name, out[name])
        # Adam moves a parameter by ~lr whatever its gradient's size, so rounding in a
        # near-zero gradient can move it by up to ~lr·steps; 4 updates at lr 1e-3.
        assert out[name]["param_abs"] < 4e-3, (name, out[name])


def test_checkpoint_resumes_under_another_layout(tmp_path, jax_cache):
    script = SETUP + textwrap.dedent(
        """
        full = run_training(apply_overrides(config(8), ["parallel.data=1"]),
                            os.path.join(root, "full"), progress=False)
        work = os.path.join(root, "moved")
        # 3 steps on 8 data devices with a sharded optimizer state, then 5 more under pmap
        # on 4 devices, then none left: the run must equal the uninterrupted one.
        run_training(apply_overrides(config(8), ["parallel.data=8",
                                                  "parallel.shard_optimizer=true"]),
                     work, max_steps=3, progress=False)
        resumed = run_training(apply_overrides(config(8), ["parallel.backend=pmap",
                                                            "parallel.data=4"]),
                               work, progress=False)
        diff = max(float(np.max(np.abs(a - b)))
                   for a, b in zip(leaves(full), leaves(resumed)))
        print(json.dumps({"step": int(resumed.step), "diff": diff}))
        """
    )
    out = json.loads(
        run_on_cpu_devices(script, 8, str(tmp_path), jax_cache).strip().splitlines()[-1]
    )
    assert out["step"] == 8
    # Equal up to rounding, which Adam's per-parameter normalization lifts to ~lr for
    # parameters whose gradient is ~0 (6 updates at lr 1e-3); a restore that lost or
    # mixed up state would differ by O(1).
    assert out["diff"] < 5e-3


def test_bad_parallel_settings_are_refused_before_anything_is_written(tmp_path):
    script = SETUP + textwrap.dedent(
        """
        for sets in (["parallel.data=3"], ["parallel.backend=pmap", "parallel.graph=2"],
                     ["parallel.data=16"]):
            work = os.path.join(root, "bad")
            try:
                run_training(apply_overrides(config(2, batch_size=8), sets), work,
                             progress=False)
            except ValueError as e:
                print(json.dumps({"sets": sets, "error": str(e),
                                  "written": os.path.exists(work)}))
        """
    )
    lines = run_on_cpu_devices(script, 8, str(tmp_path)).strip().splitlines()
    records = [json.loads(x) for x in lines if x.startswith("{")]
    assert len(records) == 3
    assert "parallel.data" in records[0]["error"] or "batch_size" in records[0]["error"]
    assert "pmap" in records[1]["error"]
    assert "16" in records[2]["error"]
    assert not any(r["written"] for r in records)


@pytest.mark.parametrize("mode", ["graph2_data4"])
def test_cli_takes_parallel_settings(tmp_path, jax_cache, mode):
    """`meshsim train --set parallel.…` logs the same losses as one device."""
    config = tiny_cfd_run(tmp_path, batch_size=8, steps=5, checkpoint_every=5)
    env = dict(cpu_devices_env(8), MESHSIM_COMPILATION_CACHE=jax_cache)
    logged = {}
    for name, sets in (("one", ["parallel.data=1"]), (mode, MODES[mode])):
        workdir = tmp_path / name
        cmd = [sys.executable, "-m", "meshsim.cli", "train", "--config", config]
        cmd += ["--workdir", str(workdir)]
        for s in sets:
            cmd += ["--set", s]
        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        with open(workdir / "metrics.jsonl") as f:
            logged[name] = [r["loss"] for r in map(json.loads, f) if "loss" in r]
    assert len(logged[mode]) == len(logged["one"]) == 3
    for a, b in zip(logged[mode], logged["one"]):
        assert abs(a - b) <= 1e-4 * abs(b)


MULTI_STEP = ["train.unroll_steps=2", "train.unroll_mode=pushforward", "model.bundle_steps=2"]


def test_multi_step_training_matches_one_device_under_pmap_and_graph_parallel(tmp_path, jax_cache):
    """Pushforward over bundled steps goes through the same loss under every layout."""
    script = SETUP + textwrap.dedent(
        f"""
        extra = {MULTI_STEP!r}
        layouts = {{"one": ["parallel.data=1"], "pmap_data4": {MODES["pmap_data4"]!r},
                    "graph2_data4": {MODES["graph2_data4"]!r}}}
        logged = {{}}
        for name, sets in layouts.items():
            run_training(apply_overrides(config(5), extra + sets), os.path.join(root, name),
                         progress=False)
            logged[name] = losses(os.path.join(root, name))
        print(json.dumps(logged))
        """
    )
    out = json.loads(
        run_on_cpu_devices(script, 8, str(tmp_path), jax_cache).strip().splitlines()[-1]
    )
    ref = out.pop("one")
    assert len(ref) == 3 and all(x > 0 for x in ref)
    for name, loss in out.items():
        assert len(loss) == len(ref), name
        assert max(abs(a - b) / abs(b) for a, b in zip(loss, ref)) < 1e-4, (name, loss, ref)
