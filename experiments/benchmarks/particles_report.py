"""Markdown tables of the particles benchmark (`particles.py`'s particles.json)."""

from __future__ import annotations


def _ms(t: dict) -> str:
    return f"{1e3 * t['median_s']:.1f} ({1e3 * t['min_s']:.0f}–{1e3 * t['max_s']:.0f})"


def render(result: dict, peers: tuple[str, ...]) -> str:
    """The markdown tables of a result (particles.json)."""
    meta, model = result["meta"], result["model"]
    search = meta["peer_search"]
    search = "`torch_cluster.radius_graph`" if search == "torch_cluster" else search
    lines = [
        f"# Particles: meshsim against PyTorch Geometric ({meta['peer_search']}) on CPU",
        "",
        f"{meta['date']}, {meta['machine']}, {meta['cpus']} cores, jax {meta['jax']} "
        f"({meta['backend']}), torch {meta['torch']} ({meta['torch_threads']} threads, "
        f"OMP_WAIT_POLICY={meta['omp_wait_policy']}); load {meta['load_start']} → "
        f"{meta.get('load_end')}. Uniform particles in the unit box, radius for "
        f"{meta['neighbours']:g} neighbours on average. Times: median (min–max) ms, "
        "compile excluded."
        + (
            ""
            if meta["peer_search"] == "torch_cluster"
            else f" torch_cluster was not installed: the peer's search is {search} "
            "(what GNS code without torch_cluster uses), in the search rows and inside "
            "the PyG step."
        ),
        "",
    ]
    if result["search"]:
        lines += [
            "## Neighbour search",
            "",
            f"| N | D | pairs/particle | meshsim `radius_graph` (jit) | {search} | "
            "peer / meshsim |",
            "|---|---|---|---|---|---|",
        ]
        for r in result["search"]:
            lines.append(
                f"| {r['n']} | {r['dim']} | {r['pairs_per_particle']} | {_ms(r['meshsim'])} | "
                f"{_ms(r['peer'])} | {r['ratio_peer_over_meshsim']:.2f} |"
            )
        lines += [
            "",
            "Both find the same directed pairs (checked before timing). peer / meshsim: "
            "median time ratio (< 1: the peer is faster).",
            "",
        ]
    lines += [
        "## One GNS training step (forward + backward + Adam, noise off, batch of 1)",
        "",
        f"MeshGraphNet processor: latent {model['latent_size']}, "
        f"{model['num_message_passing_steps']} message-passing steps, MLPs with "
        f"{model['mlp_hidden_layers']} hidden layers; C = {model['history_size']} input "
        "velocities, 2D. Radius graph rebuilt inside every step. Model GFLOP/s: the "
        "paper's matmul FLOPs (flops.py, concatenation form) on the real edges over the "
        "time; fraction: of a 1024³ jitted f32 matmul timed in the same rounds.",
        "",
        "| N | edges | impl | ms/step | CPU s/step | repeats | model GFLOP/s | "
        "fraction of matmul | peak Δ MB | peer / meshsim |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["train"]:
        names = [k for k in ("meshsim", *peers) if k in r]
        base = r.get("meshsim")
        for name in names:
            t = r[name]
            ratio = (
                ""
                if name == "meshsim" or base is None
                else (f"{t['median_s'] / base['median_s']:.2f}")
            )
            if name == r.get("peer"):
                ratio = f"**{ratio}** (peer row)" if ratio else "(peer row)"
            lines.append(
                f"| {r['n']} | {r['edges']} | {name} | {_ms(t)} | {t['cpu_median_s']:.2f} | "
                f"{t['repeats']} | "
                f"{t['model_gflops_per_s']} | {t['fraction_of_matmul']:.3f} | "
                f"{r['peak_delta_mb'].get(name, '')} | {ratio} |"
            )
        for name, why in r["skipped"].items():
            lines.append(f"| {r['n']} | {r.get('edges', '')} | {name} | {why} | | | | | | |")
    lines += [
        "",
        "peer / meshsim: median time ratio (< 1: the peer is faster). CPU s: user + "
        "system time of all threads (steadier than wall time on a loaded machine). Peak Δ: "
        "RSS of a warm step above that before building it.",
        "",
        "meshsim runs its network on the task's edge capacity (1.25 × the pairs of the "
        "data, padding slots masked) and also updates its online normalizer statistics "
        "in the step; the PyG peer runs on exactly the pairs found and uses fixed "
        "statistics (meshsim's, copied). Same weights: forward outputs agree to "
        + ", ".join(
            f"{name} {a['max_rel_err']:.1e}"
            for r in result["train"][:1]
            for name, a in r.get("agreement", {}).items()
            if name != "meshsim"
        )
        + " (max|Δ| / max|meshsim|) before timing.",
        "",
    ]
    return "\n".join(lines)
