"""Data parallelism over tasks with ``jax.sharding``.

The meta-batch (leading task axis) is split over every visible device with a
``Mesh`` of one axis, ``"tasks"``; parameters and optimizer state are
replicated. The same jitted code runs on one CPU, on fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), on a GPU and on a
TPU slice. For several hosts, call :func:`initialize_distributed` first.
"""
from __future__ import annotations

from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from omni_jax.errors import OmniJaxError

TASK_AXIS = "tasks"


def parse_coordinator(address: str) -> str:
    """Checks a coordinator address ``HOST:PORT`` (an IPv6 host in brackets: ``[::1]:1234``)."""
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OmniJaxError(f"--coordinator {address!r} must look like HOST:PORT (for example localhost:12355), "
                           "with a port between 1 and 65535")
    return address


def initialize_distributed(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
                           process_id: Optional[int] = None, timeout_s: int = 300) -> None:
    """Joins a multi-process run; call it before anything else touches JAX.

    With ``coordinator`` (``HOST:PORT`` of process 0), ``num_processes`` and ``process_id`` the
    run is described explicitly (several processes on one machine, or a cluster without a
    scheduler JAX knows); with none of them ``jax.distributed.initialize()`` detects the cluster
    (SLURM, Open MPI, Cloud TPU, ...). On CPUs the processes' collectives go over gloo. Every
    process then sees every process's devices: the task mesh spans them all, and only process 0
    writes files other than checkpoints. Any failure is an :class:`OmniJaxError`.
    """
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise OmniJaxError("--coordinator HOST:PORT, --num-processes N and --process-id I go together "
                           "(or give none of them to let jax.distributed.initialize() detect the cluster)")
    kwargs = {}
    if all(given):
        if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
            raise OmniJaxError(f"--num-processes must be a positive integer, got {num_processes!r}")
        if isinstance(process_id, bool) or not isinstance(process_id, int) or not 0 <= process_id < num_processes:
            raise OmniJaxError(f"--process-id must be in [0, {num_processes}) for --num-processes {num_processes}, "
                               f"got {process_id!r}")
        kwargs = dict(coordinator_address=parse_coordinator(coordinator), num_processes=num_processes,
                      process_id=process_id)
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(initialization_timeout=timeout_s, **kwargs)
    except (RuntimeError, ValueError) as e:
        how = (f"coordinator {coordinator}, process {process_id} of {num_processes}" if kwargs
               else "the cluster could not be detected; pass --coordinator, --num-processes and --process-id")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OmniJaxError(f"--distributed: could not join the run ({how}): {first}") from None


def task_mesh(devices: Optional[list] = None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (TASK_AXIS,))


def check_divisible(n: int, mesh: Mesh, field: str) -> None:
    d = mesh.devices.size
    if n % d:
        raise OmniJaxError(f"config field {field}={n} does not divide over the {d} devices; use a multiple of {d}")


def task_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(TASK_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def shard_tasks(tree: Any, mesh: Optional[Mesh]) -> Any:
    """Constrains every leaf's leading (task) axis to be split over the mesh; inside jit."""
    if mesh is None or mesh.devices.size == 1:
        return tree
    return jax.lax.with_sharding_constraint(tree, task_sharding(mesh))


def replicate(tree: Any, mesh: Optional[Mesh]) -> Any:
    """Places a pytree on every device of the mesh (outside jit)."""
    if mesh is None:
        return tree
    return jax.device_put(tree, replicated(mesh))
