"""Sinusoid regression tasks (paper §6.2, after Finn et al.).

A task is ``y = A·sin(x - φ)`` with ``A ~ U[amp_range]``, ``φ ~ U[phase_range]``
and ``x ~ U[x_range]``. The paper trains on a fixed set of 30,000 tasks of
50 points each; sampling fresh tasks on the fly is an option. Everything here
is pure ``jax.random`` so it runs inside jit.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SinusoidTasks(NamedTuple):
    """A batch of tasks: amplitudes and phases ``[T]``."""

    amp: jnp.ndarray
    phase: jnp.ndarray

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Targets for inputs ``x`` of shape ``[T, N, 1]``."""
        return self.amp[:, None, None] * jnp.sin(x - self.phase[:, None, None])


def sample_tasks(key, num_tasks: int, amp_range, phase_range) -> SinusoidTasks:
    ka, kp = jax.random.split(key)
    amp = jax.random.uniform(ka, (num_tasks,), minval=amp_range[0], maxval=amp_range[1])
    phase = jax.random.uniform(kp, (num_tasks,), minval=phase_range[0], maxval=phase_range[1])
    return SinusoidTasks(amp, phase)


def sample_inputs(key, shape, x_range) -> jnp.ndarray:
    return jax.random.uniform(key, tuple(shape) + (1,), minval=x_range[0], maxval=x_range[1])


class SinusoidDataset(NamedTuple):
    """The fixed training set: ``x, y`` of shape ``[num_tasks, points, 1]``."""

    x: jnp.ndarray
    y: jnp.ndarray


def make_training_set(key, num_tasks: int, points_per_task: int, amp_range, phase_range,
                      x_range) -> SinusoidDataset:
    kt, kx = jax.random.split(key)
    tasks = sample_tasks(kt, num_tasks, amp_range, phase_range)
    x = sample_inputs(kx, (num_tasks, points_per_task), x_range)
    return SinusoidDataset(x, tasks(x))


def _split(x, y, k_shot):
    return {"support": {"x": x[:, :k_shot], "y": y[:, :k_shot]},
            "query": {"x": x[:, k_shot:], "y": y[:, k_shot:]}}


def episode_from_dataset(key, data: SinusoidDataset, meta_batch: int, k_shot: int, k_query: int) -> dict:
    """``meta_batch`` tasks of the fixed set, each with ``k_shot`` support and
    ``k_query`` query points drawn without replacement from its points."""
    kt, kp = jax.random.split(key)
    num_tasks, points = data.x.shape[:2]
    tasks = jax.random.randint(kt, (meta_batch,), 0, num_tasks)
    perm = jax.vmap(lambda k: jax.random.permutation(k, points)[: k_shot + k_query])(
        jax.random.split(kp, meta_batch))
    x = data.x[tasks[:, None], perm]
    y = data.y[tasks[:, None], perm]
    return _split(x, y, k_shot)


def batch_from_dataset(key, data: SinusoidDataset, batch_size: int) -> dict:
    """A standard mini-batch: ``batch_size`` (x, y) pairs pooled over the tasks."""
    kt, kp = jax.random.split(key)
    num_tasks, points = data.x.shape[:2]
    t = jax.random.randint(kt, (batch_size,), 0, num_tasks)
    p = jax.random.randint(kp, (batch_size,), 0, points)
    return {"x": data.x[t, p], "y": data.y[t, p]}


def episode_on_the_fly(key, meta_batch: int, k_shot: int, k_query: int, amp_range, phase_range,
                       x_range) -> dict:
    kt, kx = jax.random.split(key)
    tasks = sample_tasks(kt, meta_batch, amp_range, phase_range)
    x = sample_inputs(kx, (meta_batch, k_shot + k_query), x_range)
    return _split(x, tasks(x), k_shot)


def batch_on_the_fly(key, batch_size: int, amp_range, phase_range, x_range) -> dict:
    ep = episode_on_the_fly(key, batch_size, 1, 0, amp_range, phase_range, x_range)["support"]
    return {"x": ep["x"][:, 0], "y": ep["y"][:, 0]}
