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


def initialize_distributed() -> None:
    """Joins a multi-host run (``jax.distributed.initialize`` reads the cluster from the environment)."""
    jax.distributed.initialize()


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
