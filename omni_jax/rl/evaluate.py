"""Adaptation to new tasks (paper §6.3, Figure 8).

For each new task, every policy takes ``max_steps`` REINFORCE SGD steps
(``eval.lr``), each on ``num_traj`` fresh trajectories of its current
parameters; the return after ``k`` steps is the mean return of the
``num_traj`` trajectories sampled with the parameters after ``k`` steps
(which are also the support trajectories of step ``k + 1``). Step 0 is the
return before adaptation. Every method and Omni head acts in the same
vmapped rollout (``omni_jax.rl.acting``) on the same tasks.

Records: ``{"env", "method", "steps", "return", "ci95", "median"}``, where
``return`` is the mean over tasks, ``ci95`` its 95% half-width and
``median`` the median over tasks (the squared-distance reward lets one task
that drifts away dominate the mean).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from omni_jax.rl import acting, losses
from omni_jax.training import mean_ci95, shard_tasks

# (label, apply_fn, params, flow)
Entry = Tuple[str, Callable, object, str]


def entries_for(models: Dict[str, tuple], omni_head: str) -> Sequence[Entry]:
    """The policies to evaluate from ``{method: (policy, params)}``: baseline and maml on
    their only flow, and each Omni head (omni_joint, omni_pre, omni_meta)."""
    out = []
    for method, (policy, params) in models.items():
        apply = lambda p, o, f, policy=policy: policy.apply(p, o, f)
        if method == "omni":
            out += [(f"omni_{flow}", apply, params, flow) for flow in ("joint", "pre", "meta")]
        else:
            out.append((method, apply, params, "joint"))
    return out


def make_eval_fn(env, entries: Sequence[Entry], *, num_traj: int, horizon: int, max_steps: int, lr: float,
                 discount: float, mesh=None):
    """A jitted ``fn(params_list, tasks, rng) -> returns [max_steps + 1, G, B]``."""
    policies = [(apply, flow, True) for _, apply, _, flow in entries]

    def fn(params_list, tasks, rng):
        tasks = shard_tasks(tasks, mesh)
        B = jax.tree_util.tree_leaves(tasks)[0].shape[0]
        per_task = [jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (B,) + x.shape), p) for p in params_list]

        def body(ps, key):
            traj = acting.rollout(env, policies, ps, tasks, key, num_traj=num_traj, horizon=horizon)
            traj = losses.add_advantages_batched(traj, discount)
            ret = jnp.mean(acting.episode_returns(traj), axis=-1)  # [G, B]
            new = []
            for g, (apply, flow, _) in enumerate(policies):
                step = lambda p, s, apply=apply, flow=flow: losses.adapt(apply, p, s, flow, lr=lr)
                new.append(jax.vmap(step)(ps[g], acting.select(traj, g)))
            return new, ret

        _, rets = lax.scan(body, per_task, jax.random.split(rng, max_steps + 1))
        return rets

    return jax.jit(fn)


def adaptation_returns(cfg, env, entries: Sequence[Entry], *, seed: Optional[int] = None, mesh=None,
                       progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """Returns after 0..max_steps steps on ``eval.num_tasks`` new tasks: ``[max_steps + 1, G, num_tasks]``.

    The tasks come from a key of their own (not the training stream); they
    are the same for every policy.
    """
    e = cfg.eval
    seed = cfg.seed if seed is None else seed
    fn = make_eval_fn(env, entries, num_traj=e.num_traj, horizon=cfg.env.horizon, max_steps=e.max_steps,
                      lr=e.lr, discount=cfg.train.discount, mesh=mesh)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 777_000)
    k_tasks, k_roll = jax.random.split(key)
    chunk = min(e.task_chunk, e.num_tasks)
    num_chunks = -(-e.num_tasks // chunk)
    tasks = env.sample_tasks(k_tasks, num_chunks * chunk)
    params_list = [p for _, _, p, _ in entries]
    out = []
    for i in range(num_chunks):
        t = jax.tree_util.tree_map(lambda x: x[i * chunk:(i + 1) * chunk], tasks)
        out.append(np.asarray(fn(params_list, t, jax.random.fold_in(k_roll, i))))
        if progress is not None:
            progress(i + 1, num_chunks)
    return np.concatenate(out, axis=-1)[..., :e.num_tasks]


def records_from_returns(env_name: str, labels: Sequence[str], returns: np.ndarray, omni_head: str) -> list:
    """results.json records from ``[steps, G, tasks]`` returns; ``omni`` repeats ``omni_<omni_head>``."""
    recs = []
    for g, label in enumerate(labels):
        names = [label] + (["omni"] if label == f"omni_{omni_head}" else [])
        for k in range(returns.shape[0]):
            mean, ci = mean_ci95(returns[k, g])
            for name in names:
                recs.append({"env": env_name, "method": name, "steps": k, "return": float(mean),
                             "ci95": float(ci), "median": float(np.median(returns[k, g])),
                             "num_tasks": int(returns.shape[-1])})
    order = ["baseline", "maml", "omni", "omni_joint", "omni_pre", "omni_meta"]
    return sorted(recs, key=lambda r: (order.index(r["method"]) if r["method"] in order else 99, r["steps"]))


def results_table(records: list) -> str:
    """A text table: one row per method, ``mean ± ci95 (median)`` per number of steps."""
    steps = sorted({r["steps"] for r in records})
    methods = list(dict.fromkeys(r["method"] for r in records))
    by = {(r["method"], r["steps"]): r for r in records}
    head = f"{'method':<11}" + "".join(f"{'step ' + str(s):>24}" for s in steps)
    lines = [head]
    for m in methods:
        cells = []
        for s in steps:
            r = by.get((m, s))
            cells.append(f"{r['return']:.1f} ± {r['ci95']:.1f} ({r['median']:.1f})" if r else "-")
        lines.append(f"{m:<11}" + "".join(f"{c:>24}" for c in cells))
    return "\n".join(lines)
