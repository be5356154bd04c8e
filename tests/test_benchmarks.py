"""Smoke test of the benchmark harness (experiments/benchmarks): seconds, not a benchmark.

Runs `run.py --smoke` (tiny mesh, tiny model, 2 timed runs, no subprocesses) for the
JAX implementations and checks the JSON layout, the agreement check and the FLOP
formula. The PyG peer is checked separately and only where the optional `bench`
extra (torch, torch_geometric) is installed.
"""

import argparse
import json

import numpy as np
import pytest

from experiments.benchmarks import flops, impls, run
from experiments.benchmarks.meshes import jittered_grid, make_problem

TINY_MODEL = run.SMOKE_MODEL


def test_jittered_grid_is_a_triangle_mesh_with_about_six_edges_per_node():
    points, cells, node_type = jittered_grid(2000)
    assert abs(points.shape[0] - 2000) < 100
    assert cells.shape[1] == 3 and cells.min() >= 0 and cells.max() < points.shape[0]
    # Every triangle keeps positive orientation or its reverse: no degenerate cells.
    a, b, c = (points[cells[:, i]] for i in range(3))
    ab, ac = b - a, c - a
    area = 0.5 * np.abs(ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0])
    assert area.min() > 0
    problem = make_problem(2000)
    num_edges = problem.graph.edge_sets["mesh"].senders.shape[0]
    # Interior nodes of a triangulated grid have 6 neighbours; the boundary pulls it below.
    assert 5.5 < num_edges / problem.graph.num_nodes("mesh") < 6.0
    assert set(np.unique(node_type)) == {0, 4, 5, 6}


def test_flops_closed_form():
    # One step, latent 2, no hidden layers: each MLP is a single dense layer.
    f = flops.mgn_forward_flops(
        10, 40, node_in=3, edge_in=1, output_size=1, latent=2, hidden_layers=0, steps=1
    )
    assert f["encoder"] == 2 * 10 * 3 * 2 + 2 * 40 * 1 * 2
    assert f["processor_edge"] == 2 * 40 * 6 * 2  # [e, v_s, v_r] of width 3L = 6
    assert f["processor_node"] == 2 * 10 * 4 * 2
    assert f["decoder"] == 2 * 10 * 2 * 1
    trick = flops.mgn_forward_flops(
        10,
        40,
        node_in=3,
        edge_in=1,
        output_size=1,
        latent=2,
        hidden_layers=0,
        steps=1,
        concat_trick=True,
    )
    assert trick["processor_edge"] == 2 * 40 * 2 * 2 + 2 * 2 * 10 * 2 * 2
    assert flops.mgn_train_flops(10, 40) == 3 * flops.mgn_forward_flops(10, 40)["total"]


def test_smoke_run_writes_expected_json(tmp_path):
    names = "meshsim,jraph,meshsim-transformer"
    argv = ["--smoke", "--in-process", "--impls", names, "--out", str(tmp_path)]
    assert run.main(argv) == 0
    result = json.loads((tmp_path / "latest.json").read_text())
    assert {"meta", "model", "matmul", "sizes", "targets"} <= set(result)
    size = result["sizes"]["tiny"]
    for mode in ("train", "rollout"):
        assert set(size[mode]) == {"meshsim", "jraph", "meshsim-transformer"}
        for name, r in size[mode].items():
            assert r["repeats"] == 2 and r["median_s"] > 0
            # the transformer is another network: the paper's FLOP count is not its own
            other = name == "meshsim-transformer"
            assert (r["model_gflops_per_s"] is None) if other else r["model_gflops_per_s"] > 0
        assert "vs_jraph" in size["speedup"][mode]
        ratio = size["speedup"][mode]["transformer_time_over_interaction"]
        transformer, interaction = size[mode]["meshsim-transformer"], size[mode]["meshsim"]
        assert ratio == pytest.approx(transformer["median_s"] / interaction["median_s"], 1e-2)
    assert size["agreement"]["jraph"]["ok"] and "meshsim-transformer" not in size["agreement"]
    assert "train_speedup_vs_pyg@16k" in result["targets"]
    md = (tmp_path / "latest.md").read_text()
    assert "## Training step" in md and "## Targets" in md


def test_smoke_run_times_each_implementation_in_processes_of_its_own(tmp_path):
    """The default timing: each implementation in its own processes, alternating over
    rounds, each round a share of the repeats; the calls of all rounds are merged."""
    argv = ["--smoke", "--impls", "meshsim", "--rounds", "2", "--out", str(tmp_path)]
    assert run.main(argv) == 0
    result = json.loads((tmp_path / "latest.json").read_text())
    assert result["meta"]["timing_processes"] == "own, 2 rounds"
    size = result["sizes"]["tiny"]
    for mode in ("train", "rollout"):
        r = size[mode]["meshsim"]
        assert r["repeats"] == 2 and r["median_s"] > 0  # one call in each of two processes
        assert r["first_call"]["compile_s"] and r["first_call"][f"{mode}_first_call_s"] > 0
        assert size[f"matmul_in_{mode}_rounds"]["repeats"] == 2


def test_peer_timing_processes_keep_freed_memory(monkeypatch):
    """The PyG peers' processes get the caching-allocator tunables on top of this
    process's (huge pages); meshsim's and jraph's run as the `meshsim` command does."""
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
    assert run.worker_env("meshsim") == {} and run.worker_env("jraph") == {}
    for peer in impls.PYG:
        tunables = run.worker_env(peer)["GLIBC_TUNABLES"].split(":")
        assert tunables[0] == "glibc.malloc.hugetlb=1"
        assert "glibc.malloc.mmap_max=0" in tunables
    monkeypatch.delenv("GLIBC_TUNABLES")
    assert run.worker_env("pyg") == {"GLIBC_TUNABLES": run.PEER_ALLOCATOR}


def test_a_failed_timing_process_is_left_out_not_fatal(monkeypatch):
    """A timing process that dies (out of memory, say) leaves its implementation out of
    the later rounds and says why; the others' calls of every round are kept."""
    started = []
    call = {"wall": 0.1, "user": 0.1, "sys": 0.0, "minflt": 0, "load1": 0.5}

    def fake_worker(spec, env=None, timeout=1800):
        started.append(spec["impl"])
        if spec["impl"] == "pyg":
            return {"error": "exit -9: ['Killed']"}
        modes = spec["modes"]
        return {
            "trace_and_lower_s": 0.1,
            "compile_s": {"train": 0.1},
            "first_call_s": {m: 0.2 for m in modes},
            "calls": {m: [call] for m in modes},
            "matmul_calls": {m: [call] for m in modes},
        }

    monkeypatch.setattr(run, "run_worker", fake_worker)
    args = argparse.Namespace(rounds=2, repeats=2, budget_s=10.0)
    names = {"train": ["meshsim", "pyg"], "rollout": ["meshsim", "pyg"]}
    calls, matmul, first, failed = run._timed_in_workers(names, 100, args, {}, (8, 8, 8))
    assert started == ["meshsim", "pyg", "meshsim"]  # pyg not started again
    assert failed == {"pyg": "its timing process failed: exit -9: ['Killed']"}
    for mode in names:
        assert set(calls[mode]) == {"meshsim"} and len(calls[mode]["meshsim"]) == 2
        assert len(matmul[mode]) == 2
    assert set(first) == {"meshsim"}


def test_agreement_check_fails_loudly():
    ref = np.linspace(-1.0, 1.0, 20, dtype=np.float32).reshape(10, 2)

    def fake(name, out):
        return impls.Impl(name, train=lambda: 0.0, rollout=lambda: None, forward=lambda: out)

    close = fake("jraph", ref * (1 + 1e-6))
    built = {"meshsim": fake("meshsim", ref), "jraph": close}
    assert run.check_agreement(built, run.AGREEMENT_RTOL)["jraph"]["ok"]
    built["pyg"] = fake("pyg", ref + 1e-3)
    with pytest.raises(SystemExit, match="AGREEMENT FAILED: pyg"):
        run.check_agreement(built, run.AGREEMENT_RTOL)


def test_pyg_peer_agrees_with_meshsim(monkeypatch):
    """Both PyG peers train like meshsim from its weights. torch.compile is switched off
    here (compiling even this tiny network takes over a minute on 2 cores); `run.py`
    checks the compiled peer's output against meshsim's before timing it."""
    pytest.importorskip("torch_geometric")
    monkeypatch.setitem(impls.PYG, "pyg", (impls.PYG["pyg"][0], None))
    problem = make_problem(100)
    params = impls.init_params(problem, TINY_MODEL)
    names = ("meshsim", *impls.PYG)
    built = {name: impls.build(name, problem, params, TINY_MODEL) for name in names}
    for impl in built.values():
        impls.compile_impl(impl)
    agreement = run.check_agreement(built, run.AGREEMENT_RTOL)
    losses = {name: impl.train() for name, impl in built.items()}
    # After one identical Adam step the outputs still agree (same update rule and lr).
    after = {name: impl.forward() for name, impl in built.items()}
    for name in impls.PYG:  # the eager peer and the compiled concat-trick one
        assert agreement[name]["ok"]
        np.testing.assert_allclose(losses[name], losses["meshsim"], rtol=1e-5)
        np.testing.assert_allclose(after[name], after["meshsim"], rtol=1e-4, atol=1e-5)


def test_pyg_concat_trick_network_is_the_plain_network():
    """The strongest PyG peer's split first layers (edge and node MLPs) compute the plain
    `cat` + MLP network's outputs and gradients on the same weights: the trick is exact."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from experiments.benchmarks import peer_pyg

    problem = make_problem(100)
    params = impls.init_params(problem, TINY_MODEL)
    graph = peer_pyg.to_pyg(problem.graph)
    arch = dict(
        latent=TINY_MODEL["latent_size"],
        hidden_layers=TINY_MODEL["mlp_hidden_layers"],
        steps=TINY_MODEL["num_message_passing_steps"],
    )
    out, grads = {}, {}
    for trick in (False, True):
        model = peer_pyg.PyGMeshGraphNet(11, 3, 2, concat_trick=trick, **arch)
        peer_pyg.load_meshsim_params(model, params)
        assert isinstance(model.edge_blocks[0], peer_pyg.TrickEdgeBlock) == trick
        assert isinstance(model.node_blocks[0], peer_pyg.TrickNodeBlock) == trick
        pred = model(graph)
        pred.square().sum().backward()
        out[trick] = pred.detach()
        grads[trick] = {k: v.grad for k, v in model.named_parameters()}
    assert out[False].abs().max() > 0
    torch.testing.assert_close(out[True], out[False], rtol=1e-5, atol=1e-5)
    assert grads[True].keys() == grads[False].keys()
    for name, g in grads[False].items():
        torch.testing.assert_close(grads[True][name], g, rtol=1e-4, atol=1e-5, msg=name)


def test_particles_smoke_run_checks_pairs_and_outputs(tmp_path):
    """The particles benchmark (experiments/benchmarks/particles.py) at 300 particles:
    the search rows found the same pair sets, the PyG GNS variants agreed with
    meshsim's forward output before timing, and both tables are written."""
    pytest.importorskip("torch_geometric")  # torch_cluster optional: scipy's search otherwise
    from experiments.benchmarks import particles

    assert particles.main(["--smoke", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "particles.json").read_text())
    assert [(r["n"], r["dim"]) for r in result["search"]] == [(300, 2)]
    for row in result["search"]:
        # ~20 neighbours inside the box, fewer near its walls
        assert 12 < row["pairs_per_particle"] < 21
        assert row["meshsim"]["repeats"] == row["peer"]["repeats"] == 2
    (train,) = result["train"]
    assert {"meshsim", "pyg", "pyg+trick"} <= set(train) and train["peer"] in train
    for name, agreement in train["agreement"].items():
        assert agreement["max_rel_err"] <= particles.AGREEMENT_RTOL, name
        assert agreement["edges"] == train["edges"] > 0
    md = (tmp_path / "particles.md").read_text()
    assert "## Neighbour search" in md and "## One GNS training step" in md


def test_gns_peer_concat_trick_is_the_concatenation():
    """PhysicsNeMo's split first layer computes the same edge messages as the MLP on
    cat[e, x_src, x_dst] with the same weights (it only reorders the arithmetic)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    from experiments.benchmarks import peer_gns

    torch.manual_seed(0)
    cat, trick = peer_gns.CatEdgeBlock(8, 2), peer_gns.TrickEdgeBlock(8, 2)
    trick.load_state_dict(cat.state_dict())
    e, x = torch.randn(30, 8), torch.randn(10, 8)
    edge_index = torch.randint(0, 10, (2, 30))
    torch.testing.assert_close(trick(e, x, edge_index), cat(e, x, edge_index))


def test_huge_pages_benchmark_runs_each_setting_in_its_own_process(tmp_path):
    from experiments.benchmarks import huge_pages

    assert (
        huge_pages.main(
            ["--sizes", "tiny", "--rounds", "1", "--repeats", "1", "--out", str(tmp_path)]
        )
        == 0
    )
    result = json.loads((tmp_path / "huge_pages.json").read_text())
    (row,) = result["rows"]
    assert row["size"] == "tiny" and len(row["without_s"]) == len(row["with_s"]) == 1
    assert row["ratio"] == pytest.approx(row["without_s"][0] / row["with_s"][0])
    assert "| tiny |" in (tmp_path / "huge_pages.md").read_text()
