"""The `meshsim` command: a thin shell over the library.

Each sub-command parses its arguments (`meshsim.cli.parser`) and calls one library
function (`meshsim.cli.commands`); heavy imports happen inside the command so
`meshsim --help` is instant. Here: `main`, and how errors are reported.

Errors are one line on stderr, `meshsim <command>: error: <message>`, never a
traceback (`--debug`, before or after the command, adds it):

* exit 2: usage errors, found while parsing (unknown options, values out of range
  such as `--steps 0`; each option's `type=` checks its value);
* exit 1: failures at run time (a missing workdir, config or dataset, bad data, a
  diverged run): the library's ValueError/TypeError/OSError messages, which name the
  file and field; any other exception is reported as unexpected, with a hint to
  rerun with `--debug`;
* a closed stdout (`meshsim inspect DIR | head -1`) ends the command quietly;
* a full disk is one line from every command, `<path>: no space left on device`,
  exit 1; the process then ends at once (HDF5 objects whose writes failed can crash
  in their finalizers);
* errors of library threads (orbax's) and the tracebacks libraries print or log on
  their own are collected into that one line (`--debug` shows them).

Commands that write files write them atomically and leave nothing behind when
they fail (`meshsim.atomic`), so a corrected retry runs as if it were the first;
what a killed command (kill -9) left is removed by the next one on the same
destination. Before `train`, `rollout`, `evaluate`, `forecast` and `demo`, the
`meshsim` command starts itself again with glibc's huge-page tunable set, where it
applies (`meshsim.hugepages`; `MESHSIM_HUGE_PAGES=0` keeps it as it is).
`train`, `evaluate`, `rollout`, `forecast` and `plot` hold the run
directory's lock (`meshsim.runs.lock`): a second command on a run in use is refused
at once, naming the holder's pid and host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import traceback

from meshsim import hugepages
from meshsim.atomic import TEMPORARY_NAME, is_disk_full
from meshsim.cli.commands import report_error as _error
from meshsim.cli.parser import build_parser


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache for CLI runs.

    A second `meshsim train/rollout/evaluate` of the same model then loads its
    compiled steps from disk (measured for the 16k-node paper model: train step
    1.70 s cold, 0.115 s warm; experiments/benchmarks/results/2026-11-21/latest.md).
    Location: $MESHSIM_COMPILATION_CACHE, default ~/.cache/meshsim/jax; set it
    to an empty string to disable. Works in a process that has compiled before
    (`main` called from a notebook or a test): JAX reads the setting when it first
    compiles, so the cache is reset to pick up the new directory.
    """
    path = os.environ.get(
        "MESHSIM_COMPILATION_CACHE",
        os.path.join(os.path.expanduser("~"), ".cache", "meshsim", "jax"),
    )
    if not path:
        return None
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    if jax.config.jax_compilation_cache_dir != path:
        jax.config.update("jax_compilation_cache_dir", path)
        compilation_cache.reset_cache()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


# Commands that compile and run steps: they use the compilation cache, and the
# `meshsim` command starts itself again with huge pages for them (`meshsim.hugepages`).
COMPUTING = ("train", "rollout", "evaluate", "forecast", "demo")

# Library errors about the input or the environment: reported by their message alone.
# (NonFiniteError is a FloatingPointError, CheckpointError an OSError.)
EXPECTED_ERRORS = (ValueError, TypeError, OSError, ArithmeticError, ImportError)


def _chain(error: BaseException) -> list[BaseException]:
    """`error` and the exceptions it was raised from or during (`__cause__`/`__context__`)."""
    out, seen = [], set()
    while error is not None and id(error) not in seen and len(out) < 20:
        seen.add(id(error))
        out.append(error)
        error = error.__cause__ or error.__context__
    return out


_FILENAME = re.compile(r"filename = '([^']+)'")  # in HDF5's error text


def _published_name(path: str) -> str:
    """The path a temporary of `meshsim.atomic` was to become (each temporary component
    of `path` replaced by its target's name)."""
    parts = [
        (m["name"] if (m := TEMPORARY_NAME.match(part)) else part) for part in path.split(os.sep)
    ]
    return os.sep.join(parts)


def no_space_path(errors: list[BaseException], default: str) -> str | None:
    """The path that the "no space left on device" errors among `errors` (and the
    exceptions they were raised from) name, else `default` (the command's output);
    None when none of them is a full disk."""
    found = False
    for e in (c for error in errors for c in _chain(error)):
        if not is_disk_full(e):
            continue
        found = True
        if isinstance(e, OSError) and e.filename:
            return _published_name(os.fspath(e.filename))
        match = _FILENAME.search(str(e))
        if match:
            return _published_name(match.group(1))
    return default if found else None


def _output_of(args) -> str:
    """Where a command writes (named in a full-disk error when the library does not)."""
    for name in ("out", "dst", "workdir"):
        value = getattr(args, name, None)
        if value:
            return value
    return "."


class _LibraryErrors:
    """Collects the errors that libraries would print as tracebacks on their own, so the
    command reports one line (`--debug` prints them as well):

    * `errors`: exceptions of library threads (orbax's, prefetching): a command whose
      thread failed fails with that thread's error;
    * `ignored`: exceptions Python can only print: a finalizer's (HDF5 objects of a file
      that could not be written), or a C++ callback's (tensorstore's, into an event loop
      that orbax already closed). They are not failures by themselves, but say why one
      happened (a full disk).

    `install` sets `threading.excepthook`, `sys.unraisablehook` and `sys.excepthook`;
    `restore` puts the previous ones back.
    """

    def __init__(self, debug: bool):
        self.debug, self.errors, self.ignored = debug, [], []
        self._previous = None

    def _thread(self, hook_args) -> None:
        if hook_args.exc_type is SystemExit:
            return
        self.errors.append(hook_args.exc_value)
        if self.debug:
            threading.__excepthook__(hook_args)

    def _unraisable(self, hook_args) -> None:
        self.ignored.append(hook_args.exc_value)
        if self.debug:
            sys.__unraisablehook__(hook_args)

    def _uncaught(self, exc_type, exc_value, tb) -> None:
        self.ignored.append(exc_value)
        if self.debug:
            sys.__excepthook__(exc_type, exc_value, tb)

    def install(self) -> None:
        self._previous = (threading.excepthook, sys.unraisablehook, sys.excepthook)
        threading.excepthook, sys.unraisablehook = self._thread, self._unraisable
        sys.excepthook = self._uncaught

    def restore(self) -> None:
        if self._previous is not None:
            threading.excepthook, sys.unraisablehook, sys.excepthook = self._previous


class _NoTracebacks(logging.Filter):
    """Drops the tracebacks that libraries attach to log records (shown with --debug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the final flush stays silent
    (the pattern of the Python documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests)
        pass


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns its exit status (argparse exits with 2 on usage errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command in COMPUTING and not sys.argv[0].endswith(".py"):
        hugepages.reexec(sys.argv)  # the `meshsim` command, started again with huge pages
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # orbax logs every file it touches, and its failures with tracebacks: those become
    # the command's one error line (all of it with --debug or -v).
    quiet_libraries = not (args.debug or args.verbose)
    logging.getLogger("absl").setLevel(logging.CRITICAL if quiet_libraries else logging.WARNING)
    if not args.debug:
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, _NoTracebacks) for f in handler.filters):
                handler.addFilter(_NoTracebacks())
    logging.getLogger("jax").setLevel(logging.WARNING)  # e.g. "Unable to initialize backend"
    if args.command is None:
        parser.print_help()
        return 0
    thread_errors = _LibraryErrors(args.debug)
    thread_errors.install()
    if os.environ.get(hugepages.REEXECUTED):
        logging.getLogger(__name__).debug(
            "started again with GLIBC_TUNABLES=%s", os.environ.get("GLIBC_TUNABLES")
        )
    try:
        if args.command in COMPUTING:
            enable_compilation_cache()
        code = int(args.func(args) or 0)
        if thread_errors.errors:  # the command finished, but a library thread failed
            raise RuntimeError("a background thread failed") from thread_errors.errors[0]
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by it
    except KeyboardInterrupt:
        _error(args.command, "interrupted")
        return 130
    except Exception as e:
        if args.debug:
            traceback.print_exc()
        candidates = [e, *thread_errors.errors, *thread_errors.ignored]
        full = no_space_path(candidates, _output_of(args))
        if full is not None:
            _error(
                args.command,
                f"{full}: no space left on device (nothing half-written is left; free some space "
                "and run it again)",
            )
            if argv is None:  # the real command: see _exit_now
                _exit_now(1)
            return 1
        if thread_errors.errors and not isinstance(e, EXPECTED_ERRORS):
            e = thread_errors.errors[0]  # the main thread's error followed the thread's
        if isinstance(e, EXPECTED_ERRORS):
            _error(args.command, _one_line(e))
        else:
            _error(
                args.command,
                f"unexpected {type(e).__name__}: {_one_line(e)} "
                f"(run 'meshsim --debug {args.command} ...' for the traceback)",
            )
        return 1
    finally:
        if argv is not None:  # in-process (tests, notebooks); the command keeps them to exit
            thread_errors.restore()


def _exit_now(code: int) -> None:
    """Ends the process at once after a full disk: HDF5 and tensorstore objects that
    failed mid-write can crash (SIGSEGV) in their finalizers at interpreter exit, after
    the error was reported; everything meshsim writes is atomic, so there is nothing
    left to flush but the standard streams."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


__all__ = ["COMPUTING", "EXPECTED_ERRORS", "build_parser", "enable_compilation_cache", "main"]
