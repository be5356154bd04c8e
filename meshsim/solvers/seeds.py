"""Seeds of generated trajectories: one per (seed, split, index), so the same
arguments give the same data and splits never share a trajectory."""

from __future__ import annotations

import zlib

import numpy as np


def trajectory_seed(seed: int, split: str, index: int) -> int:
    """A 31-bit seed that depends on the run seed, the split name and the index."""
    seq = np.random.SeedSequence([seed, zlib.crc32(split.encode()), index])
    return int(seq.generate_state(1)[0] & 0x7FFFFFFF)
