"""The run-directory lock: one command at a time writes (or reads) a run.

`meshsim train`, `evaluate`, `rollout`, `forecast` and `plot` hold `DIR/.meshsim.lock`
while they work on a run directory. The lock is an advisory `fcntl.flock` on that
file, which the kernel releases when the process ends in any way (kill -9
included), and the file records the holder (`{"pid", "host", "command", "since"}`)
so a refusal can name it:

* a second command on a locked run is refused at once (`RunLockedError`, one line
  naming the holder's pid, host and command); none of them waits. The reading
  commands (`forecast`, `plot`) are refused too: a training run prunes and
  rewrites the checkpoints they would read;
* the holder removes what killed commands left in the directory (temporaries of
  `meshsim.atomic`); `train` also removes orbax's unfinished checkpoints;
* on a clean exit (or an exception) the holder removes the file;
* a command nested in another of the same process (a demo trains, then evaluates)
  shares its lock;
* a file left by a process that was killed (no flock held on it any more) is
  stale: the next command takes it over and logs a WARNING naming the dead holder.

Under `jax.distributed` only process 0 takes the lock (every process of one run
works in the same directory). `flock` is per host on some network filesystems:
two hosts writing one run over NFS are not caught.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator

from meshsim import atomic

logger = logging.getLogger(__name__)

LOCK_FILE = ".meshsim.lock"  # in the run directory, present only while a command holds it

_HELD: dict[str, int] = {}  # real path of a lock file -> nesting depth in this process


class RunLockedError(OSError):
    """Another live process holds the run directory's lock."""


def _holder_text(info: dict) -> str:
    return (
        f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"
        f" ({info.get('command', '?')}, since {info.get('since', '?')})"
    )


def _read_info(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace")
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def run_lock(workdir: str, command: str, *, create: bool = False) -> Iterator[str]:
    """Holds the lock of run directory `workdir` for the block; yields the lock path.

    Args:
      workdir: the run directory.
      command: what holds it (`"train"`, `"evaluate"`, ...), shown to a refused command.
      create: create `workdir` if missing (training); otherwise a missing directory is
        left to the command to report.

    Raises:
      RunLockedError: another live process holds the lock (its pid, host and command
        are named).
      NotADirectoryError: `workdir` exists and is not a directory.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise NotADirectoryError(f"workdir {workdir!r} is not a directory")
    if not os.path.isdir(workdir):
        if not create:
            yield ""
            return
        os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    key = os.path.realpath(path)
    if key in _HELD:  # re-entrant: `meshsim demo` trains, then evaluates, in one process
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    fd = _acquire(path, workdir, command)
    _HELD[key] = 1
    atomic.remove_orphans(workdir, any_writer=True)  # a killed command's; none is live now
    try:
        yield path
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.remove(path)  # still under the flock: nobody else holds this inode
        os.close(fd)


def _acquire(path: str, workdir: str, command: str) -> int:
    """Opens, flocks and fills the lock file; returns its descriptor."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            info = _read_info(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise RunLockedError(
                    f"workdir {workdir!r} is in use by {_holder_text(info)}: wait for it to "
                    "finish or use another --workdir"
                ) from None
            raise
        # The holder before us may have removed the file between our open and flock:
        # then our descriptor is of an unlinked inode and we start again.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        break
    stale = _read_info(fd)
    if stale:
        logger.warning(
            "workdir %r: taking over the lock left by %s, which is gone (killed?)",
            workdir,
            _holder_text(stale),
        )
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "since": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode())
    except OSError:
        os.close(fd)
        raise
    return fd
