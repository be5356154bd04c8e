"""Atomic file output: write to a sibling temporary file, rename onto the target when done.

Every file meshsim writes goes through here, so a crash or an exception never
leaves a half-written file under the final name: readers see the old file or
the new one. The temporary name keeps the target's extension (libraries such
as matplotlib and h5py choose a format from it) and starts with a dot, so a
directory listing for `*.h5` or `*.json` never matches it.

    with atomic_path("run/metrics.json") as tmp:
        write_something(tmp)            # renamed onto run/metrics.json on success

`AtomicFile` is the same for writers that stay open across calls: `commit()` renames,
`discard()` removes. `AtomicWriter` builds on it for writers that stream into one
handle (the HDF5, TFRecord and rollouts writers): a subclass says how to open and
finish the handle, the base publishes or discards the file. `staged_directory` does
it for a command that writes several files (a converted or generated dataset, a
ParaView export): they are written into a temporary sibling directory and
published together, or not at all. Temporaries carry their writer's pid, so what a
killed writer left (kill -9 runs no clean-up) is recognised and removed by the next
writer of the same destination (`remove_orphans`).

JSON is written strictly (`allow_nan=False`): a non-finite float becomes `null`
(`json_safe`), so every file and every `metrics.jsonl` line parses with any JSON
reader, where Python's default would write the invalid tokens `NaN`/`Infinity`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Self

# A temporary's name: `.<target name>.<pid>-<8 hex>.tmp[<ext>]` (or `.old`, a replaced
# directory on its way out); names without the pid come from older versions.
TEMPORARY_NAME = re.compile(
    r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.(?:tmp|old)(?:\.\w+)?$"
)


def _tag() -> str:
    """The unique part of a temporary's name: the writer's pid (so a later writer can tell
    a killed writer's leftovers from a live one's) and 8 random hex digits."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    """Whether process `pid` runs on this host."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(
    directory: str | os.PathLike, name: str | None = None, *, any_writer: bool = False
) -> list[str]:
    """Removes the temporaries (files and staging directories) that killed writers left in
    `directory`; returns their paths.

    A temporary is an orphan when the process named in it is gone (or, from older
    versions, it names none). With `any_writer` every temporary counts as an orphan:
    for a caller that holds a lock on the directory (a run directory). With `name` only
    the temporaries of that target are considered.
    """
    directory = os.fspath(directory)
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for entry in sorted(entries):
        match = TEMPORARY_NAME.match(entry)
        if match is None or (name is not None and match["name"] != name):
            continue
        pid = match["pid"]
        if not any_writer and pid is not None and _alive(int(pid)):
            continue  # a live writer's, perhaps another command on the same destination
        path = os.path.join(directory, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)
        removed.append(path)
    if removed:
        logging.getLogger(__name__).warning(
            "removed what a killed command left: %s", ", ".join(removed)
        )
    return removed


_NO_SPACE_TEXT = ("errno = 28", "no space left on device", "[errno 28]")

# Handles of writers that failed on a full disk, never closed (see `failing_on_full_disk`).
_UNCLOSED: list[Any] = []


def is_disk_full(error: BaseException | None) -> bool:
    """Whether `error`, or an exception it was raised from or during, is a full disk
    (OSError ENOSPC/EDQUOT, or a library's text for it such as HDF5's "errno = 28")."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(t in str(error).lower() for t in _NO_SPACE_TEXT):
            return True
        error = error.__cause__ or error.__context__
    return False


def failing_on_full_disk() -> bool:
    """Whether the exception being handled now is a full disk. A writer's handle is then
    not closed: HDF5 crashes (SIGSEGV) closing a file whose writes failed, so the handle
    is kept unclosed (`_UNCLOSED`) and only its temporary file is removed; the command
    reports the error and ends (`meshsim.cli`)."""
    return is_disk_full(sys.exc_info()[1])


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
        self.tmp = os.path.join(directory, f".{name}.{_tag()}.tmp{ext}")

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
            if not failing_on_full_disk():
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


class AtomicWriter:
    """Base of writers that stream into one file and publish it whole or not at all.

    The constructor opens the subclass's handle on a temporary sibling of `path`
    (`AtomicFile`) through `_open`; `commit()` finishes and closes it (`_finish`) and
    renames it onto `path`; `discard()` closes and removes it. As a context manager it
    commits on a clean exit and discards on an exception. After either the writer is
    `closed`; repeating the same one is a no-op, committing a discarded writer raises.

    Subclasses implement `_open(tmp)` (called from `__init__`: set whatever it reads
    before calling `super().__init__`) and may override `_finish(handle)` for last
    writes; the handle needs a `close()` that may be called twice.

    Attributes:
      path: the final path.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._atomic = AtomicFile(self.path)
        self._discarded = False
        try:
            self._file: Any = self._open(self._atomic.tmp)
        except BaseException:
            self._atomic.discard()
            raise

    def _open(self, tmp: str) -> Any:
        """Opens and returns the handle that writes the temporary file `tmp`."""
        raise NotImplementedError

    def _finish(self, handle: Any) -> None:
        """Last writes (a trailer, a flush) before publishing; then closes `handle`."""
        handle.close()

    @property
    def closed(self) -> bool:
        """Whether the writer was committed or discarded."""
        return self._file is None

    def _handle(self) -> Any:
        """The open handle; ValueError naming the writer once it is closed."""
        if self._file is None:
            raise ValueError(f"{type(self).__name__} for {self.path} is closed")
        return self._file

    def commit(self) -> str:
        """Finishes the file and renames it onto `path`; returns `path`.

        If finishing or renaming fails, the temporary is removed and the error
        re-raised (nothing is published). A no-op once committed.

        Raises:
          ValueError: the writer was discarded.
        """
        if self._discarded:
            raise ValueError(f"{type(self).__name__} for {self.path} was discarded")
        if self._file is None:
            return self.path
        handle, self._file = self._file, None
        try:
            return self._atomic.finish(lambda: self._finish(handle), on_error=handle.close)
        except BaseException:
            self._discarded = True  # the temporary is gone: nothing left to publish
            raise

    def discard(self) -> None:
        """Closes and removes the temporary file; `path` is left as it was. A no-op once
        closed."""
        if self._file is None:
            return
        handle, self._file = self._file, None
        self._discarded = True
        if failing_on_full_disk():  # see failing_on_full_disk: closing could crash
            _UNCLOSED.append(handle)
            self._atomic.discard()
            return
        self._atomic.abandon(handle.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
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


def json_safe(data: Any) -> Any:
    """`data` with every non-finite float (NaN, ±inf) replaced by None, recursively
    through dicts, lists and tuples (tuples become lists, as JSON writes them)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


def dumps_json(data: Any, *, indent: int | None = None) -> str:
    """Strict JSON text of `data`: non-finite floats as `null`, never `NaN`/`Infinity`."""
    return json.dumps(json_safe(data), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2) -> str:
    """Writes `data` as strict JSON (`dumps_json`) to `path` atomically; returns the path."""
    return write_text(path, dumps_json(data, indent=indent) + "\n")


def _make_parents(directory: str) -> list[str]:
    """Creates `directory` and its missing parents; returns the created ones, deepest first."""
    created = []
    while directory and not os.path.exists(directory):
        created.append(directory)
        directory = os.path.dirname(directory)
    for d in reversed(created):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d)
    return created


def _merge_into(src: str, dst: str, last: tuple[str, ...]) -> None:
    """Moves the entries of directory `src` into directory `dst` (files replace files of
    the same name, directories merge); the names in `last` are moved last."""
    names = sorted(os.listdir(src), key=lambda n: (n in last, n))
    for name in names:
        a, b = os.path.join(src, name), os.path.join(dst, name)
        if os.path.isdir(a) and os.path.isdir(b):
            _merge_into(a, b, ())
            os.rmdir(a)
        else:
            os.replace(a, b)


@contextlib.contextmanager
def staged_directory(
    path: str | os.PathLike, *, replace: bool = False, carry: tuple[str, ...] = ()
) -> Iterator[str]:
    """Yields a new temporary sibling directory of `path` to write into; publishes it
    if the block succeeds, removes it if not (`path` is then exactly as it was).

    Publishing: a `path` that does not exist yet (or with `replace`, one that does) is
    replaced by the temporary directory itself (one rename); otherwise the temporary's
    entries are moved into `path`, replacing files of the same name, `carry` last.

        with staged_directory("data/cyl", carry=("meta.json",)) as tmp:
            convert_dataset(src, tmp)        # all splits appear in data/cyl, or none

    Args:
      path: the directory to create or add to; missing parents are created (and
        removed again on failure).
      replace: swap a whole existing directory for the new one (e.g. an export whose
        old files must not survive beside the new ones).
      carry: names of files copied from an existing `path` into the temporary first
        (e.g. `meta.json`, so a writer checks its schema against the existing one).

    Raises:
      NotADirectoryError: `path` exists and is not a directory.
    """
    target = os.path.abspath(os.fspath(path))
    if os.path.exists(target) and not os.path.isdir(target):
        raise NotADirectoryError(f"{os.fspath(path)!r} exists and is not a directory")
    parent, name = os.path.split(target)
    created = _make_parents(parent)
    remove_orphans(parent, name)  # left by a killed writer of the same destination
    tmp = os.path.join(parent, f".{name}.{_tag()}.tmp")
    try:
        os.mkdir(tmp)
        for entry in carry:
            if os.path.isfile(os.path.join(target, entry)):
                shutil.copy2(os.path.join(target, entry), os.path.join(tmp, entry))
        yield tmp
        if not os.path.exists(target):
            os.rename(tmp, target)
        elif replace:
            old = os.path.join(parent, f".{name}.{_tag()}.old")
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            _merge_into(tmp, target, carry)
            os.rmdir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in created:  # deepest first; only while empty
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise
