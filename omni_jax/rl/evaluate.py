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

import dataclasses
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from omni_jax.nn import FLOWS
from omni_jax.rl import acting, losses
from omni_jax.training import mean_ci95, prng_stream, shard_tasks
from omni_jax.training.metrics import format_mean_ci

# (label, apply_fn, params, flow)
Entry = Tuple[str, Callable, object, str]


@dataclasses.dataclass(frozen=True)
class PolicyApply:
    """``apply(params, obs, flow)`` of a Flax policy; its ``repr`` names the architecture."""
    policy: Any

    def __call__(self, params, obs, flow):
        return self.policy.apply(params, obs, flow)


def entries_for(models: Dict[str, tuple], omni_heads: Sequence[str] = FLOWS) -> Sequence[Entry]:
    """The policies to evaluate from ``{method: (policy, params)}``: baseline and maml on
    their only flow (and any other plain policy, such as ``random``), and each Omni head of
    ``omni_heads`` (omni_joint, omni_pre, omni_meta; ``eval.omni_heads``)."""
    out = []
    for method, (policy, params) in models.items():
        apply = PolicyApply(policy)
        if method == "omni":
            out += [(f"omni_{flow}", apply, params, flow) for flow in FLOWS if flow in omni_heads]
        else:
            out.append((method, apply, params, FLOWS[0]))
    return out


def make_eval_fn(env, entries: Sequence[Entry], *, num_traj: int, horizon: int, max_steps: int, lr: float,
                 discount: float, mesh=None, task_chunk: Optional[int] = None, max_kl: Optional[float] = None):
    """A jitted ``fn(params_list, tasks, rng) -> returns [max_steps + 1, G, B]``: every entry's
    policy adapts by ``max_steps`` REINFORCE steps on each task, all in one vmapped rollout
    (the steps themselves ``task_chunk`` tasks at a time, :func:`omni_jax.rl.losses.adapt_tasks`;
    with ``max_kl``, each step is bounded by that KL divergence, :func:`~omni_jax.rl.losses.adapt_kl_bounded`)."""
    policies = [(apply, flow, True) for _, apply, _, flow in entries]

    def fn(params_list, tasks, rng):
        tasks = shard_tasks(tasks, mesh)
        B = jax.tree_util.tree_leaves(tasks)[0].shape[0]
        per_task = [jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (B,) + x.shape), p) for p in params_list]

        def body(ps, key):
            traj = acting.rollout(env, policies, ps, tasks, key, num_traj=num_traj, horizon=horizon)
            traj = losses.add_advantages_batched(traj, discount)
            ret = jnp.mean(acting.episode_returns(traj), axis=-1)  # [G, B]
            new = [losses.adapt_tasks(apply, ps[g], acting.select(traj, g), flow, lr=lr, task_chunk=task_chunk,
                                      max_kl=max_kl)
                   for g, (apply, flow, _) in enumerate(policies)]
            return new, ret

        _, rets = lax.scan(body, per_task, jax.random.split(rng, max_steps + 1))
        return rets

    return jax.jit(fn)


class AdaptationEvaluator:
    """Returns after 0..``eval.max_steps`` adaptation steps on ``eval.num_tasks`` new tasks.

    Owns its jitted function, built once for the given entries' policies and
    flows; :meth:`compile` compiles it ahead of time for parameters shaped like
    the entries' (the initial ones will do), :meth:`returns` runs it on any
    parameters of those shapes. The tasks come from the ``test`` PRNG stream
    (not the training stream; ``stream="validation"`` draws other tasks, for
    choices that must not look at the test tasks), the same for every policy.
    The test-time step is ``eval.step_rule``: ``"sgd"`` (plain, ``eval.lr``)
    or ``"kl_bound"`` (each step's KL divergence at most ``eval.max_kl``).
    """

    def __init__(self, cfg, env, entries: Sequence[Entry], *, seed: Optional[int] = None, mesh=None,
                 stream: str = "test"):
        e = cfg.eval
        self.cfg, self.entries = cfg, list(entries)
        self.labels = [label for label, _, _, _ in entries]
        self._fn = make_eval_fn(env, entries, num_traj=e.num_traj, horizon=cfg.env.horizon, max_steps=e.max_steps,
                                lr=e.lr, discount=cfg.train.discount, mesh=mesh, task_chunk=cfg.train.task_chunk,
                                max_kl=e.max_kl if e.step_rule == "kl_bound" else None)
        if seed is None:   # the test tasks under eval.seed; validation tasks under the training seed
            seed = cfg.eval.seed if stream == "test" else cfg.seed
        k_tasks, self._k_roll = jax.random.split(prng_stream(seed, stream))
        chunk = min(e.task_chunk, e.num_tasks)
        num_chunks = -(-e.num_tasks // chunk)
        tasks = env.sample_tasks(k_tasks, num_chunks * chunk)
        self._chunks = [jax.tree_util.tree_map(lambda x: x[i * chunk:(i + 1) * chunk], tasks)
                        for i in range(num_chunks)]

    def compile(self) -> None:
        self._fn.lower([p for _, _, p, _ in self.entries], self._chunks[0],
                       jax.random.fold_in(self._k_roll, 0)).compile()

    def returns(self, params_list: Optional[Sequence] = None,
                progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
        """``[max_steps + 1, G, num_tasks]`` for ``params_list`` (default: the entries' own)."""
        params_list = [p for _, _, p, _ in self.entries] if params_list is None else list(params_list)
        out = []
        for i, t in enumerate(self._chunks):
            out.append(np.asarray(self._fn(params_list, t, jax.random.fold_in(self._k_roll, i))))
            if progress is not None:
                progress(i + 1, len(self._chunks))
        return np.concatenate(out, axis=-1)[..., :self.cfg.eval.num_tasks]


def adaptation_returns(cfg, env, entries: Sequence[Entry], *, seed: Optional[int] = None, mesh=None,
                       progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """Returns after 0..max_steps steps on ``eval.num_tasks`` new tasks: ``[max_steps + 1, G, num_tasks]``."""
    return AdaptationEvaluator(cfg, env, entries, seed=seed, mesh=mesh).returns(progress=progress)


def records_from_returns(env_name: str, labels: Sequence[str], returns: np.ndarray, omni_head: str) -> list:
    """results.json records from ``[steps, G, tasks]`` returns; ``omni_<omni_head>`` is reported
    as ``omni`` (with ``"head": omni_head``), the other Omni heads under their own names."""
    recs = []
    for g, label in enumerate(labels):
        extra = {}
        if label == f"omni_{omni_head}":
            label, extra = "omni", {"head": omni_head}
        for k in range(returns.shape[0]):
            mean, ci = mean_ci95(returns[k, g])
            recs.append({"env": env_name, "method": label, **extra, "steps": k, "return": float(mean),
                         "ci95": float(ci), "median": float(np.median(returns[k, g])),
                         "num_tasks": int(returns.shape[-1])})
    order = ["baseline", "maml", "omni", "omni_joint", "omni_pre", "omni_meta", "random"]
    return sorted(recs, key=lambda r: (order.index(r["method"]) if r["method"] in order else 99, r["steps"]))


def results_table(records: list) -> str:
    """A text table: one row per method, ``mean±ci95 (median)`` per number of steps (100 columns
    for 5 step counts)."""
    steps = sorted({r["steps"] for r in records})
    methods = list(dict.fromkeys(r["method"] for r in records))
    by = {(r["method"], r["steps"]): r for r in records}
    rows = []
    for m in methods:
        cells = []
        for s in steps:
            r = by.get((m, s))
            cells.append(f"{format_mean_ci(r['return'], r['ci95'], 3)} ({r['median']:.{1 if abs(r['median']) < 100 else 0}f})"
                         if r else "-")
        rows.append((m, cells))
    w = max([18] + [len(c) + 1 for _, cells in rows for c in cells])   # a space between cells
    lines = [f"{'method':<10}" + "".join(f"{'step ' + str(s):>{w}}" for s in steps)]
    lines += [f"{m:<10}" + "".join(f"{c:>{w}}" for c in cells) for m, cells in rows]
    return "\n".join(lines)
