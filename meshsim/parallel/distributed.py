"""Multi-process runs through `jax.distributed` (`meshsim train --distributed`).

Every process of a run calls `initialize` before anything else touches jax; the
device mesh of `meshsim.parallel.placement` then spans all processes' devices, each
process feeds its own examples of every batch from its own shard of the
trajectories, and XLA's collectives cross the processes. Where the coordinator,
the process count and this process's id come from, first found wins:

1. the arguments (`--coordinator host:port --num-processes N --process-id I`);
2. the variables MESHSIM_COORDINATOR, MESHSIM_NUM_PROCESSES, MESHSIM_PROCESS_ID;
3. jax's own cluster detection (SLURM, Open MPI, Kubernetes, ...), e.g. under
   `srun`, where nothing needs to be given.

CPU processes exchange data through gloo (set here: jax's CPU client has no
cross-process collectives otherwise), which is how a two-process run on one
machine tests the whole path.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

ENV = {
    "coordinator": "MESHSIM_COORDINATOR",
    "num_processes": "MESHSIM_NUM_PROCESSES",
    "process_id": "MESHSIM_PROCESS_ID",
}


def _int(name: str, value, minimum: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an int, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name}: expected an int ≥ {minimum}, got {number}")
    return number


def resolve(
    coordinator: str | None = None, num_processes=None, process_id=None, environ=None
) -> dict:
    """The `jax.distributed.initialize` arguments from the arguments, else the MESHSIM_*
    variables; {} leaves everything to jax's cluster detection.

    Raises:
      ValueError: a value of the wrong type or range, a coordinator that is not
        host:port, a process id ≥ the count, or a partial set (all three or none).
    """
    environ = os.environ if environ is None else environ
    given = {
        "coordinator": coordinator or environ.get(ENV["coordinator"]) or None,
        "num_processes": _int(
            "--num-processes", num_processes or environ.get(ENV["num_processes"]), 1
        ),
        "process_id": _int(
            "--process-id",
            process_id if process_id is not None else environ.get(ENV["process_id"]),
            0,
        ),
    }
    present = {k for k, v in given.items() if v is not None}
    if not present:
        return {}
    if present != set(given):
        missing = sorted(set(given) - present)
        raise ValueError(
            f"--distributed: give the coordinator, the process count and the process id "
            f"together (or none, under a cluster jax detects); missing {missing}"
        )
    host, _, port = given["coordinator"].rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--coordinator: expected host:port, got {given['coordinator']!r}")
    if given["process_id"] >= given["num_processes"]:
        raise ValueError(
            f"--process-id: expected < --num-processes={given['num_processes']}, "
            f"got {given['process_id']}"
        )
    return {
        "coordinator_address": given["coordinator"],
        "num_processes": given["num_processes"],
        "process_id": given["process_id"],
    }


def initialize(coordinator: str | None = None, num_processes=None, process_id=None) -> None:
    """Joins this process to a multi-process run (see the module doc). Call once, before
    any other use of jax in the process."""
    import jax

    kwargs = resolve(coordinator, num_processes, process_id)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as e:
        if kwargs:
            raise ConnectionError(
                f"--distributed: cannot join the run at --coordinator "
                f"{kwargs['coordinator_address']} ({str(e).strip().splitlines()[0][:200]})"
            ) from e
        raise ValueError(
            "--distributed: no coordinator given and no cluster detected (SLURM, Open MPI, "
            "...): give --coordinator host:port --num-processes N --process-id I, or set "
            f"{ENV['coordinator']}, {ENV['num_processes']} and {ENV['process_id']}"
        ) from e
    logger.info(
        "process %d of %d: %d local devices, %d in all",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
