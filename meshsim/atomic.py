"""Atomic file output: write to a sibling temporary file, rename onto the target when done.

Every file meshsim writes goes through here, so a crash or an exception never
leaves a half-written file under the final name: readers see the old file or
the new one. The temporary name keeps the target's extension (libraries such
as matplotlib and h5py choose a format from it) and starts with a dot, so a
directory listing for `*.h5` or `*.json` never matches it.

    with atomic_path("run/metrics.json") as tmp:
        write_something(tmp)            # renamed onto run/metrics.json on success

`AtomicFile` is the same for writers that stay open across calls (an HDF5 or
TFRecord writer): `commit()` renames, `discard()` removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any


class AtomicFile:
    """A temporary sibling of `path` that becomes `path` on `commit()`.

    Attributes:
      path: the final path.
      tmp: the temporary path to write (same directory, same extension).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        # Resolved now, like `tmp`, so that a later chdir cannot move the target.
        self._target = os.path.abspath(self.path)
        directory, name = os.path.split(self._target)
        ext = os.path.splitext(name)[1]
        self.tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp{ext}")

    def commit(self) -> str:
        """Renames the temporary file onto the final path (atomic on POSIX); returns it."""
        os.replace(self.tmp, self._target)
        return self.path

    def discard(self) -> None:
        """Removes the temporary file if it exists (the final path is untouched)."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.tmp)

    def finish(self, close: Callable[[], None], *, on_error: Callable[[], None]) -> str:
        """Runs a writer's `close` (its last writes included), then commits.

        If either fails, `on_error` runs (errors ignored: e.g. closing the handle
        that `close` left open), the temporary is discarded and the error re-raised,
        so nothing is published and nothing is left behind.
        """
        try:
            close()
            return self.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                on_error()
            self.discard()
            raise

    def abandon(self, close: Callable[[], None]) -> None:
        """Runs `close` and discards the temporary, whatever `close` does."""
        try:
            close()
        finally:
            self.discard()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path; renamed onto `path` if the block succeeds, removed if not."""
    f = AtomicFile(path)
    try:
        yield f.tmp
    except BaseException:
        f.discard()
        raise
    try:
        f.commit()
    except BaseException:
        f.discard()
        raise


def write_text(path: str | os.PathLike, text: str) -> str:
    """Writes `text` to `path` atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "w") as out:
        out.write(text)
    return os.fspath(path)


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2) -> str:
    """Writes `data` as JSON to `path` atomically; returns the path."""
    return write_text(path, json.dumps(data, indent=indent) + "\n")
