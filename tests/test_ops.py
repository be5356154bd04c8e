"""Segment reductions against plain numpy loops, with padding and masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meshsim import ops


def _reference(kind, data, ids, n, mask=None):
    out = np.zeros((n,) + data.shape[1:], np.float64)
    for seg in range(n):
        rows = [i for i in range(len(ids)) if ids[i] == seg and (mask is None or mask[i])]
        if rows:
            vals = data[rows].astype(np.float64)
            out[seg] = {"sum": vals.sum(0), "mean": vals.mean(0), "max": vals.max(0)}[kind]
    return out


@pytest.fixture
def segments():
    rng = np.random.default_rng(0)
    ids = np.sort(rng.integers(0, 6, size=30)).astype(np.int32)
    ids[ids == 3] = 4  # segment 3 is empty
    data = rng.normal(size=(30, 4)).astype(np.float32)
    mask = rng.random(30) > 0.3
    return data, ids, mask


@pytest.mark.parametrize("kind", ["sum", "mean", "max"])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("sorted_ids", [False, True])
def test_segment_reductions_match_numpy(segments, kind, use_mask, sorted_ids):
    data, ids, mask = segments
    m = mask if use_mask else None
    got = jax.jit(
        lambda d, i, mm: ops.aggregate(kind, d, i, 7, mask=mm, indices_are_sorted=sorted_ids)
    )(data, ids, m)
    np.testing.assert_allclose(got, _reference(kind, data, ids, 7, m), rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(got)[3] == 0) and np.all(np.asarray(got)[6] == 0), "empty -> 0"


def test_padded_edges_never_change_real_nodes(segments):
    data, ids, _ = segments
    n_real, n_pad = 6, 2
    pad_ids = np.concatenate([ids, np.full(5, n_real + n_pad - 1, np.int32)])
    pad_data = np.concatenate([data, 1e6 * np.ones((5, 4), np.float32)])
    for kind in ops.AGGREGATIONS:
        real = ops.aggregate(kind, data, ids, n_real)
        padded = ops.aggregate(kind, pad_data, pad_ids, n_real + n_pad)
        np.testing.assert_array_equal(np.asarray(padded)[:n_real], np.asarray(real))


def test_segment_softmax_normalises_per_segment(segments):
    data, ids, mask = segments
    w = np.asarray(ops.segment_softmax(jnp.asarray(data) * 50, ids, 7, mask=mask))
    assert np.all(w[~mask] == 0)
    sums = _reference("sum", w, ids, 7)
    present = np.unique(ids[mask])
    np.testing.assert_allclose(sums[present], 1.0, rtol=1e-5)
    # Agreement with a direct softmax on one segment.
    seg = present[0]
    rows = (ids == seg) & mask
    x = data[rows] * 50
    expect = np.exp(x - x.max(0)) / np.exp(x - x.max(0)).sum(0)
    np.testing.assert_allclose(w[rows], expect, rtol=1e-5, atol=1e-30)  # XLA flushes denormals


def test_segment_sum_gradient_is_gather(segments):
    data, ids, _ = segments
    g = jax.grad(lambda d: jnp.sum(ops.segment_sum(d, ids, 7) * jnp.arange(7.0)[:, None]))(data)
    np.testing.assert_allclose(g, np.broadcast_to(ids[:, None].astype(np.float32), data.shape))


def test_bf16_sum_accumulates_in_f32():
    data = jnp.full((4096, 1), 1.0, jnp.bfloat16)
    out = ops.segment_sum(data, jnp.zeros(4096, jnp.int32), 1)
    assert out.dtype == jnp.bfloat16 and float(out[0, 0]) == 4096.0


def test_unknown_aggregation():
    with pytest.raises(ValueError, match=r"aggregation: expected one of \('sum', 'mean', 'max'\)"):
        ops.aggregate("median", jnp.zeros((2, 1)), jnp.zeros(2, jnp.int32), 1)
