"""Checkpoints of a `TrainState` with orbax: atomic, rotating, resumable, verified.

Orbax writes each step into a temporary directory and renames it when complete,
so a crash mid-save leaves the previous checkpoint intact and never a partial one
under a step's name. Saving is synchronous here: a save has finished when `save`
returns, which keeps resume semantics simple on a single host.

A file of a finished checkpoint can still be damaged later (a full disk, a copy
cut short, a truncated file). After each save, `<step>/meshsim_manifest.json`
records the size and CRC-32 of every file of the step; `restore` checks them
before reading and, when the newest checkpoint is damaged, logs a WARNING naming
it and falls back to the newest good one. Checkpoints without a manifest (written
by older versions, or by a process killed between the save and the manifest) are
read as they are; a failed read falls back the same way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zlib
from typing import Any

import jax

from meshsim import atomic

logger = logging.getLogger(__name__)

MANIFEST = "meshsim_manifest.json"  # [per step] {"files": {relative path: [bytes, crc32]}}


class CheckpointError(OSError):
    """A checkpoint that cannot be read (damaged, partial) or no readable one at all."""


def _crc32(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def _files(directory: str) -> list[str]:
    """Relative paths of the files under `directory` (the manifest excluded), sorted."""
    out = []
    for root, _, names in os.walk(directory):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), directory)
            if rel != MANIFEST:
                out.append(rel)
    return sorted(out)


def write_manifest(step_dir: str) -> str:
    """Records size and CRC-32 of each file of a finished checkpoint; returns the path."""
    files = {
        rel: [os.path.getsize(os.path.join(step_dir, rel)), _crc32(os.path.join(step_dir, rel))]
        for rel in _files(step_dir)
    }
    return atomic.write_json(os.path.join(step_dir, MANIFEST), {"files": files}, indent=None)


def verify_manifest(step_dir: str) -> bool:
    """Checks a step directory against its manifest. Reads every file once.

    Returns:
      True if verified, False if the step has no manifest (nothing to check).

    Raises:
      CheckpointError: naming the first missing, truncated or altered file.
    """
    path = os.path.join(step_dir, MANIFEST)
    if not os.path.exists(path):
        return False
    try:
        with open(path) as f:
            files = json.load(f)["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable manifest ({e})") from None
    for rel, (size, crc) in sorted(files.items()):
        file = os.path.join(step_dir, rel)
        if not os.path.isfile(file):
            raise CheckpointError(f"{file}: missing")
        actual = os.path.getsize(file)
        if actual != size:
            raise CheckpointError(f"{file}: {actual} bytes, expected {size} (truncated?)")
        if _crc32(file) != crc:
            raise CheckpointError(f"{file}: contents changed since it was saved (CRC mismatch)")
    return True


def _with_sharding(x) -> jax.ShapeDtypeStruct:
    """The restore target of one leaf: its own sharding, else the default device (so a
    checkpoint written by any device or process count is read onto one device)."""
    sharding = getattr(x, "sharding", None)
    if sharding is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


class Checkpointer:
    """Saves/restores pytrees under `directory/<step>`, keeping the newest `max_to_keep`.

    Nothing is created on disk until the first `save`, so reading a run directory
    never adds an empty `checkpoints/` to it.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3):
        import orbax.checkpoint as ocp  # heavy import, only where checkpoints are used

        self._ocp = ocp
        self.directory = os.path.abspath(os.fspath(directory))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, enable_async_checkpointing=False, create=False
            ),
        )

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(int(step)))

    def all_steps(self) -> list[int]:
        """Steps of the complete checkpoints, oldest first."""
        return sorted(int(s) for s in self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        """Writes `state` as checkpoint `step` (atomically), its manifest, and prunes old ones.

        Raises:
          CheckpointError: the save failed (a full disk, the checkpoint directory removed
            during the run, ...): one message naming the directory; the original error
            is its `__cause__`.
        """
        try:
            self._manager.save(int(step), args=self._ocp.args.StandardSave(state), force=True)
            self._manager.wait_until_finished()
            if jax.process_index() == 0:  # every process saves its shards; one lists the files
                write_manifest(self.step_dir(step))
        except Exception as e:
            self.remove_temporaries(failed_save=True)  # this process holds the run
            if not os.path.isdir(self.directory):
                reason = "the directory was removed during the run"
            else:
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                reason = f"{type(e).__name__}: {reason}"
            raise CheckpointError(
                f"{self.directory}: cannot save checkpoint {int(step)} ({reason})"
            ) from e
        logger.info("saved checkpoint %d to %s", step, self.directory)

    def remove_temporaries(self, *, failed_save: bool = False) -> list[str]:
        """Removes what an unfinished save left: orbax's `<step>.orbax-checkpoint-tmp*`
        directories (a complete checkpoint is only ever renamed from one). Only a
        process that holds the run's lock may call it: a killed run's are reported (a
        WARNING), a `failed_save`'s of this process are not. Returns the removed paths."""
        if not os.path.isdir(self.directory):
            return []
        removed = []
        for name in sorted(os.listdir(self.directory)):
            if ".orbax-checkpoint-tmp" in name:
                path = os.path.join(self.directory, name)
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        if removed and not failed_save:
            logger.warning(
                "removed %d unfinished checkpoint(s) of a killed run: %s",
                len(removed),
                ", ".join(removed),
            )
        if removed:
            self._manager.reload()
        return removed

    def _restore_step(self, abstract: Any, step: int) -> Any:
        verify_manifest(self.step_dir(step))
        try:
            return self._manager.restore(int(step), args=self._ocp.args.StandardRestore(abstract))
        except Exception as e:  # orbax/tensorstore raise many types for a damaged file
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise CheckpointError(
                f"{self.step_dir(step)}: cannot be read ({type(e).__name__}: {first})"
            ) from e

    def restore(self, like: Any, step: int | None = None, *, set_aside_damaged: bool = False):
        """Restores checkpoint `step` into the structure of `like`; by default the newest
        readable one, falling back past damaged ones (each logged as a WARNING).

        Args:
          like: a pytree of arrays or `jax.ShapeDtypeStruct`s (e.g. `jax.eval_shape`).
          step: a specific step (no fallback).
          set_aside_damaged: rename each damaged checkpoint to `<step>.corrupt` so a
            resumed run can write that step again (training does; readers do not).

        Raises:
          FileNotFoundError: when there is no checkpoint.
          CheckpointError: when `step`, or every checkpoint, cannot be read; the
            message names the directory and the reason for each step.
        """
        abstract = jax.tree_util.tree_map(_with_sharding, like)
        if step is not None:
            return self._restore_step(abstract, step)
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        errors = []
        for s in reversed(steps):
            try:
                state = self._restore_step(abstract, s)
            except CheckpointError as e:
                errors.append(f"step {s}: {e}")
                logger.warning("damaged checkpoint: %s; trying an older one", e)
                if set_aside_damaged:
                    self._set_aside(s)
                continue
            if errors:
                logger.warning("restored checkpoint %d instead", s)
            return state
        raise CheckpointError(
            f"no readable checkpoint in {self.directory} ({len(steps)} tried): " + "; ".join(errors)
        )

    def _set_aside(self, step: int) -> None:
        src = self.step_dir(step)
        dst, n = f"{src}.corrupt", 1
        while os.path.exists(dst):
            dst, n = f"{src}.corrupt{n}", n + 1
        os.rename(src, dst)
        logger.warning("moved the damaged checkpoint %s to %s", src, dst)
        self._manager.reload()

    def close(self) -> None:
        self._manager.close()
