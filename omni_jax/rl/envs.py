"""Brax environments with task parameters (paper §6.3, Figure 7).

Each environment is a ``brax.envs.Env`` registered with
``brax.envs.register_environment`` under its CLI name. The task parameters
live in ``state.info["task"]``, so a batch of different tasks is one vmapped
computation with no recompilation: ``env.reset(rng, task)`` places a task
(from ``env.sample_tasks``) in the state, and ``env.step`` reads it back.

* ``navigation2d``: a point at the origin moves by a 2D velocity clipped to
  [-0.1, 0.1]; reward -||p - goal||^2 after the move; the episode ends within
  0.01 of the goal. Goals ~ U([-0.5, 0.5]^2), a unit square (as in
  pytorch-maml-rl): staying at the origin scores about -16.7 over 100 steps.
* ``halfcheetah_vel``: Brax halfcheetah, reward -|v - v_goal| - 0.05 ||a||^2,
  v_goal ~ U[0, 2].
* ``halfcheetah_dir``: reward d * v - 0.05 ||a||^2, d ~ U{-1, +1}.

The cheetah's actions are clipped to [-1, 1] (the actuator range) before the
physics and the control cost. The horizon is not the environment's business:
the rollout (``omni_jax.rl.rollout``) runs a fixed number of steps and masks
the steps after ``done``.

Physics backend. The cheetah's backend is a config field (``env.backend``:
generalized, positional, spring or mjx). The default is ``spring``, the
fastest on a CPU (docs/benchmarks.md), which bounds this project's CPU runs. ``generalized`` is the most faithful to MuJoCo and the
choice for a full-protocol GPU run (``--config.env.backend=generalized``).
"""
from __future__ import annotations

import contextlib
import io
import sys
from typing import Dict

import jax
import jax.numpy as jnp


def _import_brax():
    """Imports Brax with MuJoCo's import-time prints ("Failed to import warp: ...", twice; warp is
    an optional GPU backend we do not use) kept off the user's screen; any other output passes."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        import brax.envs  # noqa: F401
        import brax.envs.half_cheetah  # noqa: F401
    for line in captured.getvalue().splitlines():
        if not line.startswith(("Failed to import warp", "Failed to import mujoco_warp")):
            print(line, file=sys.stdout)


_import_brax()
from brax import envs as brax_envs  # noqa: E402
from brax.envs.base import Env, State  # noqa: E402
from brax.envs.half_cheetah import Halfcheetah  # noqa: E402

from omni_jax.errors import OmniJaxError

BACKENDS = ("generalized", "positional", "spring", "mjx")
Task = Dict[str, jnp.ndarray]


class TaskEnv(Env):
    """Mixin protocol: ``sample_tasks(rng, n)`` and ``reset(rng, task=None)``."""

    def sample_tasks(self, rng: jax.Array, n: int) -> Task:  # pragma: no cover - abstract
        raise NotImplementedError


class Navigation2D(TaskEnv):
    """2D navigation to a goal (Finn et al. 2017; paper §6.3)."""

    max_speed = 0.1
    success_radius = 0.01

    def __init__(self, goal_low: float = -0.5, goal_high: float = 0.5, **kwargs):
        del kwargs  # backend etc.: no physics here
        self._low, self._high = goal_low, goal_high

    @property
    def observation_size(self) -> int:
        return 2

    @property
    def action_size(self) -> int:
        return 2

    @property
    def backend(self) -> str:
        return "jax"

    def sample_tasks(self, rng, n):
        return {"goal": jax.random.uniform(rng, (n, 2), minval=self._low, maxval=self._high)}

    def reset(self, rng, task: Task | None = None) -> State:
        if task is None:
            task = jax.tree_util.tree_map(lambda x: x[0], self.sample_tasks(rng, 1))
        zero = jnp.zeros(())
        return State(pipeline_state=None, obs=jnp.zeros(2), reward=zero, done=zero,
                     metrics={"distance": jnp.linalg.norm(task["goal"])}, info={"task": task})

    def step(self, state: State, action) -> State:
        goal = state.info["task"]["goal"]
        pos = state.obs + jnp.clip(action, -self.max_speed, self.max_speed)
        sq = jnp.sum(jnp.square(pos - goal))
        done = (jnp.sqrt(sq) < self.success_radius).astype(jnp.float32)
        metrics = dict(state.metrics, distance=jnp.sqrt(sq))
        return state.replace(obs=pos, reward=-sq, done=done, metrics=metrics)


class _CheetahTask(Halfcheetah, TaskEnv):
    """Brax halfcheetah whose reward depends on ``state.info["task"]``."""

    ctrl_cost = 0.05

    def __init__(self, backend: str = "spring", **kwargs):
        if backend not in BACKENDS:
            raise OmniJaxError(f"config field env.backend={backend!r} is unknown; expected one of {BACKENDS}")
        super().__init__(backend=backend, **kwargs)

    def reset(self, rng, task: Task | None = None) -> State:
        rng, task_rng = jax.random.split(rng)
        if task is None:
            task = jax.tree_util.tree_map(lambda x: x[0], self.sample_tasks(task_rng, 1))
        state = super().reset(rng)
        return state.replace(info={**state.info, "task": task})

    def task_reward(self, task: Task, x_velocity, action):  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, state: State, action) -> State:
        action = jnp.clip(action, -1.0, 1.0)
        ps0 = state.pipeline_state
        ps = self.pipeline_step(ps0, action)
        x_velocity = (ps.x.pos[0, 0] - ps0.x.pos[0, 0]) / self.dt
        reward = self.task_reward(state.info["task"], x_velocity, action)
        metrics = dict(state.metrics, x_position=ps.x.pos[0, 0], x_velocity=x_velocity)
        return state.replace(pipeline_state=ps, obs=self._get_obs(ps), reward=reward, metrics=metrics)


class HalfCheetahVel(_CheetahTask):
    """Run at a goal velocity: reward -|v - v_goal| - 0.05 ||a||^2, v_goal ~ U[0, 2]."""

    def sample_tasks(self, rng, n):
        return {"velocity": jax.random.uniform(rng, (n,), minval=0.0, maxval=2.0)}

    def task_reward(self, task, x_velocity, action):
        return -jnp.abs(x_velocity - task["velocity"]) - self.ctrl_cost * jnp.sum(jnp.square(action))


class HalfCheetahDir(_CheetahTask):
    """Run forward or backward: reward d * v - 0.05 ||a||^2, d ~ U{-1, +1}."""

    def sample_tasks(self, rng, n):
        return {"direction": 2.0 * jax.random.bernoulli(rng, 0.5, (n,)).astype(jnp.float32) - 1.0}

    def task_reward(self, task, x_velocity, action):
        return task["direction"] * x_velocity - self.ctrl_cost * jnp.sum(jnp.square(action))


ENVS = {"navigation2d": Navigation2D, "halfcheetah_vel": HalfCheetahVel, "halfcheetah_dir": HalfCheetahDir}
for _name, _cls in ENVS.items():
    brax_envs.register_environment(_name, _cls)


def make_env(name: str, backend: str = "spring") -> TaskEnv:
    """The registered environment ``name``; a clear error for a bad name or backend."""
    if name not in ENVS:
        raise OmniJaxError(f"unknown env {name!r}; expected one of {', '.join(ENVS)}")
    if backend not in BACKENDS:
        raise OmniJaxError(f"config field env.backend={backend!r} is unknown; expected one of {', '.join(BACKENDS)}")
    return brax_envs.get_environment(name, backend=backend)
