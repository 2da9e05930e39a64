"""Batched rollouts: ``lax.scan`` over time, one vmapped env step for everything.

A rollout runs ``num_traj`` trajectories on each of ``B`` tasks for each of
``G`` policies. A policy is ``(apply_fn, flow, per_task)``: ``per_task``
says whether its parameters carry a leading task axis (adapted parameters)
or are shared by every task. All ``G * B * num_traj`` environments step
together in a single vmapped ``env.step``, so the physics appears once in
the compiled program however many policies act (the pre-, joint- and
meta-flow, or every method at evaluation).

Trajectories are dicts of arrays ``[G, B, N, T, ...]``:

* ``obs``: the observation the action was taken in;
* ``actions``: the sampled (unclipped) Gaussian actions;
* ``rewards``: the reward of the step;
* ``mask``: 1 while the episode runs, 0 for the steps after it ended (done).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, Tuple

import jax
import jax.numpy as jnp
from jax import lax

Policy = Tuple[Callable, str, bool]  # (apply_fn(params, obs, flow) -> (mean, log_std), flow, per_task)


def policy_actions(policies: Sequence[Policy], params: Sequence[Any], obs):
    """``(mean, log_std)`` of every policy on its slice ``obs[g]`` of shape ``[B, ..., obs_dim]``."""
    means, log_stds = [], []
    for (apply_fn, flow, per_task), p, o in zip(policies, params, obs):
        if per_task:
            m, s = jax.vmap(lambda pi, oi: apply_fn(pi, oi, flow))(p, o)
        else:
            m, s = apply_fn(p, o, flow)
        means.append(m)
        log_stds.append(s)
    return jnp.stack(means), jnp.stack(log_stds)


def rollout(env, policies: Sequence[Policy], params: Sequence[Any], tasks, rng, *, num_traj: int,
            horizon: int) -> dict:
    """Samples ``num_traj`` trajectories of ``horizon`` steps per task and policy.

    Args:
      env: a task env (``omni_jax.rl.envs``).
      policies: ``G`` policies ``(apply_fn, flow, per_task)``; static.
      params: ``G`` parameter pytrees (no gradient flows into the samples).
      tasks: a pytree of task parameters with a leading axis ``B``.

    Returns:
      a dict of arrays ``[G, B, num_traj, horizon, ...]`` (see the module doc).
    """
    G, N, T = len(policies), num_traj, horizon
    B = jax.tree_util.tree_leaves(tasks)[0].shape[0]
    params = jax.lax.stop_gradient(tuple(params))
    k_reset, k_act = jax.random.split(rng)
    flat_tasks = jax.tree_util.tree_map(
        lambda x: jnp.broadcast_to(x[None, :, None], (G, B, N) + x.shape[1:]).reshape((G * B * N,) + x.shape[1:]),
        tasks)
    state = jax.vmap(env.reset)(jax.random.split(k_reset, G * B * N), flat_tasks)
    alive = jnp.ones((G * B * N,), jnp.float32)

    def step(carry, key):
        state, alive = carry
        obs = state.obs.reshape((G, B, N) + state.obs.shape[1:])
        mean, log_std = policy_actions(policies, params, obs)
        actions = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
        flat_actions = actions.reshape((G * B * N,) + actions.shape[3:])
        nstate = jax.vmap(env.step)(state, flat_actions)
        out = {"obs": state.obs, "actions": flat_actions, "rewards": nstate.reward, "mask": alive}
        alive = alive * (1.0 - nstate.done)
        return (nstate, alive), out

    _, traj = lax.scan(step, (state, alive), jax.random.split(k_act, T))
    # [T, G*B*N, ...] -> [G, B, N, T, ...]
    return jax.tree_util.tree_map(
        lambda x: jnp.moveaxis(x, 0, 1).reshape((G, B, N, T) + x.shape[2:]), traj)


def episode_returns(traj: dict) -> jnp.ndarray:
    """Undiscounted return of each trajectory: the sum of its valid rewards, shape ``[..., N]``."""
    return jnp.sum(traj["rewards"] * traj["mask"], axis=-1)


def select(traj: dict, g: int) -> dict:
    """Policy ``g``'s trajectories, ``[B, N, T, ...]``."""
    return jax.tree_util.tree_map(lambda x: x[g], traj)
