"""Tests for meshsim.normalization: statistics, masks, freezing, jit, persistence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meshsim import normalization as nz

F = 3


def _batches(seed=0, num=4, n=7):
    """`num` padded batches: x [n, F] with garbage in padding, mask [n]."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num):
        x = rng.normal([1.0, -2.0, 5.0], [0.5, 2.0, 3.0], size=(n, F)).astype(np.float32)
        mask = np.arange(n) < n - i  # i padded rows
        x[~mask] = np.nan if i % 2 else 1e6  # padding must not leak in
        out.append((x, mask))
    return out


def _numpy_stats(batches):
    kept = np.concatenate([x[m] for x, m in batches]).astype(np.float64)
    return kept.mean(0), kept.std(0), len(kept)


def test_matches_numpy_over_masked_updates():
    batches = _batches()
    state = nz.init_normalizer(F)
    for x, m in batches:
        state = nz.update(state, x, m)
    mean, std, count = _numpy_stats(batches)
    got_mean, got_std = nz.mean_and_std(state)
    # float32 arithmetic on O(1..10) data: 1e-5 relative is ~100 ulps of slack.
    np.testing.assert_allclose(got_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_std, std, rtol=1e-5)
    assert float(state.count) == count
    assert int(state.num_accumulations) == len(batches)


def test_padding_invariance():
    x, m = _batches(seed=1, num=2)[1]
    padded = nz.update(nz.init_normalizer(F), x, m)
    unpadded = nz.update(nz.init_normalizer(F), x[m], None)
    for a, b in zip(jax.tree.leaves(padded), jax.tree.leaves(unpadded), strict=True):
        np.testing.assert_array_equal(a, b)


def test_leading_batch_axes_and_float_mask():
    x = np.random.default_rng(2).normal(size=(2, 5, F)).astype(np.float32)
    mask = np.ones((2, 5), np.float32)
    mask[1, 3:] = 0.0
    state = nz.update(nz.init_normalizer(F), x, mask)
    kept = x[mask != 0]
    np.testing.assert_allclose(nz.mean_and_std(state)[0], kept.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nz.mean_and_std(state)[1], kept.std(0), rtol=1e-5)


def test_large_offset_is_accurate():
    # |mean| / std = 1e5: sum_sq/n - mean**2 in float32 would be pure rounding noise.
    rng = np.random.default_rng(3)
    data = (1000.0 + 0.01 * rng.normal(size=(6, 50, 1))).astype(np.float32)
    state = nz.init_normalizer(1)
    for x in data:
        state = nz.update(state, x)
    ref = data.astype(np.float64).reshape(-1)
    # float32 mean of ~1000 has ulp 6e-5, so a std of 1e-2 is good to a few 1e-3 relative.
    np.testing.assert_allclose(nz.mean_and_std(state)[1], [ref.std()], rtol=2e-2)


def test_stops_after_max_accumulations():
    batches = _batches(num=4)
    state = nz.init_normalizer(F, max_accumulations=2)
    for x, m in batches:
        state = nz.update(state, x, m)
    mean, std, count = _numpy_stats(batches[:2])
    assert int(state.num_accumulations) == 2
    assert float(state.count) == count
    np.testing.assert_allclose(nz.mean_and_std(state)[0], mean, rtol=1e-5, atol=1e-6)


def test_constant_feature_std_clamped_and_empty_state():
    x = np.stack([np.full(6, 4.0), np.arange(6.0), np.zeros(6)], axis=1)
    state = nz.update(nz.init_normalizer(F, std_epsilon=1e-3), x)
    _, std = nz.mean_and_std(state)
    assert std[0] == pytest.approx(1e-3) and std[2] == pytest.approx(1e-3)
    assert np.all(np.isfinite(nz.normalize(state, x)))
    empty = nz.init_normalizer(F)
    np.testing.assert_array_equal(nz.mean_and_std(empty)[1], np.full(F, 1e-8, np.float32))
    # An all-masked batch counts as an accumulation but changes no statistic.
    after = nz.update(state, x, np.zeros(6, bool))
    np.testing.assert_array_equal(after.mean, state.mean)
    assert float(after.count) == float(state.count)


def test_jit_agrees_with_eager_and_does_not_recompile():
    batches = _batches(seed=4)
    eager = jitted = nz.init_normalizer(F)
    step = jax.jit(nz.update)
    for x, m in batches:
        eager = nz.update(eager, x, m)
        jitted = step(jitted, x, m)
    assert step._cache_size() == 1
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    x = batches[0][0][:3]
    np.testing.assert_allclose(jax.jit(nz.normalize)(eager, x), nz.normalize(eager, x), rtol=1e-6)


def test_axis_name_merges_split_batch():
    # vmap with an axis name stands in for pmap: each "device" holds half the batch.
    x, m = _batches(seed=5, num=1, n=8)[0]
    m = m.copy()
    m[2] = False
    x = np.where(m[:, None], x, 0.0)
    whole = nz.update(nz.init_normalizer(F), x, m)
    per_device = lambda xs, ms: nz.update(nz.init_normalizer(F), xs, ms, axis_name="d")
    split = jax.vmap(per_device, axis_name="d")(x.reshape(2, 4, F), m.reshape(2, 4))
    np.testing.assert_allclose(split.mean[0], whole.mean, rtol=1e-6)
    np.testing.assert_allclose(split.mean[1], whole.mean, rtol=1e-6)
    np.testing.assert_allclose(split.m2[0], whole.m2, rtol=1e-5)
    assert float(split.count[1]) == float(whole.count)


@pytest.mark.parametrize("kind", ["online", "fixed"])
def test_normalize_denormalize_roundtrip(kind):
    x = np.random.default_rng(6).normal(3.0, 2.0, size=(10, F)).astype(np.float32)
    if kind == "online":
        norm = nz.update(nz.init_normalizer(F), x)
    else:
        norm = nz.fixed_normalizer_from_data(x)
    z = nz.normalize(norm, x)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-4)
    np.testing.assert_allclose(nz.denormalize(norm, z), x, rtol=1e-5, atol=1e-5)
    assert nz.update(norm, x) is norm or kind == "online"


def test_time_difference_normalizer():
    traj = np.cumsum(np.random.default_rng(7).normal(size=(5, 4, 2)), axis=0)
    traj[:, 3] = 1e9  # a padded node
    norm = nz.time_difference_normalizer(traj, np.array([1, 1, 1, 0], bool))
    diffs = np.diff(traj[:, :3], axis=0).reshape(-1, 2)
    np.testing.assert_array_equal(norm.mean, np.zeros(2, np.float32))
    np.testing.assert_allclose(norm.std, diffs.std(0), rtol=1e-6)


def test_normalizers_container_roundtrip(tmp_path):
    x = np.random.default_rng(8).normal(size=(6, F)).astype(np.float32)
    norms = nz.Normalizers(
        nodes={"mesh": nz.update(nz.init_normalizer(F, max_accumulations=5), x)},
        edges={"mesh": nz.fixed_normalizer([0.0, 1.0], [1.0, 2.0]), "world": nz.init_normalizer(4)},
        output=nz.fixed_normalizer([1.0], [0.5]),
    )
    path = tmp_path / "normalizers.json"
    nz.save_normalizers(path, norms)
    back = nz.load_normalizers(path)
    assert jax.tree.structure(back) == jax.tree.structure(norms)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(norms), strict=True):
        np.testing.assert_array_equal(a, b)
    assert back.nodes["mesh"].max_accumulations == 5
    assert nz.Normalizers.from_dict(norms.to_dict()).edges["world"].size == 4
    # A pytree: it passes through jit as an argument.
    out = jax.jit(lambda n, v: nz.normalize(n.nodes["mesh"], v))(norms, x)
    np.testing.assert_allclose(out, nz.normalize(norms.nodes["mesh"], x))


def test_validation_errors():
    state = nz.init_normalizer(F)
    with pytest.raises(ValueError, match="x must have shape"):
        nz.normalize(state, jnp.zeros((4, F + 1)))
    with pytest.raises(ValueError, match="mask must have shape"):
        nz.update(state, jnp.zeros((4, F)), jnp.ones(5, bool))
    with pytest.raises(ValueError, match="size"):
        nz.init_normalizer(0)
    with pytest.raises(ValueError, match="std must have the shape"):
        nz.fixed_normalizer([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="kind"):
        nz.normalizer_from_dict({"kind": "other"})
