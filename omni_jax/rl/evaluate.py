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
import threading
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from omni_jax.rl import acting, losses
from omni_jax.training import mean_ci95, shard_tasks

# (label, apply_fn, params, flow)
Entry = Tuple[str, Callable, object, str]


@dataclasses.dataclass(frozen=True)
class PolicyApply:
    """``apply(params, obs, flow)`` of a Flax policy; its ``repr`` names the architecture."""
    policy: Any

    def __call__(self, params, obs, flow):
        return self.policy.apply(params, obs, flow)


def entries_for(models: Dict[str, tuple], omni_head: str) -> Sequence[Entry]:
    """The policies to evaluate from ``{method: (policy, params)}``: baseline and maml on
    their only flow, and each Omni head (omni_joint, omni_pre, omni_meta)."""
    out = []
    for method, (policy, params) in models.items():
        apply = PolicyApply(policy)
        if method == "omni":
            out += [(f"omni_{flow}", apply, params, flow) for flow in ("joint", "pre", "meta")]
        else:
            out.append((method, apply, params, "joint"))
    return out


_EVAL_FNS: dict = {}
_EVAL_LOCK = threading.Lock()


def make_eval_fn(env, entries: Sequence[Entry], *, num_traj: int, horizon: int, max_steps: int, lr: float,
                 discount: float, mesh=None):
    """A jitted ``fn(params_list, tasks, rng) -> returns [max_steps + 1, G, B]``.

    When every entry's apply is a :class:`PolicyApply`, the function is cached
    on the policies' architectures, labels, flows and parameter shapes and on
    the settings, so that :func:`precompile` and :func:`adaptation_returns`
    share one function (and its compiled executable).
    """
    build = lambda: _build_eval_fn(env, entries, num_traj=num_traj, horizon=horizon, max_steps=max_steps,
                                   lr=lr, discount=discount, mesh=mesh)
    if not all(isinstance(apply, PolicyApply) for _, apply, _, _ in entries):
        return build()
    shapes = lambda p: tuple((x.shape, str(x.dtype)) for x in jax.tree_util.tree_leaves(p))
    key = (tuple((label, repr(apply.policy), flow, jax.tree_util.tree_structure(p), shapes(p))
                 for label, apply, p, flow in entries),
           num_traj, horizon, max_steps, lr, discount, id(mesh), type(env).__name__, getattr(env, "backend", None))
    with _EVAL_LOCK:
        if key not in _EVAL_FNS:
            _EVAL_FNS[key] = build()
        return _EVAL_FNS[key]


def _build_eval_fn(env, entries, *, num_traj, horizon, max_steps, lr, discount, mesh):
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


def _eval_inputs(cfg, env, entries, seed, mesh):
    """The jitted function, the tasks of every chunk and the rollout key of :func:`adaptation_returns`."""
    e = cfg.eval
    seed = cfg.seed if seed is None else seed
    fn = make_eval_fn(env, entries, num_traj=e.num_traj, horizon=cfg.env.horizon, max_steps=e.max_steps,
                      lr=e.lr, discount=cfg.train.discount, mesh=mesh)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 777_000)
    k_tasks, k_roll = jax.random.split(key)
    chunk = min(e.task_chunk, e.num_tasks)
    num_chunks = -(-e.num_tasks // chunk)
    tasks = env.sample_tasks(k_tasks, num_chunks * chunk)
    chunks = [jax.tree_util.tree_map(lambda x: x[i * chunk:(i + 1) * chunk], tasks) for i in range(num_chunks)]
    return fn, chunks, k_roll


def precompile(cfg, env, entries: Sequence[Entry], *, seed: Optional[int] = None, mesh=None) -> None:
    """Compiles :func:`adaptation_returns`'s function ahead of time, for entries whose
    parameters have the shapes of the trained ones (for example the initial parameters)."""
    fn, chunks, k_roll = _eval_inputs(cfg, env, entries, seed, mesh)
    fn.lower([p for _, _, p, _ in entries], chunks[0], jax.random.fold_in(k_roll, 0)).compile()


def adaptation_returns(cfg, env, entries: Sequence[Entry], *, seed: Optional[int] = None, mesh=None,
                       progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """Returns after 0..max_steps steps on ``eval.num_tasks`` new tasks: ``[max_steps + 1, G, num_tasks]``.

    The tasks come from a key of their own (not the training stream); they
    are the same for every policy.
    """
    fn, chunks, k_roll = _eval_inputs(cfg, env, entries, seed, mesh)
    params_list = [p for _, _, p, _ in entries]
    out = []
    for i, t in enumerate(chunks):
        out.append(np.asarray(fn(params_list, t, jax.random.fold_in(k_roll, i))))
        if progress is not None:
            progress(i + 1, len(chunks))
    return np.concatenate(out, axis=-1)[..., :cfg.eval.num_tasks]


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
