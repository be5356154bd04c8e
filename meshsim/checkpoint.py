"""Checkpoints of a `TrainState` with orbax: atomic, rotating, resumable.

Orbax writes each step into a temporary directory and renames it when complete,
so a crash mid-save leaves the previous checkpoint intact and never a partial one
under a step's name. Saving is synchronous here: a save has finished when `save`
returns, which keeps resume semantics simple on a single host.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax

logger = logging.getLogger(__name__)


class Checkpointer:
    """Saves/restores pytrees under `directory/<step>`, keeping the newest `max_to_keep`."""

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3):
        import orbax.checkpoint as ocp  # heavy import, only where checkpoints are used

        self._ocp = ocp
        self.directory = os.path.abspath(os.fspath(directory))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True
            ),
        )

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        """Writes `state` as checkpoint `step` (atomically) and prunes old ones."""
        self._manager.save(int(step), args=self._ocp.args.StandardSave(state), force=True)
        self._manager.wait_until_finished()
        logger.info("saved checkpoint %d to %s", step, self.directory)

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restores checkpoint `step` (default newest) into the structure of `like`.

        Raises:
          FileNotFoundError: when there is no checkpoint.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree_util.tree_map(self._ocp.utils.to_shape_dtype_struct, like)
        return self._manager.restore(int(step), args=self._ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self._manager.close()
