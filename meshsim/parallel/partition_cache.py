"""Partitions of a dataset's meshes kept on disk beside the dataset. Host side.

Graph parallelism and sequential partitions cut every distinct mesh of a dataset
into parts by recursive coordinate bisection (`partition.partition_nodes`). A
`PartitionCache` keeps each mesh's assignment of nodes to parts in a directory
(`<dataset>/partitions/` for a training run), one `.npz` file per mesh and cut, so
a later run on the same data reads the parts instead of cutting again.

Only the assignment is stored: {node set: [N_s] int part}. The halo plans, local
graphs and exchange tables are derived from it by the code that runs, so a cache
written by an older meshsim can never hand a run tables of another layout; and
every assignment read back is checked against its node sets' sizes and the part
count. The file's name is a digest of the positions cut along, the kind of cut and
the part count: the bisection reads nothing else, so the mesh's edges and features
need not be digested again (`per_mesh.MeshCatalog` already told the meshes apart). A
file that cannot be read or does not fit its mesh is cut again and rewritten, with
a warning. Files are written through `meshsim.atomic` (a temporary sibling renamed
when complete), so a crash leaves no half-written partition, and processes that cut
the same mesh at once write equal assignments. A directory that
cannot be written to leaves the run uncached (one warning), never failed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Callable, Mapping

import numpy as np

from meshsim import atomic

logger = logging.getLogger(__name__)

# Bump when the meaning of a stored assignment changes.
FORMAT_VERSION = 1
# The cache's directory inside a dataset directory, for training runs.
PARTITIONS_DIR = "partitions"
# Each node set's array is stored as `parts:<node set>` (any name is a valid key).
_KEY = "parts:"


class PartitionCache:
    """A directory of per-mesh node-to-part assignments.

    Attributes:
      directory: where the files live (created on the first write).
      read, written: how many assignments were read from disk and written to it.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = os.fspath(directory)
        self.read = 0
        self.written = 0
        self._writable = True

    def __repr__(self) -> str:
        return f"PartitionCache({self.directory!r})"

    def path(self, kind: str, num_parts: int, positions: Mapping[str, np.ndarray]) -> str:
        """The file of the nodes at `positions` ({node set: [N_s, D] float}) cut into
        `num_parts` parts of `kind` ("graph" or "sequential")."""
        digest = hashlib.blake2b(f"{kind}:{num_parts}:v{FORMAT_VERSION}".encode(), digest_size=16)
        for name in sorted(positions):
            x = np.ascontiguousarray(np.asarray(positions[name], np.float64))
            digest.update(f"{name}:{x.shape}".encode())
            digest.update(x.tobytes())
        return os.path.join(self.directory, f"{kind}-p{num_parts}-{digest.hexdigest()}.npz")

    def parts(
        self,
        kind: str,
        num_parts: int,
        positions: Mapping[str, np.ndarray],
        cut: Callable[[], Mapping[str, np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """{node set: [N_s] int32 part}: read from the cache, or `cut()` and stored.

        Args:
          kind: "graph" (graph parallelism) or "sequential" (sequential partitions).
          num_parts: the part count the assignment is for.
          positions: {node set: [N_s, D] float} the positions `cut` bisects.
          cut: computes the assignment of the node sets in `positions`.
        """
        path = self.path(kind, num_parts, positions)
        sizes = {name: np.shape(x)[0] for name, x in positions.items()}
        stored = self._read(path, sizes, num_parts)
        if stored is not None:
            self.read += 1
            return stored
        parts = {name: np.asarray(p, np.int32) for name, p in cut().items()}
        self._write(path, parts)
        return parts

    def _read(self, path: str, sizes: dict[str, int], k: int) -> dict[str, np.ndarray] | None:
        if not os.path.exists(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                parts = {
                    key.removeprefix(_KEY): np.asarray(stored[key])
                    for key in stored.files
                    if key.startswith(_KEY)
                }
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            logger.warning("partition cache: %s cannot be read (%s); cutting again", path, e)
            return None
        fits = sorted(parts) == sorted(sizes) and all(
            parts[n].shape == (sizes[n],)
            and np.issubdtype(parts[n].dtype, np.integer)
            and (sizes[n] == 0 or (parts[n].min() >= 0 and parts[n].max() < k))
            for n in sizes
        )
        if not fits:
            logger.warning("partition cache: %s does not fit its mesh; cutting again", path)
            return None
        return {n: p.astype(np.int32) for n, p in parts.items()}

    def _write(self, path: str, parts: dict[str, np.ndarray]) -> None:
        if not self._writable:
            return
        try:
            os.makedirs(self.directory, exist_ok=True)
            with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, **{_KEY + name: p for name, p in parts.items()})
        except OSError as e:
            self._writable = False
            logger.warning(
                "partition cache: cannot write to %s (%s); not caching", self.directory, e
            )
            return
        self.written += 1


def cached_parts(
    cache: PartitionCache | None,
    kind: str,
    num_parts: int,
    positions: Mapping[str, np.ndarray],
    cut: Callable[[], Mapping[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """`cache.parts(...)`, or `cut()` when there is no cache."""
    if cache is None:
        return {name: np.asarray(p) for name, p in cut().items()}
    return cache.parts(kind, num_parts, positions, cut)


__all__ = ["FORMAT_VERSION", "PARTITIONS_DIR", "PartitionCache", "cached_parts"]
